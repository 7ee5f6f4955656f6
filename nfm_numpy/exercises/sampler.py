r"""Checker for notebook 9: one Gibbs draw of a one-hot field's linear weights, with the residual update.

The learner's ``draw_w_field(w, e, feat, x, alpha, lam, mu, z) -> (w_new, e_new)`` draws every w_i of
one field from its Gaussian conditional (``nfm_numpy.bayes``, module notes 2-3):

.. math::
    P_i = \alpha \sum_{r: i} x_r^2 + \lambda, \qquad
    m_i = \frac{\alpha \sum_{r: i} x_r (e_r + w_i x_r) + \lambda \mu}{P_i}, \qquad
    w_i^{new} = m_i + z_i / \sqrt{P_i},

(sums over the rows r that hold feature i), then moves each row's residual by its feature's change,
e_r <- e_r - (w^{new}_i - w_i) x_r.

Why the standard normals ``z`` are an argument: with them the draw is a deterministic function,
so it can be compared with the exact conditional to rounding (1e-9) on one call, where a test of
random draws would need thousands of them and a statistical tolerance that lets small slips
through. And it tells apart the two halves of a Gaussian: the checker calls the function with z = 0
(the output is the conditional mean) and z = 1 (the output minus the mean is the standard deviation
1/sqrt(P)), and says which of the two is wrong before it compares the draw and the residuals.

The hints match the typical slips (``HINTS``) made one at a time, each by running a full wrong
version on the failing case; a function with two slips gets the failing output and no hint. Two more
are found by calling the learner's function again: draws made with ``np.random`` instead of the given
``z`` differ between two calls with the same ``z``; and a function that raises or returns the wrong
shape on a case with a feature in no row, but runs with the right shapes once that feature is given a
row, summed with ``np.bincount`` without ``minlength=len(w)``.
"""
import numpy as np

from ..gradcheck import rel_error
from .harness import _compare, _run


def _field_cases():
    """(description, (w, e, feat, x, alpha, lam, mu, z)): repeated rows per feature, a feature in no
    row, rows that hold none of the field's features (x = 0), real and negative x, mu != 0, lam != 1."""
    rng = np.random.default_rng(9)
    out = []
    for n_b, N, one_hot, desc in ((5, 14, False, "5 features, 14 rows, real x (some 0: the row holds none), "
                                                  "feature 4 in no row"),
                                  (7, 40, True, "7 features, 40 rows, one-hot x = 1, feature 6 in no row"),
                                  (12, 60, False, "12 features, 60 rows, real x, feature 11 in no row")):
        feat = rng.integers(0, n_b - 1, N)                                   # the last feature: no row
        x = np.ones(N) if one_hot else rng.uniform(-2.0, 2.0, N)
        if not one_hot:
            x[::5] = 0.0                                                     # rows without the field
        w, e, z = rng.standard_normal(n_b), rng.standard_normal(N), rng.standard_normal(n_b)
        alpha, lam, mu = float(rng.uniform(1.5, 4.0)), float(rng.uniform(2.0, 5.0)), float(rng.uniform(0.3, 0.8))
        out.append((desc, (w, e, feat, x, alpha, lam, mu, z)))
    return out


def _reference(w, e, feat, x, alpha, lam, mu, z):
    """The exact conditional, one feature at a time with a loop over its rows (an independent oracle)."""
    w_new = w.copy()
    for i in range(w.shape[0]):
        rows = np.flatnonzero(feat == i)
        h = x[rows]                                                          # h_{w_i} = x_i in each row
        resid = e[rows] + w[i] * h                                           # y - g: e plus w_i's own part
        prec = alpha * float(h @ h) + lam
        w_new[i] = (alpha * float(h @ resid) + lam * mu) / prec + z[i] / np.sqrt(prec)
    e_new = e.copy()
    for r in range(e.shape[0]):
        e_new[r] -= (w_new[feat[r]] - w[feat[r]]) * x[r]
    return w_new, e_new


