"""Trust on the command line and in training (issue 16): empty paths, the dtype reaching the data,
metrics that mean something, inputs that overflow at the initial weights, and signals.

Command-line cases run ``cli.main`` in this process and assert the README's rule ("Errors and exit
codes"): the exit status, one line on stderr naming the problem, no traceback, watched files
unchanged. Signal cases run a real process and wait for a line it prints before signalling it
(never a fixed sleep: the machine may be busy).
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import as_in_a_terminal
from test_errors import assert_one_line_error, digest, run_cli, tmp, work, write  # noqa: F401 (fixtures)

import nfm_numpy as nf
from nfm_numpy import checkpoint, cli, datasets as D, errors as E, metrics as M, train as T

ROOT = Path(__file__).resolve().parents[1]

RATINGS = "user,item,rating\n" + "".join(f"u{i % 7},i{i % 5},{1 + i % 5}\n" for i in range(200))
CLICKS = "user,item,clicked\n" + "".join(f"u{i % 7},i{i % 5},{'yes' if (i % 7 + i % 5) % 2 else 'no'}\n"
                                           for i in range(200))


def csv_file(t):
    return write(t, "r.csv", RATINGS)


TRAIN_CSV = ["train", "--csv", "{csv}", "--label", "rating", "--categorical", "user,item", "--epochs", "1",
             "--hidden-factor", "4", "--layers", "4", "--batch-size", "16"]
TRAIN_SPLIT = ["train", "--data-dir", "{split}", "--epochs", "1", "--hidden-factor", "4", "--layers", "4",
               "--batch-size", "16"]
EMPTY = r"an empty path \(''\); is a shell variable unset\?"

# (case id, argv with {tmp}/{good}/{split}/{csv} placeholders, status, pattern)
CASES = [
    # --- class 1: an empty path is an error, never "no path" (so never the built-in data)
    ("train --csv ''", ["train", "--csv", "", "--label", "y"], 2, r"--csv: " + EMPTY),
    ("train --data-dir ''", ["train", "--data-dir", ""], 2, r"--data-dir: " + EMPTY),
    ("train --save ''", TRAIN_SPLIT + ["--save", ""], 2, r"--save: " + EMPTY),
    ("train --plot ''", TRAIN_SPLIT + ["--plot", ""], 2, r"--plot: " + EMPTY),
    ("train --history ''", TRAIN_SPLIT + ["--history", ""], 2, r"--history: " + EMPTY),
    ("train --valid-csv ''", TRAIN_CSV + ["--valid-csv", "", "--test-csv", "{csv}"], 2, r"--valid-csv: " + EMPTY),
    ("train --test-csv ''", TRAIN_CSV + ["--valid-csv", "{csv}", "--test-csv", ""], 2, r"--test-csv: " + EMPTY),
    ("predict --file ''", ["predict", "--load", "{good}", "--file", ""], 2, r"--file: " + EMPTY),
    ("predict --csv ''", ["predict", "--load", "{good}", "--csv", ""], 2, r"--csv: " + EMPTY),
    ("predict --load ''", ["predict", "--load", "", "--file", "{split}/toy.test.libfm"], 2, r"--load: " + EMPTY),
    ("evaluate --file ''", ["evaluate", "--load", "{good}", "--file", ""], 2, r"--file: " + EMPTY),
    ("evaluate --data-dir ''", ["evaluate", "--load", "{good}", "--data-dir", ""], 2, r"--data-dir: " + EMPTY),
    ("evaluate --load ''", ["evaluate", "--load", ""], 2, r"--load: " + EMPTY),
    ("a path of spaces", ["train", "--data-dir", "   "], 2, r"--data-dir: an empty path \('   '\)"),
    # --- empty column names and lists: a typo, never "no column"
    ("--label ''", ["train", "--csv", "{csv}", "--label", ""], 2, r"--label: an empty column name"),
    ("--user-col ''", TRAIN_CSV + ["--negatives", "1", "--user-col", "", "--item-col", "item"], 2,
     r"--user-col: an empty column name"),
    ("--item-col ' '", TRAIN_CSV + ["--negatives", "1", "--user-col", "user", "--item-col", " "], 2,
     r"--item-col: an empty column name"),
    ("--categorical ''", ["train", "--csv", "{csv}", "--label", "rating", "--categorical", ""], 2,
     r"--categorical: expected column names C1,C2, got ''"),
    ("--categorical a,,b", ["train", "--csv", "{csv}", "--label", "rating", "--categorical", "user,,item"], 2,
     r"--categorical: an empty column name in 'user,,item'"),
    ("--ignore ','", TRAIN_CSV + ["--ignore", ","], 2, r"--ignore: expected column names"),
    ("--numeric price:", TRAIN_CSV + ["--numeric", "price:"], 2,
     r"--numeric: expected COLUMN or COLUMN:BUCKETS such as price or price:8, got 'price:'"),
    ("--numeric :8", TRAIN_CSV + ["--numeric", ":8"], 2, r"--numeric: expected COLUMN or COLUMN:BUCKETS"),
    ("--numeric price:1", TRAIN_CSV + ["--numeric", "price:1"], 2, r"--numeric: buckets of 'price' must be >= 2"),
    ("--multi-valued :|", TRAIN_CSV + ["--multi-valued", ":|"], 2, r"--multi-valued: expected COLUMN:SEPARATOR"),
    ("--multi-valued ' ':|", TRAIN_CSV + ["--multi-valued", " :|"], 2, r"--multi-valued: expected COLUMN:SEPARATOR"),
    # --- class 17: --positive names the positive class of the log loss, and only that
    ("--positive with the square loss", TRAIN_CSV + ["--positive", "5"], 2,
     r"--positive names the positive class of --loss log"),
    ("--positive without --csv", TRAIN_SPLIT + ["--loss", "log", "--positive", "1"], 2,
     r"--positive applies to --csv only"),
    # --- the Bayesian FM's options (issue 17): each solver refuses the other's
    ("mcmc needs --model fm", TRAIN_SPLIT + ["--solver", "mcmc"], 2, r"--solver mcmc samples a Bayesian FM: give "
                                                                     r"--model fm"),
    ("mcmc has no learning rate", ["train", "--model", "fm", "--solver", "mcmc", "--lr", "0.1"], 2,
     r"--lr applies to --solver sgd; the sampler has no learning rate"),
    ("mcmc has no epochs", ["train", "--model", "fm", "--solver", "mcmc", "--epochs", "3"], 2,
     r"--epochs applies to --solver sgd.*--samples and --burn-in"),
    ("mcmc has no dropout", ["train", "--model", "fm", "--solver", "mcmc", "--keep-prob", "0.5"], 2,
     r"--keep-prob applies to --solver sgd"),
    ("mcmc in float32", ["train", "--model", "fm", "--solver", "mcmc", "--dtype", "float32"], 2,
     r"--dtype float32: the sampler computes in float64"),
    ("--samples with sgd", TRAIN_SPLIT + ["--samples", "10"], 2, r"--samples applies to --solver mcmc"),
    ("--burn-in with sgd", TRAIN_SPLIT + ["--burn-in", "10"], 2, r"--burn-in applies to --solver mcmc"),
    ("--samples 0", ["train", "--model", "fm", "--solver", "mcmc", "--samples", "0"], 2,
     r"--samples: must be >= 1, got 0"),
    ("--burn-in -1", ["train", "--model", "fm", "--solver", "mcmc", "--burn-in", "-1"], 2,
     r"--burn-in: must be >= 0, got -1"),
    ("--solver unknown", TRAIN_SPLIT + ["--solver", "als"], 2, r"--solver: invalid choice: 'als'"),
    # --- one source of data
    ("--csv and --data-dir", TRAIN_CSV + ["--data-dir", "{split}"], 2, r"give one source of data"),
    ("--file and --data-dir", ["evaluate", "--load", "{good}", "--file", "{split}/toy.test.libfm",
                               "--data-dir", "{split}"], 2, r"give one source of data"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_command_line_case(case, tmp, capsys):  # noqa: F811 (the fixture imported above)
    _, argv, status, pattern = case
    csv = csv_file(tmp)
    watched = [tmp / "good.npz", csv, *sorted((tmp / "split").iterdir())]
    before = digest(watched)
    argv = [a.format(tmp=tmp, good=tmp / "good.npz", split=tmp / "split", csv=csv) for a in argv]
    code, out, err = run_cli(argv, capsys)
    if code == 2 and err.startswith("python -m nfm_numpy"):       # argparse's usage error: its own prefix
        err = err.split(": error: ", 1)[1]
    assert_one_line_error(code, err, status, pattern)
    assert digest(watched) == before
    assert "data:" not in out                       # nothing was read or trained


def test_at_least_twenty_five_cases():
    assert len(CASES) >= 25


# ------------------------------------------------------------------ class 2: --dtype reaches the data
def test_float64_labels_are_read_in_float64_from_csv(tmp_path, capsys):
    """Labels near 1e8 differ in the last unit: float32 would round them (to 1e8 and 1e8 + 8)."""
    rows = "".join(f"u{i % 5},i{i % 3},{100000001 + i % 7}\n" for i in range(120))
    csv = write(tmp_path, "big.csv", "user,item,y\n" + rows)
    code = cli.main(["train", "--csv", str(csv), "--label", "y", "--categorical", "user,item", "--dtype",
                        "float64", "--epochs", "1", "--batch-size", "8", "--hidden-factor", "2", "--layers", "2",
                        "--save", str(tmp_path / "m.npz")])
    assert code == 0, capsys.readouterr().err
    model, _ = checkpoint.load(tmp_path / "m.npz")
    assert model.label_range == (100000001.0, 100000007.0)


def test_float64_labels_are_read_in_float64_from_libfm(tmp_path, capsys):
    split = tmp_path / "s"
    split.mkdir()
    rows = "".join(f"{100000001 + i % 7} {i % 5}:1 {10 + i % 3}:1\n" for i in range(60))
    for part in ("train", "validation", "test"):
        (split / f"big.{part}.libfm").write_text(rows)
    code = cli.main(["train", "--data-dir", str(split), "--dtype", "float64", "--epochs", "1", "--batch-size",
                        "8", "--hidden-factor", "2", "--layers", "2", "--save", str(tmp_path / "m.npz")])
    assert code == 0, capsys.readouterr().err
    model, _ = checkpoint.load(tmp_path / "m.npz")
    assert model.label_range == (100000001.0, 100000007.0)


# ------------------------------------------------------------------ class 17: metrics that mean something
def test_auc_only_for_labels_of_two_values():
    pred = np.array([0.1, 0.4, 0.35, 0.8])
    two = M.evaluate("square", np.array([-1.0, -1.0, 1.0, 1.0]), pred)
    assert two["auc"] == pytest.approx(0.75)
    shifted = M.evaluate("square", np.array([1.0, 1.0, 2.0, 2.0]), pred)      # any two values: the larger wins
    assert shifted["auc"] == pytest.approx(0.75)
    assert "auc" not in M.evaluate("square", np.array([1.0, 2.0, 3.0, 5.0]), pred)
    assert np.isnan(M.evaluate("square", np.ones(4), pred)["auc"])


def test_ratings_print_no_auc_line(tmp_path, capsys):
    csv = write(tmp_path, "r.csv", RATINGS)
    code, out, err = run_cli(["train", "--csv", csv, "--label", "rating", "--categorical", "user,item",
                              "--epochs", "2", "--batch-size", "16", "--hidden-factor", "2", "--layers", "2"],
                             capsys)
    assert code == 0, err
    assert "test rmse:" in out and "auc" not in out


def test_text_labels_with_a_named_positive_class(tmp_path, capsys):
    csv = write(tmp_path, "c.csv", CLICKS)
    code, out, err = run_cli(["train", "--csv", csv, "--label", "clicked", "--categorical", "user,item", "--loss",
                              "log", "--positive", "yes", "--epochs", "2", "--batch-size", "16", "--hidden-factor",
                              "2", "--layers", "2"], capsys)
    assert code == 0, err
    assert "test logloss:" in out and "test auc:" in out


# ------------------------------------------------------------------ class 9: overflow at the initial weights
def test_loss_overflowing_before_any_update_blames_the_input_not_the_learning_rate():
    idx = np.tile(np.arange(3), (64, 1))
    val = np.ones((64, 3))
    y = np.full(64, 3e19)                           # fits float32, but its square does not
    ds = nf.Dataset(idx, val, y, 3, "big")
    model = nf.NFM(3, k=2, layers=[2])
    with pytest.raises(E.DataError, match=r"big: the loss is (inf|nan) on the first batch at the initial weights.*"
                                          r"largest \|label\| 3e\+19.*--dtype float64") as info:
        T.fit(model, ds, epochs=1, batch_size=16, log=None)
    assert "lr" not in str(info.value)
    np.testing.assert_array_equal(model.params["w"], nf.NFM(3, k=2, layers=[2]).params["w"])


def test_overflow_at_the_start_on_the_command_line(tmp_path, capsys):
    split = tmp_path / "s"
    split.mkdir()
    for part in ("train", "validation", "test"):
        (split / f"o.{part}.libfm").write_text("3e19 0:1 1:1\n-3e19 1:1 2:1\n" * 20)
    code, out, err = run_cli(["train", "--data-dir", split, "--epochs", "1", "--batch-size", "8"], capsys)
    assert_one_line_error(code, err, 2, r"the loss is inf on the first batch at the initial weights")
    assert "--lr" not in err


# ------------------------------------------------------------------ classes 11 and 12: signals
# A child prints a line when it is where the test wants it, then blocks reading its stdin. The test
# sends the signal, then closes the child's stdin: a handler that raises ends the read at once; one that
# only records the signal (training's) lets the read end at the EOF, after the handler has run. No sleep,
# and no race between the signal and the wait.
def child(script, *args, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    kw.setdefault("stdin", subprocess.PIPE)
    kw.setdefault("preexec_fn", as_in_a_terminal)          # Ctrl-C as in a terminal, whoever started the tests
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def wait_for_line(proc, text):
    """Read the child's stdout until a line containing ``text`` (the child's own readiness signal)."""
    for line in proc.stdout:
        if text in line:
            return line
    raise AssertionError(f"the process ended before printing {text!r}: {proc.stderr.read()}")


def signal_child(proc, sig):
    """Send ``sig`` (a name) to a child blocked on its stdin, then let the read end; return its output."""
    proc.send_signal(getattr(signal, sig))
    proc.stdin.close()
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.wait()
    return out, err


STARTING = """
import signal, sys, runpy
class Pause:                          # stops the start-up inside our own imports until a signal comes
    def find_spec(self, name, path, target=None):
        if name == "nfm_numpy.cli":
            print("importing", flush=True)
            sys.stdin.readline()
        return None
