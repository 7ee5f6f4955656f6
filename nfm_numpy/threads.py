"""How many BLAS threads the matrix products use: chosen here, not inherited.

NumPy's OpenBLAS starts one thread per core and lets them spin while they wait for work. The
products of NFM training are small (a batch of 128 rows times a 64 x 64 layer: about half a
million multiply-adds), far too small to share between threads, and on a machine where other
processes run the spinning threads fight them for the cores: measured on 2 vCPUs with other jobs
running, an NFM epoch on Frappe took 1.1-1.5 s with one BLAS thread and 8.4-8.7 s with the
default two (issue 18; ``benchmarks/README.md`` has the tables). So training and evaluation run
with one BLAS thread unless you say otherwise:

* an environment variable you set (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``,
  ``MKL_NUM_THREADS``, ``BLIS_NUM_THREADS``) wins: we change nothing;
* ``threads=N`` (``train.fit``, the estimators, the CLI's ``--threads``) asks for N.

threadpoolctl (a scikit-learn dependency) changes the limit for the duration of a ``with`` block
and puts the previous one back after it, so nothing leaks to the caller's own NumPy code.
"""
from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext

from . import errors as E

DEFAULT = 1          # BLAS threads for training and evaluation (see above)
USER_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def user_setting():
    """The environment variable that sets the BLAS threads, if the user set one (else None)."""
    return next((name for name in USER_VARIABLES if os.environ.get(name, "").strip()), None)


def check(threads):
    """``None`` (our choice) or a positive integer."""
    return None if threads is None else E.integer(threads, "threads", 1)


_ACTIVE = []           # the limits in force, innermost last: a nested default keeps the outer choice


def blas_threads(threads=None):
    """A context manager: the BLAS libraries use ``threads`` threads inside it (``None``: our default,
    or what the user's environment variable says, which then wins; inside another ``blas_threads``
    block, ``None`` keeps that block's choice, so ``fit(threads=2)`` also evaluates with two)."""
    threads = check(threads)
    if threads is None and (user_setting() is not None or _ACTIVE):
        return nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                   # pragma: no cover - threadpoolctl is in requirements.txt
        return nullcontext()
    return _limited(threadpool_limits, DEFAULT if threads is None else threads)


@contextmanager
def _limited(threadpool_limits, n):
    with threadpool_limits(limits=n, user_api="blas"):
        _ACTIVE.append(n)
        try:
            yield n
        finally:
            _ACTIVE.pop()
