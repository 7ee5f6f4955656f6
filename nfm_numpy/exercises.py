"""Checkers for the notebooks' "your turn" exercises: write a piece of FM or NFM yourself,
then one call tells you at once whether it is right.

Each ``check_*(your_function)`` runs your function on hard random cases (ids
repeated within and across rows, padding entries with x = 0, real-valued x,
parameters drawn at random rather than their initial values) and compares the
result with the package's own layer, the reference, using
``gradcheck.rel_error``. It prints ``PASS`` or the first failing case with the
expected and actual values and a hint, and returns a ``Result``
(``bool(result)`` is True on a pass). A function that still raises
``NotImplementedError`` is reported as "not implemented yet" and nothing
breaks, so a notebook with its stubs runs from top to bottom.

``EXERCISES`` maps each exercise's function name to its checker.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import layers as L
from .gradcheck import rel_error
from .optim import Adagrad

TOL = 1e-9          # relative error a correct float64 answer stays far below (rounding gives ~1e-15)


@dataclass
class Result:
    """The outcome of a check: ``status`` is 'pass', 'fail' or 'not implemented'."""

    name: str
    status: str
    message: str

    def __bool__(self):
        return self.status == "pass"

    def __str__(self):
        return self.message

    __repr__ = __str__


def _cases(seed=0, n=40, rows=(3, 8, 1), entries=(4, 6, 1)):
    """Batches with every hard case: (description, idx, val) of float64 NumPy arrays."""
    rng = np.random.default_rng(seed)
    out = []
    for B in rows:
        for F in entries:
            idx = rng.integers(0, max(2, n // 4), (B, F))           # few ids: repeats across rows
            if F > 1:
                idx[:, 1] = idx[:, 0]                               # and within every row
            val = rng.uniform(-1.5, 1.5, (B, F))                    # real values, negative ones too
            if F > 2:
                val[:, -1] = 0.0                                    # a padding entry (x = 0) in every row
                idx[:, -1] = 0
            hard = (["ids repeated within rows"] if F > 1 else []) + (["across rows"] if B > 1 else []) + \
                (["padding"] if F > 2 else []) + ["real x"]
            out.append((f"B={B}, F={F}: {', '.join(hard)}", idx, val))
    return out


def _run(name, fn, cases, reference, compare, hints, covers="repeated ids, padding, real values, random parameters"):
    """Call ``fn`` on every case; the first mismatch becomes the message, with a hint."""
    for i, (desc, args) in enumerate(cases, start=1):
        try:
            got = fn(*[a.copy() if isinstance(a, np.ndarray) else a for a in args])
        except NotImplementedError as e:
            return _say(Result(name, "not implemented", f"{name}: not implemented yet ({e or 'the stub raises'}); "
                                                       "write it above and run this cell again"))
        except Exception as e:   # a learner's bug: report it, do not stop the notebook
            return _say(Result(name, "fail", f"{name}: FAIL on case {i} ({desc}): your function raised "
                                             f"{type(e).__name__}: {e}"))
        want = reference(*args)
        problem = compare(got, want)
        if problem:
            hint = next((h for test, h in hints if _safe(test, got, want, args)), "")
            return _say(Result(name, "fail", f"{name}: FAIL on case {i} ({desc}): {problem}"
                                             + (f"\n  hint: {hint}" if hint else "")))
    return _say(Result(name, "pass", f"{name}: PASS ({len(cases)} cases: {covers})"))


def _safe(test, *args):
    try:
        return bool(test(*args))
    except Exception:
        return False


def _say(result):
    print(result.message)
    return result


def _compare(names):
    """A comparer of tuples (or single arrays) of outputs, element by element."""
    def compare(got, want):
        got = got if isinstance(got, tuple) else (got,)
        want = want if isinstance(want, tuple) else (want,)
        if len(got) != len(want):
            return f"expected {len(want)} outputs ({', '.join(names)}), got {len(got)}"
        for n, g, w in zip(names, got, want):
            g = np.asarray(g, dtype=np.float64)
            if g.shape != w.shape:
                return f"{n} has shape {g.shape}, expected {w.shape}"
            err = rel_error(g, w)
            if not err < TOL:
                at = np.unravel_index(np.argmax(np.abs(g - w)), w.shape) if w.ndim else ()
                return (f"{n}: relative error {err:.1e} (should be below {TOL:g}); at {tuple(map(int, at))} "
                        f"expected {w[at]:.6g}, got {g[at]:.6g}")
        return ""
    return compare


def _close(a, b):
    return np.shape(a) == np.shape(b) and rel_error(np.asarray(a, dtype=np.float64), b) < 1e-6


# ================================================================ notebook 1
def check_fm_pairwise(fm_pairwise):
    """``fm_pairwise(idx, val, V) -> (B,)``: sum_{i<j} <v_i, v_j> x_i x_j per row, in O(k F)."""
    def reference(idx, val, V):
        E, _ = L.embedding_forward(idx, val, V)
        return L.fm_second_order_forward(L.bi_interaction_forward(E)[0])[0]

    rng = np.random.default_rng(1)
    cases = [(d, (idx, val, rng.standard_normal((40, 3)))) for d, idx, val in _cases(1)]

    def with_diagonal(idx, val, V):
        E = val[:, :, None] * V[idx]
        return 0.5 * (E.sum(1) ** 2).sum(1)

    def doubled(idx, val, V):
        return 2 * reference(idx, val, V)

    hints = [
        (lambda got, want, a: _close(got, with_diagonal(*a)), "you kept the diagonal i = j: subtract the "
                                                             "squares, sum_i x_i^2 v_i^2, before halving"),
        (lambda got, want, a: _close(got, doubled(*a)), "every pair counted twice: (sum e_i)^2 - sum e_i^2 holds "
                                                       "each pair i < j twice, so halve it"),
        (lambda got, want, a: _close(got, reference(a[0], np.ones_like(a[1]), a[2])),
         "the values x_i are missing: scale each embedding by its value (padding has x = 0)"),
    ]
    return _run("fm_pairwise", fm_pairwise, cases, reference, _compare(["pairwise"]), hints)


def check_adagrad_rows(adagrad_rows):
    """``adagrad_rows(V, acc, rows, g, lr) -> (V, acc)``: Adagrad on the touched rows only
    (``rows`` unique), acc <- acc + g^2, V <- V - lr g / sqrt(acc)."""
    rng = np.random.default_rng(2)
    cases = []
    for n, U, k in ((10, 3, 2), (30, 12, 4), (50, 1, 3)):
        V, acc = rng.standard_normal((n, k)), rng.uniform(0.1, 2.0, (n, k))   # a run in progress
        rows = np.sort(rng.choice(n, U, replace=False))
        cases.append((f"n={n}, {U} touched rows", (V, acc, rows, rng.standard_normal((U, k)), 0.05)))

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

    def every_row(V, acc, rows, g, lr):
        V, acc = V.copy(), acc.copy()
        dense = np.zeros_like(V)
        dense[rows] = g
        acc += dense * dense
        return V - lr * dense / np.sqrt(acc), acc

    hints = [
        (lambda got, want, a: _close(got[0], divide_first(*a)[0]), "add g^2 to the accumulator first, then "
                                                                  "divide by its square root (this step's g counts)"),
        (lambda got, want, a: not np.allclose(np.delete(got[0], a[2], 0), np.delete(a[0], a[2], 0)),
         "rows the batch did not touch must not change"),
        (lambda got, want, a: _close(got[0], every_row(*a)[0]), "only the touched rows are read and written"),
    ]
    return _run("adagrad_rows", adagrad_rows, cases, reference, _compare(["V", "acc"]), hints,
                "one to twelve touched rows, accumulators of a run in progress")


# ================================================================ notebook 2
def check_bi_interaction_backward(bi_interaction_backward):
    """``bi_interaction_backward(df, E) -> dE (B, F, k)``: the gradient of f_BI = 1/2[(sum_i e_i)^2 - sum_i e_i^2]."""
    rng = np.random.default_rng(3)
    cases = []
    for d, idx, val in _cases(3):
        E, _ = L.embedding_forward(idx, val, rng.standard_normal((40, 3)))
        cases.append((d, (rng.standard_normal((E.shape[0], E.shape[2])), E)))

    def reference(df, E):
        return L.bi_interaction_backward(df, L.bi_interaction_forward(E)[1])

    hints = [
        (lambda got, want, a: _close(got, a[0][:, None, :] * a[1].sum(1)[:, None, :]),
         "d f / d e_i = s - e_i: you kept s but forgot the - e_i (the diagonal removed in the forward pass)"),
        (lambda got, want, a: _close(got, 2 * want), "a factor 2 too many: f has a 1/2 in front"),
        (lambda got, want, a: _close(got, a[1].sum(1)[:, None, :] - a[1]),
         "that is d f / d e_i alone: multiply it by the upstream gradient df (the chain rule)"),
    ]
    return _run("bi_interaction_backward", bi_interaction_backward, cases, reference, _compare(["dE"]), hints)


def check_scatter_rows(scatter_rows):
    """``scatter_rows(idx, G, n) -> dV (n, k)``: dV[i] = sum of G[b, f] over every (b, f) with idx[b, f] = i."""
    rng = np.random.default_rng(4)
    cases = [(d, (idx, rng.standard_normal(idx.shape + (3,)), 40)) for d, idx, _ in _cases(4)]

    def reference(idx, G, n):
        X = np.zeros((idx.size, n))
        X[np.arange(idx.size), idx.ravel()] = 1.0                     # one-hot: an independent oracle
        return X.T @ G.reshape(idx.size, -1)

    def fancy(idx, G, n):
        dV = np.zeros((n, G.shape[2]))
        dV[idx.ravel()] += G.reshape(idx.size, -1)
        return dV

    hints = [(lambda got, want, a: _close(got, fancy(*a)),
              "repeated ids: dV[idx] += G keeps only one occurrence of each id (NumPy buffers the update); "
              "use np.add.at(dV, idx, G), which adds every occurrence")]
    return _run("scatter_rows", scatter_rows, cases, reference, _compare(["dV"]), hints)


# ================================================================ notebook 3
def check_batchnorm_backward(batchnorm_backward):
    """``batchnorm_backward(dy, x, gamma, eps) -> (dx, dgamma, dbeta)`` in training mode, where
    y = gamma (x - mu) / sqrt(var + eps) + beta with the batch's mean and (biased) variance."""
    rng = np.random.default_rng(5)
    cases = []
    for B, D in ((5, 3), (16, 8), (2, 1)):
        x = rng.standard_normal((B, D)) * rng.uniform(0.5, 3, D) + rng.uniform(-2, 2, D)
        cases.append((f"B={B}, D={D}", (rng.standard_normal((B, D)), x, rng.uniform(0.5, 2, D), 1e-3)))

    def reference(dy, x, gamma, eps):
        D = x.shape[1]
        _, cache, _ = L.batchnorm_forward(x, gamma, rng.standard_normal(D), np.zeros(D), np.ones(D), True, eps=eps)
        return L.batchnorm_backward(dy, cache)

    def eval_mode(dy, x, gamma, eps):
        return dy * gamma / np.sqrt(x.var(0) + eps)

    hints = [
        (lambda got, want, a: _close(got[0], eval_mode(*a)), "that is the evaluation-mode gradient: in training "
                                                            "mu and var depend on x, which adds two terms"),
        (lambda got, want, a: np.abs(np.asarray(got[0]).sum(0)).max() > 1e-8 * np.abs(want[0]).max(),
         "in training each column of dx sums to 0 (shifting a whole column changes nothing after BN): "
         "check the term through the mean, - sum_b g_b / B"),
        (lambda got, want, a: True, "check the term through the variance, - xhat sum_b(g_b xhat_b) / B, with "
                                    "g = gamma dy and the biased variance (divide by B)"),
    ]
    return _run("batchnorm_backward", batchnorm_backward, cases, reference, _compare(["dx", "dgamma", "dbeta"]),
                hints, "batches of 2 to 16 rows, shifted and scaled columns, random gamma")


