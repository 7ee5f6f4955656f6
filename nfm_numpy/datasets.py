"""Datasets: the libFM reader, Frappe and MovieLens-tag by name, local splits, and
the built-in synthetic dataset.

``load(name, ...)`` returns a ``Split(train, valid, test)`` of ``Dataset``s that
share one id space. Frappe and MovieLens-tag may not be redistributed: they are
downloaded from the original NFM repository into a cache folder (or read from
a folder you name) and never shipped with this package.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from .data import Dataset, Split, binary_labels, fits  # noqa: F401  (Split, fits: re-exported)
from .errors import DataError, DataFileNotFound, OptionError
from .libfm import LibFMError, read_libfm, to_model_ids  # noqa: F401  (re-exported: datasets.read_libfm)


# ------------------------------------------------------------------ splits
def map_ids(*id_arrays):
    """Dense ids 0..n-1 in order of first appearance, scanning the arrays in the
    order given (the original's LoadData.map_features scans train, test,
    validation). Padding (-1) maps to 0 and stays padding (its value is 0).
    Returns the mapped arrays and ``raw_ids`` (n,): the raw id of each dense id."""
    flat = np.concatenate([a[a >= 0] for a in id_arrays])                 # in scan order
    top = int(flat.max(initial=-1)) + 1
    small = top <= 4 * flat.size + 1024                                   # ids fit a table of size top
    if small:
        # ids are small integers: one table of first positions, O(n), no sort of all ids
        first = np.full(top, flat.size, dtype=np.int64)
        np.minimum.at(first, flat, np.arange(flat.size))
        uniq = np.flatnonzero(first < flat.size)                          # sorted raw ids present
        first = first[uniq]
    else:
        uniq, first = np.unique(flat, return_index=True)
    order = np.argsort(first, kind="stable")                              # uniq by first appearance
    rank = np.empty(uniq.size, dtype=np.int64)
    rank[order] = np.arange(uniq.size)
    if small:
        lookup = np.zeros(top, dtype=np.int64)                            # raw id -> dense id
        lookup[uniq] = rank

        def dense(raw):
            return lookup[raw]
    else:
        def dense(raw):
            return rank[np.searchsorted(uniq, raw)]
    out = []
    for a in id_arrays:
        m = np.zeros(a.shape, dtype=np.int64)
        real = a >= 0
        m[real] = dense(a[real])
        out.append(m)
    return out, uniq[order]


def load_libfm_split(train_path, valid_path, test_path, loss="square", name="data", dtype=np.float32):
    """Read three libFM files into a ``Split`` with one shared id space, values and labels in
    ``dtype`` (parsed as float64 first: one too large for ``dtype`` is an error naming its file,
    line and token, never an infinity).

    For ``loss='log'`` the labels must be 0/1 or -1/1 (-1 -> 0); any other label is an
    error naming its file and line. Each dataset's ``label_map`` says what was mapped."""
    dtype = _float_dtype(dtype)
    parts = {role: (p, read_libfm(p, dtype)) for role, p in (("train", train_path), ("test", test_path),
                                                              ("valid", valid_path))}
    if np.all(parts["train"][1].ids < 0):
        raise DataError(f"{train_path}: no row has any feature (every line is a label alone): "
                        "there is nothing to learn from")
    (tr, te, va), raw_ids = map_ids(*(f.ids for _, f in parts.values()))
    mapped = {"train": tr, "test": te, "valid": va}
    out = {}
    for role in ("train", "valid", "test"):
        path, f = parts[role]
        y, note = labels_for(f.y, loss, path, f.lines)
        out[role] = Dataset(mapped[role], f.val.astype(dtype), y.astype(dtype), raw_ids.size, f"{name}.{role}",
                            raw_ids)
        out[role].label_map = note
    return Split(out["train"], out["valid"], out["test"])


