"""Notebook 9's exercise: the Gibbs draw of a one-hot field's weights (``check_draw_w_field``).

A right answer written here from the text passes; so do the notebook's folded solution and the
package's own conditional (``bayes.GibbsFM.w_conditional``); a stub is "not implemented yet"; and each
typical mistake fires exactly its own hint, no other."""
import re
from pathlib import Path

import numpy as np
import pytest

from nfm_numpy import bayes, exercises
from nfm_numpy.exercises import sampler

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "09_bayesian_fm.ipynb"


def draw_w_field(w, e, feat, x, alpha, lam, mu, z):
    """The text's path: P = alpha sum x^2 + lam, m = (alpha (sum x e + w sum x^2) + lam mu) / P,
    w_new = m + z / sqrt(P), then e -= (w_new - w)[feat] x; sums with np.add.at."""
    xx, xe = np.zeros(w.shape), np.zeros(w.shape)
    np.add.at(xx, feat, x * x)
    np.add.at(xe, feat, x * e)
    prec = alpha * xx + lam
    w_new = (alpha * (xe + w * xx) + lam * mu) / prec + z / np.sqrt(prec)
    return w_new, e - (w_new - w)[feat] * x


def _mistake(**kw):
    """A full wrong version: e.g. ``_mistake(prior_mean=False)`` forgets lambda mu."""
    def draw(w, e, feat, x, alpha, lam, mu, z):
        h = x if kw.get("h_is_x", True) else np.ones_like(x)
        xx, he = np.zeros(w.shape), np.zeros(w.shape)
        if kw.get("buffered"):
            xx[feat] += h * h                    # keeps one row per feature
            he[feat] += h * e
        else:
            np.add.at(xx, feat, h * h)
            np.add.at(he, feat, h * e)
        lam_used = 1 / lam if kw.get("prior_var") else lam
        prec = alpha * xx + lam_used
        num = alpha * (he + (w * xx if kw.get("old", True) else 0)) + (lam_used * mu if kw.get("prior_mean", True)
                                                                       else 0)
        w_new = num / prec + {"sd": z / np.sqrt(prec), "var": z / prec, "times": z * np.sqrt(prec)}[
            kw.get("noise", "sd")]
        change = (w_new - w)[feat]
        return w_new, {"x": e - change * x, "no x": e - change, "none": e}[kw.get("update", "x")]
    return draw


PLANTED = [
    ("prior mean", _mistake(prior_mean=False)),
    ("prior variance", _mistake(prior_var=True)),
    ("old value", _mistake(old=False)),
    ("noise scale", _mistake(noise="var")),
    ("noise scale", _mistake(noise="times")),
    ("h = 1", _mistake(h_is_x=False)),
    ("repeated rows", _mistake(buffered=True)),
    ("no residual update", _mistake(update="none")),
    ("residual without x", _mistake(update="no x")),
]


def test_the_checker_is_registered():
    assert exercises.EXERCISES["draw_w_field"] is exercises.check_draw_w_field


def test_a_right_answer_passes(capsys):
    result = exercises.check_draw_w_field(draw_w_field)
    out = capsys.readouterr().out
    assert result and out.startswith("draw_w_field: PASS (3 cases")
    assert "hint" not in out


