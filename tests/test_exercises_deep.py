"""Notebook 3's exercises and checkers (``nfm_numpy.exercises.deep``).

* A right answer written here from the formulas passes, and so do the notebook's folded solutions.
* Every hint is planted: each typical mistake, written here as a whole wrong answer, fails with
  exactly its own hint, and of the hints' tests only its own is true on it (so the order of the
  list does not decide); the last-resort hint of each output catches a mistake no hint names.
* The notebook's paths run as worded: the code cells in order with each folded snippet at its
  place, and the two-step edit of a copy of ``NFM.forward`` / ``NFM.backward`` (moving the dropout
  lines), which fails the gradient check after step 1, with the numbers the notebook's table quotes,
  and passes after step 2.
"""
import contextlib
import inspect
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

import nfm_numpy as nf
from nfm_numpy import layers
from nfm_numpy.exercises import deep

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "03_deep_layers.ipynb"


# ------------------------------------------------------------------ right answers, from the formulas
def affine_backward(da, z, W):
    return da @ W.T, z.T @ da, da.sum(axis=0)


def bn_answer(dy, x, gamma, eps, ddof=0, use_eps=True, mean_term=True, variance_term=True, dx_uses_gamma=True,
              means=""):
    """The training-mode batch-norm gradients, or a wrong version of dx on request (``means``: "mean",
    "variance" or both, the terms whose sum over the batch is written as a mean)."""
    B = x.shape[0]
    mean_term = mean_term / B if "mean" in means else mean_term
    variance_term = variance_term / B if "variance" in means else variance_term
    mu = x.sum(axis=0) / B
    var = ((x - mu) ** 2).sum(axis=0) / (B - ddof)
    rho = 1.0 / np.sqrt(var + (eps if use_eps else 0.0))
    xhat = (x - mu) * rho
    g = dy * gamma if dx_uses_gamma else dy
    dx = rho / B * (B * g - mean_term * g.sum(axis=0) - variance_term * xhat * (g * xhat).sum(axis=0))
    return dx, (dy * (x - mu) * (1.0 / np.sqrt(var + eps))).sum(axis=0), dy.sum(axis=0)


def batchnorm_backward(dy, x, gamma, eps):
    return bn_answer(dy, x, gamma, eps)


def _xhat(x, eps):
    return (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps)


def _replace(k, wrong):
    """A batch-norm answer whose output k is ``wrong(dy, x, gamma, eps)``, the others right."""
    def answer(dy, x, gamma, eps):
        out = list(bn_answer(dy, x, gamma, eps))
        out[k] = wrong(dy, x, gamma, eps)
        return tuple(out)
    return answer


def _with_dx(**mistake):
    return _replace(0, lambda dy, x, gamma, eps: bn_answer(dy, x, gamma, eps, **mistake)[0])


def _swapped(dy, x, gamma, eps):
    dx, dgamma, dbeta = bn_answer(dy, x, gamma, eps)
    return dx, dbeta, dgamma


# (mistake, a phrase of the one hint that must fire)
BN_PLANTED = [
    (_with_dx(mean_term=False, variance_term=False), "evaluation-mode gradient"),
    (_with_dx(mean_term=False), "dx lacks the mean term"),
    (_with_dx(variance_term=False), "dx lacks the variance term"),
    (_with_dx(variance_term=2), "variance term is 2 times"),             # the -1/2 of d rho / d var forgotten
    (_with_dx(variance_term=0.5), "variance term is 2 times"),           # the 2 of d var / d x_r forgotten
    (_with_dx(mean_term=2), "mean term is 2 times"),
    (_with_dx(mean_term=0.5), "mean term is 2 times"),
    (_with_dx(means="mean variance"), "a mean over the batch where"),   # g.mean(0) for g.sum(0), both terms
    (_with_dx(means="mean"), "a mean over the batch where"),
    (_with_dx(means="variance"), "a mean over the batch where"),
    (_with_dx(dx_uses_gamma=False), "dx is missing gamma"),
    (_with_dx(ddof=1), "unbiased variance"),
    (_with_dx(use_eps=False), "gradient with eps = 0"),
    (_swapped, "dgamma and dbeta are swapped"),
    (_replace(1, lambda dy, x, gamma, eps: dy.sum(axis=0)), "is dbeta's formula"),
    (_replace(1, lambda dy, x, gamma, eps: (dy * _xhat(x, eps)).mean(axis=0)), "dgamma is the mean"),
    (_replace(1, lambda dy, x, gamma, eps: (dy * (x - x.mean(axis=0))).sum(axis=0)), "dgamma uses x - mu"),
    (_replace(1, lambda dy, x, gamma, eps: gamma * (dy * _xhat(x, eps)).sum(axis=0)), "dgamma is multiplied by gamma"),
    (_replace(2, lambda dy, x, gamma, eps: dy.mean(axis=0)), "dbeta is the mean"),
    (_replace(2, lambda dy, x, gamma, eps: gamma * dy.sum(axis=0)), "dbeta is multiplied by gamma"),
    # mistakes no hint names: the last-resort hint of the output that failed
    (_with_dx(mean_term=-1), "dx: compare each term"),
    (_replace(1, lambda dy, x, gamma, eps: (dy * _xhat(x, eps)).sum(axis=0) + 0.01),
     "dgamma = sum_r dy_r xhat_r, with xhat"),
    (_replace(2, lambda dy, x, gamma, eps: 2 * dy.sum(axis=0)), "dbeta = sum_r dy_r: beta"),
]

