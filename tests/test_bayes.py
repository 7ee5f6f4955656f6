"""The Gibbs sampler of nfm_numpy.bayes against independent computations: dense linear algebra
for every conditional, Bayesian linear regression's closed form, a synthetic FM teacher, scipy's
truncated normal, coordinate-wise sampling, and the NumPy run on other backends."""
import numpy as np
import pytest
from scipy import stats

from nfm_numpy import bayes, datasets, errors as E
from nfm_numpy.metrics import auc


# ------------------------------------------------------------------ small problems, dense references
def make_rows(kind="onehot", N=60, seed=0):
    """Rows of one-hot fields (4, 5, 3) plus, for kind 'multi', a multi-valued field of 4 features
    (0-2 values a row, x = 1/m), for 'real', two real-valued features present in every row.
    Returns idx, val (N, F), y (N,), n_features, fields (n,) field of each feature."""
    rng = np.random.default_rng(seed)
    sizes = [4, 5, 3]
    cols, vals = [], []
    off = 0
    for c in sizes:
        cols.append(off + rng.integers(0, c, N))
        vals.append(np.ones(N))
        off += c
    fields = list(np.repeat(np.arange(3), sizes))
    if kind == "multi":
        perm = rng.permuted(np.tile(np.arange(4), (N, 1)), axis=1)        # distinct values within a row
        m = rng.integers(0, 3, N)                        # values in this row: 0, 1 or 2
        for j in range(2):                               # two slots of a 4-value field
            ids = off + perm[:, j]
            present = j < m
            cols.append(np.where(present, ids, 0))
            vals.append(np.where(present, 1.0 / np.maximum(m, 1), 0.0))
        fields += [3] * 4
        off += 4
    if kind == "real":
        for j in range(2):
            cols.append(np.full(N, off + j))
            vals.append(rng.normal(0, 1, N))
        fields += [3, 3]
        off += 2
    idx, val = np.stack(cols, 1), np.stack(vals, 1)
    y = rng.normal(0, 1, N)
    return idx, val, y, off, np.array(fields)


def dense(idx, val, n):
    X = np.zeros((idx.shape[0], n))
    np.add.at(X, (np.arange(idx.shape[0])[:, None], idx), val)
    return X                                                              # (N, n)


def dense_yhat(X, w0, w, V):
    return w0 + X @ w + 0.5 * ((X @ V) ** 2 - (X ** 2) @ (V ** 2)).sum(1)


def block_posterior(H, r, lam, mu, alpha):
    """The exact Gaussian posterior of theta in r = H theta + noise(1/alpha), theta ~ N(mu, 1/lam):
    precision matrix and mean, by dense linear algebra."""
    P = alpha * H.T @ H + np.diag(lam)
    return P, np.linalg.solve(P, alpha * H.T @ r + lam * mu)


def warm_sampler(kind, task="regression", sweeps=3, seed=0, **kw):
    idx, val, y, n, fields = make_rows(kind, seed=seed)
    if task == "probit":
        y = (y > 0).astype(float)
    s = bayes.GibbsFM(idx, val, y, n, k=3, task=task, groups=fields, seed=seed, **kw)
    for _ in range(sweeps):
        s.sweep()
    return s, dense(idx, val, n)


# ------------------------------------------------------------------ 1. conditionals are exact
@pytest.mark.parametrize("kind", ["onehot", "multi", "real"])
@pytest.mark.parametrize("task", ["regression", "probit"])
def test_v_conditional_equals_dense_gaussian_posterior(kind, task):
    """For every block and a factor f, the sampler's mean and precision equal the exact posterior of
    the block given everything else, built by brute force from the dense design; that posterior's
    precision matrix is diagonal (the block is conditionally independent)."""
    s, X = warm_sampler(kind, task)
    V, w, w0 = s.V, s.w, s.w0
    f = 1
    yhat = dense_yhat(X, w0, w, V)
    for b, blk in enumerate(s.blocks):
        feats = blk.feat
        H = X[:, feats] * ((X @ V)[:, [f]] - X[:, feats] * V[feats, f])   # (N, n_b) d yhat / d v_if
        g = yhat - H @ V[feats, f]                                         # yhat without the block's terms
        lam, mu = s.lam_v[s.group[feats], f], s.mu_v[s.group[feats], f]
        P, m = block_posterior(H, s.target - g, lam, mu, s.alpha)
        mean, prec = s.v_conditional(f, b)
        np.testing.assert_allclose(P - np.diag(np.diag(P)), 0, atol=1e-12)
        np.testing.assert_allclose(prec, np.diag(P), rtol=1e-10)
        np.testing.assert_allclose(mean, m, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["onehot", "multi", "real"])
