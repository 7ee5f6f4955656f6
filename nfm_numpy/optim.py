r"""Optimisers with sparse-row updates of the embedding tables.

``opt.step(params, grads)`` updates ``params`` (a dict of arrays). A dense
gradient updates its whole parameter; a ``RowGrad(rows, values)`` (the tables
``w`` and ``V``) reads and writes only the rows a batch touched, so a step
costs O(U k), not O(n k).

Where a sparse update differs from the dense one (documented per optimiser):

* SGD and Adagrad: **identical**. An untouched row has gradient 0, so the
  dense update leaves it (and Adagrad's accumulator) unchanged.
* Momentum and Adam: **lazy**. The dense update keeps moving an untouched row
  with its stale velocity (momentum) or decaying moments (Adam); the sparse
  one leaves the row, and its moments, alone until the next batch that uses
  it. This is how sparse Adam is done elsewhere (TF's LazyAdam, PyTorch's
  SparseAdam) and it is what makes a step O(U k).
* L2 on the embeddings is part of the loss (``model.loss``), over the rows a
  batch touches; a dense L2 would pull every row towards 0 every step.

Speed. A row update is a chain of elementwise operations on (U, k) arrays
(gather, square, add, square root, divide, scatter), and at MovieLens size
(U = 11,000 rows of 64 floats, 2.8 MB an array) each operation streams its
operands through main memory: the arithmetic is nothing, the traffic is
everything. So on the CPU the touched rows are updated in blocks of about
128 KB (``ROW_BLOCK_BYTES``; 512 rows at k = 64): the whole chain then runs
on data that stays in the core's cache, which took the update from 4.3 ms to
2.5 ms a step there (blocks of 256 and 1024 rows were slower). Rows are
unique, so the blocks touch disjoint rows and the result is exactly that of
one update of all of them (``tests/test_optim.py``). On a GPU one launch per
operation over all rows is what is fast, so there the rows go in one block.
The row updates also work in place on the gathered rows wherever the formula
allows (``x *= c``, ``x += y``).

The small dense parameters (w0, the MLP's weights, batch norm's scale and
shift, h) are updated together. On the first step they are packed into one
flat vector and ``params`` is pointed at views of it, so each update rule runs
as a handful of array operations per step instead of a handful per parameter
(at batch 128 a NumPy call costs about as much as its arithmetic). The rule is
the same one, applied elementwise to the concatenation.
"""
from __future__ import annotations

import math

from . import backend as B, errors as E
from .layers import RowGrad

OPTIMIZERS = ("sgd", "momentum", "adagrad", "adam")
ROW_BLOCK_BYTES = 1 << 17   # rows updated together on the CPU: a block of each (rows, k) operand fits in cache


class Optimizer:
    """Base class: subclasses write ``dense(key, p, g)`` (update ``p`` in place) and
    ``rows(key, table, rows, g)`` (update the given rows; return the table)."""

    def __init__(self, lr):
        self.lr = E.real(lr, "lr", 0.0, lo_open=True)
        self.state = {}
        self._pack = None     # (names, shapes, flat vector, views) of the packed dense parameters

    def step(self, params, grads):
        dense = [n for n, g in grads.items() if n in params and not isinstance(g, RowGrad)]
        xp = B.get_xp(*(params[n] for n in dense))
        if dense and (B.is_numpy(xp) or B.is_cupy(xp)):
            flat = self._packed(params, dense, xp)
            g = xp.concatenate([xp.asarray(grads[n]).ravel() for n in dense])  # (P,)
            self.dense("dense", flat, g)                                       # in place: views see it
        else:
            for n in dense:
                params[n] = self.dense(n, params[n], grads[n])
        for n, g in grads.items():
            if n in params and isinstance(g, RowGrad):
                table = params[n]
                for block in B.row_blocks(g.values, ROW_BLOCK_BYTES):   # one block off the CPU
                    table = self.rows(n, table, g.rows[block], g.values[block, ...])
                params[n] = table

    def _packed(self, params, names, xp):
        """One flat vector holding the dense parameters; ``params`` gets views into it."""
        p = self._pack
        if p is not None and p[0] == names and all(params[n] is p[3][n] for n in names):
            return p[2]
        shapes = [tuple(params[n].shape) for n in names]
        if p is not None and (p[0], p[1]) != (names, shapes):
            self.state = {k: v for k, v in self.state.items() if k[0] != "dense"}   # new layout: new state
        flat = xp.concatenate([xp.reshape(params[n], (-1,)) for n in names])
        views, o = {}, 0
        for n, shape in zip(names, shapes):
            size = math.prod(shape)
            views[n] = params[n] = flat[o:o + size].reshape(shape)
            o += size
        self._pack = (names, shapes, flat, views)
        return flat

    def slot(self, key, like, fill=0.0):
        """Per-parameter state (accumulator, moments), created full-size on first use."""
        if key not in self.state:
            z = B.zeros(like.shape, like=like)
            z += fill                       # in place: a 0-d array must stay an array, not a scalar
            self.state[key] = z
        return self.state[key]

    def dense(self, key, p, g):
        raise NotImplementedError

    def rows(self, key, table, rows, g):
        raise NotImplementedError


