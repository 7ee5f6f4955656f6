"""Shared fixtures: backends and the shared Frappe data (skipped where absent)."""
from pathlib import Path

import numpy as np
import pytest

FRAPPE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "frappe"


def cupy_or_skip():
    """cupy with a working GPU, or skip with the reason."""
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (GPU-only optional extra)")
    try:
        cupy.cuda.runtime.getDeviceCount()
        cupy.zeros(1).sum()
    except Exception as e:  # no driver / no device
        pytest.skip(f"CuPy is installed but no CUDA GPU is usable: {e}")
    return cupy


class Backend:
    """A namespace plus the device its arrays live on."""

    def __init__(self, name, xp, device=None):
        self.name, self.xp, self.device = name, xp, device

    def asarray(self, a):
        from nfm_numpy.backend import to_device
        return to_device(np.asarray(a), self.xp, self.device)

    def __repr__(self):
        return self.name


def strict_device_backend():
    """array-api-strict on its non-CPU device: every implicit conversion to NumPy raises,
    as it does for CuPy arrays, so a silent host copy anywhere fails the test."""
    strict = pytest.importorskip("array_api_strict")
    return Backend("strict-device1", strict, strict.Device("device1"))


@pytest.fixture(params=["numpy", "strict", "cupy"])
def backend(request):
    if request.param == "numpy":
        return Backend("numpy", np)
    if request.param == "strict":
        return strict_device_backend()
    return Backend("cupy", cupy_or_skip())


@pytest.fixture
def frappe_dir():
    if not all((FRAPPE / f"frappe.{s}.libfm").exists() for s in ("train", "validation", "test")):
        pytest.skip(f"the Frappe split is not at {FRAPPE} (it may not be redistributed; "
                    "it is only present on the project's own machines)")
    return FRAPPE


@pytest.fixture(autouse=True)
def _strict_numpy_errors():
    with np.errstate(all="raise", under="ignore"):
        yield


def as_in_a_terminal():
    """``preexec_fn`` for a child that the tests signal: the stop signals at their defaults, as in a
    terminal. A test run started in the background (``cmd &`` in a script, some CI runners) inherits
    SIGINT and SIGQUIT ignored, and the program rightly keeps an ignored signal ignored."""
    import signal
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
