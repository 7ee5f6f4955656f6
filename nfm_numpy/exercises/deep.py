r"""Checkers for notebook 3: the affine layer's and batch norm's backward passes, and NFM with
dropout moved before batch norm.

Every hint names the output that went wrong first (the one the FAIL line reports: dx, dgamma, ...)
and fires only when that output is what one known mistake gives, computed here from the case's
inputs. ``AFFINE_HINTS`` and ``BATCHNORM_HINTS`` hold them in order, each list ending with a
last-resort hint per output for a mistake not in the list; tests/test_exercises_deep.py plants every
mistake and checks that its hint, and no other, fires.
A function that raises on the shapes of a product (``da @ W`` for ``da @ W.T``) gets
``AFFINE_SHAPE_HINT`` after the error.

Notation of the notebook: B rows in a batch, indexed by r; for batch norm
rho = 1/sqrt(var + eps) (var the biased batch variance), xhat = (x - mu) rho, g = gamma dy = dL/dxhat.
"""
import numpy as np

from .. import backend, gradcheck, layers
from ..gradcheck import rel_error
from ..model import NFM
from .harness import TOL, Result, _close, _compare, _not_implemented, _outputs, _run, _say


def _first_wrong(got, want):
    """Index of the output ``harness._compare`` reports (the first with a wrong shape or value), or None."""
    got = _outputs(got, want)
    if len(got) != len(want):
        return None
    for i, (g, w) in enumerate(zip(got, want)):
        g = np.asarray(g, dtype=np.float64)
        if g.shape != w.shape or not rel_error(g, w) < TOL:
            return i
    return None


def _when(k, mistake=None):
    """A hint's test: output ``k`` is the first wrong one and equals ``mistake(*inputs)`` (any value if None)."""
    def test(got, want, args):
        return _first_wrong(got, want) == k and (mistake is None or _close(got[k], mistake(*args)))
    return test


def _in_another_order(got, want, args):
    """Every output is right, but not in its place."""
    return _first_wrong(got, want) is not None and all(any(_close(g, w) for g in got) for w in want)


# ================================================================ affine
AFFINE_HINTS = [
    (_in_another_order, "the three gradients are right but in another order: return (dz, dW, db)"),
    (_when(0, lambda da, z, W: (da @ W.T).T), "dz is transposed: it has z's shape (B, D), dz = da W^T"),
    (_when(1, lambda da, z, W: da.T @ z), "dW must have W's shape (D, M): it is z^T da, not da^T z"),
    (_when(1, lambda da, z, W: z.T @ da / da.shape[0]),
     "dW is divided by B: it is the sum over the rows, z^T da, with no 1/B (a mean over the batch, if the "
     "loss takes one, is already in da)"),
    (_when(2, lambda da, z, W: da.mean(axis=0)), "db is the sum over the batch, not the mean: db = sum_r da_r"),
    (_when(2, lambda da, z, W: da.sum(axis=1)),
     "db sums over the wrong axis: one number per output column, db = sum_r da_r = da.sum(axis=0), shape (M,)"),
    (_when(2, lambda da, z, W: da.sum()),
     "db is one number per output column, shape (M,): sum over the rows only, da.sum(axis=0)"),
    (_when(0), "dz = da W^T, shape (B, D): every a_r depends on z_r through W"),
    (_when(1), "dW = z^T da, shape (D, M): W_dm meets z_rd in every row r"),
    (_when(2), "db = sum_r da_r, shape (M,): b is added to every row"),
]


# a learner's function that raises on shapes (``da @ W`` for ``da @ W.T``, ``z @ da`` for ``z.T @ da``) gets
# no output to compare, so AFFINE_HINTS cannot see it: this hint is added to the error's message instead
AFFINE_SHAPE_HINT = ("the shapes of a product do not fit (a .T forgotten?): here da is (B, M) = {da}, z (B, D) = "
                     "{z} and W (D, M) = {W}, so dz = da @ W.T is (B, D), dW = z.T @ da is (D, M) and "
                     "db = da.sum(axis=0) is (M,)")


def _is_shape_error(error):
    """NumPy's ValueError for a matrix product or a broadcast whose shapes do not fit (not, say, an unpacking
    error, which is a ValueError too)."""
    return isinstance(error, ValueError) and any(w in str(error) for w in ("matmul", "shape"))


