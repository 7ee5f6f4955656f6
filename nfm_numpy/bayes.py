r"""Bayesian factorization machine by Gibbs sampling (MCMC), derived and written by hand.

This is Rendle's MCMC solver for the FM ("Factorization Machines with libFM",
ACM TIST 3(3), 2012; libFM's default solver), with the sweep vectorised over
blocks of features that never share a row.

The model
---------
For a row with values x_i (padding: x = 0) the FM predicts

.. math::
    \hat y(x) = w_0 + \sum_i w_i x_i
        + \sum_{f=1}^{k} \tfrac12 \Big[ s_f^2 - \sum_i v_{if}^2 x_i^2 \Big],
    \qquad s_f = \sum_i v_{if} x_i,

with ``w0`` (), ``w`` (n,), ``V`` (n, k), as everywhere in the package. A
feature id may appear at most once in a row here (the model must be linear in
each parameter, below); a repeated id is refused.

Priors (Rendle 2012, section 4.2)
---------------------------------
Every feature i belongs to a prior group g(i) (default: one group; e.g. one
group per field of the CSV encoder):

.. math::
    w_0 \sim N(0, 1/\lambda_{w_0}),\quad
    w_i \sim N(\mu^w_{g}, 1/\lambda^w_{g}),\quad
    v_{if} \sim N(\mu^v_{gf}, 1/\lambda^v_{gf}),\quad
    y \mid x \sim N(\hat y(x), 1/\alpha),

and the hyper-priors are Normal-Gamma (for every group g, and every factor f
for V), with the noise precision Gamma:

.. math::
    \lambda \sim \mathrm{Gamma}(a_0, b_0),\quad
    \mu \mid \lambda \sim N(\mu_0, 1/(\gamma_0 \lambda)),\quad
    \alpha \sim \mathrm{Gamma}(a_\alpha, b_\alpha)
    \quad\text{(shape, rate)}.

``Prior()``'s defaults a0 = b0 = a_alpha = b_alpha = 1/2, gamma0 = 1,
mu0 = 0 and lambda_w0 = 0 (a flat prior on w0) are libFM's. libFM writes
its Gammas as Gamma(alpha_0/2, gamma_0/2), with alpha_0 = gamma_0 = 1, so
a0 = a_alpha = alpha_0/2 and b0 = b_alpha = gamma_0/2; its beta_0 = 1 is
mu's coupling, mu | lambda ~ N(mu_0, 1/(beta_0 lambda)): this module's
gamma0.

1. Every parameter enters linearly
----------------------------------
Pick one parameter theta and hold all others fixed. Then

.. math::
    \hat y(x) = g_\theta(x) + \theta\, h_\theta(x),

with g and h free of theta:

* theta = w0:   h = 1;
* theta = w_i:  h = x_i;
* theta = v_if: expand s_f = v_if x_i + (s_f - v_if x_i). The square
  s_f^2 holds v_if^2 x_i^2, which cancels against the same term of the
  sum of squares, so

  .. math::
      h_{v_{if}}(x) = x_i (s_f - v_{if} x_i) = x_i q_f,
      \qquad q_f = s_f - v_{if} x_i = \sum_{j \ne i} v_{jf} x_j

  (the FM's derivative d y / d v_if, which does not depend on v_if).

2. The Gaussian conditional of one parameter
--------------------------------------------
Write e_r = y_r - yhat_r for the residual of training row r. With
theta's prior N(mu, 1/lambda), the log posterior of theta given everything
else is, up to a constant,

.. math::
    -\tfrac{\alpha}{2} \sum_r (y_r - g_r - \theta h_r)^2 - \tfrac{\lambda}{2}(\theta - \mu)^2,

a quadratic in theta: a Gaussian with

.. math::
    P = \alpha \sum_r h_r^2 + \lambda, \qquad
    m = \frac{\alpha \sum_r h_r (y_r - g_r) + \lambda \mu}{P},
    \qquad \theta \sim N(m, 1/P).

The sampler never forms g: y_r - g_r = e_r + theta_old h_r, so

.. math::
    m = \frac{\alpha \big(\sum_r h_r e_r + \theta_{old} \sum_r h_r^2\big) + \lambda\mu}{P}.

After the draw, every residual moves by the change of the prediction, and so
does s_f when theta = v_if:

.. math::
    e_r \leftarrow e_r - (\theta_{new} - \theta_{old}) h_r, \qquad
    s_{rf} \leftarrow s_{rf} + (v_{new} - v_{old}) x_{ri}.

Only the rows where x_i != 0 change, so one draw costs O(rows of i), and a
sweep over every parameter O(k nnz): libFM's bookkeeping, kept here as ``e``
(N,) and ``s`` (k arrays of shape (N,)). In float64 the incremental updates
drift by about 1e-16 per update; ``GibbsFM.refresh()`` recomputes both.

For w0 this is h = 1: P = alpha N + lambda_w0, m = (alpha (sum_r e_r +
N w0) + 0) / P. For w_i, sum_r h_r^2 = sum_r x_ri^2 is fixed by the data
(computed once).

3. A block at once: features that never share a row
---------------------------------------------------
Take a set of features b such that no row has two of them (a one-hot field:
every row has exactly one of its values). For one factor f, the joint log
posterior of (v_if)_{i in b} is a sum over rows, and each row holds at most
one of them, so there is no cross term theta_i theta_j: the joint
precision matrix alpha H^T H + diag(lambda) is diagonal (H_{ri} = h_{v_if}(x_r)
has one nonzero per row). Given everything outside the block the block's
parameters are independent, each with the conditional of section 2, and
the whole block is drawn at once: the per-feature sums sum_r h_r^2 and
sum_r h_r e_r are scatter-adds over the block's rows (one sparse product
``X_b.T @``, with X_b the (rows, n_b) matrix of the block's values), and the
updates of e and s_f touch each row at most once (no accumulation). Drawing
the block at once equals drawing its coordinates one after the other; with
the normal numbers indexed by feature (this module draws them so), it gives
the very same numbers (``tests/test_bayes.py`` checks it). The same holds for
w.

Which blocks? ``blocks='auto'`` starts from the prior groups (one group: all
features) and splits each into blocks that are safe, greedily: features in
id order, each taking the first block that no feature of its rows already
holds. A one-hot field given as a group stays one block. A multi-valued
field (genres) or real-valued features that share rows are split into as
many blocks as the coloring needs: still exact Gibbs, drawn block by block
(a block Gaussian over rows that do share features would need a Cholesky
factor per block; not done). ``blocks='coordinate'`` draws one feature at a
time (the textbook order, slow: the reference for the tests). An explicit
array of block ids is checked, and a block whose features share a row is
split the same greedy way.

4. Hyper-parameters: Normal-Gamma conjugacy
-------------------------------------------
For group g with n_g parameters theta_j (the w_i of the group, or the v_if
of the group for one f), mean tbar and S = sum_j (theta_j - tbar)^2, the
Normal-Gamma prior is conjugate; (mu, lambda) is drawn jointly
(lambda from its marginal, then mu given lambda):

.. math::
    \gamma_n = \gamma_0 + n_g,\quad
    \mu_n = \frac{\gamma_0 \mu_0 + n_g \bar\theta}{\gamma_n},\quad
    a_n = a_0 + \tfrac{n_g}{2},\quad
    b_n = b_0 + \tfrac12\Big[S + \frac{\gamma_0 n_g (\bar\theta - \mu_0)^2}{\gamma_n}\Big],

.. math::
    \lambda \sim \mathrm{Gamma}(a_n, b_n), \qquad \mu \mid \lambda \sim N(\mu_n, 1/(\gamma_n \lambda)).

(libFM draws lambda given mu, then mu given lambda: the same stationary
distribution; the joint draw mixes a little faster.) The noise precision:
the likelihood is alpha^{N/2} exp(-alpha/2 sum_r e_r^2), so

.. math::
    \alpha \sim \mathrm{Gamma}(a_\alpha + N/2,\; b_\alpha + \tfrac12 \sum_r e_r^2).

5. Binary labels: probit with latent variables (Albert and Chib, 1993)
---------------------------------------------------------------------
P(y = 1 | x) = Phi(yhat(x)). Equivalently z ~ N(yhat, 1) and y = [z > 0].
Given the parameters, each z_r is N(yhat_r, 1) truncated to z > 0 (y = 1) or
z <= 0 (y = 0); given z, the model is the regression above with targets z and
alpha = 1. The truncated draw is an inverse CDF in log space (stable far in
the tails): for sigma = +1 (y = 1) or -1 (y = 0) and u ~ U(0, 1],

.. math::
    z = \hat y - \sigma\, \Phi^{-1}\big(u\, \Phi(\sigma \hat y)\big)

(t = Phi^{-1}(u Phi(sigma yhat)) is a standard normal truncated to
t <= sigma yhat, so z - yhat = -sigma t lies on the label's side).
Predictions are the posterior mean of Phi(yhat).

Prediction, samples and backends
--------------------------------
``fit`` runs ``burn_in`` sweeps, then ``n_samples`` sweeps; after each of
those it adds the predictions on the rows given as ``test`` to a running mean
(libFM's way: every sample counts), and keeps ``keep`` of the samples of
(w0, w, V), evenly spaced, so that ``BayesFM.predict`` can average over them
for rows seen later (``BayesFM.arrays()`` are what a checkpoint stores).

The arithmetic is float64 on the arrays' backend (NumPy, CuPy or any
Array-API namespace: ``xp = get_xp(...)``). Random numbers come from one
seeded ``numpy.random.Generator`` on the host and are moved to the device
explicitly (a seed gives the same chain on every backend). Explicit host
copies, on purpose: the row structure (idx, val) once at setup to find the
blocks; the small group sums for the hyper-parameter draws; and, for probit on
a non-NumPy backend, yhat once a sweep for the truncated draw and Phi (the
Array API has no ndtri).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from scipy import special

from . import backend as B, errors as E
from .data import validate

TASKS = ("regression", "probit")
FROZEN = ("w0", "w", "V", "hyper", "alpha")


class Prior(NamedTuple):
    """Hyper-priors (shape/rate Gammas). Defaults: libFM's."""

    a0: float = 0.5          # lambda ~ Gamma(a0, b0) for every group (w and each factor of V)
    b0: float = 0.5
    gamma0: float = 1.0      # mu | lambda ~ N(mu0, 1 / (gamma0 lambda))
    mu0: float = 0.0
    a_alpha: float = 0.5     # noise precision alpha ~ Gamma(a_alpha, b_alpha)
    b_alpha: float = 0.5
    lambda_w0: float = 0.0   # w0 ~ N(0, 1 / lambda_w0); 0: flat


