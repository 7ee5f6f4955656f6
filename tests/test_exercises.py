"""The notebooks' "your turn" checkers: a right answer passes, a stub is "not implemented yet"
(without raising), and each typical mistake is caught with a message that names it. The
worked solutions stored (collapsed) in the notebooks must pass their checkers too."""
import re
from pathlib import Path

import numpy as np
import pytest

from nfm_numpy import exercises as X

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


# ------------------------------------------------------------------ right answers, written independently
def fm_pairwise(idx, val, V):
    E = val[:, :, None] * V[idx]
    return 0.5 * (E.sum(1) ** 2 - (E ** 2).sum(1)).sum(1)


def adagrad_rows(V, acc, rows, g, lr):
    V, acc = V.copy(), acc.copy()
    acc[rows] += g * g
    V[rows] -= lr * g / np.sqrt(acc[rows])
    return V, acc


def bi_interaction_backward(df, E):
    return df[:, None, :] * (E.sum(1)[:, None, :] - E)


def scatter_rows(idx, G, n):
    dV = np.zeros((n, G.shape[2]))
    np.add.at(dV, idx.ravel(), G.reshape(idx.size, -1))
    return dV


def batchnorm_backward(dy, x, gamma, eps):
    B = x.shape[0]
    r = 1 / np.sqrt(x.var(0) + eps)
    xhat, g = (x - x.mean(0)) * r, dy * gamma
    return r / B * (B * g - g.sum(0) - xhat * (g * xhat).sum(0)), (dy * xhat).sum(0), dy.sum(0)


def affine_backward(da, x, W):
    return da @ W.T, x.T @ da, da.sum(0)


def central_difference(f, x, h):
    grad = np.zeros(x.shape)
    for ix in np.ndindex(x.shape):
        old = x[ix]
        x[ix] = old + h
        up = f()
        x[ix] = old - h
        down = f()
        x[ix] = old
        grad[ix] = (up - down) / (2 * h)
    return grad


RIGHT = {f.__name__: f for f in (fm_pairwise, adagrad_rows, bi_interaction_backward, scatter_rows,
                                 batchnorm_backward, affine_backward, central_difference)}


# ------------------------------------------------------------------ typical mistakes, and what the checker says
def _fancy_scatter(idx, G, n):
    dV = np.zeros((n, G.shape[2]))
    dV[idx.ravel()] += G.reshape(idx.size, -1)
    return dV


def _one_sided(f, x, h):
    grad = np.zeros(x.shape)
    for ix in np.ndindex(x.shape):
        old, base = x[ix], f()
        x[ix] = old + h
        grad[ix] = (f() - base) / h
        x[ix] = old
    return grad


def _bn_eval_mode(dy, x, gamma, eps):
    _, dg, db = batchnorm_backward(dy, x, gamma, eps)
    return dy * gamma / np.sqrt(x.var(0) + eps), dg, db


def _ada_divide_first(V, acc, rows, g, lr):
    V, acc = V.copy(), acc.copy()
    V[rows] -= lr * g / np.sqrt(acc[rows])
    acc[rows] += g * g
    return V, acc


def _ada_sign(V, acc, rows, g, lr):
    V, acc = V.copy(), acc.copy()
    acc[rows] += g * g
    V[rows] += lr * g / np.sqrt(acc[rows])
    return V, acc


def _ada_eps(V, acc, rows, g, lr):                   # an epsilon, as in other forms of Adagrad (Keras: 1e-7)
    V, acc = V.copy(), acc.copy()
    acc[rows] += g * g
    V[rows] -= lr * g / (np.sqrt(acc[rows]) + 1e-7)
    return V, acc


def _no_restore(f, x, h):
    grad = central_difference(f, x, h)
    x += 1.0
    return grad


PLANTED = [
    ("fm_pairwise", lambda idx, val, V: 0.5 * ((val[:, :, None] * V[idx]).sum(1) ** 2).sum(1), "kept the diagonal"),
    ("fm_pairwise", lambda idx, val, V: 2 * fm_pairwise(idx, val, V), "every pair counted twice"),
    ("fm_pairwise", lambda idx, val, V: fm_pairwise(idx, np.ones_like(val), V), "the values x_i are missing"),
    ("fm_pairwise", lambda idx, val, V: fm_pairwise(idx, val.astype(np.float32), V.astype(np.float32)),
     "compute in float64"),
    ("adagrad_rows", _ada_divide_first, "add g^2 to the accumulator first"),
    ("adagrad_rows", _ada_sign, "the step goes against the gradient"),
    ("adagrad_rows", _ada_eps, "no eps here"),
    ("bi_interaction_backward", lambda df, E: df[:, None, :] * E.sum(1)[:, None, :], "forgot the - e_i"),
    ("bi_interaction_backward", lambda df, E: E.sum(1)[:, None, :] - E, "multiply it by the upstream gradient"),
    ("scatter_rows", _fancy_scatter, "keeps only one occurrence"),
    ("batchnorm_backward", _bn_eval_mode, "evaluation-mode gradient"),
    ("affine_backward", lambda da, x, W: (da @ W.T, x.T @ da, da.mean(0)), "sum over the batch, not the mean"),
    ("central_difference", _one_sided, "one-sided difference"),
    ("central_difference", _no_restore, "x was not restored"),
]


