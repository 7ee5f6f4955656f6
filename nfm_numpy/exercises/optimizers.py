r"""Checkers for the update rules on sparse rows: Adagrad (notebook 1); SGD, momentum and Adam (notebook 6).

Each exercise updates an (n, k) table from the gradient of the U rows a batch touched (``rows``
distinct, ``g`` (U, k)), and the reference is the package's own optimiser (``nfm_numpy.optim``) fed
a ``layers.RowGrad``, so the learner's rule is checked against the one training uses, conventions
included:

* **lazy** momentum and Adam: a row the batch did not touch keeps its weights *and* its optimiser
  state (velocity, moments). A dense optimiser would keep moving it with its stale velocity and
  decay its moments; the package skips it, as TF1's sparse momentum (``MomentumOptimizer``), TF
  Addons' LazyAdam and PyTorch's SparseAdam do, so a step costs O(U k), not O(n k). TF1's
  ``AdamOptimizer``, the one the original NFM code offers, is *not* lazy on sparse gradients: it
  decays m and v of every row at every step (which is why ``LazyAdamOptimizer`` exists), so the
  package's Adam is not the original's.
* Adam's step count ``t`` is the **global** one (this step's number, counting from 1; the package's
  ``Adam.t``), not a per-row count of the steps that touched the row: one bias correction, folded
  into the learning rate as TF does, lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t), and eps added to
  sqrt(r), not to the square root of the bias-corrected r.

Every case is a run in progress: optimiser state that is nonzero in touched and untouched rows
alike, so that a dense update or a decayed state shows.
"""
from itertools import permutations

import numpy as np

from .. import layers as L
from ..gradcheck import rel_error
from ..optim import SGD, Adagrad, Adam, Momentum
from .fm import _broadcast_shapes
from .harness import _close, _compare, _outputs, _run


def _table_cases(seed, sizes=((10, 3, 2), (30, 12, 4), (50, 1, 3))):
    """(n, U, k, V, rows, g): tables of N(0, 1) weights, sorted distinct touched rows, their gradients."""
    rng = np.random.default_rng(seed)
    out = []
    for n, U, k in sizes:
        rows = np.sort(rng.choice(n, U, replace=False))
        out.append((n, U, k, rng.standard_normal((n, k)), rows, rng.standard_normal((U, k)), rng))
    return out


def _untouched(a, rows):
    """The rows of ``a`` that ``rows`` does not name."""
    return np.delete(np.asarray(a, dtype=np.float64), rows, 0)


def _moved_untouched(got, before, rows):
    """Whether an output changed a row the batch did not touch."""
    return not np.allclose(_untouched(got, rows), _untouched(before, rows), rtol=0, atol=1e-12)


def _close_all(got, want):
    """Whether each output is close to its counterpart in ``want`` (a tuple of arrays)."""
    return len(got) == len(want) and all(_close(g, w) for g, w in zip(got, want))


def _out_of_order(got, want):
    """Whether the outputs are the reference's arrays, each right, but returned in another order."""
    got = _outputs(got, want)
    if len(got) != len(want) or all(_close(g, w) for g, w in zip(got, want)):
        return False
    return any(all(_close(got[j], w) for j, w in zip(order, want))
               for order in permutations(range(len(want))) if order != tuple(range(len(want))))


def _in_order(names):
    """The hint for right outputs in the wrong order."""
    return (lambda got, want, a: _out_of_order(got, want),
            f"each output is right, but in the wrong place: return ({', '.join(names)}) in this order")


def _no_return(names):
    """The hint for a function that returned nothing (an update in place without ``return``)."""
    outs = ", ".join(names)
    return (lambda got, want, a: got is None,
            f"your function returned None: did you return {outs}? (an update in place must still end with "
            f"return {outs})")


def _step_reversed(got_V, V, want_V):
    """Whether the learner moved V by minus the reference's step (a sign error)."""
    return _close(got_V, V - (want_V - V))


