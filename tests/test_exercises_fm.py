"""Notebooks 1 and 2: every exercise works as its text says, and every hint of their checkers is planted.

* each checker passes a right answer (written here, independently) with no hint, and the path the stub's
  text describes, restated here as a learner would write it;
* the folded solutions and the end-of-notebook exercises' code are **extracted from the notebook JSON**
  (the ```python blocks of the markdown cells) and run, so the tests follow the notebooks' text;
* each mistake a hint names is planted (written here, not taken from the checker) and exactly its hint
  fires; and on every case where a planted mistake goes wrong, exactly one hint's test is true.
"""
import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nfm_numpy import exercises, gradcheck, layers
from nfm_numpy.exercises import fm as fm_checkers
from nfm_numpy.exercises.harness import _safe

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def code_blocks(notebook):
    """The ```python blocks of a notebook's markdown cells, in order."""
    cells = json.loads((NOTEBOOKS / notebook).read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", text, flags=re.S)]


def block_defining(notebook, marker):
    found = [b for b in code_blocks(notebook) if marker in b]
    assert len(found) == 1, f"{notebook}: expected one code block with {marker!r}, found {len(found)}"
    return found[0]


def run_block(code, **names):
    scope = {"np": np, "layers": layers, "gradcheck": gradcheck, **names}
    exec(code, scope)
    return scope


# ------------------------------------------------------------------ right answers and the stubs' paths
def fm_pairwise_right(idx, val, V):
    # the stub: "gather the rows V[idx], scale them by val, then 1/2 sum_c (s_c^2 - q_c)"
    E = V[idx] * val[:, :, None]
    s, q = E.sum(axis=1), (E ** 2).sum(axis=1)
    return 0.5 * (s ** 2 - q).sum(axis=1)


def bi_backward_right(df, E):
    # the stub: "recompute s from E, then df * (s - e_i) for every entry"
    s = E.sum(axis=1, keepdims=True)
    return df[:, None, :] * (s - E)


def scatter_right(idx, G, n):
    # the stub: "start from zeros (n, k) and add every entry's row; ids repeat"
    dV = np.zeros((n, G.shape[-1]))
    for (b, f), i in np.ndenumerate(idx):
        dV[i] += G[b, f]
    return dV


RIGHT = [("check_fm_pairwise", fm_pairwise_right), ("check_bi_interaction_backward", bi_backward_right),
         ("check_scatter_rows", scatter_right)]


@pytest.mark.parametrize("checker,fn", RIGHT, ids=[c for c, _ in RIGHT])
def test_a_right_answer_passes_with_no_hint(checker, fn, capsys):
    result = getattr(exercises, checker)(fn)
    out = capsys.readouterr().out
    assert result.status == "pass" and "PASS" in out and "hint" not in out


SOLUTIONS = [("01_factorization_machines.ipynb", "def fm_pairwise", "check_fm_pairwise", "fm_pairwise"),
             ("02_bi_interaction.ipynb", "def bi_interaction_backward", "check_bi_interaction_backward",
              "bi_interaction_backward"),
             ("02_bi_interaction.ipynb", "def scatter_rows", "check_scatter_rows", "scatter_rows")]


@pytest.mark.parametrize("notebook,marker,checker,name", SOLUTIONS, ids=[s[3] for s in SOLUTIONS])
def test_the_folded_solution_passes(notebook, marker, checker, name, capsys):
    scope = run_block(block_defining(notebook, marker))
    assert getattr(exercises, checker)(scope[name]).status == "pass"
    assert "hint" not in capsys.readouterr().out


@pytest.mark.parametrize("notebook,name", [("01_factorization_machines.ipynb", "fm_pairwise"),
                                           ("02_bi_interaction.ipynb", "bi_interaction_backward"),
                                           ("02_bi_interaction.ipynb", "scatter_rows")])
def test_the_stub_is_not_implemented_yet_and_says_so(notebook, name, capsys):
    cells = json.loads((NOTEBOOKS / notebook).read_text())["cells"]
    stub = next("".join(c["source"]) for c in cells
                if c["cell_type"] == "code" and f"def {name}(" in "".join(c["source"]))
    assert f"exercises.{exercises.EXERCISES[name].__name__}({name})" in stub     # full module name, no alias
    scope = {"np": np, "exercises": exercises}
    exec(stub, scope)
    assert scope[name] is not None and "not implemented yet" in capsys.readouterr().out


# ------------------------------------------------------------------ planted mistakes
def _s_q(idx, val, V):
    E = val[:, :, None] * V[idx]
    return E.sum(1), (E * E).sum(1)


def kept_diagonal(idx, val, V):
    s, _ = _s_q(idx, val, V)
    return 0.5 * (s * s).sum(1)


def no_half(idx, val, V):
    s, q = _s_q(idx, val, V)
    return (s * s - q).sum(1)


def no_values(idx, val, V):
    E = V[idx]
    return 0.5 * (E.sum(1) ** 2 - (E * E).sum(1)).sum(1)


def q_without_values(idx, val, V):
    s, _ = _s_q(idx, val, V)
    return 0.5 * (s * s - (V[idx] ** 2).sum(1)).sum(1)


def q_with_x_not_squared(idx, val, V):
    s, _ = _s_q(idx, val, V)
    return 0.5 * (s * s - (val[:, :, None] * V[idx] ** 2).sum(1)).sum(1)


def id_zero_as_padding(idx, val, V):
    return fm_pairwise_right(idx, val * (idx != 0), V)


def merged_repeats(idx, val, V):
    out = []
    for r_idx, r_val in zip(idx, val):
        x = {}
        for i, v in zip(r_idx, r_val):
            x[i] = x.get(i, 0.0) + v                                  # one entry per distinct id
        ids = list(x)
        out.append(sum(x[a] * x[b] * V[a] @ V[b] for p, a in enumerate(ids) for b in ids[p + 1:]))
    return np.array(out)


def dense_one_hot_assigned(idx, val, V):
    B = idx.shape[0]
    X = np.zeros((B, V.shape[0]))
    for r in range(B):
        X[r, idx[r]] = val[r]                                         # a repeated id: the last write wins
    s = X @ V
    return 0.5 * (np.einsum("bc,bc->b", s, s) - (X ** 2) @ (V ** 2).sum(1))   # rounds unlike the checker's


def sums_over_coordinates(idx, val, V):
    E = val[:, :, None] * V[idx]
    s, q = E.sum(2), (E * E).sum(2)                                   # (B, F): each entry's k coordinates
    return 0.5 * (s * s - q).sum(1)


def squares_after_summing(idx, val, V):
    s, q = _s_q(idx, val, V)
    return 0.5 * (s.sum(1) ** 2 - q.sum(1))                           # (sum_c s_c)^2, not sum_c s_c^2


def fm_pairwise_float32(idx, val, V):
    E = val.astype(np.float32)[:, :, None] * V.astype(np.float32)[idx]    # right, but in float32
    s, q = E.sum(1), (E * E).sum(1)
    return 0.5 * (s * s - q).sum(1)


def bi_forgot_e(df, E):
    return df[:, None, :] * E.sum(1)[:, None, :]                      # (B, 1, k): the notebook's slip


def bi_forgot_e_broadcast(df, E):
    return np.broadcast_to(bi_forgot_e(df, E), E.shape)


def bi_twice(df, E):
    return 2 * bi_backward_right(df, E)


def bi_no_df(df, E):
    return E.sum(1)[:, None, :] - E


def bi_sign(df, E):
    return df[:, None, :] * (E - E.sum(1)[:, None, :])


def bi_two_e(df, E):
    return df[:, None, :] * (E.sum(1)[:, None, :] - 2 * E)


def bi_float32(df, E):
    return bi_backward_right(df.astype(np.float32), E.astype(np.float32))   # right, but in float32


def bi_wrong_axis(df, E):
    return df[:, None, :] * (E.sum(2)[:, :, None] - E)              # s summed over k, not over the entries


def test_a_broadcasting_slip_in_bi_interaction_backward_gets_the_axis_hint(capsys):
    """``df * (E.sum(1) - E)``: (B, k) against (B, F, k) raises; the message names the shapes and the fix."""
    result = fm_checkers.check_bi_interaction_backward(lambda df, E: df * (E.sum(1) - E))
    capsys.readouterr()
    assert result.status == "fail" and "could not be broadcast" in result.message
    assert "hint: df and the row sums s = E.sum(1) are (B, k) = (3, 5), E is (B, F, k) = (3, 4, 5): give a (B, k) " \
           "array a middle axis, [:, None, :]" in result.message


def val_without_last_axis(idx, val, V):
    E = V[idx] * val                                                  # (B, F, k) * (B, F): raises
    return 0.5 * (E.sum(1) ** 2 - (E * E).sum(1)).sum(1)


def s_over_coordinates(idx, val, V):
    E = val[:, :, None] * V[idx]
    s, q = E.sum(2), (E * E).sum(1)                                   # (B, F) against (B, k): raises
    return 0.5 * (s * s - q).sum(1)


def q_over_coordinates(idx, val, V):
    E = val[:, :, None] * V[idx]
    s, q = E.sum(1), (E * E).sum(2)                                   # (B, k) against (B, F): raises
    return 0.5 * (s * s - q).sum(1)


@pytest.mark.parametrize("mistake,hint", [
    (val_without_last_axis, "hint: V[idx] is (B, F, k) = (3, 4, 3), val is (B, F) = (3, 4): give val a last "
                            "axis, val[:, :, None]"),
    (s_over_coordinates, f"hint: {fm_checkers.FM_AXIS_HINT} (here a (B, F) = (3, 4) array met a (B, k) = (3, 3) "
                         "one)"),
    (q_over_coordinates, f"hint: {fm_checkers.FM_AXIS_HINT} (here a (B, F) = (3, 4) array met a (B, k) = (3, 3) "
                         "one)"),
], ids=["val_without_last_axis", "s_over_coordinates", "q_over_coordinates"])
def test_a_broadcasting_slip_in_fm_pairwise_gets_its_hint(mistake, hint, capsys):
    """Slips that make NumPy raise: the error names the shapes, and the hint appended says which slip they tell
    (one hint, no other of the checker's)."""
    result = fm_checkers.check_fm_pairwise(mistake)
    capsys.readouterr()
    assert result.status == "fail" and "could not be broadcast" in result.message, result.message
    assert hint in result.message and result.message.count("hint:") == 1, result.message


def test_another_error_in_fm_pairwise_gets_no_hint(capsys):
    """A broadcasting error whose shapes tell no known slip is reported as it is, without a hint."""
    result = fm_checkers.check_fm_pairwise(lambda idx, val, V: val[:, None] * V[idx])     # (3, 1, 4) * (3, 4, 3)
    capsys.readouterr()
    assert result.status == "fail" and "could not be broadcast" in result.message and "hint" not in result.message


def scatter_fancy(idx, G, n):
    dV = np.zeros((n, G.shape[2]))
    dV[idx.ravel()] += G.reshape(idx.size, -1)
    return dV


def scatter_assign(idx, G, n):
    dV = np.zeros((n, G.shape[2]))
    dV[idx] = G
    return dV


def scatter_row_loop(idx, G, n):
    dV = np.zeros((n, G.shape[2]))
    for r in range(idx.shape[0]):
        dV[idx[r]] += G[r]
    return dV


def scatter_skipping_id_zero(idx, G, n):
    dV = np.zeros((n, G.shape[2]))
    real = idx != 0                                                   # id 0 taken for padding
    np.add.at(dV, idx[real], G[real])
    return dV


PLANTED = [  # (checker, mistake, a phrase of its hint, the hint's place in the checker's list)
    ("check_fm_pairwise", kept_diagonal, "you kept the diagonal", 0),
    ("check_fm_pairwise", no_half, "every pair counted twice", 1),
    ("check_fm_pairwise", no_values, "the values x_i are missing", 2),
    ("check_fm_pairwise", q_without_values, "s is right but q is not", 3),
    ("check_fm_pairwise", q_with_x_not_squared, "q has x_i where it needs x_i^2", 4),
    ("check_fm_pairwise", id_zero_as_padding, "not when its id is 0", 5),
    ("check_fm_pairwise", merged_repeats, "an id repeated in a row is two entries", 6),
    ("check_fm_pairwise", dense_one_hot_assigned, "repeated ids overwrite in fancy assignment", 7),
    ("check_fm_pairwise", sums_over_coordinates, "s and q sum over a row's entries, axis 1", 8),
    ("check_fm_pairwise", squares_after_summing, "square each coordinate s_c, then sum over c", 9),
    ("check_fm_pairwise", fm_pairwise_float32, "right to float32 precision only", 10),
    ("check_bi_interaction_backward", bi_forgot_e, "forgot the - e_i", 0),
    ("check_bi_interaction_backward", bi_forgot_e_broadcast, "forgot the - e_i", 0),
    ("check_bi_interaction_backward", bi_twice, "a factor 2 too many", 1),
    ("check_bi_interaction_backward", bi_no_df, "multiply it by the upstream gradient", 2),
    ("check_bi_interaction_backward", bi_sign, "the sign", 3),
    ("check_bi_interaction_backward", bi_two_e, "not - 2 e_i", 4),
    ("check_bi_interaction_backward", bi_wrong_axis, "s sums over a row's entries, axis 1", 5),
    ("check_bi_interaction_backward", bi_float32, "right to float32 precision only", 6),
    ("check_scatter_rows", scatter_fancy, "keeps only one occurrence of each id", 0),
    ("check_scatter_rows", scatter_assign, "keeps only one occurrence of each id", 0),
    ("check_scatter_rows", scatter_row_loop, "ids repeated within a row", 1),
    ("check_scatter_rows", scatter_skipping_id_zero, "id 0 is a real feature, not padding", 2),
]
HINTS = {"check_fm_pairwise": fm_checkers.FM_PAIRWISE_HINTS,
         "check_bi_interaction_backward": fm_checkers.BI_BACKWARD_HINTS,
         "check_scatter_rows": fm_checkers.SCATTER_HINTS}


def test_every_hint_is_planted():
    for checker, hints in HINTS.items():
        assert sorted({at for c, _, _, at in PLANTED if c == checker}) == list(range(len(hints))), checker


@pytest.mark.parametrize("checker,mistake,phrase,at", PLANTED, ids=[m.__name__ for _, m, _, _ in PLANTED])
def test_a_planted_mistake_gets_its_hint_and_no_other(checker, mistake, phrase, at, capsys):
    result = getattr(exercises, checker)(mistake)
    out = capsys.readouterr().out
    assert result.status == "fail", out
    hint = HINTS[checker][at][1]
    assert phrase in hint and f"hint: {hint}" in out, out
    others = [h for i, (_, h) in enumerate(HINTS[checker]) if i != at]
    assert not any(h in out for h in others), out


@pytest.mark.parametrize("checker,mistake,phrase,at", PLANTED, ids=[m.__name__ for _, m, _, _ in PLANTED])
def test_only_its_hint_matches_wherever_the_mistake_shows(checker, mistake, phrase, at, monkeypatch):
    """Every case of the checker on which the mistake gives a wrong answer: exactly one hint's test holds,
    its own (so the order of the hints does not decide which one a learner sees), unless on that case the
    mistake computes exactly what another planted mistake does (then exactly one hint holds)."""
    seen = {}
    monkeypatch.setattr(fm_checkers, "_run", lambda name, fn, cases, reference, compare, hints, **_:
                        seen.update(cases=cases, reference=reference, compare=compare, hints=hints))
    getattr(fm_checkers, checker)(mistake)
    wrong = own = 0
    for _, args in seen["cases"]:
        got, want = mistake(*[np.copy(a) for a in args]), seen["reference"](*args)
        if not seen["compare"](got, want):
            continue
        if not np.any(want):    # no pair in any row (F = 1): a dense x leaves rounding of 0 there, which is
            continue            # close to every mistake's 0 (the earlier cases fail first, and tell the mistake)
        wrong += 1
        fired = [i for i, (test, _) in enumerate(seen["hints"]) if _safe(test, got, want, args)]
        twins = [m for c, m, _, i in PLANTED if c == checker and i != at
                 and fm_checkers._close(got, m(*[np.copy(a) for a in args]))]
        if twins:       # e.g. one row: the per-row loop and the whole-batch += are the same mistake there
            assert len(fired) == 1, (fired, [m.__name__ for m in twins])
            continue
        own += 1
        assert fired == [at], (fired, at)
    assert wrong > 0 and own > 0


# ------------------------------------------------------------------ the end-of-notebook exercises, as written
def test_nb1_exercise_forgot_diagonal_runs_as_written_and_fails_the_check(capsys):
    """Exercise 3 of notebook 1: the wrong backward pass of the text, run through check_layer, fails by many
    orders of magnitude where the right one passes."""
    scope = run_block(block_defining("01_factorization_machines.ipynb", "def forgot_diagonal"))
    out = capsys.readouterr().out
    E = scope["E"]
    wrong = gradcheck.check_layer(layers.bi_interaction_forward, scope["forgot_diagonal"], {"E": E}, ["E"])
    right = gradcheck.check_layer(layers.bi_interaction_forward, layers.bi_interaction_backward, {"E": E}, ["E"])
    assert not wrong.ok and wrong.max_error > 0.1 and right.max_error < 1e-9
    assert f"{wrong.max_error:.3e}" in out                               # what the solution prints


def test_nb2_exercise_repeated_id_runs_as_written_and_shows_the_pair():
    """Exercise 2 of notebook 2: with the dense X and X2 of the text, X2 holds a^2 + b^2 where X * X holds
    (a + b)^2, and f_BI built from X * X loses exactly the pair a b v_3 * v_3 of the two entries of id 3."""
    scope = run_block(block_defining("02_bi_interaction.ipynb", "sparse_input(np.array"))
    a, b, Vu = scope["a"], scope["b"], scope["Vu"]
    X, X2 = scope["X"], scope["X2"]
    np.testing.assert_allclose(X2[0], [a * a + b * b, 1.0])
    np.testing.assert_allclose((X * X)[0], [(a + b) ** 2, 1.0])
    np.testing.assert_allclose(scope["f_right"] - scope["f_wrong"], (a * b * Vu[0] * Vu[0])[None, :], atol=1e-12)
    # and f_right is the textbook answer: the three entries' pairs, by the double loop
    e = np.array([a * Vu[0], b * Vu[0], Vu[1]])
    np.testing.assert_allclose(scope["f_right"][0], e[0] * e[1] + e[0] * e[2] + e[1] * e[2], atol=1e-12)
