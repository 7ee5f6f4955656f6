"""The scikit-learn estimators never give a silent wrong answer (issue 16, classes 3, 14, 15, 18).

Table-driven: each case builds an estimator, calls one method on given inputs and asserts
the exception type and a message that names the estimator, the argument and, for arrays,
the first offending entry (``X[3, 1]``, ``y[5]``), or, where ``expected`` is None, that the
call succeeds. Then the verbose log, padding through the estimators, pickling and warm starts.
"""
import io
import pickle
import re
from contextlib import redirect_stdout

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("sklearn", reason="scikit-learn is an optional extra (pip install scikit-learn)")

from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402

from nfm_numpy import errors as E, optim  # noqa: E402
from nfm_numpy.estimators import FMClassifier, FMRegressor, NFMClassifier, NFMRegressor  # noqa: E402

SMALL = dict(k=2, epochs=2, random_state=0)
NSMALL = dict(SMALL, layers=(4,))


def problem(n=60, seed=0):
    """Dense X (n, 4), a real target and a 0/1 target."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    return X, X[:, 0] - X[:, 1], (X[:, 0] > 0).astype(int)


X, Y, YC = problem()


def with_entry(a, index, value):
    a = np.array(a, dtype=np.float64)
    a[index] = value
    return a


def fitted(cls, **kw):
    """A fitted estimator (regressors on Y, classifiers on YC)."""
    params = dict(NSMALL if cls in (NFMRegressor, NFMClassifier) else SMALL, **kw)
    est = cls(**params)
    return est.fit(X, YC if cls in (FMClassifier, NFMClassifier) else Y)


def overflowing_output():
    """A regressor whose outputs are finite but whose predictions in y's units overflow float64."""
    est = fitted(FMRegressor)
    est.y_scale_ = 1e308
    est.model_.params["w0"][...] = 10.0
    return est


def warm(cls, **change):
    est = fitted(cls, warm_start=True)
    return est.set_params(**change)


BIG = np.full((3, 4), 1e30)               # fits float32, but x^2 overflows it: the outputs are inf or NaN

