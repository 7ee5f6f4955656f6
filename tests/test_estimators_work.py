"""Estimators that fit real work (issue 17, part 3): eval_set, the defaults beside the CLI's, the
FeatureEncoder transformer, and predict --out. Each feature is checked against an independent
computation; bad input is table-driven (error class and message). No timing."""
from __future__ import annotations

import csv
import io
import pickle
import re

import numpy as np
import pytest

pytest.importorskip("sklearn")
pd = pytest.importorskip("pandas")

import scipy.sparse as sp  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.utils.estimator_checks import (  # noqa: E402
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from nfm_numpy import cli, errors as E, features as F  # noqa: E402
from nfm_numpy.estimators import FeatureEncoder, FMClassifier, FMRegressor, NFMClassifier, NFMRegressor  # noqa: E402
from nfm_numpy.predictions_file import format_predictions  # noqa: E402


# ------------------------------------------------------------------ data
def teacher(n, seed, noise=0.3, d=6):
    """Dense rows and a pairwise-interaction teacher with label noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = np.linspace(-1, 1, d)
    y = X @ w + X[:, 0] * X[:, 1] - 0.5 * X[:, 2] * X[:, 3] + noise * rng.normal(size=n)
    return X, y


X_TR, Y_TR = teacher(60, 0, noise=1.0)          # few, noisy rows: training overfits, validation turns
X_VA, Y_VA = teacher(200, 1, noise=0.0)
Y_TR_C = np.where(Y_TR > 0, "yes", "no")
Y_VA_C = np.where(Y_VA > 0, "yes", "no")


def clipped_rmse(y, pred, lo, hi):
    return float(np.sqrt(np.mean((np.clip(pred, lo, hi) - y) ** 2)))


def logloss(y01, p):
    eps = np.finfo(np.float64).eps
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y01 * np.log(p) + (1 - y01) * np.log(1 - p)))


# ------------------------------------------------------------------ 1. eval_set
REG_KW = dict(k=4, lr=0.3, batch_size=16, dtype="float64", random_state=0)
NFM_KW = dict(k=4, layers=(8,), lr=0.3, batch_size=16, dtype="float64", random_state=0)


@pytest.mark.parametrize("cls, kw", [(FMRegressor, REG_KW), (NFMRegressor, NFM_KW)])
def test_eval_set_keeps_the_epoch_with_the_lowest_validation_rmse_computed_independently(cls, kw):
    """Refit epoch by epoch without eval_set (same seed, same shuffles: the first e epochs are the same
    steps, since no row of X is held out), score X_val with predict, and find the best epoch by hand."""
    est = cls(epochs=12, patience=3, **kw).fit(X_TR, Y_TR, eval_set=(X_VA, Y_VA))
    hist = est.history_
    n = len(hist.epochs)
    ours = []
    for e in range(1, n + 1):
        alone = cls(epochs=e, **kw).fit(X_TR, Y_TR)
        ours.append(clipped_rmse(Y_VA, alone.predict(X_VA), Y_TR.min(), Y_TR.max()))
        if e == hist.best_epoch:
            best_pred = alone.predict(X_VA)
    assert hist.column("valid") == pytest.approx(ours, rel=1e-9)          # in y's units
    assert hist.best_epoch == int(np.argmin(ours)) + 1
    assert hist.best_epoch < n, "the data should make training overfit (the test would prove little)"
    np.testing.assert_allclose(est.predict(X_VA), best_pred, rtol=1e-12)   # the best epoch's weights are kept


@pytest.mark.parametrize("cls, kw", [(FMClassifier, REG_KW), (NFMClassifier, NFM_KW)])
def test_classifier_eval_set_picks_the_lowest_validation_logloss(cls, kw):
    est = cls(epochs=8, patience=2, **kw).fit(X_TR, Y_TR_C, eval_set=[(X_VA, Y_VA_C)])
    hist = est.history_
    y01 = (Y_VA_C == "yes").astype(float)
    ours = [logloss(y01, cls(epochs=e, **kw).fit(X_TR, Y_TR_C).predict_proba(X_VA)[:, 1])
            for e in range(1, len(hist.epochs) + 1)]
    assert hist.column("valid") == pytest.approx(ours, rel=1e-9)
    assert hist.best_epoch == int(np.argmin(ours)) + 1
    best = cls(epochs=hist.best_epoch, **kw).fit(X_TR, Y_TR_C)
    np.testing.assert_allclose(est.predict_proba(X_VA), best.predict_proba(X_VA), rtol=1e-12)


def test_eval_set_forms_agree_and_imply_early_stopping_without_a_holdout():
    a = FMRegressor(epochs=40, patience=2, **REG_KW).fit(X_TR, Y_TR, eval_set=(X_VA, Y_VA))
    b = FMRegressor(epochs=40, patience=2, early_stopping=True, **REG_KW).fit(X_TR, Y_TR, eval_set=[(X_VA, Y_VA)])
    assert a.history_.column("valid") == b.history_.column("valid")
    assert a.history_.outcome == "early_stop" and len(a.history_.epochs) < 40
    # the training loss is over all 60 rows of X (a holdout would train on fewer): epoch 1 equals a plain fit's
    plain = FMRegressor(epochs=1, **REG_KW).fit(X_TR, Y_TR)
    assert a.history_.epochs[0]["train"] == pytest.approx(plain.history_.epochs[0]["train"], rel=1e-12)


def test_eval_set_verbose_lines_name_the_metric_in_y_units(capsys):
    est = FMRegressor(epochs=3, **REG_KW, verbose=1).fit(X_TR, 1000 * Y_TR, eval_set=(X_VA, 1000 * Y_VA))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for line, rec in zip(lines, est.history_.epochs):
        m = re.match(r"FMRegressor epoch +\d+  train rmse (\S+)  validation rmse (\S+)", line)
        assert m, line
        assert float(m.group(2)) == pytest.approx(rec["valid"], rel=1e-5)
    small = FMRegressor(epochs=3, **REG_KW).fit(X_TR, Y_TR, eval_set=(X_VA, Y_VA))
    assert est.history_.column("valid") == pytest.approx([1000 * v for v in small.history_.column("valid")],
                                                         rel=1e-6)


X_DF = pd.DataFrame(X_TR, columns=list("abcdef"))
BAD_EVAL = [
    # (name, estimator, X, y, eval_set, error class, message)
    ("two sets", FMRegressor, X_TR, Y_TR, [(X_VA, Y_VA), (X_VA, Y_VA)], E.OptionError,
     r"^FMRegressor: eval_set must be \(X_val, y_val\) or \[\(X_val, y_val\)\] .*got a list of 2 items$"),
    ("empty list", FMRegressor, X_TR, Y_TR, [], E.OptionError, r"^FMRegressor: eval_set .*got a list of 0 items$"),
    ("an array", NFMRegressor, X_TR, Y_TR, X_VA, E.OptionTypeError,
     r"^NFMRegressor: eval_set must be a pair \(X_val, y_val\) or a list of one such pair, got ndarray$"),
    ("three items", FMRegressor, X_TR, Y_TR, (X_VA, Y_VA, Y_VA), E.OptionError,
     r"^FMRegressor: eval_set must be a pair \(X_val, y_val\), got 3 items$"),
    ("y_val None", FMRegressor, X_TR, Y_TR, (X_VA, None), E.OptionTypeError,
     r"^FMRegressor: eval_set needs both X_val and y_val, got y_val = None$"),
    ("columns", FMRegressor, X_TR, Y_TR, (X_VA[:, :4], Y_VA), E.DataError,
     r"^FMRegressor: eval_set: X_val has 4 columns; X has 6"),
    ("NaN in X_val", FMClassifier, X_TR, Y_TR_C, (np.where(np.arange(6) == 2, np.nan, X_VA), Y_VA_C), E.DataError,
     r"^FMClassifier: eval_set: X_val\[0, 2\] is NaN: X_val must hold finite numbers"),
    ("X_val beyond float32", FMRegressor, X_TR, Y_TR, (np.where(np.arange(6) == 5, 1e39, X_VA), Y_VA), E.DataError,
     r"^FMRegressor: eval_set: X_val\[0, 5\] = 1e\+39 is too large for float32"),
    ("rows", NFMRegressor, X_TR, Y_TR, (X_VA, Y_VA[:7]), E.DataError,
     r"^NFMRegressor: eval_set: X_val has 200 rows and y_val 7 values; they must match$"),
    ("y_val 2-D", FMRegressor, X_TR, Y_TR, (X_VA, np.ones((200, 2))), E.DataError,
     r"^FMRegressor: eval_set: y_val must be 1-D, got shape \(200, 2\)$"),
    ("inf in y_val", FMRegressor, X_TR, Y_TR, (X_VA, np.r_[Y_VA[:3], np.inf, Y_VA[4:]]), E.DataError,
     r"^FMRegressor: eval_set: y_val\[3\] is inf: y_val must hold finite numbers$"),
    ("text y_val", FMRegressor, X_TR, Y_TR, (X_VA, np.r_[["1.5", "high"], Y_VA[2:].astype(str)]), E.DataError,
     r"^FMRegressor: eval_set: y_val\[1\] = 'high' is not a number: a regressor needs numeric y_val$"),
    ("unknown class", NFMClassifier, X_TR, Y_TR_C, (X_VA, np.r_[Y_VA_C[:4], ["maybe"], Y_VA_C[5:]]), E.DataError,
     r"^NFMClassifier: eval_set: y_val\[4\] = 'maybe' is not one of the classes of y \('no', 'yes'\)$"),
    ("sparse y_val", FMRegressor, X_TR, Y_TR, (X_VA, sp.csr_matrix(Y_VA[:, None])), E.OptionTypeError,
     r"^FMRegressor: eval_set: y_val must be a 1-D array, got a sparse matrix$"),
    ("DataFrame columns", FMRegressor, X_DF, Y_TR, (pd.DataFrame(X_VA, columns=list("abcdeg")), Y_VA), E.DataError,
     r"^FMRegressor: eval_set: X_val's columns .* are not X's"),
]


@pytest.mark.parametrize("name, cls, X, y, eval_set, error, pattern", BAD_EVAL, ids=[c[0] for c in BAD_EVAL])
def test_bad_eval_set_is_refused_by_name_and_leaves_the_estimator_as_it_was(name, cls, X, y, eval_set, error,
                                                                             pattern):
    est = cls(k=2, epochs=1, random_state=0).fit(X, y)
    before = est.predict(X)
    with pytest.raises(error, match=pattern):
        est.fit(X, y, eval_set=eval_set)
    np.testing.assert_array_equal(est.predict(X), before)
    assert est.n_epochs_ == 1


# ------------------------------------------------------------------ 2. the defaults beside the CLI's
def test_defaults_shared_with_the_cli_are_equal_and_the_others_are_the_readme_table():
    a = cli.build_parser().parse_args(["train"])
    cli.check_solver_options(a)                   # fills in the SGD defaults (the parser leaves them None)
    shared = {"lr": a.lr, "batch_size": a.batch_size, "optimizer": a.optimizer, "l2": a.l2, "dtype": a.dtype,
              "patience": 4}
    for cls in (FMRegressor, FMClassifier, NFMRegressor, NFMClassifier):
        p = cls().get_params()
        assert {k: p[k] for k in shared} == shared, cls.__name__
    nfm = NFMRegressor().get_params()
    assert (nfm["activation"], nfm["batch_norm"], tuple(nfm["keep_prob"])) == ("relu", True, (0.8, 0.5))
    assert a.defaults["activation"] == "relu" and a.hidden_factor == 64 and a.early_stop
    # where they differ, the README says so: every differing parameter has a row in the table
    readme = open(__file__.rsplit("/tests/", 1)[0] + "/README.md", encoding="utf-8").read()
    section = readme[readme.index("### scikit-learn"):readme.index("### Installing the package")]
    for param in ("k", "layers", "keep_prob", "epochs", "early_stopping", "random_state"):
        assert re.search(rf"^\| `{param}` ", section, re.M), param


# ------------------------------------------------------------------ 3. FeatureEncoder
TRAIN_CSV = """user,item,age,genres,rating
u1,a,20,x|y,3
u2,b,,y,4
u1,,31.5,x,2
u3,a,40,x|z|y,5
u2,c,25,,1
u1,b,22,z,2
u4,a,33,y|x,4
u2,a,29,q,3
"""
NEW_CSV = """user,item,age,genres,rating
u1,b,21,x|w,
u9,a,35,y,5
,zz,,z|x,1
"""
ENC_KW = dict(categorical=["user", "item"], numeric={"age": 0}, multi_valued={"genres": "|"}, min_count=2)


@pytest.fixture()
def csv_files(tmp_path):
    (tmp_path / "train.csv").write_text(TRAIN_CSV)
    (tmp_path / "new.csv").write_text(NEW_CSV)
    return tmp_path


def dense_rows(ds):
    """A Dataset's padded (idx, val) rows as a dense matrix, summed by hand."""
    out = np.zeros((len(ds), ds.n_features))
    for r in range(len(ds)):
        for i, v in zip(np.asarray(ds.idx[r]), np.asarray(ds.val[r])):
            out[r, i] += v
    return out


@pytest.mark.parametrize("numeric", [{"age": 0}, {"age": 3}])
def test_feature_encoder_gives_the_rows_of_the_csv_route(csv_files, numeric):
    kw = dict(ENC_KW, numeric=numeric)
    split, enc, _ = F.load_csv_split(csv_files / "train.csv", "rating", kw["categorical"], numeric,
                                     kw["multi_valued"], min_count=2, valid_path=csv_files / "train.csv",
                                     test_path=csv_files / "train.csv", dtype=np.float64)
    df = pd.read_csv(csv_files / "train.csv")           # pandas' own types: int/float columns, NaN cells
    fe = FeatureEncoder(ignore=["rating"], **kw).fit(df.drop(columns="rating").assign(rating=df.rating))
    Xt = fe.transform(df)
    assert sp.issparse(Xt) and Xt.format == "csr" and Xt.shape == (len(df), enc.n_features)
    np.testing.assert_array_equal(Xt.toarray(), dense_rows(split.train))
    new, _ = F.read_csv_dataset(csv_files / "new.csv", enc, need_y=False, dtype=np.float64)
    np.testing.assert_array_equal(fe.transform(pd.read_csv(csv_files / "new.csv")).toarray(), dense_rows(new))
    # a dict of text columns, as read_csv gives them, is the same
    table = F.read_csv(csv_files / "train.csv")
    as_dict = {c: table[c] for c in table.names if c != "rating"}
    np.testing.assert_array_equal(FeatureEncoder(**kw).fit_transform(as_dict).toarray(), Xt.toarray())


def test_feature_names_say_what_each_column_holds(csv_files):
    df = pd.read_csv(csv_files / "train.csv", dtype=str, keep_default_na=False)
    fe = FeatureEncoder(categorical=["user", "item"], numeric=["age"], multi_valued={"genres": "|"},
                        ignore=["rating"], min_count=2)
    Xt = fe.fit_transform(df).toarray()
    names = fe.get_feature_names_out().tolist()
    assert len(names) == Xt.shape[1]
    for j, name in enumerate(names):
        field, eq, value = name.partition("=")
        col = df[field].to_numpy()
        if not eq:                                              # numeric: the standardised value
            v = pd.to_numeric(df[field], errors="coerce").to_numpy()
            z = np.nan_to_num((v - np.nanmean(v)) / np.nanstd(v))
            np.testing.assert_allclose(Xt[:, j], z)
        elif field == "genres":
            cells = [set(c.split("|")) for c in col]                  # an empty cell is the value ''
            vocab = [n.partition("=")[2] for n in names if n.startswith("genres=") and n != "genres=<OOV>"]
            if value == "<OOV>":
                expect = [sum(v not in vocab for v in c) / len(c) for c in cells]
            else:
                expect = [(value in c) / len(c) for c in cells]
            np.testing.assert_allclose(Xt[:, j], expect, err_msg=name)
        else:
            vocab = [n.partition("=")[2] for n in names if n.startswith(field + "=") and n != f"{field}=<OOV>"]
            expect = ~np.isin(col, vocab) if value == "<OOV>" else col == value
            np.testing.assert_array_equal(Xt[:, j], expect.astype(float), err_msg=name)
    assert "user=<OOV>" in names and "user=u3" not in names          # u3 and u4 seen once: min_count 2
    bucketed = FeatureEncoder(categorical=["user"], numeric={"age": 2}, ignore=["item", "genres", "rating"]).fit(df)
    assert [n for n in bucketed.get_feature_names_out() if n.startswith("age")] == \
        ["age=<OOV>", "age=[-inf, 29)", "age=[29, inf)"]


def test_feature_encoder_in_a_pipeline_equals_the_two_steps_by_hand(csv_files):
    df = pd.read_csv(csv_files / "train.csv")
    X, y = df.drop(columns="rating"), df.rating.to_numpy(float)
    pipe = make_pipeline(FeatureEncoder(**ENC_KW), NFMRegressor(k=4, layers=(4,), epochs=3, batch_size=4,
                                                                dtype="float64", random_state=0)).fit(X, y)
    new = pd.read_csv(csv_files / "new.csv").drop(columns="rating")
    by_hand_enc = FeatureEncoder(**ENC_KW).fit(X)
    by_hand = NFMRegressor(k=4, layers=(4,), epochs=3, batch_size=4, dtype="float64",
                           random_state=0).fit(by_hand_enc.transform(X), y)
    np.testing.assert_array_equal(pipe.predict(new), by_hand.predict(by_hand_enc.transform(new)))
    # eval_set through a Pipeline: X_val transformed by the earlier steps, as the README says
    pipe.fit(X, y, nfmregressor__eval_set=(pipe[:-1].transform(new), np.array([3.0, 5.0, 1.0])))
    assert pipe[-1].history_.best_epoch >= 1


def test_feature_encoder_passes_the_scikit_learn_checks_for_a_dataframe_transformer(csv_files):
    name = "FeatureEncoder"
    check_parameters_default_constructible(name, FeatureEncoder())
    check_no_attributes_set_in_init(name, FeatureEncoder(**ENC_KW))
    check_get_params_invariance(name, FeatureEncoder(**ENC_KW))
    check_set_params(name, FeatureEncoder(**ENC_KW))
    df = pd.read_csv(csv_files / "train.csv").drop(columns="rating")
    fe = FeatureEncoder(**ENC_KW)
    twin = clone(fe)
    assert twin.get_params() == fe.get_params() and not hasattr(twin, "encoder_")
    fe.set_params(min_count=1)
    assert fe.get_params()["min_count"] == 1
    fitted = fe.fit(df)
    a = fitted.transform(df)
    b = FeatureEncoder(**dict(ENC_KW, min_count=1)).fit_transform(df)
    assert (a != b).nnz == 0
    back = pickle.loads(pickle.dumps(fitted))
    assert (back.transform(df) != a).nnz == 0
    assert list(back.get_feature_names_out()) == list(fitted.get_feature_names_out())
    assert list(fitted.feature_names_in_) == list(df.columns) and fitted.n_features_in_ == 4
    # in a GridSearchCV over the encoder's own parameter and the model's
    big = pd.concat([df] * 4, ignore_index=True)
    y = np.arange(len(big), dtype=float) % 5
    pipe = make_pipeline(FeatureEncoder(**ENC_KW), FMRegressor(k=2, epochs=2, batch_size=4, random_state=0))
    search = GridSearchCV(pipe, {"featureencoder__min_count": [1, 3], "fmregressor__k": [2, 3]}, cv=2).fit(big, y)
    assert set(search.cv_results_["param_featureencoder__min_count"]) == {1, 3}
    assert search.best_estimator_.predict(df).shape == (len(df),)


BAD_ENCODER = [
    # (name, encoder, fit input, transform input or None, error, message)
    ("ndarray", FeatureEncoder(categorical=["a"]), np.ones((3, 2)), None, E.OptionTypeError,
     r"^FeatureEncoder: X must be a pandas DataFrame or a dict of columns .*got ndarray$"),
    ("sparse", FeatureEncoder(categorical=["a"]), sp.csr_matrix(np.ones((3, 2))), None, E.OptionTypeError,
     r"^FeatureEncoder: X must be a pandas DataFrame or a dict of columns"),
    ("unnamed column", FeatureEncoder(numeric=["age"]), "DF", None, E.OptionError,
     r"^FeatureEncoder: X: no option names columns 'user', 'item', 'genres', and a column nobody named is not used"),
    ("no column", FeatureEncoder(categorical=["nope"], ignore=["user", "item", "age", "genres"]), "DF", None,
     E.OptionError, r"^FeatureEncoder: X: no column 'nope'; the columns are 'user', 'item', 'age', 'genres'$"),
    ("two kinds", FeatureEncoder(categorical=["age"], numeric=["age"]), "DF", None, E.OptionError,
     r"^FeatureEncoder: column 'age' is given two kinds$"),
    ("min_count 0", FeatureEncoder(categorical="*", min_count=0), "DF", None, E.OptionError,
     r"^FeatureEncoder: min_count must be >= 1, got 0$"),
    ("unseen", FeatureEncoder(categorical="*", unseen="drop"), "DF", None, E.OptionError,
     r"^FeatureEncoder: unseen must be one of"),
    ("multi as a list", FeatureEncoder(categorical="*", multi_valued=["genres"]), "DF", None, E.OptionTypeError,
     r"^FeatureEncoder: multi_valued must be a mapping of column -> separator"),
    ("text in numeric", FeatureEncoder(categorical=["user", "item"], numeric=["genres"], ignore=["age"]), "DF", None,
     E.DataError, r"^FeatureEncoder: X, row 1, column 'genres'"),
    ("duplicate columns", FeatureEncoder(categorical="*"), pd.DataFrame([[1, 2]], columns=["a", "a"]), None,
     E.DataError, r"^FeatureEncoder: X has two columns named 'a'$"),
    ("unseen error", FeatureEncoder(categorical="*", ignore=["age"], unseen="error"), "DF",
     pd.DataFrame({"user": ["u1", "u99"], "item": ["a", "a"], "genres": ["x", "x"]}), E.DataError,
     r"^FeatureEncoder: X, row 2, column 'user': value 'u99' was never seen in training"),
    ("transform lacks a column", FeatureEncoder(categorical="*"), "DF", pd.DataFrame({"user": ["u1"]}),
     E.DataError, r"^FeatureEncoder: X: no column 'item'"),
    ("transform gets an array", FeatureEncoder(categorical="*"), "DF", np.ones((2, 4)), E.OptionTypeError,
     r"^FeatureEncoder: X must be a pandas DataFrame"),
]


@pytest.mark.parametrize("name, enc, fit_X, X, error, pattern", BAD_ENCODER, ids=[c[0] for c in BAD_ENCODER])
def test_bad_encoder_input_is_refused_by_name(name, enc, fit_X, X, error, pattern):
    df = pd.read_csv(io.StringIO(TRAIN_CSV)).drop(columns="rating")
    fit_X = df if isinstance(fit_X, str) else fit_X
    if X is None:
        with pytest.raises(error, match=pattern):
            enc.fit(fit_X)
        return
    enc.fit(fit_X)
    with pytest.raises(error, match=pattern):
        enc.transform(X)


def test_encoder_used_before_fit_or_with_other_columns_says_so():
    with pytest.raises(NotFittedError):
        FeatureEncoder(categorical="*").transform({"a": ["x"]})
    fe = FeatureEncoder(categorical="*").fit({"a": ["x", "y"]})
    with pytest.raises(E.DataError, match=r"^FeatureEncoder: input_features \['b'\] are not the columns fit saw"):
        fe.get_feature_names_out(["b"])
    assert fe.get_feature_names_out(["a"]).tolist() == ["a=<OOV>", "a=x", "a=y"]
    with pytest.raises(E.OptionError, match=r"^FeatureEncoder: X: no option names column 'b', and a column nobody"):
        FeatureEncoder(categorical=["a"]).fit({"a": ["x", "y"], "b": ["1", "2"]})
    fe = FeatureEncoder(categorical=["a"], ignore="b").fit({"a": ["x", "y"], "b": ["1", "2"]})
    assert fe.notes_ == [] and fe.transform({"a": ["x"]}).shape == (1, 3)
    ids = [f"r{i}" for i in range(60)]                 # a near-unique column named: a note, given as a warning
    with pytest.warns(UserWarning, match=r"^FeatureEncoder: warning: categorical column 'a' is near-unique"):
        fe = FeatureEncoder(categorical=["a"]).fit({"a": ids})
    assert len(fe.notes_) == 1 and fe.transform({"a": ["r1"]}).shape == (1, 61)


# ------------------------------------------------------------------ 4. predict --out
def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def models(csv_files, capsys):
    """A regression and a log-loss model trained by the CLI on train.csv (a few epochs, small k)."""
    common = ["--csv", csv_files / "train.csv", "--categorical", "user,item", "--numeric", "age",
              "--multi-valued", "genres:|", "--hidden-factor", "4", "--layers", "4", "--epochs", "2",
              "--batch-size", "2", "--split", "0.5,0.25,0.25"]
    reg, log = csv_files / "reg.npz", csv_files / "log.npz"
    assert run(["train", *common, "--label", "rating", "--save", reg], capsys)[0] == 0
    liked = pd.read_csv(csv_files / "train.csv")
    liked["rating"] = np.where(liked.rating >= 3, "yes", "no")
    liked.to_csv(csv_files / "liked.csv", index=False)
    common[1] = csv_files / "liked.csv"
    assert run(["train", *common, "--label", "rating", "--loss", "log", "--positive", "yes", "--save", log],
               capsys)[0] == 0
    return {"square": reg, "log": log}


@pytest.mark.parametrize("loss, column", [("square", "prediction"), ("log", "probability")])
def test_out_file_holds_stdouts_predictions_with_row_numbers_or_ids(csv_files, models, capsys, loss, column):
    new = csv_files / "new.csv"
    code, stdout, _ = run(["predict", "--load", models[loss], "--csv", new], capsys)
    assert code == 0
    printed = stdout.split()
    out = csv_files / "preds.csv"
    code, said, err = run(["predict", "--load", models[loss], "--csv", new, "--out", out], capsys)
    assert code == 0 and said.startswith(f"wrote {out}: 3 rows")
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["row", column]
    assert [r[0] for r in rows[1:]] == ["1", "2", "3"] and [r[1] for r in rows[1:]] == printed
    code, _, _ = run(["predict", "--load", models[loss], "--csv", new, "--out", out, "--id-col", "user"], capsys)
    rows = list(csv.reader(out.open()))                            # the old file replaced
    assert code == 0 and rows[0] == ["user", column]
    assert [r[0] for r in rows[1:]] == ["u1", "u9", ""] and [r[1] for r in rows[1:]] == printed


def test_ids_that_need_quoting_are_quoted():
    text = format_predictions([0.5, 1.25], ["a,b", 'say "hi"'], "name")
    assert list(csv.reader(io.StringIO(text))) == [["name", "prediction"], ["a,b", "0.5"], ['say "hi"', "1.25"]]


BAD_OUT = [
    # (name, extra arguments ({dir} is the folder), status, message); the inputs must stay as they were
    ("out is the csv", ["--csv", "{dir}/new.csv", "--out", "{dir}/new.csv"], 2,
     r"^error: --out .*new\.csv is one of the input files; it will not be overwritten$"),
    ("out is the model", ["--csv", "{dir}/new.csv", "--out", "{dir}/reg.npz"], 2,
     r"^error: --out .*reg\.npz is one of the input files"),
    ("out is a folder", ["--csv", "{dir}/new.csv", "--out", "{dir}"], 2,
     r"^error: --out .* is a folder; only a regular file is ever replaced$"),
    ("id-col without out", ["--csv", "{dir}/new.csv", "--id-col", "user"], 2,
     r"^error: --id-col goes with --out"),
    ("id-col without csv", ["--file", "{dir}/x.libfm", "--out", "{dir}/p.csv", "--id-col", "user"], 2,
     r"^error: --id-col names a column of --csv"),
    ("no such id column", ["--csv", "{dir}/new.csv", "--out", "{dir}/p.csv", "--id-col", "nope"], 2,
     r"^error: .*/new\.csv: no id column 'nope'; the columns are 'user', 'item', 'age', 'genres', 'rating'$"),
    ("id column named prediction", ["--csv", "{dir}/pred_col.csv", "--out", "{dir}/p.csv", "--id-col",
                                    "prediction"], 2, r"^error: the id column 'prediction' has the name of the"),
    ("empty out", ["--csv", "{dir}/new.csv", "--out", ""], 2, r"--out: an empty path"),
]


@pytest.mark.parametrize("name, extra, status, pattern", BAD_OUT, ids=[c[0] for c in BAD_OUT])
def test_bad_out_is_refused_and_writes_nothing(csv_files, models, capsys, name, extra, status, pattern):
    (csv_files / "pred_col.csv").write_text("prediction,user,item,age,genres\n1,u1,a,20,x\n")
    before = {p.name: p.read_bytes() for p in csv_files.iterdir() if p.is_file()}
    args = [a.replace("{dir}", str(csv_files)) for a in extra]
    code, _, err = run(["predict", "--load", models["square"], *args], capsys)
    assert code == status, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("note:")]
    assert len(lines) == 1 and re.search(pattern, lines[0]), err
    assert {p.name: p.read_bytes() for p in csv_files.iterdir() if p.is_file()} == before


