"""One code path on every backend. The 'strict-device1' backend (array-api-strict on
its fake device) refuses every implicit conversion to NumPy, as CuPy does, so these
tests fail on any silent device-to-host copy. 'cupy' runs where a GPU is present."""
import re

import numpy as np
import pytest

import nfm_numpy as nf
from nfm_numpy import backend as B, gradcheck as G, optim


def device_batch(backend, batch, dtype):
    return nf.Batch(backend.asarray(batch.idx), backend.asarray(batch.val.astype(dtype)),
                    backend.asarray(batch.y.astype(dtype)))


@pytest.mark.parametrize("impl", ["sparse", "gather"])
@pytest.mark.parametrize("kind", ["nfm", "fm"])
@pytest.mark.parametrize("opt", ["adagrad", "adam", "momentum", "sgd"])
def test_forward_backward_update_without_host_copies(backend, impl, kind, opt):
    host_batch = G.random_problem(loss="square")
    make = (lambda **kw: nf.NFM(40, k=4, layers=(6, 5), keep_prob=(0.8, 0.9, 0.5), **kw)) if kind == "nfm" \
        else (lambda **kw: nf.FM(40, k=4, keep_prob=0.5, batch_norm=True, **kw))
    ref = make(dtype="float64", seed=5, impl=impl, l2=0.01)
    dev = make(dtype="float64", seed=5, impl=impl, l2=0.01, backend=backend.xp, device=backend.device)
    assert dev.xp is backend.xp
    for name, a in dev.params.items():                       # one seed, one set of initial weights
        np.testing.assert_array_equal(B.to_numpy(a), ref.params[name])
    batch = device_batch(backend, host_batch, np.float64)
    # the same dropout masks on both (drawn on the host, moved explicitly)
    loss_d, grads_d = dev.loss(batch, rng=B.Random(3, backend.xp, backend.device, host=True), input_grad=True)
    loss_r, grads_r = ref.loss(host_batch, rng=B.Random(3, np, host=True), input_grad=True)
    assert B.get_xp(loss_d) is backend.xp                     # the loss stays on the device
    np.testing.assert_allclose(float(loss_d), float(loss_r), rtol=1e-12)
    for name in grads_r:
        gd, gr = grads_d[name], grads_r[name]
        if isinstance(gr, nf.RowGrad):
            gd, gr = gd.to_dense(40), gr.to_dense(40)
        np.testing.assert_allclose(B.to_numpy(gd), gr, rtol=1e-10, atol=1e-12, err_msg=name)
    o_d, o_r = optim.make(opt, 0.05), optim.make(opt, 0.05)
    for _ in range(2):
        o_d.step(dev.params, dev.loss(batch, rng=B.Random(4, backend.xp, backend.device, host=True))[1])
        o_r.step(ref.params, ref.loss(host_batch, rng=B.Random(4, np, host=True))[1])
    for name in ref.params:
        if re.fullmatch(r"b\d+", name):
            # a bias before BN has a true gradient of 0: its computed gradient is rounding
            # noise, which Adagrad and Adam normalise into full-size steps of either sign
            continue
        np.testing.assert_allclose(B.to_numpy(dev.params[name]), ref.params[name], rtol=1e-9, atol=1e-12)
    pred = dev.predict(nf.Batch(batch.idx, batch.val))
    # (loose: the noise-driven steps of the biases before BN reach predictions through
    # the lagging BN running mean)
    np.testing.assert_allclose(B.to_numpy(pred), ref.predict(host_batch), rtol=1e-6)


def test_strict_device_really_refuses_host_conversion():
    be = pytest.importorskip("array_api_strict")
    x = be.asarray([1.0, 2.0], device=be.Device("device1"))
    with pytest.raises(RuntimeError, match="Can't convert"):
        np.asarray(x)
    np.testing.assert_array_equal(B.to_numpy(x), [1.0, 2.0])  # the explicit path works


def test_mixing_backends_is_an_error():
    be = pytest.importorskip("array_api_strict")
    with pytest.raises(TypeError, match="different libraries"):
        B.get_xp(np.zeros(2), be.asarray([1.0]))


def test_model_moves_between_backends(backend):
    m = nf.NFM(30, k=4, layers=(3,), seed=1)
    before = {n: a.copy() for n, a in m.params.items()}
    m.to(backend.xp, backend.device).to("numpy")
    for n in before:
        np.testing.assert_array_equal(m.params[n], before[n])


@pytest.mark.parametrize("kind", ["nfm", "fm"])
def test_gradcheck_on_cupy(kind):
    """float64 gradient check on the GPU: gradients computed by CuPy, differences on the host model."""
    from conftest import cupy_or_skip
    cupy = cupy_or_skip()
    host_batch = G.random_problem()
    make = (lambda **kw: nf.NFM(40, k=5, layers=(8,), keep_prob=(0.8, 0.5), activation="tanh", **kw)) \
        if kind == "nfm" else (lambda **kw: nf.FM(40, k=5, **kw))
    gpu = make(dtype="float64", backend="cupy")
    batch = nf.Batch(*(cupy.asarray(a) for a in host_batch[:3]))
    _, g_gpu = gpu.loss(batch, rng=B.Random(0, cupy, host=True), input_grad=True)
    host = make(dtype="float64")
    report = G.check_model(host, host_batch)
    assert report.ok
    _, g_host = host.loss(host_batch, rng=B.Random(0, np, host=True), input_grad=True)
    for name, g in g_host.items():
        gg = g_gpu[name]
        if isinstance(g, nf.RowGrad):
            g, gg = g.to_dense(40), gg.to_dense(40)
        assert G.rel_error(B.to_numpy(gg), g) < 1e-10, name


def test_fast_forms_equal_the_textbook_forms():
    """The speed-ups keep their plain forms beside them; both must give the same numbers."""
    from nfm_numpy import layers as L
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 500, (64, 7))
    u1, i1 = B.unique_inverse(ids, n=500)                  # marker table
    u2, i2 = np.unique(ids, return_inverse=True)           # sort
    np.testing.assert_array_equal(u1, u2)
    np.testing.assert_array_equal(i1, i2.reshape(ids.shape))
    np.testing.assert_array_equal(u1[i1], ids)
    x = rng.standard_normal((300, 9))
    np.testing.assert_allclose(L.batch_sum(x), x.sum(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(L.batch_mean(x), x.mean(axis=0), rtol=1e-12, atol=1e-12)
    idx = rng.integers(0, 500, (32, 6))
    onehot = np.ones((32, 6))                              # every x is 1: X2 is X itself
    sx = L.sparse_input(idx, onehot, n=500)
    assert sx.X2 is sx.X
    V = rng.standard_normal((500, 4))
    np.testing.assert_allclose(L.sparse_bi_interaction_forward(sx, V)[0],
                               L.bi_interaction_forward(L.embedding_forward(idx, onehot, V)[0])[0],
                               rtol=1e-12, atol=1e-12)
    keep = B.Random(0).bernoulli((400, 500), 0.8)
    assert keep.dtype == bool and abs(keep.mean() - 0.8) < 0.005          # 200,000 draws: 5 sigma is 0.0045
    assert B.Random(0).bernoulli((3, 3), 1.0).all()