AFFINE_PLANTED = [
    (lambda da, z, W: (z.T @ da, da @ W.T, da.sum(axis=0)), "in another order"),
    (lambda da, z, W: (W @ da.T, z.T @ da, da.sum(axis=0)), "dz is transposed"),
    (lambda da, z, W: (da @ W.T, da.T @ z, da.sum(axis=0)), "dW must have W's shape"),
    (lambda da, z, W: (da @ W.T, z.T @ da / len(da), da.sum(axis=0)), "dW is divided by B"),
    (lambda da, z, W: (da @ W.T, z.T @ da, da.mean(axis=0)), "sum over the batch, not the mean"),
    (lambda da, z, W: (da @ W.T, z.T @ da, da.sum(axis=1)), "sums over the wrong axis"),
    (lambda da, z, W: (da @ W.T, z.T @ da, da.sum()), "db is one number per output column"),
    (lambda da, z, W: (-da @ W.T, z.T @ da, da.sum(axis=0)), "dz = da W^T, shape"),
    (lambda da, z, W: (da @ W.T, 2 * z.T @ da, da.sum(axis=0)), "dW = z^T da, shape"),
    (lambda da, z, W: (da @ W.T, z.T @ da, da.sum(axis=0) + 1), "db = sum_r da_r, shape"),
]

CHECKS = {"batchnorm": (deep.check_batchnorm_backward, deep.BATCHNORM_HINTS, BN_PLANTED, batchnorm_backward,
                        lambda dy, x, gamma, eps: layers.batchnorm_backward(dy, layers.batchnorm_forward(
                            x, gamma, np.zeros(x.shape[1]), np.zeros(x.shape[1]), np.ones(x.shape[1]), True,
                            eps=eps)[1])),
          "affine": (deep.check_affine_backward, deep.AFFINE_HINTS, AFFINE_PLANTED, affine_backward,
                     lambda da, z, W: layers.affine_backward(da, (z, W)))}
PLANTS = [(kind, i) for kind, (_, _, planted, _, _) in CHECKS.items() for i in range(len(planted))]


def _hint_with(hints, phrase):
    found = [text for _, text in hints if phrase in text]
    assert len(found) == 1, (phrase, found)
    return found[0]


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_a_right_answer_passes_and_fires_no_hint(kind, capsys):
    check, hints, _, right, reference = CHECKS[kind]
    seen = []
    result = check(lambda *a: seen.append(a) or right(*a))
    assert result and "PASS" in capsys.readouterr().out
    for args in seen:
        got, want = right(*args), reference(*args)
        assert not [text for test, text in hints if test(got, want, args)]


@pytest.mark.parametrize("kind,i", PLANTS, ids=[f"{k}: {CHECKS[k][2][i][1]}" for k, i in PLANTS])
def test_each_mistake_fires_its_own_hint_and_no_other(kind, i, capsys):
    check, hints, planted, _, reference = CHECKS[kind]
    mistake, phrase = planted[i]
    seen = []
    result = check(lambda *a: seen.append(a) or mistake(*a))
    out = capsys.readouterr().out
    assert result.status == "fail" and "FAIL on case 1" in out, out
    assert out.count("hint:") == 1 and f"hint: {_hint_with(hints, phrase)}\n" in out + "\n", out
    # the FAIL line names the output the hint is about (a hint on the order of the outputs names none)
    first = _hint_with(hints, phrase).split()[0].rstrip(":")
    if first in ("dx", "dgamma", "dbeta", "dz", "dW", "db"):
        assert re.search(r"FAIL on case 1 \([^)]*\): (\w+)", out).group(1) == first, out
    args = seen[0]
    got, want = mistake(*args), reference(*args)
    specific = hints[:-3]                      # the last three: one last-resort hint per output
    fired = [text for test, text in specific if test(got, want, args)]
    if any(phrase in text for _, text in specific):
        assert fired == [_hint_with(hints, phrase)]
    else:
        assert fired == []


