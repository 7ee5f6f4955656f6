"""BayesFMRegressor and BayesFMClassifier: scikit-learn's own checks, a Pipeline that learns a
pairwise teacher, string labels, pickling, and a table of bad hyper-parameters."""
import math
import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is an optional extra (pip install scikit-learn)")

import scipy.sparse as sp  # noqa: E402
from scipy import special  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.metrics import r2_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from nfm_numpy import bayes, checkpoint  # noqa: E402
from nfm_numpy.errors import OptionError, OptionTypeError, RunFailed  # noqa: E402
from nfm_numpy.estimators import BayesFMClassifier, BayesFMRegressor  # noqa: E402

# Every check of scikit-learn passes: no sample_weight (the sampler has none; the checks that need it
# are not run for an estimator whose fit does not take it), and the chain is seeded by random_state,
# so refits and row permutations give the same numbers. Nothing is listed as expected to fail.
EXPECTED_FAILURES = {}


@parametrize_with_checks([BayesFMRegressor(random_state=0), BayesFMClassifier(random_state=0)],
                         expected_failed_checks=lambda est: EXPECTED_FAILURES)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


# ------------------------------------------------------------------ a pairwise teacher
def pairwise_problem(n, seed=0, n_users=25, n_items=25, classify=False):
    """Columns user, item, context (categories); y = <u, i> + noise: no linear part to speak of, so a
    model without interactions explains next to nothing of it."""
    rng = np.random.default_rng(1234)                       # the teacher: the same for every split
    U, I = rng.standard_normal((n_users, 2)), rng.standard_normal((n_items, 2))
    r = np.random.default_rng(seed)
    u, i, c = r.integers(0, n_users, n), r.integers(0, n_items, n), r.integers(0, 4, n)
    X = np.column_stack([np.char.add("u", u.astype(str)), np.char.add("i", i.astype(str)),
                         np.char.add("c", c.astype(str))])
    y = np.sum(U[u] * I[i], axis=1) + 0.1 * r.standard_normal(n)
    if classify:
        y = np.where(y > 0, "like", "dislike")
    return X, y


def test_a_pipeline_with_one_hot_columns_learns_a_pairwise_teacher():
    X, y = pairwise_problem(3000)
    X_test, y_test = pairwise_problem(1000, seed=1)
    model = make_pipeline(OneHotEncoder(handle_unknown="ignore"), BayesFMRegressor(k=4, random_state=0))
    r2 = r2_score(y_test, model.fit(X, y).predict(X_test))
    ridge = r2_score(y_test, make_pipeline(OneHotEncoder(handle_unknown="ignore"), Ridge()).fit(X, y).predict(X_test))
    assert ridge < 0.3                                      # the teacher is pairwise: one-hot alone explains little
    assert r2 > 0.8 and r2 > ridge + 0.5, (r2, ridge)