def test_w_conditional_equals_dense_gaussian_posterior(kind):
    s, X = warm_sampler(kind)
    yhat = dense_yhat(X, s.w0, s.w, s.V)
    for b, blk in enumerate(s.blocks):
        H = X[:, blk.feat]                                                 # (N, n_b)
        g = yhat - H @ s.w[blk.feat]
        P, m = block_posterior(H, s.target - g, s.lam_w[s.group[blk.feat]], s.mu_w[s.group[blk.feat]], s.alpha)
        mean, prec = s.w_conditional(b)
        np.testing.assert_allclose(P - np.diag(np.diag(P)), 0, atol=1e-12)
        np.testing.assert_allclose(prec, np.diag(P), rtol=1e-10)
        np.testing.assert_allclose(mean, m, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["onehot", "multi", "real"])
def test_incremental_residuals_match_a_fresh_computation(kind):
    """e and s, updated draw by draw, equal target - yhat and X V computed from scratch."""
    s, X = warm_sampler(kind, sweeps=5)
    np.testing.assert_allclose(s.e, s.target - dense_yhat(X, s.w0, s.w, s.V), atol=1e-10)
    np.testing.assert_allclose(np.stack(s.s, 1), X @ s.V, atol=1e-10)


# ------------------------------------------------------------------ 2. w with V fixed: Bayesian linear regression
def test_w0_conditional_equals_dense_gaussian_posterior():
    s, X = warm_sampler("real", prior=bayes.Prior(lambda_w0=0.7))
    r = s.target - (dense_yhat(X, s.w0, s.w, s.V) - s.w0)                 # y - g, g: everything but w0
    P, m = block_posterior(np.ones((X.shape[0], 1)), r, np.array([0.7]), np.zeros(1), s.alpha)
    mean, prec = s.w0_conditional()
    assert prec == pytest.approx(P[0, 0], rel=1e-12) and mean == pytest.approx(m[0], rel=1e-10)


def test_w_posterior_with_V_frozen_is_bayesian_linear_regression():
    """V, w0, alpha and the hyper-parameters held fixed: the chain's w samples have the mean and
    covariance of the closed-form posterior N(Sigma (alpha X^T r + Lambda mu), Sigma),
    Sigma = (alpha X^T X + Lambda)^-1, X dense, r = y - w0 - pairwise term.
    (With w0 sampled too the chain is right but mixes slowly: w0 and each one-hot field's w
    are nearly collinear; 40,000 sweeps bring the covariance within 3%, too slow for a test.)"""
    idx, val, y, n, fields = make_rows("real", N=40, seed=3)
    s = bayes.GibbsFM(idx, val, y, n, k=2, groups=fields, seed=1, frozen=("V", "w0", "hyper", "alpha"))
    s.alpha, s.w0 = 3.0, 0.7
    s.mu_w, s.lam_w = np.array([0.2, -0.1, 0.0, 0.3]), np.array([2.0, 1.0, 4.0, 0.5])
    s.refresh()
    X = dense(idx, val, n)
    r = y - dense_yhat(X, s.w0, np.zeros(n), s.V)
    P, m = block_posterior(X, r, s.lam_w[s.group], s.mu_w[s.group], s.alpha)
    Sigma = np.linalg.inv(P)
    draws = []
    for it in range(6100):
        s.sweep()
        if it >= 100:
            draws.append(s.w.copy())
    draws = np.array(draws)                                                 # (6000, n)
    sd = np.sqrt(np.diag(Sigma))
    # Monte Carlo error from batch means (the chain is autocorrelated): 60 batches of 100
    se = draws.reshape(60, 100, -1).mean(1).std(0, ddof=1) / np.sqrt(60)
    assert np.all(np.abs(draws.mean(0) - m) < 5 * se), (draws.mean(0) - m) / se
    corr_err = np.abs((np.cov(draws.T) - Sigma) / np.outer(sd, sd))
    assert corr_err.max() < 0.1, corr_err.max()