# ================================================================ notebook 1
def check_adagrad_rows(adagrad_rows):
    """``adagrad_rows(V, acc, rows, g, lr) -> (V, acc)``: Adagrad on the touched rows only
    (``rows`` unique), acc <- acc + g^2, V <- V - lr g / sqrt(acc).

    Some rows the batch does not touch have an accumulator of exactly 0 (rows no batch has used
    yet, as in Adagrad's usual form where G starts at 0): the touched-rows update never reads
    them, while a dense update of the whole table computes 0 / sqrt(0) = NaN there. That is how
    the checker tells the two apart; with every accumulator positive they give the same numbers.

    There is no eps: the original (TF1's AdagradOptimizer, accumulator starting at 1e-8) divides by
    sqrt(G) alone. A learner who adds one is off by a relative 1e-9 or more (the tolerance) from about
    eps = 1e-7 on: from just under it in g / (sqrt(acc) + eps), from just over it in g / sqrt(acc + eps)
    (a smaller eps passes, within the tolerance); the checker reads the eps back from the step and says
    so in a hint.
    """
    cases = []
    for n, U, k, V, rows, g, rng in _table_cases(2):
        acc = rng.uniform(0.1, 2.0, (n, k))                                  # a run in progress
        never = np.setdiff1d(np.arange(n), rows)[::2]                        # untouched, never used yet
        acc[never] = 0.0
        cases.append((f"n={n}, {U} touched rows", (V, acc, rows, g, 0.05)))

    def reference(V, acc, rows, g, lr):
        opt = Adagrad(lr)
        opt.state[("V", "a")] = acc.copy()
        params = {"V": V.copy()}
        opt.step(params, {"V": L.RowGrad(rows, g)})
        return params["V"], opt.state[("V", "a")]

    def divide_first(V, acc, rows, g, lr):
        V, acc = V.copy(), acc.copy()
        V[rows] -= lr * g / np.sqrt(acc[rows])
        acc[rows] += g * g
        return V, acc

    def overwritten(V, acc, rows, g, lr):
        V, acc = V.copy(), acc.copy()
        acc[rows] = g * g                                                  # this step's g^2 alone
        V[rows] -= lr * g / np.sqrt(acc[rows])
        return V, acc

    def no_sqrt(V, acc, rows, g, lr):
        V, acc = V.copy(), acc.copy()
        acc[rows] += g * g
        V[rows] -= lr * g / acc[rows]                                      # G where sqrt(G) belongs
        return V, acc

    def eps_added(got, want, a):
        """Whether V is g / (sqrt(acc) + eps) or g / sqrt(acc + eps) away, for one small eps > 0 (below 0.1)
        read back from the step, with acc right: that form explains V a thousand times better than the
        reference does."""
        V, rows, g, lr = a[0], a[2], a[3], a[4]
        got = _outputs(got, want)
        if len(got) != 2 or not _close(got[1], want[1]):
            return False
        G = want[1][rows]                                                  # the accumulator after this step
        step = V[rows] - np.asarray(got[0], dtype=np.float64)[rows]        # the learner's lr g / (...)
        use = np.abs(g) > 0.1                                              # steps big enough to read eps from
        if not use.any() or (step[use] * g[use] <= 0).any():
            return False
        denom = lr * g[use] / step[use]                                    # sqrt(G) + eps, or sqrt(G + eps)
        err = rel_error(np.asarray(got[0], dtype=np.float64), want[0])
        for eps, form in ((np.median(denom - np.sqrt(G[use])), lambda e: np.sqrt(G) + e),
                          (np.median(denom ** 2 - G[use]), lambda e: np.sqrt(G + e))):
            if 0 < eps < 0.1:
                V_eps = V.copy()
                V_eps[rows] -= lr * g / form(eps)
                if rel_error(np.asarray(got[0], dtype=np.float64), V_eps) < 1e-3 * err:
                    return True
        return False

    def nan_where_never_used(got, want, a):
        acc, rows = a[1], a[2]
        never = np.setdiff1d(np.flatnonzero((acc == 0).all(1)), rows)
        return never.size > 0 and bool(np.isnan(np.asarray(got[0], dtype=np.float64)[never]).all())

    hints = [
        _no_return(["V", "acc"]),
        _in_order(["V", "acc"]),
        (lambda got, want, a: _step_reversed(got[0], a[0], want[0]), "the step goes against the gradient: "
                                                                      "V -= lr * g / sqrt(G) (in code, V[rows] -= "
                                                                      "lr * g / np.sqrt(acc[rows]))"),
        (lambda got, want, a: _close(got[0], divide_first(*a)[0]), "add g^2 to the accumulator first, then "
                                                                  "divide by its square root (this step's g counts)"),
        (lambda got, want, a: _close(_outputs(got, want)[1], overwritten(*a)[1]),
         "G accumulates: acc[rows] += g * g, this step's g^2 added to the sum of the earlier ones, not in their "
         "place"),
        (lambda got, want, a: _close(got[0], no_sqrt(*a)[0]), "divide by the square root of G: V[rows] -= lr * g / "
                                                             "np.sqrt(acc[rows])"),
        (eps_added, "no eps here: the original (TF1's Adagrad, accumulator starting at 1e-8) divides by sqrt(G) "
                    "alone: V[rows] -= lr * g / np.sqrt(acc[rows]), not sqrt(acc) + eps or sqrt(acc + eps)"),
        (nan_where_never_used, "only the touched rows are read and written: you updated the whole table, and an "
                               "untouched row whose accumulator is 0 (never used yet) became 0 / sqrt(0) = NaN; "
                               "index with rows (V[rows], acc[rows])"),
        (lambda got, want, a: _moved_untouched(got[0], a[0], a[2]), "rows the batch did not touch must not change"),
        (lambda got, want, a: _close(_outputs(got, want)[1], a[1]),
         "acc came back unchanged: store it, acc[rows] += g * g"),
    ]

    def learners(V, acc, rows, g, lr):
        try:
            return adagrad_rows(V, acc, rows, g, lr)
        except ValueError as e:
            U, n, k = len(rows), *acc.shape
            if U == n or not {(U, k), (n, k)} <= _broadcast_shapes(str(e)):
                raise
            raise ValueError(f"{e}\n  hint: index the accumulator by rows: np.sqrt(acc[rows]) is (U, k), like g "
                             f"(here g is (U, k) = {(U, k)} and acc (n, k) = {(n, k)})") from None

    return _run("adagrad_rows", learners, cases, reference, _compare(["V", "acc"]), hints,
                "one to twelve touched rows, accumulators of a run in progress, some untouched ones 0")


