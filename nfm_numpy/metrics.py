"""Evaluation metrics on host NumPy arrays (predictions are copied once per evaluation).

* ``rmse``: optionally after clipping predictions to the label range, as the
  original's evaluation does (on Frappe, to [-1, 1]).
* ``mae``, ``logloss`` (probabilities clipped to [eps, 1 - eps], float64 eps,
  as sklearn), ``accuracy`` (threshold 0.5 on probabilities).
* ``auc``: the rank-sum (Mann-Whitney) statistic with average ranks for ties,
  i.e. the probability that a random positive outranks a random negative,
  ties counting one half.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _f64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def rmse(y, pred, clip=None):
    """sqrt(mean((y - pred)^2)); ``clip=(lo, hi)`` bounds the predictions first."""
    y, pred = _f64(y, pred)
    if clip is not None:
        pred = np.clip(pred, clip[0], clip[1])
    return float(np.sqrt(np.mean((y - pred) ** 2)))


def mae(y, pred):
    y, pred = _f64(y, pred)
    return float(np.mean(np.abs(y - pred)))


def logloss(y, p):
    """-mean(y log p + (1 - y) log(1 - p)) for labels in {0, 1} and probabilities p."""
    y, p = _f64(y, p)
    eps = np.finfo(np.float64).eps
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def accuracy(y, p, threshold=0.5):
    y, p = _f64(y, p)
    return float(np.mean((p > threshold) == (y > 0.5)))


def auc(y, score):
    """ROC AUC; labels > 0 are positives. NaN when only one class is present."""
    y, score = _f64(y, score)
    pos = y > 0
    n_pos = int(pos.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)                    # average ranks for ties, 1-based
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate(loss, y, pred, label_range=None):
    """The metrics of a model with ``loss`` ('square': rmse (clipped to ``label_range``), mae, and auc
    when the labels hold at most two values; 'log': logloss, auc, accuracy). ``pred``: predictions,
    probabilities for 'log'.

    AUC ranks two classes, so for the square loss it is reported only where the labels are two
    values (Frappe's -1/1: the larger value is the positive class), NaN where they are one value,
    and left out for graded labels (1-5 ratings), where it means nothing.
    """
    if loss == "square":
        out = {"rmse": rmse(y, pred, label_range), "mae": mae(y, pred)}
        values = np.unique(np.asarray(y, dtype=np.float64))
        if values.size <= 2:
            out["auc"] = auc(np.asarray(y) == values[-1], pred) if values.size == 2 else float("nan")
        return out
    return {"logloss": logloss(y, pred), "auc": auc(y, pred), "accuracy": accuracy(y, pred)}
