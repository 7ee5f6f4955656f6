"""One NFM training step, top to bottom, on a tiny batch, made to be stepped through.

    python -m pdb -m nfm_numpy.one_step       # n: next line, s: step into, p E.shape: look, c: run to the end

(or open this file in an IDE and put a breakpoint on the first line of ``forward_backward``).
It uses the textbook layers (the (B, F, k) gather form of notebooks 1 to 3), one
line a layer, with the shape of each result beside it; nothing is hidden in a
loop. Three functions, read in this order:

* ``forward_backward(batch, params)``: the forward pass, the loss and the backward
  pass of NFM-1 through the package's layers, keeping every intermediate and the
  gradient of the loss with respect to it, in two dicts named as notebook 4's
  hand-written network (``v["z1"]``, ``g["z1"]``): the reference that notebook
  compares each of your lines with;
* ``_parts``: the few intermediates that live *inside* a layer (the seven steps of
  batch norm, s and q of the Bi-Interaction, the gathered rows), each with the one
  line of chain rule that gives its gradient from the layer's;
* ``step(batch, params)``: ``forward_backward`` and one Adagrad update.

``tests/test_model.py`` checks that ``step`` gives the loss and gradients of
``nfm_numpy.NFM``; ``tests/test_exercises_network.py`` checks every gradient of
``forward_backward`` against finite differences.
"""
import numpy as np

from . import layers, losses
from .backend import Random
from .optim import Adagrad

EPS = 1e-3          # batch norm's epsilon (layers.batchnorm_forward's default, TF1's in the original)


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


def forward_backward(batch, p, keep=(0.8, 0.5), seed=1):
    """Forward, loss and backward of NFM-1 (one hidden layer) through the package's layers.

    ``keep``: keep probabilities (hidden layer 1, Bi-Interaction), as ``NFM``'s ``keep_prob``;
    ``seed``: the dropout masks (drawn as ``NFM.loss(batch, rng=Random(seed))`` draws them).

    Returns ``(loss, v, g)``: ``v[name]`` every intermediate of the forward pass (and the
    inputs, the 0/1 dropout masks and their keep probabilities), ``g[name]`` the gradient
    of the loss with respect to it, for every intermediate and every parameter
    (``g["w"]`` and ``g["V"]`` are ``layers.RowGrad``: ``.to_dense(n)`` gives the table).
    """
    idx, val, y = batch["idx"], batch["val"], batch["y"]
    k, d = p["V"].shape[1], p["h"].shape[0]
    masks = Random(seed)                                   # dropout draws: Bi-Interaction first, then layer 1
    # ---------------------------------------------------------------- forward, one layer a line
    lin, c_lin = layers.linear_forward(idx, val, p["w0"], p["w"])             # (B,)      w0 + sum_i w_i x_i
    E, c_emb = layers.embedding_forward(idx, val, p["V"])                     # (B, F, k) e_i = x_i v_i
    f_bi, c_bi = layers.bi_interaction_forward(E)                             # (B, k)    1/2[(sum e_i)^2 - sum e_i^2]
    bn0, c_bn0, _ = layers.batchnorm_forward(f_bi, p["gamma0"], p["beta0"], np.zeros(k), np.ones(k), eps=EPS)
    z0, c_dr0 = layers.dropout_forward(bn0, keep[-1], masks)                  # (B, k)    z_0
    a1, c_aff = layers.affine_forward(z0, p["W1"], p["b1"])                   # (B, d)    a_1 = z_0 W_1 + b_1
    bn1, c_bn1, _ = layers.batchnorm_forward(a1, p["gamma1"], p["beta1"], np.zeros(d), np.ones(d), eps=EPS)
    r1, c_act = layers.activation_forward(bn1, "relu")                        # (B, d)
    z1, c_dr1 = layers.dropout_forward(r1, keep[0], masks)                    # (B, d)    z_1
    out, c_out = layers.projection_forward(z1, p["h"])                        # (B,)      h . z_1
    yhat = lin + out                                                          # (B,)      the prediction
    loss, dyhat = losses.square_loss(yhat, y)                                 # (), (B,)  1/2 sum (yhat - y)^2
    # ---------------------------------------------------------------- backward, layer by layer in reverse
    g = dict(err=dyhat, yhat=dyhat, out=dyhat, lin=dyhat)                     # (B,) each: yhat = lin + out
    g["z1"], g["h"] = layers.projection_backward(dyhat, c_out)                # (B, d), (d,)
    g["r1"] = layers.dropout_backward(g["z1"], c_dr1)                         # (B, d)
    g["bn1"] = layers.activation_backward(g["r1"], c_act)                     # (B, d)
    g["a1"], g["gamma1"], g["beta1"] = layers.batchnorm_backward(g["bn1"], c_bn1)   # (B, d), (d,), (d,)
    g["z0"], g["W1"], g["b1"] = layers.affine_backward(g["a1"], c_aff)        # (B, k), (k, d), (d,)
    g["bn0"] = layers.dropout_backward(g["z0"], c_dr0)                        # (B, k)
    g["f_bi"], g["gamma0"], g["beta0"] = layers.batchnorm_backward(g["bn0"], c_bn0)  # (B, k), (k,), (k,)
    g["E"] = layers.bi_interaction_backward(g["f_bi"], c_bi)                  # (B, F, k) df * (s - e_i)
    _, g["V"] = layers.embedding_backward(g["E"], c_emb)                      # RowGrad: rows of V touched
    _, g["w0"], g["w"] = layers.linear_backward(dyhat, c_lin)                 # (), RowGrad
    # ---------------------------------------------------------------- what each line computed, by name
    v = dict(idx=idx, val=val, y=y, eps=EPS, lin=lin, E=E, f_bi=f_bi, bn0=bn0, z0=z0, a1=a1, bn1=bn1, r1=r1,
             z1=z1, out=out, yhat=yhat, err=yhat - y, loss=loss,
             mask0=_zero_one(c_dr0, bn0), keep0=keep[-1], mask1=_zero_one(c_dr1, r1), keep1=keep[0])
    _parts(v, g, p, c_bi, c_bn0, c_bn1)
    return loss, v, g


