"""Notebook 4, "the whole network by hand": your forward and backward pass of NFM-1, one line per operation.

``check_nfm_forward(nfm_forward)`` runs your forward pass on hard batches, walks its intermediates in
forward order (from the gathered weights to the loss) and reports the first one missing or wrong, with
a hint for the classic mistakes. Your function is called as
``nfm_forward(idx, val, y, p, mask0, keep0, mask1, keep1, eps)`` and returns every intermediate by name
(``return locals()``), named as ``FORWARD_ORDER``.

``cmp(name, mine, reference)`` compares one array with the package's (exact, close, largest
difference), as in Karpathy's "backprop ninja". ``check_nfm_backward(nfm_backward)`` runs your
whole backward on hard batches, walks the gradients in backward order (from the loss to the
embedding table) and reports the first one that is wrong, with a hint for the classic mistakes.

Your function is called as ``nfm_backward(v, p)``: ``v`` holds every intermediate of the forward
pass by the names of ``BACKWARD_ORDER`` (and ``idx``, ``val``, ``y``, ``eps``, the 0/1 dropout masks
``mask0``, ``mask1`` with their keep probabilities ``keep0``, ``keep1``), ``p`` the parameters; it
returns ``{name: d loss / d v[name]}``: with one variable ``d<name>`` per gradient, the last line
``return {key[1:]: x for key, x in locals().items() if key.startswith("d")}`` builds it.
The reference is ``nfm_numpy.one_step.forward_backward``: the package's own layers.
"""
import copy
import re
import traceback

import numpy as np

from .. import layers, one_step
from ..gradcheck import rel_error
from .harness import TOL, Result, _cases, _not_implemented, _raised, _say

# Every gradient, in the order the backward pass computes them (the forward's lines reversed).
BACKWARD_ORDER = ("err", "yhat", "out", "lin", "z1", "h", "r1", "bn1",
                  "scaled1", "beta1", "xhat1", "gamma1", "rstd1", "var1", "xc1", "mu1", "a1",
                  "z0", "W1", "b1", "bn0",
                  "scaled0", "beta0", "xhat0", "gamma0", "rstd0", "var0", "xc0", "mu0", "f_bi",
                  "s2", "q", "s", "E2", "E", "V_idx", "V", "lin_terms", "w0", "w_idx", "w")

# The forward line(s) that use each intermediate: its gradient comes back through them.
USED_BY = {"err": "loss = 0.5 * (err ** 2).sum()", "yhat": "err = yhat - y", "out": "yhat = lin + out",
           "lin": "yhat = lin + out", "z1": "out = z1 @ h", "h": "out = z1 @ h", "r1": "z1 = r1 * mask1 / keep1",
           "bn1": "r1 = np.maximum(bn1, 0)", "a1": "xc1 = a1 - mu1 and mu1 = a1.mean(0)",
           "z0": "a1 = z0 @ W1 + b1", "W1": "a1 = z0 @ W1 + b1", "b1": "a1 = z0 @ W1 + b1",
           "bn0": "z0 = bn0 * mask0 / keep0", "f_bi": "xc0 = f_bi - mu0 and mu0 = f_bi.mean(0)",
           "s2": "f_bi = 0.5 * (s2 - q)", "q": "f_bi = 0.5 * (s2 - q)", "s": "s2 = s * s", "E2": "q = E2.sum(1)",
           "E": "s = E.sum(1) and E2 = E * E", "V_idx": "E = val[:, :, None] * V_idx", "V": "V_idx = V[idx]",
           "lin_terms": "lin = w0 + lin_terms.sum(1)", "w0": "lin = w0 + lin_terms.sum(1)",
           "w_idx": "lin_terms = val * w_idx", "w": "w_idx = w[idx]"}
