"""Checkers for notebooks 1 and 2: the pairwise term, the Bi-Interaction backward, the scatter-add.

Each checker's hints are a module-level list of ``(test, hint)``: ``test(got, want, args)`` is true
when the learner's output is what one named mistake computes on that case, so that a hint names the
mistake actually made (tests/test_exercises_fm.py plants each mistake and checks that its hint,
and no other, fires). A slip that makes NumPy raise a broadcasting error gets its hint appended to
the error, where the shapes the error names tell the slip."""
import re

import numpy as np

from .. import layers as L
from .harness import _cases, _close, _compare, _run


# ================================================================ notebook 1
def _fm_pairwise_reference(idx, val, V):
    E, _ = L.embedding_forward(idx, val, V)
    return L.fm_second_order_forward(L.bi_interaction_forward(E)[0])[0]


def _pairwise(idx, val, V, q_val=None):
    """1/2 sum_c (s_c^2 - q_c) with s from x v and q from ``q_val`` v^2 (the right q_val is x^2)."""
    Vg = V[idx]                                                       # (B, F, k)
    s = (val[:, :, None] * Vg).sum(1)                                 # (B, k)
    q = ((val * val if q_val is None else q_val)[:, :, None] * Vg * Vg).sum(1)   # (B, k)
    return 0.5 * (s * s - q).sum(1)                                   # (B,)


def _merged_ids(idx, val, V):
    """q over the distinct ids of each row, with x summed per id: (sum x)^2 v^2, not sum x^2 v^2."""
    out = np.empty(idx.shape[0])
    for b in range(idx.shape[0]):
        ids, where = np.unique(idx[b], return_inverse=True)
        x = np.bincount(where, weights=val[b], minlength=ids.size)   # (U_b,)  sum of x per id
        s = x @ V[ids]                                                # (k,)
        q = (x * x) @ (V[ids] ** 2)                                   # (k,)
        out[b] = 0.5 * (s @ s - q.sum())
    return out


def _dense_overwritten(idx, val, V):
    """The dense FM on a one-hot X filled by fancy assignment, X[r, idx] = val: of an id's entries in a row only
    one write survives (a padding entry of id 0 can overwrite a real one), and the dense x has no self-pair."""
    X = np.zeros((idx.shape[0], V.shape[0]))
    X[np.arange(idx.shape[0])[:, None], idx] = val                    # repeated ids overwrite, as a learner's would
    return 0.5 * ((X @ V) ** 2 - (X * X) @ (V * V)).sum(1)


def _close_on_scale(got, mistake, want):
    """got agrees with a mistake's numbers to 1e-6 of the right answer's size (a mistake that leaves only rounding
    of 0, as one surviving entry a row does, is then told by the learner's own rounding)."""
    got = np.asarray(got, dtype=np.float64)
    return got.shape == mistake.shape and np.max(np.abs(got - mistake), initial=0.0) <= 1e-6 * np.max(np.abs(want))


def _pairwise_over_coordinates(idx, val, V):
    """s and q summed over axis 2, each entry's k coordinates, instead of over the row's entries."""
    E = val[:, :, None] * V[idx]                                      # (B, F, k)
    return 0.5 * (E.sum(2) ** 2 - (E * E).sum(2)).sum(1)             # (B,)


def _squared_after_summing(idx, val, V):
    """(sum_c s_c)^2 - sum_c q_c: the k coordinates summed before squaring."""
    E = val[:, :, None] * V[idx]
    return 0.5 * (E.sum(1).sum(1) ** 2 - (E * E).sum(1).sum(1))


FM_AXIS_HINT = ("s and q sum over a row's entries, axis 1: s = E.sum(1) and q = (E * E).sum(1) are (B, k), one "
                "k-vector a row; E.sum(2) sums each entry's k coordinates instead")


def _float32(got, want, a):
    """Whether got is a float32 array, or agrees with the answer only to float32's precision (about 1e-7
    relative: within _close's 1e-6 but above the checker's tolerance)."""
    return np.asarray(got).dtype == np.float32 or _close(got, want)


# last in a list: a known mistake made in float32 still gets its own hint (they match to 1e-6)
FLOAT32_HINT = (_float32, "right to float32 precision only, or a float32 array: compute in float64 (the checker's "
                          "arrays are float64, and float32 rounds every operation to about 1e-7, far above the "
                          "tolerance; drop any dtype=np.float32 or .astype(np.float32))")


