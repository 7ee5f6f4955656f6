"""Checkers for the update rules on sparse rows (Adagrad in notebook 1)."""
import numpy as np

from .. import layers as L
from ..optim import Adagrad
from .harness import _close, _compare, _run


# ================================================================ notebook 1
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
