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
    with pytest.raises(ValueError, match="lr must be > 0"):
        optim.make("sgd", 0.0)


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_row_updates_in_cache_blocks_equal_one_update(name, monkeypatch):
    """The CPU updates touched rows in blocks (ROW_BLOCK_BYTES); blocks of 2 rows must
    give exactly the update of all rows at once, for every optimiser, over several steps."""
    rng = np.random.default_rng(1)
    table = rng.standard_normal((50, 3)).astype(np.float32)
    steps = [(np.sort(rng.choice(50, 17, replace=False)), rng.standard_normal((17, 3)).astype(np.float32))
             for _ in range(3)]
    out = {}
    for block_bytes in (1 << 30, 2 * 3 * 4):          # one block; blocks of 2 rows of 3 float32
        monkeypatch.setattr(optim, "ROW_BLOCK_BYTES", block_bytes)
        params, opt = {"V": table.copy()}, optim.make(name, 0.05)
        for rows, vals in steps:
            opt.step(params, {"V": RowGrad(rows, vals)})
        out[block_bytes] = params["V"]
    assert len(optim.B.row_blocks(steps[0][1], 2 * 3 * 4)) == 9    # 17 rows -> 8 blocks of 2 and one of 1
    np.testing.assert_array_equal(out[2 * 3 * 4], out[1 << 30])
    assert not np.array_equal(out[1 << 30], table)
