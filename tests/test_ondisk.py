"""The out-of-core route: CSV read in pieces, the encoder fitted on pieces, rows encoded to an
on-disk cache and trained on a shard at a time. Each is checked against the in-memory route on
data that fits, which is the independent oracle here."""
import json
import subprocess
import sys

import numpy as np
import pytest

from nfm_numpy import features as F, ondisk, train as T
from nfm_numpy.errors import DataError, OptionError
from nfm_numpy.model import NFM

KW = dict(categorical=["a", "b"], numeric={"c": 0, "d": 4}, multi_valued={"m": "|"})


def write_rows(path, n, seed, wide_cell_at=None):
    """A file with a learnable label: two categorical columns, a numeric one, a bucketed one with
    missing cells, a multi-valued one."""
    r = np.random.default_rng(seed)
    a, b, c = r.integers(0, 30, n), r.integers(0, 20, n), r.normal(size=n)
    d = np.round(r.exponential(3, n), 1)
    y = (a % 3) - (b % 2) + 0.5 * c + 0.3 * ((a * b) % 5 == 0)
    with open(path, "w") as f:
        f.write("y,a,b,c,d,m\n")
        for i in range(n):
            m = "p|q|r|s" if i == wide_cell_at else ("p|q" if i % 3 else "r")
            f.write(f"{y[i]:.4f},a{a[i]},b{b[i]},{c[i]:.3f},{'' if i % 11 == 0 else d[i]},{m}\n")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ooc")
    return dict(train=str(write_rows(d / "tr.csv", 3000, 1)), valid=str(write_rows(d / "va.csv", 600, 2)),
                test=str(write_rows(d / "te.csv", 600, 3, wide_cell_at=5)), dir=d)


def history(split, n_features, epochs=3):
    model = NFM(n_features, k=8, layers=[8], seed=1)
    hist = T.fit(model, split, epochs=epochs, log=None)
    return model, [(e["train"], e["valid"], e["test"]) for e in hist.epochs]


# ------------------------------------------------------------------ reading in pieces
TRICKY = ('y,a,b\n1,x,"two\nlines"\n\n2,"a ""quoted"" cell",3\r\n3,z,\n4,"",5\n'
          '5,last,row-without-newline')


@pytest.mark.parametrize("rows", [1, 2, 3, 1000])
def test_pieces_are_the_whole_file(tmp_path, rows):
    p = tmp_path / "t.csv"
    p.write_bytes(b"\xef\xbb\xbf" + TRICKY.encode())
    whole = F.read_csv(str(p))
    pieces = list(F.read_csv_chunks(str(p), rows=rows))
    assert all(len(t) <= rows for t in pieces)
    assert np.array_equal(np.concatenate([t.lines for t in pieces]), whole.lines)
    for name in whole.names:
        assert np.concatenate([t[name] for t in pieces]).tolist() == whole[name].tolist()
    assert ondisk.count_rows(str(p)) == len(whole)


@pytest.mark.parametrize("data", [b"y,a\n1,x\n1,x,3\n", b"y,a\n1,x\n1,\xff\n", b'y,a\n1,"x\n', b"y,a\n", b"",
                                  b"\xff\xfey,a\n", b"y,a\n1,x\x00\n", b"y,y\n1,2\n", b"\ny,a\n1,2\n"])
def test_pieces_refuse_what_read_csv_refuses_with_its_message(tmp_path, data):
    p = tmp_path / "bad.csv"
    p.write_bytes(data)
    with pytest.raises(DataError) as whole:
        F.read_csv(str(p))
    with pytest.raises(DataError) as pieces:
        list(F.read_csv_chunks(str(p), rows=1))
    assert str(pieces.value) == str(whole.value)


