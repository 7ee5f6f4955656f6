"""Training loop, early stopping, reproducibility, NaN guard, pretraining, checkpoints, CLI."""
import json
import subprocess
import sys

import numpy as np
import pytest

import nfm_numpy as nf
from nfm_numpy import checkpoint, datasets as D, train as T
from nfm_numpy.backend import to_numpy


@pytest.fixture(scope="module")
def small():
    return D.synthetic(n_train=6000, n_valid=1500, n_test=1500, seed=1)


def test_should_stop_is_the_originals_rule():
    assert not T.should_stop([5, 4, 3, 4, 5, 6])                 # 3 rises
    assert T.should_stop([5, 4, 3, 4, 5, 6, 7])                  # 4 rises in a row
    assert not T.should_stop([5, 4, 3, 4, 5, 4, 7])
    assert not T.should_stop([1, 2, 3, 4, 5])                     # needs more than 5 epochs
    assert T.should_stop([1, 2, 3, 4, 5, 6], patience=4)
    assert T.should_stop([3, 1, 2, 3], patience=2)


def test_training_learns_and_restores_the_best_epoch(small):
    model = nf.NFM(small.train.n_features, k=16, layers=[16], keep_prob=[0.8, 0.5], seed=0)
    before = T.evaluate(model, small.test)["rmse"]
    hist = T.fit(model, small, batch_size=64, epochs=12, log=None)
    assert len(hist.epochs) >= 6
    best = hist.best
    assert best["valid"] == min(hist.column("valid"))
    assert best["test"] < before - 0.1                          # it learned
    # the model holds the best epoch's weights
    assert T.evaluate(model, small.valid)["rmse"] == pytest.approx(best["valid"], abs=1e-6)
    assert T.evaluate(model, small.test)["rmse"] == pytest.approx(best["test"], abs=1e-6)


def test_early_stopping_stops(small):
    """Validation labels are the negated training labels: the better the model fits the
    training rows, the worse it does on validation, so the metric rises every epoch."""
    train = small.train.subset(2000)
    anti = nf.Dataset(train.idx, train.val, -train.y, train.n_features, "anti")
    model = nf.NFM(small.train.n_features, k=16, layers=[16], keep_prob=[1.0, 1.0], seed=0)
    hist = T.fit(model, D.Split(train, anti, small.test), batch_size=64, epochs=60, log=None)
    assert "early stop" in hist.stopped and len(hist.epochs) < 60
    v = hist.column("valid")
    assert all(v[-i] > v[-i - 1] for i in range(1, 5))
    assert hist.best_epoch == int(np.argmin(v)) + 1


def test_same_seed_same_numbers(small):
    runs = []
    for _ in range(2):
        m = nf.NFM(small.train.n_features, k=8, layers=[8], keep_prob=[0.8, 0.5], seed=7)
        runs.append(T.fit(m, small, epochs=3, log=None).epochs)
    for a, b in zip(*runs):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
    m = nf.NFM(small.train.n_features, k=8, layers=[8], keep_prob=[0.8, 0.5], seed=8)
    assert T.fit(m, small, epochs=3, log=None).epochs[-1]["valid"] != runs[0][-1]["valid"]


def test_nan_loss_stops_with_epoch_and_batch_and_keeps_good_weights(small):
    model = nf.NFM(small.train.n_features, k=8, layers=[8], seed=0)
    lines = []
    hist = T.fit(model, small, optimizer="sgd", lr=1e6, epochs=5, log=lines.append)
    assert "at epoch 1, batch" in hist.stopped and hist.best_epoch == 0
    assert any("weights restored" in line for line in lines)
    for a in model.params.values():
        assert np.all(np.isfinite(a))
    init = nf.NFM(small.train.n_features, k=8, layers=[8], seed=0)
    for n in init.params:
        np.testing.assert_array_equal(model.params[n], init.params[n])