def _zero_one(cache, x):
    """The 0/1 dropout mask from ``dropout_forward``'s cache (m / p, or None when nothing was dropped)."""
    return np.ones_like(x) if cache is None else (cache != 0).astype(x.dtype)


def _parts(v, g, p, c_bi, c_bn0, c_bn1):
    """The intermediates inside the layers, in the hand-written network's names, and their gradients.

    The layers fuse these steps; here each gets its value (from the layer's cache) and one
    line of chain rule from the gradient of the step after it. Forward, as notebook 4 writes it:

        w_idx = w[idx];  lin_terms = val * w_idx;  lin = w0 + lin_terms.sum(1)
        V_idx = V[idx];  E = val[:, :, None] * V_idx
        s = E.sum(1);  s2 = s * s;  E2 = E * E;  q = E2.sum(1);  f_bi = 0.5 * (s2 - q)
        batch norm l (x = f_bi or a1): mu = x.mean(0);  xc = x - mu;  var = (xc ** 2).mean(0)
            rstd = (var + eps) ** -0.5;  xhat = xc * rstd;  scaled = gamma * xhat;  bn = scaled + beta
    """
    idx, val, E, s = v["idx"], v["val"], v["E"], c_bi[1]
    v["w_idx"] = p["w"][idx]                                                  # (B, F)
    v["lin_terms"] = val * v["w_idx"]                                         # (B, F)
    g["lin_terms"] = g["lin"][:, None] * np.ones_like(val)                    # (B, F)    lin sums them per row
    g["w_idx"] = g["lin_terms"] * val                                         # (B, F)
    v["V_idx"] = p["V"][idx]                                                  # (B, F, k)
    g["V_idx"] = g["E"] * val[:, :, None]                                     # (B, F, k)
    v["s"], v["s2"], v["E2"] = s, s * s, E * E                                # (B, k), (B, k), (B, F, k)
    v["q"] = v["E2"].sum(1)                                                   # (B, k)
    g["s2"], g["q"] = 0.5 * g["f_bi"], -0.5 * g["f_bi"]                       # (B, k)    f_bi = 1/2 (s2 - q)
    g["s"] = 2 * s * g["s2"]                                                  # (B, k)
    g["E2"] = g["q"][:, None, :] * np.ones_like(E)                            # (B, F, k) q sums E2 over f
    for l, x, (xc, rstd, gamma, _) in ((0, v["f_bi"], c_bn0), (1, v["a1"], c_bn1)):
        n_rows = x.shape[0]
        v[f"mu{l}"], v[f"xc{l}"], v[f"var{l}"] = x.mean(0), xc, (xc * xc).mean(0)          # (D,), (B, D), (D,)
        v[f"rstd{l}"], v[f"xhat{l}"] = rstd, xc * rstd                                     # (D,), (B, D)
        v[f"scaled{l}"] = gamma * v[f"xhat{l}"]                                            # (B, D)
        g[f"scaled{l}"] = g[f"bn{l}"]                                         # bn = scaled + beta
        g[f"xhat{l}"] = g[f"scaled{l}"] * gamma                               # scaled = gamma xhat
        g[f"rstd{l}"] = (g[f"xhat{l}"] * xc).sum(0)                           # xhat = xc rstd
        g[f"var{l}"] = g[f"rstd{l}"] * -0.5 * rstd ** 3                       # rstd = (var + eps)^(-1/2)
        g[f"xc{l}"] = g[f"xhat{l}"] * rstd + g[f"var{l}"] * 2 * xc / n_rows   # xc feeds xhat and var
        g[f"mu{l}"] = -g[f"xc{l}"].sum(0)                                     # xc = x - mu


def step(batch, p, keep=(0.8, 0.5), seed=1, lr=0.05):
    """Forward, loss, backward and one Adagrad update of every parameter; returns (loss, grads)."""
    loss, _, g = forward_backward(batch, p, keep, seed)
    grads = {name: g[name] for name in p}                  # the parameters' gradients
    Adagrad(lr).step(p, grads)                             # p is updated in place (rows: only those touched)
    return loss, grads


if __name__ == "__main__":
    batch, params = tiny_problem()
    loss, grads = step(batch, params)
    print(f"loss {float(loss):.6f}")
    for name, gr in grads.items():
        shape = f"rows {list(gr.rows)} of {gr.values.shape[1:] or 'scalars'}" if isinstance(gr, layers.RowGrad) \
            else np.shape(gr)
        print(f"  d loss / d {name:<7} {shape}")