# (case id, make the estimator, method, arguments, expected exception type or None, message pattern)
CASES = [
    # ---- class 14: every hyper-parameter is checked at fit time, by name
    ("validation_fraction 1.5", lambda: NFMRegressor(early_stopping=True, validation_fraction=1.5, **NSMALL),
     "fit", (X, Y), E.OptionError, r"^NFMRegressor: validation_fraction must be in \(0, 1\), got 1\.5$"),
    ("validation_fraction 0", lambda: FMRegressor(early_stopping=True, validation_fraction=0, **SMALL),
     "fit", (X, Y), E.OptionError, r"^FMRegressor: validation_fraction must be in \(0, 1\), got 0$"),
    ("validation_fraction -0.5, no early stopping", lambda: FMClassifier(validation_fraction=-0.5, **SMALL),
     "fit", (X, YC), E.OptionError, r"^FMClassifier: validation_fraction must be in \(0, 1\), got -0\.5$"),
    ("validation_fraction nan", lambda: FMRegressor(validation_fraction=float("nan"), **SMALL),
     "fit", (X, Y), E.OptionError, r"validation_fraction must be a finite number"),
    ("validation_fraction text", lambda: FMRegressor(validation_fraction="0.1", **SMALL),
     "fit", (X, Y), E.OptionTypeError, r"^FMRegressor: validation_fraction must be a number, got '0\.1'"),
    ("holdout leaves no training row", lambda: FMRegressor(early_stopping=True, validation_fraction=0.99, **SMALL),
     "fit", (X[:10], Y[:10]), E.OptionError, r"^FMRegressor: early_stopping .*holds out 10 of the 10 rows"),
    ("early stopping on one row", lambda: FMRegressor(early_stopping=True, **SMALL),
     "fit", (X[:1], Y[:1]), E.OptionError, r"holds out 1 of the 1 rows of X, leaving none to train on"),
    ("patience 0", lambda: FMRegressor(patience=0, **SMALL), "fit", (X, Y), E.OptionError,
     r"^FMRegressor: patience must be >= 1, got 0$"),
    ("epochs 0", lambda: NFMClassifier(k=2, epochs=0), "fit", (X, YC), E.OptionError,
     r"^NFMClassifier: epochs must be >= 1, got 0$"),
    ("batch_size 0", lambda: FMRegressor(batch_size=0, **SMALL), "fit", (X, Y), E.OptionError,
     r"^FMRegressor: batch_size must be >= 1, got 0$"),
    ("batch_size 2.5", lambda: FMRegressor(batch_size=2.5, **SMALL), "fit", (X, Y), E.OptionTypeError,
     r"^FMRegressor: batch_size must be an integer, got 2\.5$"),
    ("k 0", lambda: NFMRegressor(k=0, epochs=1), "fit", (X, Y), E.OptionError, r"^NFMRegressor: k must be >= 1"),
    ("k True", lambda: FMRegressor(k=True, epochs=1), "fit", (X, Y), E.OptionTypeError,
     r"^FMRegressor: k must be an integer, got True"),
    ("lr 0", lambda: FMRegressor(lr=0, **SMALL), "fit", (X, Y), E.OptionError, r"^FMRegressor: lr must be > 0, got 0"),
    ("lr inf", lambda: FMRegressor(lr=float("inf"), **SMALL), "fit", (X, Y), E.OptionError,
     r"^FMRegressor: lr must be a finite number, got inf"),
    ("lr checked with an optimizer object", lambda: FMRegressor(optimizer=optim.Adam(0.01), lr=-1, **SMALL),
     "fit", (X, Y), E.OptionError, r"^FMRegressor: lr must be > 0"),
    ("l2 -1", lambda: FMRegressor(l2=-1, **SMALL), "fit", (X, Y), E.OptionError, r"^FMRegressor: l2 must be >= 0"),
    ("keep_prob 0", lambda: FMRegressor(keep_prob=0, **SMALL), "fit", (X, Y), E.OptionError,
     r"^FMRegressor: keep_prob must be a keep probability in \(0, 1\], got 0$"),
    ("keep_prob list for FM", lambda: FMRegressor(keep_prob=[0.5, 0.5], **SMALL), "fit", (X, Y),
     E.OptionTypeError, r"^FMRegressor: keep_prob must be one number in \(0, 1\] for an FM"),
    ("keep_prob count for NFM", lambda: NFMRegressor(keep_prob=(0.5,), **NSMALL), "fit", (X, Y), E.OptionError,
     r"^NFMRegressor: keep_prob needs 2 values .*got 1"),
    ("keep_prob 1.5 in a list", lambda: NFMRegressor(keep_prob=(1.5, 0.5), **NSMALL), "fit", (X, Y),
     E.OptionError, r"^NFMRegressor: keep_prob\[0\] must be a keep probability in \(0, 1\], got 1\.5"),
    ("layers '64'", lambda: NFMRegressor(layers="64", k=2, epochs=1), "fit", (X, Y), E.OptionTypeError,
     r"^NFMRegressor: layers must be a list"),
    ("layers [0]", lambda: NFMRegressor(layers=[0], k=2, epochs=1), "fit", (X, Y), E.OptionError,
     r"^NFMRegressor: layers\[0\] must be >= 1, got 0"),
    ("activation", lambda: NFMRegressor(activation="gelu", **NSMALL), "fit", (X, Y), E.OptionError,
     r"^NFMRegressor: unknown activation 'gelu'"),
    ("optimizer name", lambda: FMRegressor(optimizer="rmsprop", **SMALL), "fit", (X, Y), E.OptionError,
     r"^FMRegressor: optimizer must be one of sgd, momentum, adagrad, adam; got 'rmsprop'"),
    ("optimizer type", lambda: FMRegressor(optimizer=3, **SMALL), "fit", (X, Y), E.OptionTypeError,
     r"^FMRegressor: optimizer must be a name"),
    ("dtype", lambda: FMRegressor(dtype="float16", **SMALL), "fit", (X, Y), E.OptionError,
     r"^FMRegressor: dtype must be one of float32, float64; got 'float16'"),
    ("backend", lambda: FMRegressor(backend="torch", **SMALL), "fit", (X, Y), E.OptionError,
     r"^FMRegressor: unknown backend 'torch'"),
    ("verbose text", lambda: FMRegressor(verbose="loud", **SMALL), "fit", (X, Y), E.OptionTypeError,
     r"^FMRegressor: verbose must be an integer, got 'loud'"),
    ("verbose -1", lambda: FMRegressor(verbose=-1, **SMALL), "fit", (X, Y), E.OptionError,
     r"^FMRegressor: verbose must be >= 0"),
    ("early_stopping text", lambda: FMRegressor(early_stopping="yes", **SMALL), "fit", (X, Y), E.OptionTypeError,
     r"^FMRegressor: early_stopping must be True or False"),
    ("batch_norm 2", lambda: NFMRegressor(batch_norm=2, **NSMALL), "fit", (X, Y), E.OptionTypeError,
     r"^NFMRegressor: batch_norm must be True or False"),
    ("random_state text", lambda: FMRegressor(k=2, epochs=1, random_state="seed"), "fit", (X, Y),
     E.OptionTypeError, r"^FMRegressor: random_state must be None, an int or a numpy RandomState"),
    # accepted spellings
    ("dtype np.float64", lambda: FMRegressor(dtype=np.float64, **SMALL), "fit", (X, Y), None, ""),
    ("FM keep_prob [0.5]", lambda: FMRegressor(keep_prob=[0.5], **SMALL), "fit", (X, Y), None, ""),
    ("validation_fraction 0.5 of 2 rows", lambda: FMRegressor(early_stopping=True, validation_fraction=0.5, **SMALL),
     "fit", (X[:2], Y[:2]), None, ""),
    ("a scalar sample_weight", lambda: FMRegressor(**SMALL), "fit", (X, Y, 2.0), None, ""),

    # ---- class 3: X, y and sample_weight in fit
    ("X NaN", lambda: FMRegressor(**SMALL), "fit", (with_entry(X, (2, 1), np.nan), Y), E.DataError,
     r"^FMRegressor: X\[2, 1\] is NaN: X must hold finite numbers"),
    ("X -inf, sparse", lambda: NFMClassifier(**NSMALL), "fit", (sp.csr_array(with_entry(X, (3, 2), -np.inf)), YC),
     E.DataError, r"^NFMClassifier: X\[3, 2\] is -inf"),
    ("X 1e200 into float32", lambda: FMRegressor(**SMALL), "fit", (with_entry(X, (4, 0), 1e200), Y), E.DataError,
     r"^FMRegressor: X\[4, 0\] = 1e\+200 is too large for float32 \(max 3\.4e\+38\); rescale X, or use "
     r"dtype='float64'$"),
    ("X 1e200 sparse into float32", lambda: FMClassifier(**SMALL), "fit",
     (sp.csr_array(with_entry(X, (5, 3), -1e200)), YC), E.DataError, r"^FMClassifier: X\[5, 3\] = -1e\+200"),
    ("y NaN", lambda: FMRegressor(**SMALL), "fit", (X, with_entry(Y, 7, np.nan)), E.DataError,
     r"^FMRegressor: y\[7\] is NaN: y must hold finite numbers$"),
    ("y inf, classifier", lambda: FMClassifier(**SMALL), "fit", (X, with_entry(YC, 3, np.inf)), E.DataError,
     r"^FMClassifier: y\[3\] is inf"),
    ("y None", lambda: FMRegressor(**SMALL), "fit", (X, None), E.DataError, r"requires y to be passed"),
    ("X and y of different lengths", lambda: FMRegressor(**SMALL), "fit", (X, Y[:50]), E.DataError,
     r"^FMRegressor: Found input variables with inconsistent numbers of samples"),
    ("sample_weight NaN", lambda: FMRegressor(**SMALL), "fit", (X, Y, with_entry(np.ones(60), 4, np.nan)),
     E.DataError, r"^FMRegressor: sample_weight\[4\] is NaN"),
    ("sample_weight inf", lambda: FMClassifier(**SMALL), "fit", (X, YC, with_entry(np.ones(60), 9, np.inf)),
     E.DataError, r"^FMClassifier: sample_weight\[9\] is inf"),
    ("sample_weight negative", lambda: FMRegressor(**SMALL), "fit", (X, Y, with_entry(np.ones(60), 5, -1)),
     E.DataError, r"^FMRegressor: sample_weight\[5\] = -1 is negative: weights must be >= 0$"),
    ("sample_weight all zero", lambda: NFMRegressor(**NSMALL), "fit", (X, Y, np.zeros(60)), E.DataError,
     r"^NFMRegressor: every sample_weight is zero \(all 60 rows\)"),
    ("sample_weight shape", lambda: FMRegressor(**SMALL), "fit", (X, Y, np.ones(3)), E.DataError,
     r"^FMRegressor: sample_weight has shape \(3,\); X has 60 rows"),
    ("sample_weight 1e300 into float32", lambda: FMRegressor(**SMALL), "fit",
     (X, Y, with_entry(np.ones(60), 2, 1e300)), E.DataError, r"sample_weight\[2\] = 1e\+300 is too large for float32"),
    ("sample_weight text", lambda: FMRegressor(**SMALL), "fit", (X, Y, ["a"] * 60), E.OptionTypeError,
     r"^FMRegressor: sample_weight must be numbers"),
    ("y text, regressor", lambda: FMRegressor(**SMALL), "fit", (X, ["1.5"] * 10 + ["high"] + ["2"] * 49),
     E.DataError, r"^FMRegressor: y\[10\] = 'high' is not a number: a regressor needs numeric y$"),
    ("y labels of mixed types", lambda: FMClassifier(**SMALL), "fit", (X, np.array(["a", None] * 30, dtype=object)),
     E.DataError, r"^FMClassifier: y's labels cannot be sorted into classes .*give labels of one type$"),
    ("X complex, one line", lambda: FMRegressor(**SMALL), "fit", (X.astype(complex), Y), E.DataError,
     r"^FMRegressor: Complex data not supported .{100,} \.\.\.$"),
    ("sample_weight 2-D", lambda: FMRegressor(**SMALL), "fit", (X, Y, np.ones((60, 1))), E.DataError,
     r"sample_weight has shape \(60, 1\); X has 60 rows, so it must have shape \(60,\)"),
    ("one class", lambda: FMClassifier(**SMALL), "fit", (X, np.ones(60)), E.DataError,
     r"^FMClassifier: y holds 1 class \(1\.0\); a binary classifier needs exactly 2 classes$"),
    ("three classes", lambda: NFMClassifier(**NSMALL), "fit", (X, np.arange(60) % 3), E.DataError,
     r"^NFMClassifier: Only binary classification is supported\. .*3 classes: 0, 1, 2"),
    ("training diverges in epoch 1", lambda: FMRegressor(optimizer="sgd", lr=1e30, batch_size=16, **SMALL), "fit",
     (X, Y), E.RunFailed,
     r"^FMRegressor: training diverged \(.* at epoch 1, batch 2 of 3\) before any epoch finished; try a smaller lr$"),
    ("the kept epoch's weights overflow", lambda: FMRegressor(optimizer="sgd", lr=1e30, **SMALL), "fit", (X, Y),
     E.RunFailed, r"^FMRegressor: training diverged \(.* at epoch 2, batch 1 of 1\); the weights of epoch 1, the "
     r"last finished, give outputs that are not finite on X; try a smaller lr$"),

    # ---- class 3: no predict path returns NaN or inf
    ("predict, outputs overflow", lambda: fitted(FMRegressor), "predict", (BIG,), E.RunFailed,
     r"^FMRegressor: 3 of 3 predictions are not finite, the first for row 0 of X \(the values of X overflow"),
    ("score, outputs overflow", lambda: fitted(NFMRegressor), "score", (BIG, np.zeros(3)), E.RunFailed,
     r"^NFMRegressor: 3 of 3 predictions are not finite"),
    ("predict in y's units overflows", overflowing_output, "predict", (X[:5],), E.RunFailed,
     r"^FMRegressor: 5 of 5 predictions are not finite"),
    ("classifier predict", lambda: fitted(FMClassifier), "predict", (BIG,), E.RunFailed,
     r"^FMClassifier: 3 of 3 predictions are not finite"),
    ("predict_proba", lambda: fitted(NFMClassifier), "predict_proba", (BIG,), E.RunFailed,
     r"^NFMClassifier: 3 of 3 predictions are not finite"),
    ("decision_function", lambda: fitted(FMClassifier), "decision_function", (np.vstack([X[:2], BIG]),),
     E.RunFailed, r"^FMClassifier: 3 of 5 predictions are not finite, the first for row 2 of X"),
    ("classifier score", lambda: fitted(NFMClassifier), "score", (BIG, [0, 1, 1]), E.RunFailed,
     r"^NFMClassifier: 3 of 3 predictions are not finite"),
    ("predict X 1e200", lambda: fitted(FMRegressor), "predict", (with_entry(X[:3], (1, 2), 1e200),), E.DataError,
     r"^FMRegressor: X\[1, 2\] = 1e\+200 is too large for float32"),
    ("predict X NaN", lambda: fitted(NFMRegressor), "predict", (with_entry(X[:3], (2, 0), np.nan),), E.DataError,
     r"^NFMRegressor: X\[2, 0\] is NaN"),
    ("predict_proba X inf", lambda: fitted(FMClassifier), "predict_proba", (with_entry(X[:3], (0, 3), np.inf),),
     E.DataError, r"^FMClassifier: X\[0, 3\] is inf"),
    ("predict other columns", lambda: fitted(FMRegressor), "predict", (X[:, :3],), E.DataError,
     r"^FMRegressor: X has 3 features, but FMRegressor is expecting 4 features as input"),
    ("predict a 1-D X, one line", lambda: fitted(FMRegressor), "predict", (X[0],), E.DataError,
     r"^FMRegressor: Expected 2D array, got 1D array instead: .*reshape"),
    ("predict empty X", lambda: fitted(NFMClassifier), "predict", (X[:0],), E.DataError,
     r"^NFMClassifier: Found array with 0 sample\(s\)"),
    ("predict unfitted", lambda: FMRegressor(), "predict", (X,), NotFittedError, r"not fitted"),

    # ---- warm_start: what shapes the model cannot change silently
    ("warm_start, k changed", lambda: warm(FMRegressor, k=5), "fit", (X, Y), E.OptionError,
     r"^FMRegressor: warm_start continues the fitted model, built with k=2; k is now 5"),
    ("warm_start, layers changed", lambda: warm(NFMRegressor, layers=(8,), keep_prob=(0.8, 0.5)), "fit", (X, Y),
     E.OptionError, r"^NFMRegressor: warm_start .*built with layers=\[4\]; layers is now \[8\]"),
    ("warm_start, dtype changed", lambda: warm(NFMClassifier, dtype="float64"), "fit", (X, YC), E.OptionError,
     r"^NFMClassifier: warm_start .*built with dtype='float32'; dtype is now 'float64'"),
    ("warm_start, l2 changed", lambda: warm(FMClassifier, l2=0.5), "fit", (X, YC), E.OptionError,
     r"built with l2=0\.0; l2 is now 0\.5"),
    ("warm_start, other columns", lambda: warm(FMRegressor), "fit", (X[:, :3], Y), E.DataError,
     r"^FMRegressor: X has 3 features, but FMRegressor is expecting 4"),
    ("warm_start, classes changed", lambda: warm(FMClassifier), "fit", (X, YC + 1), E.DataError,
     r"^FMClassifier: warm_start: the classes changed from \[0, 1\] to \[1, 2\]"),
    ("warm_start, lr and optimizer changed", lambda: warm(FMRegressor, lr=0.01, optimizer="adam"), "fit", (X, Y),
     None, ""),
]


