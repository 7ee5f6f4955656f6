"""Notebook 5's central-difference exercise: the path its text describes passes, the folded solution
passes, and each realistic wrong attempt is a FAIL whose hint names that mistake and no other."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from nfm_numpy.exercises import check_central_difference, gradients
from nfm_numpy.exercises.harness import _safe

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "05_gradient_checking_lab.ipynb"


def _cells():
    return json.loads(NOTEBOOK.read_text())["cells"]


# ------------------------------------------------------------------ right answers
def as_the_stub_says(f, x, h):
    """The stub's advice, step by step: loop over np.ndindex(x.shape); old = x[j]; x[j] = old + h; f();
    x[j] = old - h; f(); x[j] = old."""
    grad = np.zeros(x.shape)
    for j in np.ndindex(x.shape):
        old = x[j]
        x[j] = old + h
        up = f()
        x[j] = old - h
        down = f()
        x[j] = old
        grad[j] = (up - down) / (2 * h)
    return grad


def through_a_flat_view(f, x, h):
    """Also right: x.reshape(-1) of a contiguous array is a view, so writing to it changes x."""
    flat, grad = x.reshape(-1), np.zeros(x.size)
    for j in range(x.size):
        old = flat[j]
        flat[j] = old + h
        up = f()
        flat[j] = old - h
        down = f()
        flat[j] = old
        grad[j] = (up - down) / (2 * h)
    return grad.reshape(x.shape)


# ------------------------------------------------------------------ realistic wrong attempts
def _loop(step, x, grad=None, index=None):
    """Fill grad[j] = step(j) over index (default: every entry of x)."""
    grad = np.zeros(x.shape) if grad is None else grad
    for j in (np.ndindex(x.shape) if index is None else index):
        grad[j] = step(j)
    return grad


def gives_f_an_argument(f, x, h):
    def step(j):
        e = np.zeros(x.shape)
        e[j] = h
        return (f(x + e) - f(x - e)) / (2 * h)
    return _loop(step, x)


def never_restores(f, x, h):
    def step(j):
        x[j] += h
        up = f()
        x[j] -= 2 * h
        return (up - f()) / (2 * h)
    return _loop(step, x)


def restores_by_adding_h(f, x, h):
    def step(j):
        x[j] += h
        up = f()
        x[j] -= 2 * h
        down = f()
        x[j] += h
        return (up - down) / (2 * h)
    return _loop(step, x)


def _step_by_index(f, x, h):
    """The difference for x[j], whatever x[j] selects (an entry, or a whole row when j is one int on 2-D x)."""
    def step(j):
        old = x[j].copy()
        x[j] = old + h
        up = f()
        x[j] = old - h
        down = f()
        x[j] = old
        return (up - down) / (2 * h)
    return step


def indexes_a_2d_x_by_position(f, x, h):
    return _loop(_step_by_index(f, x, h), x, np.zeros(x.size), range(x.size))


def stores_it_in_float32(f, x, h):
    """The right loop, with grad = np.zeros(x.shape, dtype=np.float32): each difference rounded to float32."""
    return _loop(_step_by_index(f, x, h), x, np.zeros(x.shape, dtype=np.float32))


def returns_it_flat(f, x, h):
    return as_the_stub_says(f, x, h).ravel()


def loops_over_rows(f, x, h):
    return _loop(_step_by_index(f, x, h), x, index=range(len(x)))


def moves_all_at_once(f, x, h):
    old = x.copy()
    x += h
    up = f()
    x[...] = old - h
    down = f()
    x[...] = old
    return (up - down) / (2 * h)


def moves_all_at_once_filled(f, x, h):
    return np.full(x.shape, moves_all_at_once(f, x, h))


def moves_a_copy(f, x, h):
    def step(j):
        xc = x.copy()
        xc[j] += h
        up = f()
        xc[j] -= 2 * h
        return (up - f()) / (2 * h)
    return _loop(step, x)


def one_sided(f, x, h):
    def step(j):
        old, base = x[j], f()
        x[j] = old + h
        up = f()
        x[j] = old
        return (up - base) / h
    return _loop(step, x)


def one_sided_backward(f, x, h):
    def step(j):
        old, base = x[j], f()
        x[j] = old - h
        down = f()
        x[j] = old
        return (base - down) / h
    return _loop(step, x)


def _central(finish):
    """A right loop whose last line, finish(up, down, h), is wrong."""
    def central(f, x, h):
        def step(j):
            old = x[j]
            x[j] = old + h
            up = f()
            x[j] = old - h
            down = f()
            x[j] = old
            return finish(up, down, h)
        return _loop(step, x)
    return central


def half_step(f, x, h):
    def step(j):
        old = x[j]
        x[j] = old + h
        up = f()
        x[j] = old                      # "x[j] -= h": back to the start, not to old - h
        down = f()
        return (up - down) / (2 * h)
    return _loop(step, x)


def forgets_to_return(f, x, h):
    as_the_stub_says(f, x, h)


PLANTED = [
    ("no return", forgets_to_return),
    ("argument", gives_f_an_argument),
    ("not restored", never_restores),
    ("restored by arithmetic", restores_by_adding_h),
    ("index on a 2-D x", indexes_a_2d_x_by_position),
    ("flat", returns_it_flat),
    ("precision", stores_it_in_float32),
    ("rows", loops_over_rows),
    ("all at once", moves_all_at_once),
    ("all at once", moves_all_at_once_filled),
    ("copy", moves_a_copy),
    ("one-sided", one_sided),
    ("one-sided", one_sided_backward),
    ("half step", half_step),
    ("divide by h", _central(lambda up, down, h: (up - down) / h)),
    ("precedence", _central(lambda up, down, h: (up - down) / 2 * h)),
    ("sign", _central(lambda up, down, h: (down - up) / (2 * h))),
]
HINT = {name: hint for name, _, hint in gradients.HINTS}


def _first_failure(fn):
    """The hints whose tests fire on the first case this function fails (the case the learner is shown)."""
    for _, f, x, grad in gradients._smooth_functions():
        args = (f, x, 1e-5, grad)
        a = gradients.attempt(fn, f, x.copy(), 1e-5)
        want = grad(x)
        if gradients.compare(a, want):
            return [name for name, test, _ in gradients.HINTS if _safe(test, a, want, args)]
    return None


@pytest.mark.parametrize("fn", [as_the_stub_says, through_a_flat_view])
def test_right_answers_pass_and_fire_no_hint(fn, capsys):
    result = check_central_difference(fn)
    assert result.status == "pass", capsys.readouterr().out
    assert _first_failure(fn) is None


def test_every_hint_is_planted():
    assert sorted({name for name, _ in PLANTED}) == sorted(HINT)


@pytest.mark.parametrize("name,fn", PLANTED, ids=[fn.__name__ + ": " + n for n, fn in PLANTED])
def test_a_planted_mistake_fires_its_hint_and_no_other(name, fn, capsys):
    assert _first_failure(fn) == [name]
    result = check_central_difference(fn)
    out = capsys.readouterr().out
    assert result.status == "fail" and "FAIL on case" in out
    assert f"hint: {HINT[name]}" in out, out
    assert "your function raised AssertionError" not in out


def test_the_flat_hint_stays_quiet_on_a_1d_x():
    """On a vector x every 1-D answer has x's shape, so a wrong 1-D answer is never called flat."""
    for fn in (stores_it_in_float32, _central(lambda up, down, h: (up - down) / h)):
        _, f, x, grad = gradients._smooth_functions()[0]
        a = gradients.attempt(fn, f, x.copy(), 1e-5)
        assert x.ndim == 1 and gradients.compare(a, grad(x))
        assert not _safe(dict((n, t) for n, t, _ in gradients.HINTS)["flat"], a, grad(x), (f, x, 1e-5, grad))


