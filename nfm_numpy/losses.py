r"""Losses: each returns ``(loss, dloss/dprediction)``.

* ``square_loss``: the paper's regression loss, **summed** over the batch,
  L = 1/2 sum_b (yhat_b - y_b)^2, exactly the original's ``tf.nn.l2_loss``.
  Summed, not averaged, because the published learning rates (Adagrad 0.05 at
  batch 128) were tuned for the sum: a mean would divide every step by B.
* ``log_loss``: logistic loss on logits z with labels y in {0, 1}, **averaged**
  over the batch as the original's ``log_loss``:
  L = mean_b [softplus(z_b) - y_b z_b], written with ``logaddexp`` so that it
  stays finite and exact for logits of +-1000 (the original clips p with an
  epsilon of 1e-7 instead; we compute the exact loss).
* ``l2_loss``: lambda/2 ||V_u||^2 over the embedding rows a batch touches.

Sample weights ``weight`` (B,) scale each row's term: the square loss becomes
1/2 sum_b w_b (yhat_b - y_b)^2 and the log loss 1/B sum_b w_b l_b, so a weight
of 2 counts a row twice (scikit-learn's meaning of ``sample_weight``).
"""
from __future__ import annotations

from . import backend as B
from .errors import OptionError

LOSSES = ("square", "log")


def check_loss(name):
    if name not in LOSSES:
        raise OptionError(f"unknown loss {name!r}: expected one of {', '.join(LOSSES)}")
    return name


def square_loss(yhat, y, weight=None):
    """L = 1/2 sum_b w_b (yhat_b - y_b)^2;  dL/dyhat = w (yhat - y).   yhat, y, weight : (B,)"""
    xp = B.get_xp(yhat, y)
    r = yhat - y                                   # (B,)
    if weight is None:
        return 0.5 * xp.sum(r * r), r
    wr = weight * r                                # (B,)
    return 0.5 * xp.sum(wr * r), wr


def log_loss(z, y, weight=None):
    r"""L = 1/B sum_b w_b [log(1 + e^{z_b}) - y_b z_b];  dL/dz = w (sigmoid(z) - y) / B.

    Derivation: -[y log p + (1 - y) log(1 - p)] with p = sigmoid(z) equals
    log(1 + e^z) - y z, whose derivative is sigmoid(z) - y.
    z, y : (B,), y in {0, 1}.
    """
    xp = B.get_xp(z, y)
    n = z.shape[0]
    terms = xp.logaddexp(0.0 * z, z) - y * z                      # (B,) softplus(z) - y z, stable
    p = 0.5 * (1.0 + xp.tanh(0.5 * z))                           # sigmoid, no overflow
    if weight is None:
        return xp.sum(terms) / n, (p - y) / n
    return xp.sum(weight * terms) / n, weight * (p - y) / n


def loss_forward(name, yhat, y, weight=None):
    return square_loss(yhat, y, weight) if check_loss(name) == "square" else log_loss(yhat, y, weight)


def l2_loss(Vu, lam):
    """lambda/2 sum ||v_u||^2 over the touched rows;  gradient lambda v_u."""
    xp = B.get_xp(Vu)
    return 0.5 * lam * xp.sum(Vu * Vu), lam * Vu