@pytest.mark.parametrize("make, method, args, expected, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_estimator_inputs(make, method, args, expected, pattern):
    est = make()
    if expected is None:
        getattr(est, method)(*args)
        return
    with pytest.raises(expected) as info:
        getattr(est, method)(*args)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(pattern, message), message
    if issubclass(expected, (E.InputError, E.RunFailed)):
        assert isinstance(info.value, ValueError if issubclass(expected, E.InputError) else RuntimeError)


def test_at_least_thirty_cases():
    assert len(CASES) >= 30


# ------------------------------------------------------------------ class 18: the verbose log
def fit_quietly(est, *args):
    out = io.StringIO()
    with redirect_stdout(out):
        est.fit(*args)
    return out.getvalue().splitlines()


def test_verbose_regressor_log_names_its_metric_in_y_units_and_has_no_test_column():
    kw = dict(k=2, epochs=4, early_stopping=True, validation_fraction=0.25, dtype="float64", random_state=0,
              verbose=1)
    lines = fit_quietly(est := FMRegressor(**kw), X, Y)
    scaled = fit_quietly(big := FMRegressor(**kw), X, 1000 * Y)
    assert len(lines) == len(est.history_.epochs) == 4
    pattern = r"^FMRegressor epoch +\d+  train rmse \S+  validation rmse \S+( +\(best so far: kept\))?  \["
    for line in lines + scaled:
        assert re.search(pattern, line) and "test" not in line, line
    marked = [int(re.search(r"epoch +(\d+)", line).group(1)) for line in lines if "(best so far" in line]
    assert marked[0] == 1 and marked[-1] == est.history_.best_epoch       # printed live, as each epoch ends
    for a, b in zip(est.history_.epochs, big.history_.epochs):           # y's units: 1000 y, 1000 times the rmse
        assert "test" not in a and set(a) >= {"train", "valid"}
        assert b["train"] == pytest.approx(1000 * a["train"], rel=1e-6)
        assert b["valid"] == pytest.approx(1000 * a["valid"], rel=1e-6)
    rmse = float(re.search(r"validation rmse (\S+)", scaled[-1]).group(1))
    assert rmse == pytest.approx(big.history_.epochs[-1]["valid"], rel=1e-5)


def test_verbose_classifier_without_holdout_shows_the_training_logloss_only():
    lines = fit_quietly(NFMClassifier(k=2, layers=(4,), epochs=3, random_state=0, verbose=True), X, YC)
    assert len(lines) == 3
    for line in lines:
        assert re.search(r"^NFMClassifier epoch +\d+  train logloss \S+  \[", line), line
        assert "valid" not in line and "test" not in line


# ------------------------------------------------------------------ class 15 through the estimators
def padded_X(id0_real):
    """Rows of 1 to 3 nonzeros in columns 1..7; column 0 holds values only if ``id0_real``."""
    rng = np.random.default_rng(1)
    X = np.zeros((120, 8))
    for r in range(120):
        X[r, rng.choice(np.arange(1, 8), rng.integers(1, 4), replace=False)] = 1.0
    if id0_real:
        X[::7, 0] = 1.0
    return X, rng.standard_normal(120)


@pytest.mark.parametrize("optimizer", ["momentum", "adam", "adagrad"])
def test_a_column_that_only_pads_keeps_its_weights(optimizer):
    """Column 0 of X is all zero, so feature 0 only ever pads a row: with momentum, Adam and the
    L2 term its embedding and linear weight stay bit for bit what they were, fit after fit."""
    Xp, y = padded_X(id0_real=False)
    est = FMRegressor(k=3, epochs=2, l2=0.1, optimizer=optimizer, batch_size=16, warm_start=True,
                      random_state=0).fit(Xp, y)
    V0, w0 = est.model_.params["V"][0].copy(), est.model_.params["w"][0].copy()
    est.fit(Xp, y)
    assert est.model_.params["V"][0].tobytes() == V0.tobytes() and est.model_.params["w"][0] == w0
    Xr, y = padded_X(id0_real=True)
    est = FMRegressor(k=3, epochs=2, l2=0.1, optimizer=optimizer, batch_size=16, warm_start=True,
                      random_state=0).fit(Xr, y)
    V0 = est.model_.params["V"][0].copy()
    est.fit(Xr, y)
    assert not np.array_equal(est.model_.params["V"][0], V0)                  # a real feature 0 trains


# ------------------------------------------------------------------ siblings
def test_a_pickled_estimator_predicts_and_continues_the_same():
    est = NFMRegressor(k=2, layers=(4,), epochs=2, warm_start=True, random_state=0).fit(X, Y)
    twin = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(twin.predict(X), est.predict(X))
    est.fit(X, Y)
    twin.fit(X, Y)
    assert twin.n_epochs_ == est.n_epochs_ == 4
    np.testing.assert_array_equal(twin.predict(X), est.predict(X))


def test_an_optimizer_object_is_copied_not_shared_between_fits():
    given = optim.Adam(0.01)
    a = FMRegressor(optimizer=given, **SMALL).fit(X, Y)
    b = FMRegressor(optimizer=given, **SMALL).fit(X, Y)
    assert given.t == 0 and not given.state                     # the caller's object is untouched
    assert a.optimizer_ is not given and a.optimizer_.t == b.optimizer_.t
    np.testing.assert_array_equal(a.predict(X), b.predict(X))   # the second fit did not start from the first's state


def test_fit_checks_parameters_but_init_does_not():
    """scikit-learn's convention: __init__ stores, fit checks (so set_params and clone never raise)."""
    est = NFMRegressor(validation_fraction=7, k=-1)
    assert est.get_params()["validation_fraction"] == 7
    with pytest.raises(E.OptionError, match=r"^NFMRegressor: k must be >= 1"):
        est.fit(X, Y)


def test_divergence_after_an_epoch_keeps_the_best_weights_and_warns():
    est = FMRegressor(optimizer="sgd", lr=3, batch_size=16, k=2, epochs=3, random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"^FMRegressor: training diverged \(.* at epoch 2, batch 1 of 3\); "
                      r"the estimator keeps the weights of epoch 1, the best; try a smaller lr$"):
        est.fit(X, Y)
    assert est.history_.best_epoch == 1 and np.isfinite(est.predict(X)).all()


FAILED_REFITS = [  # (estimator, a good fit's y, a refit that fails: X, y, its error)
    (FMRegressor(**SMALL), Y, with_entry(X, (1, 1), np.nan), Y, E.DataError),  # NaN in X
    (FMRegressor(optimizer="sgd", **SMALL), Y, X, Y, E.RunFailed),            # lr 1e30 (below): epoch 1's weights
                                                                              # overflow: refused, not kept
    (NFMRegressor(**NSMALL), Y, X[:1], 1000 * Y[:1], E.OptionError),           # y rescaled, then no training row
    (FMClassifier(**SMALL), YC, X, np.full(60, 7), E.DataError),               # one class
    (FMRegressor(optimizer="sgd", batch_size=16, **SMALL), Y, X, Y, E.RunFailed),   # diverges (lr set below)
]


@pytest.mark.parametrize("est, y, X2, y2, error", FAILED_REFITS)
def test_a_fit_that_fails_leaves_the_estimator_as_it_was(est, y, X2, y2, error):
    est.fit(X, y)
    before = {k: v for k, v in vars(est).items() if k.endswith("_")}
    pred = est.predict(X)
    est.set_params(early_stopping=error is E.OptionError, lr=1e30 if error is E.RunFailed else est.lr)
    with pytest.raises(error):
        est.fit(X2, y2)
    assert {k: v for k, v in vars(est).items() if k.endswith("_")}.keys() == before.keys()
    assert all(vars(est)[k] is v for k, v in before.items())
    np.testing.assert_array_equal(est.predict(X), pred)


def test_a_failed_first_fit_leaves_the_estimator_unfitted():
    est = FMRegressor(optimizer="sgd", lr=1e30, batch_size=16, **SMALL)
    with pytest.raises(E.RunFailed):
        est.fit(X, Y)
    with pytest.raises(NotFittedError):
        est.predict(X)


def test_warm_start_applies_a_new_lr_and_a_new_optimizer_starts_fresh():
    est = FMRegressor(warm_start=True, **SMALL).fit(X, Y)
    first = est.optimizer_
    est.set_params(lr=0.01).fit(X, Y)
    assert est.optimizer_ is first and est.optimizer_.lr == 0.01 and est.n_epochs_ == 4
    est.set_params(optimizer="adam").fit(X, Y)
    assert isinstance(est.optimizer_, optim.Adam) and est.optimizer_.t == 2 and est.n_epochs_ == 6   # 2 steps
    assert "valid_auc" not in est.set_params(early_stopping=True).fit(X, Y).history_.epochs[0]


def test_a_fit_interrupted_before_any_epoch_leaves_no_model(monkeypatch):
    """When a caller's own handler of a stop signal returns, train.fit returns a History that says
    'interrupted'; with no finished epoch the estimator must not pass for fitted (initial weights)."""
    from nfm_numpy import estimators
    from nfm_numpy.train import History

    def interrupted(model, *args, **kwargs):
        return History("rmse", outcome="interrupted", stopped="SIGTERM at epoch 1, after batch 1 of 3")

    monkeypatch.setattr(estimators, "fit_model", interrupted)
    est = FMRegressor(**SMALL)
    with pytest.raises(E.RunFailed, match=r"^FMRegressor: training was interrupted \(SIGTERM at epoch 1, after "
                       r"batch 1 of 3\) before any epoch finished$"):
        est.fit(X, Y)
    with pytest.raises(NotFittedError):
        est.predict(X)


# ------------------------------------------------------------------ from the adversarial pass
@pytest.mark.parametrize("which", ["X", "y"])
def test_masked_arrays_are_refused_not_unmasked(which):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), np.arange(40.0)
    if which == "X":
        X = np.ma.masked_array(X, mask=X > 1.5)
    else:
        y = np.ma.masked_array(y, mask=y == 3)
    with pytest.raises(E.DataError, match=rf"FMRegressor: {which} is a masked array"):
        FMRegressor(k=2, epochs=1).fit(X, y)


