"""Sparse input in the padded (idx, val) form, and datasets of such rows.

A batch is ``Batch(idx, val, y)``: ``idx`` (B, F) int feature ids, ``val``
(B, F) float feature values x_i, ``y`` (B,) labels. Rows with fewer than F
nonzeros are padded with id 0 and value 0 (a padding entry adds nothing to a
prediction or a gradient). One-hot rows have val = 1; multi-hot rows repeat a
field with several ids; real-valued features carry their value in ``val``.

``make_batch`` validates a batch once (ids in range, shapes, finite floats);
``Dataset`` validates once at construction, so the training loop can slice it
without checking every step.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import backend as B


class Batch(NamedTuple):
    idx: Any                 # (B, F) int
    val: Any                 # (B, F) float
    y: Any = None            # (B,) float, or None for prediction
    checked: bool = False    # set by make_batch / Dataset: values already validated


def validate(idx, val, y=None, n_features=None, where="batch"):
    """Raise ``ValueError`` / ``TypeError`` naming the problem; return nothing.

    Checks: 2-D integer ids; values of the same shape and a floating dtype;
    ids in [0, n_features); values and labels finite; labels of shape (B,).
    """
    xp = B.get_xp(idx, val)
    if getattr(idx, "ndim", None) != 2:
        raise ValueError(f"{where}: idx must be 2-D (batch, entries), got shape {getattr(idx, 'shape', None)}")
    if not B.isdtype(idx.dtype, "integral"):
        raise TypeError(f"{where}: idx must hold integer feature ids, got dtype {idx.dtype}")
    if tuple(val.shape) != tuple(idx.shape):
        raise ValueError(f"{where}: idx and val shapes differ: {tuple(idx.shape)} vs {tuple(val.shape)}")
    if not B.isdtype(val.dtype, "real floating"):
        raise TypeError(f"{where}: val must be floating point (float32 or float64), got dtype {val.dtype}")
    if idx.shape[0] == 0:
        raise ValueError(f"{where}: empty batch")
    if idx.shape[1] > 0:
        lo, hi = int(xp.min(idx)), int(xp.max(idx))
        if lo < 0:
            raise ValueError(f"{where}: negative feature id {lo}")
        if n_features is not None and hi >= n_features:
            raise ValueError(f"{where}: feature id {hi} out of range for a model of {n_features} features "
                             f"(ids must be in [0, {n_features}))")
    if not bool(xp.all(xp.isfinite(val))):
        raise ValueError(f"{where}: val holds NaN or inf")
    if y is not None:
        if tuple(y.shape) != (idx.shape[0],):
            raise ValueError(f"{where}: y must have shape ({idx.shape[0]},), got {tuple(y.shape)}")
        if not B.isdtype(y.dtype, "real floating"):
            raise TypeError(f"{where}: labels must be floating point, got dtype {y.dtype}")
        if not bool(xp.all(xp.isfinite(y))):
            raise ValueError(f"{where}: labels hold NaN or inf")


def make_batch(idx, val=None, y=None, n_features=None):
    """Validated ``Batch``. ``val=None`` means one-hot (all values 1)."""
    xp = B.get_xp(idx)
    if val is None:
        val = B.ones(idx.shape, like=idx, dtype=xp.float32)
    validate(idx, val, y, n_features)
    return Batch(idx, val, y, True)


def from_csr(X, y=None, dtype=np.float32):
    """(idx, val) padded form of a scipy.sparse CSR matrix (rows = examples).

    Each row's stored entries, in order, fill the first columns; the rest are
    padding (id 0, value 0). F = the longest row (at least 1).
    Returns a validated ``Batch`` of NumPy arrays.
    """
    import scipy.sparse as sp

    if not sp.issparse(X):
        raise TypeError(f"from_csr needs a scipy.sparse matrix, got {type(X).__name__}")
    X = sp.csr_array(X)
    n = X.shape[0]
    lengths = np.diff(X.indptr)                                       # (n,)
    F = max(int(lengths.max(initial=0)), 1)
    row = np.repeat(np.arange(n), lengths)                            # row of each stored entry
    pos = np.arange(X.nnz) - X.indptr[row]                            # its place within the row
    idx = np.zeros((n, F), dtype=np.int64)
    val = np.zeros((n, F), dtype=dtype)
    idx[row, pos] = X.indices
    val[row, pos] = X.data
    y = None if y is None else np.asarray(y, dtype=dtype)
    validate(idx, val, y, X.shape[1], where="from_csr")
    return Batch(idx, val, y, True)


class Dataset:
    """Rows in the padded form, validated once, on one backend.

    Attributes: ``idx`` (N, F), ``val`` (N, F), ``y`` (N,), ``n_features``, ``name``, and
    ``raw_ids`` (n,) the original id of each dense id (None when ids were dense already).
    """

    def __init__(self, idx, val, y, n_features, name="data", raw_ids=None):
        validate(idx, val, y, n_features, where=name)
        self.idx, self.val, self.y = idx, val, y
        self.n_features, self.name, self.raw_ids = int(n_features), name, raw_ids

    def __len__(self):
        return self.idx.shape[0]

    def __repr__(self):
        return (f"Dataset({self.name!r}, rows={len(self)}, entries per row={self.idx.shape[1]}, "
                f"features={self.n_features})")

    def to(self, xp, device=None, dtype=None):
        """Copy to backend ``xp`` (explicitly; values cast to ``dtype`` if given)."""
        xp = B.resolve(xp)
        val, y = self.val, self.y
        if dtype is not None:
            val, y = val.astype(dtype), y.astype(dtype)
        out = Dataset.__new__(Dataset)
        out.idx, out.val, out.y = (B.to_device(a, xp, device) for a in (self.idx, val, y))
        out.n_features, out.name, out.raw_ids = self.n_features, self.name, self.raw_ids
        return out

    def batch(self, rows=None):
        """Rows ``rows`` (an index array on the dataset's backend, or a slice) as a ``Batch``."""
        if rows is None:
            return Batch(self.idx, self.val, self.y, True)
        if isinstance(rows, slice):
            return Batch(self.idx[rows, ...], self.val[rows, ...], self.y[rows, ...], True)
        xp = B.get_xp(self.idx)
        return Batch(xp.take(self.idx, rows, axis=0), xp.take(self.val, rows, axis=0),
                     xp.take(self.y, rows, axis=0), True)

    def subset(self, n):
        """The first ``n`` rows (a view), for quick runs."""
        out = Dataset.__new__(Dataset)
        out.idx, out.val, out.y = self.idx[:n, ...], self.val[:n, ...], self.y[:n, ...]
        out.n_features, out.name, out.raw_ids = self.n_features, self.name, self.raw_ids
        return out