def _float_dtype(dtype):
    """``dtype`` as a NumPy floating dtype (float32 or float64); anything else is an ``OptionError``."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise OptionError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


def labels_for(y, loss, where="labels", lines=None):
    """Labels as a model with ``loss`` takes them: as they are for 'square'; 0/1 for 'log'
    ({-1, 1} maps -1 -> 0). Returns ``(labels, note)``, ``note`` saying what was mapped."""
    if loss != "log":
        return y, ""
    return binary_labels(y, where, lines)


LIBFM_UNSEEN = ("ignore", "error")


def read_with_ids(path, raw_ids, loss="square", dtype=np.float32, unseen="error", need_y=True):
    """A libFM file in the id space of a trained model (``raw_ids``: the raw id of each
    dense id, saved in checkpoints), values and labels in ``dtype`` (the model's: parsed as
    float64 first, one too large for ``dtype`` is an error naming its line and token).

    An id the model never saw is an error naming its line (``unseen='error'``),
    or is dropped from its row (``unseen='ignore'``: x = 0, as if absent).
    ``need_y=False`` (prediction) reads no labels: they are neither checked nor
    mapped for the loss, and the dataset's labels are 0.
    Returns ``(dataset, n_ignored)``, the number of entries dropped.
    """
    if unseen not in LIBFM_UNSEEN:
        raise OptionError(f"unseen must be one of {', '.join(LIBFM_UNSEEN)}; got {unseen!r}")
    dtype = _float_dtype(dtype)
    hint = (f"; rescale the values (the model is {dtype.name}: a model trained with --dtype float64 holds it)"
            if dtype != np.float64 else "; rescale the values")
    f = read_libfm(path, dtype, need_y, hint)
    dense, known = to_model_ids(f.ids, np.asarray(raw_ids))
    val = f.val.copy()
    n_unknown = int((~known).sum())
    if n_unknown and unseen == "error":
        r, c = np.argwhere(~known)[0]
        raise LibFMError(f"{path}, line {f.lines[r]}: feature id {f.ids[r, c]} is not one the model was trained "
                         f"with ({n_unknown} such entries in the file; --unseen ignore drops them)")
    val[~known] = 0.0
    real = int((f.ids >= 0).sum())
    if real and n_unknown == real:
        raise LibFMError(f"{path}: none of its {real} feature ids was seen in training: is this the file (and the "
                         "model) you meant?")
    y, note = labels_for(f.y, loss, path, f.lines) if need_y else (f.y, "")
    ds = Dataset(dense, val.astype(dtype), y.astype(dtype), raw_ids.size, str(path), raw_ids)
    ds.label_map = note
    return ds, n_unknown


def find_split_files(directory, name=None):
    """``NAME.train.libfm``, ``NAME.validation.libfm``, ``NAME.test.libfm`` in ``directory``."""
    d = Path(directory)
    if not d.is_dir():
        why = "not a folder" if d.exists() else "No such file or directory"
        raise DataFileNotFound(f"{d}: {why}, so expected one *.train.libfm file, found 0 (a split folder holds "
                               "NAME.train.libfm, NAME.validation.libfm and NAME.test.libfm)")
    if name is None:
        found = sorted(d.glob("*.train.libfm"))
        if len(found) != 1:
            names = f" ({', '.join(p.name for p in found)}): give the name of one" if found else ""
            raise DataFileNotFound(f"{d}: expected one *.train.libfm file, found {len(found)}{names}")
        name = found[0].name[: -len(".train.libfm")]
    paths = [d / f"{name}.{s}.libfm" for s in ("train", "validation", "test")]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise DataFileNotFound(f"missing: {', '.join(missing)}")
    return name, paths


# ------------------------------------------------------------------ download
REPO_URL = "https://raw.githubusercontent.com/hexiangnan/neural_factorization_machine/master/data"
BLOB_IDS = {  # git blob ids of the files in the original repository
    "frappe": {"train": "176b2aaf1f63dd13d3e66a5c17c8ec8186e91893",
               "validation": "50b9c04bcf58dcb46d0b0070d3d6f88b45c9baab",
               "test": "d7cdd03f0e2415c97618de617f20bedd50e8fce7"},
    "ml-tag": {"train": "45c9017ca7cb14b3df2b7378f3a935577a8a102f",
               "validation": "0950186b80ca3158f40c3734e28d236785ad77ac",
               "test": "aef8f29a1a396d6ea34e692d26eec9bba2f7ae8b"},
}


def cache_dir():
    """$NFM_NUMPY_DATA, else $XDG_CACHE_HOME/nfm_numpy, else ~/.cache/nfm_numpy."""
    if os.environ.get("NFM_NUMPY_DATA"):
        return Path(os.environ["NFM_NUMPY_DATA"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nfm_numpy"


def git_blob_id(path):
    """The id git gives a file's contents: sha1(b'blob <size>\\0' + contents)."""
    h = hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ChecksumError(DataError):
    """A downloaded or cached file is not the original (its git blob id differs)."""


