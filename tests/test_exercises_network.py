"""Notebook 4, "the whole network by hand".

* ``one_step.forward_backward``, the reference, against central differences of the notebook's own
  atomic forward pass (its folded solution), for every intermediate and every parameter (an
  independent path: no backward formula is involved);
* the forward's folded solution gives the reference's values (exact up to var0, then close, as the notebook
  says) and passes ``check_nfm_forward``; the backward's passes ``check_nfm_backward``; each stub as stored
  is "not implemented", and the path its text describes (delete the ``raise``, add lines below the given
  ones) reports the next missing value or gradient, then passes;
* every hint of both checkers is planted (one mistaken line in the solution) and fires alone; the alias
  hint (``da1 = dxc1`` without ``.copy()``) word for word, for both pairs the notebook's route creates.
"""
import ast
import re
from pathlib import Path

import numpy as np
import pytest

from nfm_numpy import one_step
from nfm_numpy.exercises import EXERCISES
from nfm_numpy.exercises.network import (
    BACKWARD_ORDER,
    DEFINED_AS,
    FORWARD_HINTS,
    FORWARD_ORDER,
    HINTS,
    PARAMS,
    check_nfm_backward,
    check_nfm_forward,
    dense,
)
from nfm_numpy.gradcheck import rel_error

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "04_nfm_end_to_end.ipynb"


@pytest.fixture(scope="module")
def cells():
    nbformat = pytest.importorskip("nbformat")
    return nbformat.read(NOTEBOOK, as_version=4).cells


def function_source(source, name):
    """The source of ``def name`` in a cell (without the lines that call it)."""
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    return ast.get_source_segment(source, node)


def code_cell(cells, name):
    return next(c.source for c in cells if c.cell_type == "code" and f"def {name}(" in c.source)


def solution(cells, name="nfm_backward"):
    """The folded solution's code block for ``name``."""
    md = next(c.source for c in cells if c.cell_type == "markdown" and "<details>" in c.source
              and f"def {name}(" in c.source)
    return re.search(r"```python\n(.*?)```", md, re.S).group(1)


def define(source, name):
    ns = {"np": np}
    exec(source, ns)
    return ns[name]


class Tap(ast.NodeTransformer):
    """Wrap the value of every ``name = ...`` line in ``_tap("name", ...)``: a hook to perturb it."""

    def visit_Assign(self, node):
        if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            node.value = ast.Call(ast.Name("_tap", ast.Load()), [ast.Constant(node.targets[0].id), node.value], [])
        return node


def tapped_forward(cells):
    """The notebook's forward pass, with a hook that adds h to one entry of one named intermediate."""
    tree = ast.parse(function_source(solution(cells, "nfm_forward"), "nfm_forward"))
    tree = ast.fix_missing_locations(Tap().visit(tree))
    poke = {"name": None}

    def _tap(name, value):
        if name != poke["name"]:
            return value
        value = np.array(value, dtype=np.float64)
        value[poke["at"]] += poke["h"]
        return value

    ns = {"np": np, "_tap": _tap}
    exec(compile(tree, str(NOTEBOOK), "exec"), ns)
    return ns["nfm_forward"], poke


def test_the_notebooks_forward_gives_the_references_values(cells):
    """Close everywhere; bit for bit up to var0, not from rstd0 to err, the loss again: as the notebook says."""
    forward = define(solution(cells, "nfm_forward"), "nfm_forward")
    batch, params = one_step.tiny_problem()
    _, ref, _ = one_step.forward_backward(batch, params)
    v = forward(batch["idx"], batch["val"], batch["y"], params, ref["mask0"], ref["keep0"], ref["mask1"],
                ref["keep1"], ref["eps"])
    assert set(FORWARD_ORDER) == {n for n in BACKWARD_ORDER if n not in PARAMS} | {"loss"} == set(DEFINED_AS)
    for name in FORWARD_ORDER:
        np.testing.assert_allclose(v[name], ref[name], rtol=1e-12, atol=1e-14, err_msg=name)
    exact = [name for name in FORWARD_ORDER if np.array_equal(v[name], ref[name])]
    cut = FORWARD_ORDER.index("rstd0")
    assert exact == list(FORWARD_ORDER[:cut]) + ["loss"]
    text = next(c.source for c in cells
                if c.cell_type == "markdown" and "**Why?** The formulas are the same" in c.source)
    assert "the values up to `var0` are bit for bit" in text and "from `rstd0` to `err` they are close" in text