@pytest.mark.parametrize("mistake", [lambda da, z, W: (da @ W, z.T @ da, da.sum(axis=0)),          # W's .T forgotten
                                     lambda da, z, W: (da @ W.T, z @ da, da.sum(axis=0)),          # z's .T forgotten
                                     lambda da, z, W: (np.dot(da, W), z.T @ da, da.sum(axis=0))],
                         ids=["da @ W", "z @ da", "np.dot(da, W)"])
def test_a_product_whose_shapes_do_not_fit_gets_the_shape_hint(mistake, capsys):
    result = deep.check_affine_backward(mistake)
    out = capsys.readouterr().out
    assert result.status == "fail" and "FAIL on case 1 (B=4, D=3, M=2): your function raised ValueError" in out, out
    assert out.count("hint:") == 1, out
    assert ("hint: the shapes of a product do not fit (a .T forgotten?): here da is (B, M) = (4, 2), "
            "z (B, D) = (4, 3) and W (D, M) = (3, 2), so dz = da @ W.T is (B, D)") in out, out


def test_an_error_not_about_shapes_gets_no_shape_hint(capsys):
    def unpacks_wrong(da, z, W):
        dz, dW = da @ W.T, z.T @ da, da.sum(axis=0)       # ValueError: too many values to unpack
        return dz, dW
    result = deep.check_affine_backward(unpacks_wrong)
    out = capsys.readouterr().out
    assert result.status == "fail" and "raised ValueError: too many values to unpack" in out and "hint:" not in out


def test_every_hint_is_planted():
    for kind, (_, hints, planted, _, _) in CHECKS.items():
        assert {_hint_with(hints, phrase) for _, phrase in planted} == {text for _, text in hints}, kind


def test_a_stub_is_not_implemented(capsys):
    def stub(*args, **kwargs):
        raise NotImplementedError("write it above")
    for check in (deep.check_affine_backward, deep.check_batchnorm_backward, deep.check_dropout_first):
        assert check(stub).status == "not implemented"
        assert "not implemented yet (write it above)" in capsys.readouterr().out


# ------------------------------------------------------------------ the notebook, run as its text says
def _cells():
    return json.loads(NOTEBOOK.read_text())["cells"]


def _source(cell):
    return "".join(cell["source"])


def _snippets(markdown):
    """The ```python blocks of a markdown cell's folded answers and solutions."""
    return re.findall(r"```python\n(.*?)```", markdown, re.S) if "<details>" in markdown else []


def _run(code, ns):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<notebook>", "exec"), ns)
    return out.getvalue()


