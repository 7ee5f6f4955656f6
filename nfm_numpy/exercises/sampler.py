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

``check_draw_v_field`` checks the end exercise, the draw of one column of V for a one-hot field
(``draw_v_field(V, f, e, s, feat, x, alpha, lam, mu, z) -> (V_new, e_new, s_new)``, with h = x q and
q = s_f - x v_f). Its reference is the package's own sampler: ``GibbsFM.v_conditional`` for the mean and
precision, and ``GibbsFM.set_V`` on a copy of the sampler (its V copied) for e and s from scratch after the draw. It
runs on the learner's sampler (a one-hot field, x = 1) and on a small sampler of its own whose field
holds real values, where a slip in x (s + dv in place of s + dv x) shows.
"""
import copy

import numpy as np

from .. import backend as B, bayes
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
             mu_after=False, noise="sd", update="x", xx_counts=False, mu_alone=False, xe_h1=False):
        def draw(w, e, feat, x, alpha, lam, mu, z):
            h = x if h_is_x else np.ones_like(x)
            xx = counts(feat, np.ones_like(h) if xx_counts else h * h, w.shape[0])   # a count for sum x^2
            he = counts(feat, e if xe_h1 else h * e, w.shape[0])                 # xe_h1: weights=e, h = 1 here only
            lam_p = 1.0 / lam if prior_var in ("both", "P") else lam            # lambda in P
            lam_n = 1.0 / lam if prior_var in ("both", "numerator") else lam    # lambda in lambda mu
            prec = alpha * (xx + lam_p) if lam_times_alpha else alpha * xx + lam_p
            prior = mu if mu_alone else (alpha if lam_times_alpha == "both" else 1.0) * lam_n * mu
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
            "prior mean without lambda": [make(bincount, mu_alone=True)],
            "old value": [make(bincount, old=False)],
            "old value subtracted": [make(bincount, old="minus")],
            "old value after the division": [make(bincount, old="after")],
            "noise scale": [make(bincount, noise=v) for v in ("var", "times", "alpha")],
            "h = 1": [make(bincount, h_is_x=False)],
            "counts for sum x^2": [make(bincount, xx_counts=True)],
            "h = 1 in the x e sum": [make(bincount, xe_h1=True)],
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
    "prior mean without lambda": "the prior's mean enters weighted by its precision: + lambda mu in the "
                                 "numerator, not + mu (m = (alpha sum_r h_r (y_r - g_r) + lambda mu) / P)",
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
    "h = 1 in the x e sum": "the sum x e needs its x too: np.bincount(feat, weights=x * e, minlength=len(w)), not "
                            "weights=e (h = x in both sums, sum_r x_r^2 and sum_r x_r e_r; with one-hot x = 1 "
                            "the two agree, with real x they do not)",
    "repeated rows": "a feature's rows are not all summed: xx[feat] += ... keeps one row per feature (NumPy "
                     "buffers repeated indices); use np.bincount(feat, weights=..., minlength=len(w)) or "
                     "np.add.at",
    "w in place": "w was overwritten in place (w[:] = ..., or w_old = w, which is the same array, not a copy), "
                  "so w_new - w is zero and the residuals did not move: keep the old weights (w_old = w.copy(), "
                  "or build w_new as a new array) and move e_r by (w_new_i - w_old_i) x_r",
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


def _w_overwritten(fn, got, args):
    """True when ``fn`` changed its input w in place and its residuals did not move (e_new equals e): the
    old weights were overwritten before the change w_new - w was taken, which then reads zero."""
    if isinstance(got, _Raised):
        return False
    w, e, feat, x, alpha, lam, mu, z = args
    w_in, e_in = w.copy(), e.copy()
    out = fn(w_in, e_in, feat.copy(), x.copy(), alpha, lam, mu, z.copy())
    return not np.array_equal(w_in, w) and _close_all((out[1],), (e,))


def check_draw_w_field(draw_w_field):
    """``draw_w_field(w, e, feat, x, alpha, lam, mu, z) -> (w_new, e_new)``: the Gibbs draw of one
    one-hot field's weights w (n_b,) given the residuals e (N,), each row's feature ``feat`` (N,) and
    value ``x`` (N,), the noise precision alpha, the prior N(mu, 1/lam) and standard normals z (n_b,)."""
    cases = _field_cases()
    run = _catching(_implied(draw_w_field))
    reference = _implied(_reference)
    wrong = _wrong_versions()
    hints = [(lambda got, want, a: _needs_minlength(draw_w_field, got, a), HINTS["minlength"]),
             (lambda got, want, a: _varies_with_the_same_z(draw_w_field, a), HINTS["z not used"]),
             (lambda got, want, a: _w_overwritten(draw_w_field, got, a), HINTS["w in place"])]
    hints += [(lambda got, want, a, fns=fns: any(_close_all(got, _implied(f)(*a)) for f in fns), HINTS[key])
              for key, fns in wrong.items()]
    names = ["conditional mean (your w_new with z = 0)",
             "conditional standard deviation 1/sqrt(P) (your w_new(z=1) - w_new(z=0))",
             "w_new", "e_new (the residuals after the draw)"]
    return _run("draw_w_field", run, cases, reference, _compare_outputs(names), hints,
                "repeated rows per feature, a feature in no row, rows without the field, real and one-hot x, "
                "mu != 0, lambda != 1")


# ------------------------------------------------------------------ the end exercise: one column of V
V_HINTS = {
    "inputs changed": "your function changed its inputs in place: copy V before writing the column (V = "
                      "V.copy()) and build e_new and s_new as new arrays (e - ..., not e -= ...); with V written "
                      "in place, v = V[:, f] is a view, so the change v_new - v reads zero",
    "spread": "the draw is mean + z / sqrt(P): z is scaled by the standard deviation 1/sqrt(P), not by the "
              "variance 1/P",
    "s not stripped": "h for v_if is x q, with q = s_f - x v_if: the row's s_f without the field's own term "
                      "(s_f holds x v_if too, whose square cancels in the FM: section 2), not x s_f",
    "e by dv x": "e moves by the change of the prediction, dv h with h = x q (q = s_f - x v_if): "
                 "e - dv x is the update of w_i, whose h is x",
    "e sign": "the residuals moved the wrong way: e = y - yhat, and yhat grows by dv h, so e_new = e - dv h",
    "h from the updated s": "the residual update needs h from before the draw, x (s_f - x v_old): compute "
                            "q = s - x v[feat] once, before s moves (s_new - x v_old is q + dv x, not q)",
    "h without x": "h for v_if is x q, not q (q = s_f - x v_if): keep the row's x in h, in the sums and in the "
                   "residual update (with one-hot x = 1 the two agree; with real x they do not)",
    "e by dv q": "e moves by dv h with h = x q, not by dv q: the residual update dropped the x that the sums "
                 "kept (with one-hot x = 1 the two agree; with real x they do not)",
    "s without x": "s_f = sum_i x_i v_if moves by dv x in each row: s_new = s + dv x (with x = 1 the two agree; "
                   "with real x they do not)",
}


class _Said:
    """A message about the learner's outputs that is not a comparison (e.g. not three of them)."""

    def __init__(self, text):
        self.text = text


