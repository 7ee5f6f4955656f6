"""Rows larger than memory: CSV files encoded once, in pieces, into a folder of flat binary
files that training reads back in shuffled blocks.

``build_csv_cache`` makes the folder, holding one piece of the file (``chunk_rows`` rows) and the
counts at a time:

1. With ``split`` (one file divided into train, validation and test), a first pass counts the
   rows, so that each row's part is the one ``features.split_rows`` gives the in-memory route
   (one byte a row records it; drawing the split holds a permutation, 8 bytes a row, for a moment:
   for hundreds of millions of rows, give the parts in files of their own instead).
2. A pass over the rows fits the encoder on the training rows (``Encoder.fit_chunks``: the same
   vocabularies and statistics as fitting on all rows at once), and finds the most values a
   multi-valued cell holds in each part, so every row of a part has the same width.
3. A last pass reads the file(s) once more and encodes each piece (``features._dataset``: the checks
   and messages of the in-memory route, naming file and line), appending each part's ids (int32),
   values and labels to its files. Training rows go to ``shards`` files, each row to one drawn at
   random (seeded): each shard is a uniform sample of the rows, so a shard read whole and shuffled
   is a shuffled block of the whole set.

``DiskDataset`` is one part of such a folder: ``train.fit`` reads its shards in a random order
each epoch, one at a time, and shuffles the rows of each; evaluation reads it in order, a
piece at a time. Memory holds the encoder, one shard (or one piece) and one label and one
prediction per validation or test row (for AUC), whatever the number of training rows. With
one shard, the epochs see the rows exactly as the in-memory route does (same seed, same
batches); with more, the same rows in another random order.

The folder is checked against the files and options that made it (sizes, modification times,
options): a folder made from other data is rebuilt, never silently reused.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path

import numpy as np

from . import errors as E
from .data import Batch, Dataset, Split
from .errors import DataError, OptionError
from .features import (
    LOSSES,
    MISSING,
    Encoder,
    Table,
    _cell_values,
    _column,
    _dataset,
    _dtype,
    _label_text,
    _labels,
    _path,
    _present_labels as _present,
    _split_fractions,
    read_csv_chunks,
    split_rows,
)

CHUNK_ROWS = 65_536          # rows parsed at a time (a piece of text as Python objects: ~200 MB for 40 columns)
SHARD_ROWS = 262_144         # training rows a shard holds, on average (one shard in memory, twice, when shuffled)
FORMAT = 1
PARTS = ("train", "valid", "test")
_SHARD_FILE = re.compile(r"(train|valid|test)\.\d{4}\.(idx|val|y)")   # a cache's shard files


class DiskDataset:
    """One part (train, valid or test) of a cache folder: ``rows`` rows of ``width`` entries.

    Attributes as ``data.Dataset``'s where they make sense (``n_features``, ``name``,
    ``label_map``, ``raw_ids`` None, ``weight`` None), plus ``label_range`` (min, max of
    the labels) and ``shards`` (rows in each shard file). ``y`` reads every label (one float a
    row); the ids and values are read a shard or a piece at a time.
    """

    raw_ids = None
    weight = None

    def __init__(self, folder, part, meta):
        self.folder, self.part = Path(folder), part
        m = meta["parts"][part]
        self.shards, self.width = [int(r) for r in m["shards"]], int(meta["width"][part])
        self.n_features, self.name, self.label_map = int(meta["n_features"]), m["name"], m["label_map"]
        self.label_range = tuple(m["label_range"])
        self.dtype = np.dtype(meta["dtype"])

    def __len__(self):
        return sum(self.shards)

    def __repr__(self):
        return (f"DiskDataset({self.name!r}, rows={len(self)}, entries per row={self.width}, "
                f"features={self.n_features}, {len(self.shards)} shard{'s' * (len(self.shards) > 1)} in "
                f"{self.folder})")

    def _file(self, shard, what):
        return self.folder / f"{self.part}.{shard:04d}.{what}"

    def _read(self, shard, start=0, stop=None):
        """Rows [start, stop) of a shard as host arrays (idx int32, val, y)."""
        stop = self.shards[shard] if stop is None else stop
        n, F = stop - start, self.width
        idx = np.fromfile(self._file(shard, "idx"), np.int32, n * F, offset=start * F * 4).reshape(n, F)
        val = np.fromfile(self._file(shard, "val"), self.dtype, n * F,
                          offset=start * F * self.dtype.itemsize).reshape(n, F)
        y = np.fromfile(self._file(shard, "y"), self.dtype, n, offset=start * self.dtype.itemsize)
        if idx.shape[0] != n or y.shape[0] != n:
            raise DataError(f"{self.folder}: shard {shard} of {self.part} is shorter than its record says "
                            "(the cache was damaged; remove the folder and run again)")
        return idx, val, y

    @property
    def y(self):
        return np.concatenate([np.fromfile(self._file(s, "y"), self.dtype) for s in range(len(self.shards))])

    def steps(self, batch_size):
        """Batches an epoch takes: each shard's whole batches (a shard's last partial batch is left out,
        as the in-memory route leaves out the set's)."""
        return sum(r // batch_size for r in self.shards)

    def shuffled_blocks(self, rng, batch_size):
        """Each shard, in a random order, its rows shuffled and cut to whole batches: ``Batch`` of host
        arrays. One shard: the rows of ``rng.permutation(rows)``, as ``train.fit`` takes them in memory."""
        order = rng.permutation(len(self.shards)) if len(self.shards) > 1 else [0]
        for s in order:
            idx, val, y = self._read(int(s))
            n = idx.shape[0] // batch_size * batch_size
            if not n:
                continue
            perm = rng.permutation(idx.shape[0])[:n]
            yield Batch(idx[perm], val[perm], y[perm], None)

    def pieces(self, rows=CHUNK_ROWS):
        """The rows in order, ``rows`` at a time, as in-memory ``Dataset`` objects (checked when written)."""
        for s, total in enumerate(self.shards):
            for start in range(0, total, rows):
                idx, val, y = self._read(s, start, min(total, start + rows))
                yield _unchecked(idx, val, y, self.n_features, self.name)

    def to(self, xp, device=None, dtype=None):
        """Itself: blocks are moved (and cast) one at a time where they are used."""
        return self


def _unchecked(idx, val, y, n_features, name):
    """A Dataset of arrays the cache checked when it wrote them."""
    ds = Dataset.__new__(Dataset)
    ds.idx, ds.val, ds.y, ds.weight = idx, val, y, None
    ds.n_features, ds.name, ds.raw_ids = n_features, name, None
    return ds


def open_cache(folder):
    """The ``Split`` of DiskDatasets and the ``Encoder`` of a finished cache folder."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "cache.json").read_text())
        with np.load(folder / "encoder.npz") as arrays:
            enc = Encoder.from_arrays(dict(arrays))
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{folder}: not a finished cache ({e}); remove it and run again") from None
    return Split(*(DiskDataset(folder, p, meta) for p in PARTS)), enc, meta.get("notes", [])


def _key(paths, options):
    """What the cache was made from: each file's path, size and modification time, and the options."""
    files = []
    for p in paths:
        st = os.stat(p)
        files.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
    text = json.dumps({"files": files, "options": options, "format": FORMAT}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def build_csv_cache(folder, path, label, categorical=None, numeric=(), multi_valued=None, ignore=(), min_count=1,
                    missing=MISSING, delimiter=None, split=(0.7, 0.2, 0.1), valid_path=None, test_path=None,
                    loss="square", seed=0, dtype=np.float32, positive=None, chunk_rows=CHUNK_ROWS,
                    shard_rows=SHARD_ROWS, log=print):
    """Encode CSV rows into the cache ``folder`` and open it: ``(Split of DiskDataset, encoder, notes)``.

    The arguments mean what they mean in ``features.load_csv_split`` (no negatives: drawing them needs
    every user's rows at once). ``chunk_rows``: rows parsed at a time; ``shard_rows``: training rows a
    shard holds on average (the most memory training uses for data: about twice a shard). A folder
    already made from the same files (same sizes and times) and options is opened, not made again.
    ``log`` gets a line a pass (None: silent).
    """
    folder = Path(_path(folder, "cache folder"))
    path, label = _path(path, "path"), _column(label, "label")
    valid_path = None if valid_path is None else _path(valid_path, "valid_path")
    test_path = None if test_path is None else _path(test_path, "test_path")
    loss, dtype, seed = E.choice(loss, "loss", LOSSES), _dtype(dtype), E.integer(seed, "seed", 0)
    positive = _label_text(positive, "positive")
    chunk_rows, shard_rows = E.integer(chunk_rows, "chunk_rows", 1), E.integer(shard_rows, "shard_rows", 1)
    fractions = _split_fractions(split)
    if (valid_path is None) != (test_path is None):
        raise OptionError("give both --valid-csv and --test-csv, or neither (then --split divides one file)")
    if positive is not None and loss != "log":
        raise OptionError("positive names the positive class of the log loss; the square loss reads labels as numbers")
    enc = Encoder(categorical, numeric, multi_valued, label, ignore, min_count, missing)     # checked before reading
    say = log or (lambda line: None)
    files = [path] + ([valid_path, test_path] if valid_path else [])
    options = dict(label=label, categorical=categorical, numeric=numeric, multi_valued=multi_valued, ignore=ignore,
                   min_count=min_count, missing=list(missing), delimiter=delimiter,
                   split=None if valid_path else fractions, loss=loss, seed=seed, dtype=dtype.name,
                   positive=positive, shard_rows=shard_rows)
    key = _key(files, options)
    if (folder / "cache.json").is_file():
        try:
            same = json.loads((folder / "cache.json").read_text()).get("key") == key
        except (OSError, ValueError):
            same = False
        if same:
            say(f"cache: {folder} was made from these files and options; reading it")
            return open_cache(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OptionError(f"--cache {folder}: cannot make the folder ({e.strerror or e})") from None
    # only what a cache writes is removed: a folder the user shares with other files keeps them
    ours = [f for f in folder.iterdir() if f.name in ("cache.json", "encoder.npz") or _SHARD_FILE.fullmatch(f.name)]
    for f in ours:
        f.unlink()

    def pieces(parts=PARTS):
        """(part, rows of that part) over the file(s) once, in file order: a piece of a file of its own
        is one part's; a piece of the one file is cut into the parts its rows belong to."""
        if valid_path:
            for part, f in zip(parts, files):
                yield from ((part, t) for t in read_csv_chunks(f, delimiter, chunk_rows))
            return
        start = 0
        for t in read_csv_chunks(path, delimiter, chunk_rows):
            if start + len(t) > part_of.size:
                raise DataError(f"{path}: more rows than the {part_of.size:,} counted in the first pass (did the "
                                "file change, or does it end its lines with a lone carriage return?)")
            of = part_of[start:start + len(t)]
            start += len(t)
            for i, part in enumerate(PARTS):
                mine = np.flatnonzero(of == i)
                if mine.size:
                    yield part, t.take(mine)
        if start != part_of.size:
            raise DataError(f"{path}: {start:,} rows, but {part_of.size:,} were counted in the first pass (did the "
                            "file change while it was read?)")

    part_of = None
    if not valid_path:                                   # pass 1: count, then each row's part as split_rows says
        n = count_rows(path, delimiter, chunk_rows)
        part_of = np.empty(n, dtype=np.int8)
        for i, rows in enumerate(split_rows(n, fractions, seed)):
            part_of[rows] = i
        say(f"cache: pass 1 of 3: {n:,} rows in {path}")
    widths = {p: {} for p in PARTS}
    multi = dict(enc.multi_valued or {})
    n_train, label_texts = 0, {}

    def train_rows():                                    # and, as they pass, what the other parts need to know
        nonlocal n_train
        for part, t in pieces(PARTS if multi else PARTS[:1]):      # (other files: for their widths only)
            if not n_train and part == "train" and label not in t:
                raise OptionError(t.no_column(label, "label column"))
            _widen(widths[part], t, multi)
            if part == "train":
                n_train += len(t)
                if positive is not None:
                    label_texts.update(dict.fromkeys(_present(t, label, enc.missing)))
                yield t
    enc.fit_chunks(train_rows())
    # a positive class is decided by all the training labels together, as in memory (never by one piece)
    classes = None if positive is None else _labels(
        Table({label: np.array(list(label_texts) + [None], dtype=object)[:-1]}, source=path), label, loss,
        enc.missing, positive)[2]
    notes = list(enc.notes)
    passes = 3 if part_of is not None else 2
    say(f"cache: pass {passes - 1} of {passes}: fitted the encoder on {n_train:,} training rows "
        f"({enc.n_features:,} features)")
    meta = {"format": FORMAT, "key": key, "n_features": enc.n_features, "dtype": dtype.name, "loss": loss,
            "width": {}, "parts": {}}
    rng = np.random.default_rng([seed, 7])               # which shard each training row goes to
    writers = {p: _PartWriter(folder, p, loss, enc, widths[p],
                              max(1, math.ceil(n_train / shard_rows)) if p == "train" else 1) for p in PARTS}
    stems = {p: Path(files[PARTS.index(p) if valid_path else 0]).stem for p in PARTS}
    try:
        for p, t in pieces():                            # the last pass: every part's rows, the file read once
            ds, n_unseen, _, rounded = _dataset(enc, t, f"{stems[p]}.{p}", loss, dtype, positive=positive,
                                                classes=classes, widths=widths[p])
            writers[p].add(t, ds, rng, n_unseen, rounded)
    finally:
        for w in writers.values():
            w.close()
    for p in PARTS:
        meta["width"][p] = writers[p].width
        meta["parts"][p] = writers[p].record()
        notes += [n for n in writers[p].notes() if n not in notes]
    np.savez(folder / "encoder.npz", **enc.to_arrays())
    meta["notes"] = notes
    (folder / "cache.json").write_text(json.dumps(meta, indent=1))
    say(f"cache: pass {passes} of {passes}: wrote {folder} (" +
        ", ".join(f"{p} {sum(meta['parts'][p]['shards']):,} rows" for p in PARTS) + ")")
    return open_cache(folder)


def count_rows(path, delimiter=None, chunk_rows=CHUNK_ROWS, block=1 << 24):
    """The rows of a CSV file (its lines after the header, blank lines left out), counted from its
    line breaks with NumPy while the file holds no quote (no cell can hold a line break); a file that
    does is parsed (``read_csv_chunks``)."""
    rows, rest = 0, b""
    with open(path, "rb") as f:
        while True:
            raw = f.read(block)
            if b'"' in raw:
                return sum(len(t) for t in read_csv_chunks(path, delimiter, chunk_rows))
            data = rest + raw
            if not raw:
                rows += bool(data.strip(b"\r"))           # a last line without a line break
                break
            arr = np.frombuffer(data, np.uint8)
            ends = np.flatnonzero(arr == 10)                  # (lines,) where each line ends
            starts = np.concatenate(([0], ends[:-1] + 1))
            blank = (ends == starts) | ((ends == starts + 1) & (arr[starts] == 13))
            rows += ends.size - int(blank.sum())
            rest = data[ends[-1] + 1:] if ends.size else data
    if rows < 2:                          # no header, or a header alone: the parser's own message says which
        return sum(len(t) for t in read_csv_chunks(path, delimiter, chunk_rows))
    return rows - 1                                       # the header


def _widen(widths, table, multi):
    """Record the most values one cell of each multi-valued column holds in ``table``."""
    for c, sep in multi.items():
        codes, texts = table.codes(c)
        held = np.bincount(codes, minlength=texts.size) > 0
        widths[c] = max([widths.get(c, 1)] + [len(_cell_values(t, sep)) for t in texts[held].tolist()])


class _PartWriter:
    """Appends one part's encoded pieces to its shard files (training rows: each to a shard drawn at
    random), and checks what only all the pieces together show (the log loss's label kinds)."""

    def __init__(self, folder, part, loss, enc, widths, n_shards):
        self.part, self.loss = part, loss
        self.width = sum(max(f.width, widths.get(f.name, 1)) if f.kind == "multi" else 1 for f in enc.fields)
        self.files = [[open(folder / f"{part}.{s:04d}.{w}", "wb") for w in ("idx", "val", "y")]
                      for s in range(n_shards)]
        self.rows, self.unseen, self.rounded = [0] * n_shards, 0, ""
        self.label_map, self.lo, self.hi = set(), math.inf, -math.inf
        self.zero = self.minus_one = None                # where a 0 label, a -1 label was first seen (log loss)

    def add(self, table, ds, rng, n_unseen, rounded):
        idx, val, y = ds.idx, ds.val, ds.y
        assert idx.shape[1] == self.width, (idx.shape, self.width)      # the widths pass sees to it
        self._label_kinds(table, ds)
        self.unseen += n_unseen
        self.rounded = self.rounded or rounded
        self.lo, self.hi = min(self.lo, float(y.min())), max(self.hi, float(y.max()))
        shard = rng.integers(0, len(self.files), len(y)) if len(self.files) > 1 else np.zeros(len(y), np.int64)
        for s, (f_idx, f_val, f_y) in enumerate(self.files):
            rows = np.flatnonzero(shard == s)
            f_idx.write(np.ascontiguousarray(idx[rows], dtype=np.int32).tobytes())
            f_val.write(np.ascontiguousarray(val[rows]).tobytes())
            f_y.write(np.ascontiguousarray(y[rows]).tobytes())
            self.rows[s] += rows.size

    def _label_kinds(self, table, ds):
        """For the log loss, a piece of 0/1 labels and another of -1/1 each pass alone; together they
        are -1, 0 and 1, which the whole file would be refused for."""
        if ds.label_map:
            self.label_map.add(ds.label_map)
        if self.loss != "log":
            return
        zeros = np.flatnonzero(ds.y == 0)
        if ds.label_map.startswith("labels -1/1"):       # its 0s were -1s
            self.minus_one = self.minus_one or table.where(int(zeros[0]))
        elif zeros.size:
            self.zero = self.zero or table.where(int(zeros[0]))
        if self.zero and self.minus_one:
            raise DataError(f"{self.minus_one}: label -1, and {self.zero}: label 0: the labels hold -1, 0 and 1; "
                            "the log loss needs labels 0/1 or -1/1")

    def close(self):
        for fs in self.files:
            for f in fs:
                f.close()

    def record(self):
        if not sum(self.rows):
            raise DataError(f"{self.part}: no rows")
        return {"name": self.part, "shards": self.rows, "label_map": "; ".join(sorted(self.label_map)),
                "label_range": [self.lo, self.hi]}

    def notes(self):
        out = []
        if self.unseen and self.part != "train":
            one = self.unseen == 1
            out.append(f"{self.part}: {self.unseen:,} cell{'s' * (not one)} hold{'s a value' if one else ' values'} "
                       "never seen in training (their field's OOV feature)")
        return out + sorted(n for n in self.label_map if n) + ([self.rounded] if self.rounded else [])
