"""Checkers for notebook 3: the affine layer and batch norm, backward."""
import numpy as np

from .. import layers as L
from .harness import _close, _compare, _run


# ================================================================ notebook 3
def check_batchnorm_backward(batchnorm_backward):
    """``batchnorm_backward(dy, x, gamma, eps) -> (dx, dgamma, dbeta)`` in training mode, where
    y = gamma (x - mu) / sqrt(var + eps) + beta with the batch's mean and (biased) variance."""
    rng = np.random.default_rng(5)
    cases = []
    for B, D in ((5, 3), (16, 8), (2, 1)):
        x = rng.standard_normal((B, D)) * rng.uniform(0.5, 3, D) + rng.uniform(-2, 2, D)
        cases.append((f"B={B}, D={D}", (rng.standard_normal((B, D)), x, rng.uniform(0.5, 2, D), 1e-3)))

    def reference(dy, x, gamma, eps):
        D = x.shape[1]
        _, cache, _ = L.batchnorm_forward(x, gamma, rng.standard_normal(D), np.zeros(D), np.ones(D), True, eps=eps)
        return L.batchnorm_backward(dy, cache)

    def eval_mode(dy, x, gamma, eps):
        return dy * gamma / np.sqrt(x.var(0) + eps)

    hints = [
        (lambda got, want, a: _close(got[0], eval_mode(*a)), "that is the evaluation-mode gradient: in training "
                                                            "mu and var depend on x, which adds two terms"),
        (lambda got, want, a: np.abs(np.asarray(got[0]).sum(0)).max() > 1e-8 * np.abs(want[0]).max(),
         "in training each column of dx sums to 0 (shifting a whole column changes nothing after BN): "
         "check the term through the mean, - sum_b g_b / B"),
        (lambda got, want, a: True, "check the term through the variance, - xhat sum_b(g_b xhat_b) / B, with "
                                    "g = gamma dy and the biased variance (divide by B)"),
    ]
    return _run("batchnorm_backward", batchnorm_backward, cases, reference, _compare(["dx", "dgamma", "dbeta"]),
                hints, "batches of 2 to 16 rows, shifted and scaled columns, random gamma")


def check_affine_backward(affine_backward):
    """``affine_backward(da, x, W) -> (dx, dW, db)`` for a = x W + b."""
    rng = np.random.default_rng(6)
    cases = [(f"B={B}, D={D}, M={M}", (rng.standard_normal((B, M)), rng.standard_normal((B, D)),
                                       rng.standard_normal((D, M))))
             for B, D, M in ((4, 3, 2), (7, 5, 6), (1, 2, 1))]

    def reference(da, x, W):
        return L.affine_backward(da, (x, W))

    hints = [(lambda got, want, a: np.shape(got[1]) == (a[2].shape[1], a[2].shape[0]),
              "dW must have W's shape (D, M): it is x^T da, not da^T x"),
             (lambda got, want, a: _close(got[2], a[0].mean(0)), "db is the sum over the batch, not the mean")]
    return _run("affine_backward", affine_backward, cases, reference, _compare(["dx", "dW", "db"]), hints,
                "batches of 1 to 7 rows, random W")