def test_the_classifier_takes_string_labels():
    X, y = pairwise_problem(3000, classify=True)
    X_test, y_test = pairwise_problem(1000, seed=1, classify=True)
    model = make_pipeline(OneHotEncoder(handle_unknown="ignore"), BayesFMClassifier(k=4, random_state=0))
    model.fit(X, y)
    est = model[-1]
    assert est.classes_.tolist() == ["dislike", "like"]
    pred = model.predict(X_test)
    assert set(pred.tolist()) <= {"dislike", "like"}
    assert np.mean(pred == y_test) > 0.85
    proba, score = model.predict_proba(X_test), model.decision_function(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert np.array_equal(pred == "like", score > 0)
    assert np.array_equal(np.argmax(proba, axis=1), (score > 0).astype(int))
    np.testing.assert_allclose(score, np.log(proba[:, 1]) - np.log(proba[:, 0]), rtol=1e-9, atol=1e-9)


def test_predict_proba_is_the_posterior_mean_of_phi():
    """predict_proba[:, 1] is BayesFM.predict (the mean of Phi(yhat) over the kept samples), computed
    here from the samples by hand."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 5))
    y = X[:, 0] * X[:, 1] > 0
    est = BayesFMClassifier(k=3, n_samples=30, burn_in=5, keep=7, random_state=0).fit(X, y)
    m = est.model_
    hand = np.mean([special.ndtr(m.w0[t] + X @ m.w[t] + 0.5 * np.sum((X @ m.V[t]) ** 2 - (X * X) @ m.V[t] ** 2, 1))
                    for t in range(m.n_kept)], axis=0)
    idx, val = est._padded(sp.csr_array(X))
    np.testing.assert_allclose(est.predict_proba(X)[:, 1], hand, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(est.predict_proba(X)[:, 1], m.predict(idx, val), rtol=1e-10, atol=1e-14)


def test_the_regressor_predicts_in_y_units():
    """y is standardised for training: predictions are the posterior mean in y's units, and the
    same chain follows from y and from 1000 y + 5 (up to the rounding of the standardisation)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 6))
    y = X[:, 0] * X[:, 1] + X[:, 2]
    a = BayesFMRegressor(k=3, n_samples=20, burn_in=5, random_state=0).fit(X, y)
    b = BayesFMRegressor(k=3, n_samples=20, burn_in=5, random_state=0).fit(X, 1000 * y + 5)
    idx, val = a._padded(sp.csr_array(X))
    np.testing.assert_allclose(a.predict(X), a.model_.predict(idx, val) * a.y_scale_ + a.y_mean_, rtol=1e-15)
    np.testing.assert_allclose(b.predict(X), 1000 * a.predict(X) + 5, rtol=1e-6, atol=1e-6 * 1000)
    assert math.isclose(b.y_scale_, 1000 * a.y_scale_) and math.isclose(b.y_mean_, 1000 * a.y_mean_ + 5)


def test_sparse_and_dense_x_give_the_same_chain():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((100, 8)) * (rng.random((100, 8)) < 0.4)
    y = X[:, 0] - X[:, 1] * X[:, 2]
    kw = dict(k=2, n_samples=10, burn_in=2, random_state=3)
    dense, sparse = BayesFMRegressor(**kw).fit(X, y), BayesFMRegressor(**kw).fit(sp.csr_matrix(X), y)
    assert np.array_equal(dense.predict(X), sparse.predict(sp.csr_matrix(X)))


def test_groups_keep_and_verbose(capsys):
    X, y = pairwise_problem(300)
    enc = OneHotEncoder().fit(X)
    groups = np.repeat(np.arange(3), [len(c) for c in enc.categories_])
    est = BayesFMRegressor(k=2, n_samples=5, burn_in=3, keep=50, groups=groups, verbose=1, random_state=0)
    est.fit(enc.transform(X), y)
    assert est.model_.config["n_groups"] == 3
    assert est.model_.n_kept == 5                           # keep > n_samples keeps every sample
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8 and len(est.trace_) == 8
    assert lines[0].startswith("BayesFMRegressor sweep    1/8 (burn-in)  train rmse ")
    assert lines[-1].startswith("BayesFMRegressor sweep    8/8 (sample)  train rmse ")


# ------------------------------------------------------------------ pickling and checkpoints
@pytest.mark.parametrize("cls", [BayesFMRegressor, BayesFMClassifier])
def test_pickling_and_clones(cls):
    X, y = pairwise_problem(400, classify=cls is BayesFMClassifier)
    enc = OneHotEncoder().fit(X)
    est = cls(k=2, n_samples=10, burn_in=2, random_state=0).fit(enc.transform(X), y)
    again = pickle.loads(pickle.dumps(est))
    assert not hasattr(again.model_, "sampler")            # the sampler (and the training rows) are not kept
    for method in ("predict",) + (("predict_proba", "decision_function") if cls is BayesFMClassifier else ()):
        assert np.array_equal(getattr(again, method)(enc.transform(X)), getattr(est, method)(enc.transform(X)))
    fresh = clone(est)
    assert not hasattr(fresh, "model_") and fresh.get_params() == est.get_params()


