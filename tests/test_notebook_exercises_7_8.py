"""Notebooks 7 and 8: the exercises that run without a GPU and without the Frappe files work as their
text words them, and the facts their folded solutions state hold."""
import json
from pathlib import Path

import numpy as np
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _markdown(name):
    return "\n".join("".join(c["source"]) for c in json.loads((NOTEBOOKS / name).read_text())["cells"]
                     if c["cell_type"] == "markdown")


def test_nb7_exercise_2_numpy_on_a_strict_device_array_refuses_and_on_the_cpu_device_converts():
    """As worded: np.unique on a device1 array raises RuntimeError (the solution quotes its message); on the
    strict default device it comes back silently as a NumPy array."""
    array_api_strict = pytest.importorskip("array_api_strict")
    from nfm_numpy import backend
    text = _markdown("07_gpu_cupy.ipynb")
    call = 'np.unique(backend.to_device(np.array([3, 1, 3]), array_api_strict, array_api_strict.Device("device1")))'
    assert call in text
    with pytest.raises(RuntimeError, match="Can't convert array on the .* device to a NumPy array"):
        eval(call, {"np": np, "backend": backend, "array_api_strict": array_api_strict})
    assert type(np.unique(backend.to_device(np.array([3, 1, 3]), array_api_strict))) is np.ndarray
    assert not hasattr(array_api_strict, "unique") and hasattr(array_api_strict, "unique_inverse")
    assert "`__array_function__`" in text and "cupy.unique" in text


def test_nb7_exercise_3_the_solutions_loop_runs(monkeypatch, capsys):
    """The solution's loop over block sizes runs on the cell's adagrad_steps (smoke mode: 4 steps)."""
    import re

    import matplotlib
    matplotlib.use("Agg")
    monkeypatch.setenv("CI", "1")
    monkeypatch.chdir(NOTEBOOKS)
    cells = ["".join(c["source"]) for c in json.loads((NOTEBOOKS / "07_gpu_cupy.ipynb").read_text())["cells"]]
    code = [s for s in cells if s.startswith("import os") or "def adagrad_steps" in s]
    loop = re.search(r"`(for b in \(1 << 14.*?)`", _markdown("07_gpu_cupy.ipynb")).group(1)
    ns = {}
    for s in code + [loop]:
        exec(s, ns)
    lines = [x for x in capsys.readouterr().out.splitlines() if " KB " in x]
    assert [int(x.split()[0]) for x in lines] == [16, 64, 128, 256, 1024, 4096]
