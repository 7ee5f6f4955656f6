"""Every layer's hand-derived backward against central differences (float64), and
the identities the layers rest on, each against an independent computation."""
import itertools

import numpy as np
import pytest

from nfm_numpy import gradcheck as G, layers as L, losses
from nfm_numpy.backend import Random

rng = np.random.default_rng(0)
TOL = 1e-7


def hard_batch(n=12, Bn=6, F=5, seed=0):
    """Ids repeated within a row (columns 0 and 1) and across rows, padding, real x."""
    b = G.random_problem(n_features=n, n_rows=Bn, entries=F, seed=seed)
    return b.idx, b.val


def assert_passes(report, tol=TOL):
    assert report.rows, "nothing was checked"
    for r in report.rows:
        assert r.error < (report.zero_floor if r.zero else tol), str(report)


# -------------------------------------------------------------- input layers
def test_embedding_gradcheck_with_repeated_ids():
    idx, val = hard_batch()
    assert len(np.unique(idx)) < idx.size and (idx[:, 0] == idx[:, 1]).all()
    V = rng.standard_normal((12, 4))
    rep = G.check_layer(lambda val, V: L.embedding_forward(idx, val, V), L.embedding_backward,
                        {"val": val, "V": V}, ["val", "V"])
    assert_passes(rep)


def test_embedding_backward_is_a_scatter_add_not_fancy_assignment():
    idx = np.array([[1, 1, 2], [2, 1, 0]])
    val = np.ones((2, 3))
    V = rng.standard_normal((4, 3))
    dE = rng.standard_normal((2, 3, 3))
    _, dV = L.embedding_backward(dE, L.embedding_forward(idx, val, V)[1])
    expected = np.zeros_like(V)
    for b, f in itertools.product(range(2), range(3)):      # independent loop over every occurrence
        expected[idx[b, f]] += val[b, f] * dE[b, f]
    np.testing.assert_allclose(dV.to_dense(4), expected, rtol=1e-14, atol=1e-14)
    wrong = np.zeros_like(V)
    wrong[idx.ravel()] += dE.reshape(-1, 3)                  # the classic bug drops repeats
    assert not np.allclose(wrong, expected)


def test_linear_gradcheck():
    idx, val = hard_batch()
    w0, w = np.array(0.3), rng.standard_normal(12)
    rep = G.check_layer(lambda val, w0, w: L.linear_forward(idx, val, w0, w), L.linear_backward,
                        {"val": val, "w0": w0, "w": w}, ["val", "w0", "w"])
    assert_passes(rep)


def test_bi_interaction_gradcheck():
    E = rng.standard_normal((5, 4, 3))
    assert_passes(G.check_layer(L.bi_interaction_forward, L.bi_interaction_backward, {"E": E}, ["E"]))


def test_fm_second_order_gradcheck():
    f = rng.standard_normal((5, 3))
    assert_passes(G.check_layer(L.fm_second_order_forward, L.fm_second_order_backward, {"f": f}, ["f"]))


@pytest.mark.parametrize("F", [1, 2, 7, 30])
def test_bi_interaction_equals_naive_pairwise_sum(F):
    idx, val = hard_batch(n=50, Bn=4, F=max(F, 2), seed=F)
    idx, val = idx[:, :F], val[:, :F]
    V = rng.standard_normal((50, 6))
    E, _ = L.embedding_forward(idx, val, V)
    fast, _ = L.bi_interaction_forward(E)
    naive = np.zeros((4, 6))
    for b in range(4):                                          # sum over i < j of x_i v_i * x_j v_j
        for i in range(F):
            for j in range(i + 1, F):
                naive[b] += val[b, i] * V[idx[b, i]] * val[b, j] * V[idx[b, j]]
    np.testing.assert_allclose(fast, naive, rtol=1e-12, atol=1e-12)
    fm, _ = L.fm_second_order_forward(fast)                    # FM's term: sum_{i<j} <v_i, v_j> x_i x_j
    np.testing.assert_allclose(fm, naive.sum(1), rtol=1e-12, atol=1e-12)


