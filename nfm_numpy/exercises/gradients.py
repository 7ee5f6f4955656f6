r"""Checker for notebook 5: a central difference.

``central_difference(f, x, h)`` returns, for every entry j of the array x,
[f(x + h e_j) - f(x - h e_j)] / 2h, where ``f()`` takes no argument and reads x:
the learner's function moves one entry of x in place, calls f, and puts the
entry back. The checker records what the function returned *and* what it did
to x, so that a wrong answer and an x left changed are both ordinary FAILs, each
with the hint of the mistake that produces it (``HINTS``; each hint's test
recognises its own mistake and no other, which tests/test_exercises_gradients.py
plants one by one).
"""
from dataclasses import dataclass

import numpy as np

from ..gradcheck import rel_error
from .harness import _run

_TOL = 1e-8         # a central difference at h = 1e-5 is ~4e-11 off here; a one-sided one ~3e-6


def _smooth_functions():
    """(description, f(x), x, exact gradient(x)): a vector and a matrix. Every case has entries x_j for
    which x_j + h - 2h + h is not x_j in float64 (checked in the tests), so restoring an entry by
    arithmetic instead of by saving it shows."""
    rng = np.random.default_rng(7)
    A = rng.standard_normal((4, 4))
    return [("sum of sin(x) x^2, 5 entries", lambda x: float(np.sum(np.sin(x) * x ** 2)), rng.standard_normal(5),
             lambda x: np.cos(x) * x ** 2 + 2 * x * np.sin(x)),
            ("log(1 + e^{x A x}), a (2, 2) array", lambda x: float(np.logaddexp(0, x.ravel() @ A @ x.ravel())),
             rng.standard_normal((2, 2)) * 0.5,
             lambda x: ((A + A.T) @ x.ravel() / (1 + np.exp(-(x.ravel() @ A @ x.ravel())))).reshape(2, 2))]


class _GaveArgument(Exception):
    """f() was called with an argument (it takes none: it reads x)."""


@dataclass
class Attempt:
    """What the learner's function returned (``grad``), or the IndexError it raised (``error``), with x
    before and after the call and whether it called f with an argument."""

    grad: object
    x_before: np.ndarray
    x_after: np.ndarray
    gave_argument: bool = False
    error: Exception = None


def attempt(fn, f, x, h):
    """Run ``fn(f_reading_x, x, h)`` on x (changed in place by fn, as the exercise asks) and record it."""
    before = x.copy()

    def f_reads_x(*args, **kwargs):
        if args or kwargs:
            raise _GaveArgument
        return f(x)

    try:
        return Attempt(fn(f_reads_x, x, h), before, x.copy())
    except _GaveArgument:
        return Attempt(None, before, x.copy(), gave_argument=True)
    except IndexError as e:             # usually an index of the wrong length on a 2-D x: a hint can say so
        return Attempt(None, before, x.copy(), error=e)


def _changed(a):
    """How far x moved, for a function that returned normally (0: x is exactly as it was)."""
    if a.gave_argument or a.error is not None:
        return 0.0
    return np.max(np.abs(a.x_after - a.x_before)) if not np.array_equal(a.x_after, a.x_before) else 0.0


def compare(got, want):
    if got.gave_argument:
        return "your function called f with an argument, but f() takes none: it reads x"
    if got.error is not None:
        return f"your function raised {type(got.error).__name__}: {got.error}"
    if not np.array_equal(got.x_after, got.x_before):
        n = int(np.sum(got.x_after != got.x_before))
        return (f"x was not restored: after your function returned, {n} of its {got.x_before.size} entries "
                f"differ from before (the largest by {_changed(got):.1e})")
    if got.grad is None:
        return "your function returned None"
    grad = np.asarray(got.grad, dtype=np.float64)
    if grad.shape != want.shape:
        return f"the gradient has shape {grad.shape}, expected {want.shape}"
    err = rel_error(grad, want)
    if not err < _TOL:
        return f"relative error {err:.1e} against the exact derivative (a central difference at h = 1e-5 " \
               f"gives about 4e-11 here)"
    return ""


def _difference(f, x, h, up, down, divide):
    """[f(x + up h e_j) - f(x + down h e_j)] / (divide h) for every entry j, on copies of x."""
    out = np.zeros(x.shape)
    for j in np.ndindex(x.shape):
        e = np.zeros(x.shape)
        e[j] = h
        out[j] = (f(x + up * e) - f(x + down * e)) / (divide * h)
    return out


def _grad(a):
    """The returned gradient, when x came back exactly as it was and nothing else went wrong."""
    if a.gave_argument or a.error is not None or not np.array_equal(a.x_after, a.x_before):
        raise ValueError("not a returned gradient")
    return np.asarray(a.grad, dtype=np.float64)


def _near(got, want):
    return got.shape == want.shape and rel_error(got, want) < 1e-6


def _one_sided(a, want, args):
    f, x, h, _ = args
    g = _grad(a)
    return _near(g, _difference(f, x, h, 1, 0, 1)) or _near(g, _difference(f, x, h, 0, -1, 1))


def _rows_at_once(a, want, args):
    g = _grad(a)
    return (want.ndim == 2 and g.shape == want.shape and np.allclose(g, g[:, :1], rtol=1e-6, atol=0)
            and not np.allclose(g, g.flat[0], rtol=1e-6, atol=0))


