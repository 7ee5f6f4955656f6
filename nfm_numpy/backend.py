"""The one module that knows which array library is running: NumPy, CuPy, or any
other Array-API namespace (the tests use array-api-strict on a fake device).

Everything else in nfm_numpy is written once, against ``xp = get_xp(x)``, using
the Array-API spelling (``xp.take``, ``xp.sum(x, axis=...)``, ``xp.reshape``) so
that the same lines run on every backend. The few operations that have no
portable spelling live here:

* moving arrays between host and device (always explicit; nothing in the
  package converts a device array to NumPy behind the user's back),
* ``unique_inverse`` (the rows of an embedding table that a batch touches),
* ``BatchMatrix``: the (B, U) sparse matrix X with X[b, u] = sum of x over the
  entries of row b whose id is the u-th touched id. One sparse product replaces
  both the gather-and-sum of the forward pass and the scatter-add of the
  backward pass (scipy.sparse on the CPU, cupyx.scipy.sparse on the GPU, a
  dense one-hot matrix on any other backend),
* ``add_rows``: ``table[rows] += delta`` for unique ``rows`` (in place on NumPy
  and CuPy; rebuilt with a one-hot product where the namespace has no indexed
  assignment),
* random numbers (``Random``): NumPy's Generator on the CPU, CuPy's on the GPU,
  host numbers moved explicitly to the device otherwise.
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np
import scipy.sparse as sp

from .errors import OptionError, OptionTypeError


# --------------------------------------------------------------- namespaces
def _cupy():
    """The cupy module if it has been imported by the user, else None (never imports it)."""
    return sys.modules.get("cupy")


_NAMESPACE_OF_TYPE = {}   # array type -> namespace (get_xp runs dozens of times a step: keep it cheap)


def _namespace(a):
    t = type(a)
    xp = _NAMESPACE_OF_TYPE.get(t)
    if xp is None:
        if isinstance(a, (np.ndarray, np.generic)):
            xp = np
        elif _cupy() is not None and isinstance(a, _cupy().ndarray):
            xp = _cupy()
        elif hasattr(a, "__array_namespace__"):
            return a.__array_namespace__()          # not cached: one type may serve several namespaces
        else:
            raise OptionTypeError(f"not an array: {t.__name__}")
        _NAMESPACE_OF_TYPE[t] = xp
    return xp


def get_xp(*arrays):
    """Namespace shared by ``arrays`` (numpy, cupy, or an Array-API namespace).

    Python numbers and None are skipped. Raises ``TypeError`` for arrays of
    different libraries: mixing a GPU and a CPU array would need a silent copy,
    which this package never makes.
    """
    for a in arrays:                     # the common case, dozens of times a step: NumPy arrays only
        if type(a) is not np.ndarray:
            break
    else:
        return np
    xp = None
    for a in arrays:
        if a is None or isinstance(a, (int, float)) and not isinstance(a, np.generic):
            continue
        ns = _namespace(a)
        if xp is None:
            xp = ns
        elif ns is not xp:
            raise OptionTypeError(f"arrays from different libraries ({xp.__name__} and {ns.__name__}): "
                                  "move them to one device first with nfm_numpy.backend.to_device")
    return np if xp is None else xp


def is_numpy(xp):
    return xp is np


def is_cupy(xp):
    return _cupy() is not None and xp is _cupy()


def host_memory():
    """Total physical memory of this machine in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not Linux
        return None


def resolve(name_or_xp):
    """``'numpy'`` / ``'cupy'`` / a module -> the module. Importing cupy happens only here."""
    if not isinstance(name_or_xp, str):
        if not hasattr(name_or_xp, "asarray") or not hasattr(name_or_xp, "__name__"):
            raise OptionTypeError(f"backend must be 'numpy', 'cupy' or an array namespace, got {name_or_xp!r}")
        return name_or_xp
    if name_or_xp == "numpy":
        return np
    if name_or_xp == "cupy":
        try:
            import cupy
        except ImportError as e:  # pragma: no cover - depends on the machine
            raise OptionError("backend 'cupy' needs CuPy and a CUDA GPU: pip install cupy-cuda12x "
                              "(for CUDA 12)") from e
        return cupy
    raise OptionError(f"unknown backend {name_or_xp!r}: expected 'numpy' or 'cupy'")


def device_of(x):
    """The device of ``x`` when the namespace has devices other than the default (else None)."""
    xp = get_xp(x)
    if is_numpy(xp) or is_cupy(xp):
        return None
    return x.device