def check_prior(prior):
    if prior is None:
        return Prior()
    if not isinstance(prior, Prior):
        raise E.OptionTypeError(f"prior must be a nfm_numpy.bayes.Prior, got {type(prior).__name__}")
    for name in ("a0", "b0", "gamma0", "a_alpha", "b_alpha"):
        E.real(getattr(prior, name), f"prior.{name}", 0.0, lo_open=True)
    E.real(prior.mu0, "prior.mu0")
    E.real(prior.lambda_w0, "prior.lambda_w0", 0.0)
    return prior


class Block(NamedTuple):
    """Features drawn at once: no two of them share a row."""

    feat: Any      # (n_b,) their ids, ascending
    rows: Any      # (R,) the rows they touch, ascending; None: every row, the r-th entry of X is row r
    X: Any         # BatchMatrix (R, n_b): X[j, i] = x of feature feat[i] in row j (one entry per row)
    X2: Any        # BatchMatrix (R, n_b) of x^2 (X itself when every x is 0 or 1)
    xx: Any        # (n_b,) sum over rows of x^2 for each feature
    group: Any     # (n_b,) the prior group of each feature


# ------------------------------------------------------------------ structure (host, once)
def _entries(idx, val):
    """Rows, ids and values of the nonzero entries (host NumPy); a repeated id in a row is refused."""
    r, c = np.nonzero(val != 0)
    feat = idx[r, c]
    key = np.sort(np.where(val != 0, idx, -1), axis=1)                      # (N, F) padding first
    dup = (key[:, 1:] == key[:, :-1]) & (key[:, 1:] >= 0)
    if dup.any():
        row = int(np.flatnonzero(dup.any(axis=1))[0])
        i = int(key[row, 1:][dup[row]][0])
        raise E.DataError(f"row {row} holds feature id {i} twice; the Gibbs sampler needs each feature at most "
                          "once per row (merge the entries: x_i = the sum of their values)")
    return r, feat, val[r, c]