def check_affine_backward(affine_backward):
    """``affine_backward(da, z, W) -> (dz, dW, db)`` for a = z W + b, z (B, D), W (D, M), b (M,)."""
    rng = np.random.default_rng(6)
    cases = [(f"B={B}, D={D}, M={M}", (rng.standard_normal((B, M)), rng.standard_normal((B, D)),
                                       rng.standard_normal((D, M))))
             for B, D, M in ((4, 3, 2), (7, 5, 6), (1, 2, 1))]

    def reference(da, z, W):
        return layers.affine_backward(da, (z, W))

    def learners(da, z, W):
        try:
            return affine_backward(da, z, W)
        except ValueError as e:
            if not _is_shape_error(e):
                raise
            hint = AFFINE_SHAPE_HINT.format(da=da.shape, z=z.shape, W=W.shape)
            raise ValueError(f"{e}\n  hint: {hint}") from None

    return _run("affine_backward", learners, cases, reference, _compare(["dz", "dW", "db"]), AFFINE_HINTS,
                "batches of 1 to 7 rows, random W")


# ================================================================ batch norm
def _bn(dy, x, gamma, eps, ddof=0):
    """rho (D,), xhat (B, D) and g = gamma dy (B, D) of training-mode batch norm (ddof=1: the unbiased
    variance, a mistake)."""
    rho = 1.0 / np.sqrt(x.var(axis=0, ddof=ddof) + eps)     # (D,)
    xhat = (x - x.mean(axis=0)) * rho                       # (B, D)
    return rho, xhat, dy * gamma                            # g: (B, D)


def _dx(rho, xhat, g, mean_term=True, variance_term=True):
    """rho/B (B g - sum_r g_r - xhat sum_r g_r xhat_r), with either term left out on request."""
    B = g.shape[0]
    return rho / B * (B * g - mean_term * g.sum(axis=0) - variance_term * xhat * (g * xhat).sum(axis=0))


def _dgamma_dbeta_swapped(got, want, args):
    return _first_wrong(got, want) == 1 and _close(got[1], want[2]) and _close(got[2], want[1])


def _dgamma_is_dbeta(got, want, args):
    return _first_wrong(got, want) == 1 and _close(got[1], want[2]) and not _close(got[2], want[1])


def _variance_term_off_by_2(got, want, args):
    """dx with its variance term doubled (the -1/2 of d rho / d var forgotten) or halved (the 2 of d var / dx)."""
    return any(_when(0, lambda dy, x, gamma, eps, f=factor: _dx(*_bn(dy, x, gamma, eps), True, f))(got, want, args)
               for factor in (2.0, 0.5))


def _mean_term_off_by_2(got, want, args):
    """dx with its mean term doubled or halved."""
    return any(_when(0, lambda dy, x, gamma, eps, f=factor: _dx(*_bn(dy, x, gamma, eps), f, True))(got, want, args)
               for factor in (2.0, 0.5))


def _means_for_sums(got, want, args):
    """dx with a mean over the batch in place of one or both sums inside rho/B (...)."""
    B = args[1].shape[0]
    return any(_when(0, lambda dy, x, gamma, eps, m=m, v=v: _dx(*_bn(dy, x, gamma, eps), m, v))(got, want, args)
               for m, v in ((1 / B, 1 / B), (1 / B, 1.0), (1.0, 1 / B)))


_DX = ("dx_r = rho/B (B g_r - sum_r' g_r' - xhat_r sum_r' g_r' xhat_r'), with g = gamma dy, "
       "rho = 1/sqrt(var + eps), xhat = (x - mu) rho")