for _l, _x in ((0, "f_bi"), (1, "a1")):
    USED_BY.update({f"scaled{_l}": f"bn{_l} = scaled{_l} + beta{_l}",
                    f"beta{_l}": f"bn{_l} = scaled{_l} + beta{_l}",
                    f"xhat{_l}": f"scaled{_l} = gamma{_l} * xhat{_l}",
                    f"gamma{_l}": f"scaled{_l} = gamma{_l} * xhat{_l}",
                    f"rstd{_l}": f"xhat{_l} = xc{_l} * rstd{_l}",
                    f"var{_l}": f"rstd{_l} = (var{_l} + eps) ** -0.5",
                    f"xc{_l}": f"xhat{_l} = xc{_l} * rstd{_l} and var{_l} = (xc{_l} ** 2).mean(0)",
                    f"mu{_l}": f"xc{_l} = {_x} - mu{_l}"})

HINTS = {
    "sum": "{name} was broadcast over the rows of the batch in the forward pass (one {shape} for all B rows): "
           "its gradient adds up the rows' contributions, a .sum(0)",
    "plus": "{name} is used twice ({uses}): its gradient is the sum of the two paths, but one of them is "
            "missing: the second line must add to the first (d{name} += ...), not replace it (d{name} = ...)",
    "bn_var": "batch norm's variance term is missing: {name} also feeds var{l} = ({name} ** 2).mean(0), "
              "so add dvar{l} * 2 * {name} / B to d{name}",
    "bn_mean": "batch norm's mean term is missing: {name} also feeds mu{l} = {name}.mean(0), so add "
               "dmu{l} / B to every row of d{name}",
    "mask": "dropout's mask is missing: {name} reached the next layer as {name} * mask{l} / keep{l}, so its "
            "gradient is multiplied by the same mask{l} / keep{l} (the dropped units get 0)",
    "scale": "dropout's rescaling is missing: the forward divided by keep{l}, so the backward divides by "
             "keep{l} too: d{name} = dz{l} * mask{l} / keep{l}",
    "relu": "the ReLU passes the gradient only where its input was positive: multiply by (bn1 > 0)",
    "scatter": "repeated ids: d{name}[idx] += ... keeps only one occurrence of each id (NumPy buffers the "
               "update); use np.add.at(d{name}, idx, d{name}_idx), which adds every occurrence",
    "transpose": "d{name} must have {name}'s shape {shape}: check which side of the product is transposed",
    "copy": "d{name} must have {name}'s shape {shape}: {uses} summed it over an axis, so its gradient is "
            "the upstream gradient copied along that axis{example}",
    "line": "d{name} comes back through {uses}: the upstream gradient of that line times the line's "
            "derivative with respect to {name}",
    "eps": "batch norm's eps is part of the variance's derivative: rstd{l} = (var{l} + eps) ** -0.5, so "
           "drstd{l}/dvar{l} = -0.5 * (var{l} + eps) ** -1.5, not -0.5 * var{l} ** -1.5",
    "alias": "d{other} and d{name} are the same array: d{other} = d{name} makes one array with two names, so "
             "the d{other} += ... that follows changed d{name} too; copy it (d{other} = d{name}.copy()) before +=",
}

# The copy hint's example, for the two lines of the forward that sum over an axis.
COPY_EXAMPLES = {"lin_terms": ', e.g. dlin[:, None] * np.ones_like(v["val"])',
                 "E2": ', e.g. dq[:, None, :] * np.ones_like(v["E2"])'}

ATOL = 1e-12        # absolute differences below this are rounding (the gradients here are of order 0.01 to 10)
PARAMS = ("w0", "w", "V", "gamma0", "beta0", "W1", "b1", "gamma1", "beta1", "h")


def dense(grad, like):
    """A ``layers.RowGrad`` as the full table (the shape of ``like``); other arrays as they are."""
    return grad.to_dense(like.shape[0]) if isinstance(grad, layers.RowGrad) else np.asarray(grad, np.float64)


def cmp(name, mine, reference):
    """Print whether ``mine`` equals ``reference`` exactly, is close (relative error below 1e-9, or
    every difference below 1e-12), and the largest absolute difference; returns True when close."""
    reference = dense(reference, np.asarray(mine))
    mine = np.asarray(mine, dtype=np.float64)
    if mine.shape != reference.shape:
        print(f"{name:<10} | shape {mine.shape}, expected {reference.shape}")
        return False
    exact = bool(np.array_equal(mine, reference))
    close = _agree(mine, reference)
    print(f"{name:<10} | exact: {exact!s:<5} | close: {close!s:<5} | max difference: "
          f"{float(np.max(np.abs(mine - reference), initial=0.0)):.1e}")
    return close


