"""The libFM reader, id mapping, local splits, synthetic data and CSR conversion."""
import numpy as np
import pytest

from nfm_numpy import datasets as D


def write(tmp_path, name, text, newline="\n"):
    p = tmp_path / name
    p.write_bytes(text.replace("\n", newline).encode())
    return p


def test_reads_the_shared_frappe_split(frappe_dir):
    split = D.load(data_dir=frappe_dir)
    assert [len(p) for p in split] == [202_027, 57_722, 28_860]
    assert split.train.n_features == 5382
    assert split.train.idx.shape[1] == 10 and np.all(split.train.val == 1)
    assert set(np.unique(split.test.y)) == {-1.0, 1.0}
    # dense ids by first appearance scanning train, then test, then validation (LoadData.map_features)
    np.testing.assert_array_equal(split.train.idx[0], np.arange(10))
    first_line = (frappe_dir / "frappe.train.libfm").read_text().split("\n", 1)[0].split()
    raw = [int(t.split(":")[0]) for t in first_line[1:]]
    np.testing.assert_array_equal(split.train.raw_ids[:10], raw)
    seen = np.concatenate([split.train.idx.ravel(), split.test.idx.ravel(), split.valid.idx.ravel()])
    assert np.unique(seen).size == 5382
    logsplit = D.load(data_dir=frappe_dir, loss="log")
    assert set(np.unique(logsplit.train.y)) == {0.0, 1.0}
    assert int(logsplit.train.y.sum()) == 67_604


def naive_read(text):
    """An independent line-by-line reader."""
    rows = []
    for line in text.splitlines():
        t = line.split()
        if t:
            rows.append((float(t[0]), [(int(p.split(":")[0]), float(p.split(":")[1])) for p in t[1:]]))
    return rows


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_variable_rows_real_values_any_whitespace(tmp_path, newline):
    text = "1 3:1 10:0.5\n-1\t7:2.25   3:1e-3 \n\n0.5 12:-4\n2 10:1 10:3\n"
    p = write(tmp_path, "a.libfm", text, newline)
    ids, val, y, lines = D.read_libfm(p)
    rows = naive_read(text)
    np.testing.assert_array_equal(y, [r[0] for r in rows])
    np.testing.assert_array_equal(lines, [1, 2, 4, 5])            # the blank line 3 is skipped
    assert ids.shape == (4, 2)
    for i, (_, entries) in enumerate(rows):
        assert [(int(a), float(b)) for a, b in zip(ids[i, :len(entries)], val[i, :len(entries)])] == entries
        assert np.all(ids[i, len(entries):] == -1) and np.all(val[i, len(entries):] == 0)


@pytest.mark.parametrize("bad,line,msg", [
    ("1 3:1\n1 4:x\n", 2, "value 'x' in '4:x' is not a number"),
    ("1 3:1\n1 4\n", 2, "expected 'id:value'"),
    ("1 3:1\n\n1 4: 5\n", 3, "expected 'id:value'"),
    ("1 3:1\nabc 4:1\n", 2, "label 'abc' is not a number"),
    ("1 3:1:2\n", 1, "expected 'id:value'"),
    ("1 -3:1\n", 1, "feature id '-3' in '-3:1' is negative"),
    ("1 3.5:1\n", 1, "feature id '3.5' in '3.5:1' is not a non-negative integer"),
    ("1 3:nan\n", 1, "not finite"),
    ("1 :1\n", 1, "expected 'id:value'"),
])
def test_malformed_line_is_named(tmp_path, bad, line, msg):
    p = write(tmp_path, "bad.libfm", bad)
    with pytest.raises(D.LibFMError, match=rf"bad.libfm, line {line}: .*{msg}"):
        D.read_libfm(p)


def test_local_split_maps_ids_in_train_test_validation_order(tmp_path):
    write(tmp_path, "toy.train.libfm", "1 50:1 7:1\n-1 7:1 9:1\n")
    write(tmp_path, "toy.validation.libfm", "1 1000:1 7:1\n")
    write(tmp_path, "toy.test.libfm", "1 9:1 3:1\n")
    split = D.load(data_dir=tmp_path)
    assert split.train.n_features == 5
    np.testing.assert_array_equal(split.train.raw_ids, [50, 7, 9, 3, 1000])
    np.testing.assert_array_equal(split.train.idx, [[0, 1], [1, 2]])
    np.testing.assert_array_equal(split.test.idx, [[2, 3]])
    np.testing.assert_array_equal(split.valid.idx, [[4, 1]])


def test_read_with_ids_maps_into_a_models_id_space(tmp_path):
    p = write(tmp_path, "new.libfm", "1 9:1 50:2\n")
    ds, ignored = D.read_with_ids(p, np.array([50, 7, 9, 3, 1000]))
    np.testing.assert_array_equal(ds.idx, [[2, 0]])
    np.testing.assert_array_equal(ds.val, [[1, 2]])
    assert ignored == 0
    unk = write(tmp_path, "unk.libfm", "1 9:1\n-1 8:1 50:2\n")
    with pytest.raises(D.LibFMError, match="unk.libfm, line 2: feature id 8 is not one the model was trained with"):
        D.read_with_ids(unk, np.array([50, 7, 9]))
    ds, ignored = D.read_with_ids(unk, np.array([50, 7, 9]), unseen="ignore")
    assert ignored == 1
    np.testing.assert_array_equal(ds.val, [[1, 0], [0, 2]])        # the unseen id 8 is dropped (x = 0)
    np.testing.assert_array_equal(ds.idx[1, 1], 0)                 # 50 is dense id 0


def test_missing_split_file_is_named(tmp_path):
    write(tmp_path, "toy.train.libfm", "1 1:1\n")
    with pytest.raises(FileNotFoundError, match="toy.validation.libfm"):
        D.load(data_dir=tmp_path)


def test_synthetic_is_deterministic_and_has_a_known_noise_floor():
    a = D.synthetic(n_train=2000, n_valid=500, n_test=500, seed=3)
    b = D.synthetic(n_train=2000, n_valid=500, n_test=500, seed=3)
    c = D.synthetic(n_train=2000, n_valid=500, n_test=500, seed=4)
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa.idx, pb.idx)
        np.testing.assert_array_equal(pa.y, pb.y)
    assert not np.array_equal(a.train.y, c.train.y)
    assert a.train.n_features == sum(D.SYNTHETIC_FIELDS) and a.train.idx.shape[1] == len(D.SYNTHETIC_FIELDS)
    for f, (lo, card) in enumerate(zip(np.cumsum((0,) + D.SYNTHETIC_FIELDS[:-1]), D.SYNTHETIC_FIELDS)):
        assert lo <= a.train.idx[:, f].min() and a.train.idx[:, f].max() < lo + card   # one value per field
    # noiseless labels minus noisy labels: the noise, with the sigma asked for
    clean = D.synthetic(n_train=20000, n_valid=10, n_test=10, noise=0.0, seed=5)
    noisy = D.synthetic(n_train=20000, n_valid=10, n_test=10, noise=0.1, seed=5)
    np.testing.assert_array_equal(clean.train.idx, noisy.train.idx)
    assert np.std(noisy.train.y - clean.train.y) == pytest.approx(0.1, rel=0.03)
    logd = D.synthetic(n_train=1000, n_valid=10, n_test=10, loss="log")
    assert set(np.unique(logd.train.y)) == {0.0, 1.0}
