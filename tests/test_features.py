"""Your own data: the CSV reader, the feature encoder, negatives, splits, and the --csv commands."""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import nfm_numpy as nf
from nfm_numpy import checkpoint, cli, features as Fe
from nfm_numpy.errors import DataError, OptionError

FRAPPE_RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "frappe-raw"


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


MOVIES = ("user,movie,genres,year,label\n"
          "u1,m1,Action|Comedy,1999,1\n"
          "u2,m1,Action|Comedy,1999,-1\n"
          "u1,m2,Drama,2005,-1\n"
          "u3,m3,,2010,1\n"
          "u2,m2,Drama,,1\n"
          "u1,m3,Comedy|Comedy|Drama,2010,1\n")


def movies(tmp_path):
    return Fe.read_csv(write(tmp_path, "movies.csv", MOVIES))


def encoder(**kw):
    return Fe.Encoder(categorical=["user", "movie"], numeric=["year"], multi_valued={"genres": "|"},
                      label="label", **kw)


def row_features(enc, idx, val, r):
    """{field name: {value: x}} of row r, read back through the vocabularies (an independent view)."""
    out = {}
    for f in enc.fields:
        ids = idx[r][(idx[r] >= f.offset) & (idx[r] < f.offset + f.size) & (val[r] != 0)]
        xs = val[r][(idx[r] >= f.offset) & (idx[r] < f.offset + f.size) & (val[r] != 0)]
        names = {f.offset: "<oov>"}
        if f.vocab is not None:
            names.update({f.offset + 1 + i: v for i, v in enumerate(f.vocab.tolist())})
        out[f.name] = {names.get(int(i), int(i)): float(x) for i, x in zip(ids, xs)}
    return out


# ------------------------------------------------------------------ the encoder
def test_fields_ids_and_values(tmp_path):
    t = movies(tmp_path)
    enc = encoder().fit(t)
    idx, val, y, unseen = enc.transform(t)
    assert unseen == 0 and y.tolist() == [1, -1, -1, 1, 1, 1]
    # every field owns a contiguous id range, OOV first; n_features is their sum
    # (user: OOV + 3 values; movie: OOV + 3; genres: OOV + Action, Comedy, Drama, ''; year: 1)
    assert [f.name for f in enc.fields] == ["user", "movie", "genres", "year"]      # the file's column order
    assert [f.offset for f in enc.fields] == [0, 4, 8, 13] and enc.n_features == 14
    r0 = row_features(enc, idx, val, 0)
    assert r0["user"] == {"u1": 1.0} and r0["movie"] == {"m1": 1.0}
    assert r0["genres"] == {"Action": 0.5, "Comedy": 0.5}                # x = 1/m: a field's values sum to 1
    assert row_features(enc, idx, val, 5)["genres"] == {"Comedy": 0.5, "Drama": 0.5}   # Comedy|Comedy: once
    assert row_features(enc, idx, val, 3)["genres"] == {"": 1.0}          # an empty cell is a value of its own
    # numeric: (v - mean) / sd over the training values; a missing cell is x = 0 (the mean)
    years = np.array([1999, 1999, 2005, 2010, 2010], float)
    year = next(f for f in enc.fields if f.name == "year")
    assert year.mean == pytest.approx(years.mean()) and year.sd == pytest.approx(years.std())
    col = list(idx[0]).index(year.offset)
    assert val[0, col] == pytest.approx((1999 - years.mean()) / years.std())
    assert val[4, list(idx[4]).index(year.offset)] == 0.0
    text = str(enc)
    for piece in ("user", "categorical", "multi", "separator '|'", "numeric", "total"):
        assert piece in text


def test_vocabulary_is_most_frequent_first_and_rare_values_share_the_oov_id(tmp_path):
    t = movies(tmp_path)
    enc = encoder(min_count=2).fit(t)
    user = enc.fields[0]
    assert user.vocab.tolist() == ["u1", "u2"]                            # u1 x3, u2 x2; u3 once: rare
    idx, val, _, _ = enc.transform(t)
    assert row_features(enc, idx, val, 3)["user"] == {"<oov>": 1.0}