def test_every_reference_gradient_matches_central_differences(cells):
    """d loss / d (each intermediate and parameter) of one_step.forward_backward, entry by entry, against
    (L(t + h) - L(t - h)) / 2h where t is perturbed in the notebook's forward and everything after it is
    recomputed."""
    forward, poke = tapped_forward(cells)
    batch, params = one_step.tiny_problem()
    _, ref, grads = one_step.forward_backward(batch, params)
    assert np.abs(ref["bn1"]).min() > 1e-3          # no ReLU input near its kink: differences are smooth
    masks = (ref["mask0"], ref["keep0"], ref["mask1"], ref["keep1"], ref["eps"])
    h = 1e-6

    def loss(p):
        return float(forward(batch["idx"], batch["val"], batch["y"], p, *masks)["loss"])

    for name in BACKWARD_ORDER:
        shape = np.shape(params[name] if name in PARAMS else ref[name])
        numeric = np.zeros(shape)
        for at in np.ndindex(*shape):
            diff = []
            for sign in (1, -1):
                if name in PARAMS:
                    p = {k: np.array(a, dtype=np.float64) for k, a in params.items()}
                    p[name][at] += sign * h
                    diff.append(loss(p))
                else:
                    poke.update(name=name, at=at, h=sign * h)
                    diff.append(loss(params))
                    poke["name"] = None
            numeric[at] = (diff[0] - diff[1]) / (2 * h)
        want = dense(grads[name], np.zeros(shape))
        assert rel_error(numeric, want) < 1e-6 or np.abs(numeric - want).max() < 1e-8, name


def test_the_folded_solution_passes(cells, capsys):
    assert EXERCISES["nfm_backward"] is check_nfm_backward
    result = check_nfm_backward(define(solution(cells), "nfm_backward"))
    assert result and "PASS" in capsys.readouterr().out


def test_the_stub_is_not_implemented_and_the_text_path_works(cells, capsys):
    stub = function_source(code_cell(cells, "nfm_backward"), "nfm_backward")
    assert "exercises.check_nfm_backward(nfm_backward)" in code_cell(cells, "nfm_backward")
    assert check_nfm_backward(define(stub, "nfm_backward")).status == "not implemented"
    # "Delete the raise line and add yours below them": first with no line added yet ...
    lines = stub.splitlines()
    cut = next(i for i, line in enumerate(lines) if "raise NotImplementedError" in line)
    result = check_nfm_backward(define("\n".join(lines[:cut] + lines[cut + 1:]), "nfm_backward"))
    assert result.status == "fail" and "no gradient for 'out' yet (the 2 before it are right)" in result.message
    # ... then with the solution's lines after the two the stub gives
    body = solution(cells).splitlines()
    start = next(i for i, line in enumerate(body) if line.strip().startswith("dyhat = derr")) + 1
    end = next(i for i, line in enumerate(body) if line.strip().startswith("return {"))
    done = "\n".join(lines[:cut] + body[start:end] + lines[cut + 1:])
    assert check_nfm_backward(define(done, "nfm_backward"))
    capsys.readouterr()


