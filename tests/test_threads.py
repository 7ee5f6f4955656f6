"""BLAS threads are chosen, not inherited (nfm_numpy.threads): one inside training and evaluation,
what the caller asks with ``threads=``, the environment's setting where the user gave one, and the
previous limit back afterwards."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

import nfm_numpy as nf  # noqa: E402
from nfm_numpy import datasets as D, errors as E, train as T  # noqa: E402
from nfm_numpy.threads import blas_threads  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def blas_counts():
    return sorted({i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"})


@pytest.fixture(scope="module")
def small():
    return D.synthetic(n_train=512, n_valid=128, n_test=128, seed=0)


def threads_seen_by_fit(small, **kw):
    seen = []
    model = nf.NFM(small.train.n_features, k=4, layers=[4])
    T.fit(model, small, epochs=2, batch_size=64, log=None, on_epoch=lambda rec, best: seen.append(blas_counts()),
          **kw)
    return seen


def test_fit_trains_with_one_thread_and_gives_the_previous_limit_back(small, monkeypatch):
    for name in nf.threads.USER_VARIABLES:          # the default: no setting of the user's (which would win)
        monkeypatch.delenv(name, raising=False)
    if not blas_counts():
        pytest.skip("NumPy here uses no BLAS library that threadpoolctl can see")
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = blas_counts()
        assert threads_seen_by_fit(small) == [[1], [1]]
        assert blas_counts() == before


def test_an_explicit_number_of_threads_is_used_inside_and_nested_defaults_keep_it(small):
    if not blas_counts():
        pytest.skip("NumPy here uses no BLAS library that threadpoolctl can see")
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        assert threads_seen_by_fit(small, threads=2) == [[2], [2]]
        with blas_threads(2), blas_threads():          # a default inside an explicit choice keeps it
            assert blas_counts() == [2]


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_threads_must_be_a_positive_integer(small, bad):
    with pytest.raises((E.OptionError, E.OptionTypeError), match="threads"):
        threads_seen_by_fit(small, threads=bad)


def test_the_users_environment_variable_wins():
    script = ("import threadpoolctl, nfm_numpy.threads as t\n"
              "with t.blas_threads():\n"
              "    print(sorted({i['num_threads'] for i in threadpoolctl.threadpool_info() "
              "if i['user_api'] == 'blas'}))\n")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in ("[2]", "[]")            # untouched (or no BLAS threadpoolctl can see)
    env["OPENBLAS_NUM_THREADS"] = ""
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.stdout.strip() in ("[1]", "[]")


def test_the_command_line_takes_threads(capsys):
    from nfm_numpy import cli
    assert cli.main(["train", "--threads", "0"]) == 2
    assert "--threads: must be >= 1, got 0" in capsys.readouterr().err


def test_one_thread_gives_the_same_numbers_as_two(small):
    """Thread counts change how a product is split, not the model: the same seed gives the same
    curve to float32 rounding."""
    runs = []
    for n in (1, 2):
        model = nf.NFM(small.train.n_features, k=4, layers=[4])
        runs.append(T.fit(model, small, epochs=2, batch_size=64, log=None, threads=n).column("valid"))
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-4)
