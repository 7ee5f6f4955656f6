"""The gradcheck command, as a user runs it."""
import subprocess
import sys

import pytest


def run(*args):
    return subprocess.run([sys.executable, "-m", "nfm_numpy", "gradcheck", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args", [
    ["--model", "nfm", "--layers", "32,16", "--batch-norm", "1", "--seed", "0"],
    ["--model", "fm", "--loss", "log", "--keep-prob", "0.5"],
    ["--model", "nfm", "--layers", "", "--batch-norm", "0", "--impl", "gather"],
    ["--model", "nfm", "--keep-prob", "0.8,0.5", "--activation", "tanh", "--l2", "0.1"],
])
def test_gradcheck_command_passes(args):
    r = run(*args)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[-1].startswith("max relative error: ")
    assert float(lines[-1].split(": ")[1]) < 1e-6
    assert any(line.startswith("V ") for line in lines)


def test_gradcheck_command_fails_above_threshold():
    r = run("--threshold", "1e-14")
    assert r.returncode == 1 and "FAIL" in r.stdout


def test_gradcheck_command_rejects_bad_options():
    r = run("--activation", "swish")
    assert r.returncode == 2 and "--activation: invalid choice: 'swish'" in r.stderr
    r = run("--batch-norm", "yes")
    assert r.returncode == 2 and "expected 0 or 1" in r.stderr


def test_the_float32_report_checks_a_copy_of_the_given_weights():
    """With h = 0 every gradient behind the prediction layer is exactly 0 in the model handed in;
    a report on a fresh model of the same configuration would not see that."""
    import numpy as np

    import nfm_numpy as nf
    from nfm_numpy import gradcheck as G

    model = nf.NFM(20, k=3, layers=[4], keep_prob=[1.0, 1.0], activation="tanh", dtype="float64", seed=0)
    model.params["h"] = np.zeros_like(model.params["h"])
    report = G.float32_report(model, G.random_problem(n_features=20, n_rows=6, entries=4, seed=1), 0, 1e-2, 1e-2)
    zero = {r.name: r.zero for r in report.rows}
    assert zero["W1"] and zero["V"] and not zero["h"]
    assert not model.params["h"].any() and model.params["V"].dtype == np.float64      # the model is untouched