def _agree(mine, want):
    """Relative error below TOL, or every difference below ATOL: a gradient that is 0 in exact arithmetic
    (db1, under batch norm) is rounding noise of 1e-17 on both sides, with no relative error to speak of."""
    return rel_error(mine, want) < TOL or float(np.max(np.abs(mine - want), initial=0.0)) < ATOL


def _network_cases():
    """(description, batch, params, keep, seed): one_step's tiny problem, then batches with ids
    repeated within and across rows, padding, real values and random parameters (float64)."""
    batch, params = one_step.tiny_problem()
    cases = [("one_step.tiny_problem(): B=4, F=3, n=7, k=4, d=5", batch, params, (0.8, 0.5), 1)]
    rng = np.random.default_rng(19)
    n, k, d = 40, 3, 4
    for desc, idx, val in _cases(19, n=n, rows=(6, 9), entries=(4,)):
        p = dict(w0=np.array(rng.normal()), w=rng.normal(0, 0.5, n), V=rng.normal(0, 0.5, (n, k)),
                 gamma0=rng.uniform(0.5, 1.5, k), beta0=rng.normal(0, 0.3, k), W1=rng.normal(0, 0.7, (k, d)),
                 b1=rng.normal(0, 0.3, d), gamma1=rng.uniform(0.5, 1.5, d), beta1=rng.normal(0, 0.3, d),
                 h=rng.normal(0, 0.7, d))
        cases.append((f"{desc}, n={n}, k={k}, d={d}, keep (0.7, 0.6)",
                       dict(idx=idx, val=val, y=rng.choice([-1.0, 1.0], idx.shape[0])), p, (0.7, 0.6),
                       int(rng.integers(1000))))
    return cases


def _near(got, alt):
    """``got`` equals ``alt`` (broadcast to its shape if need be) to 1e-6, or to ATOL."""
    try:
        got = np.broadcast_to(np.asarray(got, dtype=np.float64), np.shape(alt))
    except ValueError:
        return False
    return rel_error(got, alt) < 1e-6 or float(np.max(np.abs(got - alt), initial=0.0)) < ATOL


def _alias(name, got, g, params, v):
    """The later gradient that shares memory with the learner's d``name`` and is right, or None: the mark of
    ``dlater = dname`` followed by ``dlater += ...``, which changed d``name`` in place."""
    mine = got[name]
    if not isinstance(mine, np.ndarray):
        return None
    for other in BACKWARD_ORDER[BACKWARD_ORDER.index(name) + 1:]:
        theirs = got.get(other)
        if (isinstance(theirs, np.ndarray) and theirs.shape == mine.shape and np.shares_memory(theirs, mine)
                and _agree(np.asarray(theirs, np.float64),
                           dense(g[other], params[other] if other in PARAMS else v[other]))):
            return other
    return None