def test_counts_of_an_encoder_fitted_on_rows_taken_from_a_larger_table(tmp_path):
    t = movies(tmp_path)
    for name in ("user", "movie", "genres"):
        t.codes(name)                     # factorised once on the whole table (add_negatives does this), then
    part = t.take(np.arange(4))           # shared by the tables taken from it: the first four rows
    enc = encoder(min_count=2).fit(part)
    user, genres = enc.fields[0], enc.fields[2]
    assert user.counts == {"values": 3, "rare": 2} and user.vocab.tolist() == ["u1"]   # u1 x2, u2 x1, u3 x1
    assert genres.counts["values"] == 4                  # Action, Comedy, Drama and the empty cell, a value too
    # a value only in rows the encoder did not see is neither a value nor a rare one
    full = encoder(min_count=1).fit(t.take(np.arange(3)))                 # u3 and m3 are not in these rows
    assert full.fields[0].counts == {"values": 2, "rare": 0} and "2 values, 0 rare" in str(full)


def test_unseen_values_oov_ignore_or_error(tmp_path):
    enc = encoder().fit(movies(tmp_path))
    new = Fe.read_csv(write(tmp_path, "new.csv",
                            "user,movie,genres,year\nu9,m1,Horror|Action,2001\nu1,m1,Drama,1999\n"))
    idx, val, y, unseen = enc.transform(new)
    assert y is None and unseen == 2                                       # u9 and Horror
    r = row_features(enc, idx, val, 0)
    assert r["user"] == {"<oov>": 1.0} and r["genres"] == {"<oov>": 0.5, "Action": 0.5}
    idx, val, _, unseen = enc.transform(new, unseen="ignore")
    r = row_features(enc, idx, val, 0)
    assert r["user"] == {} and r["genres"] == {"Action": 0.5}             # x = 0: as if absent
    with pytest.raises(DataError, match=r"new\.csv, line 2, column 'user': value 'u9' was never seen in training"):
        enc.transform(new, unseen="error")


def test_quantile_buckets(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=1000)
    enc = Fe.Encoder(numeric={"x": 4}).fit({"x": x})
    f = enc.fields[0]
    np.testing.assert_allclose(f.edges, np.quantile(x, [0.25, 0.5, 0.75]))
    idx, val, _, _ = enc.transform({"x": np.array([-5.0, -0.1, 0.1, 5.0, np.nan])})
    assert idx[:, 0].tolist() == [1, 2, 3, 4, 0] and np.all(val == 1)       # missing -> the OOV id 0
    assert np.bincount(enc.transform({"x": x})[0][:, 0], minlength=5)[1:].tolist() == [250] * 4


def test_never_more_buckets_than_distinct_values():
    enc = Fe.Encoder(numeric={"x": 10**20}).fit({"x": np.repeat([1.0, 2.0, 3.0], 10)})
    assert enc.fields[0].edges.size <= 2 and enc.n_features <= 4               # OOV + at most 3 buckets


def test_a_standardised_value_too_large_for_float32_is_named_by_line_and_column(tmp_path):
    enc = Fe.Encoder(numeric=["age"], label="y").fit(Fe.read_csv(write(tmp_path, "t.csv", "age,y\n20,1\n40,0\n")))
    with pytest.raises(DataError, match=r"p\.csv, line 3, column 'age': the standardised value .* does not fit "
                                        r"float32 \(max 3\.4e\+38\); a model trained with --dtype float64 holds it"):
        Fe.read_csv_dataset(write(tmp_path, "p.csv", "age,y\n30,1\n1e300,0\n"), enc)
    assert len(Fe.read_csv_dataset(write(tmp_path, "q.csv", "age,y\n1e300,0\n"), enc, dtype=np.float64)[0]) == 1


def test_round_trip_through_a_checkpoint(tmp_path):
    t = movies(tmp_path)
    enc = encoder().fit(t)
    model = nf.FM(enc.n_features, k=3)
    checkpoint.save(model, tmp_path / "m.npz", enc.to_arrays())
    _, extra = checkpoint.load(tmp_path / "m.npz")
    back = Fe.Encoder.from_arrays(extra)
    for a, b in zip(enc.transform(t), back.transform(t)):
        np.testing.assert_array_equal(a, b)
    assert str(back) == str(enc)
    extra["encoder"] = np.array("{not json")
    with pytest.raises(nf.errors.CheckpointError, match="feature encoder is damaged"):
        Fe.Encoder.from_arrays(extra)


