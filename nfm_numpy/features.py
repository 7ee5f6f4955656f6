"""Your own data: from named columns (a CSV file, or any mapping of name -> 1-D array)
to the padded (idx, val) rows that FM and NFM read.

A **field** is one column turned into features:

* ``categorical``: one feature per value seen in the training rows (an empty
  cell is a value of its own); values seen fewer than ``min_count`` times,
  and values first met at prediction time, go to the field's own
  out-of-vocabulary (OOV) feature. x = 1.
* ``numeric``: one feature whose x is the value standardised with the
  training mean and standard deviation, (v - mean) / sd; a missing value
  (an empty cell, "NA", NaN, ...) gets x = 0, the training mean. Or, on
  request, ``buckets``: quantile buckets of the training values, each
  bucket a categorical value (missing values: the OOV feature).
* ``multi``-valued (``Action|Comedy``): one feature per value, each with
  x = 1/m for a cell of m distinct values, so a field's values sum to 1.

Each field owns a contiguous range of ids, its OOV id first. ``Encoder``
learns the vocabularies and statistics from training rows (``fit``), turns
any rows into ``(idx, val)`` (``transform``), prints itself as a table of
fields, and round-trips through a checkpoint as arrays and JSON
(``to_arrays`` / ``from_arrays``; no pickle).

Also here: ``read_csv`` (comma or tab, sniffed; errors name file, line and
column), ``add_negatives`` (implicit feedback, the way the NFM authors built
Frappe from its log: for each used (user, item), n items that user never
used, with the same context), ``split_rows`` (a seeded 70/20/10 split) and
``join`` (side information, e.g. app metadata, by a key column).
Everything is vectorised: columns are encoded with one dictionary lookup per
cell, never a loop over rows in NumPy.
"""
from __future__ import annotations

import collections
import csv
import itertools
import json
from dataclasses import dataclass, field as dc_field
from itertools import repeat
from pathlib import Path

import numpy as np

from . import errors as E
from .data import Dataset, Split, binary_labels, fits
from .errors import DataError, OptionError

KINDS = ("categorical", "numeric", "buckets", "multi")
MISSING = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None")
CSV_UNSEEN = ("oov", "ignore", "error")


# ====================================================================== tables
class Table:
    """Named columns of one length, with where each row came from (file and line).

    ``columns``: name -> 1-D NumPy array (object arrays of text, as read from a
    file, or numbers). ``lines``: the 1-based line of each row in ``source``,
    or None for rows that did not come from a file.
    """

    def __init__(self, columns, lines=None, source="data"):
        cols = {}
        n = None
        for name, values in dict(columns).items():
            a = np.asarray(values)
            if a.ndim != 1:
                raise DataError(f"{source}: column {name!r} must be 1-D, got shape {a.shape}")
            if n is not None and a.shape[0] != n:
                raise DataError(f"{source}: column {name!r} has {a.shape[0]} rows, the others {n}")
            n = a.shape[0]
            cols[str(name)] = a
        self.columns, self.lines, self.source = cols, lines, source
        self.n_rows = 0 if n is None else n
        self._codes = {}                     # name -> (codes, distinct texts): see ``codes``

    def __len__(self):
        return self.n_rows

    def __getitem__(self, name):
        if name not in self.columns:
            raise OptionError(f"{self.source}: no column {name!r}; the columns are {', '.join(self.columns)}")
        return self.columns[name]

    def __contains__(self, name):
        return name in self.columns

    @property
    def names(self):
        return list(self.columns)

    def where(self, row, column=None):
        """'file, line N, column C' (or 'source, row N') for error messages."""
        at = f"line {self.lines[row]}" if self.lines is not None else f"row {row + 1}"
        return f"{self.source}, {at}" + (f", column {column!r}" if column is not None else "")

    def codes(self, name):
        """The column as ``(codes, texts)``: ``texts[codes]`` is the column as text, ``texts``
        its distinct values. Computed once (one dictionary pass) and carried along by ``take``,
        so encoding works on the distinct values, then gathers: no Python loop over rows twice."""
        if name not in self._codes:
            self._codes[name] = _factorize(self[name])
        return self._codes[name]

    def take(self, rows):
        rows = np.asarray(rows)
        out = Table({n: a[rows] for n, a in self.columns.items()},
                    None if self.lines is None else self.lines[rows], self.source)
        out._codes = {n: (c[rows], t) for n, (c, t) in self._codes.items()}
        return out

    def with_column(self, name, values, codes=None):
        cols = dict(self.columns)
        cols[name] = values
        out = Table(cols, self.lines, self.source)
        out._codes = {n: ct for n, ct in self._codes.items() if n != name}
        if codes is not None:
            out._codes[name] = codes
        return out

    def __repr__(self):
        return f"Table({self.source!r}, rows={self.n_rows}, columns={self.names})"


