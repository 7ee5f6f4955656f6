"""partial_fit: scikit-learn's incremental learning, one batch at a time, and the README's "when one
machine is not enough" run for real: dask-ml's Incremental on a dask array, on a dask.distributed
local cluster. The oracle for Incremental is our own loop of partial_fit over the same blocks."""
import numpy as np
import pytest

pytest.importorskip("sklearn")
from nfm_numpy.errors import DataError, OptionError  # noqa: E402
from nfm_numpy.estimators import FMClassifier, NFMRegressor  # noqa: E402


def data(n=2400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 2, (n, 16)).astype(np.float64)
    y = 2 * X[:, 0] - X[:, 1] + 1.5 * X[:, 2] * X[:, 3] + 0.1 * rng.normal(size=n)
    return X, y


def batches(n, size):
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def test_partial_fit_learns_batch_by_batch_and_continues_its_state():
    X, y = data()
    est = NFMRegressor(k=8, layers=(8,), random_state=0)
    rmse = []
    for _ in range(4):
        for b in batches(len(y), 400):
            est.partial_fit(X[b], y[b])
        rmse.append(float(np.sqrt(np.mean((est.predict(X) - y) ** 2))))
    assert est.n_batches_seen_ == 24
    assert rmse[-1] < 0.6 * rmse[0] and rmse[-1] < 0.5 * np.std(y)
    first = X[:400].mean(), y[:400].mean()
    assert est.y_mean_ == pytest.approx(y[:400].mean()) and first         # fixed by the first batch


def test_partial_fit_once_is_fit_for_one_epoch():
    X, y = data(600)
    a = NFMRegressor(k=4, layers=(4,), random_state=3, epochs=1).fit(X, y)
    b = NFMRegressor(k=4, layers=(4,), random_state=3).partial_fit(X, y)
    assert np.array_equal(a.predict(X), b.predict(X))


def test_partial_fit_refuses_what_would_change_the_model():
    X, y = data(300)
    est = NFMRegressor(k=4, layers=(4,), random_state=0).partial_fit(X, y)
    with pytest.raises(DataError, match="16 features"):
        est.partial_fit(X[:, :5], y)
    est.set_params(k=8)
    with pytest.raises(OptionError, match="partial_fit continues the fitted model, built with k=4"):
        est.partial_fit(X, y)


def test_classifier_partial_fit_needs_its_classes_first():
    X, y = data()
    labels = np.where(y > np.median(y), "yes", "no")
    clf = FMClassifier(k=4, random_state=0)
    with pytest.raises(OptionError, match="classes"):
        clf.partial_fit(X[:50], labels[:50])
    ones = labels == "yes"
    clf.partial_fit(X[ones][:50], labels[ones][:50], classes=["no", "yes"])      # a batch of one class is fine
    with pytest.raises(DataError, match=r"y\[0\] = 'maybe' is not one of the classes given"):
        clf.partial_fit(X[:1], np.array(["maybe"]))
    with pytest.raises(DataError, match="differ"):
        clf.partial_fit(X[:10], labels[:10], classes=["no", "si"])
    for _ in range(6):
        for b in batches(len(y), 300):
            clf.partial_fit(X[b], labels[b])
    assert (clf.predict(X) == labels).mean() > 0.85


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("dask_ml")
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def test_dask_ml_incremental_on_a_local_cluster_is_our_loop_of_partial_fit(client):
    import dask.array as da
    from dask_ml.wrappers import Incremental

    X, y = data()
    Xd, yd = da.from_array(X, chunks=(400, 16)), da.from_array(y, chunks=400)
    inc = Incremental(NFMRegressor(k=8, layers=(8,), random_state=0), scoring="neg_mean_squared_error",
                      shuffle_blocks=False)
    inc.fit(Xd, yd)
    mine = NFMRegressor(k=8, layers=(8,), random_state=0)
    for b in batches(len(y), 400):
        mine.partial_fit(X[b], y[b])
    theirs = inc.estimator_.model_.params
    assert all(np.array_equal(theirs[name], value) for name, value in mine.model_.params.items())  # bit for bit
    # predicted in blocks of 400 against all at once: float32 products round by position (1 ulp)
    assert np.allclose(inc.predict(Xd).compute(), mine.predict(X), rtol=1e-6, atol=1e-6)
    assert inc.estimator_.n_batches_seen_ == 6
    assert np.sqrt(-inc.score(Xd, yd)) < np.std(y)


def test_dask_ml_incremental_classifier_with_classes(client):
    import dask.array as da
    from dask_ml.wrappers import Incremental

    X, y = data(seed=1)
    labels = (y > np.median(y)).astype(int)
    Xd, yd = da.from_array(X, chunks=(300, 16)), da.from_array(labels, chunks=300)
    inc = Incremental(FMClassifier(k=4, random_state=0), scoring="accuracy", random_state=0)
    for _ in range(5):                                                   # five passes, blocks shuffled
        inc.partial_fit(Xd, yd, classes=[0, 1])
    assert inc.score(Xd, yd) > 0.85