# ------------------------------------------------------------------ 3. blocks and coordinates
@pytest.mark.parametrize("task", ["regression", "probit"])
def test_field_blocks_give_the_same_chain_as_coordinate_wise_sampling(task):
    """One-hot fields as blocks: the vectorised sweep and the one-feature-at-a-time sweep, with the
    same seed (one normal number per feature and factor), give the same parameters."""
    idx, val, y, n, fields = make_rows("onehot", seed=4)
    if task == "probit":
        y = np.where(y > 0, 1.0, -1.0)
    a = bayes.GibbsFM(idx, val, y, n, k=3, task=task, groups=fields, seed=7)
    c = bayes.GibbsFM(idx, val, y, n, k=3, task=task, groups=fields, seed=7, blocks="coordinate")
    assert len(a.blocks) == 3 and len(c.blocks) == n
    for _ in range(4):
        a.sweep()
        c.sweep()
    assert a.alpha == pytest.approx(c.alpha, rel=1e-10) and a.w0 == pytest.approx(c.w0, rel=1e-10)
    np.testing.assert_allclose(a.w, c.w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.V, c.V, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["multi", "real"])
def test_block_conditional_equals_coordinate_conditionals(kind):
    """Where features of a field share rows, each block of the found partition has the same
    conditional mean and variance, feature by feature, as the coordinate-wise sampler at the
    same state (the distribution the two sweeps draw from is the same)."""
    s, _ = warm_sampler(kind)
    c = bayes.GibbsFM(s.idx, s.val, s.target, s.n_features, k=3, groups=s.group, blocks="coordinate")
    c.w0, c.alpha, c.w = s.w0, s.alpha, s.w.copy()
    c.Vc = [v.copy() for v in s.Vc]
    c.mu_w, c.lam_w, c.mu_v, c.lam_v = s.mu_w, s.lam_w, s.mu_v, s.lam_v
    c.refresh()
    for b, blk in enumerate(s.blocks):
        mean, prec = s.v_conditional(2, b)
        for j, i in enumerate(blk.feat):
            m1, p1 = c.v_conditional(2, int(i))
            np.testing.assert_allclose([mean[j], prec[j]], [m1[0], p1[0]], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["onehot", "real"])
def test_set_V_puts_a_column_in_and_refreshes_the_caches(kind):
    """``V`` is a copy (writing into it changes nothing); ``set_V(feats, f, values)`` changes exactly
    those entries, and ``s`` and ``e`` then agree with the dense model; bad arguments are named."""
    s, X = warm_sampler(kind)
    V0 = s.V
    s.V[[0, 2], 1] = 5.0                                                  # a copy: no effect
    np.testing.assert_array_equal(s.V, V0)
    s.set_V(np.array([0, 2]), 1, [0.25, -0.5])
    V1 = V0.copy()
    V1[[0, 2], 1] = [0.25, -0.5]
    np.testing.assert_array_equal(s.V, V1)
    np.testing.assert_allclose(s.e, s.target - dense_yhat(X, s.w0, s.w, V1), atol=1e-12)
    np.testing.assert_allclose(np.stack(s.s, 1), X @ V1, atol=1e-12)
    for args, cls, msg in (((np.array([0]), 3, [1.0]), E.OptionError, "f must be <= 2"),
                           ((np.array([0, 0]), 1, [1.0, 2.0]), E.OptionError, "feats must hold distinct ids"),
                           ((np.array([s.n_features]), 1, [1.0]), E.OptionError, "feats must hold distinct ids"),
                           ((np.array([0.5]), 1, [1.0]), E.OptionTypeError, "feats must hold integer"),
                           ((np.array([0, 1]), 1, [1.0]), E.OptionError, "values must have one entry")):
        with pytest.raises(cls, match=msg):
            s.set_V(*args)
    np.testing.assert_array_equal(s.V, V1)                                # a refused call changes nothing