def as_table(data, source="data"):
    """A ``Table`` from a Table, or from any mapping of name -> 1-D array (``dict(df)`` of a
    pandas DataFrame works; pandas is not needed)."""
    if isinstance(data, Table):
        return data
    if not hasattr(data, "items"):
        raise E.OptionTypeError(f"expected a mapping of column name -> 1-D array (or a Table), "
                                f"got {type(data).__name__}")
    return Table(data, None, source)


def _sniff(header):
    counts = {d: header.count(d) for d in ("\t", ",", ";")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def read_csv(path, delimiter=None, encoding="utf-8-sig"):
    """A delimited text file with a header row, as a ``Table`` of text columns.

    ``delimiter``: ',' or '\\t' (or any one character); None sniffs the header
    line (tab, comma or semicolon, the most frequent). Quoted fields follow
    the CSV rules. Blank lines are skipped. Raises ``DataError`` naming the
    file and line of a row whose number of fields differs from the header's,
    and for an empty file, a header alone, or text that is not UTF-8.
    """
    path = str(path)
    if delimiter is not None and not (isinstance(delimiter, str) and len(delimiter) == 1):
        raise OptionError(f"delimiter must be one character such as ',' or '\\t', got {delimiter!r}")
    try:
        with open(path, encoding=encoding, newline="") as f:
            header_line = f.readline()
            if not header_line.strip():
                raise DataError(f"{path}: no header row (the file is empty or starts with a blank line)")
            delim = delimiter or _sniff(header_line)
            f.seek(0)
            reader = csv.reader(f, delimiter=delim, strict=True)
            try:
                header = next(reader)
                rows = list(reader)
            except csv.Error as e:
                raise DataError(f"{path}, line {reader.line_num}: {e} (an unclosed quote runs to the end of the "
                                "file?)") from None
            ends = reader.line_num
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start} of a read block); save it as "
                        "UTF-8") from None
    header = [h.strip() for h in header]
    dupes = [h for h, c in collections.Counter(header).items() if c > 1]
    if dupes:
        raise DataError(f"{path}, line 1: the header names column {dupes[0]!r} twice")
    if ends == len(rows) + 1:                       # one line a row: the common case
        lines = np.arange(2, len(rows) + 2)
    else:                                           # quoted fields span lines: count them again
        lines = _row_lines(path, encoding, delim)
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    keep = lengths > 0                              # blank lines
    if not keep.all():
        rows = [r for r, k in zip(rows, keep) if k]
        lines, lengths = lines[keep], lengths[keep]
    bad = np.flatnonzero(lengths != len(header))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{path}, line {lines[i]}: {lengths[i]} fields, but the header has {len(header)} "
                        f"(delimiter {delim!r}; {bad.size} such rows)")
    if not rows:
        raise DataError(f"{path}: a header row and no data rows")
    columns = {name: np.array(col, dtype=object) for name, col in zip(header, zip(*rows))}
    return Table(columns, lines, path)


def _row_lines(path, encoding, delim):
    with open(path, encoding=encoding, newline="") as f:
        reader = csv.reader(f, delimiter=delim, strict=True)
        next(reader)
        starts, last = [], reader.line_num
        for _ in reader:
            starts.append(last + 1)
            last = reader.line_num
    return np.array(starts, dtype=np.int64)


def write_csv(path, table, delimiter=","):
    """Write a ``Table`` (or mapping) as a delimited file with a header row."""
    table = as_table(table)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(table.names)
        w.writerows(zip(*(table[n] for n in table.names)))


def join(table, other, on, columns=None, prefix=""):
    """``table`` with columns of ``other`` added by matching key column ``on`` (a left join: a
    key missing from ``other`` gets empty cells). Keys must be unique in ``other``."""
    table, other = as_table(table), as_table(other, "other")
    keys = _text(other[on])
    index = {k: i for i, k in enumerate(keys.tolist())}
    if len(index) != len(keys):
        raise DataError(f"{other.source}: key column {on!r} repeats a value; a join needs unique keys")
    at = np.fromiter(map(index.get, _text(table[on]).tolist(), repeat(-1)), dtype=np.int64, count=len(table))
    out = table
    for name in columns or [c for c in other.names if c != on]:
        values = np.append(_text(other[name]), "")              # position -1: an empty cell
        out = out.with_column(prefix + name, values[at])
    return out