FM_PAIRWISE_HINTS = [
    (lambda got, want, a: _close(got, 0.5 * ((a[1][:, :, None] * a[2][a[0]]).sum(1) ** 2).sum(1)),
     "you kept the diagonal i = j: subtract q, the sum of the squares x_i^2 v_i^2, before halving"),
    (lambda got, want, a: _close(got, 2 * want),
     "every pair counted twice: (sum e_i)^2 - sum e_i^2 holds each pair i < j twice, so halve it"),
    (lambda got, want, a: _close(got, _fm_pairwise_reference(a[0], np.ones_like(a[1]), a[2])),
     "the values x_i are missing: scale each embedding by its value (padding has x = 0, so it then drops out)"),
    (lambda got, want, a: _close(got, _pairwise(*a, q_val=np.ones_like(a[1]))),
     "s is right but q is not: q sums the squares of the *scaled* embeddings, e_i * e_i = x_i^2 v_i^2 "
     "(you squared V[idx] alone, so even padding, x = 0, adds its v^2)"),
    (lambda got, want, a: _close(got, _pairwise(*a, q_val=a[1])),
     "q has x_i where it needs x_i^2: square the scaled embedding e_i = x_i v_i, value included"),
    (lambda got, want, a: _close(got, _fm_pairwise_reference(a[0], np.where(a[0] == 0, 0.0, a[1]), a[2])),
     "an entry is padding when its value x is 0, not when its id is 0: id 0 is a real feature too "
     "(use val alone to drop padding)"),
    (lambda got, want, a: _close(got, _merged_ids(*a)),
     "an id repeated in a row is two entries, and the pair they form counts: q sums e_i * e_i entry by "
     "entry, not (sum of the id's x)^2 v^2 per distinct id"),
    (lambda got, want, a: _close_on_scale(got, _dense_overwritten(*a), want)
     and not _close(got, _fm_pairwise_reference(a[0], np.where(a[0] == 0, 0.0, a[1]), a[2])),   # else id 0's hint
     "repeated ids overwrite in fancy assignment X[r, idx] = val (one entry of an id survives, and a padding "
     "entry of id 0 can wipe out a real one); np.add.at would add them, but a dense x still merges an id's "
     "entries and loses the pair they form: work entry by entry, E = val[:, :, None] * V[idx]"),
    (lambda got, want, a: a[0].shape[1] > 1 and _close(got, _pairwise_over_coordinates(*a)),   # F = 1: the same
     FM_AXIS_HINT),                                                   # number as the next one's mistake
    (lambda got, want, a: _close(got, _squared_after_summing(*a)),
     "square each coordinate s_c, then sum over c: the pairwise term is 1/2 sum_c (s_c^2 - q_c), and "
     "(sum_c s_c)^2 is not sum_c s_c^2 (it adds the products s_c s_c' of different coordinates)"),
    FLOAT32_HINT,
]

FM_VAL_AXIS_HINT = ("V[idx] is (B, F, k) = {E}, val is (B, F) = {val}: give val a last axis, val[:, :, None], to "
                    "scale each embedding by its value")


def _broadcast_shapes(message):
    """The shapes a NumPy broadcasting error names, as tuples (none for another error)."""
    if "could not be broadcast" not in message:
        return set()
    return {tuple(int(d) for d in m.split(",") if d) for m in re.findall(r"\(([\d,]*)\)", message)}


def _fm_broadcast_hint(message, B, F, k):
    """The hint for a broadcasting error whose shapes tell the slip: val without its last axis, or s or q
    summed over axis 2 (then (B, F) meets (B, k)); "" for any other error."""
    shapes = _broadcast_shapes(message)
    if {(B, F, k), (B, F)} <= shapes:
        return FM_VAL_AXIS_HINT.format(E=(B, F, k), val=(B, F))
    if {(B, F), (B, k)} <= shapes:
        return f"{FM_AXIS_HINT} (here a (B, F) = {(B, F)} array met a (B, k) = {(B, k)} one)"
    return ""


def check_fm_pairwise(fm_pairwise):
    """``fm_pairwise(idx, val, V) -> (B,)``: sum_{i<j} <v_i, v_j> x_i x_j per row, in O(k F)."""
    rng = np.random.default_rng(1)
    cases = []
    for d, idx, val in _cases(1):
        if idx.shape[1] > 3:                                              # id 0 is a feature, not only padding:
            idx[:, 2], val[:, 2] = 0, np.where(val[:, 2] == 0, 1.0, val[:, 2])   # a real entry of id 0 per row
            d += ", a real entry of id 0"
        cases.append((d, (idx, val, rng.standard_normal((40, 3)))))

    def learners(idx, val, V):
        try:
            return fm_pairwise(idx, val, V)
        except ValueError as e:
            hint = _fm_broadcast_hint(str(e), *idx.shape, V.shape[1])
            if not hint:
                raise
            raise ValueError(f"{e}\n  hint: {hint}") from None

    return _run("fm_pairwise", learners, cases, _fm_pairwise_reference, _compare(["pairwise"]),
                FM_PAIRWISE_HINTS)


# ================================================================ notebook 2
def _bi_reference(df, E):
    return L.bi_interaction_backward(df, L.bi_interaction_forward(E)[1])


def _forgot_e(got, want, a):
    """Whether got is df * s, of E's shape or still (B, 1, k) (the broadcast the - E did is missing too)."""
    df, E = a
    got = np.asarray(got)
    return got.shape in (E.shape, (E.shape[0], 1, E.shape[2])) and \
        _close(np.broadcast_to(got, E.shape), np.broadcast_to(df[:, None, :] * E.sum(1)[:, None, :], E.shape))