class _Raised:
    """What a call of the learner's function raised (kept, so that the hints can still be tried)."""

    def __init__(self, exc):
        self.exc = exc


def _catching(run):
    """``run``, with an exception (other than the stub's NotImplementedError) returned as ``_Raised``."""
    def call(*args):
        try:
            return run(*args)
        except NotImplementedError:
            raise
        except Exception as exc:   # a learner's bug: the checker reports it, with a hint where one fits
            return _Raised(exc)
    return call


def _compare_outputs(names):
    """The harness's comparer, and the harness's own message for a function that raised."""
    compare = _compare(names)

    def run(got, want):
        if isinstance(got, _Raised):
            return f"your function raised {type(got.exc).__name__}: {got.exc}"
        return compare(got, want)
    return run


def _every_feature_in_a_row(args):
    """The case with one more row (x = 1, e = 0) for each feature that is in no row."""
    w, e, feat, x, alpha, lam, mu, z = args
    missing = np.setdiff1d(np.arange(w.shape[0]), feat)
    return (w, np.r_[e, np.zeros(missing.size)], np.r_[feat, missing], np.r_[x, np.ones(missing.size)],
            alpha, lam, mu, z)


def _needs_minlength(fn, got, args):
    """True when ``fn`` raised or gave a wrong shape on a case with a feature in no row, and gives the
    right shapes once every feature has a row: np.bincount without minlength=len(w)."""
    def shapes_right(out, a):
        return (not isinstance(out, _Raised) and len(out) == 2
                and np.shape(out[0]) == np.shape(a[0]) and np.shape(out[1]) == np.shape(a[1]))
    w, _, feat, *_ = args
    if np.setdiff1d(np.arange(w.shape[0]), feat).size == 0:
        return False
    if not isinstance(got, _Raised) and shapes_right(tuple(got)[2:], args):     # got: (mean, sd, w_new, e_new)
        return False
    full = _every_feature_in_a_row(args)
    out = _catching(lambda *a: fn(*[v.copy() if isinstance(v, np.ndarray) else v for v in a]))(*full)
    return shapes_right(out, full)


def _implied(fn):
    """A function of the case that returns (mean, 1/sqrt(precision), w_new, e_new) from three calls of ``fn``."""
    def run(w, e, feat, x, alpha, lam, mu, z):
        def call(zz):
            return fn(w.copy(), e.copy(), feat.copy(), x.copy(), alpha, lam, mu, zz.copy())
        mean = np.asarray(call(np.zeros_like(z))[0], dtype=np.float64)
        sd = np.asarray(call(np.ones_like(z))[0], dtype=np.float64) - mean
        w_new, e_new = call(z)
        return mean, sd, w_new, e_new
    return run