def test_the_fitted_model_saves_as_a_checkpoint(tmp_path):
    X, y = pairwise_problem(400)
    enc = OneHotEncoder().fit(X)
    est = BayesFMRegressor(k=2, n_samples=10, burn_in=2, random_state=0).fit(enc.transform(X), y)
    checkpoint.save(est.model_, tmp_path / "m.npz")
    loaded, _ = checkpoint.load(tmp_path / "m.npz")
    idx, val = est._padded(enc.transform(X).tocsr())
    assert np.array_equal(loaded.predict(idx, val), est.model_.predict(idx, val))


# ------------------------------------------------------------------ what is refused
BAD_PARAMS = [
    (dict(k=0), OptionError, "k must be >= 1, got 0"),
    (dict(k=2.5), OptionTypeError, "k must be an integer"),
    (dict(k="8"), OptionTypeError, "k must be an integer"),
    (dict(n_samples=0), OptionError, "n_samples must be >= 1"),
    (dict(n_samples=None), OptionTypeError, "n_samples must be an integer"),
    (dict(burn_in=-1), OptionError, "burn_in must be >= 0"),
    (dict(keep=0), OptionError, "keep must be >= 1"),
    (dict(keep=True), OptionTypeError, "keep must be an integer"),
    (dict(init_std=-0.1), OptionError, "init_std must be >= 0"),
    (dict(init_std=float("nan")), OptionError, "init_std must be a finite number"),
    (dict(prior="libfm"), OptionTypeError, "prior must be None or an nfm_numpy.bayes.Prior"),
    (dict(prior=bayes.Prior(a0=-1.0)), OptionError, "prior.a0 must be > 0"),
    (dict(prior=bayes.Prior(mu0=float("inf"))), OptionError, "prior.mu0 must be a finite number"),
    (dict(random_state="seed"), OptionTypeError, "random_state must be None, an int or a numpy RandomState"),
    (dict(verbose=-1), OptionError, "verbose must be >= 0"),
    (dict(groups=[0, 1]), OptionError, r"groups must hold one group id per column of X \(4\), got shape \(2,\)"),
    (dict(groups=[0.0, 1.0, 0.0, 1.0]), OptionTypeError, "groups must hold integer group ids, got dtype float64"),
    (dict(groups=[0, -1, 0, 1]), OptionError, r"groups\[1\] = -1: group ids must be >= 0"),
    (dict(groups="fields"), OptionTypeError, "groups must be None or one integer group id per column"),
]


@pytest.mark.parametrize("cls", [BayesFMRegressor, BayesFMClassifier])
@pytest.mark.parametrize("params, error, message", BAD_PARAMS, ids=[str(p[0]) for p in BAD_PARAMS])
def test_bad_hyper_parameters_are_refused_at_fit(cls, params, error, message):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 4)), np.arange(40) % 2
    est = cls(**params)                                     # __init__ only stores them
    with pytest.raises(error, match=f"^{cls.__name__}: {message}") as e:
        est.fit(X, y)
    assert "\n" not in str(e.value)
    assert not hasattr(est, "model_")
    good = cls(k=2, n_samples=3, burn_in=0, random_state=0).fit(X, y)
    before = good.model_
    with pytest.raises(error):
        good.set_params(**params).fit(X, y)
    assert good.model_ is before                            # a fit that raises leaves the estimator as it was


@pytest.mark.parametrize("cls", [BayesFMRegressor, BayesFMClassifier])
def test_predictions_that_overflow_are_refused(cls):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 3)), np.arange(60) % 2
    est = cls(k=2, n_samples=5, burn_in=1, random_state=0).fit(X, y)
    methods = ["predict"] + (["predict_proba", "decision_function"] if cls is BayesFMClassifier else [])
    for method in methods:
        with pytest.raises(RunFailed, match=f"^{cls.__name__}: .* predictions are not finite, the first for row 0"):
            getattr(est, method)(X * 1e200)


def test_the_classifier_needs_two_classes():
    X = np.random.default_rng(0).standard_normal((30, 3))
    with pytest.raises(ValueError, match="^BayesFMClassifier: y holds 1 class"):
        BayesFMClassifier().fit(X, np.ones(30))
    with pytest.raises(ValueError, match="^BayesFMClassifier: Only binary classification is supported"):
        BayesFMClassifier().fit(X, np.arange(30) % 3)