# (what the learner wrote instead of a line of the solution, the gradient it spoils first, the hint)
PLANTED = [
    ('dxc1 += dvar1 * 2 * v["xc1"] / B', 'dxc1 = dvar1 * 2 * v["xc1"] / B', "xc1", "plus"),
    ('dxc1 += dvar1 * 2 * v["xc1"] / B', "pass", "xc1", "bn_var"),
    ('dxc0 += dvar0 * 2 * v["xc0"] / B', "pass", "xc0", "bn_var"),
    ("da1 += dmu1 / B", "pass", "a1", "bn_mean"),
    ("da1 += dmu1 / B", "da1 = dmu1 / B * np.ones_like(dxc1)", "a1", "plus"),
    ("df_bi += dmu0 / B", "pass", "f_bi", "bn_mean"),
    ("dE += ds[:, None, :]", "dE = ds[:, None, :]", "E", "plus"),
    ('dr1 = dz1 * v["mask1"] / v["keep1"]', "dr1 = dz1", "r1", "mask"),
    ('dr1 = dz1 * v["mask1"] / v["keep1"]', 'dr1 = dz1 * v["mask1"]', "r1", "scale"),
    ('dbn0 = dz0 * v["mask0"] / v["keep0"]', 'dbn0 = dz0 / v["keep0"]', "bn0", "mask"),
    ("db1 = da1.sum(0)", "db1 = da1", "b1", "sum"),
    ("dbeta1 = dbn1.sum(0)", "dbeta1 = dbn1", "beta1", "sum"),
    ('drstd0 = (dxhat0 * v["xc0"]).sum(0)', 'drstd0 = dxhat0 * v["xc0"]', "rstd0", "sum"),
    ('np.add.at(dV, v["idx"], dV_idx)', 'dV[v["idx"]] += dV_idx', "V", "scatter"),
    ('np.add.at(dw, v["idx"], dw_idx)', 'dw[v["idx"]] += dw_idx', "w", "scatter"),
    ('dbn1 = dr1 * (v["bn1"] > 0)', "dbn1 = dr1", "bn1", "relu"),
    ('dW1 = v["z0"].T @ da1', 'dW1 = da1.T @ v["z0"]', "W1", "transpose"),
    ('dE2 = dq[:, None, :] * np.ones_like(v["E2"])', "dE2 = dq[:, None, :]", "E2", "copy"),
    ('ds = 2 * v["s"] * ds2', 'ds = v["s"] * ds2', "s", "line"),
    ('dvar1 = drstd1 * -0.5 * (v["var1"] + v["eps"]) ** -1.5', 'dvar1 = drstd1 * -0.5 * v["var1"] ** -1.5', "var1",
     "eps"),
    ("da1 = dxc1.copy()", "da1 = dxc1", "xc1", "alias"),
    ("df_bi = dxc0.copy()", "df_bi = dxc0", "xc0", "alias"),
]
# a phrase of each hint that no other hint contains
PHRASE = {"sum": "was broadcast over the rows", "plus": "is used twice", "bn_var": "variance term is missing",
          "bn_mean": "mean term is missing", "mask": "dropout's mask is missing",
          "scale": "dropout's rescaling is missing", "relu": "ReLU passes", "scatter": "repeated ids",
          "transpose": "side of the product is transposed", "copy": "copied along that axis",
          "line": "the line's derivative", "alias": "are the same array", "eps": "eps is part of the variance's"}


def test_every_hint_is_planted_and_each_phrase_is_its_own():
    assert set(PHRASE) == set(HINTS) == {key for *_, key in PLANTED}
    for key, phrase in PHRASE.items():
        assert [k for k, text in HINTS.items() if phrase in text] == [key]


@pytest.mark.parametrize("right, wrong, name, key", PLANTED, ids=[f"{k}-{n}" for _, _, n, k in PLANTED])
def test_a_planted_mistake_fires_its_hint_alone(cells, capsys, right, wrong, name, key):
    source = solution(cells)
    assert source.count(right) == 1, right
    result = check_nfm_backward(define(source.replace(right, wrong), "nfm_backward"))
    capsys.readouterr()
    assert result.status == "fail", result.message
    assert f"the first wrong gradient, walking back from the loss, is d{name} (" in result.message, result.message
    hint = result.message.split("\n  hint: ")[1]
    assert [k for k, phrase in PHRASE.items() if phrase in hint] == [key], hint


@pytest.mark.parametrize("later, earlier", [("a1", "xc1"), ("f_bi", "xc0")])
def test_an_alias_is_named_exactly(cells, capsys, later, earlier):
    """The notebook's route passes d<earlier> on unchanged as the first line of d<later>: written without
    .copy(), the += that follows changes d<earlier> in place, and the hint says so, naming both."""
    source = solution(cells)
    right = f"d{later} = d{earlier}.copy()"
    assert source.count(right) == 1, right
    result = check_nfm_backward(define(source.replace(right, f"d{later} = d{earlier}"), "nfm_backward"))
    capsys.readouterr()
    assert result.message.split("\n  hint: ")[1] == (
        f"d{later} and d{earlier} are the same array: d{later} = d{earlier} makes one array with two names, so "
        f"the d{later} += ... that follows changed d{earlier} too; copy it (d{later} = d{earlier}.copy()) before +=")


def test_innocent_aliases_pass(cells, capsys):
    """Names that share an array but are never changed in place (dout = dyhat, dscaled1 = dbn1) are right."""
    source = solution(cells)
    assert "dout = dyhat " in source and "dscaled1 = dbn1 " in source
    assert check_nfm_backward(define(source, "nfm_backward"))
    capsys.readouterr()