# ================================================================ notebook 6
def check_sgd_rows(sgd_rows):
    """``sgd_rows(V, rows, g, lr) -> V``: V[rows] <- V[rows] - lr g, every other row unchanged.

    Updating the V it is given in place and returning it passes too (the package's optimisers update
    in place): every checker here hands the learner's function copies of its arrays."""
    cases = [(f"n={n}, {U} touched rows", (V, rows, g, 0.05)) for n, U, k, V, rows, g, _ in _table_cases(11)]

    def reference(V, rows, g, lr):
        params = {"V": V.copy()}
        SGD(lr).step(params, {"V": L.RowGrad(rows, g)})
        return params["V"]

    hints = [
        _no_return(["V"]),
        (lambda got, want, a: np.shape(got) == np.shape(a[2]), "return the whole table (n, k) with its touched rows "
                                                               "updated, not only the (U, k) touched rows"),
        (lambda got, want, a: _step_reversed(got, a[0], want), "the step goes against the gradient: subtract lr g"),
        (lambda got, want, a: _close(np.asarray(got)[a[1]], -a[3] * a[2]),
         "subtract the step from the rows' weights (V[rows] -= lr * g), do not overwrite them with it"),
        (lambda got, want, a: _averaged(got, *a), "the gradient is already summed over the batch: do not average "
                                                  "(no division by len(rows) or the batch size, no g.mean(0)); "
                                                  "V[rows] -= lr * g"),
    ]
    def learners(V, rows, g, lr):
        try:
            return sgd_rows(V, rows, g, lr)
        except ValueError as e:
            U, (n, k) = len(rows), V.shape
            if U == n or not {(U, k), (n, k)} <= _broadcast_shapes(str(e)):
                raise
            raise ValueError(f"{e}\n  hint: index the table by rows: V[rows] is (U, k), like g (here g is (U, k) = "
                             f"{(U, k)} and V (n, k) = {(n, k)}): V[rows] -= lr * g") from None

    return _run("sgd_rows", learners, cases, reference, _compare(["V"]), hints, "one to twelve touched rows")


def _averaged(got, V, rows, g, lr):
    """Whether the learner averaged the batch's gradient: each touched row moved by c lr g for one constant
    0 < c < 1 (a division by len(rows) or by a batch size), or by lr g.mean(0) (every row the mean of the
    rows' gradients); the other rows unchanged."""
    got = np.asarray(got, dtype=np.float64)
    if got.shape != V.shape or _moved_untouched(got, V, rows):
        return False
    step, right = V[rows] - got[rows], lr * g
    if _close(step, np.broadcast_to(lr * g.mean(0), g.shape)):
        return True
    c = float(np.sum(step * right) / np.sum(right * right))
    return 0 < c < 1 - 1e-6 and _close(step, c * right)


