"""The update-rule checkers (``nfm_numpy.exercises.optimizers``): a right answer passes, a stub is
"not implemented yet", each typical mistake gets its own hint and no other, and the exercises of
notebooks 1 and 6 pass when done as their text says (stubs, checker calls, folded solutions)."""
import re
from pathlib import Path

import numpy as np
import pytest

from nfm_numpy import exercises
from nfm_numpy.exercises import optimizers

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CHECKERS = {"adagrad_rows": exercises.check_adagrad_rows, "sgd_rows": exercises.check_sgd_rows,
            "momentum_rows": exercises.check_momentum_rows, "adam_rows": exercises.check_adam_rows}


# ------------------------------------------------------------------ right answers, written from the formulas
def adagrad_rows(V, acc, rows, g, lr):
    V, acc = V.copy(), acc.copy()
    for j, u in enumerate(rows):                        # one row at a time: independent of the package's form
        acc[u] = acc[u] + g[j] ** 2
        V[u] = V[u] - lr * g[j] / np.sqrt(acc[u])
    return V, acc


def sgd_rows(V, rows, g, lr):
    V = V.copy()
    for j, u in enumerate(rows):
        V[u] = V[u] - lr * g[j]
    return V


def momentum_rows(V, u, rows, g, lr, mu):
    V, u = V.copy(), u.copy()
    for j, i in enumerate(rows):
        u[i] = mu * u[i] + g[j]
        V[i] = V[i] - lr * u[i]
    return V, u


def adam_rows(V, m, r, rows, g, lr, t, beta1, beta2, eps):
    V, m, r = V.copy(), m.copy(), r.copy()
    lr_t = lr * (1 - beta2 ** t) ** 0.5 / (1 - beta1 ** t)
    for j, i in enumerate(rows):
        m[i] = beta1 * m[i] + (1 - beta1) * g[j]
        r[i] = beta2 * r[i] + (1 - beta2) * g[j] ** 2
        V[i] = V[i] - lr_t * m[i] / (r[i] ** 0.5 + eps)
    return V, m, r


RIGHT = {"adagrad_rows": adagrad_rows, "sgd_rows": sgd_rows, "momentum_rows": momentum_rows, "adam_rows": adam_rows}


# ------------------------------------------------------------------ typical mistakes
def _ada_divide_first(V, acc, rows, g, lr):
    V, acc = V.copy(), acc.copy()
    V[rows] -= lr * g / np.sqrt(acc[rows])
    acc[rows] += g * g
    return V, acc


def _ada_sign(V, acc, rows, g, lr):
    V, acc = V.copy(), acc.copy()
    acc[rows] += g * g
    V[rows] += lr * g / np.sqrt(acc[rows])            # along the gradient
    return V, acc


def _ada_dense(V, acc, rows, g, lr):
    dense = np.zeros_like(V)
    dense[rows] = g
    acc = acc + dense * dense
    with np.errstate(invalid="ignore"):
        return V - lr * dense / np.sqrt(acc), acc


def _ada_eps(eps, inside):
    """Adagrad with an epsilon added, as in other forms of it: g / (sqrt(acc) + eps) or g / sqrt(acc + eps)."""
    def ada(V, acc, rows, g, lr):
        V, acc = V.copy(), acc.copy()
        acc[rows] += g * g
        V[rows] -= lr * g / (np.sqrt(acc[rows] + eps) if inside else np.sqrt(acc[rows]) + eps)
        return V, acc
    return ada


def _ada_overwrite(V, acc, rows, g, lr):           # acc[rows] = g * g: this step's g^2 alone
    V, acc = V.copy(), acc.copy()
    acc[rows] = g * g
    V[rows] -= lr * g / np.sqrt(acc[rows])
    return V, acc


def _ada_no_sqrt(V, acc, rows, g, lr):              # divides by G, not by sqrt(G)
    V, acc = V.copy(), acc.copy()
    acc[rows] += g * g
    V[rows] -= lr * g / acc[rows]
    return V, acc


def _ada_first_rows(V, acc, rows, g, lr):           # updates rows 0..U-1 instead of `rows`
    V, acc = V.copy(), acc.copy()
    acc[rows] += g * g
    V[:len(rows)] -= lr * g / np.sqrt(acc[rows])
    return V, acc