def test_a_mapping_of_arrays_works_as_a_csv_does(tmp_path):
    """dict(df) of a pandas DataFrame, or any mapping: numbers and text encode as the file's text."""
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(tmp_path / "x.csv" if False else write(tmp_path, "movies.csv", MOVIES), keep_default_na=False)
    df["year"] = pd.to_numeric(df["year"])
    t = movies(tmp_path)
    a = encoder().fit(t).transform(t)
    b = encoder().fit(dict(df)).transform(dict(df))
    for x, z in zip(a, b):
        np.testing.assert_array_equal(x, z)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcde"), st.lists(st.sampled_from("xyz"), max_size=3),
                          st.floats(-1e6, 1e6)), min_size=1, max_size=30))
def test_encoding_properties(rows):
    """For any table: ids stay in their field's range, multi-valued x sum to 1 per row,
    numeric x are standardised, and a saved encoder gives the same rows."""
    cat = np.array([r[0] for r in rows], dtype=object)
    multi = np.array(["|".join(r[1]) for r in rows], dtype=object)
    num = np.array([r[2] for r in rows])
    data = {"c": cat, "m": multi, "n": num}
    enc = Fe.Encoder(categorical=["c"], numeric=["n"], multi_valued={"m": "|"}).fit(data)
    idx, val, _, unseen = enc.transform(data)
    assert unseen == 0 and idx.max() < enc.n_features
    fields = {f.name: f for f in enc.fields}
    m = fields["m"]
    in_m = (idx >= m.offset) & (idx < m.offset + m.size) & (val > 0)
    np.testing.assert_allclose((val * in_m).sum(1), 1.0)
    n = fields["n"]
    x = val[idx == n.offset]
    np.testing.assert_allclose(x, (num - num.mean()) / (num.std() if num.std() > 0 else 1.0), atol=1e-9)
    back = Fe.Encoder.from_arrays(enc.to_arrays())
    np.testing.assert_array_equal(back.transform(data)[0], idx)


# ------------------------------------------------------------------ the CSV reader
def test_tab_and_comma_are_sniffed_and_quotes_follow_csv_rules(tmp_path):
    a = Fe.read_csv(write(tmp_path, "a.tsv", "x\ty\n1\t\"a,b\"\n2\tc\n"))
    assert a.names == ["x", "y"] and a["y"].tolist() == ["a,b", "c"]
    b = Fe.read_csv(write(tmp_path, "b.csv", "x,y\n1,\"two\nlines\"\n\n3,z\n"))
    assert b["y"].tolist() == ["two\nlines", "z"] and b.lines.tolist() == [2, 5]


@pytest.mark.parametrize("text,pattern", [
    ("", r"no header row"),
    ("a,b\n", r"a header row and no data rows"),
    ("a,b\n1,2\n3\n", r"bad\.csv, line 3: 1 fields, but the header has 2"),
    ("a,a\n1,2\n", r"line 1, column 2: the header names column 'a' twice"),
    ("a,b\n1,\"2\n3,4\n", r"bad\.csv, line 2: unexpected end of data \(an unclosed quote"),
])
def test_malformed_csv_is_named_by_file_and_line(tmp_path, text, pattern):
    with pytest.raises(DataError, match=pattern):
        Fe.read_csv(write(tmp_path, "bad.csv", text))


def test_text_in_a_numeric_column_names_file_line_and_column(tmp_path):
    t = Fe.read_csv(write(tmp_path, "n.csv", "a,price\nx,1.5\ny,NA\nz,cheap\n"))
    with pytest.raises(DataError, match=r"n\.csv, line 4, column 'price': 'cheap' is not a number"):
        Fe.Encoder(categorical="a", numeric=["price"]).fit(t)
    # what float() would take but a number column should not: underscores, non-ASCII digits
    for cell in ("1_000", "\uff11\uff12", "\u0661"):
        u = Fe.read_csv(write(tmp_path, "u.csv", f"a,price\nx,1.5\ny,{cell}\n"))
        with pytest.raises(DataError, match=r"u\.csv, line 3, column 'price': .* is not a number"):
            Fe.Encoder(categorical="a", numeric=["price"]).fit(u)
    enc = Fe.Encoder(categorical="a", numeric=["price"], missing=("NA", "cheap")).fit(t)     # or say it means "missing"
    assert enc.fields[1].counts["missing"] == 2