def test_the_reference_is_the_packages_conditional():
    """The checker's oracle agrees with bayes.GibbsFM on a one-hot field (mean, precision and draw)."""
    rng = np.random.default_rng(3)
    N, n_b = 50, 6
    feat = rng.integers(0, n_b, N)
    idx = np.stack([feat, n_b + rng.integers(0, 4, N)], axis=1)              # two one-hot fields
    val = np.ones(idx.shape)
    y = rng.standard_normal(N)
    s = bayes.GibbsFM(idx, val, y, n_b + 4, k=2, groups=np.r_[np.zeros(n_b, int), np.ones(4, int)], seed=1)
    for _ in range(3):
        s.sweep()
    b = int(s.block_of[0])
    assert list(s.blocks[b].feat) == list(range(n_b))                        # field 1 is one block
    mean, prec = s.w_conditional(b)
    alpha, lam, mu = s.alpha, float(s.lam_w[0]), float(s.mu_w[0])
    w, e = s.w[:n_b].copy(), s.e.copy()
    got_mean, _ = sampler._reference(w, e, feat, val[:, 0], alpha, lam, mu, np.zeros(n_b))
    one, _ = sampler._reference(w, e, feat, val[:, 0], alpha, lam, mu, np.ones(n_b))
    np.testing.assert_allclose(got_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(1 / (one - got_mean) ** 2, prec, rtol=1e-9)
    z = rng.standard_normal(n_b)
    w_new, e_new = sampler._reference(w, e, feat, val[:, 0], alpha, lam, mu, z)
    s.w[:n_b] = w_new
    s.e = e_new
    np.testing.assert_allclose(s.e, y - s.predict_train(), atol=1e-12)      # the residuals stay consistent


def test_a_stub_is_reported_not_implemented(capsys):
    def stub(*args):
        raise NotImplementedError("write it above")
    result = exercises.check_draw_w_field(stub)
    assert result.status == "not implemented"
    assert "not implemented yet (write it above)" in capsys.readouterr().out


@pytest.mark.parametrize("key,bug", PLANTED, ids=[f"{k} {i}" for i, (k, _) in enumerate(PLANTED)])
def test_a_planted_mistake_fires_its_hint_and_no_other(key, bug, capsys):
    result = exercises.check_draw_w_field(bug)
    out = capsys.readouterr().out
    assert result.status == "fail" and "FAIL on case" in out, out
    fired = [k for k, h in sampler.HINTS.items() if h in out]
    assert fired == [key], out


def test_a_function_that_ignores_z_is_told_its_spread_is_wrong(capsys):
    result = exercises.check_draw_w_field(lambda w, e, feat, x, alpha, lam, mu, z: draw_w_field(
        w, e, feat, x, alpha, lam, mu, np.zeros_like(z)))
    out = capsys.readouterr().out
    assert result.status == "fail" and "conditional standard deviation" in out, out


def _notebook():
    nbformat = pytest.importorskip("nbformat")
    return nbformat.read(NOTEBOOK, as_version=4)


def test_the_notebooks_stub_checker_call_and_folded_solution():
    nb = _notebook()
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert re.search(r"def draw_w_field\(.*?\n(.*\n)*?\s+raise NotImplementedError", code)
    assert "exercises.check_draw_w_field(draw_w_field)" in code
    blocks = [b for c in nb.cells if c.cell_type == "markdown" and "<details>" in c.source
              for b in re.findall(r"```python\n(.*?)```", c.source, re.S) if "def draw_w_field(" in b]
    assert len(blocks) == 1
    ns = {"np": np}
    exec(blocks[0], ns)
    assert exercises.check_draw_w_field(ns["draw_w_field"])


def test_the_end_exercise_draw_v_field_solution_matches_the_package():
    """Exercise 3's folded solution: with z = 0 its column is GibbsFM.v_conditional's mean, and its
    e and s updates equal the package's after the same draw."""
    nb = _notebook()
    blocks = [b for c in nb.cells if c.cell_type == "markdown" and "<details>" in c.source
              for b in re.findall(r"```python\n(.*?)```", c.source, re.S) if "def draw_v_field(" in b]
    assert len(blocks) == 1
    ns = {"np": np}
    exec(blocks[0], ns)
    rng = np.random.default_rng(5)
    N, n_b = 60, 5
    feat = rng.integers(0, n_b, N)
    idx = np.stack([feat, n_b + rng.integers(0, 4, N), n_b + 4 + rng.integers(0, 3, N)], axis=1)
    val = np.ones(idx.shape)
    val[:, 0] = rng.uniform(-2, 2, N)                                         # field 1: real values
    s = bayes.GibbsFM(idx, val, rng.standard_normal(N), n_b + 7, k=3, groups=np.repeat([0, 1, 2], [n_b, 4, 3]),
                      seed=2)
    for _ in range(2):
        s.sweep()
    f, b = 1, int(s.block_of[0])
    assert list(s.blocks[b].feat) == list(range(n_b))
    mean, prec = s.v_conditional(f, b)
    lam, mu = float(s.lam_v[0, f]), float(s.mu_v[0, f])
    V0, e0, s0 = s.V[:n_b], s.e.copy(), s.s[f].copy()
    V_mean, _, _ = ns["draw_v_field"](V0, f, e0, s0, feat, val[:, 0], s.alpha, lam, mu, np.zeros(n_b))
    np.testing.assert_allclose(V_mean[:, f], mean, rtol=1e-10)
    z = rng.standard_normal(n_b)
    V1, e1, s1 = ns["draw_v_field"](V0, f, e0, s0, feat, val[:, 0], s.alpha, lam, mu, z)
    np.testing.assert_allclose(V1[:, f], mean + z / np.sqrt(prec), rtol=1e-10)
    s.Vc[f][:n_b] = V1[:, f]
    s.refresh()                                                               # e and s from scratch
    np.testing.assert_allclose(e1, s.e, atol=1e-12)
    np.testing.assert_allclose(s1, s.s[f], atol=1e-12)
