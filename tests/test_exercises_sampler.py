"""Notebook 9's exercise: the Gibbs draw of a one-hot field's weights (``check_draw_w_field``).

A right answer written here from the text passes; so do the notebook's folded solution and the
package's own conditional (``bayes.GibbsFM.w_conditional``); a stub is "not implemented yet"; each
typical mistake fires exactly its own hint, no other; and the end exercise (``draw_v_field``) can be done
and checked as worded."""
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nfm_numpy import bayes, datasets, exercises
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
    """A full wrong version, written independently of the checker's: e.g. ``_mistake(prior_mean=False)``
    forgets lambda mu."""
    def draw(w, e, feat, x, alpha, lam, mu, z):
        h = x if kw.get("h_is_x", True) else np.ones_like(x)
        xx, he = np.zeros(w.shape), np.zeros(w.shape)
        if kw.get("buffered"):
            xx[feat] += h * h                    # keeps one row per feature
            he[feat] += h * e
        else:
            np.add.at(xx, feat, h * h)
            np.add.at(he, feat, h * e)
        if kw.get("counts"):
            xx = np.bincount(feat, minlength=len(w)).astype(float)     # rows per feature, not sum x^2
        var = kw.get("prior_var", "")
        prec = alpha * xx + (1 / lam if var in ("both", "P") else lam)
        prior = (mu / lam if var in ("both", "numerator") else lam * mu) if kw.get("prior_mean", True) else 0
        if kw.get("lam_alpha"):                  # alpha (sum x^2 + lam), and alpha lam mu or lam mu on top
            prec = alpha * (xx + lam)
            prior = alpha * lam * mu if kw["lam_alpha"] == "both" else lam * mu
        old = kw.get("old", True)                # False: e as y - g; "minus": e - w x; "after": ... / P + w
        num = alpha * (he + {True: w * xx, False: 0, "minus": -w * xx, "after": 0}[old])
        mean = num / prec + mu if kw.get("mu_after") else (num + prior) / prec
        if old == "after":
            mean = mean + w
        w_new = mean + {"sd": z / np.sqrt(prec), "var": z / prec, "times": z * np.sqrt(prec),
                        "alpha": z / np.sqrt(alpha * prec)}[kw.get("noise", "sd")]
        change = (w_new - w)[feat]
        return w_new, {"x": e - change * x, "no x": e - change, "x^2": e - change * x ** 2,
                       "sign": e + change * x, "none": e, "new": e - w_new[feat] * x}[kw.get("update", "x")]
    return draw


def _no_minlength(raises=True):
    """The right conditional with np.bincount without minlength: the sums are too short where the last
    feature is in no row; broadcast against w (raises), or with w and z cut to the sums' length (the
    shape message)."""
    def draw(w, e, feat, x, alpha, lam, mu, z):
        xx = np.bincount(feat, weights=x * x)
        xe = np.bincount(feat, weights=x * e)
        if not raises:
            w, z = w[:len(xx)], z[:len(xx)]
        prec = alpha * xx + lam
        w_new = (alpha * (xe + w * xx) + lam * mu) / prec + z / np.sqrt(prec)
        return w_new, e - (w_new - w)[feat] * x
    return draw


def _own_random_draws():
    """The right conditional, but its normals come from a generator of its own instead of ``z``."""
    rng = np.random.default_rng(11)

    def draw(w, e, feat, x, alpha, lam, mu, z):
        return draw_w_field(w, e, feat, x, alpha, lam, mu, rng.standard_normal(len(w)))
    return draw