def test_sparse_form_equals_textbook_form():
    idx, val = hard_batch(n=20, Bn=9, F=6)
    V, w, w0 = rng.standard_normal((20, 5)), rng.standard_normal(20), np.array(-0.2)
    sx = L.sparse_input(idx, val)
    f_sp, c_sp = L.sparse_bi_interaction_forward(sx, V)
    E, c_e = L.embedding_forward(idx, val, V)
    f_tb, c_tb = L.bi_interaction_forward(E)
    np.testing.assert_allclose(f_sp, f_tb, rtol=1e-12, atol=1e-13)
    y_sp, cl_sp = L.sparse_linear_forward(sx, w0, w)
    y_tb, cl_tb = L.linear_forward(idx, val, w0, w)
    np.testing.assert_allclose(y_sp, y_tb, rtol=1e-12, atol=1e-13)
    df, dy = rng.standard_normal(f_sp.shape), rng.standard_normal(y_sp.shape)
    dval_sp, dV_sp = L.sparse_bi_interaction_backward(df, c_sp, need_dval=True)
    dval_tb, dV_tb = L.embedding_backward(L.bi_interaction_backward(df, c_tb), c_e)
    np.testing.assert_allclose(dV_sp.to_dense(20), dV_tb.to_dense(20), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dval_sp, dval_tb, rtol=1e-12, atol=1e-13)
    dvl_sp, dw0_sp, dw_sp = L.sparse_linear_backward(dy, cl_sp, need_dval=True)
    dvl_tb, dw0_tb, dw_tb = L.linear_backward(dy, cl_tb)
    np.testing.assert_allclose(dw_sp.to_dense(20), dw_tb.to_dense(20), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dvl_sp, dvl_tb, rtol=1e-12, atol=1e-13)
    assert float(dw0_sp) == pytest.approx(float(dw0_tb))


def test_sparse_bi_interaction_gradcheck():
    idx, val = hard_batch()
    V = rng.standard_normal((12, 3))

    def fwd(val, V):
        return L.sparse_bi_interaction_forward(L.sparse_input(idx, val), V)

    def bwd(df, cache):
        return L.sparse_bi_interaction_backward(df, cache, need_dval=True)

    assert_passes(G.check_layer(fwd, bwd, {"val": val, "V": V}, ["val", "V"]))


# -------------------------------------------------------------- dense layers
def test_affine_gradcheck():
    x, W, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    assert_passes(G.check_layer(L.affine_forward, L.affine_backward, {"x": x, "W": W, "b": b}, ["x", "W", "b"]))


@pytest.mark.parametrize("name", L.ACTIVATIONS)
def test_activation_gradcheck(name):
    a = rng.standard_normal((6, 5))
    a[np.abs(a) < 1e-3] = 0.5                                  # keep away from relu's kink
    rep = G.check_layer(lambda a: L.activation_forward(a, name), L.activation_backward, {"a": a}, ["a"])
    assert_passes(rep)


def test_activation_values():
    a = np.array([-1000.0, -2.0, 0.0, 3.0, 1000.0])
    np.testing.assert_array_equal(L.activation_forward(a, "relu")[0], [0, 0, 0, 3, 1000])
    np.testing.assert_allclose(L.activation_forward(a, "sigmoid")[0], 1 / (1 + np.exp(-np.clip(a, -700, 700))),
                               atol=1e-300)
    np.testing.assert_allclose(L.activation_forward(a, "tanh")[0], np.tanh(a))


def test_dropout_with_fixed_mask():
    x = rng.standard_normal((50, 40))
    z, mask = L.dropout_forward(x, 0.8, Random(1))
    kept = mask != 0
    np.testing.assert_allclose(z[kept], x[kept] / 0.8)
    assert np.all(z[~kept] == 0)
    assert 0.7 < kept.mean() < 0.9
    rep = G.check_layer(lambda x: L.dropout_forward(x, 0.8, mask=mask), L.dropout_backward, {"x": x}, ["x"])
    assert_passes(rep)
    z_eval, _ = L.dropout_forward(x, 0.8, Random(1), train=False)
    assert z_eval is x                                         # identity at evaluation
    z2, _ = L.dropout_forward(x, 0.8, Random(1))
    np.testing.assert_array_equal(z, z2)                       # the generator fixes the mask