def _color(feats, starts, rows_by_feat, n_rows):
    """Greedy coloring: ``feats`` in order, each the smallest color no feature of its rows holds.
    Returns (len(feats),) colors. Row masks are 64-bit words, added as more colors are needed."""
    mask = np.zeros((n_rows, 1), dtype=np.uint64)
    colors = np.empty(len(feats), dtype=np.int64)
    for j, i in enumerate(feats):
        rr = rows_by_feat[starts[i]:starts[i + 1]]
        used = np.bitwise_or.reduce(mask[rr], axis=0) if rr.size else np.zeros(mask.shape[1], np.uint64)
        free = np.flatnonzero(used != np.uint64(2**64 - 1))
        if free.size == 0:
            mask = np.concatenate([mask, np.zeros((n_rows, 1), np.uint64)], axis=1)
            word, bits = mask.shape[1] - 1, 0
        else:
            word, bits = int(free[0]), int(used[free[0]])
        bit = ((~bits) & (bits + 1)).bit_length() - 1                      # lowest zero bit
        colors[j] = 64 * word + bit
        mask[rr, word] |= np.uint64(1 << bit)
    return colors


def safe_blocks(idx, val, n_features, start=None):
    """A partition of the features into blocks whose features never share a row (host NumPy).

    ``start``: (n,) candidate block ids (e.g. fields); each candidate is kept whole if it is
    safe, else split greedily (see the module notes). Returns (n,) block ids 0..nb-1, numbered
    by candidate, then by color. A feature without entries joins the first block of its candidate.
    """
    r, feat, _ = _entries(idx, val)
    n = n_features
    start = np.zeros(n, dtype=np.int64) if start is None else np.unique(start, return_inverse=True)[1]
    order = np.argsort(feat, kind="stable")
    rows_by_feat = r[order]                                                 # (nnz,) rows, by feature
    starts = np.searchsorted(feat[order], np.arange(n + 1))                 # (n+1,)
    cand_of_entry = start[feat]
    block = np.empty(n, dtype=np.int64)
    next_id = 0
    for c in range(int(start.max()) + 1):
        members = np.flatnonzero(start == c)                                # ascending ids
        if members.size == 0:
            continue
        per_row = np.bincount(r[cand_of_entry == c], minlength=idx.shape[0])
        if per_row.max(initial=0) <= 1:                                     # already safe (one-hot field)
            colors = np.zeros(members.size, dtype=np.int64)
        else:
            colors = _color(members, starts, rows_by_feat, idx.shape[0])
        used, colors = np.unique(colors, return_inverse=True)
        block[members] = next_id + colors
        next_id += used.size
    return block


def _check_partition(name, a, n, check=E.integer):
    a = np.asarray(B.to_numpy(a)) if hasattr(a, "shape") else np.asarray(a)
    if a.shape != (n,):
        raise E.OptionError(f"{name} must have one entry per feature, shape ({n},), got {a.shape}")
    if a.dtype.kind not in "iu":
        raise E.OptionTypeError(f"{name} must hold integer ids, got dtype {a.dtype}")
    if a.size and a.min() < 0:
        raise E.OptionError(f"{name} must hold ids >= 0, got {int(a.min())}")
    return a.astype(np.int64)