def _hint(name, got, want, v, g):
    """The hint for the first wrong gradient ``name`` (got is the learner's, want the reference)."""
    got = np.asarray(got, dtype=np.float64)
    l = name[-1]
    fill = dict(name=name, shape=want.shape, uses=USED_BY.get(name, name), l=l)
    B = v["idx"].shape[0]
    if got.ndim == want.ndim + 1 and got.shape[0] == B and _near(got.sum(0), want):
        return HINTS["sum"].format(**fill)
    if want.ndim == 2 and got.shape == want.shape[::-1] and got.shape != want.shape:
        return HINTS["transpose"].format(**fill)
    if name in ("xc0", "xc1"):
        direct, via_var = g[f"xhat{l}"] * v[f"rstd{l}"], g[f"var{l}"] * 2 * v[name] / B
        if _near(got, direct):
            return HINTS["bn_var"].format(**fill)
        if _near(got, via_var):
            return HINTS["plus"].format(**fill)
    if name in ("f_bi", "a1"):
        l = "0" if name == "f_bi" else "1"
        fill["l"] = l
        if _near(got, g[f"xc{l}"]):
            return HINTS["bn_mean"].format(**fill)
        if _near(got, np.broadcast_to(g[f"mu{l}"] / B, want.shape)):
            return HINTS["plus"].format(**fill)
    if name == "E" and (_near(got, np.broadcast_to(g["s"][:, None, :], want.shape))
                        or _near(got, 2 * v["E"] * g["E2"])):
        return HINTS["plus"].format(**fill)
    if name in ("r1", "bn0"):
        l = "1" if name == "r1" else "0"
        fill["l"] = l
        upstream = g[f"z{l}"]
        if _near(got, upstream) or _near(got, upstream / v[f"keep{l}"]):
            return HINTS["mask"].format(**fill)
        if _near(got, upstream * v[f"mask{l}"]):
            return HINTS["scale"].format(**fill)
    if name in ("var0", "var1") and _near(got, g[f"rstd{l}"] * -0.5 * v[name] ** -1.5):
        return HINTS["eps"].format(**fill)
    if name == "bn1" and _near(got, g["r1"]):
        return HINTS["relu"]
    if name in ("V", "w"):
        buffered = np.zeros_like(want)
        buffered[v["idx"]] += g[f"{name}_idx"]
        if _near(got, buffered):
            return HINTS["scatter"].format(**fill)
    if got.ndim == want.ndim - 1 or (got.size < want.size and _near(got, want)):
        return HINTS["copy"].format(example=COPY_EXAMPLES.get(name, ""), **fill)
    return HINTS["line"].format(**fill)


def _mismatch(label, mine, want):
    """What is wrong with ``mine`` against ``want`` (shape, or the largest error and where), or ""."""
    try:
        mine = np.asarray(mine, dtype=np.float64)
    except (TypeError, ValueError):
        mine = np.full((), np.nan)
    if mine.shape != want.shape:
        return f"{label} has shape {mine.shape}, expected {want.shape}", mine
    if _agree(mine, want):
        return "", mine
    at = np.unravel_index(np.argmax(np.abs(mine - want)), want.shape) if want.ndim else ()
    return (f"{label}: relative error {rel_error(mine, want):.1e} (should be below {TOL:g}); "
            f"at {tuple(map(int, at))} expected {want[at]:.6g}, got {mine[at]:.6g}"), mine


def _learners_locals(error, fn):
    """The local variables of ``fn``'s frame where ``error`` was raised (what it had computed), or {}."""
    code, tb, found = getattr(fn, "__code__", None), error.__traceback__, {}
    while tb is not None:
        if tb.tb_frame.f_code is code:
            found = dict(tb.tb_frame.f_locals)
        tb = tb.tb_next
    return found


def _grad_problem(name, got, v, g, params):
    """(problem, hint) when the learner's d``name`` is wrong, else None."""
    want = dense(g[name], params[name] if name in PARAMS else v[name])
    problem, mine = _mismatch(f"d{name}", got[name], want)
    if not problem:
        return None
    other = _alias(name, got, g, params, v)
    return problem, (HINTS["alias"].format(name=name, other=other) if other else _hint(name, mine, want, v, g))


def _backward_grads(got, v, g, params):
    """(name, problem, hint) of the first wrong gradient in ``got`` walking ``BACKWARD_ORDER``, skipping the
    names ``got`` lacks; None when every one it has is right."""
    for name in BACKWARD_ORDER:
        wrong = _grad_problem(name, got, v, g, params) if name in got else None
        if wrong:
            return (name,) + wrong
    return None