def _ada_unstored(V, acc, rows, g, lr):             # the new accumulator computed, never stored in acc
    V = V.copy()
    a = acc[rows] + g * g
    V[rows] -= lr * g / np.sqrt(a)
    return V, acc


def _ada_sqrt_whole_table(V, acc, rows, g, lr):      # np.sqrt(acc): (n, k) against g's (U, k), raises
    V, acc = V.copy(), acc.copy()
    acc[rows] += g * g
    V[rows] -= lr * g / np.sqrt(acc)
    return V, acc


def _sgd_sign(V, rows, g, lr):
    V = V.copy()
    V[rows] += lr * g
    return V


def _sgd_rows_only(V, rows, g, lr):
    return V[rows] - lr * g


def _sgd_overwrite(V, rows, g, lr):
    V = V.copy()
    V[rows] = -lr * g
    return V


def _sgd_averaged(over):
    """SGD with the step divided by the number of touched rows (over=None) or by a batch size."""
    def sgd(V, rows, g, lr):
        V = V.copy()
        V[rows] -= lr * g / (len(rows) if over is None else over)
        return V
    return sgd


def _sgd_mean_gradient(V, rows, g, lr):            # every touched row moved by the rows' mean gradient
    V = V.copy()
    V[rows] -= lr * g.mean(0)
    return V


def _momentum_cs231n(V, u, rows, g, lr, mu):       # u <- mu u - lr g, V <- V + u: the velocity holds steps
    V, u = V.copy(), u.copy()
    u[rows] = mu * u[rows] - lr * g
    V[rows] += u[rows]
    return V, u


def _momentum(V, u, rows, g, lr, mu, dense=False, decay_all=False, old=False, ema=False, lr_in_u=False, sign=1):
    V, u = V.copy(), u.copy()
    u_old = u.copy()
    if dense or decay_all:
        u *= mu
        u[rows] += (1 - mu) * g if ema else g
    else:
        u[rows] = mu * u[rows] + ((1 - mu) * g if ema else lr * g if lr_in_u else g)
    step = (u_old if old else u)
    if dense:
        V -= sign * lr * step
    elif lr_in_u:
        V[rows] -= sign * step[rows]
    else:
        V[rows] -= sign * lr * step[rows]
    return V, u


def _adam(V, m, r, rows, g, lr, t, b1, b2, eps, correct=True, dt=0, inside=False, textbook=False, dense=False,
          decay_all=False, sign=1):
    V, m, r = V.copy(), m.copy(), r.copy()
    t = t + dt
    if dense or decay_all:
        G = np.zeros_like(V)
        G[rows] = g
        m, r = b1 * m + (1 - b1) * G, b2 * r + (1 - b2) * G * G
    else:
        m[rows] = b1 * m[rows] + (1 - b1) * g
        r[rows] = b2 * r[rows] + (1 - b2) * g * g
    lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) if correct else lr
    if textbook:
        step = lr * (m / (1 - b1 ** t)) / (np.sqrt(r / (1 - b2 ** t)) + eps)
    elif inside:
        step = lr_t * m / np.sqrt(r + eps)
    else:
        step = lr_t * m / (np.sqrt(r) + eps)
    if dense:
        V -= sign * step
    else:
        V[rows] -= sign * step[rows]
    return V, m, r


def _forgot_return(in_place):
    """The right update, done in place on the arrays handed over, with the ``return`` forgotten."""
    def forgot(*a):
        in_place(*a)
    return forgot


def _sgd_in_place(V, rows, g, lr):
    V[rows] -= lr * g


def _momentum_unstored(V, u, rows, g, lr, mu):       # the new velocity computed, never stored in u
    V = V.copy()
    ur = mu * u[rows] + g
    V[rows] -= lr * ur
    return V, u


def _adam_unstored(V, m, r, rows, g, lr, t, b1, b2, eps):   # the new moments computed, never stored
    V = V.copy()
    mr = b1 * m[rows] + (1 - b1) * g
    rr = b2 * r[rows] + (1 - b2) * g * g
    V[rows] -= lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * mr / (np.sqrt(rr) + eps)
    return V, m, r


