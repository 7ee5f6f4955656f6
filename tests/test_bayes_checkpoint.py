"""A Bayesian FM (bayes.BayesFM) saved and loaded like any model: round trips bit for bit, and
damaged or forged files refused with an error that names the file and the member."""
import io
import json
import re
import warnings
import zipfile

import numpy as np
import pytest

from nfm_numpy import bayes, checkpoint, features as Fe
from nfm_numpy.errors import CheckpointError, OptionTypeError

N_FEATURES, K, KEEP = 30, 3, 4


def one_hot_rows(n=120, seed=0):
    """Three one-hot fields of 10 values each, and a pairwise target."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 10, (n, 3)) + np.array([0, 10, 20])
    val = np.ones((n, 3))
    y = (idx[:, 0] % 3 - 1.0) * (idx[:, 1] % 2 - 0.5) + 0.1 * rng.standard_normal(n)
    return idx, val, y


def fitted(task="regression", keep=KEEP, **kw):
    idx, val, y = one_hot_rows()
    if task == "probit":
        y = (y > 0).astype(float)
    return bayes.fit((idx, val, y), n_features=N_FEATURES, k=K, n_samples=6, burn_in=2, keep=keep, task=task,
                     **kw)


@pytest.fixture(scope="module")
def model():
    m = fitted()
    m.label_range = (-1.5, 2.0)
    return m


@pytest.fixture
def good(model, tmp_path):
    path = tmp_path / "bayes.npz"
    checkpoint.save(model, path, {"raw_ids": np.arange(N_FEATURES) * 7 + 1})
    return path


# ------------------------------------------------------------------ round trips
def assert_same_model(a, b):
    assert b.config == a.config
    for name in ("w0", "w", "V"):
        got, want = getattr(b, name), np.asarray(getattr(a, name))
        assert got.dtype == np.float64 and got.shape == want.shape
        assert np.array_equal(got, want)
    idx, val, _ = one_hot_rows(50, seed=1)
    assert np.array_equal(b.predict(idx, val), a.predict(idx, val))          # bit for bit


def test_round_trip_with_raw_ids(model, good):
    loaded, extra = checkpoint.load(good)
    assert isinstance(loaded, bayes.BayesFM)
    assert_same_model(model, loaded)
    assert loaded.label_range == (-1.5, 2.0)
    assert sorted(extra) == ["label_range", "raw_ids"]
    assert np.array_equal(extra["raw_ids"], np.arange(N_FEATURES) * 7 + 1)
    with zipfile.ZipFile(good) as zf:
        assert sorted(zf.namelist()) == ["config.npy", "extra/label_range.npy", "extra/raw_ids.npy",
                                         "samples/V.npy", "samples/w.npy", "samples/w0.npy"]


@pytest.mark.parametrize("kw", [dict(task="probit"), dict(groups=np.repeat(np.arange(3), 10)), dict(keep=1)])
def test_round_trip_of_other_fits(kw, tmp_path):
    m = fitted(**kw)
    checkpoint.save(m, tmp_path / "m.npz")
    loaded, extra = checkpoint.load(tmp_path / "m.npz", backend="numpy")
    assert_same_model(m, loaded)
    assert extra == {} and loaded.label_range is None


def test_round_trip_with_a_csv_encoder(tmp_path):
    rng = np.random.default_rng(3)
    n = 200
    cols = {"user": rng.choice(["ann", "bob", "cy", "dee"], n), "item": rng.choice(list("abcdefg"), n),
            "age": rng.normal(40, 10, n), "genres": rng.choice(["x|y", "y", "z|x", ""], n)}
    enc = Fe.Encoder(categorical=["user", "item"], numeric=["age"], multi_valued={"genres": "|"}).fit(cols)
    idx, val, _, _ = enc.transform(cols, labels=False)
    y = (idx[:, 0] % 2) * 1.0 + 0.1 * val[:, 2]
    m = bayes.fit((idx, val, y), n_features=enc.n_features, k=2, n_samples=5, burn_in=1, keep=3)
    checkpoint.save(m, tmp_path / "enc.npz", enc.to_arrays())
    loaded, extra = checkpoint.load(tmp_path / "enc.npz")
    assert np.array_equal(loaded.predict(idx, val), m.predict(idx, val))
    again = Fe.Encoder.from_arrays(extra)
    i2, v2, _, _ = again.transform(cols, labels=False)
    assert np.array_equal(i2, idx) and np.array_equal(v2, val)


def test_an_nfm_checkpoint_still_loads_as_before(tmp_path):
    from nfm_numpy.model import FM
    fm = FM(N_FEATURES, k=K, seed=0)
    checkpoint.save(fm, tmp_path / "fm.npz")
    loaded, extra = checkpoint.load(tmp_path / "fm.npz")
    assert type(loaded) is FM and extra == {}


# ------------------------------------------------------------------ damaged and forged files
def arrays_of(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def config_of(arrays):
    return json.loads(str(arrays["config"]))


def set_config(arrays, **changes):
    c = config_of(arrays)
    for key, value in changes.items():
        if value is _DROP:
            c.pop(key)
        else:
            c[key] = value
    arrays["config"] = np.array(json.dumps(c))


_DROP = object()


def npy(arr):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def nan_at(name, where, value=np.nan):
    def change(a):
        x = a[f"samples/{name}"].copy()
        x[where] = value
        a[f"samples/{name}"] = x
    return change


def reshaped(name, shape):
    def change(a):
        a[f"samples/{name}"] = np.zeros(shape)
    return change


def drop(key):
    return lambda a: a.pop(key)


def add(key, value):
    return lambda a: a.__setitem__(key, value)


def config(**changes):
    return lambda a: set_config(a, **changes)


def fm_members(a):
    """An FM's param/ members put beside (or instead of) the samples."""
    from nfm_numpy.model import FM
    for name, value in FM(N_FEATURES, k=K, seed=0).params.items():
        a[f"param/{name}"] = value