# ------------------------------------------------------------- host <-> device
def to_device(x, xp, device=None):
    """Copy a host (NumPy) array to namespace ``xp`` (and ``device``). Explicit by design."""
    if is_numpy(xp):
        return np.asarray(x)
    if device is None:
        return xp.asarray(x)
    return xp.asarray(x, device=device)


def to_numpy(x):
    """Copy ``x`` to the host as a NumPy array. The only device-to-host path in the package."""
    xp = get_xp(x)
    if is_numpy(xp):
        return x
    if is_cupy(xp):
        return x.get()
    # Array-API namespaces: move to the default (CPU) device, then view as NumPy.
    cpu = xp.__array_namespace_info__().default_device()
    return np.asarray(xp.asarray(x, device=cpu))


def zeros(shape, like, dtype=None):
    """Zeros on the namespace and device of ``like``."""
    xp = get_xp(like)
    dtype = like.dtype if dtype is None else dtype
    dev = device_of(like)
    return xp.zeros(shape, dtype=dtype) if dev is None else xp.zeros(shape, dtype=dtype, device=dev)


def ones(shape, like, dtype=None):
    xp = get_xp(like)
    dtype = like.dtype if dtype is None else dtype
    dev = device_of(like)
    return xp.ones(shape, dtype=dtype) if dev is None else xp.ones(shape, dtype=dtype, device=dev)


_ONES: dict = {}


def ones_vector(n, like, scale=1.0):
    """A cached (n,) vector filled with ``scale`` (default 1), with the dtype and device of
    ``like``. Shared between calls: never write to it."""
    key = (type(like), like.dtype, getattr(like, "device", None), n, scale)
    v = _ONES.get(key)
    if v is None:
        v = _ONES[key] = ones((n,), like=like) * scale
    return v


def arange(n, like, dtype=None):
    xp = get_xp(like)
    dev = device_of(like)
    return xp.arange(n, dtype=dtype) if dev is None else xp.arange(n, dtype=dtype, device=dev)


def isdtype(dtype, kind):
    """``kind`` in 'integral' / 'real floating' (NumPy and CuPy share NumPy's dtypes)."""
    if isinstance(dtype, np.dtype):
        return np.isdtype(dtype, kind)
    import importlib
    xp = importlib.import_module(type(dtype).__module__.split(".")[0])
    return xp.isdtype(dtype, kind)


def astype(x, dtype):
    xp = get_xp(x)
    if x.dtype == dtype:
        return x
    return x.astype(dtype) if (is_numpy(xp) or is_cupy(xp)) else xp.astype(x, dtype)


# ------------------------------------------------------------- sparse helpers
def unique_inverse(ids, n=None):
    """Sorted unique values of ``ids`` and, for each entry, its position among them.

    Returns ``(uniq, inv)`` with ``uniq[inv] == ids`` and ``inv.shape == ids.shape``.
    On NumPy with ``n`` (ids in [0, n)) a marker table of n flags replaces the
    sort: mark the ids, list the marked ones, number them. O(n + B F), and
    about twice as fast as ``np.unique`` for the tables of this project.
    """
    xp = get_xp(ids)
    if is_numpy(xp) and n is not None and n <= 1 << 24:
        mark = _scratch("mark", n, bool)                    # (n,) False, reused between calls
        mark[ids] = True
        uniq = np.flatnonzero(mark)                         # (U,) sorted
        mark[uniq] = False                                  # leave the table clean for the next call
        rank = _scratch("rank", n, np.int32)
        rank[uniq] = np.arange(uniq.size, dtype=np.int32)   # id -> its place in uniq
        return uniq, rank[ids]
    if is_numpy(xp) or is_cupy(xp):
        uniq, inv = xp.unique(ids.ravel(), return_inverse=True)
        return uniq, inv.reshape(ids.shape)
    res = xp.unique_inverse(ids)
    return res.values, xp.reshape(res.inverse_indices, ids.shape)


_SCRATCH: dict = {}


def _scratch(name, n, dtype):
    """A zeroed (n,) host table kept between calls (``unique_inverse``'s marker and rank tables)."""
    if (name, n) not in _SCRATCH:
        _SCRATCH[(name, n)] = np.zeros(n, dtype=dtype)
    return _SCRATCH[(name, n)]