def _momentum_in_place(V, u, rows, g, lr, mu):
    u[rows] = mu * u[rows] + g
    V[rows] -= lr * u[rows]


def _ada_in_place(V, acc, rows, g, lr):
    acc[rows] += g * g
    V[rows] -= lr * g / np.sqrt(acc[rows])


def _adam_in_place(V, m, r, rows, g, lr, t, b1, b2, eps):
    m[rows] = b1 * m[rows] + (1 - b1) * g
    r[rows] = b2 * r[rows] + (1 - b2) * g * g
    V[rows] -= lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m[rows] / (np.sqrt(r[rows]) + eps)


def _adam_r_of_g(V, m, r, rows, g, lr, t, b1, b2, eps):       # r averages g, not g^2
    V, m, r = V.copy(), m.copy(), r.copy()
    m[rows] = b1 * m[rows] + (1 - b1) * g
    r[rows] = b2 * r[rows] + (1 - b2) * g
    V[rows] -= lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m[rows] / (np.sqrt(r[rows]) + eps)
    return V, m, r


def _adam_m_without_factor(V, m, r, rows, g, lr, t, b1, b2, eps):       # m <- b1 m + g
    V, m, r = V.copy(), m.copy(), r.copy()
    m[rows] = b1 * m[rows] + g
    r[rows] = b2 * r[rows] + (1 - b2) * g * g
    V[rows] -= lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m[rows] / (np.sqrt(r[rows]) + eps)
    return V, m, r


def _adam_no_eps(V, m, r, rows, g, lr, t, b1, b2, eps):       # m / sqrt(r), eps left out
    return _adam(V, m, r, rows, g, lr, t, b1, b2, 0.0)


def _with(f, **kw):
    return lambda *a: f(*a, **kw)


def _reordered(f, order):
    """The right answer's outputs returned in another order."""
    return lambda *a: tuple(f(*a)[i] for i in order)