BATCHNORM_HINTS = [
    (_when(0, lambda dy, x, gamma, eps: _dx(*_bn(dy, x, gamma, eps), False, False)),
     "dx is the evaluation-mode gradient rho g: in training mu and var are computed from the batch, so each "
     "x_r moves them too, which adds the mean term and the variance term: " + _DX),
    (_when(0, lambda dy, x, gamma, eps: _dx(*_bn(dy, x, gamma, eps), mean_term=False)),
     "dx lacks the mean term - sum_r' g_r' (mu depends on every row; without it a column of dx does not sum "
     "to 0): " + _DX),
    (_when(0, lambda dy, x, gamma, eps: _dx(*_bn(dy, x, gamma, eps), variance_term=False)),
     "dx lacks the variance term - xhat_r sum_r' g_r' xhat_r' (var depends on every row too): " + _DX),
    (_variance_term_off_by_2,
     "dx's variance term is 2 times too large or too small: d rho / d var = -rho^3 / 2 and "
     "d var / d x_r = 2 (x_r - mu) / B, which together give - xhat_r sum_r' g_r' xhat_r' inside rho/B (...)"),
    (_mean_term_off_by_2,
     "dx's mean term is 2 times too large or too small: dL/dmu = -rho sum_r' g_r' (its path through var "
     "adds 0) and d mu / d x_r = 1/B, which together give - sum_r' g_r' inside rho/B (...)"),
    (_means_for_sums,
     "dx has a mean over the batch where the formula has a sum: the 1/B is already in front, "
     "rho/B (B g_r - sum_r' g_r' - xhat_r sum_r' g_r' xhat_r'), so the two inner terms are sums"),
    (_when(0, lambda dy, x, gamma, eps: _dx(*_bn(dy, x, gamma, eps)[:2], dy)),
     "dx is missing gamma: the terms use g = gamma dy = dL/dxhat, not dy: " + _DX),
    (_when(0, lambda dy, x, gamma, eps: _dx(*_bn(dy, x, gamma, eps, ddof=1))),
     "dx uses the unbiased variance, divided by B - 1: batch norm normalises with the batch's own (biased) "
     "variance, sum_r (x_r - mu)^2 / B, np.var's default (ddof=0)"),
    (_when(0, lambda dy, x, gamma, eps: _dx(*_bn(dy, x, gamma, 0.0))),
     "dx is the gradient with eps = 0: rho = 1/sqrt(var + eps), with the eps passed in (1e-3 here)"),
    (_dgamma_dbeta_swapped, "dgamma and dbeta are swapped: return (dx, dgamma, dbeta) in that order"),
    (_dgamma_is_dbeta, "dgamma = sum_r dy_r is dbeta's formula: gamma multiplies xhat, so "
                       "dgamma = sum_r dy_r xhat_r"),
    (_when(1, lambda dy, x, gamma, eps: (dy * _bn(dy, x, gamma, eps)[1]).mean(axis=0)),
     "dgamma is the mean over the batch, not the sum: dgamma = sum_r dy_r xhat_r"),
    (_when(1, lambda dy, x, gamma, eps: (dy * (x - x.mean(axis=0))).sum(axis=0)),
     "dgamma uses x - mu where it needs xhat = (x - mu) rho: dgamma = sum_r dy_r xhat_r"),
    (_when(1, lambda dy, x, gamma, eps: (dy * gamma * _bn(dy, x, gamma, eps)[1]).sum(axis=0)),
     "dgamma is multiplied by gamma (too large where gamma > 1, too small where gamma < 1): "
     "dgamma = sum_r dy_r xhat_r, with dy, not g = gamma dy"),
    (_when(2, lambda dy, x, gamma, eps: dy.mean(axis=0)),
     "dbeta is the mean over the batch, not the sum: dbeta = sum_r dy_r"),
    (_when(2, lambda dy, x, gamma, eps: (dy * gamma).sum(axis=0)),
     "dbeta is multiplied by gamma (too large where gamma > 1, too small where gamma < 1): "
     "dbeta = sum_r dy_r, with dy, not g = gamma dy"),
    (_when(0), "dx: compare each term with " + _DX + " (var the biased variance, divided by B)"),
    (_when(1), "dgamma = sum_r dy_r xhat_r, with xhat = (x - mu) / sqrt(var + eps)"),
    (_when(2), "dbeta = sum_r dy_r: beta is added to every row"),
]


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
        _, cache, _ = layers.batchnorm_forward(x, gamma, np.zeros(D), np.zeros(D), np.ones(D), True, eps=eps)
        return layers.batchnorm_backward(dy, cache)

    return _run("batchnorm_backward", batchnorm_backward, cases, reference, _compare(["dx", "dgamma", "dbeta"]),
                BATCHNORM_HINTS, "batches of 2 to 16 rows, shifted and scaled columns, random gamma")


# ================================================================ dropout before batch norm
DROPOUT_FIRST_MODEL = dict(k=5, layers=[6], keep_prob=[0.8, 0.5], batch_norm=True,
                           activation="tanh", dtype="float64")
DROPOUT_FIRST_SEED = 0          # the dropout masks of the forward compared (check_model draws its own)