def test_restoring_by_arithmetic_really_drifts_in_every_case():
    """The cases hold entries where x + h - 2h + h != x in float64, so that mistake cannot pass by luck."""
    for _, _, x, _ in gradients._smooth_functions():
        y = x.copy()
        y += 1e-5
        y -= 2e-5
        y += 1e-5
        assert np.any(y != x)


def test_x_not_restored_is_an_ordinary_fail_naming_it(capsys):
    def shifts_x(f, x, h):
        grad = as_the_stub_says(f, x, h)
        x += 1.0
        return grad
    result = check_central_difference(shifts_x)
    out = capsys.readouterr().out
    assert result.status == "fail" and "x was not restored" in out and f"hint: {HINT['not restored']}" in out


def test_the_notebook_stub_its_advice_and_its_folded_solution():
    """The stub raises NotImplementedError with advice that, followed as worded, is as_the_stub_says;
    the folded solution passes the checker."""
    code = "\n".join("".join(c["source"]) for c in _cells() if c["cell_type"] == "code")
    ns = {"np": np}
    exec(re.search(r"def central_difference\(f, x, h\):\n.*?\n\n", code, re.S).group(0), ns)
    with pytest.raises(NotImplementedError) as stub:
        ns["central_difference"](lambda: 0.0, np.zeros(2), 1e-5)
    assert str(stub.value) == ("loop over np.ndindex(x.shape): old = x[j]; x[j] = old + h; f(); x[j] = old - h; f(); "
                      "x[j] = old")
    assert "exercises.check_central_difference(central_difference)" in code
    md = "\n".join("".join(c["source"]) for c in _cells() if c["cell_type"] == "markdown")
    block = re.search(r"```python\n(def central_difference.*?)```", md, re.S).group(1)
    ns = {"np": np}
    exec(block, ns)
    assert check_central_difference(ns["central_difference"]).status == "pass"