def check_nfm_backward(nfm_backward):
    """``nfm_backward(v, p) -> {name: gradient}``: the whole backward pass of NFM-1 by hand.

    Walks ``BACKWARD_ORDER`` and reports the first gradient that is missing or wrong, with a hint. When the
    function raises, the message names its line and the first gradient it had already got wrong, if any."""
    name_ = "nfm_backward"
    cases = _network_cases()
    for i, (desc, batch, params, keep, seed) in enumerate(cases, start=1):
        _, v, g = one_step.forward_backward(batch, params, keep, seed)
        try:
            got = nfm_backward(copy.deepcopy(v), copy.deepcopy(params))
        except NotImplementedError as e:
            return _not_implemented(name_, e)
        except Exception as e:   # a learner's bug: report it, do not stop the notebook
            done = {key[1:]: x for key, x in _learners_locals(e, nfm_backward).items() if key.startswith("d")}
            earlier = _backward_grads(done, v, g, params)
            more = (f"\n  before that line, d{earlier[0]} was already wrong: {earlier[1]}\n  hint: {earlier[2]}"
                    if earlier else f"\n  hint: {_crash_hint(e, nfm_backward, v, params)}")
            return _raised(name_, i, desc, e, _where(e, nfm_backward) + more)
        if not isinstance(got, dict):
            return _say(Result(name_, "fail", f"{name_}: return a dict {{name: gradient}}, "
                                              f"got {type(got).__name__}"))
        for j, name in enumerate(BACKWARD_ORDER):
            right = f"the {j} before it are right" if j else "it is the first"
            if name not in got:
                return _say(Result(name_, "fail", f"{name_}: no gradient for '{name}' yet ({right}); next, "
                                                  f"its gradient comes back through {USED_BY[name]}"))
            wrong = _grad_problem(name, got, v, g, params)
            if wrong is None:
                continue
            return _say(Result(name_, "fail", f"{name_}: FAIL on case {i} ({desc}): the first wrong gradient, "
                                              f"walking back from the loss, is d{name} ({right}): {wrong[0]}"
                                              f"\n  hint: {wrong[1]}"))
    return _say(Result(name_, "pass", f"{name_}: PASS ({len(cases)} cases, all {len(BACKWARD_ORDER)} gradients: "
                                      "repeated ids, padding, real values, dropout, random parameters)"))


def _crash_hint(error, fn, v, params):
    """The hint for a backward line that raised: the shape its gradient must have, when the line says which."""
    where = _where(error, fn)
    target = re.match(r"d(\w+)\s*\+?=", where.split(": ", 1)[1]) if ": " in where else None
    name = target.group(1) if target else None
    if name not in USED_BY:
        return BACKWARD_CRASH_HINT
    shape = np.shape(params[name] if name in PARAMS else v[name])
    return (f"d{name} must have {name}'s shape {shape}; it comes back through {USED_BY[name]}: in a product, "
            "the other factor enters transposed, and a (B,) gradient needs [:, None] to multiply a (B, D) array")


BACKWARD_CRASH_HINT = ("check the shapes on that line: each d<name> has the shape of <name> (the upstream gradient "
                       "of out = z1 @ h is (B,): dz1 = dout[:, None] * h is (B, d), dh = z1.T @ dout is (d,)); "
                       "a product's gradient takes the other factor transposed")


# ---------------------------------------------------------------------------------------------------------
# The forward pass
# ---------------------------------------------------------------------------------------------------------

# Every intermediate, in the order notebook 4's forward pass computes them (the parameters are inputs).
FORWARD_ORDER = ("w_idx", "lin_terms", "lin", "V_idx", "E", "s", "s2", "E2", "q", "f_bi",
                 "mu0", "xc0", "var0", "rstd0", "xhat0", "scaled0", "bn0", "z0",
                 "a1", "mu1", "xc1", "var1", "rstd1", "xhat1", "scaled1", "bn1", "r1", "z1",
                 "out", "yhat", "err", "loss")

# What each line computes: the formula of notebook 4, with the shape (B rows, F entries, k factors, d units).
DEFINED_AS = {"w_idx": "w_i of each entry: the row of w at its feature id, (B, F)",
              "lin_terms": "x_f w_i of each entry, (B, F)",
              "lin": "w0 + the sum over the entries of x_f w_i, (B,)",
              "V_idx": "v_i of each entry: the row of V at its feature id, (B, F, k)",
              "E": "e_f = x_f v_i of each entry, (B, F, k)",
              "s": "s = the sum over the entries of e_f, (B, k)",
              "s2": "s * s, (B, k)",
              "E2": "e_f * e_f of each entry, (B, F, k)",
              "q": "q = the sum over the entries of e_f * e_f, (B, k)",
              "f_bi": "f_bi = 1/2 (s * s - q), (B, k)",
              "z0": "inverted dropout of bn0: bn0 * mask0 / keep0, (B, k)",
              "a1": "z0 W1 + b1, (B, d)",
              "r1": "relu(bn1), (B, d)",
              "z1": "inverted dropout of r1: r1 * mask1 / keep1, (B, d)",
              "out": "z1 h, the prediction layer, (B,)",
              "yhat": "lin + out, (B,)",
              "err": "yhat - y, (B,)",
              "loss": "1/2 the sum over the batch of err squared, a scalar"}
