"""Checker for notebook 5: a central difference."""
import numpy as np

from ..gradcheck import rel_error
from .harness import _run


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