class IncompleteTransfer(OSError):
    """The connection closed before the whole file arrived."""


def download_file(url, dest, blob_id, progress=True, timeout=60):
    """Fetch ``url`` into ``dest``: written to a temporary file beside it and moved into
    place only once its git blob id matches; nothing is left behind on any failure."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            bar = _progress(total, dest.name, progress)
            got = 0
            while True:
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                out.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
            bar.close()
        if total is not None and got != total:
            raise IncompleteTransfer(f"{url}: transfer broke off after {got} of {total} bytes")
        actual = git_blob_id(tmp)
        if actual != blob_id:
            raise ChecksumError(f"{url}: checksum mismatch (git blob {actual}, expected {blob_id}); "
                                "the file was not kept")
        os.replace(tmp, dest)
    except http.client.HTTPException as e:     # e.g. IncompleteRead: the connection closed early
        os.remove(tmp)
        raise IncompleteTransfer(f"{url}: transfer broke off ({e!r})") from e
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return dest


def _progress(total, desc, enabled):
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not enabled, leave=False)


def fetch(name, directory=None, base_url=None, progress=True):
    """The three files of ``name`` ('frappe' or 'ml-tag') in the cache, downloaded if absent.

    Files already present are verified too. ``base_url`` replaces the original
    repository's address (tests serve files from 127.0.0.1)."""
    if name not in BLOB_IDS:
        raise OptionError(f"unknown dataset {name!r}: expected one of {', '.join(BLOB_IDS)}")
    d = Path(directory) if directory else cache_dir() / name
    # base: the folder (URL) that holds NAME.train.libfm etc.
    base = (base_url or os.environ.get("NFM_NUMPY_BASE_URL") or f"{REPO_URL}/{name}").rstrip("/")
    if not base.startswith(("http://", "https://", "file://")):
        origin = "base_url" if base_url else "$NFM_NUMPY_BASE_URL"
        raise OptionError(f"{origin} {base!r} is not a URL (http://, https:// or file://)")
    paths = []
    for split, blob in BLOB_IDS[name].items():
        dest = d / f"{name}.{split}.libfm"
        if dest.exists() and git_blob_id(dest) != blob:
            raise ChecksumError(f"{dest} is not the original file (its git blob id differs); remove it, or "
                                f"pass its folder as --data-dir to use it as a local split")
        if not dest.exists():
            url = f"{base}/{name}.{split}.libfm"
            try:
                download_file(url, dest, blob, progress)
            except OSError as e:
                raise OSError(f"could not download {url} ({e}). Offline? Put {name}.train.libfm, "
                              f"{name}.validation.libfm and {name}.test.libfm from "
                              f"github.com/hexiangnan/neural_factorization_machine (data/{name}/) in {d}, "
                              f"or any split in a folder given as --data-dir") from e
        paths.append(dest)
    return d