@pytest.mark.parametrize("name", sorted(RIGHT))   # the optimizers' right answers: test_exercises_optimizers.py
def test_a_right_answer_passes(name, capsys):
    result = X.EXERCISES[name](RIGHT[name])
    assert result and result.status == "pass"
    assert capsys.readouterr().out.startswith(f"{name}: PASS")


@pytest.mark.parametrize("name", sorted(X.EXERCISES))
def test_a_stub_is_reported_not_implemented(name, capsys):
    def stub(*args):
        raise NotImplementedError("write it above")
    result = X.EXERCISES[name](stub)
    assert not result and result.status == "not implemented"
    assert "not implemented yet (write it above)" in capsys.readouterr().out


@pytest.mark.parametrize("name,bug,hint", PLANTED, ids=[f"{n}: {h}" for n, _, h in PLANTED])
def test_a_planted_bug_is_caught_and_named(name, bug, hint, capsys):
    result = X.EXERCISES[name](bug)
    out = capsys.readouterr().out
    assert result.status == "fail" and "FAIL on case" in out
    assert hint in out, out


def test_a_crash_in_the_learners_code_is_reported_not_raised(capsys):
    result = X.check_scatter_rows(lambda idx, G, n: np.zeros((n, 3)) + G)     # a broadcasting error
    assert result.status == "fail" and "your function raised ValueError" in capsys.readouterr().out


def test_every_checker_is_used_and_solved_in_a_notebook(capsys):
    """Each exercise has a stub and a checker call in a notebook, and a collapsed worked solution
    that passes the checker."""
    nbformat = pytest.importorskip("nbformat")
    found = {}
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        for c in nb.cells:
            if c.cell_type != "markdown" or "<details>" not in c.source:
                continue
            for block in re.findall(r"```python\n(.*?)```", c.source, re.S):
                for name in re.findall(r"^def (\w+)\(", block, re.M):
                    if name in X.EXERCISES:
                        assert re.search(rf"\b(?:X|exercises)\.{X.EXERCISES[name].__name__}\({name}\)", code), \
                            (path.name, name)
                        assert re.search(rf"def {name}\(.*?\n(.*\n)*?\s+raise NotImplementedError", code), \
                            f"{path.name}: no stub for {name}"
                        ns = {"np": np}
                        exec(block, ns)
                        found[name] = (path.name, X.EXERCISES[name](ns[name]))
    missing = sorted(set(X.EXERCISES) - set(found))
    assert not missing, f"exercises without a notebook solution: {missing}"
    failed = {n: r.message for n, (_, r) in found.items() if not r}
    assert not failed, failed


def test_a_result_shows_its_message_once_in_jupyter(capsys):
    """The checker prints its message; Jupyter then displays the returned Result as the cell's value.
    It must add nothing (no second copy of the message), while str, bool and repr stay useful."""
    formatters = pytest.importorskip("IPython.core.formatters")
    result = X.check_scatter_rows(scatter_rows)
    assert capsys.readouterr().out.count("scatter_rows: PASS") == 1
    assert formatters.DisplayFormatter().format(result) == ({}, {})          # Jupyter displays no text at all
    assert str(result).startswith("scatter_rows: PASS") and bool(result)
    assert repr(result) == "Result(name='scatter_rows', status='pass')"


def test_outputs_given_as_a_list_are_accepted(capsys):
    """Several outputs returned as a list, or one array returned as a nested list, pass like arrays."""
    assert X.check_affine_backward(lambda da, x, W: list(affine_backward(da, x, W)))
    assert X.check_scatter_rows(lambda idx, G, n: scatter_rows(idx, G, n).tolist())
    assert X.check_batchnorm_backward(lambda *a: list(batchnorm_backward(*a)))
    out = capsys.readouterr().out
    assert out.count("PASS") == 3 and "outputs" not in out, out


def test_a_mistake_in_a_list_of_outputs_still_gets_its_hint(capsys):
    result = X.check_affine_backward(lambda da, x, W: [da @ W.T, x.T @ da, da.mean(0)])
    assert not result and "sum over the batch, not the mean" in capsys.readouterr().out