def check_momentum_rows(momentum_rows):
    """``momentum_rows(V, u, rows, g, lr, mu) -> (V, u)``: lazy momentum (TF's form) on the touched rows,
    u[rows] <- mu u[rows] + g, then V[rows] <- V[rows] - lr u[rows]; untouched rows keep V and u."""
    cases = [(f"n={n}, {U} touched rows", (V, rng.standard_normal((n, k)), rows, g, 0.05, 0.9))
             for n, U, k, V, rows, g, rng in _table_cases(12)]

    def reference(V, u, rows, g, lr, mu):
        opt = Momentum(lr, mu)
        opt.state[("V", "v")] = u.copy()
        params = {"V": V.copy()}
        opt.step(params, {"V": L.RowGrad(rows, g)})
        return params["V"], opt.state[("V", "v")]

    def variant(V, u, rows, g, lr, mu, new_u, step_with_old=False):
        V, u = V.copy(), u.copy()
        old = u[rows].copy()
        u[rows] = new_u(old, g, lr, mu)
        V[rows] -= lr * (old if step_with_old else u[rows])
        return V, u

    def ema(V, u, rows, g, lr, mu):
        return variant(V, u, rows, g, lr, mu, lambda old, g, lr, mu: mu * old + (1 - mu) * g)

    def lr_in_velocity(V, u, rows, g, lr, mu):
        V, u = V.copy(), u.copy()
        u[rows] = mu * u[rows] + lr * g
        V[rows] -= u[rows]
        return V, u

    def steps_in_velocity(V, u, rows, g, lr, mu):                    # the form u <- mu u - lr g, V <- V + u
        V, u = V.copy(), u.copy()
        u[rows] = mu * u[rows] - lr * g
        V[rows] += u[rows]
        return V, u

    def old_velocity(V, u, rows, g, lr, mu):
        return variant(V, u, rows, g, lr, mu, lambda old, g, lr, mu: mu * old + g, step_with_old=True)

    hints = [
        _no_return(["V", "u"]),
        _in_order(["V", "u"]),
        (lambda got, want, a: _step_reversed(got[0], a[0], want[0]), "the step goes against the velocity: "
                                                                      "V <- V - lr u"),
        (lambda got, want, a: _moved_untouched(got[0], a[0], a[2]),
         "lazy momentum: rows the batch did not touch must not move (a dense update moves them by lr mu u, their "
         "stale velocity; the package skips them, as TF's sparse momentum does)"),
        (lambda got, want, a: _moved_untouched(got[1], a[1], a[2]),
         "lazy momentum: rows the batch did not touch keep their velocity (do not multiply all of u by mu)"),
        (lambda got, want, a: _close_all(got, old_velocity(*a)),
         "update the velocity first, then step with the new one"),
        (lambda got, want, a: _close_all(got, ema(*a)), "u <- mu u + g, without a (1 - mu) factor on g (TF's form)"),
        (lambda got, want, a: _close_all(got, lr_in_velocity(*a)),
         "the velocity holds mu u + g, without lr; lr scales the step, V <- V - lr u"),
        (lambda got, want, a: _close(_outputs(got, want)[1], a[1]),
         "u came back unchanged: store the new velocity, u[rows] = mu * u[rows] + g"),
        (lambda got, want, a: _close_all(got, steps_in_velocity(*a)),
         "that is the form u <- mu u - lr g, V <- V + u, whose velocity holds steps; here it holds gradients "
         "and lr is applied at the step: u <- mu u + g, then V <- V - lr u"),
    ]
    return _run("momentum_rows", momentum_rows, cases, reference, _compare(["V", "u"]), hints,
                "one to twelve touched rows, velocities of a run in progress in every row")


def _adam_cases():
    cases = []
    for (n, U, k, V, rows, g, rng), t in zip(_table_cases(13), (3, 1, 40)):
        scale = np.where(rng.random(n) < 0.5, 1.0, 1e-6)[:, None]       # (n, 1) rows with tiny gradients, where
        m = rng.standard_normal((n, k)) * 0.3 * scale                    # eps matters
        r = rng.uniform(0.2, 1.0, (n, k)) * 0.01 * scale ** 2
        if t == 1:                                                       # the first step: the moments start at 0
            m[:], r[:] = 0.0, 0.0
        g = g * scale[rows]
        cases.append((f"n={n}, {U} touched rows, step t={t}", (V, m, r, rows, g, 0.01, t, 0.9, 0.999, 1e-8)))
    return cases