def _v_case(sampler, c, f, z_seed, desc):
    """The arguments of draw_v_field for column ``c`` of the sampler's rows (one block) and factor ``f``,
    from copies of the sampler's state, standard normals z from ``z_seed``, and the sampler itself for
    the reference (last)."""
    idx = np.asarray(B.to_numpy(sampler.idx))
    x = np.asarray(B.to_numpy(sampler.val), dtype=np.float64)[:, c].copy()         # (N,)
    b = int(sampler.block_of[idx[np.flatnonzero(x)[0], c]])
    feats = np.asarray(B.to_numpy(sampler.blocks[b].feat))                        # (n_b,) in v_conditional's order
    local = np.full(sampler.n_features, -1)
    local[feats] = np.arange(feats.size)
    feat = np.where(x != 0, local[idx[:, c]], 0)                                  # (N,) x = 0: any valid index
    if np.any(feat < 0):
        raise ValueError(f"column {c} of the sampler's rows holds features of more than one block: pass the "
                         "column of a one-hot field")
    g = int(sampler.group[feats[0]])
    V_b = np.asarray(B.to_numpy(sampler.V))[feats]                                # (n_b, k)
    e = np.array(B.to_numpy(sampler.e), dtype=np.float64)                         # (N,) copies
    s = np.array(B.to_numpy(sampler.s[f]), dtype=np.float64)
    z = np.random.default_rng(z_seed).standard_normal(feats.size)
    return desc, (V_b, f, e, s, feat, x, float(sampler.alpha), float(sampler.lam_v[g, f]),
                  float(sampler.mu_v[g, f]), z, (sampler, feats, b))