for _l, _x, _D in ((0, "f_bi", "k"), (1, "a1", "d")):
    DEFINED_AS.update({f"mu{_l}": f"the batch mean of each column of {_x}, ({_D},)",
                       f"xc{_l}": f"{_x} minus mu{_l}: centred, (B, {_D})",
                       f"var{_l}": f"the biased variance of each column: the mean over the rows of xc{_l} ** 2, "
                                   f"({_D},)",
                       f"rstd{_l}": f"1 / sqrt(var{_l} + eps), ({_D},)",
                       f"xhat{_l}": f"xc{_l} * rstd{_l}: normalised, (B, {_D})",
                       f"scaled{_l}": f"gamma{_l} * xhat{_l}, (B, {_D})",
                       f"bn{_l}": f"scaled{_l} + beta{_l}, (B, {_D})"})

FORWARD_HINTS = {
    "value": "{name} needs the value x_f of each entry: {how}; padding entries have x_f = 0 and must "
             "contribute nothing",
    "half": "{name} is twice what it should be: {why}",
    "sign": "{name} has the wrong sign: it is {definition}",
    "axis": "{name} sums or averages over the wrong axis: {why}",
    "ddof": "batch norm uses the biased variance: divide by B (np.var's default, ddof=0), not by B - 1",
    "centre": "the variance is the mean of the *centred* values squared: (xc{l} ** 2).mean(0), not ({x} ** 2).mean(0)",
    "eps": "eps goes inside the square root: rstd{l} = (var{l} + eps) ** -0.5 (it keeps a column of equal values "
           "from dividing by zero)",
    "reciprocal": "rstd{l} is one over the standard deviation, (var{l} + eps) ** -0.5, so that xhat{l} = "
                  "xc{l} * rstd{l} divides by it",
    "mask": "dropout multiplies by its 0/1 mask: {name} = {formula}",
    "scale": "inverted dropout divides the kept units by the keep probability, so that the expected value is "
             "unchanged and evaluation needs no rescaling: {name} = {formula}",
    "keep": "each dropout has its own keep probability: keep0 goes with mask0 (the Bi-Interaction's), keep1 with "
            "mask1 (the hidden layer's)",
    "bias": "{name} is missing its bias: {name} = {formula}",
    "relu": "the ReLU comes after batch norm 1: r1 = np.maximum(bn1, 0), not of a1",
    "mean": "the loss is summed over the batch, as in the paper and the package, not averaged",
    "broadcast": "check the shapes of the arrays on that line: NumPy lines up axes from the right, so a (B, F) "
                 "array times a (B, F, k) one needs a new last axis (val[:, :, None]); and an earlier sum or mean "
                 "over the wrong axis gives a wrong shape (a row's entries are axis 1, the batch's rows axis 0)",
    "matmul": "check the shapes of that product: each value has the shape listed in the text, and A @ B needs A's "
              "last axis to match B's first: z0 @ W1 (B, k) @ (k, d), z1 @ h (B, d) @ (d,), not W1 @ z0 or h @ z1",
    "line": "{name} should be {what}: compare your line with that formula",
}