def _sparse_kernels():
    """SciPy's compiled CSR/CSC matrix-times-dense kernels, if this SciPy has them as we expect.

    ``csr_array @ A`` spends about 10 us in Python before and after its kernel, and building
    the ``csr_array`` another 12 us: at batch 128 the six products of a step spent a sixth of
    the step there. So on NumPy the batch matrix keeps its three CSR arrays and calls the
    kernels that ``csr_array @`` itself calls (``scipy.sparse._sparsetools``, a private
    module). They are checked here, once, against the public API on a small matrix; if
    they are missing or disagree (a future SciPy), None, and the public API is used.
    """
    try:
        from scipy.sparse import _sparsetools as st
        rng = np.random.default_rng(0)
        indptr = np.array([0, 2, 3], dtype=np.int32)
        indices, data = np.array([1, 0, 1], dtype=np.int32), np.array([1.5, -2.0, 0.5])
        A, G = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
        ref = sp.csr_array((data, indices, indptr), shape=(2, 2))
        out, back = np.zeros((2, 3)), np.zeros((2, 3))
        st.csr_matvecs(2, 2, 3, indptr, indices, data, A.ravel(), out.ravel())
        st.csc_matvecs(2, 2, 3, indptr, indices, data, G.ravel(), back.ravel())
        if np.allclose(out, ref @ A) and np.allclose(back, ref.T @ G):
            return st
    except Exception:  # pragma: no cover - depends on the SciPy version
        pass
    return None  # pragma: no cover


_KERNELS = _sparse_kernels()


class _CSR:
    """X (B, U) as three CSR arrays, multiplied by SciPy's kernels (see ``_sparse_kernels``)."""

    def __init__(self, data, indices, indptr, shape):
        self.data, self.indices, self.indptr, self.shape = data, indices, indptr, shape

    def __matmul__(self, a):                      # (U,) or (U, k) -> (B,) or (B, k)
        return self._product(a, transpose=False)

    @property
    def T(self):
        return _CSRTranspose(self)

    def _product(self, a, transpose):
        # X^T in CSC form is X's own CSR arrays: column j of X^T is row j of X
        n_row, n_col = (self.shape[1], self.shape[0]) if transpose else self.shape
        if a.shape[0] != n_col:
            raise OptionError(f"sparse product: shapes {(n_row, n_col)} and {a.shape} do not fit")
        if a.dtype != self.data.dtype:
            a = a.astype(np.result_type(a.dtype, self.data.dtype))
        data = self.data if self.data.dtype == a.dtype else self.data.astype(a.dtype)
        a = np.ascontiguousarray(a)
        out = np.zeros((n_row,) + a.shape[1:], dtype=a.dtype)          # the kernels add into out
        if a.ndim == 1:
            kernel = _KERNELS.csc_matvec if transpose else _KERNELS.csr_matvec
            kernel(n_row, n_col, self.indptr, self.indices, data, a, out)
        else:
            kernel = _KERNELS.csc_matvecs if transpose else _KERNELS.csr_matvecs
            kernel(n_row, n_col, a.shape[1], self.indptr, self.indices, data, a.ravel(), out.ravel())
        return out


class _CSRTranspose:
    def __init__(self, csr):
        self.csr = csr

    def __matmul__(self, g):                      # (B,) or (B, k) -> (U,) or (U, k): the scatter-add
        return self.csr._product(g, transpose=True)


class BatchMatrix:
    """X (B, U): ``X[b, u] = sum over f with cols[b, f] == u of vals[b, f]``.

    ``X @ A`` (A of shape (U,) or (U, k)) gathers and sums rows of A per batch
    row; ``X.T @ G`` scatter-adds the rows of G into the U columns, adding
    repeated ids, within a row or across rows, as it should. Duplicates are
    kept as separate stored entries (never merged), so ``BatchMatrix(cols,
    vals**2)`` is sum_f x_f^2 per id, not (sum_f x_f)^2.
    """

    # CSR row pointers depend only on (B, F): cached, so no per-step allocation.
    _indptr_cache: dict = {}

    def __init__(self, cols, vals, n_cols):
        xp = get_xp(cols, vals)
        B, F = cols.shape
        self.shape = (B, n_cols)
        if is_numpy(xp) or is_cupy(xp):
            key = (B, F, xp.__name__)
            indptr = self._indptr_cache.get(key)
            if indptr is None:
                indptr = xp.arange(0, B * F + 1, F, dtype=xp.int32 if B * F < 2**31 else xp.int64)
                self._indptr_cache[key] = indptr
            indices = cols.ravel().astype(indptr.dtype, copy=False)
            data = vals.ravel()
            if is_numpy(xp) and _KERNELS is not None:
                m = _CSR(data, indices, indptr, self.shape)
            elif is_numpy(xp):  # pragma: no cover - a SciPy without the kernels we check for
                m = sp.csr_array((data, indices, indptr), shape=self.shape, copy=False)
            else:  # pragma: no cover - GPU only
                import cupyx.scipy.sparse as csp
                m = csp.csr_matrix((data, indices, indptr), shape=self.shape)
            self._m = m
            self._mt = None
        else:
            # Dense one-hot fallback: (B, F, U) comparison, summed over F.
            onehot = cols[:, :, None] == arange(n_cols, cols, dtype=cols.dtype)[None, None, :]
            self._m = xp.sum(astype(onehot, vals.dtype) * vals[:, :, None], axis=1)  # (B, U)
            self._mt = None

    def __matmul__(self, a):
        return self._m @ a

    @property
    def T(self):
        """The transpose as an object with ``@`` (computed once, then cached)."""
        if self._mt is None:
            self._mt = self._m.T
        return self._mt