sys.meta_path.insert(0, Pause())
sys.argv = ["nfm_numpy", "train", "--epochs", "1"]
runpy.run_module("nfm_numpy", run_name="__main__")
"""

READING = """
import signal, sys
from nfm_numpy import cli, datasets
def reading(*a, **kw):
    print("reading", flush=True)
    sys.stdin.readline()
datasets.load = reading
sys.exit(cli.main(["train", "--epochs", "1"]))
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"])
@pytest.mark.parametrize("script, ready, where", [(STARTING, "importing", "while starting"),
                                                   (READING, "reading", "while reading the data")],
                         ids=["starting", "reading"])
def test_a_signal_while_starting_or_reading_is_one_line_and_130(script, ready, where, sig):
    proc = child(script)
    wait_for_line(proc, ready)
    _, err = signal_child(proc, sig)
    assert proc.returncode == 130, err
    assert err.strip() == err.strip().splitlines()[0] and "Traceback" not in err
    assert f"interrupted ({sig}) {where}" in err and "()" not in err


SAVING = """
import signal, sys
from nfm_numpy import checkpoint, cli
real = checkpoint.write_atomically
def slow(path, write, *a, **kw):
    def pause(f):
        write(f)
        f.flush()
        print("writing", flush=True)
        sys.stdin.readline()
    return real(path, pause, *a, **kw)
checkpoint.write_atomically = slow
sys.exit(cli.main(["train", "--train-rows", "2000", "--epochs", "1", "--hidden-factor", "4", "--layers", "4",
                   "--save", sys.argv[1]]))
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGQUIT", "SIGINT"])
def test_a_signal_during_a_save_leaves_the_old_file_and_no_temporary(tmp_path, sig):
    target = write(tmp_path, "m.npz", "precious")
    proc = child(SAVING, target)
    wait_for_line(proc, "writing")
    _, err = signal_child(proc, sig)
    assert proc.returncode == 130, err
    assert f"interrupted ({sig}) while saving" in err and "Traceback" not in err
    assert target.read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


IGNORED = """
import signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)      # as a shell starts a background job
from nfm_numpy import cli, train
real = train.fit
def fit(*a, **kw):
    def log(line):
        print(line, flush=True)
        if line.startswith("epoch   1"):
            import os
            os.kill(os.getpid(), signal.SIGINT)   # ignored: training goes on
    kw["log"] = log
    return real(*a, **kw)