@pytest.fixture(scope="module")
def notebook_namespace():
    """Every code cell of the notebook run in order, and each runnable folded snippet where it stands
    (the dropout solution's fragments, with their ``...``, are read, not run). Returns the namespace
    and what each piece printed."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    cwd = os.getcwd()
    os.chdir(NOTEBOOK.parent)
    ns, printed = {"__name__": "__main__"}, []
    try:
        for cell in _cells():
            if cell["cell_type"] == "code":
                printed.append(("cell", _source(cell), _run(_source(cell), ns)))
            for block in _snippets(_source(cell)) if cell["cell_type"] == "markdown" else []:
                if block[:1].isspace() or "..." in block:       # fragments of the dropout solution
                    continue
                printed.append(("snippet", block, _run(block, ns)))
                if block.startswith("def "):
                    name = re.match(r"def (\w+)", block).group(1)
                    printed.append(("solution", name, _run(
                        f"_result = exercises.check_{name}({name})", ns)))
                    assert ns["_result"], printed[-1]
    finally:
        os.chdir(cwd)
        import matplotlib.pyplot as plt
        plt.close("all")
    return ns, printed


def test_the_notebook_runs_with_its_snippets(notebook_namespace):
    ns, printed = notebook_namespace
    outs = {kind + ":" + src[:40]: out for kind, src, out in printed}
    solutions = [name for kind, name, _ in printed if kind == "solution"]
    assert sorted(solutions) == ["affine_backward", "batchnorm_backward"]
    assert "full mode" in printed[0][2] or "smoke mode" in printed[0][2]
    stubs = [out for kind, src, out in printed if kind == "cell" and "raise NotImplementedError" in src]
    assert len(stubs) == 4 and all("not implemented yet" in out for out in stubs)
    # the "Try it": every column of batch norm's dx sums to 0
    assert "dx" in ns and np.abs(ns["dx"].sum(axis=0)).max() < 1e-12
    # the variance-shift check: about 1 and 2 = 1/p
    assert np.allclose(ns["inputs"].var(axis=0), 1, atol=0.03)
    assert np.allclose(ns["dropped"].var(axis=0), 2, atol=0.06)
    assert any("train=True: max relative error" in out for out in outs.values())


def _learner_edit(stub_cell, method, move, below):
    """What the text asks: paste ``NFM.<method>`` over the stub's two lines, replace ``L.`` by ``layers.``,
    then cut the lines that start with ``move`` (stripped) and paste them before (``below`` False) or after
    (``below`` True) the line that starts with the given anchor."""
    lines = stub_cell.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("def "))
    assert "raise NotImplementedError" in lines[start + 1]
    printed = inspect.getsource(getattr(nf.NFM, method)) + "\n"     # what print() showed
    cell = "".join(lines[:start]) + printed + "".join(lines[start + 2:])
    cell = cell.replace("L.", "layers.")
    lines = cell.splitlines(keepends=True)
    cut = [i for i, line in enumerate(lines) if any(line.lstrip().startswith(m) for m in move)]
    moved = [lines[i] for i in cut]
    rest = [line for i, line in enumerate(lines) if i not in cut]
    anchor_text, after = below
    at = next(i for i, line in enumerate(rest) if line.lstrip().startswith(anchor_text)) + after
    return "".join(rest[:at] + moved + rest[at:])


FORWARD_MOVE = (["# keep[-1] is the Bi-Interaction's", 'z, caches[f"drop{l}"] = layers.dropout_forward('],
                ('if c["batch_norm"]:', 0))
BACKWARD_MOVE = (['dz = layers.dropout_backward(dz, caches[f"drop{l}"])'],
                 ('dz, g[f"gamma{l}"], g[f"beta{l}"] = layers.batchnorm_backward(', 1))


def _stub(name):
    return next(_source(c) for c in _cells() if c["cell_type"] == "code" and f"class {name}(" in _source(c))


def _table_in_text():
    """The relative errors the notebook's 'What you should see' table quotes, by parameter."""
    text = next(_source(c) for c in _cells() if "What you should see" in _source(c))
    head, _, values = [line for line in text.splitlines() if line.startswith("|")][:3]
    names = [re.sub(r"[$\\{}]", "", n).strip() for n in head.strip("|").split("|")[1:]]
    return dict(zip(names, [v.strip() for v in values.strip("|").split("|")[1:]]))


def _errors(report_text):
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\S+(?: \(val\))?)\s+\(.*?\)\s+all\s+([0-9.e+-]+)",
                                                                report_text, re.M)}


def test_step_1_the_swapped_forward_fails_the_check_as_the_text_says():
    ns = {}
    _run(_source(next(c for c in _cells() if c["cell_type"] == "code")), ns)     # the imports cell
    out = _run(_learner_edit(_stub("DropoutFirst"), "forward", *FORWARD_MOVE), ns)
    assert "DropoutFirst: FAIL: the forward runs dropout before batch norm, but the gradient check fails" in out
    assert "hint: the forward is right, the backward is still NFM.backward" in out
    errors = _errors(out)
    quoted = _table_in_text()
    for text_name, param in {"V": "V", "gamma_0": "gamma0", "beta_0": "beta0", "W_1": "W1", "b_1": "b1",
                             "gamma_1": "gamma1", "beta_1": "beta1", "x (val)": "x (val)"}.items():
        value = float(re.sub(r"[^0-9.]", "", quoted[text_name]))        # quoted to two significant digits
        assert "FAIL" in next(line for line in out.splitlines() if line.startswith(param + " "))
        assert errors[param] == pytest.approx(value, rel=0.05), (param, errors[param], quoted[text_name])
    assert errors["b1"] == pytest.approx(1.0, abs=1e-9)
    assert max(errors["w0"], errors["w"], errors["h"]) < 1e-10