def _wrong_versions():
    """The typical mistakes, each written out in full (its residuals follow its own w). ``old``: how the
    old value enters y - g = e + w x: right (True), left out (False), subtracted ("minus": e - w x) or
    added after the division ("after": (alpha sum x e + lam mu) / P + w, an SGD step's habit)."""
    def make(counts=np.bincount, h_is_x=True, old=True, prior_mean=True, prior_var="", lam_times_alpha="",
             mu_after=False, noise="sd", update="x", xx_counts=False):
        def draw(w, e, feat, x, alpha, lam, mu, z):
            h = x if h_is_x else np.ones_like(x)
            xx = counts(feat, np.ones_like(h) if xx_counts else h * h, w.shape[0])   # a count for sum x^2
            he = counts(feat, h * e, w.shape[0])
            lam_p = 1.0 / lam if prior_var in ("both", "P") else lam            # lambda in P
            lam_n = 1.0 / lam if prior_var in ("both", "numerator") else lam    # lambda in lambda mu
            prec = alpha * (xx + lam_p) if lam_times_alpha else alpha * xx + lam_p
            prior = (alpha if lam_times_alpha == "both" else 1.0) * lam_n * mu
            own = {True: w * xx, False: 0.0, "minus": -w * xx, "after": 0.0}[old]     # alpha w sum x^2
            num = alpha * (he + own) + (prior if prior_mean and not mu_after else 0.0)
            mean = num / prec + (mu if mu_after else 0.0) + (w if old == "after" else 0.0)
            w_new = mean + {"sd": z / np.sqrt(prec), "var": z / prec, "times": z * np.sqrt(prec),
                            "alpha": z / np.sqrt(alpha * prec)}[noise]
            change = (w_new - w)[feat]
            e_new = {"x": e - change * x, "no x": e - change, "x^2": e - change * x * x, "sign": e + change * x,
                     "none": e.copy(), "new": e - w_new[feat] * x}[update]
            return w_new, e_new
        return draw

    def bincount(feat, v, n):
        return np.bincount(feat, weights=v, minlength=n)

    def buffered(feat, v, n):
        out = np.zeros(n)
        out[feat] += v                                                       # keeps one row per feature
        return out

    return {"prior mean": [make(bincount, prior_mean=False)],
            "prior variance": [make(bincount, prior_var=v) for v in ("both", "P", "numerator")],
            "prior times alpha": [make(bincount, lam_times_alpha=v) for v in ("both", "P")],
            "prior mean after the division": [make(bincount, mu_after=True)],
            "old value": [make(bincount, old=False)],
            "old value subtracted": [make(bincount, old="minus")],
            "old value after the division": [make(bincount, old="after")],
            "noise scale": [make(bincount, noise=v) for v in ("var", "times", "alpha")],
            "h = 1": [make(bincount, h_is_x=False)],
            "counts for sum x^2": [make(bincount, xx_counts=True)],
            "repeated rows": [make(buffered)],
            "no residual update": [make(bincount, update="none")],
            "residual sign": [make(bincount, update="sign")],
            "residual without x": [make(bincount, update=v) for v in ("no x", "x^2")],
            "residual by the new value": [make(bincount, update="new")]}


HINTS = {
    "z not used": "use the z you are given: your draws differ between calls with the same z (draw with "
                  "mean + z / sqrt(P), not with np.random)",
    "prior mean": "the prior's mean is missing: the numerator is alpha sum_r h_r (y_r - g_r) + lambda mu "
                  "(with mu != 0 the mean moves towards it)",
    "prior variance": "the prior N(mu, 1/lambda) enters with its precision lambda, not its variance 1/lambda: "
                      "P = alpha sum_r h_r^2 + lambda, and lambda mu in the numerator",
    "prior times alpha": "alpha multiplies the data's part only: P = alpha sum_r h_r^2 + lambda and the numerator "
                         "alpha sum_r h_r (y_r - g_r) + lambda mu (the prior's precision lambda is not scaled by "
                         "the noise precision)",
    "prior mean after the division": "the prior's mean goes into the numerator, as lambda mu, before dividing by "
                                     "P: m = (alpha sum_r h_r (y_r - g_r) + lambda mu) / P, a precision-weighted "
                                     "blend of the data's answer and mu, not (...) / P + mu",
    "old value": "y_r - g_r is the residual with w_i's own part added back: e_r + w_i x_r (e holds y - yhat, "
                 "and yhat includes the old w_i), so the numerator needs alpha (sum_r x_r e_r + w_i sum_r x_r^2)",
    "old value subtracted": "w_i's own part is added back to the residual, not taken off: y_r - g_r = e_r + "
                            "w_i x_r (e = y - yhat, and yhat = g + w_i x), so the numerator needs alpha (sum_r x_r "
                            "e_r + w_i sum_r x_r^2), with a plus",
    "old value after the division": "the old value goes into the numerator, not after it: y_r - g_r = e_r + w_i "
                                    "x_r, so m = (alpha (sum_r x_r e_r + w_i sum_r x_r^2) + lambda mu) / P; "
                                    "(alpha sum_r x_r e_r + lambda mu) / P + w_i is an SGD habit (w plus a step), "
                                    "and the draw is a fresh value, not a step from the old one",
    "minlength": "a feature in no row: pass minlength=len(w) to np.bincount (without it the sums stop at the "
                 "largest feature that has a row, and their shape is not w's)",
    "noise scale": "the draw is mean + z / sqrt(P): z is scaled by the standard deviation 1/sqrt(P), "
                   "not by the variance 1/P, nor by sqrt(P), nor by 1/sqrt(alpha P) (P is a precision, and "
                   "alpha is already in it)",
    "h = 1": "h for w_i is x_i, not 1: the sums are sum_r x_r^2 and sum_r x_r e_r over the rows of feature i "
             "(with one-hot x = 1 they agree; with real x they do not)",
    "repeated rows": "a feature's rows are not all summed: xx[feat] += ... keeps one row per feature (NumPy "
                     "buffers repeated indices); use np.bincount(feat, weights=..., minlength=len(w)) or "
                     "np.add.at",
    "no residual update": "the residuals were not updated: every row of feature i moves by the change of its "
                          "prediction, e_r <- e_r - (w_new_i - w_i) x_r, or the next draw reads stale residuals",
    "residual sign": "the residuals moved the wrong way: e = y - yhat, and yhat grows by (w_new_i - w_i) x_r, so "
                     "e_r <- e_r - (w_new_i - w_i) x_r",
    "residual without x": "the residual moves by the change of the prediction, (w_new_i - w_i) x_r: multiply "
                          "the change by the row's x, once (h = x: not 1, not x^2)",
    "counts for sum x^2": "sum_r h_r^2 is sum_r x_r^2, not a count of the feature's rows (x is real here): "
                          "np.bincount(feat, weights=x * x, minlength=len(w))",
    "residual by the new value": "move e by the change (w_new - w_old) x, not by w_new x: e holds y - yhat "
                                 "with the old w_i already in yhat, so e_r <- e_r - (w_new_i - w_i) x_r",
}