def both(*changes):
    def change(a):
        for c in changes:
            c(a)
    return change


# (id, change of the good file's arrays, the member the message must name, a pattern it must hold)
DAMAGED = [
    ("V-one-factor-more", reshaped("V", (KEEP, N_FEATURES, K + 1)), "samples/V.npy", r"\(4, 30, 3\) float64"),
    ("w-one-feature-less", reshaped("w", (KEEP, N_FEATURES - 1)), "samples/w.npy", r"needs \(4, 30\)"),
    ("w0-a-matrix", reshaped("w0", (KEEP, 1)), "samples/w0.npy", "shape"),
    ("V-float32", lambda a: a.__setitem__("samples/V", a["samples/V"].astype(np.float32)), "samples/V.npy",
     "float32"),
    ("V-integers", lambda a: a.__setitem__("samples/V", a["samples/V"].astype(np.int64)), "samples/V.npy", "int64"),
    ("nan-in-w", nan_at("w", (1, 5)), "samples/w.npy", "1 NaN or infinite"),
    ("inf-in-V", nan_at("V", (0, 2, 1), np.inf), "samples/V.npy", "NaN or infinite"),
    ("nan-in-w0", nan_at("w0", 3), "samples/w0.npy", "NaN or infinite"),
    ("forged-keep-more", config(keep=KEEP + 2, n_samples=10), "samples/w0.npy", r"keep 6"),
    ("forged-keep-fewer", config(keep=KEEP - 1), "samples/w0.npy", r"keep 3"),
    ("forged-n-features", config(n_features=N_FEATURES * 1000), "samples/w.npy", "n_features 30000"),
    ("forged-k", config(k=K + 1), "samples/V.npy", "k 4"),
    ("keep-over-n-samples", config(n_samples=KEEP - 1), "configuration", "keep must be <= 3"),
    ("keep-zero", config(keep=0), "configuration", "keep must be >= 1"),
    ("k-zero", config(k=0), "configuration", "k must be >= 1"),
    ("k-a-bool", config(k=True), "configuration", "k must be an integer"),
    ("k-a-float", config(k=3.0), "configuration", "k must be an integer"),
    ("n-features-zero", config(n_features=0), "configuration", "n_features must be >= 1"),
    ("task-unknown", config(task="logistic"), "configuration", "task must be one of regression, probit"),
    ("burn-in-negative", config(burn_in=-1), "configuration", "burn_in must be >= 0"),
    ("prior-incomplete", config(prior={"a0": 0.5}), "configuration", "prior must hold"),
    ("prior-negative", config(prior={**bayes.Prior()._asdict(), "b0": -1.0}), "configuration", "prior.b0"),
    ("no-task", config(task=_DROP), "configuration", "lacks task"),
    ("unknown-key", config(temperature=1.0), "configuration", "has unknown temperature"),
    ("missing-V", drop("samples/V"), "samples/V.npy", "missing"),
    ("missing-w0", drop("samples/w0"), "samples/w0.npy", "missing"),
    ("extra-sample-member", add("samples/mu", np.zeros(3)), "samples/mu.npy", "not part of an nfm_numpy checkpoint"),
    ("extra-unknown-member", add("notes", np.array("hello")), "notes.npy", "not part of an nfm_numpy checkpoint"),
    ("extra-param-member", add("param/w", np.zeros(N_FEATURES)), "param/w.npy", "does not belong .* 'bayes_fm'"),
    ("extra-state-member", add("state/mean0", np.zeros(K)), "state/mean0.npy", "does not belong"),
    ("kind-fm-with-samples", config(kind="fm"), "samples/", "does not belong .* 'fm'"),
    ("kind-nfm-with-samples-and-params", both(config(kind="nfm"), fm_members), "samples/", "does not belong"),
    ("kind-bayes-with-fm-params", both(fm_members, drop("samples/w0"), drop("samples/w"), drop("samples/V")),
     "param/", "does not belong .* 'bayes_fm'"),
    ("raw-ids-one-short", add("extra/raw_ids", np.arange(N_FEATURES - 1)), "raw_ids", "30 integers"),
    ("raw-ids-repeated", add("extra/raw_ids", np.zeros(N_FEATURES, dtype=np.int64)), "raw_ids", "distinct"),
    ("label-range-reversed", add("extra/label_range", np.array([2.0, -1.0])), "label range", "damaged"),
    ("label-range-three", add("extra/label_range", np.zeros(3)), "label range", "2 numbers"),
]