def test_a_huge_but_finite_y_is_standardised_not_refused():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 3)), rng.standard_normal(60)
    small = FMRegressor(k=2, epochs=2, random_state=0, dtype="float64").fit(X, y)
    huge = FMRegressor(k=2, epochs=2, random_state=0, dtype="float64").fit(X, 1e200 * y)
    assert huge.y_scale_ == pytest.approx(1e200 * small.y_scale_, rel=1e-12)
    np.testing.assert_allclose(huge.predict(X), 1e200 * small.predict(X), rtol=1e-9)


@pytest.mark.parametrize("y", [np.where(np.arange(60) % 2, 1e308, -1e308), np.full(60, 1.7e308)],
                         ids=["spread near the float64 limit", "mean near the float64 limit"])
def test_y_near_the_float64_limit_is_standardised_and_never_predicts_inf_silently(y):
    X = np.random.default_rng(0).standard_normal((60, 3))
    est = FMRegressor(k=2, epochs=1, random_state=0).fit(X, y)
    assert np.isfinite(est.y_mean_) and np.isfinite(est.y_scale_)
    try:
        pred = est.predict(X)
    except E.RunFailed as e:                          # y's units may not hold a prediction: said, never inf
        assert "not finite" in str(e)
    else:
        assert np.isfinite(pred).all()