def _close_all(got, want):
    try:
        return len(got) == len(want) and all(
            np.shape(g) == np.shape(w) and rel_error(np.asarray(g, dtype=np.float64), w) < 1e-6
            for g, w in zip(got, want))
    except (TypeError, ValueError):
        return False


def _varies_with_the_same_z(fn, args):
    """True when two calls of ``fn`` with the same arguments (the same z) return different draws."""
    w, e, feat, x, alpha, lam, mu, z = args
    first, second = (fn(w.copy(), e.copy(), feat.copy(), x.copy(), alpha, lam, mu, z.copy()) for _ in range(2))
    return not all(np.array_equal(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), equal_nan=True)
                   for a, b in zip(first, second))                  # a NaN from a slip is not randomness


def check_draw_w_field(draw_w_field):
    """``draw_w_field(w, e, feat, x, alpha, lam, mu, z) -> (w_new, e_new)``: the Gibbs draw of one
    one-hot field's weights w (n_b,) given the residuals e (N,), each row's feature ``feat`` (N,) and
    value ``x`` (N,), the noise precision alpha, the prior N(mu, 1/lam) and standard normals z (n_b,)."""
    cases = _field_cases()
    run = _catching(_implied(draw_w_field))
    reference = _implied(_reference)
    wrong = _wrong_versions()
    hints = [(lambda got, want, a: _needs_minlength(draw_w_field, got, a), HINTS["minlength"]),
             (lambda got, want, a: _varies_with_the_same_z(draw_w_field, a), HINTS["z not used"])]
    hints += [(lambda got, want, a, fns=fns: any(_close_all(got, _implied(f)(*a)) for f in fns), HINTS[key])
              for key, fns in wrong.items()]
    names = ["conditional mean (your w_new with z = 0)",
             "conditional standard deviation 1/sqrt(P) (your w_new(z=1) - w_new(z=0))",
             "w_new", "e_new (the residuals after the draw)"]
    return _run("draw_w_field", run, cases, reference, _compare_outputs(names), hints,
                "repeated rows per feature, a feature in no row, rows without the field, real and one-hot x, "
                "mu != 0, lambda != 1")