def check_affine_backward(affine_backward):
    """``affine_backward(da, x, W) -> (dx, dW, db)`` for a = x W + b."""
    rng = np.random.default_rng(6)
    cases = [(f"B={B}, D={D}, M={M}", (rng.standard_normal((B, M)), rng.standard_normal((B, D)),
                                       rng.standard_normal((D, M))))
             for B, D, M in ((4, 3, 2), (7, 5, 6), (1, 2, 1))]

    def reference(da, x, W):
        return L.affine_backward(da, (x, W))

    hints = [(lambda got, want, a: np.shape(got[1]) == (a[2].shape[1], a[2].shape[0]),
              "dW must have W's shape (D, M): it is x^T da, not da^T x"),
             (lambda got, want, a: _close(got[2], a[0].mean(0)), "db is the sum over the batch, not the mean")]
    return _run("affine_backward", affine_backward, cases, reference, _compare(["dx", "dW", "db"]), hints,
                "batches of 1 to 7 rows, random W")


# ================================================================ notebook 5
def _smooth_functions():
    rng = np.random.default_rng(7)
    A = rng.standard_normal((4, 4))
    return [("sum of sin(x) x^2, 5 entries", lambda x: float(np.sum(np.sin(x) * x ** 2)), rng.standard_normal(5),
             lambda x: np.cos(x) * x ** 2 + 2 * x * np.sin(x)),
            ("log(1 + e^{x A x}), a (2, 2) array", lambda x: float(np.logaddexp(0, x.ravel() @ A @ x.ravel())),
             rng.standard_normal((2, 2)) * 0.5,
             lambda x: ((A + A.T) @ x.ravel() / (1 + np.exp(-(x.ravel() @ A @ x.ravel())))).reshape(2, 2))]


