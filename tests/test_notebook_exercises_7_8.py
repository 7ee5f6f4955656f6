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
    """The exercise's one-line loop and the solution's round-robin block run on the cell's adagrad_steps
    (smoke mode: 4 steps)."""
    import re
    import textwrap

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
    # the folded solution's round-robin block (every size once, five times over, then each size's minimum)
    block = next(b for b in re.findall(r"```python\n(.*?)```", _markdown("07_gpu_cupy.ipynb"), re.S)
                 if "for rep in range(5)" in b)
    exec(textwrap.dedent(block), ns)
    lines = [x for x in capsys.readouterr().out.splitlines() if " KB " in x]
    assert [int(x.split()[0]) for x in lines] == [16, 64, 128, 256, 1024, 4096]
    assert all(x.endswith("ms a step") for x in lines)


def test_nb7_adagrad_steps_shrink_with_their_number_not_with_the_gradients_scale():
    """The answer under the training cell: Adagrad's step after t steps of one gradient g is about lr / sqrt(t),
    whatever g's size."""
    from nfm_numpy import optim
    for scale in (1e-3, 1.0, 1e3):
        params, opt = {"w": np.zeros(3)}, optim.make("adagrad", 0.05)
        for _ in range(32):
            before = params["w"].copy()
            opt.step(params, {"w": np.full(3, scale)})
        assert np.allclose(before - params["w"], 0.05 / np.sqrt(32), rtol=1e-3)     # a starts at 1e-8
    assert "32 times fewer steps, each longer, but only about" in _markdown("07_gpu_cupy.ipynb")


RAW = NOTEBOOKS.parents[1] / "shared" / "data" / "frappe-raw"


@pytest.fixture(scope="module")
def nb8_rows():
    """Notebook 8's cells up to the encoder, in full mode, on the raw Frappe log (skipped without it)."""
    if not (RAW / "frappe.csv").exists():
        pytest.skip("the raw Frappe log is not here")
    import contextlib
    import io
    import os

    import matplotlib
    matplotlib.use("Agg")
    cells = [c for c in json.loads((NOTEBOOKS / "08_your_own_data.ipynb").read_text())["cells"]
             if c["cell_type"] == "code"]
    ns, cwd = {}, os.getcwd()
    env = os.environ.pop("CI", None)
    try:
        os.chdir(NOTEBOOKS)
        with contextlib.redirect_stdout(io.StringIO()):
            for c in cells[:5]:
                exec("".join(c["source"]), ns)
    finally:
        os.chdir(cwd)
        if env is not None:
            os.environ["CI"] = env
    assert ns["ON_FRAPPE"]
    return ns


def test_nb8_exercise_1_min_count_5_as_worded(nb8_rows):
    """The encoder the exercise names: the rare values and the OOV cells its solution quotes."""
    from nfm_numpy import features
    text = _markdown("08_your_own_data.ipynb")
    call = 'features.Encoder(categorical="*", label="label", ignore=["cnt"], min_count=5)'
    assert call in text
    enc5 = eval(call, {"features": features}).fit(nb8_rows["train_rows"])
    rare = {f.name: f.counts.get("rare", 0) for f in enc5.fields}
    assert (rare["user"], rare["item"], rare["weather"], rare["country"], rare["city"]) == (117, 0, 1, 3, 11)
    assert "117 of the 956 users" in text and "1 weather value, 3 countries and 11 cities" in text
    idx = enc5.transform(nb8_rows["train_rows"])[0]
    oov = np.isin(idx, [f.offset for f in enc5.fields if f.kind != "numeric"])
    assert (int(oov.sum()), idx.size, int(oov.any(1).sum())) == (340, 2_020_260, 325)
    assert "340 cells of the 2,020,260" in text and "(in 325 rows)" in text


def test_nb8_exercise_3_four_negatives_and_the_baselines(nb8_rows):
    from nfm_numpy import features
    text = _markdown("08_your_own_data.ipynb")
    assert 'features.add_negatives(log, "user", "item", n=4, seed=0)' in text
    assert features.add_negatives(nb8_rows["log"], "user", "item", n=4, seed=0).n_rows == 481_015
    for share, baseline in ((1 / 3, "0.943"), (1 / 5, "0.800")):
        m = 2 * share - 1
        assert f"{np.sqrt(1 - m * m):.3f}" == baseline and f"baseline {baseline}" in text