def _narrow(a, want, args):
    """A right gradient stored in a float type narrower than float64 (float32, float16): off by its rounding."""
    g = np.asarray(a.grad)
    return (np.issubdtype(g.dtype, np.floating) and g.dtype.itemsize < 8 and g.shape == want.shape
            and rel_error(_grad(a), want) < np.finfo(g.dtype).eps)


def _all_at_once(a, want, args):
    g = _grad(a)
    return (g.size in (1, want.size) and np.allclose(g, want.sum(), rtol=1e-6, atol=0)
            and not np.allclose(want, want.sum(), rtol=1e-6, atol=0))


# (name, test(attempt, exact gradient, the case's (f, x, h, exact)), hint); tests/test_exercises_gradients.py
# plants each mistake and checks that its hint, and no other, fires
HINTS = [
    ("argument", lambda a, want, args: a.gave_argument,
     "f takes no argument: it reads the array x itself. Change x in place (x[j] = old + h), call f(), and put "
     "the entry back"),
    ("not restored", lambda a, want, args: _changed(a) > 1e-3 * args[2],
     "save each entry before you move it (old = x[j]) and assign it back after the second f() (x[j] = old): "
     "the next entry's difference, and whoever calls your function, need x as it was"),
    ("restored by arithmetic", lambda a, want, args: 0 < _changed(a) <= 1e-3 * args[2],
     "x[j] += h after x[j] -= 2 * h does not give the old value back exactly: in floating point "
     "x + h - 2h + h can differ from x in its last bits. Save old = x[j] first and assign x[j] = old at the end"),
    ("no return", lambda a, want, args: _changed(a) == 0 and a.error is None and not a.gave_argument
     and a.grad is None, "end the function with `return grad`: without a return statement Python returns None"),
    ("index on a 2-D x", lambda a, want, args: isinstance(a.error, IndexError) and want.ndim > 1,
     "here x is 2-D: an entry is x[r, c], not x[j] with j up to x.size. Loop over the full indices "
     "`for j in np.ndindex(x.shape)`, and make grad with x's shape (np.zeros(x.shape)) so that grad[j] works too"),
    ("flat", lambda a, want, args: want.ndim > 1 and _grad(a).shape == (want.size,)
     and _near(_grad(a), want.ravel()),
     "the values are right but the array is flat: return the gradient in x's shape (np.zeros(x.shape), or "
     "grad.reshape(x.shape))"),
    ("precision", _narrow,
     "the values are right to about seven digits and no closer: your gradient array is float32 (or narrower), "
     "and storing each difference in it rounds it by up to 6e-8 relative. Make it float64: np.zeros(x.shape), "
     "whose default dtype is float64"),
    ("rows", _rows_at_once,
     "each row of your gradient holds one value: on a 2-D x, x[j] with a single index j is a whole row, so "
     "x[j] += h moves every entry of the row and you measured the row's sum. Loop over "
     "`np.ndindex(x.shape)`, whose j are full (r, c) indices"),
    ("all at once", _all_at_once,
     "you moved every entry of x at once (x += h): that measures the slope along (1, 1, ..., 1), the sum of "
     "the gradient. Move one entry j at a time and keep the others where they are"),
    ("copy", lambda a, want, args: np.all(_grad(a) == 0) and np.any(want != 0),
     "every entry came out 0: f(x + h) and f(x - h) were equal, so f never saw your change. x.copy(), "
     "x.flatten(), np.array(x) and x + h are new arrays; change x itself, in place"),
    ("one-sided", _one_sided,
     "that is a one-sided difference, (f(x + h) - f(x)) / h or (f(x) - f(x - h)) / h, whose error is O(h); use "
     "(f(x + h) - f(x - h)) / 2h, whose error is O(h^2)"),
    ("half step", lambda a, want, args: _near(_grad(a), _difference(args[0], args[1], args[2], 1, 0, 2)),
     "your second point is x, not x - h: after x[j] += h, x[j] -= h goes back to the start. Set x[j] = old - h "
     "for the second f()"),
    ("divide by h", lambda a, want, args: _near(_grad(a) / 2, want), "divide by 2h, not h"),
    ("precedence", lambda a, want, args: _near(_grad(a) / args[2] ** 2, want),
     "(up - down) / 2 * h divides by 2 and then multiplies by h; write (up - down) / (2 * h)"),
    ("sign", lambda a, want, args: _near(-_grad(a), want),
     "the sign is flipped: the difference is f(x + h e_j) - f(x - h e_j), the point above first"),
]


def check_central_difference(central_difference):
    """``central_difference(f, x, h) -> grad``: (f(x + h e_j) - f(x - h e_j)) / 2h for every entry j of x,
    with ``f()`` reading ``x`` (perturb x in place and restore it)."""
    cases = [(desc, (f, x, 1e-5, grad)) for desc, f, x, grad in _smooth_functions()]

    def run(f, x, h, grad):
        return attempt(central_difference, f, x, h)

    def reference(f, x, h, grad):
        return grad(x)

    return _run("central_difference", run, cases, reference, compare, [(test, hint) for _, test, hint in HINTS],
                "a vector and a matrix, against exact derivatives; x restored exactly")
