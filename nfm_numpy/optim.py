r"""Optimisers with sparse-row updates of the embedding tables.

``opt.step(params, grads)`` updates ``params`` (a dict of arrays) in place
where the backend allows it. A dense gradient updates its whole parameter; a
``RowGrad(rows, values)`` (the tables ``w`` and ``V``) reads and writes only
the rows a batch touched, so a step costs O(U k), not O(n k).

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
"""
from __future__ import annotations

from . import backend as B
from .layers import RowGrad

OPTIMIZERS = ("sgd", "momentum", "adagrad", "adam")


class Optimizer:
    def __init__(self, lr):
        if not lr > 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        self.lr = float(lr)
        self.state = {}

    def step(self, params, grads):
        for name, g in grads.items():
            if name in params:
                params[name] = self._update(name, params[name], g)

    def _slot(self, name, slot, p, fill=0.0):
        """Per-parameter state (accumulator, moments), created full-size on first use."""
        if (name, slot) not in self.state:
            z = B.zeros(p.shape, like=p)
            z += fill                       # in place: a 0-d array must stay an array, not a scalar
            self.state[(name, slot)] = z
        return self.state[(name, slot)]

    def _update(self, name, p, g):
        raise NotImplementedError


def _rows(table, rows):
    return B.get_xp(table).take(table, rows, axis=0)


class SGD(Optimizer):
    """theta <- theta - lr g."""

    def _update(self, name, p, g):
        if isinstance(g, RowGrad):
            return B.add_rows(p, g.rows, -self.lr * g.values)
        p -= self.lr * g
        return p


class Momentum(Optimizer):
    """v <- mu v + g;  theta <- theta - lr v   (TF's MomentumOptimizer; mu = 0.95 as the original).
    Sparse rows: lazy (see the module docstring)."""

    def __init__(self, lr, momentum=0.95):
        super().__init__(lr)
        self.mu = momentum

    def _update(self, name, p, g):
        v = self._slot(name, "v", p)
        if isinstance(g, RowGrad):
            vr = self.mu * _rows(v, g.rows) + g.values                   # (U, ...)
            self.state[(name, "v")] = B.add_rows(v, g.rows, vr - _rows(v, g.rows))
            return B.add_rows(p, g.rows, -self.lr * vr)
        v *= self.mu
        v += g
        p -= self.lr * v
        return p


class Adagrad(Optimizer):
    r"""a <- a + g^2;  theta <- theta - lr g / sqrt(a), with a starting at 1e-8 and no
    epsilon, exactly TF1's AdagradOptimizer in the original. Sparse rows: identical to dense."""

    def __init__(self, lr, initial_accumulator=1e-8):
        super().__init__(lr)
        self.a0 = initial_accumulator

    def _update(self, name, p, g):
        xp = B.get_xp(p)
        a = self._slot(name, "a", p, self.a0)
        if isinstance(g, RowGrad):
            a = self.state[(name, "a")] = B.add_rows(a, g.rows, g.values * g.values)
            return B.add_rows(p, g.rows, -self.lr * g.values / xp.sqrt(_rows(a, g.rows)))
        a += g * g
        p -= self.lr * g / xp.sqrt(a)
        return p


class Adam(Optimizer):
    r"""m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    theta <- theta - lr_t m / (sqrt(v) + eps),  lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)
    (TF's form of the bias correction). t counts steps. Sparse rows: lazy."""

    def __init__(self, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.b1, self.b2, self.eps = beta1, beta2, eps
        self.t = 0

    def step(self, params, grads):
        self.t += 1
        super().step(params, grads)

    def _update(self, name, p, g):
        xp = B.get_xp(p)
        m, v = self._slot(name, "m", p), self._slot(name, "v", p)
        lr_t = self.lr * (1 - self.b2 ** self.t) ** 0.5 / (1 - self.b1 ** self.t)
        if isinstance(g, RowGrad):
            mr = self.b1 * _rows(m, g.rows) + (1 - self.b1) * g.values
            vr = self.b2 * _rows(v, g.rows) + (1 - self.b2) * g.values * g.values
            self.state[(name, "m")] = B.add_rows(m, g.rows, mr - _rows(m, g.rows))
            self.state[(name, "v")] = B.add_rows(v, g.rows, vr - _rows(v, g.rows))
            return B.add_rows(p, g.rows, -lr_t * mr / (xp.sqrt(vr) + self.eps))
        m *= self.b1
        m += (1 - self.b1) * g
        v *= self.b2
        v += (1 - self.b2) * g * g
        p -= lr_t * m / (xp.sqrt(v) + self.eps)
        return p


def make(name, lr):
    """'sgd' | 'momentum' | 'adagrad' | 'adam' -> an optimiser."""
    table = {"sgd": SGD, "momentum": Momentum, "adagrad": Adagrad, "adam": Adam}
    if name not in table:
        raise ValueError(f"unknown optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")
    return table[name](lr)