# ------------------------------------------------------------------ synthetic
FRAPPE_FIELDS = (957, 4082, 7, 7, 2, 3, 2, 9, 80, 233)   # Frappe's 10 fields, 5,382 values
# Frappe's fields with the user, item, country and city fields cut to about a fifth, so that
# the default 80,000 rows see every value often enough to learn it (1,170 features).
SYNTHETIC_FIELDS = (200, 800, 7, 7, 2, 3, 2, 9, 40, 100)


def synthetic(n_train=80_000, n_valid=10_000, n_test=10_000, fields=SYNTHETIC_FIELDS, k_teacher=8,
              noise=0.1, higher_order=0.5, loss="square", seed=0, dtype=np.float32, return_teacher=False):
    r"""A built-in dataset, no download: categorical fields and a hidden teacher.

    Each row has one value per field (one-hot), drawn with a popularity skew
    (p ~ 1 / rank^0.8, as users and items are). The label is

        y = lin(x) + pair(x) + g(x) + noise,  noise ~ N(0, noise^2)

    each of the three parts centred and scaled (below): lin from sum_i w_i x_i,
    the linear part; pair from sum_{i<j} <v_i, v_j> x_i x_j, the teacher's
    pairwise term (embeddings of size ``k_teacher``); and g, a higher-order term:
    a fixed random two-layer tanh network on the teacher's Bi-Interaction vector
    f_BI (the k_teacher coordinates whose sum is the pairwise term), which NFM
    can learn in part.

    What is guaranteed, by construction, over the n = n_train + n_valid + n_test
    rows drawn (all three splits together):

    - the three parts are scaled to variances 0.2, 0.3 and 0.5 x ``higher_order``
      and are mutually uncorrelated, so their variances add up: the noiseless
      label has variance 0.5 + 0.5 x ``higher_order`` (0.75 by default), and the
      label that plus noise^2. (w is moved along one direction so that lin is
      uncorrelated with pair; lin is still a sum of per-feature weights.)
    - g is the least-squares residual of the network's output against
      [1, lin, f_BI,1 ... f_BI,k_teacher]: uncorrelated with the linear part, with
      the pairwise part, and with every pairwise term sum_c a_c f_BI,c that an
      FM with the teacher's embeddings rescaled per coordinate would compute. So
      no part of g is a copy of the teacher's pairwise term, and an FM fitted to
      the label has no reason to inflate or shrink the teacher's pair weights
      as a whole.

    g is not orthogonal to *every* function an FM can represent (that space,
    all per-feature and per-pair-of-values effects, has more dimensions than
    there are rows): measured on seed 0 with the defaults, a least-squares fit of
    per-feature weights explains 4.6% of g's variance (1.1% for pure noise on the
    same rows: chance fitting), and an FM with k = 64 trained on g alone explains
    12-13% of it on the test rows (with or without dropout). Most of g is out of
    an FM's reach. The best RMSE any model can reach is ``noise`` (the noise
    floor). For ``loss='log'`` labels are drawn from
    Bernoulli(sigmoid(3 (lin + pair + g))) as 0/1.

    Deterministic for a seed. Returns a ``Split``; with ``return_teacher``, also a dict
    with the teacher's ``V`` (n_features, k_teacher), ``w`` (n_features,), ``fields``,
    ``pair_scale``: the teacher's pair weight of features i and j in the label is
    pair_scale <v_i, v_j>, and ``parts``: the scaled ``"linear"``, ``"pairwise"`` and
    ``"higher_order"`` parts of every row (float64, (n,) each, rows in the order
    train, valid, test), whose sum plus the noise is the label.
    """
    rng = np.random.default_rng(seed)
    fields = tuple(int(c) for c in fields)
    offsets = np.concatenate(([0], np.cumsum(fields)[:-1]))
    n_features = int(sum(fields))
    n = n_train + n_valid + n_test
    cols = []
    for c in fields:
        p = 1.0 / np.arange(1, c + 1) ** 0.8
        cols.append(rng.choice(c, size=n, p=p / p.sum()))
    idx = np.stack(cols, axis=1) + offsets                                 # (n, F)
    # teacher
    w = rng.normal(0, 1, n_features)
    V = rng.normal(0, 1, (n_features, k_teacher))
    W1 = rng.normal(0, 1 / np.sqrt(k_teacher), (k_teacher, 16))
    u = rng.normal(0, 1 / 4, 16)
    E = V[idx]                                                             # (n, F, k)
    bi = 0.5 * (E.sum(1) ** 2 - (E ** 2).sum(1))                           # (n, k)  f_BI of each row
    pair = bi.sum(1)                                                       # (n,)
    # cov(lin, pair) = w . a / n with a = X^T (pair - mean): remove w's component along a
    a = np.bincount(idx.ravel(), weights=np.repeat(pair - pair.mean(), idx.shape[1]), minlength=n_features)
    w = w - (w @ a) / (a @ a) * a                                          # (n_features,)
    lin = w[idx].sum(1)                                                    # (n,)
    bi_std = (bi - bi.mean(0)) / bi.std(0)                                 # (n, k)
    high = np.tanh(bi_std @ W1) @ u + 0.5 * np.tanh(bi_std[:, 0] * bi_std[:, 1])   # (n,)
    A = np.column_stack([np.ones(n), lin, bi_std])                         # (n, k + 2)
    high = high - A @ np.linalg.lstsq(A, high, rcond=None)[0]              # the residual: orthogonal to A

    def unit(a):
        return (a - a.mean()) / a.std()

    parts = {"linear": np.sqrt(0.2) * unit(lin), "pairwise": np.sqrt(0.3) * unit(pair),
             "higher_order": np.sqrt(0.5 * higher_order) * unit(high) if higher_order else np.zeros(n)}
    signal = parts["linear"] + parts["pairwise"] + parts["higher_order"]
    if loss == "log":
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-3 * signal))).astype(np.float64)
    else:
        y = signal + rng.normal(0, noise, n)
    val = np.ones(idx.shape)
    cuts = [0, n_train, n_train + n_valid, n]
    split = Split(*(Dataset(idx[a:b], val[a:b].astype(dtype), y[a:b].astype(dtype), n_features, f"synthetic.{r}",
                            np.arange(n_features))
                    for r, a, b in zip(("train", "valid", "test"), cuts[:-1], cuts[1:])))
    if return_teacher:
        return split, {"V": V, "w": w, "pair_scale": float(np.sqrt(0.3) / pair.std()), "fields": fields,
                       "parts": parts}
    return split


# ------------------------------------------------------------------ by name
def load(name="synthetic", data_dir=None, loss="square", seed=0, download=True, progress=True, dtype=np.float32,
         **synthetic_kw):
    """A ``Split`` by name: 'synthetic', 'frappe' or 'ml-tag'; or ``data_dir``, a folder
    holding NAME.train.libfm, NAME.validation.libfm and NAME.test.libfm. Values and labels
    are in ``dtype`` (the model's: libFM numbers are parsed as float64, then checked to fit)."""
    dtype = _float_dtype(dtype)
    if data_dir is not None:
        stem, (tr, va, te) = find_split_files(data_dir, None if name in ("synthetic", None) else name)
        return load_libfm_split(tr, va, te, loss, stem, dtype)
    if name == "synthetic":
        return synthetic(loss=loss, seed=seed, dtype=dtype, **synthetic_kw)
    if name not in BLOB_IDS:
        raise OptionError(f"unknown dataset {name!r}: expected synthetic, frappe or ml-tag (or --data-dir)")
    d = fetch(name, progress=progress) if download else cache_dir() / name
    _, (tr, va, te) = find_split_files(d, name)
    return load_libfm_split(tr, va, te, loss, name, dtype)
