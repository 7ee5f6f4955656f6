"""Notebook 9's exercise: the Gibbs draw of a one-hot field's weights (``check_draw_w_field``).

A right answer written here from the text passes; so do the notebook's folded solution and the
package's own conditional (``bayes.GibbsFM.w_conditional``); a stub is "not implemented yet"; each
typical mistake fires exactly its own hint, no other; and the end exercise (``draw_v_field``) can be done
and checked as worded, by hand and with ``check_draw_v_field``, whose hints are planted the same way."""
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
            np.add.at(he, feat, e if kw.get("xe_without_x") else h * e)     # weights=e: h = 1 in this sum only
        if kw.get("counts"):
            xx = np.bincount(feat, minlength=len(w)).astype(float)     # rows per feature, not sum x^2
        var = kw.get("prior_var", "")
        prec = alpha * xx + (1 / lam if var in ("both", "P") else lam)
        prior = (mu / lam if var in ("both", "numerator") else lam * mu) if kw.get("prior_mean", True) else 0
        if kw.get("plain_mu"):
            prior = mu                           # + mu where + lam mu goes
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


def _w_in_place(w, e, feat, x, alpha, lam, mu, z):
    """The right conditional, but the new weights are written into w (w_old = w is the same array), so the
    change w - w_old that moves the residuals is zero."""
    xx, xe = np.zeros(w.shape), np.zeros(w.shape)
    np.add.at(xx, feat, x * x)
    np.add.at(xe, feat, x * e)
    prec = alpha * xx + lam
    w_old = w
    w[:] = (alpha * (xe + w * xx) + lam * mu) / prec + z / np.sqrt(prec)
    return w, e - (w - w_old)[feat] * x