def test_not_utf8_is_an_error(tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes("a,b\ncafé,1\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        Fe.read_csv(p)


def test_bad_encoder_options():
    with pytest.raises(OptionError, match="given two kinds"):
        Fe.Encoder(categorical=["a"], numeric=["a"])
    with pytest.raises(OptionError, match="label column 'y' cannot also be a feature"):
        Fe.Encoder(categorical=["y"], label="y")
    with pytest.raises(OptionError, match="no column 'zz'"):
        Fe.Encoder(categorical=["zz"]).fit({"a": np.array(["x"])})
    with pytest.raises(nf.errors.InputError, match="not fitted"):
        Fe.Encoder().transform({"a": np.array(["x"])})
    with pytest.raises(OptionError, match="'a' is both ignored and given a kind"):
        Fe.Encoder(categorical=["a"], ignore=["a"])
    with pytest.raises(OptionError, match="'y' is both ignored and the label"):
        Fe.Encoder(label="y", ignore=["y"])
    with pytest.raises(OptionError, match="delimiter must be one character"):
        Fe.read_csv("any.csv", delimiter=",,")
    with pytest.raises(OptionError, match="user and item columns must differ"):
        Fe.add_negatives({"u": np.array(["a", "b"]), "i": np.array(["x", "y"])}, "u", "u")


def test_repeated_column_options_add_up(tmp_path, capsys):
    d = write(tmp_path, "r.csv", "a,b,c,y\n" + "".join(f"a{i % 3},b{i % 2},c{i % 4},{i % 2}\n" for i in range(40)))
    assert cli.main(["train", "--csv", str(d), "--label", "y", "--ignore", "a", "--ignore", "b", "--categorical", "*",
                     "--epochs", "1",
                     "--missing", "?", "--progress", "0", "--batch-size", "8"]) == 0
    fields = [line.split()[0] for line in capsys.readouterr().out.splitlines() if "categorical" in line]
    assert fields == ["c"]


# ------------------------------------------------------------------ negatives and splits
def test_negatives_share_user_and_context_and_are_never_used_items(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    log = {name: rng.integers(0, size, n).astype(str).astype(object)
           for name, size in (("user", 30), ("item", 50), ("hour", 24))}
    out = Fe.add_negatives(log, "user", "item", n=3, seed=1)
    assert len(out) == 4 * n
    assert out["label"].tolist() == [1.0] * n + [-1.0] * (3 * n)
    used = set(zip(log["user"].tolist(), log["item"].tolist()))
    neg_u, neg_i, neg_h = (out[c][n:] for c in ("user", "item", "hour"))
    assert not any((u, i) in used for u, i in zip(neg_u.tolist(), neg_i.tolist()))
    src = np.repeat(np.arange(n), 3)                                          # the positive each copies
    assert neg_u.tolist() == log["user"][src].tolist() and neg_h.tolist() == log["hour"][src].tolist()
    groups = neg_i.reshape(n, 3)
    assert all(len(set(g)) == 3 for g in groups.tolist())                  # distinct for one positive
    again = Fe.add_negatives(log, "user", "item", n=3, seed=1)
    assert again["item"].tolist() == out["item"].tolist()                  # seeded
    with pytest.raises(OptionError, match="already has a column 'hour'"):
        Fe.add_negatives(log, "user", "item", label="hour")


def test_a_user_who_used_every_item_is_an_error():
    log = {"user": np.array(["a", "a", "b"], dtype=object), "item": np.array(["x", "y", "x"], dtype=object)}
    with pytest.raises(DataError, match="user 'a' used 2 of the 2 items"):
        Fe.add_negatives(log, "user", "item", n=1)


def test_split_rows_is_seeded_and_covers_every_row_once():
    parts = Fe.split_rows(1000, (0.7, 0.2, 0.1), seed=3)
    assert [p.size for p in parts] == [700, 200, 100]
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(1000))
    assert all(np.array_equal(a, b) for a, b in zip(parts, Fe.split_rows(1000, (0.7, 0.2, 0.1), seed=3)))
    with pytest.raises(OptionError, match="sum to 1"):
        Fe.split_rows(10, (0.5, 0.2, 0.1))


def test_join_adds_side_information_by_key():
    t = {"item": np.array(["1", "2", "9"], dtype=object)}
    meta = {"item": np.array([1, 2]), "category": np.array(["Tools", "Games"], dtype=object)}
    out = Fe.join(t, meta, "item", ["category"])
    assert out["category"].tolist() == ["Tools", "Games", ""]               # a key without metadata: empty


def test_an_error_in_a_joined_cell_names_the_file_it_came_from(tmp_path):
    # the log's rows are shuffled and copied (negatives, a split) before the join, as in notebook 8
    log = Fe.read_csv(write(tmp_path, "log.csv", "user,item\nu1,a\nu2,b\nu1,c\nu3,b\nu2,d\n"))
    meta = Fe.read_csv(write(tmp_path, "meta.csv", "item,rating,price\na,4.5,1\nb,4.1,2\nc,unknown,3\nd,3.9,x\n"))
    rows = Fe.add_negatives(log, "user", "item", n=1, seed=0)
    rows = rows.take(np.random.default_rng(1).permutation(len(rows)))
    joined = Fe.join(rows, meta, "item", ["rating"], prefix="m_")
    first = joined.first(joined["m_rating"] == "unknown")             # the cell the encoder reports
    at_log = f"\\S*log\\.csv, line {joined.lines[first]}"
    with pytest.raises(DataError, match=r"meta\.csv, line 4, column 'rating' \(joined by item 'c' to " + at_log +
                       r"\): 'unknown' is not a number \(a numeric column; .* add it to missing"):
        Fe.Encoder(categorical="*", numeric=["m_rating"], label="label").fit(joined)
    enc = Fe.Encoder(categorical="*", numeric=["m_rating"], label="label", missing=Fe.MISSING + ("unknown",))
    assert enc.fit(joined).fields[-1].counts["missing"] == int((joined["m_rating"] == "unknown").sum())
    # the origin goes with the cells through take(), and only with them: a column replaced, or one of
    # the table's own, names the table's own line
    part = joined.take(np.arange(len(joined))[::-1])
    assert part.where(0, "m_rating").startswith(str(tmp_path / "meta.csv"))
    assert part.where(0, "user").startswith(str(tmp_path / "log.csv"))
    assert part.with_column("m_rating", np.zeros(len(part))).where(0, "m_rating") == \
        f"{tmp_path / 'log.csv'}, line {part.lines[0]}, column 'm_rating'"
    # a key the other table lacks: an empty cell, and the message says so
    lone = Fe.join({"item": np.array(["a", "z"], dtype=object)}, meta, "item", ["price"])
    assert lone.where(1, "price") == f"data, row 2, column 'price' (empty: joined from {tmp_path / 'meta.csv'}, " \
                                     "which has no row with item 'z')"
    with pytest.raises(DataError, match=r"meta\.csv, line 5, column 'price' \(joined by item 'd' to data, row 1\)"):
        Fe.Encoder(categorical="item", numeric=["price"]).fit(Fe.join({"item": np.array(["d"], dtype=object)}, meta,
                                                                       "item", ["price"]))


def test_raw_frappe_log_gives_the_papers_row_count():
    path = FRAPPE_RAW / "frappe.csv"
    if not path.exists():
        pytest.skip(f"the raw Frappe log is not at {path} (it may not be redistributed)")
    log = Fe.read_csv(path)
    assert len(log) == 96_203
    out = Fe.add_negatives(log, "user", "item", n=2, seed=0)
    assert len(out) == 288_609
    used = set(zip(log["user"].tolist(), log["item"].tolist()))
    assert not any(p in used for p in zip(out["user"][96_203:].tolist(), out["item"][96_203:].tolist()))
    for col in ("daytime", "weekday", "city"):
        assert out[col][96_203:].tolist() == np.repeat(log[col], 2).tolist()


# ------------------------------------------------------------------ the command line
def test_csv_train_predict_evaluate(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = 600
    users, items = rng.integers(0, 20, n), rng.integers(0, 15, n)
    taste = rng.standard_normal(20)[users] * rng.standard_normal(15)[items]
    lines = ["user,item,tags,price,label"] + [
        f"u{u},i{i},{'a|b' if i % 2 else 'c'},{10 + i},{t + 0.1 * e:.4f}"
        for u, i, t, e in zip(users, items, taste, rng.standard_normal(n))]
    data = write(tmp_path, "shop.csv", "\n".join(lines) + "\n")
    model = tmp_path / "m.npz"
    code = cli.main(["train", "--csv", str(data), "--label", "label", "--categorical", "user,item", "--numeric",
                     "price", "--multi-valued", "tags:|", "--epochs", "5", "--hidden-factor", "8", "--layers", "8",
                     "--batch-size", "32",
                     "--save", str(model)])
    out = capsys.readouterr().out
    assert code == 0 and "test rmse:" in out and "multi" in out and "price" in out
    new = write(tmp_path, "new.csv", "user,item,tags,price\nu1,i2,c,12\nu999,i3,a|zzz,13\nu2,i2,c,12\n")
    assert cli.main(["predict", "--load", str(model), "--csv", str(new)]) == 0
    got = capsys.readouterr()
    pred = [float(v) for v in got.out.split()]
    assert len(pred) == 3 and "2 cells" in got.err                          # u999 and zzz: unseen
    # predictions are in the file's row order: the first and third rows differ only in the user
    model_obj, extra = checkpoint.load(model)
    enc = Fe.Encoder.from_arrays(extra)
    idx, val, _, _ = enc.transform(Fe.read_csv(new))
    direct = model_obj.predict(nf.make_batch(idx, val.astype(np.float32)))
    np.testing.assert_allclose(pred, direct, rtol=1e-5)
    assert cli.main(["predict", "--load", str(model), "--csv", str(new), "--unseen", "error"]) == 2
    assert "line 3, column 'user': value 'u999' was never seen in training" in capsys.readouterr().err
    assert cli.main(["evaluate", "--load", str(model), "--csv", str(data)]) == 0
    assert "shop.csv rmse:" in capsys.readouterr().out
    assert cli.main(["evaluate", "--load", str(model), "--csv", str(new)]) == 2
    assert "no label column 'label'" in capsys.readouterr().err
    assert cli.main(["predict", "--load", str(model), "--file", str(new)]) == 2
    assert "trained with --csv: use --csv" in capsys.readouterr().err


@pytest.mark.parametrize("argv,pattern", [
    (["--label", "y"], r"--label applies to --csv only"),
    (["--csv", "{d}"], r"--csv needs --label"),
    (["--csv", "{d}", "--label", "y", "--split", "0.5,0.3,0.2", "--valid-csv", "{d}"], r"--split or --valid-csv"),
    (["--csv", "{d}", "--label", "y", "--split", "0.7,0.3"], r"--split: needs three fractions"),
    (["--csv", "{d}", "--label", "y", "--user-col", "u"], r"--user-col and --item-col go with --negatives"),
    (["--csv", "{d}", "--label", "nope"], r"no label column 'nope'"),
    (["--csv", "{d}", "--label", "y", "--numeric", "x:1"], r"buckets of 'x' must be >= 2"),
    (["--csv", "{d}", "--label", "y", "--multi-valued", "x"], r"expected COLUMN:SEPARATOR"),
    (["--csv", "{d}", "--label", "y", "--negatives", "1"], r"--negatives needs --user-col and --item-col"),
    (["--csv", "{d}", "--label", "y", "--split", "0.7,0.2,0.2"], r"sum to 1"),
    (["--csv", "{d}", "--label", "y", "--ignore", "x", "--ignore", "y"], r"column 'y' is both ignored and the label"),
    (["--csv", "{d}", "--label", "y", "--categorical", "x", "--ignore", "x"], r"'x' is both ignored and given a kind"),
    (["--csv", "{d}", "--label", "y", "--numeric", "x", "--numeric", "x:4"], r"--numeric: column 'x' given twice"),
    (["--csv", "{d}", "--label", "y", "--multi-valued", "x:|", "--multi-valued", "x:;"],
     r"--multi-valued: column 'x' given twice, as '\|' and ';'"),
    (["--csv", "{d}", "--label", "y", "--delimiter", ",,"], r"argument --delimiter: expected one character"),
])
def test_csv_options_are_checked(tmp_path, capsys, argv, pattern):
    import re
    d = write(tmp_path, "d.csv", "x,y\n" + "".join(f"{i % 3},{i % 2}\n" for i in range(50)))
    code = cli.main(["train", "--epochs", "1"] + [a.format(d=d) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and re.search(pattern, err) and len(err.strip().splitlines()) == 1, err