def test_pretraining_starts_nfm_from_the_fm(small):
    nfm = nf.NFM(small.train.n_features, k=8, layers=[8], seed=0)
    fm_hist = T.pretrain_fm(nfm, small, epochs=2, log=None)
    assert len(fm_hist.epochs) == 2
    fm = nf.FM(small.train.n_features, k=8, keep_prob=0.5, seed=0)
    T.fit(fm, small, epochs=2, log=None)
    for name in ("w0", "w", "V"):
        np.testing.assert_array_equal(nfm.params[name], fm.params[name])


def test_log_loss_training(small):
    logsplit = D.synthetic(n_train=6000, n_valid=1500, n_test=1500, seed=1, loss="log")
    model = nf.NFM(logsplit.train.n_features, k=8, layers=[8], loss="log", seed=0)
    hist = T.fit(model, logsplit, epochs=4, log=None)
    # well above chance (0.5); the label's linear part alone scores 0.73 on these test rows, the whole
    # teacher 0.89, and 4 epochs on 6,000 rows learn most of the linear part (0.69)
    assert hist.metric == "logloss" and hist.best["test_auc"] > 0.65
    p = model.predict(logsplit.test.batch())
    assert np.all((p > 0) & (p < 1))


def test_checkpoint_round_trip_bit_for_bit(small, tmp_path):
    model = nf.NFM(small.train.n_features, k=8, layers=[8, 4], keep_prob=[0.8, 0.9, 0.5], seed=3,
                   activation="tanh", dtype="float64")
    T.fit(model, small, epochs=2, log=None)
    path = checkpoint.save(model, tmp_path / "m.npz", {"raw_ids": small.train.raw_ids})
    loaded, extra = checkpoint.load(path)
    assert loaded.config == model.config
    for group in ("params", "state"):
        a, b = getattr(model, group), getattr(loaded, group)
        assert a.keys() == b.keys()
        for n in a:
            assert a[n].dtype == b[n].dtype and np.array_equal(a[n], b[n])
    np.testing.assert_array_equal(extra["raw_ids"], small.train.raw_ids)
    np.testing.assert_array_equal(to_numpy(loaded.predict(small.test.batch())), model.predict(small.test.batch()))
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]      # no temporary file left


