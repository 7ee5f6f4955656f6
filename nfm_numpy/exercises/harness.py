"""The harness every checker shares: hard cases, the comparison, the PASS/FAIL message and its hints."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..gradcheck import rel_error

TOL = 1e-9          # relative error a correct float64 answer stays far below (rounding gives ~1e-15)


@dataclass
class Result:
    """The outcome of a check: ``status`` is 'pass', 'fail' or 'not implemented'."""

    name: str
    status: str
    message: str

    def __bool__(self):
        return self.status == "pass"

    def __str__(self):
        return self.message

    def __repr__(self):
        # plain Python: a short summary (the checker has already printed the message)
        return f"Result(name={self.name!r}, status={self.status!r})"

    def _ipython_display_(self):
        """Jupyter shows a cell's last value after its printed output; the checker has printed the message
        already, so a Result displays nothing more (no trailing ``;`` needed)."""


def _cases(seed=0, n=40, rows=(3, 8, 1), entries=(4, 6, 1)):
    """Batches with every hard case: (description, idx, val) of float64 NumPy arrays."""
    rng = np.random.default_rng(seed)
    out = []
    for B in rows:
        for F in entries:
            idx = rng.integers(0, max(2, n // 4), (B, F))           # few ids: repeats across rows
            if F > 1:
                idx[:, 1] = idx[:, 0]                               # and within every row
            val = rng.uniform(-1.5, 1.5, (B, F))                    # real values, negative ones too
            if F > 2:
                val[:, -1] = 0.0                                    # a padding entry (x = 0) in every row
                idx[:, -1] = 0
            hard = (["ids repeated within rows"] if F > 1 else []) + (["across rows"] if B > 1 else []) + \
                (["padding"] if F > 2 else []) + ["real x"]
            out.append((f"B={B}, F={F}: {', '.join(hard)}", idx, val))
    return out


def _run(name, fn, cases, reference, compare, hints, covers="repeated ids, padding, real values, random parameters"):
    """Call ``fn`` on every case; the first mismatch becomes the message, with a hint."""
    for i, (desc, args) in enumerate(cases, start=1):
        try:
            got = fn(*[a.copy() if isinstance(a, np.ndarray) else a for a in args])
        except NotImplementedError as e:
            return _not_implemented(name, e)
        except Exception as e:   # a learner's bug: report it, do not stop the notebook
            return _raised(name, i, desc, e)
        want = reference(*args)
        problem = compare(got, want)
        if problem:
            hint = next((h for test, h in hints if _safe(test, got, want, args)), "")
            return _say(Result(name, "fail", f"{name}: FAIL on case {i} ({desc}): {problem}"
                                             + (f"\n  hint: {hint}" if hint else "")))
    return _say(Result(name, "pass", f"{name}: PASS ({len(cases)} cases: {covers})"))


def _not_implemented(name, error):
    """The stub still raises: say so (and print it), so a notebook with its stubs runs to the end."""
    return _say(Result(name, "not implemented", f"{name}: not implemented yet ({error or 'the stub raises'}); "
                                                "write it above and run this cell again"))


def _raised(name, i, desc, error, more=""):
    """The learner's function raised on case ``i``: the error, and ``more`` (its line, a hint), printed."""
    return _say(Result(name, "fail", f"{name}: FAIL on case {i} ({desc}): your function raised "
                                     f"{type(error).__name__}: {error}{more}"))


def _safe(test, *args):
    try:
        return bool(test(*args))
    except Exception:
        return False


def _say(result):
    print(result.message)
    return result


def _outputs(got, want):
    """``got`` as a tuple of outputs: where several are expected, a list of them is as good as a tuple;
    where one is expected, a list is that one output (an array written as a list)."""
    if isinstance(want, tuple):
        return tuple(got) if isinstance(got, (tuple, list)) else (got,)
    return got if isinstance(got, tuple) else (got,)


def _compare(names):
    """A comparer of tuples (or single arrays) of outputs, element by element."""
    def compare(got, want):
        got, want = _outputs(got, want), want if isinstance(want, tuple) else (want,)
        if len(got) != len(want):
            return f"expected {len(want)} outputs ({', '.join(names)}), got {len(got)}"
        for n, g, w in zip(names, got, want):
            g = np.asarray(g, dtype=np.float64)
            if g.shape != w.shape:
                return f"{n} has shape {g.shape}, expected {w.shape}"
            err = rel_error(g, w)
            if not err < TOL:
                at = np.unravel_index(np.argmax(np.abs(g - w)), w.shape) if w.ndim else ()
                return (f"{n}: relative error {err:.1e} (should be below {TOL:g}); at {tuple(map(int, at))} "
                        f"expected {w[at]:.6g}, got {g[at]:.6g}")
        return ""
    return compare


def _close(a, b):
    return np.shape(a) == np.shape(b) and rel_error(np.asarray(a, dtype=np.float64), b) < 1e-6