def test_count_rows_without_quotes_counts_lines_not_blank(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("a,b\n1,2\n\n\r\n3,4\n5,6")
    assert ondisk.count_rows(str(p), block=3) == 3 == sum(len(t) for t in F.read_csv_chunks(str(p)))


# ------------------------------------------------------------------ the encoder
@pytest.mark.parametrize("rows", [1, 7, 10_000])
def test_fit_on_pieces_is_fit_on_all_rows(files, rows):
    whole = F.Encoder(label="y", min_count=3, **KW).fit(F.read_csv(files["train"]))
    pieces = F.Encoder(label="y", min_count=3, **KW).fit_chunks(F.read_csv_chunks(files["train"], rows=rows))
    a, b = whole.to_arrays(), pieces.to_arrays()
    assert sorted(a) == sorted(b)
    for key in a:
        if key != "encoder":
            assert np.array_equal(a[key], b[key]), key           # vocabularies, rare values, bucket edges
    sa, sb = json.loads(str(a["encoder"])), json.loads(str(b["encoder"]))
    for fa, fb in zip(sa["fields"], sb["fields"]):
        exact = rows >= 3000                                      # one piece: the same operations, bit for bit
        for stat in ("mean", "sd"):
            assert fa[stat] == fb[stat] if exact else fa[stat] == pytest.approx(fb[stat], rel=1e-12, abs=1e-14)
        assert {k: v for k, v in fa.items() if k not in ("mean", "sd")} == \
               {k: v for k, v in fb.items() if k not in ("mean", "sd")}


def test_bucket_edges_from_a_sample_that_does_not_depend_on_the_pieces(files, monkeypatch):
    monkeypatch.setattr(F, "BUCKET_SAMPLE", 500)
    edges = [F.Encoder(label="y", **KW).fit_chunks(F.read_csv_chunks(files["train"], rows=r)).fields[3].edges
             for r in (13, 3000)]
    assert np.array_equal(edges[0], edges[1])
    d = F._numbers(F.read_csv(files["train"]), "d", F.MISSING)
    exact = np.quantile(d[~np.isnan(d)], [0.25, 0.5, 0.75])
    assert np.allclose(edges[0], exact, atol=0.5)                 # a 500-value sample of ~2,700 values


# ------------------------------------------------------------------ the cache against the in-memory route
def test_one_shard_trains_exactly_as_in_memory(files):
    kw = dict(valid_path=files["valid"], test_path=files["test"], **KW)
    split, enc, _ = F.load_csv_split(files["train"], "y", **kw)
    disk, denc, _ = ondisk.build_csv_cache(files["dir"] / "one", files["train"], "y", chunk_rows=250, log=None,
                                           **kw)
    assert str(enc) == str(denc) and len(disk.train.shards) == 1
    assert disk.test.width == split.test.idx.shape[1] > split.train.idx.shape[1]   # the test file's wider cell
    m1, h1 = history(split, enc.n_features)
    m2, h2 = history(disk, enc.n_features)
    assert h1 == h2
    assert np.array_equal(T.predictions(m1, split.test), T.predictions(m2, disk.test))


def test_shards_see_the_same_rows_in_another_order_and_learn_as_well(files):
    kw = dict(valid_path=files["valid"], test_path=files["test"], **KW)
    split, enc, _ = F.load_csv_split(files["train"], "y", **kw)
    disk, _, _ = ondisk.build_csv_cache(files["dir"] / "many", files["train"], "y", shard_rows=500, log=None, **kw)
    assert len(disk.train.shards) == 6 and sum(disk.train.shards) == 3000
    assert np.array_equal(np.sort(disk.train.y), np.sort(split.train.y))
    _, h1 = history(split, enc.n_features, epochs=6)
    _, h2 = history(disk, enc.n_features, epochs=6)
    best1, best2 = min(h[1] for h in h1), min(h[1] for h in h2)
    assert best2 == pytest.approx(best1, rel=0.15)
    assert best2 < 0.5 * np.std(split.valid.y)                    # far better than predicting the mean


def test_split_of_one_file_gives_the_in_memory_parts(files):
    split, enc, _ = F.load_csv_split(files["train"], "y", split=(0.6, 0.3, 0.1), seed=4, **KW)
    disk, denc, _ = ondisk.build_csv_cache(files["dir"] / "split", files["train"], "y", split=(0.6, 0.3, 0.1),
                                           seed=4, chunk_rows=400, log=None, **KW)
    assert str(enc) == str(denc)
    for a, b in zip(split, disk):
        assert len(a) == len(b)
        assert np.array_equal(np.sort(a.y), np.sort(b.y))


def test_training_holds_one_shard_at_a_time(files, monkeypatch):
    disk, enc, _ = ondisk.build_csv_cache(files["dir"] / "many", files["train"], "y", shard_rows=500, log=None,
                                          valid_path=files["valid"], test_path=files["test"], **KW)
    read = []
    real = np.fromfile

    def spy(file, dtype, count=-1, offset=0):
        out = real(file, dtype, count, offset=offset)
        read.append((str(file), out.size))
        return out
    monkeypatch.setattr(ondisk.np, "fromfile", spy)
    T.fit(NFM(enc.n_features, k=4, layers=[4], seed=0), disk, epochs=2, log=None)
    width = disk.train.width
    train_reads = [size for name, size in read if "/train." in name and name.endswith(".idx")]
    assert len(train_reads) == 2 * 6 and max(train_reads) == max(disk.train.shards) * width
    assert max(size for _, size in read) <= max(max(disk.train.shards), ondisk.CHUNK_ROWS) * width


def test_a_cache_is_reused_for_the_same_files_and_made_again_for_others(tmp_path):
    src = write_rows(tmp_path / "s.csv", 300, 5)
    lines = []
    for _ in range(2):
        ondisk.build_csv_cache(tmp_path / "c", src, "y", log=lines.append, **KW)
    assert any("reading it" in line for line in lines[-1:])
    write_rows(tmp_path / "s.csv", 310, 6)
    lines.clear()
    split, _, _ = ondisk.build_csv_cache(tmp_path / "c", src, "y", log=lines.append, **KW)
    assert not any("reading it" in line for line in lines) and sum(len(p) for p in split) == 310


def test_log_loss_labels_of_two_kinds_in_two_pieces_are_refused(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("y,a\n" + "1,x\n0,y\n" * 3 + "-1,z\n1,x\n" * 3)
    with pytest.raises(DataError, match="0/1 or -1/1"):
        F.load_csv_split(str(p), "y", categorical="*", loss="log", valid_path=str(p), test_path=str(p))
    with pytest.raises(DataError, match=r"line 8: label -1, and .*line 3: label 0"):
        ondisk.build_csv_cache(tmp_path / "c", str(p), "y", categorical="*", loss="log", chunk_rows=6, log=None,
                               valid_path=str(p), test_path=str(p))


def test_the_command_line_trains_from_a_cache_and_refuses_what_needs_all_rows(files, tmp_path):
    base = [sys.executable, "-m", "nfm_numpy", "train", "--csv", files["train"], "--label", "y", "--categorical",
            "a,b", "--numeric", "c,d:4", "--multi-valued", "m:|", "--cache", str(tmp_path / "c")]
    done = subprocess.run(base + ["--epochs", "2", "--save", str(tmp_path / "m.npz")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "pass 3 of 3" in done.stdout and "test rmse" in done.stdout and (tmp_path / "m.npz").exists()
    evaluated = subprocess.run([sys.executable, "-m", "nfm_numpy", "evaluate", "--load", str(tmp_path / "m.npz"),
                                "--csv", files["test"]], capture_output=True, text=True)
    assert evaluated.returncode == 0, evaluated.stderr
    for extra, what in ((["--negatives", "1", "--user-col", "a", "--item-col", "b"], "--negatives"),
                        (["--solver", "mcmc", "--model", "fm"], "--solver mcmc"),
                        (["--train-rows", "10"], "--train-rows")):
        bad = subprocess.run(base + extra, capture_output=True, text=True)
        assert bad.returncode == 2 and what in bad.stderr and "--cache" in bad.stderr


def test_options_are_checked_before_any_file_is_read(tmp_path):
    with pytest.raises(OptionError, match="both"):
        ondisk.build_csv_cache(tmp_path / "c", str(tmp_path / "absent.csv"), "y", valid_path="v.csv", **KW)
    assert not (tmp_path / "c").exists()


def test_a_positive_class_is_decided_by_all_training_rows_not_the_first_piece(tmp_path):
    p = tmp_path / "yes.csv"
    p.write_text("y,a\n" + "yes,x\n" * 8 + "no,y\nyes,y\n" * 8)         # the first pieces hold one class only
    kw = dict(categorical="*", loss="log", positive="yes")
    split, enc, notes = F.load_csv_split(str(p), "y", valid_path=str(p), test_path=str(p), **kw)
    disk, _, dnotes = ondisk.build_csv_cache(tmp_path / "c", str(p), "y", chunk_rows=4, log=None,
                                             valid_path=str(p), test_path=str(p), **kw)
    assert np.array_equal(disk.train.y, split.train.y) and sorted(notes) == sorted(dnotes)


def test_the_split_route_reads_the_file_twice_after_counting(files, monkeypatch):
    calls = []
    real = ondisk.read_csv_chunks
    monkeypatch.setattr(ondisk, "read_csv_chunks", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    ondisk.build_csv_cache(files["dir"] / "twice", files["train"], "y", chunk_rows=500, log=None, **KW)
    assert calls == [files["train"]] * 2              # the encoder's pass and the writing pass (counting: no parse)


def test_a_cache_folder_keeps_the_users_own_files(tmp_path):
    src = write_rows(tmp_path / "s.csv", 200, 8)
    folder = tmp_path / "shared"
    folder.mkdir()
    mine = {"notes.y": b"mine", "data.idx": b"mine too", "train.0000.idx.bak": b"a backup"}
    for name, data in mine.items():
        (folder / name).write_bytes(data)
    for seed in (0, 1):                                   # the second build removes the first one's files only
        ondisk.build_csv_cache(folder, src, "y", seed=seed, log=None, **KW)
    assert all((folder / name).read_bytes() == data for name, data in mine.items())


def test_a_cache_path_that_is_a_file_is_refused(tmp_path):
    src = write_rows(tmp_path / "s.csv", 50, 9)
    with pytest.raises(OptionError, match="cannot make the folder"):
        ondisk.build_csv_cache(src, src, "y", log=None, **KW)
    assert src.read_text().startswith("y,a,b")


@pytest.mark.parametrize("data, message", [(b"", "no header row"), (b"y,a\n", "a header row and no data rows"),
                                           (b"\n\n", "no header row")])
def test_counting_an_empty_file_says_what_is_missing(tmp_path, data, message):
    p = tmp_path / "e.csv"
    p.write_bytes(data)
    with pytest.raises(DataError, match=message):
        ondisk.count_rows(str(p))
    with pytest.raises(DataError, match=message):
        ondisk.build_csv_cache(tmp_path / "c", str(p), "y", log=None, categorical="*")