def test_a_crash_in_the_learners_backward_is_reported(capsys):
    def broken(v, p):
        return {"err": v["err"], "yhat": v["err"][:, None] + np.ones((3, 2))}     # a broadcasting error
    result = check_nfm_backward(broken)
    assert result.status == "fail" and "your function raised ValueError" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------
# The forward pass
# ---------------------------------------------------------------------------------------------------------

def test_the_forward_solution_passes(cells, capsys):
    assert EXERCISES["nfm_forward"] is check_nfm_forward
    result = check_nfm_forward(define(solution(cells, "nfm_forward"), "nfm_forward"))
    assert result and "nfm_forward: PASS (3 cases, all 32 values" in capsys.readouterr().out


def test_the_forward_stub_is_not_implemented_and_the_text_path_works(cells, capsys):
    cell = code_cell(cells, "nfm_forward")
    assert "exercises.check_nfm_forward(nfm_forward)" in cell
    stub = function_source(cell, "nfm_forward")
    assert check_nfm_forward(define(stub, "nfm_forward")).status == "not implemented"
    # "Delete the raise line and add yours below it": first with nothing added ...
    lines = stub.splitlines()
    cut = next(i for i, line in enumerate(lines) if "raise NotImplementedError" in line)
    result = check_nfm_forward(define("\n".join(lines[:cut] + lines[cut + 1:]), "nfm_forward"))
    assert result.status == "fail" and "no value for 'V_idx' yet (the 3 before it are right)" in result.message
    # ... then with the solution's lines after the ones the stub gives (the linear part)
    body = solution(cells, "nfm_forward").splitlines()
    start = next(i for i, line in enumerate(body) if line.strip().startswith('lin = p["w0"]')) + 1
    end = next(i for i, line in enumerate(body) if line.strip() == "return locals()")
    assert lines[:cut] == body[:start]
    done = "\n".join(lines[:cut] + body[start:end] + lines[cut + 1:])
    assert check_nfm_forward(define(done, "nfm_forward"))
    capsys.readouterr()


# (the solution's line, what the learner wrote instead, the value it spoils first, the hint)
PLANTED_FORWARD = [
    ("lin_terms = val * w_idx", "lin_terms = w_idx", "lin_terms", "value"),
    ("E = val[:, :, None] * V_idx", "E = V_idx", "E", "value"),
    ('lin = p["w0"] + lin_terms.sum(1)', "lin = lin_terms.sum(1)", "lin", "bias"),
    ('a1 = z0 @ p["W1"] + p["b1"]', 'a1 = z0 @ p["W1"]', "a1", "bias"),
    ("f_bi = 0.5 * (s2 - q)", "f_bi = s2 - q", "f_bi", "half"),
    ("loss = 0.5 * (err ** 2).sum()", "loss = (err ** 2).sum()", "loss", "half"),
    ("f_bi = 0.5 * (s2 - q)", "f_bi = 0.5 * (q - s2)", "f_bi", "sign"),
    ("err = yhat - y", "err = y - yhat", "err", "sign"),
    ("mu0 = f_bi.mean(0)", "mu0 = f_bi.mean(1)", "mu0", "axis"),
    ("mu1 = a1.mean(0)", "mu1 = a1.mean()", "mu1", "axis"),
    ("var0 = (xc0 ** 2).mean(0)", "var0 = xc0.var(0, ddof=1)", "var0", "ddof"),
    ("var1 = (xc1 ** 2).mean(0)", "var1 = (a1 ** 2).mean(0)", "var1", "centre"),
    ("rstd0 = (var0 + eps) ** -0.5", "rstd0 = 1 / (np.sqrt(var0) + eps)", "rstd0", "eps"),
    ("rstd1 = (var1 + eps) ** -0.5", "rstd1 = var1 ** -0.5", "rstd1", "eps"),
    ("rstd0 = (var0 + eps) ** -0.5", "rstd0 = np.sqrt(var0 + eps)", "rstd0", "reciprocal"),
    ("z0 = bn0 * mask0 / keep0", "z0 = bn0 / keep0", "z0", "mask"),
    ("z1 = r1 * mask1 / keep1", "z1 = r1 * mask1", "z1", "scale"),
    ("z0 = bn0 * mask0 / keep0", "z0 = bn0 * mask0 / keep1", "z0", "keep"),
    ("r1 = np.maximum(bn1, 0)", "r1 = np.maximum(a1, 0)", "r1", "relu"),
    ("loss = 0.5 * (err ** 2).sum()", "loss = 0.5 * (err ** 2).mean()", "loss", "mean"),
    ('out = z1 @ p["h"]', "out = z1.sum(1)", "out", "line"),
]
FORWARD_PHRASE = {"value": "needs the value x_f", "half": "is twice what it should be", "sign": "the wrong sign",
                  "axis": "over the wrong axis:", "ddof": "the biased variance", "centre": "*centred* values",
                  "eps": "eps goes inside the square root", "reciprocal": "one over the standard deviation",
                  "mask": "multiplies by its 0/1 mask", "scale": "divides the kept units",
                  "keep": "its own keep probability", "bias": "is missing its bias",
                  "relu": "comes after batch norm 1", "mean": "not averaged", "broadcast": "lines up axes",
                  "matmul": "A's last axis to match B's first",
                  "line": "compare your line with that formula"}