# ------------------------------------------------------------------ the model's value
def predict_fm(idx, val, w0, w, V, chunk=16384):
    """yhat (N,) of the FM with (w0, w, V) on rows (idx, val): sparse products, ``chunk`` rows at a time."""
    xp = B.get_xp(idx, val, w, V)
    n = w.shape[0]
    VV = V * V                                                              # (n, k)
    out = []
    for a in range(0, idx.shape[0], chunk):
        c = min(a + chunk, idx.shape[0])                                    # (the Array API: no stop past the end)
        i, x = idx[a:c, ...], val[a:c, ...]
        X, X2 = B.BatchMatrix(i, x, n), B.BatchMatrix(i, x * x, n)          # (c, n)
        S = X @ V                                                           # (c, k)
        out.append(w0 + X @ w + 0.5 * xp.sum(S * S - X2 @ VV, axis=1))       # (c,)
    if len(out) == 1:
        return out[0]
    return xp.concat(out) if hasattr(xp, "concat") else xp.concatenate(out)   # CuPy before 14: concatenate


def _phi(t):
    """Phi(t) on t's backend (NumPy: scipy; elsewhere: one explicit round trip to the host)."""
    if B.is_numpy(B.get_xp(t)):
        return special.ndtr(t)
    return B.to_device(special.ndtr(B.to_numpy(t)), B.get_xp(t), B.device_of(t))


def truncated_normal(rng, mean, positive):
    """z ~ N(mean, 1) truncated to z > 0 where ``positive``, else z <= 0 (host NumPy; module notes, 5)."""
    sigma = np.where(positive, 1.0, -1.0)                                   # (N,)
    u = 1.0 - rng.random(mean.shape)                                        # (N,) in (0, 1]
    t = special.ndtri_exp(np.log(u) + special.log_ndtr(sigma * mean))      # (N,) t <= sigma mean
    t = np.minimum(t, sigma * mean)                                         # u = 1 exactly: t = inf
    return mean - sigma * t


def _labels(y, task):
    """Training targets (float64 host) for ``task``; probit: 0/1 or -1/1 labels -> bool positives."""
    if task == "regression":
        return None
    yy = np.asarray(B.to_numpy(y), dtype=np.float64)
    vals = set(np.unique(yy).tolist())
    if not (vals <= {0.0, 1.0} or vals <= {-1.0, 1.0}):
        shown = ", ".join(f"{v:g}" for v in sorted(vals)[:6])
        raise E.DataError(f"y: probit needs labels 0/1 or -1/1, found {shown}")
    return yy > 0