PLANTED = [
    ("prior mean", _mistake(prior_mean=False)),
    ("prior variance", _mistake(prior_var="both")),            # 1/lambda in P and in the numerator
    ("prior variance", _mistake(prior_var="P")),               # P = alpha sum x^2 + 1/lambda, lambda mu kept
    ("prior variance", _mistake(prior_var="numerator")),       # mu / lambda in the numerator only
    ("prior times alpha", _mistake(lam_alpha="both")),
    ("prior times alpha", _mistake(lam_alpha="P")),
    ("prior mean after the division", _mistake(mu_after=True)),
    ("prior mean without lambda", _mistake(plain_mu=True)),    # (alpha (...) + mu) / P
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
    ("h = 1 in the x e sum", _mistake(xe_without_x=True)),     # np.bincount(feat, weights=e)
    ("residual by the new value", _mistake(update="new")),     # e - w_new[feat] x
    ("z not used", _own_random_draws()),                       # np.random instead of z
    ("w in place", _w_in_place),                               # w_old = w; w[:] = ...: the change reads zero
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


def _short_chain():
    """A section-4 style sampler on the synthetic data (one prior group per field) after three sweeps:
    (sampler, training Dataset, groups)."""
    syn, teacher = datasets.synthetic(n_train=3_000, seed=0, return_teacher=True)
    tr, fields = syn.train, teacher["fields"]
    groups = np.repeat(np.arange(len(fields)), fields)
    s = bayes.GibbsFM(tr.idx, tr.val, tr.y, tr.n_features, k=8, groups=groups, seed=0)
    for _ in range(3):
        s.sweep()
    return s, tr, groups


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
    sampler, tr, groups = _short_chain()                 # its own: the by-hand lines change one column
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
    # the by-hand lines sit in the exercise's own fold, before the solutions
    comparison = _markdown_blocks(nb, "Or check it by hand", "sampler.set_V(feats, f, V_new[:, f])")
    assert not _markdown_blocks(nb, "<summary><b>Solutions</b>", "sampler.set_V(feats, f, V_new[:, f])")
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


# ---------------------------------------------------------------- check_draw_v_field (exercise 3's checker)
def _v_mistake(**kw):
    """A full wrong version of draw_v_field, written independently of the checker's (sums with np.add.at)."""
    def draw(V, f, e, s, feat, x, alpha, lam, mu, z):
        v = V[:, f].copy()
        q = s - x * v[feat] if kw.get("strip", True) else s      # "strip": False keeps x v in s
        h = q if kw.get("h_no_x") else x * q
        hh, he = np.zeros(len(v)), np.zeros(len(v))
        np.add.at(hh, feat, h * h)
        np.add.at(he, feat, h * e)
        prec = alpha * hh + lam
        mean = (alpha * (he + v * hh) + lam * mu) / prec
        v_new = mean + (z / prec if kw.get("noise") == "var" else z / np.sqrt(prec))
        dv = (v_new - v)[feat]
        s_new = s + dv if kw.get("s_no_x") else s + dv * x
        e_new = {"h": e - dv * h, "x": e - dv * x, "sign": e + dv * h, "q": e - dv * q,
                 "updated s": e - dv * x * (s_new - x * v[feat])}[kw.get("e", "h")]
        V_new = V.copy()
        V_new[:, f] = v_new
        return V_new, e_new, s_new
    return draw


def _v_view_in_place(V, f, e, s, feat, x, alpha, lam, mu, z):
    """V written in place: v = V[:, f] is a view, so after V[:, f] = v_new the change v_new - v reads zero."""
    v = V[:, f]
    h = x * (s - x * v[feat])
    hh, he = np.zeros(len(v)), np.zeros(len(v))
    np.add.at(hh, feat, h * h)
    np.add.at(he, feat, h * e)
    prec = alpha * hh + lam
    V[:, f] = (alpha * (he + v * hh) + lam * mu) / prec + z / np.sqrt(prec)
    dv = (V[:, f] - v)[feat]
    return V, e - dv * h, s + dv * x


def _v_all_in_place(V, f, e, s, feat, x, alpha, lam, mu, z):
    """The right outputs, but e, s and V are the inputs, updated in place (e -= ..., s += ...)."""
    V_new, e_new, s_new = draw_v_field_from_text(V, f, e, s, feat, x, alpha, lam, mu, z)
    V[:], e[:], s[:] = V_new, e_new, s_new
    return V, e, s


V_PLANTED = [
    ("spread", _v_mistake(noise="var"), 1),                    # z / P
    ("s not stripped", _v_mistake(strip=False), 1),            # h = x s: a wrong mean
    ("e by dv x", _v_mistake(e="x"), 1),                       # e - dv x, w_i's update
    ("e sign", _v_mistake(e="sign"), 1),                       # e + dv h
    ("h from the updated s", _v_mistake(e="updated s"), 1),    # h = x (s_new - x v_old)
    ("s without x", _v_mistake(s_no_x=True), 2),               # s + dv: the real-x case only
    ("h without x", _v_mistake(h_no_x=True), 2),               # h = q: the real-x case only
    ("e by dv q", _v_mistake(e="q"), 2),                       # e - dv q: the real-x case only
    ("inputs changed", _v_view_in_place, 1),                   # V in place: dv reads zero, e_new wrong
    ("inputs changed", _v_all_in_place, 1),                    # right outputs, inputs changed
]


@pytest.fixture(scope="module")
def section4_sampler():
    """A section-4 style sampler, shared by the tests that only read it."""
    return _short_chain()


def _state(s):
    return [s.e.copy(), s.V.copy(), [a.copy() for a in s.s], s.alpha, s.lam_v.copy(), s.mu_v.copy()]


def _same_state(a, b):
    return (np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and all(map(np.array_equal, a[2], b[2]))
            and a[3] == b[3] and np.array_equal(a[4], b[4]) and np.array_equal(a[5], b[5]))


def test_draw_v_field_checker_is_exported_but_not_in_exercises():
    """It takes a sampler, and the notebook (stored with a full run) has no stub cell for it: the text gives
    the line to copy. So it is exported, not in EXERCISES (whose every entry needs a stub in a code cell)."""
    assert "check_draw_v_field" in exercises.__all__
    assert exercises.check_draw_v_field is sampler.check_draw_v_field
    assert "draw_v_field" not in exercises.EXERCISES
    assert sampler.check_draw_v_field not in exercises.EXERCISES.values()


def test_draw_v_field_a_right_answer_passes_and_the_sampler_is_unchanged(section4_sampler, capsys):
    s, _, _ = section4_sampler
    before = _state(s)
    result = exercises.check_draw_v_field(draw_v_field_from_text, s, c=2, f=5)
    out = capsys.readouterr().out
    assert result and out.startswith("draw_v_field: PASS (2 cases") and "hint" not in out, out
    assert _same_state(before, _state(s))


def test_draw_v_field_the_notebooks_line_and_solution_pass(section4_sampler, capsys):
    """The line the exercise gives to copy, run with the folded solution, prints PASS."""
    nb = _notebook()
    line = _markdown_blocks(nb, "Write `draw_v_field(", "exercises.check_draw_v_field(")
    assert len(line) == 1 and "exercises.check_draw_v_field(draw_v_field, sampler" in line[0]
    solution = _markdown_blocks(nb, "<summary><b>Solutions</b>", "def draw_v_field(")
    assert len(solution) == 1
    s, _, _ = section4_sampler
    ns = {"np": np, "exercises": exercises, "sampler": s}
    exec(solution[0], ns)
    capsys.readouterr()
    exec(line[0], ns)
    out = capsys.readouterr().out
    assert out.startswith("draw_v_field: PASS (2 cases"), out


def test_draw_v_field_every_hint_is_planted():
    assert {k for k, _, _ in V_PLANTED} == set(sampler.V_HINTS)


def test_draw_v_field_no_hint_text_holds_another():
    texts = list(sampler.V_HINTS.values())
    assert not [(a, b) for a in texts for b in texts if a is not b and a in b]


@pytest.mark.parametrize("key,bug,case", V_PLANTED, ids=[f"{k} {i}" for i, (k, _, _) in enumerate(V_PLANTED)])
def test_draw_v_field_a_planted_mistake_fires_its_hint_and_no_other(section4_sampler, key, bug, case, capsys):
    s, _, _ = section4_sampler
    before = _state(s)
    result = exercises.check_draw_v_field(bug, s, c=2, f=5)
    out = capsys.readouterr().out
    assert result.status == "fail" and f"FAIL on case {case}" in out, out
    fired = [k for k, h in sampler.V_HINTS.items() if h in out]
    assert fired == [key], out
    assert _same_state(before, _state(s))


def test_draw_v_field_a_function_changing_its_inputs_is_told_even_when_its_outputs_are_right(section4_sampler,
                                                                                              capsys):
    s, _, _ = section4_sampler
    exercises.check_draw_v_field(_v_all_in_place, s, c=2, f=5)
    assert "V after your call (your input: it should come back unchanged)" in capsys.readouterr().out


def test_draw_v_field_stub_raise_and_wrong_outputs(section4_sampler, capsys):
    s, _, _ = section4_sampler

    def stub(*args):
        raise NotImplementedError("write it")
    assert exercises.check_draw_v_field(stub, s).status == "not implemented"
    assert "not implemented yet (write it)" in capsys.readouterr().out

    def broken(*args):
        raise KeyError("oops")
    result = exercises.check_draw_v_field(broken, s)
    out = capsys.readouterr().out
    assert result.status == "fail" and "your function raised KeyError: 'oops'" in out and "hint" not in out, out

    result = exercises.check_draw_v_field(lambda *a: draw_v_field_from_text(*a)[:2], s)
    out = capsys.readouterr().out
    assert result.status == "fail" and "must return three outputs, (V_new, e_new, s_new)" in out, out

    def column_only(*a):
        V_new, e_new, s_new = draw_v_field_from_text(*a)
        return V_new[:, a[1]], e_new, s_new
    result = exercises.check_draw_v_field(column_only, s)
    out = capsys.readouterr().out
    assert result.status == "fail" and "V_new has shape (7,), expected (7, 8)" in out, out


def test_draw_v_field_two_slips_at_once_get_no_hint(section4_sampler, capsys):
    s, _, _ = section4_sampler

    def two(*a):
        V_new, _, s_new = _v_mistake(noise="var")(*a)
        return V_new, a[2] + 1.0, s_new
    result = exercises.check_draw_v_field(two, s)
    out = capsys.readouterr().out
    assert result.status == "fail" and "conditional standard deviation" in out and "hint" not in out, out


def test_draw_v_field_rejects_a_column_of_several_blocks_and_a_bad_factor(section4_sampler):
    s, _, _ = section4_sampler
    with pytest.raises(ValueError, match="f must be a factor"):
        exercises.check_draw_v_field(draw_v_field_from_text, s, c=2, f=8)
    idx = np.array([[0, 3, 4], [1, 4, 5], [2, 5, 6], [0, 3, 6]])              # section 2's toy: field B split
    toy = bayes.GibbsFM(idx, np.ones(idx.shape), np.arange(4.0), 7, k=2, groups=np.array([0, 0, 0, 1, 1, 1, 1]))
    with pytest.raises(ValueError, match="more than one block"):
        exercises.check_draw_v_field(draw_v_field_from_text, toy, c=1, f=0)


def test_the_solutions_mean_is_the_packages_w_conditional(capsys):
    """The lines in section 3's fold: the folded draw_w_field with z = 0 gives w_conditional's mean for field 1
    of a section-3 style sampler (the printed difference is at rounding)."""
    nb = _notebook()
    lines = _markdown_blocks(nb, "<summary><b>Solution</b>", "sampler.w_conditional(b)")
    solution = _markdown_blocks(nb, "<summary><b>Solution</b>", "def draw_w_field(")
    assert len(lines) == 1 and len(solution) == 1
    s, tr, groups = _short_chain()
    ns = {"np": np, "sampler": s, "tr": tr, "groups": groups}
    exec(solution[0], ns)
    capsys.readouterr()
    exec(lines[0], ns)
    printed = [float(v) for v in capsys.readouterr().out.split()]
    assert len(printed) == 1 and printed[0] < 1e-12, printed
    assert list(s.blocks[ns["b"]].feat) == list(ns["feats"])                # field 1 is one block, in order