# ------------------------------------------------------------------ the notebook's other exercises, as worded
def _code_cells():
    return ["".join(c["source"]) for c in _cells() if c["cell_type"] == "code"]


def _run_cells(sources, monkeypatch, capsys):
    """Run notebook code in full mode from notebooks/ (as Jupyter does); return what it printed."""
    import matplotlib
    matplotlib.use("Agg")
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.chdir(NOTEBOOK.parent)
    ns = {}
    for s in sources:
        exec(s, ns)
    return capsys.readouterr().out, ns


def test_exercise_2_adding_float32_4_point_to_the_loop(monkeypatch, capsys):
    """Exercise 2 as worded: add ("float32", 4) to the V-plot cell's loop and run it again; the folded
    solution quotes the line it prints."""
    cells = _code_cells()
    vplot = next(s for s in cells if "for dtype, order in" in s)
    old = 'for dtype, order in (("float64", 2), ("float64", 4), ("float32", 2)):'
    assert old in vplot
    out, _ = _run_cells([cells[0], vplot.replace(old, old[:-2] + ', ("float32", 4)):')], monkeypatch, capsys)
    line = re.search(r"float32, 4-point: best error .*", out).group(0)
    assert line == "float32, 4-point: best error 1.5e-04 at step 1e-01"
    md = "\n".join("".join(c["source"]) for c in _cells() if c["cell_type"] == "markdown")
    assert f"`{line}`" in md


def _failing(report_text):
    return sorted(line.split("  ")[0].strip() for line in report_text.splitlines() if line.endswith("FAIL")
                  and not line.startswith("threshold"))


