"""Whole-model gradient checks (every parameter and x), FM as NFM's special case,
the summary, and the errors bad input gets."""
import re

import numpy as np
import pytest

import nfm_numpy as nf
from nfm_numpy import gradcheck as G
from nfm_numpy.backend import Random
from nfm_numpy.data import Batch

CASES = [  # (layers, keep_prob, batch_norm, activation, loss)
    ((), (1.0,), False, "relu", "square"),
    ((), (0.5,), True, "relu", "log"),
    ((8,), (1.0, 1.0), False, "relu", "square"),
    ((8,), (0.8, 0.5), True, "relu", "square"),
    ((8,), (0.8, 0.5), True, "tanh", "log"),
    ((8, 6), (1.0, 1.0, 1.0), True, "sigmoid", "square"),
    ((8, 6), (0.8, 0.7, 0.5), True, "relu", "log"),
    ((8, 6), (0.9, 0.8, 0.6), False, "identity", "square"),
]


@pytest.mark.parametrize("impl", ["sparse", "gather"])
@pytest.mark.parametrize("layers,keep,bn,act,loss", CASES)
def test_model_gradcheck(impl, layers, keep, bn, act, loss):
    batch = G.random_problem(loss=loss, seed=len(layers))
    seed, model = G.relu_safe_seed(
        lambda s: nf.NFM(40, k=5, layers=layers, keep_prob=keep, batch_norm=bn, activation=act, loss=loss,
                         l2=0.01 if bn else 0.0, dtype="float64", seed=s, impl=impl), batch)
    report = G.check_model(model, batch, seed=seed)
    tol = 1e-6 if (act == "relu" and layers) else 1e-7
    assert report.ok and report.max_error < tol, str(report)
    names = {r.name for r in report.rows}
    assert set(model.params) <= names and "x (val)" in names
    if bn and layers:   # a bias before BN has a true gradient of 0: judged by the absolute floor
        assert all(r.zero for r in report.rows if re.fullmatch(r"b\d+", r.name))


@pytest.mark.parametrize("loss", ["square", "log"])
def test_fm_gradcheck(loss):
    batch = G.random_problem(loss=loss)
    for bn in (False, True):
        report = G.check_model(nf.FM(40, k=5, keep_prob=0.6, batch_norm=bn, loss=loss, dtype="float64"), batch)
        assert report.ok and report.max_error < 1e-7, str(report)


def test_big_table_is_checked_on_touched_rows_and_a_random_direction():
    batch = G.random_problem(n_features=3000)
    model = nf.NFM(3000, k=4, layers=(5,), keep_prob=(1.0, 1.0), dtype="float64", activation="tanh")
    report = G.check_model(model, batch, max_entries=2000)
    rows = {r.name: r for r in report.rows}
    assert "touched rows + 1 other" in rows["V"].checked
    assert rows["V (dir)"].error < 1e-6 and report.ok, str(report)


def test_planted_bug_in_model_is_caught(monkeypatch):
    from nfm_numpy import layers as L
    batch = G.random_problem()
    model = nf.NFM(40, k=5, layers=(6,), keep_prob=(1.0, 1.0), dtype="float64", activation="tanh")
    good = L.sparse_bi_interaction_backward

    def planted(df, cache, need_dval=False):                 # drops the -V_u (X2^T df) term
        dval, g = good(df, cache, need_dval)
        sx, Vu, s = cache
        return dval, L.RowGrad(g.rows, (sx.X.T @ (df * s))[sx.touched])

    monkeypatch.setattr(L, "sparse_bi_interaction_backward", planted)
    report = G.check_model(model, batch)
    bad = {r.name for r in report.rows if not r.zero and r.error > 1e-4}
    assert not report.ok and "V" in bad


def fm_and_nfm0(**kw):
    fm = nf.FM(40, k=5, dtype="float64", seed=3, **kw)
    nfm = nf.NFM(40, k=5, layers=(), dtype="float64", seed=3, activation="identity",
                 keep_prob=(kw.get("keep_prob", 0.5),), batch_norm=kw.get("batch_norm", False))
    return fm, nfm


