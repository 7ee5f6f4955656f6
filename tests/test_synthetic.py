"""The built-in synthetic dataset's teacher: its three parts are what the docstring says they are.

Every property is checked against quantities rebuilt here from the teacher's weights by plain loops
(pair weights <v_i, v_j> over the pairs of fields, not the square-of-sum identity the package uses)."""
from itertools import combinations

import numpy as np
import pytest

from nfm_numpy import datasets

SMALL = dict(n_train=3000, n_valid=500, n_test=500, fields=(20, 30, 5, 4, 3), k_teacher=4, seed=2,
             dtype=np.float64)


def rows(split):
    """idx (n, F) and y (n,) of all rows, in the order train, valid, test (the order of ``parts``)."""
    return (np.concatenate([d.idx for d in split]),
            np.concatenate([d.y for d in split]).astype(np.float64))


def rebuilt(split, teacher):
    """lin (n,) and the teacher's Bi-Interaction vector (n, k) from w and V, pair by pair."""
    idx, _ = rows(split)
    V = teacher["V"]
    lin = teacher["w"][idx].sum(axis=1)                                      # (n,)
    bi = sum(V[idx[:, f]] * V[idx[:, g]] for f, g in combinations(range(idx.shape[1]), 2))   # (n, k)
    return lin, bi


def share_explained(target, design):
    """Fraction of target's sum of squares that a least-squares fit on ``design`` explains."""
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    return np.sum((design @ coef) ** 2) / np.sum(target ** 2)


@pytest.mark.parametrize("higher_order", [0.5, 1.0])
def test_parts_are_the_teachers_terms_with_the_stated_variances_and_uncorrelated(higher_order):
    split, teacher = datasets.synthetic(noise=0.0, higher_order=higher_order, return_teacher=True, **SMALL)
    parts = teacher["parts"]
    lin, bi = rebuilt(split, teacher)
    pair = bi.sum(axis=1)
    # the linear part is the centred sum of w_i, scaled; the pairwise part is pair_scale times the centred
    # sum of <v_i, v_j> over the row's pairs (so pair_scale <v_i, v_j> is the pair weight in the label)
    np.testing.assert_allclose(parts["linear"], np.sqrt(0.2) * (lin - lin.mean()) / lin.std(), atol=1e-10)
    np.testing.assert_allclose(parts["pairwise"], teacher["pair_scale"] * (pair - pair.mean()), atol=1e-10)
    stated = {"linear": 0.2, "pairwise": 0.3, "higher_order": 0.5 * higher_order}
    for name, var in stated.items():
        assert parts[name].mean() == pytest.approx(0.0, abs=1e-12)
        assert parts[name].var() == pytest.approx(var, rel=1e-9)
    for a, b in combinations(stated, 2):                                     # uncorrelated: variances add
        assert abs(np.mean(parts[a] * parts[b])) < 1e-12, (a, b)
    _, y = rows(split)
    np.testing.assert_allclose(y, parts["linear"] + parts["pairwise"] + parts["higher_order"], atol=1e-12)
    assert y.var() == pytest.approx(0.5 + 0.5 * higher_order, rel=1e-9)


def test_higher_order_part_is_orthogonal_to_the_linear_and_each_bi_interaction_coordinate():
    split, teacher = datasets.synthetic(noise=0.0, return_teacher=True, **SMALL)
    lin, bi = rebuilt(split, teacher)
    g = teacher["parts"]["higher_order"]
    design = np.column_stack([np.ones(len(g)), lin, bi])                     # (n, k + 2)
    assert share_explained(g, design) < 1e-20
    # not vacuous: the same design explains most of the pairwise part (all of it) and a fresh
    # tanh of the Bi-Interaction vector is mostly in its span, as the raw network's output was
    assert share_explained(teacher["parts"]["pairwise"], design) == pytest.approx(1.0, abs=1e-12)
    raw = np.tanh((bi - bi.mean(0)) / bi.std(0) @ np.full(bi.shape[1], 0.5))
    assert share_explained(raw - raw.mean(), design) > 0.5


def test_noise_adds_its_variance_and_higher_order_zero_is_a_pure_fm_teacher():
    clean = datasets.synthetic(noise=0.0, **SMALL)
    noisy = datasets.synthetic(noise=0.1, **SMALL)
    _, yc = rows(clean)
    _, yn = rows(noisy)
    assert np.var(yn - yc) == pytest.approx(0.01, rel=0.05)
    split, teacher = datasets.synthetic(noise=0.0, higher_order=0.0, return_teacher=True, **SMALL)
    assert np.all(teacher["parts"]["higher_order"] == 0)
    assert rows(split)[1].var() == pytest.approx(0.5, rel=1e-9)


def test_default_dataset_split_and_little_of_g_is_a_per_feature_effect():
    """The defaults (seed 0, 100,000 rows): variances 0.2 / 0.3 / 0.25, uncorrelated, label variance
    0.75 + 0.1^2; and a least-squares fit of per-feature weights explains only a few percent of g
    (the docstring's 4.6%), a little more than it explains of pure noise on the same rows (1.1%)."""
    split, teacher = datasets.synthetic(return_teacher=True)
    parts = teacher["parts"]
    for name, var in (("linear", 0.2), ("pairwise", 0.3), ("higher_order", 0.25)):
        assert parts[name].var() == pytest.approx(var, rel=1e-9)
    for a, b in combinations(parts, 2):
        assert abs(np.corrcoef(parts[a], parts[b])[0, 1]) < 1e-9
    idx, y = rows(split)
    assert y.var() == pytest.approx(0.76, abs=0.005)
    n = split.train.n_features
    gram = sum(np.bincount((idx[:, f:f + 1] * n + idx).ravel(), minlength=n * n).reshape(n, n)
               for f in range(idx.shape[1]))                                  # X^T X of the one-hot rows
    g = parts["higher_order"]
    rhs = np.bincount(idx.ravel(), weights=np.repeat(g, idx.shape[1]), minlength=n)   # X^T g
    coef = np.linalg.lstsq(gram, rhs, rcond=None)[0]
    share = np.var(coef[idx].sum(axis=1)) / np.var(g)
    assert 0.02 < share < 0.08, share