def test_exercise_3_the_folded_solution_and_its_claims(monkeypatch, capsys):
    """The solution's code breaks batch norm's backward pass; without dropout V, beta0, b1 and x fail and
    W1 passes; with beta0 = 0.5 W1 fails too; with dropout on f_BI W1 and gamma0 fail as well. The good
    function is back afterwards."""
    import textwrap

    from nfm_numpy import layers
    good = layers.batchnorm_backward
    md = next("".join(c["source"]) for c in _cells() if "def broken_batchnorm_backward" in "".join(c["source"]))
    block = textwrap.dedent(re.search(r"```python\n(.*?)```", md, re.S).group(1))
    out, _ = _run_cells([_code_cells()[0], block], monkeypatch, capsys)
    assert layers.batchnorm_backward is good
    runs = re.split(r"keep_prob \[.*?\], beta0 = .*?:\n", out)[1:]
    assert [_failing(r) for r in runs] == [
        ["V", "b1", "beta0", "x (val)"],
        ["V", "W1", "b1", "beta0", "x (val)"],
        ["V", "W1", "b1", "beta0", "gamma0", "x (val)"]]
    w1 = [float(re.search(r"^W1 .*?([\d.]+e[-+]\d+)", r, re.M).group(1)) for r in runs]
    g0 = float(re.search(r"^gamma0 .*?([\d.]+e[-+]\d+)", runs[2], re.M).group(1))
    assert f"{w1[1]:.1e}" == "9.6e-01" and f"{w1[2]:.1e}" == "1.5e-01" and f"{g0:.1e}" == "2.0e-01"


@pytest.mark.parametrize("args,largest", [
    (["--dtype", "float32", "--activation", "tanh", "--batch-norm", "0", "--step", "5e-2"], "8.628e-05"),
    (["--dtype", "float32"], "6.674e-02"),
    (["--step", "1e-2"], "6.674e-02"),
    (["--dtype", "float32", "--activation", "tanh"], "5.098e-02"),
    (["--activation", "tanh", "--step", "1e-2"], "5.098e-02"),
    (["--activation", "tanh", "--batch-norm", "0", "--step", "5e-2"], "8.934e-05"),
])
def test_the_command_lines_exercise_2_quotes(args, largest):
    """The float32 command-line check: tanh without batch norm at step 5e-2 passes, and float64 at that step
    is no closer (truncation, not float32's floor); the defaults fail, and float64 at the same step fails by
    the same amount (the step, not float32)."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "nfm_numpy", "gradcheck", *args], capture_output=True, text=True,
                       cwd=NOTEBOOK.parents[1])
    assert f"max relative error: {largest}" in r.stdout, r.stdout + r.stderr
    assert r.returncode == (0 if largest == "8.628e-05" else 1)


def test_the_kink_section_tanh_beside_relu_at_a_large_step():
    """The kink section's claims: at h = 5e-2, V fails as badly with tanh as with ReLU (truncation through
    batch norm); gamma0, W1, beta1 and x are hundreds of times worse with ReLU (the kinks); the rest agree
    and pass with both."""
    import nfm_numpy as nf
    from nfm_numpy import gradcheck

    batch = gradcheck.random_problem(seed=5)

    def nfm(activation, seed):
        return nf.NFM(40, k=5, layers=[8], keep_prob=[1.0, 1.0], activation=activation, dtype="float64", seed=seed)

    seed, relu = gradcheck.relu_safe_seed(lambda s: nfm("relu", s), batch)
    relu_r, tanh_r = (gradcheck.check_model(m, batch, h=5e-2, threshold=1e-6) for m in (relu, nfm("tanh", seed)))
    r, t = ({x.name: x.error for x in rep.rows} for rep in (relu_r, tanh_r))
    assert r["V"] > 0.1 and t["V"] > r["V"]
    assert all(r[n] / t[n] > 400 for n in ("gamma0", "W1", "beta1", "x (val)"))
    assert all(max(r[n], t[n]) < 1e-6 for n in ("w0", "w", "gamma1", "h"))
    assert all(max(r[n], t[n]) < 1e-8 for n in ("beta0", "b1"))
    md = "\n".join("".join(c["source"]) for c in _cells() if c["cell_type"] == "markdown")
    assert "500 to 11,000 times worse with ReLU" in md
    ratios = [r[n] / t[n] for n in ("gamma0", "W1", "beta1", "x (val)")]
    assert 450 < min(ratios) < 550 and 10_500 < max(ratios) < 11_500