def test_fm_equals_nfm_with_no_hidden_layers_and_h_one():
    batch = G.random_problem()
    for kw in ({"keep_prob": 1.0, "batch_norm": False}, {"keep_prob": 0.5, "batch_norm": True}):
        fm, nfm = fm_and_nfm0(**kw)
        np.testing.assert_array_equal(nfm.params["h"], np.ones(5))
        for name in fm.params:
            np.testing.assert_array_equal(fm.params[name], nfm.params[name])   # same seed, same weights
        l_fm, g_fm = fm.loss(batch, rng=Random(7))
        l_nfm, g_nfm = nfm.loss(batch, rng=Random(7))
        np.testing.assert_allclose(l_fm, l_nfm, rtol=1e-13)
        for name in fm.params:
            a, b = g_fm[name], g_nfm[name]
            a, b = (a.to_dense(40), b.to_dense(40)) if isinstance(a, nf.RowGrad) else (a, b)
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(fm.predict(batch), nfm.predict(batch), rtol=1e-13)
        assert "h" not in fm.params   # FM's h is fixed, not learned


def test_fm_second_order_term_equals_textbook_fm():
    """No BN, no dropout: yhat = w0 + sum w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j, computed naively."""
    batch = G.random_problem()
    fm = nf.FM(40, k=5, keep_prob=1.0, dtype="float64", seed=1)
    rng = np.random.default_rng(0)
    fm.params["w"][:] = rng.standard_normal(40)
    fm.params["w0"][...] = 0.7
    V, w = fm.params["V"], fm.params["w"]
    expect = []
    for idx, val in zip(batch.idx, batch.val):
        y = 0.7 + np.sum(w[idx] * val)
        for i in range(len(idx)):
            for j in range(i + 1, len(idx)):
                y += V[idx[i]] @ V[idx[j]] * val[i] * val[j]
        expect.append(y)
    np.testing.assert_allclose(fm.predict(batch), expect, rtol=1e-12)


def test_impls_agree_in_float32():
    batch = G.random_problem()
    b32 = Batch(batch.idx, batch.val.astype(np.float32), batch.y.astype(np.float32))
    a = nf.NFM(40, k=8, layers=(16,), seed=2, impl="sparse")
    b = nf.NFM(40, k=8, layers=(16,), seed=2, impl="gather")
    assert a.params["V"].dtype == np.float32
    la, ga = a.loss(b32, rng=Random(0))
    lb, gb = b.loss(b32, rng=Random(0))
    assert la.dtype == np.float32
    np.testing.assert_allclose(la, lb, rtol=1e-5)
    np.testing.assert_allclose(ga["V"].to_dense(40), gb["V"].to_dense(40), rtol=1e-4, atol=1e-6)


def test_summary_shows_the_papers_parameter_count():
    fm = nf.FM(5382, k=256)
    text = repr(fm)
    assert "1,383,174" in text                                     # w + V, the paper's count
    assert fm.n_params() == 5382 * 257 + 1                         # + w0
    nfm = nf.NFM(5382, k=64, layers=(64,))
    text = repr(nfm)
    for piece in ("NFM-1", "W1, b1", "(65, 64)", "gamma1, beta1", "h"):
        assert piece in text
    assert nfm.n_params() == 5382 * 65 + 1 + 2 * 64 + 65 * 64 + 2 * 64 + 64


