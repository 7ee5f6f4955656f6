"""Checkers for notebooks 1 and 2: the pairwise term, the Bi-Interaction backward, the scatter-add."""
import numpy as np

from .. import layers as L
from .harness import _cases, _close, _compare, _run


# ================================================================ notebook 1
def check_fm_pairwise(fm_pairwise):
    """``fm_pairwise(idx, val, V) -> (B,)``: sum_{i<j} <v_i, v_j> x_i x_j per row, in O(k F)."""
    def reference(idx, val, V):
        E, _ = L.embedding_forward(idx, val, V)
        return L.fm_second_order_forward(L.bi_interaction_forward(E)[0])[0]

    rng = np.random.default_rng(1)
    cases = [(d, (idx, val, rng.standard_normal((40, 3)))) for d, idx, val in _cases(1)]

    def with_diagonal(idx, val, V):
        E = val[:, :, None] * V[idx]
        return 0.5 * (E.sum(1) ** 2).sum(1)

    def doubled(idx, val, V):
        return 2 * reference(idx, val, V)

    hints = [
        (lambda got, want, a: _close(got, with_diagonal(*a)), "you kept the diagonal i = j: subtract the "
                                                             "squares, sum_i x_i^2 v_i^2, before halving"),
        (lambda got, want, a: _close(got, doubled(*a)), "every pair counted twice: (sum e_i)^2 - sum e_i^2 holds "
                                                       "each pair i < j twice, so halve it"),
        (lambda got, want, a: _close(got, reference(a[0], np.ones_like(a[1]), a[2])),
         "the values x_i are missing: scale each embedding by its value (padding has x = 0)"),
    ]
    return _run("fm_pairwise", fm_pairwise, cases, reference, _compare(["pairwise"]), hints)


# ================================================================ notebook 2
def check_bi_interaction_backward(bi_interaction_backward):
    """``bi_interaction_backward(df, E) -> dE (B, F, k)``: the gradient of f_BI = 1/2[(sum_i e_i)^2 - sum_i e_i^2]."""
    rng = np.random.default_rng(3)
    cases = []
    for d, idx, val in _cases(3):
        E, _ = L.embedding_forward(idx, val, rng.standard_normal((40, 3)))
        cases.append((d, (rng.standard_normal((E.shape[0], E.shape[2])), E)))

    def reference(df, E):
        return L.bi_interaction_backward(df, L.bi_interaction_forward(E)[1])

    hints = [
        (lambda got, want, a: _close(got, a[0][:, None, :] * a[1].sum(1)[:, None, :]),
         "d f / d e_i = s - e_i: you kept s but forgot the - e_i (the diagonal removed in the forward pass)"),
        (lambda got, want, a: _close(got, 2 * want), "a factor 2 too many: f has a 1/2 in front"),
        (lambda got, want, a: _close(got, a[1].sum(1)[:, None, :] - a[1]),
         "that is d f / d e_i alone: multiply it by the upstream gradient df (the chain rule)"),
    ]
    return _run("bi_interaction_backward", bi_interaction_backward, cases, reference, _compare(["dE"]), hints)


def check_scatter_rows(scatter_rows):
    """``scatter_rows(idx, G, n) -> dV (n, k)``: dV[i] = sum of G[b, f] over every (b, f) with idx[b, f] = i."""
    rng = np.random.default_rng(4)
    cases = [(d, (idx, rng.standard_normal(idx.shape + (3,)), 40)) for d, idx, _ in _cases(4)]

    def reference(idx, G, n):
        X = np.zeros((idx.size, n))
        X[np.arange(idx.size), idx.ravel()] = 1.0                     # one-hot: an independent oracle
        return X.T @ G.reshape(idx.size, -1)

    def fancy(idx, G, n):
        dV = np.zeros((n, G.shape[2]))
        dV[idx.ravel()] += G.reshape(idx.size, -1)
        return dV

    hints = [(lambda got, want, a: _close(got, fancy(*a)),
              "repeated ids: dV[idx] += G keeps only one occurrence of each id (NumPy buffers the update); "
              "use np.add.at(dV, idx, G), which adds every occurrence")]
    return _run("scatter_rows", scatter_rows, cases, reference, _compare(["dV"]), hints)