def _forward_hint(name, mine, v, p):
    """The hint for the first wrong intermediate ``name`` (``mine`` the learner's, ``v`` the reference's)."""
    want = np.asarray(v[name], dtype=np.float64)
    definition = DEFINED_AS[name]
    what = definition[len(name) + 3:] if definition.startswith(f"{name} = ") else definition   # no "q should be q ="
    fill = dict(name=name, definition=definition, what=what, l=name[-1], x="f_bi" if name.endswith("0") else "a1")
    B = v["idx"].shape[0]
    if mine.shape != want.shape:
        if name == "out" and mine.shape == v["z1"].shape:
            return FORWARD_HINTS["line"].format(**{**fill, "what": "z1 @ h, a sum over the d units of each row, (B,) "
                                                             "(z1 * h keeps each unit's term apart, (B, d))"})
        if name in ("s", "q", "lin", "E2") or name[:-1] in ("mu", "var"):
            why = ("the sums over the entries of a row run along axis 1" if name in ("s", "q", "lin")
                   else "batch statistics average over the rows, axis 0, one value a column")
            return FORWARD_HINTS["axis"].format(why=why, **fill)
        return FORWARD_HINTS["line"].format(**fill)
    if _near(mine, -want) and np.abs(want).max() > 0:
        return FORWARD_HINTS["sign"].format(**fill)
    if name in ("E", "lin_terms"):
        gathered = v["V_idx"] if name == "E" else v["w_idx"]
        how = ("multiply each gathered row by its value, val[:, :, None] * V_idx (val is (B, F), V_idx (B, F, k))"
               if name == "E" else "val * w_idx")
        if _near(mine, gathered):
            return FORWARD_HINTS["value"].format(how=how, **fill)
    if name == "f_bi" and _near(mine, 2 * want):
        return FORWARD_HINTS["half"].format(why="each pair i < j appears twice in s * s (as ij and as ji), "
                                                "so f_bi = 1/2 (s * s - q)", **fill)
    if name == "loss" and _near(mine, 2 * want):
        return FORWARD_HINTS["half"].format(why="the squared loss is 1/2 the sum of err ** 2 (so that its "
                                                "gradient is err itself)", **fill)
    if name == "loss" and _near(mine, want / B):
        return FORWARD_HINTS["mean"]
    if name[:-1] in ("mu", "var") and mine.shape == want.shape:
        x = v["f_bi"] if name.endswith("0") else v["a1"]
        wrong_axis = x.mean(1) if name.startswith("mu") else x.var(1)
        if wrong_axis.shape == want.shape and _near(mine, wrong_axis):
            return FORWARD_HINTS["axis"].format(why="batch statistics average over the rows, axis 0, one value "
                                                    "a column", **fill)
    if name in ("var0", "var1"):
        l = name[-1]
        if _near(mine, want * B / (B - 1)):
            return FORWARD_HINTS["ddof"]
        x = v["f_bi"] if l == "0" else v["a1"]
        if _near(mine, (x ** 2).mean(0)):
            return FORWARD_HINTS["centre"].format(**fill)
    if name in ("rstd0", "rstd1"):
        var = v[f"var{name[-1]}"]
        eps = v["eps"]
        if any(_near(mine, alt) for alt in (var ** -0.5, 1 / (np.sqrt(var) + eps), var ** -0.5 + eps)):
            return FORWARD_HINTS["eps"].format(**fill)
        if _near(mine, np.sqrt(var + eps)):
            return FORWARD_HINTS["reciprocal"].format(**fill)
    if name in ("z0", "z1"):
        l = name[-1]
        before, mask, keep = v["bn0" if l == "0" else "r1"], v[f"mask{l}"], v[f"keep{l}"]
        other = v["keep1" if l == "0" else "keep0"]
        fill["formula"] = f"{'bn0' if l == '0' else 'r1'} * mask{l} / keep{l}"
        if _near(mine, before / keep) or _near(mine, before):
            return FORWARD_HINTS["mask"].format(**fill)
        if _near(mine, before * mask) or _near(mine, before * mask * keep):
            return FORWARD_HINTS["scale"].format(**fill)
        if other != keep and _near(mine, before * mask / other):
            return FORWARD_HINTS["keep"]
    if name == "a1" and _near(mine, v["z0"] @ p["W1"]):
        return FORWARD_HINTS["bias"].format(formula='z0 @ p["W1"] + p["b1"]', **fill)
    if name == "lin" and _near(mine, v["lin_terms"].sum(1)):
        return FORWARD_HINTS["bias"].format(formula='p["w0"] + lin_terms.sum(1)', **fill)
    if name == "r1" and _near(mine, np.maximum(v["a1"], 0)):
        return FORWARD_HINTS["relu"]
    return FORWARD_HINTS["line"].format(**fill)


