"""Sparse input in the padded (idx, val) form, and datasets of such rows.

A batch is ``Batch(idx, val, y)``: ``idx`` (B, F) int feature ids, ``val``
(B, F) float feature values x_i, ``y`` (B,) labels. Rows with fewer than F
nonzeros are padded with id 0 and value 0 (a padding entry adds nothing to a
prediction or a gradient). One-hot rows have val = 1; multi-hot rows repeat a
field with several ids; real-valued features carry their value in ``val``.
An optional ``weight`` (B,) scales each row's term of the loss.

``make_batch`` and ``Dataset`` validate their arrays (shapes, dtypes, ids in
range, finite values); a model validates every batch a user hands it again
against its own table size (cheap next to the model's work), while the
training loop, which slices a dataset validated once, does not.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import backend as B
from .errors import DataError, OptionTypeError, integer


class Batch(NamedTuple):
    idx: Any                 # (B, F) int
    val: Any                 # (B, F) float
    y: Any = None            # (B,) float, or None for prediction
    weight: Any = None       # (B,) float sample weights, or None (all 1)


def validate(idx, val, y=None, n_features=None, where="batch", weight=None, dtype=None):
    """Raise ``DataError`` / ``OptionTypeError`` naming the problem; return nothing.

    Checks: 2-D integer ids; values of the same shape and a floating dtype;
    ids in [0, n_features); values, labels and weights finite (the error names
    the first bad entry's row); labels and weights of shape (B,); weights >= 0.
    With ``dtype`` (the model's), every value, label and weight must also fit
    in it: a float64 1e39 cast to float32 would silently become infinity.
    """
    xp = B.get_xp(idx, val)
    if getattr(idx, "ndim", None) != 2:
        raise DataError(f"{where}: idx must be 2-D (batch, entries), got shape {getattr(idx, 'shape', None)}")
    if not B.isdtype(idx.dtype, "integral"):
        raise OptionTypeError(f"{where}: idx must hold integer feature ids, got dtype {idx.dtype}")
    if tuple(val.shape) != tuple(idx.shape):
        raise DataError(f"{where}: idx and val shapes differ: {tuple(idx.shape)} vs {tuple(val.shape)}")
    if not B.isdtype(val.dtype, "real floating"):
        raise OptionTypeError(f"{where}: val must be floating point (float32 or float64), got dtype {val.dtype}")
    if idx.shape[0] == 0:
        raise DataError(f"{where}: empty batch (no rows)")
    if idx.shape[1] > 0:
        lo, hi = int(xp.min(idx)), int(xp.max(idx))
        if lo < 0:
            raise DataError(f"{where}: negative feature id {lo}")
        if n_features is not None and hi >= n_features:
            raise DataError(f"{where}: feature id {hi} out of range for a model of {n_features} features "
                            f"(ids must be in [0, {n_features}))")
    _finite(xp, val, where, "val holds")
    for name, a in (("y", y), ("weight", weight)):
        if a is None:
            continue
        if tuple(a.shape) != (idx.shape[0],):
            raise DataError(f"{where}: {name} must have shape ({idx.shape[0]},), got {tuple(a.shape)}")
        if not B.isdtype(a.dtype, "real floating"):
            raise OptionTypeError(f"{where}: {'labels' if name == 'y' else name} must be floating point, "
                                  f"got dtype {a.dtype}")
        _finite(xp, a, where, "labels y hold" if name == "y" else "weights hold")
    if weight is not None and bool(xp.any(weight < 0)):
        raise DataError(f"{where}: weights must be >= 0")
    if dtype is not None:
        fit_dtype(dtype, where, val=val, y=y, weight=weight)


def fit_dtype(dtype, where, **arrays):
    """Raise ``DataError`` if a value of the (finite) arrays given by name would overflow when cast
    to ``dtype`` (a float64 1e39 becomes infinity in float32), naming the array and the entry."""
    for name, a in arrays.items():
        if a is None or not a.size:
            continue
        xp = B.get_xp(a)
        if float(xp.max(xp.abs(a))) > float(np.finfo(dtype).max):
            host = np.asarray(B.to_numpy(a), dtype=np.float64)
            fits(host, dtype, "value", lambda i, a=a, name=name: f"{where}: {name}{_entry(a, i)}",
                 hint="; rescale the values, or use a float64 model")


def _entry(a, i):
    """``[r]`` or ``[r, c]``: the index of flat entry ``i`` of ``a`` (1-D or 2-D)."""
    return f"[{i}]" if a.ndim == 1 else f"[{i // a.shape[1]}, {i % a.shape[1]}]"


def _finite(xp, a, where, what):
    """Raise ``DataError`` if ``a`` holds NaN or inf, naming the first such entry (row, and entry
    within the row for 2-D values); the search runs on the host, on the error path only."""
    if bool(xp.all(xp.isfinite(a))):
        return
    host = np.asarray(B.to_numpy(a))
    i = int(np.flatnonzero(~np.isfinite(host))[0])
    at = f"row {i}" if host.ndim == 1 else f"row {i // host.shape[1]}, entry {i % host.shape[1]}"
    raise DataError(f"{where}: {what} NaN or inf ({host.flat[i]} at {at}; rows count from 0)")


def _as_array(a, name, dtype=None):
    """Arrays pass through; lists and tuples of numbers become NumPy arrays (never a device copy).
    Masked arrays, text and ragged lists are refused (their meaning would be lost in the conversion)."""
    if a is None:
        return None
    if isinstance(a, np.ma.MaskedArray):
        raise OptionTypeError(f"{name} is a masked array; fill or drop the masked entries first")
    if isinstance(a, (list, tuple)):
        try:
            arr = np.asarray(a)
        except ValueError as e:
            raise DataError(f"{name}: not a rectangular array ({e})") from None
        if arr.dtype.kind not in "iufb":
            raise OptionTypeError(f"{name} must hold numbers, got {arr.dtype} values")
        return arr.astype(dtype) if dtype is not None else arr
    if not hasattr(a, "__array_namespace__") and not hasattr(a, "shape"):
        raise OptionTypeError(f"{name} must be an array, got {type(a).__name__}")
    return a


def make_batch(idx, val=None, y=None, n_features=None, weight=None):
    """Validated ``Batch``. ``val=None`` means one-hot (all values 1); lists become NumPy arrays."""
    idx = _as_array(idx, "idx")
    if idx is None:
        raise OptionTypeError("idx must be an array of feature ids, got None")
    xp = B.get_xp(idx)
    val = B.ones(idx.shape, like=idx, dtype=xp.float32) if val is None else _as_array(val, "val", np.float64)
    y, weight = _as_array(y, "y", np.float64), _as_array(weight, "weight", np.float64)
    if n_features is not None:
        n_features = integer(n_features, "n_features", 1)
    validate(idx, val, y, n_features, weight=weight)
    return Batch(idx, val, y, weight)


def fits(values, dtype, what, where=None, hint=None):
    """``values`` (float64) if casting them to ``dtype`` loses none: a ``DataError`` names the first
    finite value too large for ``dtype`` (it would become infinity), and the dtype it was checked
    against. ``where(i)`` locates entry i (e.g. a file and line). NaN and inf pass: a cast keeps
    them, and the callers' finiteness checks name them as such.

    The message suggests float64 only when ``dtype`` is narrower and float64 holds the value;
    ``hint`` replaces that suggestion (e.g. where the dtype is a saved model's, which no option
    changes), '' for none.
    """
    values = np.asarray(values)
    big = float(np.finfo(dtype).max)
    with np.errstate(invalid="ignore"):
        over = np.flatnonzero(np.isfinite(values) & (np.abs(values) > big))
    if over.size:
        i = int(over[0])
        v = values.flat[i]
        name = np.dtype(dtype).name
        if hint is None:
            wider = np.finfo(dtype).bits < 64 and abs(v) <= float(np.finfo(np.float64).max)
            hint = "; rescale the values" + (", or use float64 (--dtype float64 holds it)" if wider else "")
        at = f"{where(i)}: " if where else ""
        raise DataError(f"{at}{what} {v:g} is too large for {name} (max {big:.3g}){hint}")
    return values


def binary_labels(y, where="labels", lines=None):
    """Labels for the log loss as 0/1: {0, 1} stays, {-1, 1} maps -1 -> 0 and 1 -> 1.

    Any other value (or a mix such as {-1, 0, 1}) raises ``DataError`` naming
    the first unusable label and its row (its line, if ``lines`` gives the line
    of each row). Works on NumPy arrays. Returns ``(labels, note)``; ``note``
    says what was mapped ('' when nothing was).
    """
    y = np.asarray(y)
    zero_one = (y == 0) | (y == 1)
    if zero_one.all():
        return y, ""
    if ((y == -1) | (y == 1)).all():
        return (y > 0).astype(y.dtype), "labels -1/1 read as 0/1 for the log loss (-1 -> 0, 1 -> 1)"
    odd = ~zero_one & (y != -1)
    bad = int(np.flatnonzero(odd if odd.any() else ~zero_one)[0])
    found = np.unique(y)
    shown = ", ".join(f"{v:g}" for v in found[:6]) + (", ..." if found.size > 6 else "")
    at = f"line {lines[bad]}" if lines is not None else f"row {bad + 1}"
    raise DataError(f"{where}, {at}: label {y[bad]:g} cannot be used with the log loss, which needs labels "
                    f"0/1 or -1/1 (found {shown}); use the square loss for other labels")


def from_csr(X, y=None, dtype=np.float32, weight=None):
    """(idx, val) padded form of a scipy.sparse matrix (rows = examples).

    The matrix means what SciPy says it means: duplicate entries of one
    column in a row are summed (``sum_duplicates``) and explicit zeros are
    dropped. Each row's entries fill the first columns; the rest are padding
    (id 0, value 0). F = the longest row (at least 1).
    Returns a validated ``Batch`` of NumPy arrays.
    """
    import scipy.sparse as sp

    if not sp.issparse(X):
        raise OptionTypeError(f"from_csr needs a scipy.sparse matrix, got {type(X).__name__}")
    if X.dtype.kind not in "iufb":
        raise OptionTypeError(f"from_csr needs real values, got {X.dtype}")
    X = sp.csr_array(X, copy=True)                                    # a copy: canonicalised in place below
    X.sum_duplicates()
    X.eliminate_zeros()
    n = X.shape[0]
    lengths = np.diff(X.indptr)                                       # (n,)
    F = max(int(lengths.max(initial=0)), 1)
    row = np.repeat(np.arange(n), lengths)                            # row of each stored entry
    pos = np.arange(X.nnz) - X.indptr[row]                            # its place within the row
    idx = np.zeros((n, F), dtype=np.int64)
    val = np.zeros((n, F), dtype=dtype)
    idx[row, pos] = X.indices
    _finite(np, X.data, "from_csr", "X holds")
    fits(X.data, dtype, "a value", lambda i: f"from_csr: X[{row[i]}, {X.indices[i]}]")
    val[row, pos] = X.data
    y, weight = (None if a is None else _cast(a, dtype, name) for a, name in ((y, "y"), (weight, "sample_weight")))
    validate(idx, val, y, X.shape[1], where="from_csr", weight=weight)
    return Batch(idx, val, y, weight)


def _cast(a, dtype, name):
    """A 1-D array of labels or weights in ``dtype``, read as float64 first: a value the cast would
    overflow, or NaN / inf, is an error naming its index."""
    a = np.asarray(B.to_numpy(_as_array(a, name, np.float64)))
    if a.dtype.kind not in "iufb":
        raise OptionTypeError(f"from_csr: {name} must hold numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if a.ndim != 1:
        raise DataError(f"from_csr: {name} must be 1-D (one per row), got shape {a.shape}")
    _finite(np, a, "from_csr", f"{name} holds")
    return fits(a, dtype, "a value", lambda i: f"from_csr: {name}[{i}]").astype(dtype)


class Dataset:
    """Rows in the padded form, validated once, on one backend.

    Attributes: ``idx`` (N, F), ``val`` (N, F), ``y`` (N,), ``n_features``, ``name``,
    ``raw_ids`` (n,) the original id of each dense id (None when ids were dense already),
    ``weight`` (N,) sample weights or None, and ``label_map``, a note on how the labels
    were mapped when read ('' if they were not).
    """

    label_map = ""

    def __init__(self, idx, val, y, n_features, name="data", raw_ids=None, weight=None):
        n_features = integer(n_features, "n_features", 1)
        if y is None:
            raise DataError(f"{name}: a Dataset needs labels y (for prediction alone, use make_batch)")
        validate(idx, val, y, n_features, where=name, weight=weight)
        self.idx, self.val, self.y, self.weight = idx, val, y, weight
        self.n_features, self.name, self.raw_ids = n_features, name, raw_ids

    def __len__(self):
        return self.idx.shape[0]

    def __repr__(self):
        return (f"Dataset({self.name!r}, rows={len(self)}, entries per row={self.idx.shape[1]}, "
                f"features={self.n_features})")

    def _like(self, idx, val, y, weight):
        """A dataset sharing this one's id space, from arrays already validated."""
        out = Dataset.__new__(Dataset)
        out.idx, out.val, out.y, out.weight = idx, val, y, weight
        out.n_features, out.name, out.raw_ids = self.n_features, self.name, self.raw_ids
        out.label_map = self.label_map
        return out

    def to(self, xp, device=None, dtype=None):
        """Copy to backend ``xp`` (explicitly; values cast to ``dtype`` if given)."""
        xp = B.resolve(xp)
        val, y, w = self.val, self.y, self.weight
        if dtype is not None:
            fit_dtype(dtype, self.name, val=val, y=y, weight=w)      # a cast that would overflow is an error
            val, y = val.astype(dtype), y.astype(dtype)
            w = None if w is None else w.astype(dtype)
        return self._like(*(None if a is None else B.to_device(a, xp, device) for a in (self.idx, val, y, w)))

    def with_labels(self, y):
        """The same rows with other labels (already checked by the caller: same length, finite)."""
        return self._like(self.idx, self.val, y, self.weight)

    def batch(self, rows=None):
        """Rows ``rows`` (an index array on the dataset's backend, or a slice) as a ``Batch``."""
        w = self.weight
        if rows is None:
            return Batch(self.idx, self.val, self.y, w)
        if isinstance(rows, slice):
            return Batch(self.idx[rows, ...], self.val[rows, ...], self.y[rows, ...],
                         None if w is None else w[rows, ...])
        xp = B.get_xp(self.idx)
        return Batch(xp.take(self.idx, rows, axis=0), xp.take(self.val, rows, axis=0),
                     xp.take(self.y, rows, axis=0), None if w is None else xp.take(w, rows, axis=0))

    def take(self, rows):
        """The rows ``rows`` (an index array on the dataset's backend) as a Dataset, unchecked again."""
        return self._like(*self.batch(rows))

    def subset(self, n):
        """The first ``n`` rows (a view), for quick runs."""
        n = integer(n, "rows", 1)
        w = self.weight
        return self._like(self.idx[:n, ...], self.val[:n, ...], self.y[:n, ...], None if w is None else w[:n, ...])


class Split(NamedTuple):
    """Three datasets in one id space: train, validation and test."""

    train: Dataset
    valid: Dataset
    test: Dataset