PLANTED = [
    ("adagrad_rows", _ada_divide_first, "add g^2 to the accumulator first"),
    ("adagrad_rows", _ada_sign, "the step goes against the gradient"),
    ("adagrad_rows", _ada_dense, "only the touched rows are read and written"),
    ("adagrad_rows", _ada_first_rows, "rows the batch did not touch must not change"),
    ("adagrad_rows", _ada_overwrite, "G accumulates: acc[rows] += g * g"),
    ("adagrad_rows", _ada_no_sqrt, "divide by the square root of G"),
    ("adagrad_rows", _ada_eps(1e-7, inside=False), "no eps here"),
    ("adagrad_rows", _ada_eps(1e-3, inside=False), "no eps here"),
    ("adagrad_rows", _ada_eps(1e-5, inside=True), "no eps here"),
    ("adagrad_rows", _reordered(adagrad_rows, (1, 0)), "return (V, acc) in this order"),
    ("adagrad_rows", _forgot_return(_ada_in_place), "your function returned None: did you return V, acc?"),
    ("adagrad_rows", _ada_unstored, "acc came back unchanged: store it, acc[rows] += g * g"),
    ("adagrad_rows", _ada_sqrt_whole_table, "index the accumulator by rows: np.sqrt(acc[rows]) is (U, k), like g "
                                            "(here g is (U, k) = (3, 2) and acc (n, k) = (10, 2))"),
    ("sgd_rows", _sgd_sign, "the step goes against the gradient"),
    ("sgd_rows", _sgd_rows_only, "return the whole table"),
    ("sgd_rows", _sgd_overwrite, "do not overwrite them"),
    ("sgd_rows", _forgot_return(_sgd_in_place), "your function returned None: did you return V?"),
    ("sgd_rows", _sgd_averaged(None), "the gradient is already summed over the batch: do not average"),
    ("sgd_rows", _sgd_averaged(128), "the gradient is already summed over the batch: do not average"),
    ("sgd_rows", _sgd_mean_gradient, "the gradient is already summed over the batch: do not average"),
    ("momentum_rows", _with(_momentum, sign=-1), "the step goes against the velocity"),
    ("momentum_rows", _with(_momentum, dense=True), "lazy momentum: rows the batch did not touch must not move"),
    ("momentum_rows", _with(_momentum, decay_all=True), "lazy momentum: rows the batch did not touch keep their "
                                                        "velocity"),
    ("momentum_rows", _with(_momentum, old=True), "update the velocity first"),
    ("momentum_rows", _with(_momentum, ema=True), "without a (1 - mu) factor"),
    ("momentum_rows", _with(_momentum, lr_in_u=True), "the velocity holds mu u + g, without lr"),
    ("momentum_rows", _momentum_cs231n, "that is the form u <- mu u - lr g, V <- V + u"),
    ("momentum_rows", _momentum_unstored, "u came back unchanged: store the new velocity"),
    ("momentum_rows", _reordered(momentum_rows, (1, 0)), "return (V, u) in this order"),
    ("momentum_rows", _forgot_return(_momentum_in_place), "your function returned None: did you return V, u?"),
    ("adam_rows", _with(_adam, sign=-1), "the step goes against the gradient"),
    ("adam_rows", _with(_adam, correct=False), "the bias correction is missing"),
    ("adam_rows", _with(_adam, dt=-1), "the step count is off by one"),
    ("adam_rows", _with(_adam, dt=1), "the step count is off by one"),
    ("adam_rows", _with(_adam, textbook=True), "that is the paper's form"),
    ("adam_rows", _with(_adam, inside=True), "eps goes outside the square root"),
    ("adam_rows", _adam_no_eps, "eps is missing: sqrt(r) + eps"),
    ("adam_rows", _adam_unstored, "m and r came back unchanged: store the new moments"),
    ("adam_rows", _with(_adam, dense=True), "lazy Adam: rows the batch did not touch must not move"),
    ("adam_rows", _with(_adam, decay_all=True), "lazy Adam: rows the batch did not touch keep their moments"),
    ("adam_rows", _reordered(adam_rows, (1, 0, 2)), "return (V, m, r) in this order"),
    ("adam_rows", _reordered(adam_rows, (0, 2, 1)), "return (V, m, r) in this order"),
    ("adam_rows", _forgot_return(_adam_in_place), "your function returned None: did you return V, m, r?"),
    ("adam_rows", _adam_r_of_g, "r is the moving average of g squared"),
    ("adam_rows", _adam_m_without_factor, "V is wrong, and so is m or r"),
]


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_a_right_answer_passes(name, capsys):
    result = CHECKERS[name](RIGHT[name])
    assert result and result.status == "pass"
    assert capsys.readouterr().out.startswith(f"{name}: PASS")


def test_an_update_in_place_passes(capsys):
    """Notebook 6 says so: the checkers hand over copies, so writing into the caller's V (as the package's
    optimisers do) and returning it is a right answer too."""
    def sgd_in_place(V, rows, g, lr):
        V[rows] -= lr * g
        return V

    def momentum_in_place(V, u, rows, g, lr, mu):
        u[rows] = mu * u[rows] + g
        V[rows] -= lr * u[rows]
        return V, u

    assert exercises.check_sgd_rows(sgd_in_place)
    assert exercises.check_momentum_rows(momentum_in_place)


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_a_stub_is_reported_not_implemented(name, capsys):
    def stub(*args):
        raise NotImplementedError("write it above")
    result = CHECKERS[name](stub)
    assert result.status == "not implemented" and "not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize("name,bug,hint", PLANTED, ids=[f"{n}: {h}" for n, _, h in PLANTED])
def test_each_planted_mistake_gets_its_own_hint_and_no_other(name, bug, hint, capsys):
    with np.errstate(all="ignore"):
        result = CHECKERS[name](bug)
    out = capsys.readouterr().out
    assert result.status == "fail" and "FAIL on case" in out, out
    hints = re.findall(r"^  hint: (.*)$", out, re.M)
    assert len(hints) == 1 and hint in hints[0], out
    others = {h for n, _, h in PLANTED if n == name and h != hint}
    assert not [h for h in others if h in hints[0]], out


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_every_hint_is_planted(name, monkeypatch):
    """Each hint in a checker's list is the one a planted mistake above gets (a hint appended to a raised
    error, like adagrad_rows' np.sqrt(acc), is planted there too)."""
    seen = {}
    monkeypatch.setattr(optimizers, "_run", lambda *a, **_: seen.update(hints=a[5]))
    CHECKERS[name](RIGHT[name])
    phrases = [h for n, _, h in PLANTED if n == name]
    unplanted = [h for _, h in seen["hints"] if not any(p in h for p in phrases)]
    assert not unplanted, unplanted