# ------------------------------------------------------------------ the sampler
class GibbsFM:
    """The sampler's state and one Gibbs sweep (see the module notes for every formula).

    Parameters
    ----------
    idx : (N, F) int, val : (N, F) float, y : (N,) float   training rows (any backend)
    n_features : int         n
    k : int                  factors per feature (>= 1)
    task : str               'regression' (Gaussian noise) or 'probit' (labels 0/1 or -1/1)
    groups : (n,) int or None   prior group of each feature (None: one group)
    blocks : 'auto', 'coordinate' or (n,) int   which features are drawn at once (module notes, 3)
    prior : Prior or None
    init_std : float         V starts N(0, init_std^2); w0 = w = 0, mu = 0, lambda = alpha = 1
    seed : int               the numpy Generator of every draw
    frozen : sequence        parts held fixed: 'w0', 'w', 'V', 'hyper', 'alpha' (tests, teaching)

    State: ``w0`` (float), ``w`` (n,), ``Vc`` (k arrays (n,): V's columns), ``e`` (N,) residuals,
    ``s`` (k arrays (N,)), ``target`` (N,) y or the probit's latent z, ``alpha``, and the host
    arrays ``mu_w``, ``lam_w`` (G,), ``mu_v``, ``lam_v`` (G, k).
    """

    def __init__(self, idx, val, y, n_features, k=8, task="regression", groups=None, blocks="auto",
                 prior=None, init_std=0.1, seed=0, frozen=()):
        n = E.integer(n_features, "n_features", 1)
        self.k = E.integer(k, "k", 1)
        self.task = E.choice(task, "task", TASKS)
        self.prior = check_prior(prior)
        init_std = E.real(init_std, "init_std", 0.0)
        seed = E.integer(seed, "seed", 0)
        if isinstance(frozen, str):
            frozen = (frozen,)
        self.frozen = frozenset(E.choice(p, "frozen", FROZEN) for p in frozen)
        validate(idx, val, y, n, where="train")
        xp = self.xp = B.get_xp(idx, val, y)
        self.n_features, self.N = n, idx.shape[0]
        f64 = xp.float64
        val, y = B.astype(val, f64), B.astype(y, f64)
        self.idx, self.val = idx, val
        self.rng = np.random.default_rng(seed)
        like = val

        # structure, on the host once (explicit copies): blocks and groups
        h_idx, h_val = np.asarray(B.to_numpy(idx)), np.asarray(B.to_numpy(val))
        r, feat, x = _entries(h_idx, h_val)
        if groups is None:
            group = np.zeros(n, dtype=np.int64)
        else:
            group = np.unique(_check_partition("groups", groups, n), return_inverse=True)[1]
        self.group, self.G = group, int(group.max()) + 1
        self.group_size = np.bincount(group, minlength=self.G).astype(np.float64)     # (G,)
        if isinstance(blocks, str):
            E.choice(blocks, "blocks", ("auto", "coordinate"))
            part = np.arange(n) if blocks == "coordinate" else safe_blocks(h_idx, h_val, n, group)
        else:
            part = safe_blocks(h_idx, h_val, n, _check_partition("blocks", blocks, n))
        self.block_of = part
        self.blocks = [self._block(np.flatnonzero(part == b), r, feat, x, like) for b in range(int(part.max()) + 1)]
        self.positive = _labels(y, self.task)                              # host bool (N,) or None
        dev = B.device_of(like)
        self._dev = lambda a: B.to_device(a, xp, dev)
        self.group_dev = self._dev(group)
        self.Mg = B.BatchMatrix(self._dev(group[:, None]), B.ones((n, 1), like=like), self.G)  # (n, G)

        # initial state: w0 = 0, V ~ N(0, init_std^2), alpha = 1, mu = 0 as libFM's; w = 0 and lambda = 1
        # here, where libFM's MCMC starts w ~ N(0, init_std^2) (libfm.cpp: fm.w.init_normal) and lambda = 0.
        # w's start enters the first sweep (its alpha and its (mu, lambda) of w: a zero start gives a large
        # first lambda_w), so the first sweeps differ from libFM's, and burn-in drops them. Each lambda is
        # drawn before the weights that use it, so its start value is never used, unless frozen=('hyper',)
        # keeps it.
        self.w0, self.alpha = 0.0, 1.0
        self.w = B.zeros((n,), like=like)
        Vt = self._dev(init_std * self.rng.standard_normal((self.k, n)))   # (k, n) drawn on the host
        self.Vc = list(Vt) if B.is_numpy(xp) or B.is_cupy(xp) else [Vt[f, :] for f in range(self.k)]
        self.mu_w, self.lam_w = np.zeros(self.G), np.ones(self.G)
        self.mu_v, self.lam_v = np.zeros((self.G, self.k)), np.ones((self.G, self.k))
        self.target = y if self.task == "regression" else B.zeros((self.N,), like=like)
        self.n_sweeps = 0
        self.refresh()

    def _block(self, members, r, feat, x, like):
        """One ``Block`` on the device from the host entries of features ``members``."""
        local = np.full(self.n_features, -1, dtype=np.int64)
        local[members] = np.arange(members.size)
        sel = local[feat] >= 0
        rows, loc, xb = r[sel], local[feat][sel], x[sel]                    # (R,) one entry per row
        order = np.argsort(rows, kind="stable")
        rows, loc, xb = rows[order], loc[order], xb[order]
        if rows.size > self.N // 2:                                         # cover every row: x = 0 elsewhere
            full_loc, full_x = np.zeros(self.N, dtype=np.int64), np.zeros(self.N)
            full_loc[rows], full_x[rows] = loc, xb
            rows, loc, xb = None, full_loc, full_x
        binary = bool(np.all((xb == 0) | (xb == 1)))
        xx = np.bincount(loc, weights=xb * xb, minlength=members.size)
        d = self._dev_of(like)
        X = B.BatchMatrix(d(loc[:, None]), d(xb[:, None]), members.size)
        X2 = X if binary else B.BatchMatrix(d(loc[:, None]), d((xb * xb)[:, None]), members.size)
        return Block(d(members), None if rows is None else d(rows), X, X2, d(xx), d(self.group[members]))

    @staticmethod
    def _dev_of(like):
        xp, dev = B.get_xp(like), B.device_of(like)
        return lambda a: B.to_device(a, xp, dev)

    # -------------------------------------------------------------- state
    @property
    def V(self):
        """(n, k) the current V (a new array)."""
        return self.xp.stack(self.Vc, axis=1)

    def set_V(self, feats, f, values):
        """Set ``V[feats, f] = values`` in the state, then ``refresh()`` (``s`` and ``e`` from scratch).

        ``V`` is a new array on every read, so ``sampler.V[feats, f] = values`` changes nothing; this
        puts a column (or part of one) drawn outside the sampler into it. ``feats`` (m,) distinct
        feature ids, ``f`` a factor, ``values`` (m,) (host or backend arrays; copied).
        """
        f = E.integer(f, "f", 0, self.k - 1)
        host = [np.asarray(a if isinstance(a, (list, tuple)) else B.to_numpy(a)) for a in (feats, values)]
        feats, values = host[0].ravel(), host[1].astype(np.float64).ravel()
        if not np.issubdtype(feats.dtype, np.integer):
            raise E.OptionTypeError(f"feats must hold integer feature ids, got dtype {feats.dtype}")
        if feats.shape != values.shape:
            raise E.OptionError(f"values must have one entry per id of feats, shape {feats.shape}, got {values.shape}")
        if feats.size and (feats.min() < 0 or feats.max() >= self.n_features or np.unique(feats).size < feats.size):
            raise E.OptionError(f"feats must hold distinct ids in [0, {self.n_features})")
        self.Vc[f] = B.put_rows(self.Vc[f], self._dev(feats.astype(np.int64)), self._dev(values))
        self.refresh()

    def predict_train(self):
        """yhat (N,) of the current parameters on the training rows, from scratch."""
        return predict_fm(self.idx, self.val, self.w0, self.w, self.V)

    def refresh(self):
        """Recompute ``s`` and ``e`` from scratch (the incremental updates drift by rounding only)."""
        xp = self.xp
        S = B.BatchMatrix(self.idx, self.val, self.n_features) @ self.V      # (N, k)
        if B.is_numpy(xp) or B.is_cupy(xp):
            self.s = list(xp.ascontiguousarray(S.T))                        # k views (N,)
        else:
            self.s = [S[:, f] for f in range(self.k)]
        self.e = self.target - self.predict_train()                         # (N,)

    def _prior_vectors(self, mu, lam):
        """lambda and lambda mu per feature (n,) (or (k, n) for V) on the device, from the group values."""
        g = self.group
        return self._dev(np.ascontiguousarray(lam[g].T)), self._dev(np.ascontiguousarray((lam * mu)[g].T))

    # -------------------------------------------------------------- conditionals
    def _rows(self, a, blk):
        return a if blk.rows is None else self.xp.take(a, blk.rows, axis=0)

    def w_conditional(self, b, lam=None, lm=None):
        """Mean and precision (n_b,) of w's block ``b`` given everything else (module notes, 2-3)."""
        xp, blk = self.xp, self.blocks[b]
        if lam is None:
            lam, lm = self._prior_vectors(self.mu_w, self.lam_w)
        w_old = xp.take(self.w, blk.feat, axis=0)                           # (n_b,)
        he = blk.X.T @ self._rows(self.e, blk)                              # (n_b,) sum_r x_r e_r
        prec = self.alpha * blk.xx + xp.take(lam, blk.feat, axis=0)         # (n_b,)
        mean = (self.alpha * (he + w_old * blk.xx) + xp.take(lm, blk.feat, axis=0)) / prec
        return mean, prec

    def v_conditional(self, f, b, lam=None, lm=None, _keep=None):
        """Mean and precision (n_b,) of V[:, f]'s block ``b`` given everything else (module notes, 1-3)."""
        xp, blk = self.xp, self.blocks[b]
        if lam is None:
            lam, lm = self._prior_vectors(self.mu_v, self.lam_v)
            lam, lm = lam[f, :], lm[f, :]
        v_old = xp.take(self.Vc[f], blk.feat, axis=0)                       # (n_b,)
        s_b, e_b = self._rows(self.s[f], blk), self._rows(self.e, blk)      # (R,)
        q = s_b - blk.X @ v_old                                             # (R,) s_f without i's own term
        hh = blk.X2.T @ (q * q)                                             # (n_b,) sum_r h^2, h = x q
        he = blk.X.T @ (q * e_b)                                            # (n_b,) sum_r h e
        prec = self.alpha * hh + xp.take(lam, blk.feat, axis=0)
        mean = (self.alpha * (he + v_old * hh) + xp.take(lm, blk.feat, axis=0)) / prec
        if _keep is not None:
            _keep.extend((v_old, q, s_b, e_b))
        return mean, prec

    # -------------------------------------------------------------- draws
    def _normal(self, shape):
        return self._dev(self.rng.standard_normal(shape))

    def draw_latent(self):
        """Probit: z_r ~ N(yhat_r, 1) truncated to the label's side; e = z - yhat (module notes, 5)."""
        yhat = self.target - self.e                                         # (N,)
        z = self._dev(truncated_normal(self.rng, np.asarray(B.to_numpy(yhat)), self.positive))
        self.e = z - yhat
        self.target = z

    def draw_alpha(self):
        sse = float(self.xp.sum(self.e * self.e))
        p = self.prior
        self.alpha = float(self.rng.gamma(p.a_alpha + self.N / 2, 1.0 / (p.b_alpha + sse / 2)))

    def w0_conditional(self):
        """Mean and precision of w0 given everything else: h = 1, prior N(0, 1/lambda_w0)."""
        prec = self.alpha * self.N + self.prior.lambda_w0
        return self.alpha * (float(self.xp.sum(self.e)) + self.N * self.w0) / prec, prec

    def draw_w0(self):
        mean, prec = self.w0_conditional()
        new = mean + float(self.rng.standard_normal()) / math.sqrt(prec)
        self.e = self.e - (new - self.w0)
        self.w0 = new

    def _normal_gamma(self, theta):
        """Joint draw of (mu, lambda) per group from theta (n,) or (n, k) (module notes, 4). Host arrays."""
        xp, p = self.xp, self.prior
        cnt = self.group_size if theta.ndim == 1 else self.group_size[:, None]
        S1 = np.asarray(B.to_numpy(self.Mg.T @ theta))                     # (G,) or (G, k)
        tbar = S1 / cnt
        d = theta - xp.take(self._dev(tbar), self.group_dev, axis=0)       # (n,) or (n, k)
        S = np.asarray(B.to_numpy(self.Mg.T @ (d * d)))
        gam_n = p.gamma0 + cnt
        mu_n = (p.gamma0 * p.mu0 + S1) / gam_n
        a_n = np.broadcast_to(p.a0 + cnt / 2, S1.shape)
        b_n = p.b0 + 0.5 * (S + p.gamma0 * cnt * (tbar - p.mu0) ** 2 / gam_n)
        lam = self.rng.gamma(a_n, 1.0 / b_n)
        mu = mu_n + self.rng.standard_normal(S1.shape) / np.sqrt(gam_n * lam)
        return mu, lam

    def draw_w(self):
        xp = self.xp
        z = self._normal(self.n_features)                                   # (n,) one number per feature
        lam, lm = self._prior_vectors(self.mu_w, self.lam_w)
        for b, blk in enumerate(self.blocks):
            mean, prec = self.w_conditional(b, lam, lm)
            w_old = xp.take(self.w, blk.feat, axis=0)
            w_new = mean + xp.take(z, blk.feat, axis=0) / xp.sqrt(prec)     # (n_b,)
            dx = blk.X @ (w_new - w_old)                                    # (R,) change of x_i w_i per row
            if blk.rows is None:
                self.e -= dx
            else:
                self.e = B.put_rows(self.e, blk.rows, xp.take(self.e, blk.rows, axis=0) - dx)
            self.w = B.put_rows(self.w, blk.feat, w_new)

    def draw_V(self):
        xp = self.xp
        Z = self._normal((self.k, self.n_features))                         # (k, n)
        LAM, LM = self._prior_vectors(self.mu_v, self.lam_v)                # (k, n)
        for f in range(self.k):
            z, lam, lm = Z[f, :], LAM[f, :], LM[f, :]
            for b, blk in enumerate(self.blocks):
                keep = []
                mean, prec = self.v_conditional(f, b, lam, lm, keep)
                v_old, q, s_b, e_b = keep
                v_new = mean + xp.take(z, blk.feat, axis=0) / xp.sqrt(prec)  # (n_b,)
                dx = blk.X @ (v_new - v_old)                                # (R,) change of x_i v_if per row
                if blk.rows is None:
                    self.e -= dx * q                                        # h = x q: e -= dv x q
                    self.s[f] += dx
                else:
                    self.e = B.put_rows(self.e, blk.rows, e_b - dx * q)
                    self.s[f] = B.put_rows(self.s[f], blk.rows, s_b + dx)
                self.Vc[f] = B.put_rows(self.Vc[f], blk.feat, v_new)

    def sweep(self):
        """One Gibbs sweep: latent z (probit), alpha, w0, (mu, lambda) of w, w, (mu, lambda) of V, V."""
        fr = self.frozen
        if self.task == "probit":
            self.draw_latent()
        elif "alpha" not in fr:
            self.draw_alpha()
        if "w0" not in fr:
            self.draw_w0()
        if "hyper" not in fr:
            self.mu_w, self.lam_w = self._normal_gamma(self.w)
        if "w" not in fr:
            self.draw_w()
        if "hyper" not in fr:
            self.mu_v, self.lam_v = self._normal_gamma(self.V)
        if "V" not in fr:
            self.draw_V()
        self.n_sweeps += 1