def test_checkpoint_errors(small, tmp_path):
    model = nf.FM(small.train.n_features, k=4)
    path = checkpoint.save(model, tmp_path / "fm.npz")
    raw = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="not a readable checkpoint"):
        checkpoint.load(tmp_path / "cut.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(checkpoint.CheckpointError, match="no configuration"):
        checkpoint.load(tmp_path / "other.npz")
    arrays = dict(np.load(path))
    arrays["param/V"] = np.zeros((3, 4), np.float32)
    np.savez(tmp_path / "wrong.npz", **arrays)
    with pytest.raises(checkpoint.CheckpointError, match=r"V \(3, 4\) do not match the configuration"):
        checkpoint.load(tmp_path / "wrong.npz")
    arrays = dict(np.load(path))
    arrays["param/h"] = np.ones(4, np.float32)
    np.savez(tmp_path / "extra.npz", **arrays)
    with pytest.raises(checkpoint.CheckpointError, match="do not match"):
        checkpoint.load(tmp_path / "extra.npz")
    arrays = dict(np.load(path))
    arrays["obj"] = np.array([{"a": 1}], dtype=object)
    np.savez(tmp_path / "pickled.npz", **arrays)
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(tmp_path / "pickled.npz")                 # allow_pickle=False refuses it


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nfm_numpy", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def test_cli_train_evaluate_predict(tmp_path):
    r = cli("train", "--train-rows", "5000", "--epochs", "3", "--hidden-factor", "8", "--layers", "8",
            "--save", str(tmp_path / "m.npz"), "--plot", str(tmp_path / "c.png"),
            "--history", str(tmp_path / "h.jsonl"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[-1].startswith("test rmse: ") and float(lines[-1].split(": ")[1]) < 1.0
    assert "noise floor" in r.stdout and sum(line.startswith("epoch") for line in lines) == 3
    hist = [json.loads(x) for x in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == [1, 2, 3] and all(h["seconds"] > 0 for h in hist)
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    r = cli("evaluate", "--load", str(tmp_path / "m.npz"))
    assert r.returncode == 0, r.stderr
    assert "test rmse:" in r.stdout
    (tmp_path / "x.libfm").write_text("1 0:1 300:1\n-1 5:1 900:1\n")
    r = cli("predict", "--load", str(tmp_path / "m.npz"), "--file", str(tmp_path / "x.libfm"))
    assert r.returncode == 0, r.stderr
    assert len([float(v) for v in r.stdout.split()]) == 2


def test_cli_train_log_loss_and_fm():
    r = cli("train", "--model", "fm", "--loss", "log", "--train-rows", "4000", "--epochs", "2",
            "--hidden-factor", "8")
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-2:]
    assert last[0].startswith("test logloss: ") and last[1].startswith("test auc: ")


def test_cli_bad_input_is_reported():
    r = cli("train", "--keep-prob", "0.8,0.5,0.5")
    assert r.returncode == 2 and "--keep-prob needs 2 values" in r.stderr
    r = cli("evaluate", "--load", "/nonexistent/m.npz")
    assert r.returncode == 2 and "No such file" in r.stderr


def test_one_dataset_in_a_tuple_is_training_without_validation(small):
    """(train,) is a split without validation, like a bare Dataset: early stopping is refused."""
    model = nf.NFM(small.train.n_features, k=4, layers=[4])
    with pytest.raises(nf.errors.OptionError, match="early_stop needs a validation set"):
        T.fit(model, (small.train,), epochs=1, early_stop=True, log=None)
    assert T.fit(model, (small.train,), epochs=1, log=None).outcome == "max_epochs"


def test_a_test_set_that_is_the_validation_set_is_scored_once(small, monkeypatch):
    calls = []
    evaluate = T.evaluate
    monkeypatch.setattr(T, "evaluate", lambda model, data, *a: calls.append(data) or evaluate(model, data, *a))
    h = T.fit(nf.NFM(small.train.n_features, k=4, layers=[4]), D.Split(small.train, small.valid, small.valid),
              epochs=2, early_stop=False, log=None)
    assert len(calls) == 2 and [e["test"] for e in h.epochs] == [e["valid"] for e in h.epochs]


def test_fit_trains_a_float32_model_on_a_device_like_on_the_host(small):
    """``fit`` moves the split to the model's device, then scores it there: the rows' dtype is then the device
    library's (array_api_strict.float32 is no NumPy dtype; this raised TypeError in predictions)."""
    strict = pytest.importorskip("array_api_strict")
    host = nf.NFM(small.train.n_features, k=4, layers=[4], seed=3)
    dev = nf.NFM(small.train.n_features, k=4, layers=[4], seed=3, backend=strict, device=strict.Device("device1"))
    split = D.Split(small.train, small.valid, small.test)
    h_host, h_dev = (T.fit(m, split, epochs=2, early_stop=False, log=None) for m in (host, dev))
    for a, b in zip(h_host.epochs, h_dev.epochs):
        assert a["valid"] == pytest.approx(b["valid"], rel=1e-3) and a["test"] == pytest.approx(b["test"], rel=1e-3)
    on_device = small.test.to(strict, strict.Device("device1"))
    np.testing.assert_allclose(T.predictions(dev, on_device), T.predictions(dev, small.test), rtol=1e-6)


def test_predictions_move_host_data_to_the_models_backend(small):
    strict = pytest.importorskip("array_api_strict")
    model = nf.NFM(small.train.n_features, k=4, layers=[4], dtype="float64", seed=3)
    dev = nf.NFM(small.train.n_features, k=4, layers=[4], dtype="float64", seed=3,
                 backend=strict, device=strict.Device("device1"))
    np.testing.assert_allclose(T.predictions(dev, small.test), T.predictions(model, small.test), rtol=1e-12)
    np.testing.assert_allclose(T.predictions(model, small.test), model.predict(small.test.batch()), rtol=1e-6)