def test_set_V_on_every_backend(backend):
    """set_V takes host or backend arrays and leaves the same state as on NumPy."""
    from nfm_numpy.backend import to_numpy
    idx, val, y, n, fields = make_rows("multi", N=30, seed=11)
    ref = bayes.GibbsFM(idx, val, y, n, k=2, groups=fields, seed=3)
    got = bayes.GibbsFM(*(backend.asarray(a) for a in (idx, val, y)), n, k=2, groups=fields, seed=3)
    ref.set_V(np.array([1, 4]), 1, np.array([0.5, -0.25]))
    got.set_V(backend.asarray(np.array([1, 4])), 1, backend.asarray(np.array([0.5, -0.25])))
    np.testing.assert_allclose(to_numpy(got.V), ref.V, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(to_numpy(got.e), ref.e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["onehot", "multi", "real"])
@pytest.mark.parametrize("with_groups", [True, False])
def test_found_blocks_never_share_a_row(kind, with_groups):
    idx, val, _, n, fields = make_rows(kind, seed=5)
    part = bayes.safe_blocks(idx, val, n, fields if with_groups else None)
    assert part.shape == (n,) and set(np.unique(part)) == set(range(part.max() + 1))
    X = dense(idx, val, n) != 0
    for b in range(part.max() + 1):
        assert X[:, part == b].sum(1).max() <= 1
    if with_groups:                                    # a one-hot field stays one block
        for fld in range(3):
            assert np.unique(part[fields == fld]).size == 1
    if kind == "multi":                                # the multi-valued field had to be split
        assert np.unique(part[fields == 3]).size >= 2


def test_unsafe_explicit_blocks_are_split():
    idx, val, y, n, fields = make_rows("multi", seed=6)
    s = bayes.GibbsFM(idx, val, y, n, k=2, blocks=np.zeros(n, dtype=int))
    X = dense(idx, val, n) != 0
    for blk in s.blocks:
        assert X[:, blk.feat].sum(1).max() <= 1


# ------------------------------------------------------------------ 4. hyper-parameters, latent variables
def test_normal_gamma_draw_matches_its_closed_form():
    """(mu, lambda) of one group, drawn many times at once (V's k columns all equal): the sample means
    of lambda and mu and the variance of mu match the Normal-Gamma posterior's."""
    idx, val, y, n, _ = make_rows("onehot", seed=8)
    s = bayes.GibbsFM(idx, val, y, n, k=1, seed=0, prior=bayes.Prior(a0=1.5, b0=0.7, gamma0=2.0, mu0=0.4))
    theta = np.random.default_rng(1).normal(0.3, 0.8, n)
    K = 40000
    mu, lam = s._normal_gamma(np.repeat(theta[:, None], K, axis=1))       # (1, K) each
    p = s.prior
    gam_n = p.gamma0 + n
    mu_n = (p.gamma0 * p.mu0 + theta.sum()) / gam_n
    a_n = p.a0 + n / 2
    b_n = p.b0 + 0.5 * (((theta - theta.mean()) ** 2).sum() + p.gamma0 * n * (theta.mean() - p.mu0) ** 2 / gam_n)
    assert lam.mean() == pytest.approx(a_n / b_n, rel=4 * np.sqrt(1 / a_n / K) + 1e-3)
    var_mu = b_n / (gam_n * (a_n - 1))                                     # E[1 / (gamma_n lambda)]
    assert mu.mean() == pytest.approx(mu_n, abs=5 * np.sqrt(var_mu / K))
    assert mu.var() == pytest.approx(var_mu, rel=0.05)


@pytest.mark.parametrize("m", [-30.0, -2.0, 0.0, 1.5, 30.0])
def test_truncated_normal_matches_scipy(m):
    rng = np.random.default_rng(0)
    n = 20000
    for positive in (True, False):
        z = bayes.truncated_normal(rng, np.full(n, m), np.full(n, positive))
        a, b = (-m, np.inf) if positive else (-np.inf, -m)
        ref = stats.truncnorm(a, b, loc=m, scale=1.0)
        assert np.all(z >= 0) if positive else np.all(z <= 0)
        assert np.all(np.isfinite(z))
        assert z.mean() == pytest.approx(ref.mean(), abs=5 * ref.std() / np.sqrt(n) + 1e-12)
        assert z.var() == pytest.approx(ref.var(), rel=0.06, abs=1e-12)


# ------------------------------------------------------------------ 5. the whole chain
def teacher_split(loss="square", seed=1):
    return datasets.synthetic(n_train=4000, n_valid=10, n_test=2000, fields=(20, 30, 5, 4), k_teacher=4,
                              noise=0.1, higher_order=0.0, loss=loss, seed=seed, dtype=np.float64)


def test_predictive_mean_reaches_the_noise_floor_of_an_fm_teacher():
    """Data from an FM teacher with noise std 0.1: the posterior-mean test RMSE is within 15% of 0.1,
    far below predicting the mean; the kept samples predict as the running mean does."""
    split = teacher_split()
    fields = np.repeat(np.arange(4), (20, 30, 5, 4))
    m = bayes.fit(split.train, split.test, k=4, n_samples=60, burn_in=20, keep=60, groups=fields, seed=0)
    y = split.test.y
    rmse = np.sqrt(np.mean((m.test_pred - y) ** 2))
    assert rmse < 0.115, rmse
    assert np.std(y) > 5 * rmse
    np.testing.assert_allclose(m.predict(split.test.idx, split.test.val), m.test_pred, rtol=1e-9, atol=1e-12)
    assert m.n_kept == 60 and m.V.shape == (60, split.train.n_features, 4)
    assert m.trace[-1]["test_rmse"] == pytest.approx(rmse)
    assert 1 / np.sqrt(m.trace[-1]["alpha"]) == pytest.approx(0.1, rel=0.15)      # the noise std, learned


def test_probit_ranks_and_gives_probabilities():
    split = teacher_split("log", seed=2)
    m = bayes.fit(split.train, split.test, k=4, n_samples=40, burn_in=20, keep=10, task="probit", seed=0)
    p = m.test_pred
    assert np.all((p > 0) & (p < 1))
    assert auc(split.test.y, p) > 0.75
    q = m.predict(split.test.idx, split.test.val)
    assert np.all((q > 0) & (q < 1)) and auc(split.test.y, q) > 0.75
    assert m.n_kept == 10


def test_probit_labels_minus_one_one_equal_zero_one():
    idx, val, y, n, _ = make_rows("onehot", seed=9)
    a = bayes.fit((idx, val, (y > 0).astype(float)), n_features=n, k=2, n_samples=3, burn_in=1, task="probit")
    b = bayes.fit((idx, val, np.where(y > 0, 1.0, -1.0)), n_features=n, k=2, n_samples=3, burn_in=1,
                  task="probit")
    np.testing.assert_array_equal(a.V, b.V)


def test_keep_spacing_and_no_samples():
    idx, val, y, n, _ = make_rows("onehot", seed=10)
    m = bayes.fit((idx, val, y), n_features=n, k=2, n_samples=10, burn_in=0, keep=3)
    assert m.n_kept == 3
    np.testing.assert_array_equal(m.V[-1], m.sampler.V)                   # the last sample is kept
    m0 = bayes.fit((idx, val, y), n_features=n, k=2, n_samples=2, burn_in=0, keep=0)
    with pytest.raises(E.OptionError, match="kept no samples"):
        m0.predict(idx, val)


# ------------------------------------------------------------------ 6. backends
@pytest.mark.parametrize("task", ["regression", "probit"])
def test_same_chain_on_every_backend(backend, task):
    """The random numbers are drawn on the host: a backend gives the NumPy run's numbers."""
    idx, val, y, n, fields = make_rows("multi", N=30, seed=11)
    if task == "probit":
        y = (y > 0).astype(float)
    kw = dict(n_features=n, k=2, n_samples=3, burn_in=2, keep=2, task=task, groups=fields, seed=3)
    ref = bayes.fit((idx, val, y), (idx[:7], val[:7]), **kw)
    got = bayes.fit(tuple(backend.asarray(a) for a in (idx, val, y)),
                    (backend.asarray(idx[:7]), backend.asarray(val[:7])), **kw)
    from nfm_numpy.backend import to_numpy
    np.testing.assert_allclose(to_numpy(got.V), ref.V, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(to_numpy(got.test_pred), ref.test_pred, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(to_numpy(got.predict(backend.asarray(idx), backend.asarray(val))),
                               ref.predict(idx, val), rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ 7. bad arguments
IDX, VAL, Y, NF, FIELDS = make_rows("onehot", N=20, seed=12)
BAD = [
    (dict(n_samples=0), E.OptionError, "n_samples must be >= 1"),
    (dict(n_samples=2.5), E.OptionTypeError, "n_samples must be an integer"),
    (dict(burn_in=-1), E.OptionError, "burn_in must be >= 0"),
    (dict(k=0), E.OptionError, "k must be >= 1"),
    (dict(k=True), E.OptionTypeError, "k must be an integer"),
    (dict(keep=-2), E.OptionError, "keep must be >= 0"),
    (dict(task="logistic"), E.OptionError, "task must be one of regression, probit"),
    (dict(blocks="fast"), E.OptionError, "blocks must be one of auto, coordinate"),
    (dict(blocks=np.zeros(3, dtype=int)), E.OptionError, r"blocks must have one entry per feature, shape \(12,\)"),
    (dict(groups=np.full(NF, 0.5)), E.OptionTypeError, "groups must hold integer ids"),
    (dict(groups=-np.ones(NF, dtype=int)), E.OptionError, "groups must hold ids >= 0"),
    (dict(init_std=-1.0), E.OptionError, "init_std must be >= 0"),
    (dict(seed=-1), E.OptionError, "seed must be >= 0"),
    (dict(prior=bayes.Prior(a0=0.0)), E.OptionError, "prior.a0 must be > 0"),
    (dict(prior=bayes.Prior(lambda_w0=float("nan"))), E.OptionError, "prior.lambda_w0 must be a finite"),
    (dict(prior={"a0": 1}), E.OptionTypeError, "prior must be a nfm_numpy.bayes.Prior"),
    (dict(task="probit"), E.DataError, "probit needs labels 0/1 or -1/1"),
    (dict(train=(IDX, VAL, Y), n_features=None), E.OptionError, "n_features is needed"),
    (dict(train=(IDX, np.where(np.arange(VAL.size).reshape(VAL.shape) == 5, np.nan, VAL), Y)), E.DataError,
     "NaN or inf"),
    (dict(train=(IDX, VAL, np.where(np.arange(20) == 3, np.inf, Y))), E.DataError, "labels y hold NaN or inf"),
    (dict(train=(np.concatenate([IDX[:, :1], IDX], 1), np.ones((20, 4)), Y)), E.DataError,
     "row 0 holds feature id .* twice"),
    (dict(train=(IDX, VAL, Y), n_features=5), E.DataError, "out of range"),
    (dict(train=(IDX, VAL)), E.DataError, "labels y are needed"),
    (dict(train=[IDX, VAL, Y]), E.OptionTypeError, "train must be a Dataset"),
    (dict(test=(IDX + 100, VAL)), E.DataError, "test: feature id .* out of range"),
    (dict(on_sweep=3), E.OptionTypeError, "on_sweep must be callable"),
]


@pytest.mark.parametrize("kw, cls, msg", BAD, ids=[m for _, _, m in BAD])
def test_bad_arguments_name_the_argument(kw, cls, msg):
    args = dict(train=(IDX, VAL, Y), n_features=NF, k=2, n_samples=1, burn_in=0)
    args.update(kw)
    with pytest.raises(cls, match=msg):
        bayes.fit(**args)