@pytest.mark.parametrize("case", DAMAGED, ids=[c[0] for c in DAMAGED])
def test_a_damaged_file_is_refused_naming_file_and_member(case, good, tmp_path):
    _, change, member, pattern = case
    arrays = arrays_of(good)
    change(arrays)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(bad)
    msg = str(e.value)
    assert str(bad) in msg and member in msg and re.search(pattern, msg), msg
    assert "\n" not in msg


def test_an_encoder_for_other_features_is_refused(good, tmp_path):
    cols = {"user": np.array(["a", "b", "c"])}
    enc = Fe.Encoder(categorical=["user"]).fit(cols)                 # 4 features, the model has 30
    arrays = arrays_of(good)
    arrays.update({f"extra/{k}": v for k, v in enc.to_arrays().items()})
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(CheckpointError, match=r"bad\.npz: the encoder describes 4 features, the model has 30"):
        checkpoint.load(tmp_path / "bad.npz")


def test_a_sample_member_as_a_zip_bomb_is_refused_unread(good, tmp_path):
    """samples/V declares 40 MiB of zeros from a few kilobytes: refused before the configuration is
    even read (the ratio guard), naming the member."""
    n = 2_500_000
    arrays = arrays_of(good)
    set_config(arrays, n_features=n)
    bad = tmp_path / "bomb.npz"
    d = {"descr": "<f8", "fortran_order": False, "shape": (1, n, 2)}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, d)
    header = buf.getvalue()
    warnings.simplefilter("ignore", UserWarning)
    with zipfile.ZipFile(bad, "w") as zout:
        for key, value in arrays.items():
            if key != "samples/V":
                zout.writestr(key + ".npy", npy(value))
        info = zipfile.ZipInfo("samples/V.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zout.open(info, "w", force_zip64=True) as f:
            f.write(header)
            zeros = n * 2 * 8
            chunk = bytes(1 << 20)
            for start in range(0, zeros, len(chunk)):
                f.write(chunk[:min(len(chunk), zeros - start)])
    with pytest.raises(CheckpointError, match=r"bomb\.npz: the member 'samples/V\.npy' .* zip bomb"):
        checkpoint.load(bad)


# ------------------------------------------------------------------ save refuses what load would
def test_save_refuses_a_model_without_samples(tmp_path):
    m = fitted(keep=0)
    with pytest.raises(CheckpointError, match="kept no samples"):
        checkpoint.save(m, tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("change, pattern", [
    (lambda m: setattr(m, "w", m.w.copy() * np.nan), "samples w hold NaN"),
    (lambda m: setattr(m, "V", m.V[:, :, :-1]), r"samples V have shape \(4, 30, 2\)"),
    (lambda m: m.config.update(task="logit"), "task must be one of"),
    (lambda m: m.config.update(colour="red"), "has unknown colour"),
    (lambda m: setattr(m, "label_range", (3.0, 1.0)), "label_range"),
])
def test_save_refuses_what_load_would(change, pattern, tmp_path):
    m = fitted()
    change(m)
    with pytest.raises(CheckpointError, match=pattern):
        checkpoint.save(m, tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_save_names_what_it_takes(tmp_path):
    with pytest.raises(OptionTypeError, match="NFM, FM or BayesFM model, got dict"):
        checkpoint.save({"w": 1}, tmp_path / "m.npz")
    with pytest.raises(OptionTypeError, match="not part of the checkpoint format"):
        checkpoint.save(fitted(), tmp_path / "m.npz", {"samples": np.zeros(3)})