PLANTED = [
    ("prior mean", _mistake(prior_mean=False)),
    ("prior variance", _mistake(prior_var="both")),            # 1/lambda in P and in the numerator
    ("prior variance", _mistake(prior_var="P")),               # P = alpha sum x^2 + 1/lambda, lambda mu kept
    ("prior variance", _mistake(prior_var="numerator")),       # mu / lambda in the numerator only
    ("prior times alpha", _mistake(lam_alpha="both")),
    ("prior times alpha", _mistake(lam_alpha="P")),
    ("prior mean after the division", _mistake(mu_after=True)),
    ("old value", _mistake(old=False)),
    ("old value subtracted", _mistake(old="minus")),           # alpha (sum x e - w sum x^2)
    ("old value after the division", _mistake(old="after")),   # (alpha sum x e + lam mu) / P + w
    ("minlength", _no_minlength()),                            # raises: (5,) and (4,) broadcast
    ("minlength", _no_minlength(raises=False)),                # w_new of shape (4,)
    ("noise scale", _mistake(noise="var")),
    ("noise scale", _mistake(noise="times")),
    ("noise scale", _mistake(noise="alpha")),
    ("h = 1", _mistake(h_is_x=False)),
    ("repeated rows", _mistake(buffered=True)),
    ("no residual update", _mistake(update="none")),
    ("residual sign", _mistake(update="sign")),
    ("residual without x", _mistake(update="no x")),
    ("residual without x", _mistake(update="x^2")),
    ("counts for sum x^2", _mistake(counts=True)),             # np.bincount(feat) as sum x^2
    ("residual by the new value", _mistake(update="new")),     # e - w_new[feat] x
    ("z not used", _own_random_draws()),                       # np.random instead of z
]


def test_every_hint_is_planted():
    assert {k for k, _ in PLANTED} == set(sampler.HINTS)


def test_two_slips_at_once_get_no_hint_only_the_failing_output(capsys):
    """The hints match one slip at a time (as the notebook says); two together fail without a hint."""
    def two(w, e, feat, x, alpha, lam, mu, z):
        w_new, _ = _mistake(prior_mean=False)(w, e, feat, x, alpha, lam, mu, z)
        return w_new, e
    result = exercises.check_draw_w_field(two)
    out = capsys.readouterr().out
    assert result.status == "fail" and "conditional mean" in out and "hint" not in out, out


def test_no_hint_text_holds_another():
    """A planted mistake fires its own hint and no other, counted by the hint's text in the output."""
    texts = list(sampler.HINTS.values())
    assert not [(a, b) for a in texts for b in texts if a is not b and a in b]


def test_every_case_has_a_feature_in_no_row():
    """The minlength hint needs a feature in no row: every case has one (the last), and the case the hint
    compares with gives every feature a row."""
    for desc, (w, _, feat, *_) in sampler._field_cases():
        assert "in no row" in desc and (len(w) - 1) not in feat
    full = sampler._every_feature_in_a_row(sampler._field_cases()[0][1])
    assert np.array_equal(np.unique(full[2]), np.arange(len(full[0])))


def test_a_function_that_raises_is_reported_as_before(capsys):
    def broken(w, e, feat, x, alpha, lam, mu, z):
        raise KeyError("oops")
    result = exercises.check_draw_w_field(broken)
    out = capsys.readouterr().out
    assert result.status == "fail" and "your function raised KeyError: 'oops'" in out and "hint" not in out, out


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
    s.set_V(np.arange(n_b), f, V1[:, f])                                     # e and s from scratch
    np.testing.assert_allclose(e1, s.e, atol=1e-12)
    np.testing.assert_allclose(s1, s.s[f], atol=1e-12)


def draw_v_field_from_text(V, f, e, s, feat, x, alpha, lam, mu, z):
    """Exercise 3 written from its text: h = x (s_f - x v_f[feat]), the conditional of section 2, then
    e -= dv h and s_f += dv x; sums with np.add.at."""
    v = V[:, f]
    h = x * (s - x * v[feat])
    hh, he = np.zeros(len(v)), np.zeros(len(v))
    np.add.at(hh, feat, h * h)
    np.add.at(he, feat, h * e)
    prec = alpha * hh + lam
    v_new = (alpha * (he + v * hh) + lam * mu) / prec + z / np.sqrt(prec)
    dv = (v_new - v)[feat]
    V_new = V.copy()
    V_new[:, f] = v_new
    return V_new, e - dv * h, s + dv * x