BI_BACKWARD_HINTS = [
    (_forgot_e, "d f / d e_i = s - e_i: you kept s but forgot the - e_i (the diagonal removed in the forward "
                "pass); dE has E's shape (B, F, k), one row per entry"),
    (lambda got, want, a: _close(got, 2 * want), "a factor 2 too many: f has a 1/2 in front"),
    (lambda got, want, a: _close(got, a[1].sum(1)[:, None, :] - a[1]),
     "that is d f / d e_i alone: multiply it by the upstream gradient df (the chain rule)"),
    (lambda got, want, a: _close(got, -want), "the sign: f = 1/2 (s^2 - q) grows with s, so dE = df * (s - e_i), "
                                              "not df * (e_i - s)"),
    (lambda got, want, a: _close(got, a[0][:, None, :] * (a[1].sum(1)[:, None, :] - 2 * a[1])),
     "the diagonal term is - e_i, not - 2 e_i: d q / d e_i = 2 e_i, and q enters f with the factor 1/2 "
     "(as s^2 does)"),
    (lambda got, want, a: _close(got, a[0][:, None, :] * (a[1].sum(2)[:, :, None] - a[1])),
     "s sums over a row's entries, axis 1: s = E.sum(1) is (B, k), one k-vector a row (E.sum(2) sums each "
     "entry's k coordinates instead)"),
    FLOAT32_HINT,
]


def check_bi_interaction_backward(bi_interaction_backward):
    """``bi_interaction_backward(df, E) -> dE (B, F, k)``: the gradient of f_BI = 1/2[(sum_i e_i)^2 - sum_i e_i^2]."""
    rng = np.random.default_rng(3)
    cases = []
    for d, idx, val in _cases(3):
        E, _ = L.embedding_forward(idx, val, rng.standard_normal((40, 5)))   # k = 5: no shape is B's or F's
        cases.append((f"{d}, k=5", (rng.standard_normal((E.shape[0], E.shape[2])), E)))

    def learners(df, E):
        try:
            return bi_interaction_backward(df, E)
        except ValueError as e:
            if "broadcast" not in str(e):
                raise
            raise ValueError(f"{e}\n  hint: {BI_BROADCAST_HINT.format(df=df.shape, E=E.shape)}") from None

    return _run("bi_interaction_backward", learners, cases, _bi_reference, _compare(["dE"]),
                BI_BACKWARD_HINTS, covers="E from ids repeated within and across rows, padding and real x; "
                                          "random df")


BI_BROADCAST_HINT = ("df and the row sums s = E.sum(1) are (B, k) = {df}, E is (B, F, k) = {E}: give a (B, k) "
                     "array a middle axis, [:, None, :], to broadcast it over the F entries")


def _scatter_reference(idx, G, n):
    X = np.zeros((idx.size, n))
    X[np.arange(idx.size), idx.ravel()] = 1.0                         # one-hot: an independent oracle
    return X.T @ G.reshape(idx.size, -1)


def _fancy_scatter(idx, G, n):
    dV = np.zeros((n, G.shape[2]))
    dV[idx.ravel()] += G.reshape(idx.size, -1)                        # buffered: one write per id
    return dV


def _fancy_per_row(idx, G, n):
    dV = np.zeros((n, G.shape[2]))
    for b in range(idx.shape[0]):
        dV[idx[b]] += G[b]                                            # buffered within the row
    return dV


def _skip_id_zero(idx, G, n):
    return _scatter_reference(idx, G * (idx != 0)[:, :, None], n)    # entries of id 0 left out


SCATTER_HINTS = [
    (lambda got, want, a: _close(got, _fancy_scatter(*a)),
     "repeated ids: dV[idx] += G (or dV[idx] = G) keeps only one occurrence of each id (NumPy buffers the "
     "update); use np.add.at(dV, idx, G), which adds every occurrence"),
    (lambda got, want, a: _close(got, _fancy_per_row(*a)) and not _close(got, _fancy_scatter(*a)),  # one row: the same
     "ids repeated within a row: a loop over rows with dV[idx[b]] += G[b] adds across rows but keeps only "
     "one occurrence of an id inside a row; use np.add.at, which adds every occurrence"),
    (lambda got, want, a: _close(got, _skip_id_zero(*a)),
     "row 0 of dV is missing: id 0 is a real feature, not padding, so add every entry's row, id 0's too "
     "(padding is told by its value x = 0, not by its id: in a training step G = x dE, so a padding entry's row "
     "of G is 0 anyway; the checker's G is random everywhere, so add every entry)"),
]


def check_scatter_rows(scatter_rows):
    """``scatter_rows(idx, G, n) -> dV (n, k)``: dV[i] = sum of G[b, f] over every (b, f) with idx[b, f] = i."""
    rng = np.random.default_rng(4)
    cases = [(d.replace(", real x", "").replace("padding", "id 0 as padding"),           # no x here: idx and G
              (idx, rng.standard_normal(idx.shape + (3,)), 40)) for d, idx, _ in _cases(4)]
    return _run("scatter_rows", scatter_rows, cases, _scatter_reference, _compare(["dV"]), SCATTER_HINTS,
                covers="ids repeated within and across rows, id 0 as padding and as a feature; random G")