def dropout_first_output(model, batch, seed=DROPOUT_FIRST_SEED):
    """Training-mode output of ``model``'s parameters with dropout *before* batch norm in every block
    (BN's running averages are not used in training), built from the layers: the reference the learner's
    forward is compared with. The masks are drawn in the model's order (layer 0, 1, ...) from
    ``backend.Random(seed)``."""
    p, c = model.params, model.config
    rng = backend.Random(seed)
    z = layers.bi_interaction_forward(layers.embedding_forward(batch.idx, batch.val, p["V"])[0])[0]  # (B, k)
    for l in range(len(c["layers"]) + 1):
        if l > 0:
            z = layers.affine_forward(z, p[f"W{l}"], p[f"b{l}"])[0]                               # (B, d_l)
        z = layers.dropout_forward(z, c["keep_prob"][-1] if l == 0 else c["keep_prob"][l - 1], rng)[0]
        d = z.shape[1]
        z = layers.batchnorm_forward(z, p[f"gamma{l}"], p[f"beta{l}"], np.zeros(d), np.ones(d), True)[0]
        if l > 0:
            z = layers.activation_forward(z, c["activation"])[0]
    return layers.linear_forward(batch.idx, batch.val, p["w0"], p["w"])[0] + z @ p["h"]              # (B,)


def _hint_if_L(error):
    """The hint for the pasted code's ``L.`` left as it is (this notebook names the module ``layers``)."""
    if isinstance(error, NameError) and "'L'" in str(error):
        return ("\n  hint: the pasted code calls the layers module L, as model.py imports it; the notebook "
                "calls it layers: replace every L. with layers. in that cell")
    return ""


def check_dropout_first(model_class):
    """``model_class``: a subclass of ``NFM`` whose forward runs each block as affine, dropout, batch norm,
    activation (dropout moved before batch norm). Builds it with 40 features and ``DROPOUT_FIRST_MODEL``
    (dropout on, tanh),
    compares its training-mode output with ``dropout_first_output``, then runs ``gradcheck.check_model``
    and prints the table: PASS when the backward pass agrees with the forward."""
    name = getattr(model_class, "__name__", "the model")
    batch = gradcheck.random_problem(seed=2)
    try:
        model = model_class(40, **DROPOUT_FIRST_MODEL)
        got = model.forward(batch.idx, batch.val, train=True, rng=backend.Random(DROPOUT_FIRST_SEED))[0]
    except NotImplementedError as e:
        return _not_implemented(name, e)
    except Exception as e:   # a learner's bug: report it, do not stop the notebook
        return _say(Result(name, "fail", f"{name}: FAIL: building it or its forward pass raised "
                                         f"{type(e).__name__}: {e}" + _hint_if_L(e)))
    original = NFM.forward(model, batch.idx, batch.val, train=True, rng=backend.Random(DROPOUT_FIRST_SEED))[0]
    want = dropout_first_output(model, batch)
    if _close(got, original):
        return _say(Result(name, "fail", f"{name}: FAIL: its forward gives NFM's numbers, batch norm before "
                                         "dropout\n  hint: move the two dropout lines (the comment and "
                                         "z, caches[f\"drop{l}\"] = ...) up to just above if c[\"batch_norm\"]:"))
    if not _close(got, want):
        return _say(Result(name, "fail", f"{name}: FAIL: its forward is neither order, relative error "
                                         f"{rel_error(got, want):.1e} against dropout before batch norm\n  hint: "
                                         "each block must run affine, dropout, batch norm, activation; "
                                         "move only the dropout lines, nothing else"))
    mirror = ("your backward must undo each block in the reverse of the forward's order: activation, "
              "batch norm, dropout, affine")
    try:
        report = gradcheck.check_model(model, batch)
    except NotImplementedError as e:   # step 1 done, step 2's stub still there
        return _say(Result(name, "not implemented", f"{name}: the forward runs dropout before batch norm; the "
                                                   f"backward is not implemented yet ({e or 'the stub raises'}); "
                                                   "write it above and run this cell again"))
    except Exception as e:   # a backward that mixes up the caches can fail on shapes
        return _say(Result(name, "fail", f"{name}: FAIL: the forward runs dropout before batch norm, but the "
                                         f"backward pass raised {type(e).__name__}: {e}"
                                         + (_hint_if_L(e) or f"\n  hint: {mirror}")))
    print(report)
    if report.ok:
        return _say(Result(name, "pass", f"{name}: PASS: the forward runs dropout before batch norm, and the "
                                         "gradient check agrees with the backward (table above)"))
    if model_class.backward is NFM.backward:
        hint = ("the forward is right, the backward is still NFM.backward: it undoes each block as dropout, "
                "activation, batch norm, affine, the reverse of NFM's order, not of yours")
    else:
        hint = mirror
    return _say(Result(name, "fail", f"{name}: FAIL: the forward runs dropout before batch norm, but the "
                                     f"gradient check fails (table above)\n  hint: {hint}"))