def _markdown_blocks(nb, marker, needle):
    """The ```python blocks (dedented) of the markdown cells holding ``marker`` that contain ``needle``."""
    return [textwrap.dedent(b) for c in nb.cells if c.cell_type == "markdown" and marker in c.source
            for b in re.findall(r"```python\n(.*?)```", c.source, re.S) if needle in b]


def test_the_end_exercise_draw_v_field_as_worded(capsys):
    """Exercise 3 as the notebook words it: its setup lines run on a section-4 style sampler; an answer
    written from the text gives v_conditional's mean with z = 0 and the mean plus 1/sqrt(precision) with
    z = 1, and with z random, after ``sampler.set_V(feats, f, V_new[:, f])``, the sampler's e and s equal
    the answer's; writing into ``sampler.V`` instead changes nothing; the folded solution's comparison
    prints numbers at rounding, and its spread line (z = 1) flags a solution that draws with z / P."""
    nb = _notebook()
    setup = _markdown_blocks(nb, "Write `draw_v_field(", "feats = np.flatnonzero(groups == c)")
    assert len(setup) == 1
    syn, teacher = datasets.synthetic(n_train=3_000, seed=0, return_teacher=True)
    tr, fields = syn.train, teacher["fields"]
    groups = np.repeat(np.arange(len(fields)), fields)
    sampler = bayes.GibbsFM(tr.idx, tr.val, tr.y, tr.n_features, k=8, groups=groups, seed=0)
    for _ in range(3):
        sampler.sweep()
    ns = {"np": np, "sampler": sampler, "tr": tr, "groups": groups}
    exec(setup[0], ns)
    feats, f, b = ns["feats"], ns["f"], ns["b"]
    assert list(sampler.blocks[b].feat) == list(feats)
    args = [ns[a] for a in ("V_b", "f", "e", "s_f", "feat", "x")] + [sampler.alpha, ns["lam"], ns["mu"]]
    V0 = sampler.V
    mean, prec = sampler.v_conditional(f, b)                                  # (mean, precision), as the text says
    V_mean, _, _ = draw_v_field_from_text(*args, np.zeros(len(feats)))
    np.testing.assert_allclose(V_mean[:, f], mean, rtol=1e-10)
    V_one, _, _ = draw_v_field_from_text(*args, np.ones(len(feats)))
    np.testing.assert_allclose(V_one[:, f] - mean, 1 / np.sqrt(prec), rtol=1e-9)
    z = np.random.default_rng(1).standard_normal(len(feats))
    V_new, e_new, s_new = draw_v_field_from_text(*args, z)
    sampler.V[feats, f] = V_new[:, f]                                         # the trap: a copy
    np.testing.assert_array_equal(sampler.V, V0)
    sampler.set_V(feats, f, V_new[:, f])
    np.testing.assert_allclose(e_new, sampler.e, atol=1e-12)
    np.testing.assert_allclose(s_new, sampler.s[f], atol=1e-12)
    assert np.max(np.abs(e_new - ns["e"])) > 1e-3                             # the draw did move e

    solution = _markdown_blocks(nb, "<summary><b>Solutions</b>", "def draw_v_field(")
    comparison = _markdown_blocks(nb, "<summary><b>Solutions</b>", "sampler.set_V(feats, f, V_new[:, f])")
    assert len(solution) == 1 and len(comparison) == 1
    def compare(solution_code):
        exec(setup[0], ns)                                                    # from the current state
        exec(solution_code, ns)
        capsys.readouterr()
        exec(comparison[0], ns)
        return [float(v) for v in capsys.readouterr().out.split()]

    printed = compare(solution[0])                                            # mean, spread, e, s
    assert len(printed) == 4 and max(printed) < 1e-10, printed
    # the z = 0 line checks the mean only; the z = 1 line catches a spread z / P
    assert solution[0].count("z / np.sqrt(prec)") == 1
    printed = compare(solution[0].replace("z / np.sqrt(prec)", "z / prec"))
    assert len(printed) == 4 and printed[0] < 1e-10 and printed[1] > 1e-3, printed
