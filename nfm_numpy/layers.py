r"""Layers of FM and NFM, each a pair ``*_forward(...) -> (out, cache)`` and
``*_backward(dout, cache) -> grads``, with the derivation of the backward pass
in its docstring.

Notation (He & Chua 2017): a row of the batch holds F entries, feature ids
``idx[r, f]`` with values ``x = val[r, f]`` (``val = 0`` marks padding). ``V``
(n, k) holds the embeddings v_i, ``w`` (n,) the linear weights, ``w0`` the
global bias. B = batch size, F = entries per row, k = embedding size (c
indexes its coordinates), U = number of distinct ids in the batch.

Two forms of the input layers live here and are tested to agree:

* the textbook form (``embedding_*``, ``linear_*``, ``bi_interaction_*``)
  gathers the scaled embeddings E = x_i v_i into a (B, F, k) array, exactly as
  the formulas read;
* the sparse form (``sparse_*``) never builds (B, F, k): it multiplies the
  (B, U) sparse matrix X of the batch with the U touched rows of the tables,
  s = X V_u, and scatters gradients back with X^T. This is what the models
  use by default (faster, less memory).

Gradients of the embedding tables ``w`` and ``V`` are ``RowGrad(rows, values)``:
the table's gradient is zero except at the (unique, sorted) ``rows``. Use
``RowGrad.to_dense(n)`` to see the full-size gradient.

**Padding touches nothing.** ``rows`` lists the ids the batch *touches*: those
with at least one entry x != 0. Padding shares id 0 with a real feature (id 0
with x = 0), so a batch where id 0 only pads must not list row 0: an optimiser
with memory (momentum, Adam) or the L2 term on the touched rows would move
v_0 and w_0 on a batch that never used them (``touched``).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import backend as B
from .errors import OptionError


class RowGrad(NamedTuple):
    """Gradient of an (n, ...) table that is zero except at ``rows``.

    rows : (U,) int, unique and sorted: the rows the batch touches (padding excluded).
    values : (U, ...) gradient of those rows.
    """

    rows: Any
    values: Any

    def to_dense(self, n):
        """The full (n, ...) gradient (zeros elsewhere)."""
        out = B.zeros((n,) + tuple(self.values.shape[1:]), like=self.values)
        return B.add_rows(out, self.rows, self.values)


def batch_sum(x):
    """Sum over the batch axis, (B, D) -> (D,), written as the product ones(B) @ x.

    The same number as ``xp.sum(x, axis=0)``, but a matrix-vector product runs
    in BLAS: 4x faster at batch 128 and 6x at batch 4096 on NumPy.
    """
    return B.ones_vector(x.shape[0], like=x) @ x


def batch_mean(x):
    """Mean over the batch axis, (B, D) -> (D,): the product (ones(B) / B) @ x (see ``batch_sum``)."""
    return B.ones_vector(x.shape[0], like=x, scale=1.0 / x.shape[0]) @ x


def touched(uniq, inv, val):
    """Which of the ids ``uniq`` (U,) the batch touches: those with at least one entry x != 0.

    ``inv`` (B, F) places each entry among ``uniq``; ``val`` (B, F) holds the values x.
    An id whose every entry is 0 (padding: id 0, x = 0) has a zero gradient, but an
    optimiser with memory would still move its row (momentum by its velocity, Adam by its
    first moment) and the L2 term would pull it to 0: so it is left out of ``RowGrad.rows``.

    Returns what selects the touched places of a (U, ...) array: ``slice(None)`` (all,
    the common case: no padding, or id 0 is also real), ``slice(1, None)`` (only uniq[0],
    the padding id 0, is left out: views, no copy), or an index array.
    """
    xp = B.get_xp(val)
    keep = val != 0                                              # (B, F) the entries that are not padding
    if B.is_numpy(xp):
        if keep.all():                                           # no padding in this batch: every id is used
            return slice(None)
        hit = np.zeros(uniq.shape[0], dtype=bool)                # (U,)
        hit[inv[keep]] = True
        if hit[1:].all():
            return slice(None) if hit[0] else slice(1, None)
        return np.flatnonzero(hit)
    # other backends (no indexed assignment): count each id's entries with x != 0 by a product
    counts = B.BatchMatrix(inv, B.astype(keep, val.dtype), uniq.shape[0]).T @ B.ones((inv.shape[0],), like=val)
    return xp.nonzero(counts > 0)[0]


def touched_grad(uniq, values, where):
    """``RowGrad`` of the touched ids only (``where`` from ``touched``)."""
    if isinstance(where, slice):
        return RowGrad(uniq[where], values[where])               # views
    xp = B.get_xp(values)
    return RowGrad(xp.take(uniq, where, axis=0), xp.take(values, where, axis=0))


# =========================================================== textbook input layers
def embedding_forward(idx, val, V):
    r"""Scaled embedding lookup: E[r, f] = x_{rf} v_{idx[r, f]}.

    Parameters
    ----------
    idx : (B, F) int      feature ids
    val : (B, F) float    feature values x (0 for padding)
    V : (n, k) float      embedding table

    Returns
    -------
    E : (B, F, k)
    cache : (idx, val, Vg) with Vg = V[idx], the unscaled rows (needed for dx).
    """
    xp = B.get_xp(idx, val, V)
    Bn, F = idx.shape
    Vg = xp.reshape(xp.take(V, xp.reshape(idx, (-1,)), axis=0), (Bn, F, V.shape[1]))  # (B, F, k)
    E = val[:, :, None] * Vg                                                            # (B, F, k)
    return E, (idx, val, Vg)


def embedding_backward(dE, cache):
    r"""Backward of the scaled lookup.

    E_{rf} = x_{rf} v_{i}  with i = idx[r, f], so

    * dL/dx_{rf} = dE_{rf} . v_i
    * dL/dv_i = sum over every (r, f) with idx[r, f] = i of x_{rf} dE_{rf}.

    The second sum runs over *every* occurrence of id i, in the same row or in
    other rows: a fancy ``dV[idx] += g`` keeps only one of them (NumPy buffers
    repeated indices), so the sum is a scatter-add, done here as one sparse
    product X_entries^T @ (x dE) with X_entries (B*F, U) holding one 1 per row.

    Returns
    -------
    dval : (B, F)
    dV : RowGrad over the ids the batch touches (``touched``: padding excluded), values (U, k)
    """
    xp = B.get_xp(dE)
    idx, val, Vg = cache
    Bn, F, k = dE.shape
    dval = xp.sum(dE * Vg, axis=2)                                        # (B, F)
    uniq, inv = B.unique_inverse(idx)                                     # (U,), (B, F)
    scatter = B.BatchMatrix(xp.reshape(inv, (-1, 1)), B.ones((Bn * F, 1), like=val), uniq.shape[0])
    dVu = scatter.T @ xp.reshape(val[:, :, None] * dE, (Bn * F, k))      # (U, k)
    return dval, touched_grad(uniq, dVu, touched(uniq, inv, val))       # padding touches nothing


def linear_forward(idx, val, w0, w):
    r"""FM's linear part: y_r = w0 + sum_f x_{rf} w_{idx[r, f]}.

    Parameters
    ----------
    idx : (B, F) int;  val : (B, F) float;  w0 : () float;  w : (n,) float

    Returns
    -------
    y : (B,)
    cache : (idx, val, wg) with wg = w[idx]
    """
    xp = B.get_xp(idx, val, w)
    wg = xp.reshape(xp.take(w, xp.reshape(idx, (-1,)), axis=0), idx.shape)  # (B, F)
    y = w0 + xp.sum(val * wg, axis=1)                                        # (B,)
    return y, (idx, val, wg)


def linear_backward(dy, cache):
    r"""dL/dw0 = sum_r dy_r;  dL/dx_{rf} = dy_r w_i;  dL/dw_i = sum_{(r,f): idx=i} dy_r x_{rf}.

    Returns ``(dval (B, F), dw0 (), dw RowGrad)``; dw is a scatter-add for the
    same reason as in ``embedding_backward``.
    """
    xp = B.get_xp(dy)
    idx, val, wg = cache
    dval = dy[:, None] * wg                                                  # (B, F)
    dw0 = xp.sum(dy)                                                         # ()
    uniq, inv = B.unique_inverse(idx)
    X = B.BatchMatrix(inv, val, uniq.shape[0])                               # (B, U)
    dwu = X.T @ dy                                                           # (U,)
    return dval, dw0, touched_grad(uniq, dwu, touched(uniq, inv, val))


def bi_interaction_forward(E):
    r"""Bi-Interaction pooling, in O(k F) per row.

    .. math::
        f_{BI} = \sum_{i<j} x_i v_i \odot x_j v_j
               = \tfrac12 \big[ (\textstyle\sum_i x_i v_i)^2 - \sum_i (x_i v_i)^2 \big]

    (square the sum: every pair appears twice plus the diagonal i = j; remove
    the diagonal and halve). With e_i = x_i v_i and s = sum_i e_i:

    Parameters
    ----------
    E : (B, F, k)   scaled embeddings e_i

    Returns
    -------
    f : (B, k)
    cache : (E, s)  s is kept: the backward needs it and it costs (B, k).
    """
    xp = B.get_xp(E)
    s = xp.sum(E, axis=1)                        # (B, k)   s = sum_i e_i
    q = xp.sum(E * E, axis=1)                    # (B, k)   q = sum_i e_i^2
    f = 0.5 * (s * s - q)                        # (B, k)
    return f, (E, s)


def bi_interaction_backward(df, cache):
    r"""d f_c / d e_{ic} = s_c - e_{ic} for each coordinate c, so dE_i = df * (s - e_i).

    Coordinates do not mix (f_c depends only on the c-th coordinates). From
    f = 1/2 (s^2 - q): df/ds = s and ds/de_i = 1; df/dq = -1/2 and
    dq/de_i = 2 e_i. Hence for v_i (with e_i = x_i v_i):
    d f / d v_i = x_i (sum_j x_j v_j - x_i v_i), the paper's form.

    Returns dE : (B, F, k)
    """
    E, s = cache
    return df[:, None, :] * (s[:, None, :] - E)  # (B, F, k)


def fm_second_order_forward(f):
    r"""FM's pairwise term: sum_{i<j} <v_i, v_j> x_i x_j = sum_c f_BI,c (c = 1..k).

    f : (B, k) -> y : (B,)
    """
    xp = B.get_xp(f)
    return xp.sum(f, axis=1), f.shape


def fm_second_order_backward(dy, cache):
    """d(sum_c f_c)/d f_c = 1: the upstream gradient is copied to each of the k coordinates. -> (B, k)"""
    return dy[:, None] * B.ones(cache, like=dy)


# ============================================================= sparse input layers
class SparseInput(NamedTuple):
    """One batch in the sparse form (built once per batch by ``sparse_input``).

    uniq : (U,) ids of the batch's entries, padding's id 0 included;  inv : (B, F) position of each entry in uniq
    X : BatchMatrix (B, U) of the values x;  X2 : BatchMatrix (B, U) of x^2
    val : (B, F) the values (kept for the gradient with respect to x)
    touched : the places in uniq of the ids with an entry x != 0 (``touched``): the rows
        the gradients name. The forward pass uses all of uniq (a padding entry adds 0),
        so the numbers are those of the plain form; only the list of updated rows shrinks.
    """

    uniq: Any
    inv: Any
    X: Any
    X2: Any
    val: Any
    touched: Any = slice(None)


def sparse_input(idx, val, n=None):
    """Touched ids and the (B, U) matrices X (of x) and X2 (of x^2) of a batch.

    X2 is built from x^2 entry by entry, so a repeated id contributes
    sum_f x_f^2 v^2 to the sum of squares, as in the textbook form (not
    (sum_f x_f)^2 v^2, which X*X would give). ``n``: the table size, if known
    (lets ``unique_inverse`` use a marker table instead of a sort).
    """
    xp = B.get_xp(val)
    uniq, inv = B.unique_inverse(idx, n)                     # (U,), (B, F)
    U = uniq.shape[0]
    X = B.BatchMatrix(inv, val, U)                           # (B, U)
    val2 = val * val                                         # (B, F)
    # One-hot and multi-hot data (every x is 0 or 1) have x^2 = x, so X2 is X: one
    # matrix (and one transpose) less per batch. Checked on NumPy only, where it is
    # cheap; on a GPU the check would cost a device-to-host sync every step.
    same = B.is_numpy(xp) and bool(xp.array_equal(val2, val))
    return SparseInput(uniq, inv, X, X if same else B.BatchMatrix(inv, val2, U), val, touched(uniq, inv, val))


def sparse_linear_forward(sx, w0, w):
    """Linear part on the touched rows: y = w0 + X w_u.  Returns (y (B,), cache)."""
    xp = B.get_xp(w)
    wu = xp.take(w, sx.uniq, axis=0)              # (U,)
    return w0 + sx.X @ wu, (sx, wu)               # (B,)


def sparse_linear_backward(dy, cache, need_dval=False):
    """dw0 = sum dy;  dw_u = X^T dy;  dx_{rf} = dy_r w_{idx[r,f]} (only if ``need_dval``).

    Returns ``(dval or None, dw0, dw RowGrad)``.
    """
    xp = B.get_xp(dy)
    sx, wu = cache
    dval = None
    if need_dval:
        dval = dy[:, None] * xp.reshape(xp.take(wu, xp.reshape(sx.inv, (-1,)), axis=0), sx.inv.shape)
    return dval, xp.sum(dy), touched_grad(sx.uniq, sx.X.T @ dy, sx.touched)


def sparse_bi_interaction_forward(sx, V):
    r"""Bi-Interaction without the (B, F, k) array.

    s = X V_u (B, k) is sum_i x_i v_i; q = X2 (V_u * V_u) is sum_i x_i^2 v_i^2;
    f = 1/2 (s^2 - q), as in ``bi_interaction_forward``.

    Returns f : (B, k) and cache (sx, Vu, s).
    """
    xp = B.get_xp(V)
    Vu = xp.take(V, sx.uniq, axis=0)              # (U, k)   touched rows only
    s = sx.X @ Vu                                 # (B, k)
    q = sx.X2 @ (Vu * Vu)                         # (B, k)
    f = s * s                                     # (B, k)  in place from here: no more temporaries
    f -= q
    f *= 0.5
    return f, (sx, Vu, s)


def sparse_bi_interaction_backward(df, cache, need_dval=False):
    r"""The textbook dv_i = sum_{(r,f): idx=i} x_{rf} df_r (s_r - x_{rf} v_i), summed per id:

    .. math::
        dV_u = X^T (df \odot s) - V_u \odot (X_2^T df)

    (the first term collects x df s over the rows that use id u, the second
    x^2 df v_u). dval is only computed on request: it needs the (B, F, k)
    gather that this form exists to avoid.

    Returns ``(dval or None, dV RowGrad)``.
    """
    xp = B.get_xp(df)
    sx, Vu, s = cache
    second = sx.X2.T @ df                                                  # (U, k)  sum x^2 df per id
    second *= Vu                                                           #         times v_u (in place)
    dVu = sx.X.T @ (df * s)                                                # (U, k)  sum x df s per id
    dVu -= second
    dval = None
    if need_dval:
        Bn, F = sx.inv.shape
        Vg = xp.reshape(xp.take(Vu, xp.reshape(sx.inv, (-1,)), axis=0), (Bn, F, Vu.shape[1]))  # (B, F, k)
        # d f / d x_{rf} = v_i * (s - x v_i), contracted with df over k
        dval = xp.sum(df[:, None, :] * Vg * (s[:, None, :] - sx.val[:, :, None] * Vg), axis=2)
    return dval, touched_grad(sx.uniq, dVu, sx.touched)


# ====================================================================== dense layers
def affine_forward(x, W, b):
    """a = x W + b.   x : (B, D), W : (D, M), b : (M,)  ->  a : (B, M)."""
    a = x @ W                                     # (B, M)
    a += b                                        # in place: no second (B, M) array
    return a, (x, W)


def affine_backward(da, cache):
    """dx = da W^T (B, D);  dW = x^T da (D, M);  db = sum_r da (M,)."""
    x, W = cache
    return da @ W.T, x.T @ da, batch_sum(da)


ACTIVATIONS = ("relu", "sigmoid", "tanh", "identity")


def check_activation(name):
    if name not in ACTIVATIONS:
        raise OptionError(f"unknown activation {name!r}: expected one of {', '.join(ACTIVATIONS)}")
    return name


def activation_forward(a, name):
    r"""z = act(a) elementwise; ``name`` in relu, sigmoid, tanh, identity.

    sigmoid is written 1/2 (1 + tanh(a/2)), which never overflows.
    Returns z and cache (name, a, z).
    """
    xp = B.get_xp(a)
    check_activation(name)
    if name == "relu":
        z = xp.maximum(a, 0.0)
    elif name == "sigmoid":
        z = 0.5 * (1.0 + xp.tanh(0.5 * a))
    elif name == "tanh":
        z = xp.tanh(a)
    else:
        z = a
    return z, (name, a, z)


def activation_backward(dz, cache):
    r"""relu' = [a > 0] (0 at the kink);  sigmoid' = z (1 - z);  tanh' = 1 - z^2;  identity' = 1."""
    name, a, z = cache
    if name == "relu":
        da = B.astype(a > 0, dz.dtype)          # (a multiply: np.where is 10x slower on random masks)
        da *= dz
        return da
    if name == "sigmoid":
        return dz * z * (1.0 - z)
    if name == "tanh":
        return dz * (1.0 - z * z)
    return dz


def dropout_forward(x, keep_prob, rng=None, train=True, mask=None):
    r"""Inverted dropout: z = x * m / p with m ~ Bernoulli(p), p = ``keep_prob``.

    Dividing by p in training keeps E[z] = x, so evaluation is the identity.
    ``rng`` (a ``backend.Random``) draws the mask; pass ``mask`` (already
    divided by p) to fix it, as a gradient check must.
    Returns z and cache (the scaled mask, or None when nothing was dropped).
    """
    if not (0.0 < keep_prob <= 1.0):
        raise OptionError(f"keep probability must be in (0, 1], got {keep_prob}")
    if not train or keep_prob == 1.0:
        return x, None
    if mask is None:
        mask = B.astype(rng.bernoulli(x.shape, keep_prob), x.dtype)         # (B, D) m, 1 w.p. p
        mask *= 1.0 / keep_prob                                             # (B, D) m / p
    return x * mask, mask


def dropout_backward(dz, cache):
    """dx = dz * m / p (the same mask)."""
    return dz if cache is None else dz * cache


def batchnorm_forward(x, gamma, beta, running_mean, running_var, train=True, decay=0.9, eps=1e-3):
    r"""Batch normalisation over the batch axis, as TF1's ``batch_norm`` in the original.

    Training: mu, var = batch mean and (biased) variance;
    xhat = (x - mu) / sqrt(var + eps); y = gamma xhat + beta; the running
    averages move by ``decay``: r <- decay r + (1 - decay) batch_stat.
    Evaluation: mu, var = the running averages, nothing is updated.

    Parameters
    ----------
    x : (B, D);  gamma, beta, running_mean, running_var : (D,)

    Returns
    -------
    y : (B, D)
    cache : (xc, rstd, gamma, train) with xc = x - mu and rstd = 1/sqrt(var + eps):
        xhat = xc rstd is never stored; y is computed as xc (gamma rstd) + beta,
        one pass over the (B, D) array fewer than forming xhat first
    running : (new_mean, new_var), the running averages after this call
    """
    xp = B.get_xp(x)
    if train:
        mu = batch_mean(x)                                       # (D,)   batch mean
        xc = x - mu                                              # (B, D)
        var = batch_mean(xc * xc)                                # (D,)   biased variance, as TF
        running = (decay * running_mean + (1 - decay) * mu, decay * running_var + (1 - decay) * var)
    else:
        xc, var = x - running_mean, running_var
        running = (running_mean, running_var)
    rstd = 1.0 / xp.sqrt(var + eps)                              # (D,)
    y = xc * (gamma * rstd)                                      # (B, D)  gamma xhat
    y += beta
    return y, (xc, rstd, gamma, train), running


def batchnorm_backward(dy, cache):
    r"""Backward of batch normalisation (training mode: mu and var depend on x).

    With B = batch size (rows r), dgamma = sum_r dy xhat and dbeta = sum_r dy:

    dL/dx = gamma rstd ( dy - (dbeta + xhat dgamma) / B )

    Derivation: let g = dL/dxhat = dy gamma and xhat_r = (x_r - mu) rstd. Then
    dL/dvar = sum_r g_r (x_r - mu) (-1/2) rstd^3,
    dL/dmu = -rstd sum_r g_r (the var term vanishes: sum_r (x_r - mu) = 0),
    dL/dx_r = g_r rstd + dL/dvar 2 (x_r - mu)/B + dL/dmu / B
            = rstd / B ( B g_r - sum g - xhat_r sum (g xhat) ),
    and sum g = gamma dbeta, sum (g xhat) = gamma dgamma give the line above
    (the two sums the parameter gradients need anyway are reused).
    In evaluation mode mu and var are constants: dL/dx = gamma rstd dy.
    With xhat = xc rstd the code below never forms xhat (one pass fewer).

    Returns (dx (B, D), dgamma (D,), dbeta (D,)).
    """
    xc, rstd, gamma, train = cache
    dgamma = batch_sum(dy * xc) * rstd                           # (D,)   sum_r dy xhat
    dbeta = batch_sum(dy)                                        # (D,)
    scale = gamma * rstd                                         # (D,)
    dx = dy * scale                                              # (B, D)
    if train:
        c = scale * (1.0 / dy.shape[0])                          # (D,)   gamma rstd / B
        dx -= xc * (c * rstd * dgamma)                           # - gamma rstd xhat dgamma / B
        dx -= c * dbeta                                          # - gamma rstd dbeta / B
    return dx, dgamma, dbeta


def projection_forward(z, h):
    """NFM's prediction layer f = z . h (no bias).   z : (B, D), h : (D,)  ->  (B,)."""
    return z @ h, (z, h)


def projection_backward(df, cache):
    """dz = df h^T (B, D);  dh = z^T df (D,)."""
    z, h = cache
    return df[:, None] * h[None, :], z.T @ df