# ------------------------------------------------------------------ the posterior
class BayesFM:
    """A fitted Bayesian FM: the kept samples and the running-mean predictions of ``fit``.

    Attributes: ``config`` (dict), ``w0`` (S,), ``w`` (S, n), ``V`` (S, n, k) the kept samples
    (on the training backend), ``test_pred`` (N_test,) the posterior mean prediction over all
    ``n_samples`` sweeps for the rows given to ``fit`` as ``test`` (None without), ``train_pred``
    (N,) the same on the training rows, ``trace`` (one dict per sweep: alpha, rmse of the sweep's
    sample on the training targets, and the running test metric when test labels were given),
    ``label_range`` ((lo, hi) of the training labels, or None; a checkpoint keeps it, as an NFM's).
    """

    def __init__(self, config, w0, w, V, test_pred=None, train_pred=None, trace=()):
        self.config = dict(config)
        self.w0, self.w, self.V = w0, w, V
        self.test_pred, self.train_pred, self.trace = test_pred, train_pred, list(trace)
        self.label_range = None

    @property
    def n_kept(self):
        return int(self.w.shape[0])

    def arrays(self):
        """name -> array: what a checkpoint stores (with ``config``)."""
        return {"w0": self.w0, "w": self.w, "V": self.V}

    @classmethod
    def from_arrays(cls, config, arrays):
        return cls(config, arrays["w0"], arrays["w"], arrays["V"])

    def predict(self, idx, val, chunk=16384):
        """Posterior mean over the kept samples: of yhat (regression) or Phi(yhat) (probit)."""
        if self.n_kept == 0:
            raise E.OptionError("this BayesFM kept no samples (fit with keep >= 1) and cannot predict new rows")
        validate(idx, val, None, self.config["n_features"], where="predict")
        xp = B.get_xp(idx, val, self.w)
        val = B.astype(val, xp.float64)
        total = None
        for t in range(self.n_kept):
            p = predict_fm(idx, val, self.w0[t], self.w[t, :], self.V[t, ...], chunk)
            if self.config["task"] == "probit":
                p = _phi(p)
            total = p if total is None else total + p
        return total / self.n_kept

    def __repr__(self):
        c = self.config
        return (f"BayesFM(task={c['task']!r}, n_features={c['n_features']}, k={c['k']}, samples={c['n_samples']}, "
                f"burn_in={c['burn_in']}, kept={self.n_kept})")