def test_step_2_the_mirrored_backward_passes():
    ns = {}
    _run(_source(next(c for c in _cells() if c["cell_type"] == "code")), ns)
    _run(_learner_edit(_stub("DropoutFirst"), "forward", *FORWARD_MOVE), ns)
    out = _run(_learner_edit(_stub("DropoutFirstBoth"), "backward", *BACKWARD_MOVE), ns)
    assert "DropoutFirstBoth: PASS" in out and "(abs)" not in out, out
    assert max(_errors(out).values()) < 1e-10


def _classes(forward_move=FORWARD_MOVE, backward_move=None):
    ns = {}
    _run(_source(next(c for c in _cells() if c["cell_type"] == "code")), ns)
    _run(_learner_edit(_stub("DropoutFirst"), "forward", *forward_move).split("exercises.check")[0], ns)
    if backward_move:
        _run(_learner_edit(_stub("DropoutFirstBoth"), "backward", *backward_move).split("exercises.check")[0], ns)
    return ns


def test_step_2_not_done_yet_is_not_implemented_yet(capsys):
    """Cell 27 run after step 1, before step 2: its backward stub raises, reported like any stub."""
    ns = _classes()
    _run(_stub("DropoutFirstBoth").split("exercises.check")[0], ns)
    result = deep.check_dropout_first(ns["DropoutFirstBoth"])
    out = capsys.readouterr().out
    assert result.status == "not implemented" and "FAIL" not in out and "hint:" not in out, out
    assert "DropoutFirstBoth: the forward runs dropout before batch norm; the backward is not implemented yet " \
           "(step 2: paste NFM.backward" in out, out


def test_a_forward_pasted_but_not_changed_is_named(capsys):
    ns = _classes(forward_move=([], ('if c["batch_norm"]:', 0)))
    result = deep.check_dropout_first(ns["DropoutFirst"])
    out = capsys.readouterr().out
    assert result.status == "fail" and "gives NFM's numbers" in out and out.count("hint:") == 1
    assert "move the two dropout lines" in out


def test_dropout_moved_to_the_wrong_place_is_named(capsys):
    ns = _classes(forward_move=(FORWARD_MOVE[0], ("if l > 0:", 0)))       # before the affine layer
    result = deep.check_dropout_first(ns["DropoutFirst"])
    out = capsys.readouterr().out
    assert result.status == "fail" and "its forward is neither order" in out and out.count("hint:") == 1


@pytest.mark.parametrize("anchor,raised", [
    (('dz = layers.activation_backward(', 1), False),                         # between activation and BN
    (('dz, g[f"W{l}"], g[f"b{l}"] = layers.affine_backward(', 1), True)])     # after the affine: shapes clash
def test_a_backward_changed_the_wrong_way_is_named(anchor, raised, capsys):
    ns = _classes(backward_move=(BACKWARD_MOVE[0], anchor))
    result = deep.check_dropout_first(ns["DropoutFirstBoth"])
    out = capsys.readouterr().out
    assert result.status == "fail" and out.count("hint:") == 1
    assert ("the backward pass raised ValueError" if raised else "but the gradient check fails") in out
    assert "hint: your backward must undo each block in the reverse of the forward's order" in out


@pytest.mark.parametrize("step", ["forward", "backward"])
def test_the_pasted_L_left_as_it_is_is_named(step, capsys):
    """The text's step 2 (replace L. with layers.) forgotten, in step 1's paste or in step 2's."""
    ns = _classes(backward_move=BACKWARD_MOVE)
    name, stub, move = (("DropoutFirst", _stub("DropoutFirst"), FORWARD_MOVE) if step == "forward" else
                        ("DropoutFirstBoth", _stub("DropoutFirstBoth"), BACKWARD_MOVE))
    edited = _learner_edit(stub, step, *move).replace("layers.", "L.").split("exercises.check")[0]
    _run(edited, ns)
    result = deep.check_dropout_first(ns[name])
    out = capsys.readouterr().out
    assert result.status == "fail" and "NameError: name 'L' is not defined" in out and out.count("hint:") == 1
    assert "hint: the pasted code calls the layers module L" in out