train.fit = fit
sys.exit(cli.main(["train", "--train-rows", "2000", "--epochs", "3", "--early-stop", "0", "--hidden-factor", "4",
                   "--layers", "4"]))
"""


def test_a_signal_ignored_at_start_stays_ignored():
    proc = child(IGNORED, stdin=subprocess.DEVNULL)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert "epoch   3" in out and "interrupted" not in err


LIBRARY = """
import signal, sys
import numpy as np
from nfm_numpy import train, datasets
split = datasets.synthetic(n_train=4000, n_valid=500, n_test=500, seed=0)
model = __import__("nfm_numpy").NFM(split.train.n_features, k=4, layers=[4])
w0 = model.params["w"].copy()
def log(line):
    print(line, flush=True)
    if line.startswith("epoch   2"):
        print("ready", flush=True)
        sys.stdin.readline()                            # wait here (inside fit's loop) for the signal
try:
    train.fit(model, split, epochs=50, early_stop=False, batch_size=64, log=log)
except KeyboardInterrupt as e:
    print("raised:", type(e).__name__, e, "| weights changed:", not np.array_equal(model.params["w"], w0))
    sys.exit(3)
print("fit returned quietly")
"""


def test_a_library_fit_passes_ctrl_c_on_with_the_best_weights_kept():
    proc = child(LIBRARY)
    wait_for_line(proc, "ready")
    out, err = signal_child(proc, "SIGINT")
    assert proc.returncode == 3, out + err
    assert "raised: Interrupted SIGINT after epoch 2" in out and "keeps the weights restored to epoch" in out
    assert "weights changed: True" in out and "fit returned quietly" not in out


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_library_fit_passes_sigterm_on_and_the_process_ends_by_it(sig):
    proc = child(LIBRARY)
    wait_for_line(proc, "ready")
    out, err = signal_child(proc, sig)
    assert proc.returncode == -getattr(signal, sig), out + err       # ended by the signal, as the sender meant
    assert "fit returned quietly" not in out


ESTIMATOR = """
import re, signal, sys
import numpy as np
from nfm_numpy.estimators import NFMRegressor
rng = np.random.default_rng(0)
X = rng.standard_normal((3000, 5)); y = X[:, 0] * X[:, 1]
class Ready:
    def write(self, text):
        sys.__stdout__.write(text)
        if re.search(r"epoch\\s+2\\b", text):
            sys.__stdout__.write("ready\\n"); sys.__stdout__.flush()
            sys.stdin.readline()
    def flush(self):
        sys.__stdout__.flush()