def test_every_forward_hint_is_planted_and_each_phrase_is_its_own():
    assert set(FORWARD_PHRASE) == set(FORWARD_HINTS) == {key for *_, key in PLANTED_FORWARD} | {"broadcast", "matmul"}
    for key, phrase in FORWARD_PHRASE.items():
        assert [k for k, text in FORWARD_HINTS.items() if phrase in text] == [key]


@pytest.mark.parametrize("right, wrong, name, key", PLANTED_FORWARD,
                         ids=[f"{k}-{n}-{w}" for _, w, n, k in PLANTED_FORWARD])
def test_a_planted_forward_mistake_fires_its_hint_alone(cells, capsys, right, wrong, name, key):
    source = solution(cells, "nfm_forward")
    assert source.count(right) == 1, right
    result = check_nfm_forward(define(source.replace(right, wrong), "nfm_forward"))
    capsys.readouterr()
    assert result.status == "fail", result.message
    assert f"the first wrong value, walking forward, is {name} (" in result.message, result.message
    hint = result.message.split("\n  hint: ")[1]
    assert [k for k, phrase in FORWARD_PHRASE.items() if phrase in hint] == [key], hint


def test_a_broadcasting_mistake_names_its_line_and_gets_the_shape_hint(cells, capsys, tmp_path):
    """``E = val * V_idx`` raises inside the learner's function: the message names the line (from a file, as
    Jupyter registers a cell's source) and gives the broadcasting hint."""
    source = solution(cells, "nfm_forward").replace("E = val[:, :, None] * V_idx", "E = val * V_idx")
    path = tmp_path / "cell.py"
    path.write_text(source)
    ns = {"np": np}
    exec(compile(source, str(path), "exec"), ns)
    result = check_nfm_forward(ns["nfm_forward"])
    capsys.readouterr()
    line = 1 + next(i for i, text in enumerate(source.splitlines()) if "E = val * V_idx" in text)
    assert "your function raised ValueError: operands could not be broadcast" in result.message
    assert f"\n  at line {line} of nfm_forward: E = val * V_idx" in result.message
    assert FORWARD_PHRASE["broadcast"] in result.message.split("\n  hint: ")[1]


def test_a_forward_that_changes_the_parameters_or_returns_no_dict_is_told(cells, capsys):
    source = solution(cells, "nfm_forward")
    inplace = source.replace('    V_idx = p["V"][idx]', '    p["V"] *= 1.0 + 1e-3\n    V_idx = p["V"][idx]')
    assert inplace != source
    result = check_nfm_forward(define(inplace, "nfm_forward"))
    assert result.status == "fail" and "changed p['V'] in place" in result.message
    result = check_nfm_forward(define(source.replace("return locals()", "return loss"), "nfm_forward"))
    assert result.status == "fail" and "return locals(), does it" in result.message
    capsys.readouterr()


def _defined_in_a_file(source, name, tmp_path):
    """``name`` from ``source`` compiled from a file, as Jupyter registers a cell's source (lines can be shown)."""
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    ns = {"np": np}
    exec(compile(source, str(path), "exec"), ns)
    return ns[name]