def _toy_sampler():
    """A small sampler whose field 0 (features 0-4) holds real values in [-2, 2]; field 1 is one-hot."""
    rng = np.random.default_rng(5)
    feat = rng.integers(0, 5, 60)                                                 # (60,)
    idx = np.stack([feat, 5 + rng.integers(0, 4, 60)], axis=1)                    # (60, 2)
    val = np.ones(idx.shape)
    val[:, 0] = rng.uniform(-2.0, 2.0, 60)
    toy = bayes.GibbsFM(idx, val, rng.standard_normal(60), 9, k=3, groups=np.repeat([0, 1], [5, 4]), seed=2)
    toy.sweep()
    return toy


def _v_reference(V, f, e, s, feat, x, alpha, lam, mu, z, ctx):
    """The package's draw: v_conditional's mean and precision, then set_V on a copy of the sampler (e and
    s from scratch); the inputs, which should come back unchanged, last."""
    sampler, feats, b = ctx
    mean, prec = (np.asarray(B.to_numpy(a), dtype=np.float64) for a in sampler.v_conditional(f, b))
    v_new = mean + z / np.sqrt(prec)
    twin = copy.copy(sampler)                                                     # the sampler stays as it was:
    twin.Vc = [sampler.xp.asarray(col, copy=True) for col in sampler.Vc]         # set_V writes into twin.Vc,
    twin.set_V(feats, f, v_new)                                                   # and refresh rebinds s and e
    V_new = V.copy()
    V_new[:, f] = v_new
    return (mean, 1.0 / np.sqrt(prec), V_new, np.asarray(B.to_numpy(twin.e), dtype=np.float64),
            np.asarray(B.to_numpy(twin.s[f]), dtype=np.float64), V, e, s)


def _column(V_out, f):
    """Column f of the learner's V_new where it has one (else V_new as given: the shape is then reported)."""
    V_out = np.asarray(V_out, dtype=np.float64)
    return V_out[:, f] if V_out.ndim == 2 and V_out.shape[1] > f else V_out


def _implied_v(fn):
    """A function of the case that returns (mean, 1/sqrt(P), V_new, e_new, s_new, V, e, s after the call)
    from three calls of ``fn`` (z = 0, z = 1, the case's z), each on fresh copies of the inputs."""
    def run(V, f, e, s, feat, x, alpha, lam, mu, z, ctx=None):
        def call(zz, V_in, e_in, s_in):
            out = fn(V_in, f, e_in, s_in, feat.copy(), x.copy(), alpha, lam, mu, zz.copy())
            if not isinstance(out, (tuple, list)) or len(out) != 3:
                return None
            return out
        outs = [call(zz, V.copy(), e.copy(), s.copy()) for zz in (np.zeros_like(z), np.ones_like(z))]
        V_in, e_in, s_in = V.copy(), e.copy(), s.copy()
        last = call(z, V_in, e_in, s_in)
        if last is None or None in outs:
            return _Said("draw_v_field must return three outputs, (V_new, e_new, s_new)")
        mean = _column(outs[0][0], f)
        return (mean, _column(outs[1][0], f) - mean, *last, V_in, e_in, s_in)
    return run