def check_central_difference(central_difference):
    """``central_difference(f, x, h) -> grad``: (f(x + h e_j) - f(x - h e_j)) / 2h for every entry j of x,
    with ``f()`` reading ``x`` (perturb x in place and restore it)."""
    cases = [(desc, (f, x, 1e-5, grad)) for desc, f, x, grad in _smooth_functions()]

    def call(fn):
        def run(f, x, h, grad):
            before = x.copy()
            out = fn(lambda: f(x), x, h)
            if not np.array_equal(x, before):
                raise AssertionError("x was not restored after the differences (put each entry back)")
            return out
        return run

    def compare(got, want):
        got = np.asarray(got, dtype=np.float64)
        if got.shape != want.shape:
            return f"the gradient has shape {got.shape}, expected {want.shape}"
        err = rel_error(got, want)
        if not err < 1e-8:
            return f"relative error {err:.1e} against the exact derivative (a central difference at h = 1e-5 " \
                   f"gives ~1e-10)"
        return ""

    def reference(f, x, h, grad):
        return grad(x)

    def one_sided(f, x, h, grad):
        steps = np.eye(x.size).reshape((x.size,) + x.shape) * h
        return np.array([(f(x + d) - f(x)) / h for d in steps]).reshape(x.shape)

    hints = [(lambda got, want, a: rel_error(got, one_sided(*a)) < 1e-6,
              "that is the one-sided difference (f(x + h) - f(x)) / h, whose error is O(h); use "
              "(f(x + h) - f(x - h)) / 2h, whose error is O(h^2)"),
             (lambda got, want, a: rel_error(np.asarray(got) / 2, want) < 1e-6, "divide by 2h, not h")]
    return _run("central_difference", call(central_difference), cases, reference, compare, hints,
                "a vector and a matrix, against exact derivatives")


EXERCISES = {
    "fm_pairwise": check_fm_pairwise,
    "adagrad_rows": check_adagrad_rows,
    "bi_interaction_backward": check_bi_interaction_backward,
    "scatter_rows": check_scatter_rows,
    "batchnorm_backward": check_batchnorm_backward,
    "affine_backward": check_affine_backward,
    "central_difference": check_central_difference,
}