def _where(error, fn):
    """`` at line N: <the line>`` of ``fn`` where ``error`` was raised, or "" when it cannot be told."""
    code = getattr(fn, "__code__", None)
    frames = [f for f in traceback.extract_tb(error.__traceback__) if code and f.name == code.co_name
              and f.filename == code.co_filename]
    if not frames:
        return ""
    line = (frames[-1].line or "").strip()
    return f"\n  at line {frames[-1].lineno - code.co_firstlineno + 1} of {fn.__name__}" + (f": {line}" if line else "")


def _forward_values(got, v, params):
    """(name, problem, hint) of the first wrong value in ``got`` walking ``FORWARD_ORDER``, skipping the
    names ``got`` lacks; None when every one it has is right."""
    for name in FORWARD_ORDER:
        if name in got:
            want = np.asarray(v[name], dtype=np.float64)
            problem, mine = _mismatch(name, got[name], want)
            if problem:
                return name, problem, _forward_hint(name, mine, v, params)
    return None


def check_nfm_forward(nfm_forward):
    """``nfm_forward(idx, val, y, p, mask0, keep0, mask1, keep1, eps) -> {name: value}``: NFM-1's forward
    pass by hand, one operation a line (``return locals()``).

    The masks and keep probabilities are the reference's, so both draw the same dropout. Walks
    ``FORWARD_ORDER`` and reports the first intermediate that is missing or wrong, with a hint."""
    name_ = "nfm_forward"
    cases = _network_cases()
    for i, (desc, batch, params, keep, seed) in enumerate(cases, start=1):
        _, v, _ = one_step.forward_backward(batch, params, keep, seed)
        p = copy.deepcopy(params)
        args = (batch["idx"].copy(), batch["val"].copy(), batch["y"].copy(), p,
                v["mask0"].copy(), v["keep0"], v["mask1"].copy(), v["keep1"], v["eps"])
        try:
            got = nfm_forward(*args)
        except NotImplementedError as e:
            return _not_implemented(name_, e)
        except Exception as e:   # a learner's bug: report it, do not stop the notebook
            earlier = _forward_values(_learners_locals(e, nfm_forward), v, params)
            more = (f"\n  before that line, {earlier[0]} was already wrong: {earlier[1]}\n  hint: {earlier[2]}"
                    if earlier else f"\n  hint: {FORWARD_HINTS['broadcast']}" if "broadcast" in str(e)
                    else f"\n  hint: {FORWARD_HINTS['matmul']}" if "matmul" in str(e) else "")
            return _raised(name_, i, desc, e, _where(e, nfm_forward) + more)
        if not isinstance(got, dict):
            return _say(Result(name_, "fail", f"{name_}: return every intermediate by name, as a dict (the last "
                                              f"line, return locals(), does it); got {type(got).__name__}"))
        changed = [key for key in PARAMS if not np.array_equal(p[key], params[key])]
        if changed:
            return _say(Result(name_, "fail", f"{name_}: FAIL on case {i} ({desc}): your forward changed "
                                              f"p[{changed[0]!r}] in place; the forward only reads the parameters"))
        for j, name in enumerate(FORWARD_ORDER):
            right = f"the {j} before it are right" if j else "it is the first"
            if name not in got:
                return _say(Result(name_, "fail", f"{name_}: no value for '{name}' yet ({right}); next, "
                                                  f"{name} is {DEFINED_AS[name]}"))
            want = np.asarray(v[name], dtype=np.float64)
            problem, mine = _mismatch(name, got[name], want)
            if not problem:
                continue
            return _say(Result(name_, "fail", f"{name_}: FAIL on case {i} ({desc}): the first wrong value, "
                                              f"walking forward, is {name} ({right}): {problem}"
                                              f"\n  hint: {_forward_hint(name, mine, v, params)}"))
    return _say(Result(name_, "pass", f"{name_}: PASS ({len(cases)} cases, all {len(FORWARD_ORDER)} values: "
                                      "repeated ids, padding, real values, dropout, random parameters)"))
