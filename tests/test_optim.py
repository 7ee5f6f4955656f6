"""Each optimiser's step against a hand computation; sparse-row and dense updates
agree exactly where they must (SGD, Adagrad) and differ as documented (Adam)."""
import numpy as np
import pytest

from nfm_numpy import optim
from nfm_numpy.layers import RowGrad

g1, g2 = np.array([0.5, -2.0]), np.array([1.0, 0.25])


def run(opt, grads, p0=(1.0, 1.0)):
    params = {"p": np.array(p0)}
    for g in grads:
        opt.step(params, {"p": g.copy()})
    return params["p"]


def test_sgd_by_hand():
    np.testing.assert_allclose(run(optim.SGD(0.1), [g1, g2]), [1 - 0.1 * 1.5, 1 - 0.1 * (-1.75)])


def test_momentum_by_hand():
    v1 = g1
    v2 = 0.95 * v1 + g2
    np.testing.assert_allclose(run(optim.Momentum(0.1), [g1, g2]), 1 - 0.1 * v1 - 0.1 * v2)


def test_adagrad_by_hand():
    a1 = 1e-8 + g1 ** 2
    a2 = a1 + g2 ** 2
    expect = 1 - 0.05 * g1 / np.sqrt(a1) - 0.05 * g2 / np.sqrt(a2)
    np.testing.assert_allclose(run(optim.Adagrad(0.05), [g1, g2]), expect, rtol=1e-14)


def test_adam_by_hand():
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.01
    m = v = 0
    p = np.ones(2)
    for t, g in enumerate([g1, g2], start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)
    np.testing.assert_allclose(run(optim.Adam(lr), [g1, g2]), p, rtol=1e-13)


def test_zero_dim_parameter_keeps_its_state():
    params = {"w0": np.zeros(())}
    opt = optim.Adagrad(0.05)
    for g in (np.float64(1.0), np.float64(1.0)):
        opt.step(params, {"w0": g})
    assert float(params["w0"]) == pytest.approx(-0.05 - 0.05 / np.sqrt(2), rel=1e-7)


def sparse_and_dense(name, steps=3, seed=0):
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((10, 3))
    dense_p, sparse_p = {"V": table.copy()}, {"V": table.copy()}
    od, osp = optim.make(name, 0.05), optim.make(name, 0.05)
    for _ in range(steps):
        rows = np.sort(rng.choice(10, 4, replace=False))
        vals = rng.standard_normal((4, 3))
        dense = np.zeros((10, 3))
        dense[rows] = vals
        od.step(dense_p, {"V": dense})
        osp.step(sparse_p, {"V": RowGrad(rows, vals)})
    return dense_p["V"], sparse_p["V"]


@pytest.mark.parametrize("name", ["sgd", "adagrad"])
def test_sparse_rows_equal_dense_update(name):
    d, s = sparse_and_dense(name)
    np.testing.assert_allclose(s, d, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name", ["adam", "momentum"])
def test_lazy_updates_differ_from_dense_as_documented(name):
    d, s = sparse_and_dense(name)
    assert not np.allclose(s, d)   # dense moves untouched rows with stale moments; lazy does not


def test_unknown_optimizer_and_bad_lr():
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        optim.make("rmsprop", 0.1)
    with pytest.raises(ValueError, match="learning rate must be > 0"):
        optim.make("sgd", 0.0)