@pytest.mark.parametrize("right, wrong, crash_line, name, phrase", [
    ("s = E.sum(1)", "s = E.sum(0)", "f_bi = 0.5 * (s2 - q)", "s", FORWARD_PHRASE["axis"]),
    ('out = z1 @ p["h"]', 'out = z1 * p["h"]', "yhat = lin + out", "out", "z1 * h keeps each unit's term apart"),
])
def test_a_forward_that_raises_later_is_told_its_first_wrong_value(cells, capsys, tmp_path, right, wrong,
                                                                    crash_line, name, phrase):
    """A wrong line that only breaks a later one: the message names the line that raised and the value that was
    already wrong before it, read from the function's locals at the crash, with that value's hint."""
    source = solution(cells, "nfm_forward")
    assert source.count(right) == 1
    result = check_nfm_forward(_defined_in_a_file(source.replace(right, wrong), "nfm_forward", tmp_path))
    capsys.readouterr()
    assert "your function raised ValueError" in result.message
    assert f"of nfm_forward: {crash_line}" in result.message
    assert f"\n  before that line, {name} was already wrong: {name} has shape" in result.message
    assert phrase in result.message.split("\n  hint: ")[1]


def test_a_backward_that_raises_is_told_the_shape_its_line_must_give(cells, capsys, tmp_path):
    source = solution(cells)
    right = 'dz1 = dout[:, None] * p["h"][None, :]'
    assert source.count(right) == 1
    result = check_nfm_backward(_defined_in_a_file(source.replace(right, 'dz1 = dout * p["h"]'), "nfm_backward",
                                                   tmp_path))
    capsys.readouterr()
    assert "your function raised ValueError: operands could not be broadcast" in result.message
    assert 'of nfm_backward: dz1 = dout * p["h"]' in result.message
    assert "hint: dz1 must have z1's shape (4, 5); it comes back through out = z1 @ h" in result.message


def test_a_backward_that_raises_after_a_wrong_gradient_names_that_gradient(cells, capsys, tmp_path):
    """dbeta1 left unsummed, then a crash further down: the wrong gradient is reported with its own hint."""
    source = solution(cells)
    broken = source.replace("dbeta1 = dbn1.sum(0)", "dbeta1 = dbn1").replace(
        'dz0 = da1 @ p["W1"].T', 'dz0 = da1 @ p["W1"]')
    assert broken.count("dbeta1 = dbn1 ") == 1 and 'dz0 = da1 @ p["W1"] ' in broken
    result = check_nfm_backward(_defined_in_a_file(broken, "nfm_backward", tmp_path))
    capsys.readouterr()
    assert "your function raised ValueError" in result.message
    assert "\n  before that line, dbeta1 was already wrong: dbeta1 has shape (4, 5), expected (5,)" in result.message
    assert PHRASE["sum"] in result.message.split("\n  hint: ")[1]


@pytest.mark.parametrize("name, wrong, example", [
    ("lin_terms", "dlin_terms = dlin", 'e.g. dlin[:, None] * np.ones_like(v["val"])'),
    ("E2", "dE2 = dq[:, None, :]", 'e.g. dq[:, None, :] * np.ones_like(v["E2"])'),
])
def test_the_copy_hint_gives_the_example_of_its_own_line(cells, capsys, name, wrong, example):
    """dlin_terms = dlin breaks the next line (reported as 'before that line, dlin_terms was already wrong');
    dE2 = dq[:, None, :] is wrong at once: either way the example is the line's own."""
    source = solution(cells)
    right = next(line.strip().split("  #")[0].strip() for line in source.splitlines()
                 if line.strip().startswith(f"d{name} = "))
    result = check_nfm_backward(define(source.replace(right, wrong), "nfm_backward"))
    capsys.readouterr()
    hint = result.message.split("\n  hint: ")[1]
    assert hint.endswith(example) and hint.count("e.g.") == 1, hint


@pytest.mark.parametrize("right, wrong", [('out = z1 @ p["h"]', 'out = p["h"] @ z1'),
                                          ('a1 = z0 @ p["W1"] + p["b1"]', 'a1 = p["W1"] @ z0 + p["b1"]')])
def test_a_product_in_the_wrong_order_gets_the_matmul_hint(cells, capsys, right, wrong):
    """h @ z1 or W1 @ z0 raise inside the learner's forward (no value is wrong before them): the shape hint."""
    source = solution(cells, "nfm_forward")
    assert source.count(right) == 1
    result = check_nfm_forward(define(source.replace(right, wrong), "nfm_forward"))
    capsys.readouterr()
    assert "your function raised ValueError: matmul" in result.message
    hint = result.message.split("\n  hint: ")[1]
    assert [k for k, phrase in FORWARD_PHRASE.items() if phrase in hint] == ["matmul"], hint