def split_rows(n, fractions=(0.7, 0.2, 0.1), seed=0):
    """Row indices of a seeded random split into parts of the given fractions (which must sum to 1)."""
    fractions = E.float_list(fractions, "split", lambda v, name: E.real(v, name, 0.0, 1.0))
    if abs(sum(fractions) - 1.0) > 1e-9 or any(f == 0 for f in fractions):
        raise OptionError(f"split fractions must be positive and sum to 1, got {fractions}")
    perm = np.random.default_rng(E.integer(seed, "seed", 0)).permutation(n)
    cuts = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
    parts = np.split(perm, cuts)
    if any(p.size == 0 for p in parts):
        raise DataError(f"{n} rows are too few to split into {len(fractions)} non-empty parts")
    return parts


def add_negatives(table, user, item, n=2, label="label", positive=1.0, negative=-1.0, seed=0):
    """Implicit feedback as the NFM authors built Frappe: every row of ``table`` is a positive
    (label ``positive``); for each, ``n`` negatives (label ``negative``) copy its user and context
    and take an item that this user never used anywhere in ``table`` (distinct for one positive).

    Items are drawn uniformly from the items in the table. Returns a new ``Table`` of
    (n + 1) rows per input row: the positives first, then the negatives in groups of n.
    """
    table = as_table(table)
    n = E.integer(n, "negatives", 1)
    if user == item:
        raise OptionError(f"the user and item columns must differ, got {user!r} for both")
    if label in table:
        raise OptionError(f"{table.source}: already has a column {label!r}; the negatives make the label")
    user_code, user_names = table.codes(user)
    item_code, item_names = table.codes(item)
    I = item_names.size
    used = np.unique(user_code.astype(np.int64) * I + item_code)           # sorted (user, item) codes
    per_user = np.bincount(used // I)
    if np.any(per_user > I - n):
        u = int(np.flatnonzero(per_user > I - n)[0])
        raise DataError(f"{table.source}: user {user_names[u]!r} used "
                        f"{per_user[u]} of the {I} items, leaving fewer than {n} to draw negatives from")
    rng = np.random.default_rng(E.integer(seed, "seed", 0))
    rows = len(table)
    draw = rng.integers(0, I, (rows, n))
    while True:
        code = user_code[:, None].astype(np.int64) * I + draw                  # (rows, n)
        pos = np.minimum(np.searchsorted(used, code), used.size - 1)
        bad = used[pos] == code                                                  # a used item
        for j in range(1, n):                                                    # or a repeat of an earlier draw
            bad[:, j] |= (draw[:, :j] == draw[:, j:j + 1]).any(axis=1)
        if not bad.any():
            break
        draw[bad] = rng.integers(0, I, int(bad.sum()))
    src = np.concatenate([np.arange(rows), np.repeat(np.arange(rows), n)])       # the row each output copies
    for name in table.names:                   # factorise here, on 1/(n + 1) of the rows the encoder would see
        table.codes(name)
    out = table.take(src)                                                        # users and context copied
    new_items = np.concatenate([item_code, draw.ravel()])
    out = out.with_column(item, item_names[new_items], codes=(new_items, item_names))
    return out.with_column(label, np.concatenate([np.full(rows, positive), np.full(rows * n, negative)]))


# ====================================================================== encoding
def _text(values):
    """A column as an object array of str (numbers as their text, as a CSV file would hold them)."""
    a = np.asarray(values)
    if a.dtype == object:
        items = a.tolist()
        if set(map(type, items)) <= {str}:                   # text already (a CSV column): as it is
            return a
        return np.array([v if isinstance(v, str) else _num_text(v) for v in items], dtype=object)
    if a.dtype.kind in "iub":
        return a.astype(str).astype(object)
    if a.dtype.kind == "f":
        return np.array([_num_text(v) for v in a.tolist()], dtype=object)
    return a.astype(str).astype(object)


def _num_text(v):
    if v is None:
        return ""
    if isinstance(v, float):
        if v != v:
            return ""
        return str(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)
    return str(v)


def _factorize(values):
    """``(codes, texts)`` with ``texts[codes]`` the column as text and ``texts`` distinct, in order
    of first appearance: one dictionary pass over the cells (NumPy's sort for number columns)."""
    a = np.asarray(values)
    if a.dtype.kind in "iub":
        uniq, codes = np.unique(a, return_inverse=True)
        return codes.astype(np.int64), _text(uniq)
    items = a.tolist()
    seen = {}
    first = np.fromiter(map(seen.setdefault, items, itertools.count()), dtype=np.int64, count=len(items))
    order = np.fromiter(seen.values(), dtype=np.int64, count=len(seen))      # first positions, increasing
    codes = np.searchsorted(order, first)
    texts = _text(np.array(list(seen), dtype=object))
    merged, back = np.unique(texts.astype(str), return_inverse=True)         # 1 and "1" are one text
    if merged.size == texts.size:
        return codes, texts
    return back[codes], merged.astype(object)


def _numbers(table, name, missing):
    """A numeric column as float64 with NaN for missing cells; text is an error naming the cell."""
    a = np.asarray(table[name])
    if a.dtype.kind in "iufb":
        x = a.astype(np.float64)
    else:
        text = _text(a)
        blank = np.isin(text, list(missing))
        text = np.where(blank, "nan", text)
        cells = text.tolist()
        joined = "\n".join(cells)                       # float() also reads '1_000' and non-ASCII digits
        try:
            if "_" in joined or not joined.isascii():
                raise ValueError(joined)
            x = text.astype(np.float64)
        except ValueError:
            for i, v in enumerate(cells):
                if not E.NUMBER.match(v.strip()):
                    how = f"; missing values are written as one of {', '.join(map(repr, missing))}" if missing \
                        else ""
                    raise DataError(f"{table.where(i, name)}: {v!r} is not a number (a numeric column{how})") \
                        from None
            raise
        x[blank] = np.nan
    inf = np.flatnonzero(np.isinf(x))
    if inf.size:
        raise DataError(f"{table.where(int(inf[0]), name)}: {x[inf[0]]} is not a finite number")
    return x


@dataclass
class Field:
    """One column as a range of feature ids: ``offset`` is its OOV id, then its values."""

    name: str
    kind: str                                 # categorical, numeric, buckets or multi
    offset: int = 0
    vocab: np.ndarray = None                  # categorical, multi: the values, in id order after the OOV id
    edges: np.ndarray = None                  # buckets: the inner bucket edges
    mean: float = 0.0                         # numeric
    sd: float = 1.0
    sep: str = "|"                            # multi
    width: int = 1                            # entries a row uses (multi: the most values in a training cell)
    counts: dict = dc_field(default_factory=dict)

    @property
    def size(self):
        """Number of feature ids of this field."""
        if self.kind == "numeric":
            return 1
        if self.kind == "buckets":
            return 2 + self.edges.size        # OOV (missing) + edges.size + 1 buckets
        return 1 + self.vocab.size


class Encoder:
    """Columns -> feature ids and values, learned from training rows.

    Parameters
    ----------
    categorical : column names, one feature per value (default: every column not named elsewhere,
        except ``label`` and ``ignore``)
    numeric : column names, standardised; or a mapping name -> number of quantile buckets
        (0 or None: standardised)
    multi_valued : mapping column name -> separator (e.g. {"genres": "|"})
    label : the label column (None: no label)
    ignore : columns to leave out
    min_count : values seen fewer times in training go to the field's OOV feature
    missing : cell texts that mean "no value" in numeric columns
    """

    def __init__(self, categorical=None, numeric=(), multi_valued=None, label=None, ignore=(), min_count=1,
                 missing=MISSING):
        self.categorical = None if categorical is None else [str(c) for c in categorical]
        self.numeric = dict(numeric) if hasattr(numeric, "items") else {str(c): 0 for c in numeric}
        for c, b in self.numeric.items():
            self.numeric[c] = 0 if b in (None, 0) else E.integer(b, f"buckets of {c!r}", 2)
        self.multi_valued = dict(multi_valued or {})
        for c, sep in self.multi_valued.items():
            if not isinstance(sep, str) or len(sep) == 0:
                raise OptionError(f"multi-valued column {c!r} needs a separator such as '|', got {sep!r}")
        self.label, self.ignore = label, [str(c) for c in ignore]
        self.min_count = E.integer(min_count, "min_count", 1)
        self.missing = tuple(missing)
        named = ([] if self.categorical is None else self.categorical) + list(self.numeric) + list(self.multi_valued)
        dupes = [c for c, k in collections.Counter(named).items() if k > 1]
        if dupes:
            raise OptionError(f"column {dupes[0]!r} is given two kinds")
        if label is not None and label in named:
            raise OptionError(f"the label column {label!r} cannot also be a feature")
        both = [c for c in self.ignore if c in named or c == label]
        if both:
            raise OptionError(f"column {both[0]!r} is both ignored and " +
                              ("the label" if both[0] == label else "given a kind"))
        self.fields = None

    # ---------------------------------------------------------------- fitting
    def _columns(self, table):
        names = set(self.numeric) | set(self.multi_valued) | set(self.ignore) | ({self.label} - {None})
        cats = self.categorical if self.categorical is not None else \
            [c for c in table.names if c not in names]
        order = [c for c in table.names if c in set(cats) | set(self.numeric) | set(self.multi_valued)]
        missing = [c for c in list(cats) + list(self.numeric) + list(self.multi_valued) + self.ignore
                   if c not in table]
        if missing:
            raise OptionError(f"{table.source}: no column {missing[0]!r}; the columns are {', '.join(table.names)}")
        if not order:
            raise OptionError(f"{table.source}: no feature columns (all are the label or ignored)")
        kinds = {c: "categorical" for c in cats}
        kinds.update({c: "buckets" if b else "numeric" for c, b in self.numeric.items()})
        kinds.update({c: "multi" for c in self.multi_valued})
        return [(c, kinds[c]) for c in order]

    def fit(self, data):
        """Learn vocabularies, OOV ids, means and deviations, bucket edges from training rows."""
        table = as_table(data)
        if len(table) == 0:
            raise DataError(f"{table.source}: no rows to fit an encoder on")
        fields, offset = [], 0
        for name, kind in self._columns(table):
            f = Field(name, kind, offset)
            if kind in ("categorical", "multi"):
                codes, texts = table.codes(name)
                per_text = np.bincount(codes, minlength=texts.size)                # rows holding each text
                if kind == "multi":
                    f.sep = self.multi_valued[name]
                    cells = [_cell_values(t, f.sep) for t in texts.tolist()]
                    f.width = max(len(c) for c, k in zip(cells, per_text) if k)
                    counts = collections.Counter()
                    for c, k in zip(cells, per_text.tolist()):
                        for v in c:
                            counts[v] += k
                else:
                    counts = dict(zip(texts.tolist(), per_text.tolist()))
                # a table taken from a larger one shares its list of texts: keep only those these rows hold
                counts = {v: c for v, c in counts.items() if c > 0}
                kept = [(v, c) for v, c in counts.items() if c >= self.min_count]
                kept.sort(key=lambda vc: (-vc[1], vc[0]))                      # most frequent first
                f.vocab = np.array([v for v, _ in kept], dtype=str) if kept else np.zeros(0, dtype=str)
                f.counts = {"values": len(counts), "rare": len(counts) - len(kept)}
            else:
                x = _numbers(table, name, self.missing)
                seen = x[~np.isnan(x)]
                if seen.size == 0:
                    raise DataError(f"{table.source}: numeric column {name!r} has no values in the training rows")
                if kind == "numeric":
                    with np.errstate(over="ignore", invalid="ignore"):
                        f.mean, f.sd = float(seen.mean()), float(seen.std())
                    if not (np.isfinite(f.mean) and np.isfinite(f.sd)):
                        big = float(np.abs(seen).max())
                        raise DataError(f"{table.source}: numeric column {name!r} holds values too large to "
                                        f"standardise (up to {big:g}); rescale them, or use buckets ({name}:8)")
                    f.sd = f.sd if f.sd > 0 else 1.0
                else:
                    # no more buckets than distinct values (quantiles of a few values differ only by
                    # rounding, and would each make a feature of their own)
                    n_buckets = min(self.numeric[name], np.unique(seen).size)
                    q = np.linspace(0, 1, n_buckets + 1)[1:-1]
                    f.edges = np.unique(np.quantile(seen, q))
                f.counts = {"missing": int(np.isnan(x).sum())}
            offset += f.size
            fields.append(f)
        self.fields = fields
        return self

    @property
    def n_features(self):
        self._need_fit()
        return sum(f.size for f in self.fields)

    def _need_fit(self):
        if self.fields is None:
            raise E.InputError("the encoder is not fitted yet: call fit(training rows) first")

    # ---------------------------------------------------------------- transform
    def transform(self, data, unseen="oov"):
        """Rows -> ``(idx, val, y, n_unseen)``: padded (N, F) int64 ids and float64 values, the
        labels (None without a label column) and how many cells held a value unseen in training.

        ``unseen``: 'oov' (the field's OOV feature), 'ignore' (x = 0, as if absent) or
        'error' (a ``DataError`` naming the file, line and column).
        """
        self._need_fit()
        table = as_table(data)
        E.choice(unseen, "unseen", CSV_UNSEEN)
        if len(table) == 0:
            raise DataError(f"{table.source}: no rows")
        n = len(table)
        blocks_i, blocks_v, n_unseen = [], [], 0
        for f in self.fields:
            if f.name not in table:
                raise DataError(f"{table.source}: no column {f.name!r} (the model was trained with columns "
                                f"{', '.join(g.name for g in self.fields)})")
            if f.kind == "numeric":
                x = _numbers(table, f.name, self.missing)
                blocks_i.append(np.full((n, 1), f.offset, dtype=np.int64))
                blocks_v.append(np.nan_to_num((x - f.mean) / f.sd, nan=0.0)[:, None])
                continue
            if f.kind == "buckets":
                x = _numbers(table, f.name, self.missing)
                ids = np.where(np.isnan(x), f.offset, f.offset + 1 + np.searchsorted(f.edges, x, side="right"))
                blocks_i.append(ids[:, None].astype(np.int64))
                blocks_v.append(np.ones((n, 1)))
                continue
            # encode the distinct texts of the column (few), then gather them for every row
            lookup = {v: i for i, v in enumerate(f.vocab.tolist(), start=f.offset + 1)}
            codes, texts = table.codes(f.name)
            if f.kind == "categorical":
                tid = np.fromiter(map(lookup.get, texts.tolist(), repeat(-1)), dtype=np.int64, count=texts.size)
                ids, val = tid[codes][:, None], np.ones((n, 1))
            else:
                cells = [_cell_values(t, f.sep) for t in texts.tolist()]
                width = max(f.width, max(len(c) for c in cells))
                tid = np.full((texts.size, width), -2, dtype=np.int64)          # -2: no entry
                tval = np.zeros((texts.size, width))
                for j, c in enumerate(cells):
                    tid[j, :len(c)] = [lookup.get(v, -1) for v in c]
                    tval[j, :len(c)] = 1.0 / len(c)
                ids, val = tid[codes], tval[codes]
            ids, val, k = self._unseen(table, f, ids, val, unseen, texts, codes)
            if f.kind == "multi":
                ids[ids == -2] = 0                                             # padding: id 0, x = 0
            n_unseen += k
            blocks_i.append(ids)
            blocks_v.append(val)
        idx, val = np.concatenate(blocks_i, axis=1), np.concatenate(blocks_v, axis=1)
        y = None
        if self.label is not None and self.label in table:
            y = _numbers(table, self.label, ())
            if np.isnan(y).any():
                i = int(np.flatnonzero(np.isnan(y))[0])
                raise DataError(f"{table.where(i, self.label)}: the label is missing")
        return idx, val, y, n_unseen

    def _unseen(self, table, f, ids, val, unseen, texts, codes):
        bad = ids == -1
        k = int(bad.sum())
        if not k:
            return ids, val, 0
        if unseen == "error":
            r, c = (int(i) for i in np.argwhere(bad)[0])
            cell = texts[codes[r]]
            v = cell if f.kind == "categorical" else _cell_values(cell, f.sep)[c]
            raise DataError(f"{table.where(r, f.name)}: value {v!r} was not seen in training "
                            f"({k} such cells; --unseen oov or ignore accepts them)")
        if unseen == "oov":
            ids = np.where(bad, f.offset, ids)
        else:
            ids, val = np.where(bad, 0, ids), np.where(bad, 0.0, val)
        return ids, val, k

    def fit_transform(self, data, unseen="oov"):
        return self.fit(data).transform(data, unseen)

    # ---------------------------------------------------------------- saving
    def to_arrays(self, prefix="encoder"):
        """Arrays (for ``checkpoint.save``'s ``extra``): the spec and statistics as a JSON string,
        and one string array per vocabulary, one float array per set of bucket edges."""
        self._need_fit()
        spec = {"label": self.label, "min_count": self.min_count, "missing": list(self.missing),
                "fields": [{"name": f.name, "kind": f.kind, "offset": f.offset, "mean": f.mean, "sd": f.sd,
                            "sep": f.sep, "width": f.width, "counts": f.counts} for f in self.fields]}
        out = {prefix: np.array(json.dumps(spec))}
        for i, f in enumerate(self.fields):
            if f.vocab is not None:
                out[f"{prefix}.vocab{i}"] = f.vocab
            if f.edges is not None:
                out[f"{prefix}.edges{i}"] = f.edges
        return out

    @classmethod
    def from_arrays(cls, arrays, prefix="encoder"):
        """The encoder saved by ``to_arrays``; a ``CheckpointError`` if it is damaged."""
        try:
            spec = json.loads(str(arrays[prefix]))
            enc = cls(categorical=[], label=spec["label"], min_count=spec["min_count"], missing=spec["missing"])
            enc.fields, offset = [], 0
            for i, d in enumerate(spec["fields"]):
                f = Field(d["name"], E.choice(d["kind"], "kind", KINDS), int(d["offset"]), mean=float(d["mean"]),
                          sd=float(d["sd"]), sep=d["sep"], width=int(d["width"]), counts=d.get("counts", {}))
                if f.kind in ("categorical", "multi"):
                    f.vocab = np.asarray(arrays[f"{prefix}.vocab{i}"], dtype=str)
                if f.kind == "buckets":
                    f.edges = np.asarray(arrays[f"{prefix}.edges{i}"], dtype=np.float64)
                if f.offset != offset or not (np.isfinite(f.mean) and np.isfinite(f.sd) and f.sd > 0):
                    raise ValueError(f"field {f.name!r} is inconsistent")
                offset += f.size
                enc.fields.append(f)
        except (KeyError, ValueError, TypeError, json.JSONDecodeError) as e:
            raise E.CheckpointError(f"the saved feature encoder is damaged ({e})") from None
        return enc

    # ---------------------------------------------------------------- display
    def __str__(self):
        if self.fields is None:
            return "Encoder (not fitted)"
        lines = [f"{'field':<16}{'kind':<13}{'features':>9}  {'ids':<15}{'OOV id':>7}  notes"]
        for f in self.fields:
            ids = f"{f.offset}-{f.offset + f.size - 1}" if f.size > 1 else f"{f.offset}"
            oov = "-" if f.kind == "numeric" else str(f.offset)
            if f.kind == "numeric":
                note = f"x = (v - {f.mean:.4g}) / {f.sd:.4g}; missing {f.counts.get('missing', 0)}"
            elif f.kind == "buckets":
                note = f"{f.edges.size + 1} quantile buckets; missing -> OOV ({f.counts.get('missing', 0)})"
            else:
                note = f"{f.counts.get('values', f.vocab.size)} values, {f.counts.get('rare', 0)} rare -> OOV"
                if f.kind == "multi":
                    note += f"; separator {f.sep!r}, x = 1/m, up to {f.width} a row"
            lines.append(f"{f.name:<16}{f.kind:<13}{f.size:>9,}  {ids:<15}{oov:>7}  {note}")
        lines.append(f"{'total':<29}{self.n_features:>9,}" + (f"   label: {self.label}" if self.label else ""))
        return "\n".join(lines)

    __repr__ = __str__


def _cell_values(cell, sep):
    """The distinct values of a multi-valued cell, in order; an empty cell is one empty value."""
    if not cell:
        return [""]
    return list(dict.fromkeys(v.strip() for v in cell.split(sep)))


# ====================================================================== whole splits
def _numeric_cell(enc, table, row, dtype):
    """'file, line N, column C' of the numeric cell of ``row`` whose standardised value overflows ``dtype``
    (only a standardised number can: every other x is at most 1)."""
    big = np.finfo(dtype).max
    for f in enc.fields:
        if f.kind == "numeric" and abs((_numbers(table.take(np.array([row])), f.name, enc.missing)[0] - f.mean)
                                       / f.sd) > big:
            return table.where(row, f.name)
    return table.where(row)  # pragma: no cover - only numeric fields can overflow


def _dataset(enc, table, name, loss, dtype, unseen="oov", need_y=True):
    idx, val, y, n_unseen = enc.transform(table, unseen)
    if y is None:
        if need_y:
            raise DataError(f"{table.source}: no label column {enc.label!r}")
        y = np.zeros(idx.shape[0])
    note = ""
    if loss == "log" and need_y:
        y, note = binary_labels(y, table.source, table.lines)
    fits(val, dtype, "the standardised value", lambda i: _numeric_cell(enc, table, i // idx.shape[1], dtype))
    ds = Dataset(idx, val.astype(dtype), y.astype(dtype), enc.n_features, name)
    ds.label_map = note
    return ds, n_unseen


def load_csv_split(path, label, categorical=None, numeric=(), multi_valued=None, ignore=(), min_count=1,
                   missing=MISSING, delimiter=None, negatives=0, user=None, item=None, split=(0.7, 0.2, 0.1),
                   valid_path=None, test_path=None, loss="square", seed=0, dtype=np.float32):
    """A ``Split`` and its fitted ``Encoder`` from CSV files.

    With ``negatives`` n > 0 every row of the files is a positive: n negatives per row are
    added first (``add_negatives``, columns ``user`` and ``item``; label 1 for positives,
    -1 for negatives), as the NFM authors built Frappe. Then the rows are split
    (``split`` fractions, seeded) unless ``valid_path`` and ``test_path`` give the
    validation and test rows. The encoder is fitted on the training rows only; values
    that first appear in validation or test go to their field's OOV feature.
    Returns ``(split, encoder, notes)``: ``notes`` are lines worth printing (unseen counts,
    label mapping).
    """
    if (valid_path is None) != (test_path is None):
        raise OptionError("give both --valid-csv and --test-csv, or neither (then --split divides one file)")
    tables = [read_csv(p, delimiter) for p in [path] + ([valid_path, test_path] if valid_path else [])]
    if negatives:
        if user is None or item is None:
            raise OptionError("--negatives needs --user-col and --item-col")
        for t in tables:
            if label in t:
                raise OptionError(f"{t.source} already has a column {label!r}: with --negatives every row is a "
                                  "positive and the label column is made (1 positive, -1 negative)")
        if len(tables) == 1:
            tables = [add_negatives(tables[0], user, item, negatives, label, seed=seed)]
        else:                                  # "never used" means anywhere in the three files
            whole = _concat(tables)
            both = add_negatives(whole, user, item, negatives, label, seed=seed)
            part = np.concatenate([np.full(len(t), i) for i, t in enumerate(tables)])
            origin = np.concatenate([part, np.repeat(part, negatives)])
            tables = [both.take(np.flatnonzero(origin == i)) for i in range(3)]
    elif label not in tables[0]:
        raise OptionError(f"{tables[0].source}: no label column {label!r}; the columns are "
                          f"{', '.join(tables[0].names)}")
    if len(tables) == 1:
        tables = [tables[0].take(rows) for rows in split_rows(len(tables[0]), split, seed)]
    enc = Encoder(categorical, numeric, multi_valued, label, ignore, min_count, missing).fit(tables[0])
    parts, notes = [], []
    for t, role in zip(tables, ("train", "valid", "test")):
        ds, n_unseen = _dataset(enc, t, f"{Path(path).stem}.{role}", loss, dtype)
        if n_unseen and role != "train":
            notes.append(f"{role}: {n_unseen} cells hold values not seen in training (their field's OOV feature)")
        if ds.label_map and ds.label_map not in notes:
            notes.append(ds.label_map)
        parts.append(ds)
    return Split(*parts), enc, notes


def _concat(tables):
    names = tables[0].names
    for t in tables[1:]:
        if t.names != names:
            raise DataError(f"{t.source}: columns {t.names} differ from {tables[0].source}'s {names}")
    lines = None if any(t.lines is None for t in tables) else np.concatenate([t.lines for t in tables])
    return Table({n: np.concatenate([t[n] for t in tables]) for n in names}, lines, tables[0].source)


def read_csv_dataset(path, encoder, loss="square", unseen="oov", need_y=True, delimiter=None, dtype=np.float32):
    """A CSV file as a ``Dataset`` in a fitted encoder's feature space (for evaluate and predict;
    the label column may be absent when ``need_y`` is false). Returns ``(dataset, n_unseen)``."""
    return _dataset(encoder, read_csv(path, delimiter), Path(path).name, loss, dtype, unseen, need_y)
