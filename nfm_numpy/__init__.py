"""nfm_numpy: Neural Factorization Machines (He & Chua, SIGIR 2017) in plain NumPy,
with every backward pass derived by hand and checked, on NumPy or CuPy arrays.

The names below load on first use (PEP 562), so ``python -m nfm_numpy`` can set its
signal handlers before NumPy and SciPy are imported, and a Ctrl-C while they load
gets the command line's one-line message rather than a traceback.
"""
import importlib

__version__ = "0.2.0"

_NAMES = {"NFM": "model", "FM": "model", "build": "model", "Batch": "data", "Dataset": "data", "Split": "data",
          "make_batch": "data", "from_csr": "data", "RowGrad": "layers"}
_MODULES = ("backend", "checkpoint", "data", "datasets", "errors", "exercises", "features", "gradcheck", "layers",
            "estimators", "libfm", "losses", "metrics", "model", "one_step", "optim", "outputs", "report", "train")

__all__ = ["NFM", "FM", "build", "Batch", "Dataset", "Split", "make_batch", "from_csr", "RowGrad",
           "backend", "layers", "losses", "gradcheck", "optim", "errors"]


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'nfm_numpy' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_NAMES) | set(_MODULES))