def test_out_is_checked_before_anything_is_read(csv_files, capsys):
    """A bad --out is reported even when the model file does not exist: nothing was read."""
    code, _, err = run(["predict", "--load", csv_files / "missing.npz", "--csv", csv_files / "new.csv",
                        "--out", csv_files], capsys)
    assert code == 2 and "--out" in err and "missing.npz" not in err


def test_out_for_a_libfm_file_numbers_its_lines(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lines = [f"{rng.normal():.3f} {a}:1 {10 + b}:1\n" for a, b in rng.integers(0, 5, size=(40, 2))]
    for name, part in (("train", lines[:24]), ("validation", lines[24:32]), ("test", lines[32:])):
        (tmp_path / f"toy.{name}.libfm").write_text("".join(part))
    m = tmp_path / "m.npz"
    code, _, err = run(["train", "--data-dir", tmp_path, "--hidden-factor", "2", "--layers", "2", "--epochs", "2",
                        "--batch-size", "4", "--save", m], capsys)
    assert code == 0, err
    code, stdout, _ = run(["predict", "--load", m, "--file", tmp_path / "toy.test.libfm"], capsys)
    out = tmp_path / "p.csv"
    code2, _, _ = run(["predict", "--load", m, "--file", tmp_path / "toy.test.libfm", "--out", out], capsys)
    rows = list(csv.reader(out.open()))
    assert code == code2 == 0 and rows[0] == ["row", "prediction"]
    assert rows[1:] == [[str(i), p] for i, p in enumerate(stdout.split(), start=1)] and len(rows) == 9