def _rows_of(data, name, need_y):
    """(idx, val, y) from a Dataset, a Batch or a tuple."""
    if hasattr(data, "idx") and hasattr(data, "val"):
        return data.idx, data.val, getattr(data, "y", None)
    if isinstance(data, tuple) and len(data) in (2, 3):
        return data[0], data[1], data[2] if len(data) == 3 else None
    raise E.OptionTypeError(f"{name} must be a Dataset, a Batch or a tuple (idx, val[, y]), got "
                            f"{type(data).__name__}")


def fit(train, test=None, k=8, n_samples=100, burn_in=20, task="regression", groups=None, blocks="auto",
        keep=100, prior=None, init_std=0.1, seed=0, n_features=None, on_sweep=None):
    """Sample the posterior of an FM by Gibbs sampling; returns a ``BayesFM``.

    Parameters
    ----------
    train : Dataset, Batch or (idx, val, y)   training rows
    test : Dataset, Batch, (idx, val[, y]) or None   rows whose posterior-mean prediction is
        accumulated during sampling (libFM's -test); with labels, the trace shows its metric
    k, task, groups, blocks, prior, init_std, seed : as ``GibbsFM``
    n_samples : int >= 1     sweeps after burn-in, each one a sample of the running mean
    burn_in : int >= 0       sweeps before (discarded)
    keep : int >= 0          samples of (w0, w, V) kept for ``BayesFM.predict`` (evenly spaced over
        the n_samples, the last included; at most n_samples)
    n_features : int         needed for a tuple or Batch (a Dataset carries it)
    on_sweep : callable(dict) or None   called with each sweep's trace record
    """
    n_samples = E.integer(n_samples, "n_samples", 1)
    burn_in = E.integer(burn_in, "burn_in", 0)
    keep = min(E.integer(keep, "keep", 0), n_samples)
    if on_sweep is not None and not callable(on_sweep):
        raise E.OptionTypeError(f"on_sweep must be callable, got {on_sweep!r}")
    idx, val, y = _rows_of(train, "train", True)
    if y is None:
        raise E.DataError("train: labels y are needed")
    if n_features is None:
        n_features = getattr(train, "n_features", None)
        if n_features is None:
            raise E.OptionError("n_features is needed when train is not a Dataset")
    sampler = GibbsFM(idx, val, y, n_features, k=k, task=task, groups=groups, blocks=blocks, prior=prior,
                      init_std=init_std, seed=seed)
    xp = sampler.xp
    t_idx = t_val = t_y = None
    if test is not None:
        t_idx, t_val, t_y = _rows_of(test, "test", False)
        validate(t_idx, t_val, t_y, sampler.n_features, where="test")
        if B.get_xp(t_idx, t_val) is not xp:
            raise E.OptionTypeError("test rows must be on the training rows' backend")
        t_val = B.astype(t_val, xp.float64)
        if t_y is not None:
            t_y = np.asarray(B.to_numpy(t_y), dtype=np.float64)
    kept_at = {n_samples - 1 - (i * n_samples) // keep for i in range(keep)}     # evenly spaced, the last in
    probit = sampler.task == "probit"
    t_sum = tr_sum = None
    kept = []
    trace = []
    for it in range(burn_in + n_samples):
        sampler.sweep()
        rec = {"sweep": it + 1, "alpha": sampler.alpha,
               "train_rmse": float(xp.sqrt(xp.mean(sampler.e * sampler.e)))}
        j = it - burn_in
        if j >= 0:
            yhat = sampler.target - sampler.e                                   # (N,)
            p = _phi(yhat) if probit else yhat
            tr_sum = p if tr_sum is None else tr_sum + p
            if test is not None:
                pt = predict_fm(t_idx, t_val, sampler.w0, sampler.w, sampler.V)  # (N_test,)
                pt = _phi(pt) if probit else pt
                t_sum = pt if t_sum is None else t_sum + pt
                if t_y is not None:
                    mean = np.asarray(B.to_numpy(t_sum)) / (j + 1)
                    rec["test_" + ("auc" if probit else "rmse")] = (
                        _auc(t_y, mean) if probit else float(np.sqrt(np.mean((t_y - mean) ** 2))))
            if j in kept_at:
                kept.append((sampler.w0, sampler.w + 0.0, sampler.V))                   # w: a copy, V: new
        trace.append(rec)
        if on_sweep is not None:
            on_sweep(rec)
    like = sampler.w
    if kept:
        w0 = B.to_device(np.array([t[0] for t in kept]), xp, B.device_of(like))
        w = xp.stack([t[1] for t in kept])                                      # (S, n)
        V = xp.stack([t[2] for t in kept])                                      # (S, n, k)
    else:
        w0, w, V = (B.zeros(s, like=like) for s in ((0,), (0, sampler.n_features),
                                                    (0, sampler.n_features, sampler.k)))
    config = dict(kind="bayes_fm", task=sampler.task, n_features=sampler.n_features, k=sampler.k,
                  n_samples=n_samples, burn_in=burn_in, keep=keep, seed=seed, init_std=init_std,
                  prior=sampler.prior._asdict(), n_groups=sampler.G, n_blocks=len(sampler.blocks))
    model = BayesFM(config, w0, w, V, None if t_sum is None else t_sum / n_samples, tr_sum / n_samples, trace)
    model.sampler = sampler
    return model


def _auc(y, score):
    from .metrics import auc
    return auc(y, score)


__all__ = ["Prior", "GibbsFM", "BayesFM", "fit", "predict_fm", "safe_blocks", "truncated_normal"]