sys.stdout = Ready()
est = NFMRegressor(k=4, epochs=200, verbose=1, random_state=0)
est.fit(X, y)
sys.__stdout__.write("fit returned quietly\\n")
"""


def test_an_estimator_does_not_swallow_sigterm():
    proc = child(ESTIMATOR)
    wait_for_line(proc, "ready")
    out, err = signal_child(proc, "SIGTERM")
    assert proc.returncode == -signal.SIGTERM, out + err
    assert "fit returned quietly" not in out


def test_the_history_of_an_interrupted_library_run_is_written(tmp_path):
    script = LIBRARY.replace("log=log)", f"log=log, history_path={str(tmp_path / 'h.jsonl')!r})")
    proc = child(script)
    wait_for_line(proc, "ready")
    signal_child(proc, "SIGINT")
    assert proc.returncode == 3
    assert [json.loads(line)["epoch"] for line in (tmp_path / "h.jsonl").read_text().splitlines()] == [1, 2]


def test_an_estimator_passes_ctrl_c_on_and_keeps_the_best_weights_it_reached():
    script = ESTIMATOR.replace('''est.fit(X, y)
sys.__stdout__.write("fit returned quietly\\n")''', '''try:
    est.fit(X, y)
except KeyboardInterrupt as e:
    sys.__stdout__.write(f"raised {type(e).__name__} | epochs {len(est.history_.epochs)} | "
                         f"predicts {np.isfinite(est.predict(X)).all()}\\n")
    sys.exit(3)
sys.__stdout__.write("fit returned quietly\\n")''')
    assert script != ESTIMATOR
    proc = child(script)
    wait_for_line(proc, "ready")
    out, err = signal_child(proc, "SIGINT")
    assert proc.returncode == 3, out + err
    assert "raised Interrupted | epochs 2 | predicts True" in out


# ------------------------------------------------------------------ predict reads no labels; no silent cast
def test_predict_reads_no_libfm_labels_but_evaluate_does(tmp, capsys):  # noqa: F811 (the fixture)
    f = write(tmp, "x.libfm", "? 0:1 10:1\nunknown 1:1 11:1\n")
    code, out, err = run_cli(["predict", "--load", tmp / "good.npz", "--file", f], capsys)
    assert code == 0, err
    assert len(out.split()) == 2
    code, out, err = run_cli(["evaluate", "--load", tmp / "good.npz", "--file", f], capsys)
    assert_one_line_error(code, err, 2, r"x\.libfm, line 1: label '\?'")


def test_a_float64_dataset_that_overflows_a_float32_model_is_refused_not_cast_to_inf():
    ds = nf.Dataset(np.array([[0], [1]]), np.array([[1.0], [1e39]]), np.zeros(2), 3, "wide")
    with pytest.raises(E.DataError, match=r"wide: val\[1, 0\]: value 1e\+39 is too large for float32"):
        T.predictions(nf.FM(3, k=2), ds)
    with pytest.raises(E.DataError, match=r"val\[1, 0\]: value 1e\+39 is too large for float32"):
        nf.FM(3, k=2).predict(nf.make_batch(np.array([[0], [1]]), np.array([[1.0], [1e39]])))


# ------------------------------------------------------------------ the Bayesian FM end to end (issue 17)
def test_mcmc_train_save_evaluate_predict(tmp, capsys):  # noqa: F811 (the fixture)
    m = tmp / "bayes.npz"
    code, out, err = run_cli(["train", "--data-dir", tmp / "split", "--model", "fm", "--solver", "mcmc", "--samples",
                              "12", "--burn-in", "3", "--hidden-factor", "2", "--keep", "4", "--save", m], capsys)
    assert code == 0, err
    assert "sweep   15" in out and "saved" in out
    test_rmse = float(out.split("test rmse: ")[1].split()[0])
    code, out, err = run_cli(["evaluate", "--load", m, "--data-dir", tmp / "split"], capsys)
    assert code == 0, err
    # evaluate scores with the 4 kept samples (training printed the mean over all 12): check it by hand
    model, extra = checkpoint.load(m)
    test = D.read_with_ids(tmp / "split" / "toy.test.libfm", extra["raw_ids"])[0]
    pred = np.clip(model.predict(test.idx, test.val), *model.label_range)
    by_hand = float(np.sqrt(np.mean((np.asarray(test.y, dtype=np.float64) - pred) ** 2)))
    assert float(out.split("test rmse: ")[1].split()[0]) == pytest.approx(by_hand, abs=1e-4)
    assert abs(by_hand - test_rmse) < 0.2
    code, out, err = run_cli(["predict", "--load", m, "--file", tmp / "split" / "toy.test.libfm"], capsys)
    assert code == 0, err
    assert len(out.split()) == 30 and all(np.isfinite(float(v)) for v in out.split())


# ------------------------------------------------------------------ from the adversarial pass
def test_an_input_that_overflows_in_a_later_batch_is_named_not_blamed_on_the_learning_rate(tmp_path, capsys):
    lines = [f"{1 if i % 2 else -1} {i % 7}:1 {10 + i % 5}:1" for i in range(300)]
    lines[150] = "0.5 3:1e20 11:1"
    for part in ("train", "validation", "test"):
        (tmp_path / f"o.{part}.libfm").write_text("\n".join(lines if part == "train" else lines[:60]) + "\n")
    code, out, err = run_cli(["train", "--data-dir", tmp_path, "--epochs", "2", "--hidden-factor", "4", "--layers",
                              "4", "--batch-size", "16", "--lr", "1e-9"], capsys)
    assert_one_line_error(code, err, 2, r"o\.train: the loss is (nan|inf) at epoch 1, batch \d+, and that batch "
                                        r"overflows at the initial weights too.*largest \|x\| in it 1e\+20")
    assert "--lr" not in err


def test_a_real_divergence_is_still_a_divergence(tmp_path):
    split = D.synthetic(n_train=512, n_valid=64, n_test=64, seed=0)
    hist = T.fit(nf.NFM(split.train.n_features, k=4, layers=[4]), split, optimizer="sgd", lr=1e6, epochs=3,
                 batch_size=64, log=None)
    assert hist.diverged


@pytest.mark.parametrize("labels", ["4", "1"], ids=["a constant rating", "one class"])
def test_one_valued_training_labels_are_refused_not_scored_perfect(tmp_path, capsys, labels):
    csv = write(tmp_path, "c.csv", "user,item,y\n" + "".join(f"u{i % 5},i{i % 3},{labels}\n" for i in range(90)))
    code, out, err = run_cli(["train", "--csv", csv, "--label", "y", "--categorical", "user,item", "--epochs", "1"]
                             + (["--loss", "log"] if labels == "1" else []), capsys)
    assert_one_line_error(code, err, 2, rf"every training label is {labels}: there is nothing to learn")


@pytest.mark.parametrize("option", ["--csv", "--valid-csv"])
def test_a_loop_of_symbolic_links_is_bad_input_not_an_internal_error(tmp_path, capsys, option):
    (tmp_path / "a.csv").symlink_to(tmp_path / "b.csv")
    (tmp_path / "b.csv").symlink_to(tmp_path / "a.csv")
    good = write(tmp_path, "g.csv", RATINGS)
    argv = ["train", "--csv", tmp_path / "a.csv", "--label", "rating", "--categorical", "user,item"]
    if option == "--valid-csv":
        argv = ["train", "--csv", good, "--label", "rating", "--categorical", "user,item", "--valid-csv",
                tmp_path / "a.csv", "--test-csv", good]
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and "internal error" not in err and "a.csv" in err and "Traceback" not in err


def test_the_signal_is_named_even_when_a_codec_wrapped_the_interrupt():
    assert cli._signal_name(E.Interrupted("decoding with 'utf-8-sig' codec failed (Interrupted: SIGTERM)")) == "SIGTERM"
    assert cli._signal_name(KeyboardInterrupt()) == "SIGINT"


def test_predictions_that_overflow_name_the_first_row(tmp_path, capsys):
    rows = "".join(f"u{i % 5},{i % 7}.5,{1 + i % 5}\n" for i in range(120))
    train = write(tmp_path, "t.csv", "user,price,rating\n" + rows)
    m = tmp_path / "m.npz"
    assert cli.main(["train", "--csv", str(train), "--label", "rating", "--categorical", "user", "--numeric", "price",
                     "--epochs", "1", "--hidden-factor", "4", "--layers", "4", "--batch-size", "16", "--save",
                     str(m)]) == 0
    capsys.readouterr()
    new = write(tmp_path, "n.csv", "user,price\nu1,2.5\nu2,1e30\n")
    code, out, err = run_cli(["predict", "--load", m, "--csv", new], capsys)
    assert_one_line_error(code, err, 1, r"1 of 2 predictions on n\.csv are not finite, the first for data row 2 "
                                        r"\(largest \|x\| in it")
    assert out == ""