def test_the_dense_adagrad_is_caught_only_through_a_never_used_row():
    """With every accumulator positive the dense update gives the reference's numbers (what notebook 1
    says); the checker's zero accumulators in untouched rows are what tell it apart."""
    rng = np.random.default_rng(0)
    V, acc = rng.standard_normal((8, 3)), rng.uniform(0.5, 1.0, (8, 3))
    rows, g = np.array([1, 4]), rng.standard_normal((2, 3))
    np.testing.assert_allclose(_ada_dense(V, acc, rows, g, 0.1)[0], adagrad_rows(V, acc, rows, g, 0.1)[0])
    acc[6] = 0.0
    assert np.isnan(_ada_dense(V, acc, rows, g, 0.1)[0][6]).all()
    assert not np.isnan(adagrad_rows(V, acc, rows, g, 0.1)[0]).any()


def test_an_eps_too_small_to_matter_passes_and_the_eps_hint_needs_acc_right(capsys):
    """An eps below the tolerance's reach is a right answer (no hint is ever reached); the eps hint reads
    eps back from V only when acc is right, so a wrong accumulator is not blamed on an eps."""
    assert exercises.check_adagrad_rows(_ada_eps(1e-10, inside=False)).status == "pass"
    assert exercises.check_adagrad_rows(_ada_eps(1e-8, inside=True)).status == "pass"

    def eps_and_wrong_acc(V, acc, rows, g, lr):
        V, acc = _ada_eps(1e-3, inside=False)(V, acc, rows, g, lr)
        acc[rows] += 1.0
        return V, acc

    capsys.readouterr()
    assert exercises.check_adagrad_rows(eps_and_wrong_acc).status == "fail"
    assert "no eps here" not in capsys.readouterr().out


def _exercise_cells(path):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    solutions = {}
    for c in nb.cells:
        if c.cell_type == "markdown" and "<details>" in c.source:
            for block in re.findall(r"```python\n(.*?)```", c.source, re.S):
                for name in re.findall(r"^def (\w+)\(", block, re.M):
                    solutions[name] = block
    return code, solutions


@pytest.mark.parametrize("notebook,names", [("01_factorization_machines.ipynb", ["adagrad_rows"]),
                                            ("06_ablations.ipynb", ["sgd_rows", "momentum_rows", "adam_rows"])])
def test_the_notebook_exercises_work_as_written(notebook, names, capsys):
    """Each exercise: a stub that raises NotImplementedError (reported, not raised, by the checker call that
    follows it), the checker called on it, and a folded solution that passes."""
    code, solutions = _exercise_cells(NOTEBOOKS / notebook)
    for name in names:
        checker = CHECKERS[name].__name__
        assert re.search(rf"\b(?:exercises|X)\.{checker}\({name}\)", code), (notebook, name)
        stub = re.search(rf"^def {name}\(.*?\n(?:    .*\n|\n)*?    raise NotImplementedError\(.*\)\n", code, re.M)
        assert stub, f"{notebook}: no stub for {name}"
        ns = {"np": np}
        exec(stub.group(0), ns)
        assert CHECKERS[name](ns[name]).status == "not implemented"
        assert name in solutions, f"{notebook}: no folded solution for {name}"
        ns = {"np": np}
        exec(solutions[name], ns)
        assert CHECKERS[name](ns[name]), capsys.readouterr().out


def test_a_dense_sgd_step_gets_the_rows_hint(capsys):
    """V - lr * g on the whole table raises on shapes (n, k) against (U, k): the hint says to index by rows."""
    from nfm_numpy.exercises import check_sgd_rows
    result = check_sgd_rows(lambda V, rows, g, lr: V - lr * g)
    capsys.readouterr()
    assert result.status == "fail" and "could not be broadcast" in result.message
    assert "hint: index the table by rows: V[rows] is (U, k), like g" in result.message