def test_a_model_that_cannot_be_built_is_reported(capsys):
    class Broken(nf.NFM):
        def __init__(self, *args, **kwargs):
            raise TypeError("oops")
    result = deep.check_dropout_first(Broken)
    assert result.status == "fail" and "raised TypeError: oops" in capsys.readouterr().out


def test_the_reference_is_the_swapped_order_and_differs_from_nfm():
    """``dropout_first_output`` against a hand-unrolled forward of one model, and against NFM's order."""
    model = nf.NFM(40, **deep.DROPOUT_FIRST_MODEL)
    batch = nf.gradcheck.random_problem(seed=2)
    p = model.params
    rng = nf.backend.Random(deep.DROPOUT_FIRST_SEED)
    E = p["V"][batch.idx] * batch.val[:, :, None]
    f = 0.5 * (E.sum(1) ** 2 - (E ** 2).sum(1))
    m0 = rng.bernoulli(f.shape, 0.5) / 0.5
    z0 = _bn(f * m0, p["gamma0"], p["beta0"])
    a1 = z0 @ p["W1"] + p["b1"]
    m1 = rng.bernoulli(a1.shape, 0.8) / 0.8
    z1 = np.tanh(_bn(a1 * m1, p["gamma1"], p["beta1"]))
    lin = (p["w"][batch.idx] * batch.val).sum(1) + p["w0"]
    want = lin + z1 @ p["h"]
    assert np.allclose(deep.dropout_first_output(model, batch), want, rtol=1e-12, atol=1e-12)
    original = model.forward(batch.idx, batch.val, train=True, rng=nf.backend.Random(deep.DROPOUT_FIRST_SEED))[0]
    assert not np.allclose(original, want, rtol=1e-3)


def _bn(x, gamma, beta, eps=1e-3):
    return gamma * (x - x.mean(0)) / np.sqrt(x.var(0) + eps) + beta


def _edited(method, move):
    """NFM's method as the text has the learner edit it: ``L.`` replaced, the dropout lines moved."""
    stub = "class C:\n    def x():\n        raise NotImplementedError\n"
    return _learner_edit(stub, method, *move)


def test_the_text_quotes_nfm_as_it_is():
    """The lines the steps tell the learner to cut, the counts of L. they give, and every line of the folded
    solution's fragments are those of NFM.forward / NFM.backward (after the text's edits): a change to
    model.py that makes the text wrong fails here."""
    cells = [_source(c) for c in _cells() if c["cell_type"] == "markdown"]
    step1 = next(c for c in cells if "**Step 1: the forward pass.**" in c)
    step2 = next(c for c in cells if "**Step 2: the backward pass.**" in c)
    solution = next(c for c in cells if "DropoutFirst.forward` (step 1)" in c)
    forward, backward = _edited("forward", FORWARD_MOVE), _edited("backward", BACKWARD_MOVE)
    assert f"({inspect.getsource(nf.NFM.forward).count('L.')} places)" in step1
    assert f"({inspect.getsource(nf.NFM.backward).count('L.')} places)" in step2
    for text, source in ((step1, forward), (step2, backward)):
        quoted = [line.strip() for block in re.findall(r"```python\n(.*?)```", text, re.S)
                  for line in block.splitlines() if line.strip()]
        assert quoted and all(q in source for q in quoted), quoted
    fragments = re.findall(r"```python\n(.*?)```", solution, re.S)[:2]       # the third is the variance check
    for block, source in zip(fragments, (forward, backward)):
        lines = iter(line.rstrip() for line in source.splitlines())
        shown = [line.rstrip() for line in block.splitlines() if line.strip() and "..." not in line]
        assert all(any(line == want for line in lines) for want in shown), block   # in order, as in the source


@pytest.mark.parametrize("phrase,hints", [
    ("dW must have W's shape (D, M)", deep.AFFINE_HINTS), ("the sum over the batch, not the mean", deep.AFFINE_HINTS),
    ("sums over the wrong axis", deep.AFFINE_HINTS), ("dx is the evaluation-mode gradient", deep.BATCHNORM_HINTS),
    ("dx uses the unbiased variance", deep.BATCHNORM_HINTS), ("dx is the gradient with eps = 0", deep.BATCHNORM_HINTS)])
def test_the_hints_the_solutions_quote_are_the_checkers(phrase, hints):
    text = " ".join(" ".join(_source(c).split()) for c in _cells() if c["cell_type"] == "markdown")
    assert phrase in text
    _hint_with(hints, phrase)
