"""Metrics against brute-force computations."""
import itertools

import numpy as np
import pytest

from nfm_numpy import metrics as M


def brute_auc(y, s):
    pos = [a for a, t in zip(s, y) if t > 0]
    neg = [a for a, t in zip(s, y) if t <= 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_counting_pairs_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.choice([-1.0, 1.0], 60)
    s = rng.integers(0, 6, 60).astype(float)          # many ties
    assert M.auc(y, s) == pytest.approx(brute_auc(y, s), abs=1e-12)


def test_auc_edge_cases():
    assert M.auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert M.auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert M.auc([0, 1], [0.5, 0.5]) == 0.5
    assert np.isnan(M.auc([1, 1], [0.1, 0.2]))


def test_rmse_with_clipping_mae_logloss_accuracy():
    y = np.array([-1.0, 1.0, 1.0])
    p = np.array([-3.0, 0.5, 2.0])
    assert M.rmse(y, p) == pytest.approx(np.sqrt((4 + 0.25 + 1) / 3))
    assert M.rmse(y, p, clip=(-1, 1)) == pytest.approx(np.sqrt(0.25 / 3))
    assert M.mae(y, p) == pytest.approx((2 + 0.5 + 1) / 3)
    y01, prob = np.array([0.0, 1.0]), np.array([0.2, 0.9])
    assert M.logloss(y01, prob) == pytest.approx(-(np.log(0.8) + np.log(0.9)) / 2)
    assert np.isfinite(M.logloss([1.0, 0.0], [0.0, 1.0]))      # clipped, not inf
    assert M.accuracy(y01, prob) == 1.0 and M.accuracy(y01, 1 - prob) == 0.0