@pytest.mark.parametrize("idx,val,y,msg", [
    (np.array([[0, 40]]), np.ones((1, 2)), np.ones(1), r"feature id 40 out of range"),
    (np.array([[0, -1]]), np.ones((1, 2)), np.ones(1), r"negative feature id -1"),
    (np.array([[0, 1]]), np.ones((1, 3)), np.ones(1), r"shapes differ"),
    (np.array([[0, 1]]), np.array([[1.0, np.nan]]), np.ones(1), r"NaN or inf"),
    (np.array([[0, 1]]), np.array([[1.0, np.inf]]), np.ones(1), r"NaN or inf"),
    (np.array([[0, 1]]), np.array([[1, 1]]), np.ones(1), r"floating point"),
    (np.array([[0.0, 1.0]]), np.ones((1, 2)), np.ones(1), r"integer feature ids"),
    (np.array([0, 1]), np.ones(2), np.ones(1), r"must be 2-D"),
    (np.array([[0, 1]]), np.ones((1, 2)), np.ones(2), r"y must have shape \(1,\)"),
])
def test_bad_input_gets_a_clear_error(idx, val, y, msg):
    model = nf.NFM(40, k=4, layers=(4,))
    with pytest.raises((ValueError, TypeError), match=msg):
        model.loss(Batch(idx, val, y))
    with pytest.raises((ValueError, TypeError), match=msg):
        nf.make_batch(idx, val, y, n_features=40)


def test_bad_configuration_gets_a_clear_error():
    with pytest.raises(ValueError, match=r"keep_prob\[0\] must be a keep probability in \(0, 1\], got 0"):
        nf.NFM(10, k=4, layers=(4,), keep_prob=(0.0, 0.5))
    with pytest.raises(ValueError, match=r"keep_prob\[0\] must be a keep probability in \(0, 1\], got 1.2"):
        nf.FM(10, k=4, keep_prob=1.2)
    with pytest.raises(ValueError, match="keep_prob needs 3 values"):
        nf.NFM(10, k=4, layers=(4, 4), keep_prob=(0.8, 0.5))
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        nf.NFM(10, activation="gelu")
    with pytest.raises(ValueError, match="unknown loss 'mse'"):
        nf.NFM(10, loss="mse")
    with pytest.raises(ValueError, match="dtype must be"):
        nf.NFM(10, dtype="float16")


def test_from_csr_handles_multi_hot_and_real_values():
    import scipy.sparse as sp
    dense = np.array([[0, 2.0, 0, 1.0, 0.5], [0, 0, 0, 0, 0], [3.0, 0, 0, 0, 0]])
    batch = nf.from_csr(sp.csr_matrix(dense), y=[1, -1, 1])
    assert batch.idx.shape == (3, 3)
    model = nf.FM(5, k=3, keep_prob=1.0, dtype="float64")
    model.params["w"][:] = np.arange(5.0)
    # FM's linear part is w . x whatever the padding: compare with the dense product
    lin = model.params["w0"] + dense @ model.params["w"]
    V = model.params["V"]
    pair = 0.5 * (((dense @ V) ** 2).sum(1) - ((dense ** 2) @ (V ** 2)).sum(1))
    np.testing.assert_allclose(model.predict(batch), lin + pair, rtol=1e-12, atol=1e-15)


def test_the_step_through_module_matches_the_model():
    """nfm_numpy.one_step (the textbook layers, one line each) gives the model's loss and gradients."""
    from nfm_numpy import one_step
    batch, params = one_step.tiny_problem()
    model = nf.NFM(7, k=4, layers=[5], keep_prob=[0.8, 0.5], dtype="float64", impl="sparse")
    model.params = {n: np.array(a, dtype=np.float64) for n, a in params.items()}
    want_loss, want = model.loss(nf.make_batch(batch["idx"], batch["val"], batch["y"], 7), rng=Random(1))
    loss, got = one_step.step(batch, {n: np.array(a) for n, a in params.items()})
    assert float(loss) == pytest.approx(float(want_loss), rel=1e-12)
    for name, g in want.items():
        a, b = (g.to_dense(7) if isinstance(g, nf.RowGrad) else g), got[name]
        b = b.to_dense(7) if isinstance(b, nf.RowGrad) else b
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-13, err_msg=name)