def _take(table, rows):
    return B.get_xp(table).take(table, rows, axis=0)


class SGD(Optimizer):
    """theta <- theta - lr g."""

    def dense(self, key, p, g):
        p -= self.lr * g
        return p

    def rows(self, key, table, rows, g):
        return B.add_rows(table, rows, -self.lr * g)


class Momentum(Optimizer):
    """v <- mu v + g;  theta <- theta - lr v   (TF's MomentumOptimizer; mu = 0.95 as the original).
    Sparse rows: lazy (see the module docstring)."""

    def __init__(self, lr, momentum=0.95):
        super().__init__(lr)
        self.mu = E.real(momentum, "momentum", 0.0, 1.0, hi_open=True)

    def dense(self, key, p, g):
        v = self.slot((key, "v"), p)
        v *= self.mu
        v += g
        p -= self.lr * v
        return p

    def rows(self, key, table, rows, g):
        v = self.slot((key, "v"), table)
        vr = _take(v, rows)                                             # (U, ...) the rows' velocities
        vr *= self.mu
        vr += g
        self.state[(key, "v")] = B.put_rows(v, rows, vr)
        vr *= -self.lr
        return B.add_rows(table, rows, vr)


class Adagrad(Optimizer):
    r"""a <- a + g^2;  theta <- theta - lr g / sqrt(a), with a starting at 1e-8 and no
    epsilon, exactly TF1's AdagradOptimizer in the original. Sparse rows: identical to dense."""

    def __init__(self, lr, initial_accumulator=1e-8):
        super().__init__(lr)
        self.a0 = E.real(initial_accumulator, "initial_accumulator", 0.0, lo_open=True)

    def dense(self, key, p, g):
        xp = B.get_xp(p)
        a = self.slot((key, "a"), p, self.a0)
        a += g * g
        p -= self.lr * g / xp.sqrt(a)
        return p

    def rows(self, key, table, rows, g):
        xp = B.get_xp(table)
        a = self.slot((key, "a"), table, self.a0)
        ar = _take(a, rows)                                             # (U, ...) the rows' accumulators
        ar += g * g
        self.state[(key, "a")] = B.put_rows(a, rows, ar)
        step = g / xp.sqrt(ar)
        step *= -self.lr
        return B.add_rows(table, rows, step)


class Adam(Optimizer):
    r"""m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    theta <- theta - lr_t m / (sqrt(v) + eps),  lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)
    (TF's form of the bias correction). t counts steps. Sparse rows: lazy."""

    def __init__(self, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.b1 = E.real(beta1, "beta1", 0.0, 1.0, hi_open=True)
        self.b2 = E.real(beta2, "beta2", 0.0, 1.0, hi_open=True)
        self.eps = E.real(eps, "eps", 0.0, lo_open=True)
        self.t = 0

    def step(self, params, grads):
        self.t += 1
        self.lr_t = self.lr * (1 - self.b2 ** self.t) ** 0.5 / (1 - self.b1 ** self.t)
        super().step(params, grads)

    def dense(self, key, p, g):
        xp = B.get_xp(p)
        m, v = self.slot((key, "m"), p), self.slot((key, "v"), p)
        m *= self.b1
        m += (1 - self.b1) * g
        v *= self.b2
        v += (1 - self.b2) * g * g
        p -= self.lr_t * m / (xp.sqrt(v) + self.eps)
        return p

    def rows(self, key, table, rows, g):
        xp = B.get_xp(table)
        m, v = self.slot((key, "m"), table), self.slot((key, "v"), table)
        mr, vr = _take(m, rows), _take(v, rows)                         # (U, ...) the rows' moments
        mr *= self.b1
        mr += (1 - self.b1) * g
        vr *= self.b2
        vr += (1 - self.b2) * (g * g)
        self.state[(key, "m")] = B.put_rows(m, rows, mr)
        self.state[(key, "v")] = B.put_rows(v, rows, vr)
        step = xp.sqrt(vr)
        step += self.eps
        step = mr / step
        step *= -self.lr_t
        return B.add_rows(table, rows, step)


def make(name, lr):
    """'sgd' | 'momentum' | 'adagrad' | 'adam' -> an optimiser."""
    table = {"sgd": SGD, "momentum": Momentum, "adagrad": Adagrad, "adam": Adam}
    if name not in table:
        raise E.OptionError(f"unknown optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")
    return table[name](lr)
