r"""Gradient checking: compare a hand-derived gradient with central differences.

.. math::
    \frac{\partial f}{\partial \theta_j} \approx
    \frac{f(\theta + h e_j) - f(\theta - h e_j)}{2h}

The truncation error is O(h^2) and the rounding error O(eps_mach |f| / h), so
the total is smallest near h ~ eps_mach^(1/3): about 1e-5 in float64 (the
default here, with errors near 1e-10), 5e-3 in float32 (errors near 1e-4 at
best). Run checks in float64.

The error of a gradient ``a`` against its estimate ``b`` is

    rel_error = max_j |a_j - b_j| / max(eps, max_j (|a_j| + |b_j|))

scaled by the largest magnitude in the tensor rather than entry by entry: an
entry whose true value is 0 up to rounding would otherwise give a ratio near 1
for a correct gradient. A tensor whose true gradient is exactly 0 (the bias of
an affine layer followed by batch norm: BN subtracts the batch mean, so a shift
of the bias changes nothing) has only rounding noise on both sides; such a
tensor, max(|a| + |b|) below ``zero_floor``, is judged by its absolute error
against ``zero_floor`` instead, and the report says so. ``check_model`` sets
the floor from the rounding noise of the differences, 100 eps |f| / h: a
gradient that small cannot be told from 0 at that step anyway.

Typical thresholds (cs231n): > 1e-2 wrong; 1e-4 suspicious; < 1e-7 good in
float64 for smooth functions; a ReLU kink crossed by the step gives ~1e-6 or
worse, so whole-model checks with ReLU keep pre-activations away from 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import backend as B, errors as E
from .data import Batch
from .layers import RowGrad


def rel_error(a, b, eps=1e-12):
    """max|a - b| / max(eps, max(|a| + |b|)) of two arrays (host or device)."""
    a = np.asarray(B.to_numpy(a), dtype=np.float64)
    b = np.asarray(B.to_numpy(b), dtype=np.float64)
    return float(np.max(np.abs(a - b), initial=0.0) / max(eps, float(np.max(np.abs(a) + np.abs(b), initial=0.0))))


def numerical_gradient(f, x, h=1e-5, entries=None, order=2):
    """Central-difference gradient of the scalar function ``f()`` with respect to ``x``.

    ``order=2``: (f(x+h) - f(x-h)) / 2h, truncation error O(h^2).
    ``order=4``: (-f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h)) / 12h, O(h^4): the
    same symmetric idea with two more points, so a larger h (less rounding)
    keeps the truncation error negligible.

    ``x`` is perturbed **in place** (and restored), entry by entry; ``f`` must
    read it. ``entries`` limits the check to a list of index tuples (the rest
    of the result is NaN). Returns a NumPy float64 array of ``x.shape``.
    """
    if order not in (2, 4):
        raise E.OptionError(f"order must be 2 or 4, got {order}")
    grad = np.full(tuple(x.shape), np.nan)
    for ix in (entries if entries is not None else np.ndindex(*x.shape)):
        old = float(x[ix])

        def at(t, ix=ix, old=old):
            x[ix] = old + t
            return float(f())

        if order == 2:
            grad[ix] = (at(h) - at(-h)) / (2 * h)
        else:
            grad[ix] = (-at(2 * h) + 8 * at(h) - 8 * at(-h) + at(-2 * h)) / (12 * h)
        x[ix] = old
    return grad


def directional_check(f, x, grad, seed=0, h=1e-5):
    """Compare the slope of ``f`` along one random unit direction d with grad . d.

    One pair of evaluations checks every entry of a big table at once (a
    wrong entry shows up unless d happens to miss it). Works on NumPy ``x``.
    Returns the relative error |a - n| / (|a| + |n|).
    """
    d = np.random.default_rng(seed).standard_normal(x.shape)
    d /= np.linalg.norm(d)
    old = x.copy()
    x[...] = old + h * d
    fp = float(f())
    x[...] = old - h * d
    fm = float(f())
    x[...] = old
    numeric = (fp - fm) / (2 * h)
    analytic = float(np.sum(np.asarray(B.to_numpy(grad), dtype=np.float64) * d))
    return abs(analytic - numeric) / max(1e-12, abs(analytic) + abs(numeric))


@dataclass
class Row:
    name: str
    shape: tuple
    error: float          # relative error, or absolute error when ``zero`` is true
    checked: str          # which entries were compared
    zero: bool = False    # judged as an exact-zero gradient (absolute floor)


@dataclass
class Report:
    """Per-parameter results; ``str(report)`` is the table, ending with the max relative error."""

    rows: list = field(default_factory=list)
    threshold: float = 1e-7
    zero_floor: float = 1e-8
    notes: list = field(default_factory=list)
    invalid: str = ""          # why this check cannot tell right from wrong (then it fails)

    def add(self, name, analytic, numeric, checked="all", eps=1e-12):
        a = np.asarray(B.to_numpy(analytic), dtype=np.float64)
        n = np.asarray(numeric, dtype=np.float64)
        if a.shape != n.shape:
            raise E.OptionError(f"gradient of {name} has shape {a.shape}, expected {n.shape}")
        mask = ~np.isnan(n)
        a, n = a[mask], n[mask]
        scale = float(np.max(np.abs(a) + np.abs(n), initial=0.0))
        if scale < self.zero_floor:
            self.rows.append(Row(name, tuple(mask.shape), float(np.max(np.abs(a - n), initial=0.0)), checked, True))
        else:
            self.rows.append(Row(name, tuple(mask.shape), rel_error(a, n, eps), checked))

    @property
    def max_error(self):
        return max((r.error for r in self.rows if not r.zero), default=0.0)

    @property
    def ok(self):
        return not self.invalid and all((r.error < self.zero_floor) if r.zero else (r.error < self.threshold)
                                        for r in self.rows)

    def __str__(self):
        lines = [f"{'parameter':<12}{'shape':<14}{'checked':<26}{'relative error':>16}"]
        for r in self.rows:
            err = f"{r.error:.2e}" + (" (abs)" if r.zero else "")
            flag = "" if ((r.error < self.zero_floor) if r.zero else (r.error < self.threshold)) else "  FAIL"
            lines.append(f"{r.name:<12}{str(r.shape):<14}{r.checked:<26}{err:>16}{flag}")
        if any(r.zero for r in self.rows):
            lines.append(f"(abs): both gradients are below {self.zero_floor:.1e} in size, as where the true gradient "
                         f"is exactly 0 (e.g. a bias before batch norm, whose shift BN removes); judged by absolute "
                         f"error < {self.zero_floor:.1e}, not by relative error")
        lines += self.notes
        if self.invalid:
            lines.append(f"the check is not valid: {self.invalid}")
        lines.append(f"threshold: {self.threshold:g}  ->  {'PASS' if self.ok else 'FAIL'}")
        lines.append(f"max relative error: {self.max_error:.3e}")
        return "\n".join(lines)


def check_layer(forward, backward, inputs, wrt, seed=0, h=1e-5, threshold=1e-7):
    """Check a layer ``forward(**inputs) -> (out, cache)`` / ``backward(dout, cache) -> grads``.

    The scalar checked is f = sum(out * dout) for a fixed random ``dout``
    (cs231n's projection), so every output entry is exercised. ``wrt`` names,
    in order, the inputs that ``backward`` returns gradients for (``None`` to
    skip a returned value). ``inputs`` must be float64 NumPy arrays (ints
    allowed for ids). Returns a ``Report``.
    """
    out, cache = forward(**inputs)
    dout = np.random.default_rng(seed).standard_normal(np.shape(out))
    grads = backward(dout, cache)
    grads = grads if isinstance(grads, tuple) and not isinstance(grads, RowGrad) else (grads,)
    report = Report(threshold=threshold)

    def f():
        return np.sum(forward(**inputs)[0] * dout)

    for name, g in zip(wrt, grads):
        if name is None:
            continue
        x = inputs[name]
        if isinstance(g, RowGrad):
            g = g.to_dense(x.shape[0])
        report.add(name, g, numerical_gradient(f, x, h))
    return report


def _entries_for(name, a, grad, max_entries):
    """Which entries of parameter ``a`` to difference: all if small, else the rows
    the batch touches plus one untouched row (whose gradient must be exactly 0)."""
    if a.size <= max_entries:
        return None, "all"
    if isinstance(grad, RowGrad):
        rows = [int(r) for r in B.to_numpy(grad.rows)]
        touched = set(rows)
        untouched = next(i for i in range(a.shape[0]) if i not in touched)
        rows = rows + [untouched]
        ent = [(r,) + tuple(j) for r in rows for j in np.ndindex(*a.shape[1:])] if a.ndim > 1 else [(r,) for r in rows]
        return ent, f"{len(rows) - 1} touched rows + 1 other"
    rng = np.random.default_rng(0)
    ent = [tuple(int(i) for i in np.unravel_index(j, a.shape)) for j in rng.choice(a.size, max_entries, replace=False)]
    return ent, f"{max_entries} random entries"


def check_model(model, batch, seed=0, h=None, threshold=1e-7, input_grad=True, max_entries=5000,
                directional=True, order=4):
    """Check every parameter of ``model`` (and dL/dx) on ``batch`` in training mode.

    The default is the fourth-order central difference with h = 1e-4. With
    the two-point formula no single step suits every model: batch norm over a
    handful of rows makes the loss strongly curved, so at h = 1e-5 the O(h^2)
    truncation term reaches ~3e-7, while a mean log loss is small, so at
    h = 1e-6 rounding (eps |f| / h) reaches ~1e-7. The O(h^4) formula keeps
    truncation negligible at a step where rounding is ~1e-12. With ReLU
    hidden layers the default step is 1e-5 instead: one entry of V moves many
    pre-activations at once (through batch norm), and the steps must not carry
    any of them across the kink at 0.
    Dropout masks are fixed by drawing them from a generator reseeded with
    ``seed`` at every evaluation. Big tables are checked on the rows the batch
    touches plus one untouched row, and along one random direction. The model
    must be float64 on NumPy (so that parameters can be perturbed in place).
    Returns a ``Report``.
    """
    if model.config["dtype"] != "float64":
        raise E.OptionError("gradient checks need a float64 model (float32 rounding swamps the differences)")
    if not B.is_numpy(model.xp):
        raise E.OptionError("check_model perturbs parameters on the host: move the model with model.to('numpy')")
    if h is None:
        h = 1e-5 if (model.config["activation"] == "relu" and model.config["layers"]) else 1e-4
    val = np.array(batch.val, dtype=np.float64)               # a copy we may perturb
    batch = Batch(batch.idx, val, np.asarray(batch.y, dtype=np.float64))

    def f():
        return model.loss(batch, rng=B.Random(seed, model.xp))[0]

    loss0, grads = model.loss(batch, rng=B.Random(seed, model.xp), input_grad=input_grad)
    # Rounding noise of a central difference is about eps |f| / h per evaluation (more
    # through batch norm's sums): a gradient below 100x that is zero as far as h can tell.
    zero_floor = max(1e-8, 100 * np.finfo(np.float64).eps * max(1.0, abs(float(loss0))) / h)
    report = Report(threshold=threshold, zero_floor=zero_floor)
    largest = max(float(np.max(np.abs(B.to_numpy(g.values if isinstance(g, RowGrad) else g)), initial=0.0))
                  for g in grads.values())
    if zero_floor > 1e-3 * largest:
        # the rounding noise of the differences is as large as the gradients themselves: every
        # tensor would pass as "zero", so nothing would have been checked
        report.invalid = (f"the step h = {h:g} is too small: the rounding noise of the differences "
                          f"(~{zero_floor:.1e}) is not far below the largest gradient ({largest:.1e}); use h >= 1e-6")
    for name, a in model.params.items():
        g = grads[name]
        entries, checked = _entries_for(name, a, g, max_entries)
        dense = g.to_dense(a.shape[0]) if isinstance(g, RowGrad) else g
        report.add(name, dense, numerical_gradient(f, a, h, entries, order), checked)
        if directional and entries is not None:
            err = directional_check(f, a, dense, seed, h)
            report.rows.append(Row(f"{name} (dir)", tuple(a.shape), err, "one random direction"))
    if input_grad:
        report.add("x (val)", grads["x"], numerical_gradient(f, val, h, None, order), "all")
    report.notes.append(f"central differences of order {order}, step h = {h:g}, float64")
    kinks = _closest_relu_kink(model, batch, seed)
    if kinks is not None:
        report.notes.append(f"closest ReLU pre-activation to the kink at 0: |a| = {kinks:.2e} "
                            f"(the steps, up to {2 * h:g}, must not cross it)")
    return report


def _closest_relu_kink(model, batch, seed):
    if model.config["activation"] != "relu" or not model.config["layers"]:
        return None
    _, caches = model.forward(batch.idx, batch.val, train=True, rng=B.Random(seed, model.xp))
    return min(float(np.min(np.abs(caches[f"act{l}"][1]))) for l in range(1, len(model.config["layers"]) + 1))


def random_problem(n_features=40, n_rows=8, entries=6, loss="square", seed=0):
    """A small batch with every hard case: ids repeated within a row and across
    rows, padding (variable-length rows), real values x_i in [0.5, 1.5].
    Returns a ``Batch`` of float64 NumPy arrays."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_features // 2, (n_rows, entries))      # few ids: many repeats across rows
    idx[:, 1] = idx[:, 0]                                           # a repeat within every row
    val = rng.uniform(0.5, 1.5, (n_rows, entries))
    lengths = rng.integers(2, entries + 1, n_rows)
    lengths[0] = entries
    pad = np.arange(entries)[None, :] >= lengths[:, None]
    idx[pad], val[pad] = 0, 0.0                                     # padding: id 0, value 0
    y = (rng.integers(0, 2, n_rows) * 2 - 1).astype(np.float64)
    if loss == "log":
        y = (y > 0).astype(np.float64)
    return Batch(idx, val, y)


def relu_safe_seed(make_model, batch, seeds=range(200), margin=2e-3):
    """The first seed whose model keeps every ReLU pre-activation at least ``margin``
    away from 0 on ``batch`` (so the difference steps never cross a kink)."""
    for s in seeds:
        m = make_model(s)
        k = _closest_relu_kink(m, batch, s)
        if k is None or k > margin:
            return s, m
    raise E.RunFailed("no seed keeps the ReLU pre-activations away from 0; use a smaller batch")


def float32_report(model64, batch, seed, h, threshold):
    """The check of a float32 copy of ``model64`` against its own float32 gradients (fourth-order
    differences with step ``h``): what the rounding of single precision does to a check."""
    from .model import build

    m = build(dict(model64.config, dtype="float32"))
    m.params = {n: np.asarray(B.to_numpy(a), dtype=np.float32) for n, a in model64.params.items()}   # copies
    m.state = {n: np.asarray(B.to_numpy(a), dtype=np.float32) for n, a in model64.state.items()}
    b = Batch(batch.idx, batch.val.astype(np.float32), batch.y.astype(np.float32))
    _, grads = m.loss(b, rng=B.Random(seed, np), input_grad=False)
    report = Report(threshold=threshold, zero_floor=1e-3)

    def f():
        return float(m.loss(b, rng=B.Random(seed, np))[0])

    for name, a in m.params.items():
        g = grads[name]
        dense = g.to_dense(a.shape[0]) if isinstance(g, RowGrad) else g
        report.add(name, dense, numerical_gradient(f, a, h, order=4))
    return report


def default_threshold(dtype, activation, layers):
    if dtype == "float32":
        return 1e-2
    return 1e-6 if (activation == "relu" and layers) else 1e-7


__all__ = ["rel_error", "numerical_gradient", "directional_check", "check_layer", "check_model",
           "random_problem", "relu_safe_seed", "float32_report", "Report"]