# ----------------------------------------------------------- padding touches nothing (issue 16, class 15)
def padded_batches(n_features=30, rows=16, entries=5, count=4, seed=0, id0_real=False):
    """Batches of rows of 2..entries ids in [1, n) padded with id 0 and value 0; with ``id0_real``
    every batch also uses id 0 as a real feature (value 1) in its first row."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        idx = rng.integers(1, n_features, (rows, entries))
        val = rng.uniform(0.5, 1.5, (rows, entries))
        pad = np.arange(entries)[None, :] >= rng.integers(2, entries, rows)[:, None]
        idx[pad], val[pad] = 0, 0.0
        if id0_real:
            idx[0, 0], val[0, 0] = 0, 1.0
        out.append((idx, val, rng.standard_normal(rows)))
    return out


def train_steps(backend, optimizer, impl, batches, l2=0.1):
    """An NFM trained one step per batch; returns its w and V on the host."""
    from nfm_numpy import optim
    model = nf.NFM(30, k=4, layers=(4,), keep_prob=(1.0, 1.0), l2=l2, dtype="float64", seed=1, impl=impl,
                   backend=backend.xp, device=backend.device)
    opt = optim.make(optimizer, 0.05)
    for idx, val, y in batches:
        loss, grads = model.loss(Batch(backend.asarray(idx), backend.asarray(val), backend.asarray(y)))
        opt.step(model.params, grads)
    return {n: np.asarray(nf.backend.to_numpy(model.params[n])) for n in ("w", "V")}


PADDING_CASES = [(opt, impl, l2) for opt in ("momentum", "adam", "sgd", "adagrad") for impl in ("sparse", "gather")
                 for l2 in (0.0, 0.1) if opt in ("momentum", "adam") or l2 > 0]


@pytest.mark.parametrize("optimizer, impl, l2", PADDING_CASES)
def test_padding_leaves_row_0_bit_for_bit_unchanged(backend, optimizer, impl, l2):
    """Id 0 real in the first batch (momentum and Adam then hold state for row 0), then only
    padding: row 0 of V and w must not move again. Before the fix momentum moved it by its
    velocity, Adam by its first moment, and the L2 term pulled it towards 0."""
    real = padded_batches(count=1, id0_real=True, seed=1)
    after_real = train_steps(backend, optimizer, impl, real, l2)
    after_pad = train_steps(backend, optimizer, impl, real + padded_batches(count=4), l2)
    assert after_pad["V"][0].tobytes() == after_real["V"][0].tobytes()
    assert after_pad["w"][0].tobytes() == after_real["w"][0].tobytes()
    assert not np.array_equal(after_pad["V"][1:], after_real["V"][1:])        # the other rows trained


def test_the_rows_a_batch_names_exclude_padding_and_explicit_zeros():
    idx = np.array([[3, 5, 0], [5, 7, 0], [9, 2, 0]])
    val = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])     # 7 and 9 only with x = 0
    for impl in ("sparse", "gather"):
        model = nf.NFM(12, k=3, layers=(), keep_prob=(1.0,), batch_norm=False, l2=0.5, dtype="float64", impl=impl)
        _, grads = model.loss(Batch(idx, val, np.zeros(3)))
        for name in ("w", "V"):
            assert grads[name].rows.tolist() == [2, 3, 5], (impl, name)


@pytest.mark.parametrize("optimizer", ["momentum", "adam", "adagrad"])
@pytest.mark.parametrize("impl", ["sparse", "gather"])
def test_where_id_0_is_real_the_results_are_the_old_ones(monkeypatch, optimizer, impl):
    """Batches that use id 0 for real: the same numbers, bit for bit, as listing every id
    of the batch (the behaviour before padding was excluded)."""
    from conftest import Backend

    from nfm_numpy import layers as L
    batches = padded_batches(count=4, id0_real=True, seed=2)
    new = train_steps(Backend("numpy", np), optimizer, impl, batches)
    monkeypatch.setattr(L, "touched", lambda uniq, inv, val: slice(None))
    old = train_steps(Backend("numpy", np), optimizer, impl, batches)
    for name in ("w", "V"):
        assert new[name].tobytes() == old[name].tobytes(), name
