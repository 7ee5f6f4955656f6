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