def add_rows(table, rows, delta):
    """``table[rows] += delta`` for *unique* ``rows``; returns the updated table.

    In place on NumPy and CuPy. Array-API namespaces have no indexed assignment,
    so there the table is rebuilt as ``table + onehot(rows).T @ delta`` (a new
    array): always use the return value.
    """
    xp = get_xp(table, rows, delta)
    if is_numpy(xp):
        # gather, add, write back: the same numbers as the fancy ``table[rows] += delta``, which
        # NumPy runs as a slower indexed loop (2.8 -> 2.4 ms for 11,300 rows of 64 at MovieLens size)
        block = table.take(rows, axis=0)
        block += delta
        table[rows] = block
        return table
    if is_cupy(xp):  # pragma: no cover - GPU only
        table[rows] += delta
        return table
    onehot = astype(rows[:, None] == arange(table.shape[0], rows, dtype=rows.dtype)[None, :], table.dtype)
    return table + onehot.T @ delta if table.ndim == 2 else table + xp.reshape(onehot.T @ delta[:, None], (-1,))


def row_blocks(values, block_bytes):
    """Slices that cut the rows of ``values`` (U, ...) into blocks of about ``block_bytes``.

    On NumPy, a chain of elementwise operations on such blocks stays in the
    CPU's cache instead of streaming every intermediate through main memory
    (see ``optim``). On CuPy and Array-API namespaces: one slice over all
    rows (on a GPU each operation is one kernel launch whatever its size).
    """
    n = values.shape[0]
    if not is_numpy(get_xp(values)):
        return [slice(0, n)]
    row_bytes = values.itemsize * math.prod(values.shape[1:])
    step = max(1, block_bytes // row_bytes)
    return [slice(i, i + step) for i in range(0, n, step)] or [slice(0, n)]


def put_rows(table, rows, values):
    """``table[rows] = values`` for *unique* ``rows``; returns the updated table (as ``add_rows``)."""
    xp = get_xp(table, rows, values)
    if is_numpy(xp) or is_cupy(xp):
        table[rows] = values
        return table
    return add_rows(table, rows, values - xp.take(table, rows, axis=0))


# --------------------------------------------------------------------- random
class Random:
    """Random draws on the backend of the model.

    NumPy: ``numpy.random.Generator`` (PCG64). CuPy: ``cupy.random.Generator``,
    drawn on the GPU (``host=True`` draws on the host with NumPy and copies,
    which gives the very same numbers as the CPU run, at the price of one
    transfer a call). Any other namespace: drawn on the host, moved explicitly
    with ``to_device``.
    """

    def __init__(self, seed, xp=np, device=None, host=False):
        self.xp, self.device = xp, device
        self.on_device = is_cupy(xp) and not host
        self._gen = xp.random.default_rng(seed) if self.on_device else np.random.default_rng(seed)

    def bernoulli(self, shape, p):
        """A boolean array, each entry True with probability ``p`` (a dropout keep mask).

        On the host it compares raw 32-bit draws of the generator with p 2^32:
        exact to 2^-32 in p (float32 uniforms carry only 24 bits) and about
        twice as fast as drawing floats, which matters at batch 4096.
        """
        if self.on_device:  # pragma: no cover - GPU only
            return self._gen.random(shape, dtype=self.xp.float32) < p
        n = math.prod(shape)
        raw = self._gen.bit_generator.random_raw((n + 1) // 2).view(np.uint32)   # uniform 32-bit ints
        if raw.size != n:
            raw = raw[:n]
        keep = (raw < min(round(p * 2**32), 2**32 - 1)).reshape(shape)
        return keep if is_numpy(self.xp) else to_device(keep, self.xp, self.device)
