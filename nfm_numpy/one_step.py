"""One NFM training step, top to bottom, on a tiny batch, made to be stepped through.

    python -m pdb -m nfm_numpy.one_step       # n: next line, p E.shape: look, c: run to the end

(or open this file in an IDE and put a breakpoint on the first line of ``step``).
It uses the textbook layers (the (B, F, k) gather form of notebooks 1 to 3), one
line a layer, with the shape of each result beside it; nothing is hidden in a
loop. ``tests/test_model.py`` checks that it gives the same loss and gradients as
``nfm_numpy.NFM``.
"""
import numpy as np

from . import layers as L, losses
from .backend import Random
from .optim import Adagrad


def tiny_problem():
    """A batch of B = 4 rows with F = 3 entries (ids repeat across rows, row 4 ends in padding),
    and NFM parameters for n = 7 features, k = 4, one hidden layer of d = 5 units."""
    rng = np.random.default_rng(0)
    batch = dict(idx=np.array([[0, 3, 5], [1, 3, 6], [0, 4, 5], [2, 4, 0]]),          # (B, F) feature ids
                 val=np.array([[1.0, 1.0, 0.5], [1.0, 1.0, 1.0], [1.0, 1.0, 2.0],      # (B, F) values x_i;
                               [1.0, 1.0, 0.0]]),                                      #        0 marks padding
                 y=np.array([1.0, -1.0, 1.0, -1.0]))                                   # (B,)   labels
    n, k, d = 7, 4, 5
    params = dict(w0=np.array(0.1), w=rng.normal(0, 0.1, n), V=rng.normal(0, 0.3, (n, k)),
                  gamma0=rng.uniform(0.5, 1.5, k), beta0=rng.normal(0, 0.1, k),
                  W1=rng.normal(0, 0.5, (k, d)), b1=rng.normal(0, 0.1, d),
                  gamma1=rng.uniform(0.5, 1.5, d), beta1=rng.normal(0, 0.1, d), h=rng.normal(0, 0.5, d))
    return batch, params


def step(batch, p, keep=(0.8, 0.5), seed=1, lr=0.05):
    """Forward, loss, backward and one Adagrad update of every parameter; returns (loss, grads)."""
    idx, val, y = batch["idx"], batch["val"], batch["y"]
    k, d = p["V"].shape[1], p["h"].shape[0]
    masks = Random(seed)                                   # dropout draws: Bi-Interaction first, then layer 1
    # ---------------------------------------------------------------- forward
    lin, c_lin = L.linear_forward(idx, val, p["w0"], p["w"])                 # (B,)      w0 + sum_i w_i x_i
    E, c_emb = L.embedding_forward(idx, val, p["V"])                         # (B, F, k) e_i = x_i v_i
    f, c_bi = L.bi_interaction_forward(E)                                    # (B, k)    1/2[(sum e_i)^2 - sum e_i^2]
    z0, c_bn0, _ = L.batchnorm_forward(f, p["gamma0"], p["beta0"], np.zeros(k), np.ones(k))   # (B, k)
    z0, c_dr0 = L.dropout_forward(z0, keep[-1], masks)                       # (B, k)    z_0
    a1, c_aff = L.affine_forward(z0, p["W1"], p["b1"])                       # (B, d)    a_1 = z_0 W_1 + b_1
    a1, c_bn1, _ = L.batchnorm_forward(a1, p["gamma1"], p["beta1"], np.zeros(d), np.ones(d))  # (B, d)
    z1, c_act = L.activation_forward(a1, "relu")                             # (B, d)
    z1, c_dr1 = L.dropout_forward(z1, keep[0], masks)                        # (B, d)    z_1
    out, c_out = L.projection_forward(z1, p["h"])                            # (B,)      h . z_1
    yhat = lin + out                                                         # (B,)      the prediction
    loss, dyhat = losses.square_loss(yhat, y)                                # (), (B,)  1/2 sum (yhat - y)^2
    # ---------------------------------------------------------------- backward, layer by layer in reverse
    g = {}
    dz1, g["h"] = L.projection_backward(dyhat, c_out)                        # (B, d), (d,)
    dz1 = L.dropout_backward(dz1, c_dr1)                                     # (B, d)
    da1 = L.activation_backward(dz1, c_act)                                  # (B, d)
    da1, g["gamma1"], g["beta1"] = L.batchnorm_backward(da1, c_bn1)          # (B, d), (d,), (d,)
    dz0, g["W1"], g["b1"] = L.affine_backward(da1, c_aff)                    # (B, k), (k, d), (d,)
    dz0 = L.dropout_backward(dz0, c_dr0)                                     # (B, k)
    df, g["gamma0"], g["beta0"] = L.batchnorm_backward(dz0, c_bn0)           # (B, k), (k,), (k,)
    dE = L.bi_interaction_backward(df, c_bi)                                 # (B, F, k) df * (s - e_i)
    _, g["V"] = L.embedding_backward(dE, c_emb)                              # RowGrad: rows of V touched
    _, g["w0"], g["w"] = L.linear_backward(dyhat, c_lin)                     # (), RowGrad
    # ---------------------------------------------------------------- one Adagrad step (rows: only those touched)
    Adagrad(lr).step(p, g)                                                   # p is updated in place
    return loss, g


if __name__ == "__main__":
    batch, params = tiny_problem()
    loss, grads = step(batch, params)
    print(f"loss {float(loss):.6f}")
    for name, gr in grads.items():
        shape = f"rows {list(gr.rows)} of {gr.values.shape[1:] or 'scalars'}" if isinstance(gr, L.RowGrad) \
            else np.shape(gr)
        print(f"  d loss / d {name:<7} {shape}")