def test_batchnorm_gradcheck_train_and_eval():
    x = rng.standard_normal((7, 4)) * 3 + 1
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    rm, rv = rng.standard_normal(4), rng.uniform(0.5, 2, 4)
    for train in (True, False):
        def fwd(x, gamma, beta, train=train):
            out, cache, _ = L.batchnorm_forward(x, gamma, beta, rm, rv, train)
            return out, cache
        rep = G.check_layer(fwd, L.batchnorm_backward, {"x": x, "gamma": gamma, "beta": beta},
                            ["x", "gamma", "beta"])
        assert_passes(rep)


def test_batchnorm_statistics_and_running_averages():
    x = rng.standard_normal((64, 3)) * 2 + 5
    out, _, (m, v) = L.batchnorm_forward(x, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), True, eps=1e-3)
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(0), x.var(0) / (x.var(0) + 1e-3), rtol=1e-10)
    np.testing.assert_allclose(m, 0.1 * x.mean(0))              # decay 0.9 from 0
    np.testing.assert_allclose(v, 0.9 + 0.1 * x.var(0))         # biased variance, as TF
    out_eval, _, same = L.batchnorm_forward(x, np.ones(3), np.zeros(3), m, v, False, eps=1e-3)
    np.testing.assert_allclose(out_eval, (x - m) / np.sqrt(v + 1e-3))
    assert same[0] is m and same[1] is v


# -------------------------------------------------------------------- losses
def test_square_loss_is_half_sum():
    yhat, y = rng.standard_normal(9), rng.choice([-1.0, 1.0], 9)
    loss, d = losses.square_loss(yhat, y)
    assert float(loss) == pytest.approx(0.5 * np.sum((yhat - y) ** 2))
    num = G.numerical_gradient(lambda: losses.square_loss(yhat, y)[0], yhat)
    assert G.rel_error(d, num) < TOL


def test_log_loss_gradcheck_and_extremes():
    z, y = rng.standard_normal(9) * 3, rng.integers(0, 2, 9).astype(float)
    loss, d = losses.log_loss(z, y)
    p = 1 / (1 + np.exp(-z))
    assert float(loss) == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)), rel=1e-12)
    assert G.rel_error(d, G.numerical_gradient(lambda: losses.log_loss(z, y)[0], z)) < TOL
    z = np.array([1000.0, -1000.0, 1000.0, -1000.0])
    y = np.array([1.0, 0.0, 0.0, 1.0])
    loss, d = losses.log_loss(z, y)
    assert np.isfinite(float(loss)) and np.all(np.isfinite(d))
    assert float(loss) == pytest.approx((0 + 0 + 1000 + 1000) / 4)   # right ones cost 0, wrong ones |z|
    np.testing.assert_allclose(d, np.array([0.0, 0.0, 1.0, -1.0]) / 4)


def test_l2_loss():
    V = rng.standard_normal((3, 4))
    r, d = losses.l2_loss(V, 0.1)
    assert float(r) == pytest.approx(0.05 * np.sum(V ** 2))
    assert G.rel_error(d, G.numerical_gradient(lambda: losses.l2_loss(V, 0.1)[0], V)) < TOL


def test_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        L.activation_forward(np.zeros(2), "swish")
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        losses.loss_forward("hinge", np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match=r"keep probability must be in \(0, 1\]"):
        L.dropout_forward(np.zeros(2), 1.5, Random(0))


# ----------------------------------------------------- a planted bug is caught
def test_planted_wrong_backward_is_caught():
    E = rng.standard_normal((5, 4, 3))

    def wrong_backward(df, cache):                              # sign slip: s + e_i for s - e_i
        E, s = cache
        return df[:, None, :] * (s[:, None, :] + E)

    rep = G.check_layer(L.bi_interaction_forward, wrong_backward, {"E": E}, ["E"])
    assert not rep.ok and rep.max_error > 1e-2
    assert "FAIL" in str(rep)