def check_adam_rows(adam_rows):
    r"""``adam_rows(V, m, r, rows, g, lr, t, beta1, beta2, eps) -> (V, m, r)``: lazy Adam on the touched rows,
    m <- b1 m + (1 - b1) g, r <- b2 r + (1 - b2) g^2,
    V <- V - lr_t m / (sqrt(r) + eps) with lr_t = lr sqrt(1 - b2^t) / (1 - b1^t) (TF's form) and t the
    global step count (this step's number, from 1); untouched rows keep V, m and r."""
    cases = _adam_cases()

    def reference(V, m, r, rows, g, lr, t, b1, b2, eps):
        opt = Adam(lr, b1, b2, eps)
        opt.t = t - 1                        # step() counts this step: t
        opt.state[("V", "m")], opt.state[("V", "v")] = m.copy(), r.copy()
        params = {"V": V.copy()}
        opt.step(params, {"V": L.RowGrad(rows, g)})
        return params["V"], opt.state[("V", "m")], opt.state[("V", "v")]

    @np.errstate(divide="ignore", invalid="ignore")          # t - 1 = 0 on the first step
    def adam(V, m, r, rows, g, lr, t, b1, b2, eps, correct=True, inside=False, textbook=False):
        V, m, r = V.copy(), m.copy(), r.copy()
        m[rows] = b1 * m[rows] + (1 - b1) * g
        r[rows] = b2 * r[rows] + (1 - b2) * g * g
        if textbook:
            step = lr * (m[rows] / (1 - b1 ** t)) / (np.sqrt(r[rows] / (1 - b2 ** t)) + eps)
        else:
            lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) if correct else lr
            step = lr_t * m[rows] / (np.sqrt(r[rows] + eps) if inside else np.sqrt(r[rows]) + eps)
        V[rows] -= step
        return V, m, r

    def with_t(a, t):
        return a[:6] + (t,) + a[7:]

    def r_of_g(got, want, a):
        r, rows, g, b2 = a[2].copy(), a[3], a[4], a[8]
        r[rows] = b2 * r[rows] + (1 - b2) * g                       # g where g^2 belongs
        return _close(_outputs(got, want)[2], r)

    def moments_wrong(got, want, a):
        got = _outputs(got, want)
        return not _close(got[0], want[0]) and not (_close(got[1], want[1]) and _close(got[2], want[2]))

    hints = [
        _no_return(["V", "m", "r"]),
        _in_order(["V", "m", "r"]),
        (lambda got, want, a: _step_reversed(got[0], a[0], want[0]), "the step goes against the gradient: "
                                                                      "V <- V - lr_t m / (sqrt(r) + eps)"),
        (lambda got, want, a: _close(got[0], adam(*a, correct=False)[0]),
         "the bias correction is missing: lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t)"),
        (lambda got, want, a: any(_close(got[0], adam(*with_t(a, a[6] + d))[0]) for d in (-1, 1)),
         "the step count is off by one: t is this step's number, counting from 1 (the package's Adam adds 1 "
         "to its global t before the update)"),
        (lambda got, want, a: _close(got[0], adam(*a, textbook=True)[0]),
         "that is the paper's form, eps added to sqrt of the corrected r; the package folds the correction into "
         "lr_t and adds eps to sqrt(r) (TF's form: the two differ where sqrt(r) is as small as eps)"),
        (lambda got, want, a: _close(got[0], adam(*a, inside=True)[0]), "eps goes outside the square root: "
                                                                         "sqrt(r) + eps, not sqrt(r + eps)"),
        (lambda got, want, a: _close_all(_outputs(got, want), adam(*a[:-1], 0.0)),
         "eps is missing: sqrt(r) + eps (it matters in rows with tiny gradients)"),
        (lambda got, want, a: _moved_untouched(got[0], a[0], a[3]),
         "lazy Adam: rows the batch did not touch must not move (a dense update moves them with their stale "
         "moments; the package skips them, as LazyAdam and SparseAdam do)"),
        (lambda got, want, a: _moved_untouched(got[1], a[1], a[3]) or _moved_untouched(got[2], a[2], a[3]),
         "lazy Adam: rows the batch did not touch keep their moments m and r (do not decay all of them)"),
        (lambda got, want, a: _close(_outputs(got, want)[1], a[1]) and _close(_outputs(got, want)[2], a[2]),
         "m and r came back unchanged: store the new moments, m[rows] = ... and r[rows] = ..."),
        (r_of_g, "r is the moving average of g squared: r <- beta2 r + (1 - beta2) g * g, not of g (V is wrong "
                 "through it)"),
        (moments_wrong, "V is wrong, and so is m or r (V is named first because it is compared first): check "
                        "m <- beta1 m + (1 - beta1) g and r <- beta2 r + (1 - beta2) g * g on the touched rows"),
    ]
    return _run("adam_rows", adam_rows, cases, reference, _compare(["V", "m", "r"]), hints,
                "one to twelve touched rows, steps 1, 3 and 40, moments of a run in progress, rows with tiny "
                "gradients")