def _v_wrong_versions():
    """The typical slips, each written out in full."""
    def make(noise="sd", strip=True, e_update="h", s_update="x", h_x=True):
        def draw(V, f, e, s, feat, x, alpha, lam, mu, z):
            v = V[:, f]
            q = s - x * v[feat] if strip else s
            h = x * q if h_x else q
            hh = np.bincount(feat, weights=h * h, minlength=len(v))
            he = np.bincount(feat, weights=h * e, minlength=len(v))
            prec = alpha * hh + lam
            mean = (alpha * (he + v * hh) + lam * mu) / prec
            v_new = mean + (z / prec if noise == "var" else z / np.sqrt(prec))
            dv = (v_new - v)[feat]
            s_new = s + dv * x if s_update == "x" else s + dv
            e_new = {"h": e - dv * h, "x": e - dv * x, "sign": e + dv * h, "q": e - dv * q,
                     "updated s": e - dv * x * (s_new - x * v[feat])}[e_update]
            V = V.copy()
            V[:, f] = v_new
            return V, e_new, s_new
        return draw

    return {"spread": make(noise="var"), "s not stripped": make(strip=False), "e by dv x": make(e_update="x"),
            "e sign": make(e_update="sign"), "h from the updated s": make(e_update="updated s"),
            "s without x": make(s_update="no x"), "h without x": make(h_x=False), "e by dv q": make(e_update="q")}


def _inputs_changed(fn, args):
    """True when a call of ``fn`` changes its V, e or s in place."""
    V, f, e, s, feat, x, alpha, lam, mu, z, _ = args
    ins = V.copy(), e.copy(), s.copy()
    fn(ins[0], f, ins[1], ins[2], feat.copy(), x.copy(), alpha, lam, mu, z.copy())
    return not all(np.array_equal(a, b) for a, b in zip(ins, (V, e, s)))


def check_draw_v_field(draw_v_field, sampler, c=2, f=5):
    """``draw_v_field(V, f, e, s, feat, x, alpha, lam, mu, z) -> (V_new, e_new, s_new)``: the Gibbs draw of
    column f of V for one one-hot field (notebook 9, exercise 3), checked on copies of ``sampler``'s state
    (the field in column ``c`` of its rows, factor ``f``) and on a small sampler with real x of its own.

    Each case calls the function with z = 0 (column f should be ``v_conditional``'s mean), z = 1 (the mean
    plus 1/sqrt(precision)) and random z, whose e_new and s_new should equal those ``set_V`` computes from
    scratch on a copy of the sampler; the inputs V, e and s should come back unchanged. The sampler is not
    changed."""
    if not 0 <= f < sampler.k:
        raise ValueError(f"f must be a factor of the sampler, 0 to {sampler.k - 1}, got {f}")
    cases = [_v_case(sampler, c, f, 1, f"your sampler: the field in column {c}, factor {f}"),
             _v_case(_toy_sampler(), 0, 1, 2, "a small sampler: 5 features with real x in [-2, 2], 60 rows, factor 1")]
    run = _catching(_implied_v(draw_v_field))
    wrong = _v_wrong_versions()
    hints = [(lambda got, want, a: _inputs_changed(draw_v_field, a), V_HINTS["inputs changed"])]
    hints += [(lambda got, want, a, fn=fn: not isinstance(got, (_Raised, _Said)) and _close_all(
        got, _implied_v(fn)(*a)), V_HINTS[key]) for key, fn in wrong.items()]
    names = ["conditional mean (column f of your V_new with z = 0)",
             "conditional standard deviation 1/sqrt(P) (your V_new(z=1) - V_new(z=0), column f)",
             "V_new", "e_new (the residuals after the draw)", "s_new (the cache s_f after the draw)",
             "V after your call (your input: it should come back unchanged)",
             "e after your call (your input: it should come back unchanged)",
             "s after your call (your input: it should come back unchanged)"]
    compare = _compare_outputs(names)

    def compare_said(got, want):
        return got.text if isinstance(got, _Said) else compare(got, want)
    return _run("draw_v_field", run, cases, _v_reference, compare_said, hints,
                "one-hot and real x; the mean, the spread, the draw, e and s from scratch, inputs unchanged")
