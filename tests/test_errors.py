"""No silent wrong answers: bad inputs and faults across the reader, the command line,
checkpoints, the library API and interrupts.

Each command-line case asserts the README's rule ("Errors and exit codes"): the exit
status (2 bad input, 1 failed run, 130 interrupt), one line on stderr that names the
problem, no traceback, and that no file that existed before was changed. Most cases run
``cli.main`` in this process (fast); the interrupt cases run a real subprocess and send
it SIGINT or SIGTERM.
"""
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import as_in_a_terminal

import nfm_numpy as nf
from nfm_numpy import checkpoint, cli, datasets as D, errors as E, train as T

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------ fixtures
TRAIN = "1 0:1 10:1 20:1\n-1 1:1 11:1 21:1\n1 2:1 12:1 20:1\n-1 3:1 13:1 21:1\n" * 30
VALID = "1 0:1 11:1 20:1\n-1 2:1 13:1 21:1\n" * 10
TEST = "-1 1:1 10:1 20:1\n1 3:1 12:1 21:1\n1 0:1 13:1 21:1\n" * 10


def write_split(d, train=TRAIN, valid=VALID, test=TEST, name="toy"):
    d.mkdir(parents=True, exist_ok=True)
    for part, text in (("train", train), ("validation", valid), ("test", test)):
        (d / f"{name}.{part}.libfm").write_text(text)
    return d


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A toy split, a model trained on it and saved, and a checkpoint's arrays to damage."""
    base = tmp_path_factory.mktemp("errors")
    split_dir = write_split(base / "split")
    assert cli.main(["train", "--data-dir", str(split_dir), "--epochs", "3", "--batch-size", "16",
                     "--hidden-factor", "4", "--layers", "4", "--save", str(base / "good.npz")]) == 0
    return base


@pytest.fixture
def tmp(work, tmp_path):
    """A fresh folder holding a copy of the split and of the good checkpoint."""
    write_split(tmp_path / "split")
    (tmp_path / "good.npz").write_bytes((work / "good.npz").read_bytes())
    return tmp_path


def digest(paths):
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths if Path(p).is_file()}


def run_cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, status, pattern):
    import re
    assert code == status, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if not line.startswith("note:")]
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), lines[0]


# ------------------------------------------------------------------ the command line, table-driven
def damaged_checkpoint(tmp, change):
    """A copy of the good checkpoint with ``change(arrays, config)`` applied."""
    with np.load(tmp / "good.npz") as f:
        arrays = {k: f[k] for k in f.files}
    config = json.loads(str(arrays["config"]))
    change(arrays, config)
    arrays["config"] = np.array(json.dumps(config))
    np.savez(tmp / "bad.npz", **arrays)
    return tmp / "bad.npz"


def setter(key, value):
    def change(arrays, config):
        arrays[key] = value(arrays[key]) if callable(value) else value
    return change


def config_change(fn):
    def change(arrays, config):
        fn(config)
    return change


def damaged_json(tmp):
    with np.load(tmp / "good.npz") as f:
        arrays = {k: f[k] for k in f.files}
    np.savez(tmp / "bad.npz", **{**arrays, "config": np.array("{oops")})
    return tmp / "bad.npz"


def write(tmp, name, text, mode="w"):
    p = tmp / name
    if mode == "wb":
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


def fifo(tmp):
    p = tmp / "pipe"
    os.mkfifo(p)
    return p


LOAD = ["evaluate", "--load", "{good}"]
PRED = ["predict", "--load", "{good}", "--file"]
TRAIN_SMALL = ["train", "--train-rows", "2000", "--epochs", "1", "--hidden-factor", "4", "--layers", "4"]
TRAIN_SPLIT = ["train", "--data-dir", "{split}", "--epochs", "1", "--hidden-factor", "4", "--layers", "4",
               "--batch-size", "16"]

# (case id, argv with {tmp}/{good}/{split}/{file} placeholders, file maker, status, pattern)
CASES = [
    # --- the libFM reader, through predict --file and train --data-dir
    ("empty file", PRED + ["{file}"], lambda t: write(t, "x.libfm", ""), 2,
     r"x\.libfm: no examples \(the file is empty\)"),
    ("blank lines only", PRED + ["{file}"], lambda t: write(t, "x.libfm", "\n\n \n"), 2,
     r"x\.libfm: no examples \(3 blank"),
    ("bad label", LOAD + ["--file", "{file}"], lambda t: write(t, "x.libfm", "1 0:1\nabc 1:1\n"), 2,
     r"x\.libfm, line 2: label 'abc'"),
    ("bad value", PRED + ["{file}"], lambda t: write(t, "x.libfm", "1 0:x\n"), 2,
     r"line 1: value 'x' in '0:x' is not a number"),
    ("float id", PRED + ["{file}"], lambda t: write(t, "x.libfm", "1 3.0:1\n"), 2,
     r"line 1: feature id '3.0'.*not a non-negative integer"),
    ("id 1e19", PRED + ["{file}"], lambda t: write(t, "x.libfm", "1 1e19:1\n"), 2, r"feature id '1e19'"),
    ("id past 2^63", PRED + ["{file}"], lambda t: write(t, "x.libfm", "1 0:1\n1 9223372036854775808:1\n"), 2,
     r"line 2: feature id 9223372036854775808 .*does not fit in 64 bits"),
    ("negative id", PRED + ["{file}"], lambda t: write(t, "x.libfm", "1 -2:1\n"), 2,
     r"feature id '-2' in '-2:1' is negative"),
    ("NaN value", PRED + ["{file}"], lambda t: write(t, "x.libfm", "1 0:nan\n"), 2,
     r"line 1: value in '0:nan' is not finite"),
    ("inf label", LOAD + ["--file", "{file}"], lambda t: write(t, "x.libfm", "1 0:1\ninf 0:1\n"), 2,
     r"line 2: label 'inf' is not finite"),
    ("two colons", PRED + ["{file}"], lambda t: write(t, "x.libfm", "1 0:1:2 3\n"), 2,
     r"line 1: expected 'id:value', got '0:1:2'"),
    ("binary file", PRED + ["{file}"], lambda t: write(t, "x.libfm", b"PK\x03\x04\x00\x01", "wb"), 2,
     r"not a text file"),
    ("missing file", PRED + ["{tmp}/nothere.libfm"], None, 2, r"nothere\.libfm: No such file"),
    ("file is a folder", PRED + ["{tmp}"], None, 2, r"Is a directory"),
    ("unseen id refused", PRED + ["{file}", "--unseen", "error"], lambda t: write(t, "x.libfm", "1 0:1\n1 777:1\n"), 2,
     r"x\.libfm, line 2: feature id 777 is not one the model was trained with"),
    ("non-breaking space", PRED + ["{file}"], lambda t: write(t, "x.libfm", "1 0:1\n1 0:1\u00a02:1\n"), 2,
     r"x\.libfm, line 2: .*not ASCII"),
    ("underscore in a value", PRED + ["{file}"], lambda t: write(t, "x.libfm", "1 0:1_0\n"), 2,
     r"line 1: value '1_0' in '0:1_0' is not a number"),
    ("Arabic-Indic digit", PRED + ["{file}"], lambda t: write(t, "x.libfm", "1 0:\u0661\n"), 2, r"line 1: .*not ASCII"),
    ("value too large for float32", PRED + ["{file}"], lambda t: write(t, "x.libfm", "1 0:1\n1 0:1e39\n"), 2,
     r"x\.libfm, line 2: value 1e\+39 is too large for float32"),
    ("every id unseen", PRED + ["{file}"], lambda t: write(t, "x.libfm", "1 777:1 778:1\n"), 2,
     r"none of its 2 feature ids was seen in training"),
    ("--part with --file", PRED + ["{file}", "--part", "train"], lambda t: write(t, "x.libfm", "1 0:1\n"), 2,
     r"--part chooses a file of --data-dir"),
    ("label-only training file", TRAIN_SPLIT, lambda t: write(t, "split/toy.train.libfm", "1\n-1\n" * 20), 2,
     r"toy\.train\.libfm: no row has any feature"),
    ("empty train file", TRAIN_SPLIT, lambda t: write(t, "split/toy.train.libfm", ""), 2,
     r"toy\.train\.libfm: no examples"),
    ("empty test file", TRAIN_SPLIT, lambda t: write(t, "split/toy.test.libfm", "\n"), 2,
     r"toy\.test\.libfm: no examples"),
    ("label-only rows", TRAIN_SPLIT, lambda t: [write(t, f"split/toy.{p}.libfm", "1\n-1\n") for p in
                                               ("train", "validation", "test")], 2, r"no row has any feature"),
    ("missing validation file", TRAIN_SPLIT, lambda t: os.remove(t / "split/toy.validation.libfm"), 2,
     r"missing: .*toy\.validation\.libfm"),
    ("no data dir", ["train", "--data-dir", "{tmp}/none"], None, 2, r"expected one \*\.train\.libfm file, found 0"),
    ("log loss, labels 0.3 2 5", TRAIN_SPLIT + ["--loss", "log"],
     lambda t: write(t, "split/toy.train.libfm", "1 0:1\n0.3 1:1\n2 2:1\n5 3:1\n" * 10), 2,
     r"toy\.train\.libfm, line 2: label 0\.3 cannot be used with the log loss"),
    ("log loss, regression labels", TRAIN_SPLIT + ["--loss", "log"],
     lambda t: write(t, "split/toy.validation.libfm", "3.5 0:1\n4 1:1\n"), 2, r"line 1: label 3\.5 cannot be used"),
    # --- numeric options
    ("batch size 0", TRAIN_SMALL + ["--batch-size", "0"], None, 2, r"--batch-size: must be >= 1, got 0"),
    ("batch size -5", TRAIN_SMALL + ["--batch-size", "-5"], None, 2, r"--batch-size: must be >= 1, got -5"),
    ("batch size 2.5", TRAIN_SMALL + ["--batch-size", "2.5"], None, 2, r"--batch-size: expected an integer, got '2.5'"),
    ("batch larger than data", TRAIN_SPLIT + ["--batch-size", "100000"], None, 2,
     r"batch_size 100000 is larger than the training set"),
    ("epochs 0", TRAIN_SMALL + ["--epochs", "0"], None, 2, r"--epochs: must be >= 1, got 0"),
    ("epochs -3 with --save", TRAIN_SMALL + ["--epochs", "-3", "--save", "{good}"], None, 2, r"--epochs: must be >= 1"),
    ("train rows 0", TRAIN_SMALL + ["--train-rows", "0"], None, 2, r"--train-rows: must be >= 1, got 0"),
    ("train rows -100", TRAIN_SMALL + ["--train-rows", "-100"], None, 2, r"--train-rows: must be >= 1, got -100"),
    ("l2 nan", TRAIN_SMALL + ["--l2", "nan"], None, 2, r"--l2: must be a finite number, got nan"),
    ("l2 negative", TRAIN_SMALL + ["--l2", "-0.1"], None, 2, r"--l2: must be >= 0"),
    ("lr inf", TRAIN_SMALL + ["--lr", "inf"], None, 2, r"--lr: must be a finite number, got inf"),
    ("lr 0", TRAIN_SMALL + ["--lr", "0"], None, 2, r"--lr: must be > 0, got 0"),
    ("seed -1", TRAIN_SMALL + ["--seed", "-1"], None, 2, r"--seed: must be >= 0, got -1"),
    ("hidden factor 0", TRAIN_SMALL + ["--hidden-factor", "0"], None, 2, r"--hidden-factor: must be >= 1"),
    ("layers 0", ["train", "--layers", "64,0"], None, 2, r"--layers: value 2 must be >= 1, got 0"),
    ("layers ,,", ["train", "--layers", ",,"], None, 2, r"--layers: expected a comma-separated list"),
    ("layers 4,,4", ["train", "--layers", "4,,4"], None, 2, r"--layers: expected a comma-separated list"),
    ("layers ((4]", ["train", "--layers", "((4]"], None, 2, r"--layers: expected a comma-separated list"),
    ("hidden factor 0_4", ["train", "--hidden-factor", "0_4"], None, 2, r"--hidden-factor: expected an integer"),
    ("model larger than memory", TRAIN_SMALL + ["--hidden-factor", "1000000000"], None, 2,
     r"the model is too large for this machine"),
    ("layers text", ["train", "--layers", "abc"], None, 2, r"--layers: expected a comma-separated list of integers"),
    ("keep prob 7", ["train", "--keep-prob", "7,0.5"], None, 2,
     r"--keep-prob: value 1 must be a keep probability in \(0, 1\], got 7"),
    ("keep prob 0", ["train", "--keep-prob", "0,0.5"], None, 2, r"--keep-prob: value 1 must be a keep probability"),
    ("keep prob empty", ["train", "--keep-prob", ""], None, 2, r"--keep-prob: needs at least one keep probability"),
    ("keep prob count", ["train", "--layers", "8,8", "--keep-prob", "0.8,0.5"], None, 2,
     r"--keep-prob needs 3 values for --layers 8,8"),
    ("fm with --layers", ["train", "--model", "fm", "--layers", "64"], None, 2,
     r"--layers applies to --model nfm only"),
    ("fm with --activation", ["train", "--model", "fm", "--activation", "tanh"], None, 2,
     r"--activation applies to --model nfm only"),
    ("fm with --pretrain", ["train", "--model", "fm", "--pretrain", "1"], None, 2,
     r"--pretrain applies to --model nfm only"),
    ("fm with two keep probs", ["train", "--model", "fm", "--keep-prob", "0.8,0.5"], None, 2,
     r"--model fm takes one keep probability"),
    ("fm with keep prob 7", ["train", "--model", "fm", "--keep-prob", "7,0.5"], None, 2,
     r"--keep-prob: value 1 must be a keep probability"),
    ("dataset and data dir", ["train", "--dataset", "frappe", "--data-dir", "{split}"], None, 2,
     r"give one source of data, not --dataset and --data-dir"),
    ("switch yes", ["train", "--batch-norm", "yes"], None, 2, r"--batch-norm: expected 0 or 1, got 'yes'"),
    ("unknown option", ["train", "--bogus", "1"], None, 2, r"unrecognized arguments: --bogus"),
    ("gradcheck threshold 0", ["gradcheck", "--threshold", "0"], None, 2, r"--threshold: must be > 0, got 0"),
    ("gradcheck step 0", ["gradcheck", "--step", "0"], None, 2, r"--step: must be >= 1e-12, got 0"),
    ("gradcheck step 1e-16", ["gradcheck", "--step", "1e-16"], None, 2, r"--step: must be >= 1e-12, got 1e-16"),
    ("gradcheck step 1e300", ["gradcheck", "--step", "1e300"], None, 2, r"--step: must be <= 0.1, got 1e\+300"),
    ("gradcheck rows 1e8", ["gradcheck", "--rows", "100000000"], None, 2, r"--rows: must be <= 10000"),
    ("gradcheck step nan", ["gradcheck", "--step", "nan"], None, 2, r"--step: must be a finite number"),
    ("gradcheck rows 0", ["gradcheck", "--rows", "0"], None, 2, r"--rows: must be >= 2, got 0"),
    ("gradcheck rows 1", ["gradcheck", "--rows", "1"], None, 2, r"--rows: must be >= 2, got 1"),
    ("gradcheck features 1", ["gradcheck", "--features", "1"], None, 2, r"--features: must be >= 4, got 1"),
    ("gradcheck fm layers", ["gradcheck", "--model", "fm", "--layers", "4"], None, 2,
     r"--layers applies to --model nfm only"),
    # --- checkpoints
    ("checkpoint: random bytes", LOAD + ["--load", "{file}"], lambda t: write(t, "r.npz", os.urandom(3000), "wb"), 2,
     r"r\.npz: not an nfm_numpy checkpoint"),
    ("checkpoint: truncated", LOAD + ["--load", "{file}"],
     lambda t: write(t, "cut.npz", (t / "good.npz").read_bytes()[:2000],
      "wb"), 2, r"cut\.npz: not a readable checkpoint"),
    ("checkpoint: missing", LOAD + ["--load", "{tmp}/none.npz"], None, 2, r"none\.npz: No such file"),
    ("checkpoint: NaN weights", LOAD + ["--load", "{file}"],
     lambda t: damaged_checkpoint(t, setter("param/V", lambda a: np.where(a == a.flat[0], np.nan, a))), 2,
     r"param V holds 1 NaN or infinite values"),
    ("checkpoint: inf weights", LOAD + ["--load", "{file}"],
     lambda t: damaged_checkpoint(t, setter("param/w0", lambda a: np.array(np.inf,
      a.dtype))), 2, r"param w0 holds 1 NaN"),
    ("checkpoint: negative variance", LOAD + ["--load", "{file}"],
     lambda t: damaged_checkpoint(t, setter("state/var1", lambda a: -a)), 2, r"running variance var1 is negative"),
    ("checkpoint: no activation", LOAD + ["--load", "{file}"],
     lambda t: damaged_checkpoint(t,
      config_change(lambda c: c.pop("activation"))), 2, r"configuration lacks activation"),
    ("checkpoint: no loss", LOAD + ["--load", "{file}"],
     lambda t: damaged_checkpoint(t, config_change(lambda c: c.pop("loss"))), 2, r"configuration lacks loss"),
    ("checkpoint: kind foo", LOAD + ["--load", "{file}"],
     lambda t: damaged_checkpoint(t,
      config_change(lambda c: c.update(kind="foo"))), 2, r"kind must be one of nfm, fm; got 'foo'"),
    ("checkpoint: unknown key", LOAD + ["--load", "{file}"],
     lambda t: damaged_checkpoint(t, config_change(lambda c: c.update(colour="red"))), 2, r"has unknown colour"),
    ("checkpoint: bad keep prob", LOAD + ["--load", "{file}"],
     lambda t: damaged_checkpoint(t, config_change(lambda c: c.update(keep_prob=[7,
      0.5]))), 2, r"keep_prob\[0\] must be a keep probability"),
    ("checkpoint: wrong shape", LOAD + ["--load", "{file}"],
     lambda t: damaged_checkpoint(t, setter("param/h", np.ones(3, np.float32))), 2, r"param h has shape \(3,\)"),
    ("checkpoint: id map", LOAD + ["--load", "{file}"],
     lambda t: damaged_checkpoint(t, setter("extra/raw_ids", lambda a: a[:-1])), 2, r"the id map raw_ids must be"),
    ("checkpoint: a .npy", LOAD + ["--load", "{file}"], lambda t: np.save(t / "a.npy", np.zeros(3)) or t / "a.npy", 2,
     r"a single \.npy array"),
    ("checkpoint: pickled object", LOAD + ["--load", "{file}"],
     lambda t: damaged_checkpoint(t, setter("extra/obj", np.array([{"a": 1}], dtype=object))), 2,
     r"holds pickled objects, which are never loaded"),
    ("checkpoint: damaged json", LOAD + ["--load", "{file}"], lambda t: damaged_json(t), 2, r"damaged configuration"),
    # --- output files: refused before training, nothing changed
    ("save onto a folder", TRAIN_SMALL + ["--save", "{tmp}"], None, 2, r"--save .* is a folder; only a regular file"),
    ("save onto a FIFO", TRAIN_SMALL + ["--save", "{file}"], fifo, 2, r"--save .*pipe is a FIFO"),
    ("save onto a device", TRAIN_SMALL + ["--save", "/dev/null"], None, 2, r"--save /dev/null is a character device"),
    ("plot under a file", TRAIN_SMALL + ["--plot", "{good}/x.png"], None, 2, r"--plot .*good\.npz is not a folder"),
    ("history onto a FIFO", TRAIN_SMALL + ["--history", "{file}"], fifo, 2, r"--history .*pipe is a FIFO"),
    ("save into a dangling link", TRAIN_SMALL + ["--save", "{file}/m.npz"],
     lambda t: os.symlink(t / "nowhere", t / "dangling") or t / "dangling", 2, r"is a symbolic link to nothing"),
    ("save onto a link loop", TRAIN_SMALL + ["--save", "{file}"],
     lambda t: (os.symlink(t / "l2", t / "l1"), os.symlink(t / "l1", t / "l2")) and t / "l1", 2, r"--save .*l1"),
    ("save onto a folder name", TRAIN_SMALL + ["--save", "{tmp}/newdir/"], None, 2, r"names a folder"),
    ("plot with no image suffix", TRAIN_SMALL + ["--plot", "{tmp}/curve.pdfx"], None, 2,
     r"must end in \.png, \.pdf or \.svg"),
    ("save and history the same", TRAIN_SMALL + ["--save", "{tmp}/o", "--history", "{tmp}/o"], None, 2,
     r"--history and --save name the same file"),
    ("save onto the data", TRAIN_SPLIT + ["--save", "{split}/toy.train.libfm"], None, 2, r"is one of the input files"),
    ("diverged run keeps the old file", TRAIN_SMALL + ["--optimizer", "sgd", "--lr", "1e6", "--save", "{good}",
                                                       "--history", "{tmp}/h.jsonl"], None, 1,
     r"training diverged \(.* at epoch 1, batch \d+ of \d+\); no epoch finished, nothing saved"),
    ("backend cupy without CuPy", TRAIN_SMALL + ["--backend", "cupy"], None, 2, r"backend 'cupy' needs CuPy"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_command_line_case(case, tmp, capsys):
    name, argv, make, status, pattern = case
    if name.startswith("backend cupy"):
        pytest.importorskip("nfm_numpy")  # always there; CuPy must be absent for this case
        try:
            import cupy  # noqa: F401
            pytest.skip("CuPy is installed here")
        except ImportError:
            pass
    made = make(tmp) if make else None
    file = made[0] if isinstance(made, list) else made
    before = digest([p for p in tmp.rglob("*") if p.is_file()])
    subs = {"tmp": tmp, "good": tmp / "good.npz", "split": tmp / "split", "file": file}
    args = [str(a).format(**subs) for a in argv]
    code, out, err = run_cli(args, capsys)
    assert_one_line_error(code, err, status, pattern)
    after = digest([p for p in tmp.rglob("*") if p.is_file()])
    changed = [p for p in before if after.get(p) != before[p]]
    assert not changed, f"files changed: {changed}"
    assert not [p for p in tmp.rglob(".*.tmp")], "a temporary file was left behind"


def test_there_are_at_least_sixty_cases():
    assert len(CASES) >= 60


# ------------------------------------------------------------------ what must give the right answer
def test_saved_id_map_is_used_whatever_the_order_of_other_files(tmp, capsys):
    """evaluate/predict read a file in the model's saved id space: reordering the lines of the
    training and validation files changes nothing, and --data-dir and --file agree."""
    good, split = tmp / "good.npz", tmp / "split"
    code, first, _ = run_cli(["evaluate", "--load", good, "--data-dir", split], capsys)
    assert code == 0
    code, pred_dir, _ = run_cli(["predict", "--load", good, "--data-dir", split], capsys)
    for part in ("train", "validation"):
        p = split / f"toy.{part}.libfm"
        p.write_text("".join(reversed(p.read_text().splitlines(keepends=True))))
    code, again, _ = run_cli(["evaluate", "--load", good, "--data-dir", split], capsys)
    assert code == 0 and again == first
    code, pred_file, _ = run_cli(["predict", "--load", good, "--file", split / "toy.test.libfm"], capsys)
    assert code == 0 and pred_file == pred_dir
    code, by_file, _ = run_cli(["evaluate", "--load", good, "--file", split / "toy.test.libfm"], capsys)
    values = [line.split(": ")[1] for line in by_file.splitlines()]
    assert values == [line.split(": ")[1] for line in first.splitlines()]


def test_unseen_ids_are_ignored_and_counted(tmp, capsys):
    f = write(tmp, "x.libfm", "1 0:1 777:1\n-1 1:1\n")
    code, out, err = run_cli(["predict", "--load", tmp / "good.npz", "--file", f], capsys)
    assert code == 0 and len(out.split()) == 2
    assert "note: 1 feature id in" in err and "never seen in training, ignored" in err
    g = write(tmp, "y.libfm", "1 0:1\n-1 1:1\n")
    _, same, _ = run_cli(["predict", "--load", tmp / "good.npz", "--file", g], capsys)
    assert same == out                              # an ignored id is as if absent


def test_exact_big_ids_and_old_mac_line_ends(tmp):
    p = write(tmp, "big.libfm", "1 9007199254740993:1 9007199254740992:1\r-1 3:1\r")
    f = D.read_libfm(p)
    assert f.ids[0].tolist() == [9007199254740993, 9007199254740992] and f.lines.tolist() == [1, 2]


def test_log_loss_takes_minus_one_one_labels(tmp, capsys):
    code, out, err = run_cli(["train", "--data-dir", tmp / "split", "--loss", "log", "--epochs", "2",
                              "--hidden-factor", "4", "--layers", "4", "--batch-size", "16"], capsys)
    assert code == 0, err
    assert "labels -1/1 read as 0/1 for the log loss (-1 -> 0, 1 -> 1)" in out
    assert float(out.strip().splitlines()[-2].split(": ")[1]) > 0      # test logloss


def test_checkpoint_keeps_the_mode_of_the_file_it_replaces(tmp, capsys):
    target = tmp / "m.npz"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    assert run_cli(TRAIN_SMALL + ["--save", target], capsys)[0] == 0
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644 and target.read_bytes() != b"old"
    old = os.umask(0o027)
    try:
        assert run_cli(TRAIN_SMALL + ["--save", tmp / "new.npz"], capsys)[0] == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp / "new.npz").st_mode) == 0o640


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write read-only files; the check cannot be seen as root")
def test_read_only_checkpoint_is_not_replaced(tmp, capsys):  # pragma: no cover - not root only
    os.chmod(tmp / "good.npz", 0o444)
    code, _, err = run_cli(TRAIN_SMALL + ["--save", tmp / "good.npz"], capsys)
    assert_one_line_error(code, err, 2, r"is read-only")


def test_interrupted_write_leaves_the_old_file_and_no_temporary(tmp):
    from nfm_numpy.outputs import write_atomically
    target = write(tmp, "keep.bin", "precious")

    def writer(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, writer)
    assert target.read_text() == "precious" and sorted(p.name for p in tmp.iterdir() if p.name.startswith("."))  == []


# ------------------------------------------------------------------ the library API
@pytest.mark.parametrize("make,exc,pattern", [
    (lambda: nf.NFM(2.7), TypeError, r"n_features must be an integer, got 2\.7"),
    (lambda: nf.NFM(10, layers="64"), TypeError, r"layers must be a list .* got '64'"),
    (lambda: nf.NFM(10, layers=[64.5]), TypeError, r"layers\[0\] must be an integer"),
    (lambda: nf.NFM(10, init_std=float("nan")), ValueError, r"init_std must be a finite number"),
    (lambda: nf.NFM(10, l2=float("nan")), ValueError, r"l2 must be a finite number"),
    (lambda: nf.NFM(10, k=0), ValueError, r"k must be >= 1, got 0"),
    (lambda: nf.NFM(10, seed=-1), ValueError, r"seed must be >= 0"),
    (lambda: nf.NFM(10, batch_norm="yes"), TypeError, r"batch_norm must be True or False"),
    (lambda: nf.NFM(10, n_features=True) if False else nf.NFM(True), TypeError,
     r"n_features must be an integer, got True"),
    (lambda: nf.FM(10, keep_prob=[7, 0.5]), ValueError, r"FM takes one keep probability"),
    (lambda: nf.FM(10, keep_prob=[7]), ValueError, r"keep_prob\[0\] must be a keep probability"),
    (lambda: nf.optim.make("adagrad", float("inf")), ValueError, r"lr must be a finite number, got inf"),
    (lambda: nf.optim.make("adagrad", -1), ValueError, r"lr must be > 0"),
    (lambda: nf.model.build({"kind": "foo"}), ValueError, r"configuration lacks"),
])
def test_library_refuses_bad_arguments(make, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        make()
    assert isinstance(info.value, E.InputError)


@pytest.fixture(scope="module")
def small():
    return D.synthetic(n_train=600, n_valid=200, n_test=200, seed=1)


@pytest.mark.parametrize("kw,pattern", [
    ({"batch_size": 0}, r"batch_size must be >= 1, got 0"),
    ({"epochs": 0}, r"epochs must be >= 1, got 0"),
    ({"epochs": 2.5}, r"epochs must be an integer"),
    ({"lr": float("nan")}, r"lr must be a finite number"),
    ({"optimizer": "rmsprop"}, r"unknown optimizer 'rmsprop'"),
    ({"batch_size": 10**6}, r"larger than the training set"),
])
def test_fit_refuses_bad_arguments(small, kw, pattern):
    model = nf.NFM(small.train.n_features, k=4, layers=[4])
    with pytest.raises(E.InputError, match=pattern):
        T.fit(model, small, log=None, **kw)


def test_fit_refuses_labels_the_log_loss_cannot_use(small):
    bad = D.Split(small.train, small.valid, small.test)          # regression labels
    model = nf.NFM(small.train.n_features, k=4, layers=[4], loss="log")
    with pytest.raises(E.DataError, match=r"synthetic\.train, row 1: label .* cannot be used with the log loss"):
        T.fit(model, bad, epochs=1, log=None)


def test_fit_reads_minus_one_one_as_zero_one_for_the_log_loss(small):
    pm = D.Split(*(d.with_labels(np.where(d.y > 0, 1.0, -1.0).astype(np.float32)) for d in small))
    zo = D.Split(*(d.with_labels((d.y > 0).astype(np.float32)) for d in small))
    notes = []
    h1 = T.fit(nf.NFM(small.train.n_features, k=4, layers=[4], loss="log"), pm, epochs=2, log=notes.append)
    h2 = T.fit(nf.NFM(small.train.n_features, k=4, layers=[4], loss="log"), zo, epochs=2, log=None)
    assert any("(-1 -> 0, 1 -> 1)" in n for n in notes)
    assert h1.epochs[-1]["test"] == h2.epochs[-1]["test"] > 0           # the same run, a positive logloss


def test_model_loss_refuses_labels_outside_zero_one():
    batch = nf.make_batch(np.array([[0, 1]]), np.ones((1, 2)), np.array([-1.0]))
    with pytest.raises(E.DataError, match="the log loss needs labels 0 or 1"):
        nf.NFM(4, k=2, layers=[2], loss="log").loss(batch)


def test_predict_refuses_ids_past_the_table():
    batch = nf.make_batch(np.array([[0, 12]]), np.ones((1, 2)))        # made without n_features
    with pytest.raises(E.DataError, match=r"feature id 12 out of range for a model of 10 features"):
        nf.NFM(10, k=2, layers=[2]).predict(batch)
    with pytest.raises(E.DataError, match=r"negative feature id -1"):     # would read V[-1]
        nf.NFM(10, k=2, layers=[2]).predict(nf.Batch(np.array([[-1, 2]]), np.ones((1, 2))))
    with pytest.raises(E.DataError, match=r"feature id 12 out of range for a model of 10 features"):
        nf.NFM(10, k=2, layers=[2]).predict((np.array([[0, 12]]), np.ones((1, 2))))


def test_from_csr_sums_duplicate_entries_as_scipy_does():
    X = sp.csr_matrix((np.array([1.0, 2.0, 0.5]), np.array([3, 3, 1]), np.array([0, 3])), shape=(1, 5))
    assert not X.has_canonical_format
    batch = nf.from_csr(X)
    model = nf.FM(5, k=3, keep_prob=1.0, dtype="float64", seed=0)
    model.params["w"][:] = np.arange(5.0)
    dense = X.toarray()                                               # SciPy's meaning: x_3 = 3, x_1 = 0.5
    V = model.params["V"]
    expect = dense @ model.params["w"] + 0.5 * (((dense @ V) ** 2).sum(1) - ((dense ** 2) @ (V ** 2)).sum(1))
    np.testing.assert_allclose(model.predict(batch), expect, rtol=1e-12)
    assert sorted(batch.idx[0][batch.val[0] != 0].tolist()) == [1, 3]


def test_run_that_diverges_before_any_epoch_saves_nothing(small, tmp_path):
    model = nf.NFM(small.train.n_features, k=4, layers=[4])
    hist = T.fit(model, small, optimizer="sgd", lr=1e6, epochs=3, log=None, history_path=tmp_path / "h.jsonl")
    assert hist.diverged and hist.best_epoch == 0 and not (tmp_path / "h.jsonl").exists()


# ------------------------------------------------------------------ interrupts, in a real process
def start_training(tmp, *extra):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    argv = [sys.executable, "-m", "nfm_numpy", "train", "--train-rows", "20000", "--epochs", "500",
            "--early-stop", "0", "--hidden-factor", "8", "--layers", "8", *map(str, extra)]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=as_in_a_terminal)


def wait_for(proc, prefix):
    """Read the child's output until a line starting with ``prefix`` (no clock: the machine may be busy)."""
    for line in proc.stdout:
        if line.startswith(prefix):
            return line
    raise AssertionError(f"the process ended before printing {prefix!r}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_after_an_epoch_keeps_the_best_weights(tmp, sig):
    save, hist = tmp / "m.npz", tmp / "h.jsonl"
    proc = start_training(tmp, "--save", save, "--history", hist)
    wait_for(proc, "epoch   2")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=600)     # a guard against a hang, not a speed limit
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"interrupted ({sig.name} " in err and "kept the weights of epoch" in err and f"saved {save}" in err
    records = [json.loads(line) for line in hist.read_text().splitlines()]
    assert len(records) >= 2
    model, _ = checkpoint.load(save)
    best = min(records, key=lambda r: r["valid"])
    split = D.synthetic(seed=0, noise=0.1)
    assert T.evaluate(model, split.valid)["rmse"] == pytest.approx(best["valid"], abs=1e-6)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_before_any_epoch_changes_nothing(tmp, sig):
    save = tmp / "good.npz"
    before = save.read_bytes()
    proc = start_training(tmp, "--save", save, "--train-rows", "80000", "--hidden-factor", "64", "--layers", "64",
                          "--batch-size", "8")
    wait_for(proc, "  total")                       # the model summary: training starts now
    proc.send_signal(sig)                           # before fit, or in its first epoch: either way nothing saved
    out, err = proc.communicate(timeout=600)     # a guard against a hang, not a speed limit
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "no epoch finished, nothing saved" in err or "nothing was written" in err
    assert save.read_bytes() == before


def test_no_traceback_without_debug_and_one_with_it(tmp):
    bad = write(tmp, "x.libfm", "1 0:x\n")
    argv = [sys.executable, "-m", "nfm_numpy", "predict", "--load", str(tmp / "good.npz"), "--file", str(bad)]
    quiet = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    loud = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, NFM_NUMPY_DEBUG="1"))
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr and "LibFMError" in loud.stderr


# ------------------------------------------------------------------ more of the class: found by an adversarial tester
def test_rmse_is_clipped_to_the_training_labels_not_to_the_scored_file(tmp, capsys):
    """A file whose labels are all equal used to score RMSE 0 (clipped to its own one-value range)."""
    f = write(tmp, "one.libfm", "-1 0:1 10:1 20:1\n")
    code, out, _ = run_cli(["evaluate", "--load", tmp / "good.npz", "--file", f], capsys)
    model, _ = checkpoint.load(tmp / "good.npz")
    assert model.label_range == (-1.0, 1.0)
    pred = model.predict(nf.make_batch(np.array([[0, 1, 2]]), np.ones((1, 3))))      # raw ids 0, 10, 20
    expect = abs(np.clip(float(pred[0]), -1, 1) + 1)
    rmse = float(out.splitlines()[0].split(": ")[1])
    assert code == 0 and rmse == pytest.approx(expect, abs=1e-4) and rmse > 0
    assert "auc: undefined (the labels hold one class)" in out


def test_a_plot_is_written_in_the_format_its_name_asks_for(tmp, capsys):
    assert run_cli(TRAIN_SMALL + ["--plot", tmp / "c.pdf"], capsys)[0] == 0
    assert (tmp / "c.pdf").read_bytes()[:4] == b"%PDF"


def test_a_gradient_check_with_a_step_too_small_cannot_pass():
    from nfm_numpy import gradcheck as G
    model = nf.NFM(40, k=4, layers=[4], activation="tanh", dtype="float64")
    report = G.check_model(model, G.random_problem(), h=1e-15)
    assert not report.ok and "too small" in report.invalid


def test_a_numeric_column_too_large_to_standardise(tmp, capsys):
    data = write(tmp, "n.csv", "a,age,y\n" + "".join(f"x{i % 3},{1e308 if i == 5 else i},{i % 2}\n" for i in range(40)))
    code, _, err = run_cli(["train", "--csv", data, "--label", "y", "--numeric", "age", "--categorical", "a",
                            "--epochs", "1"], capsys)
    assert_one_line_error(code, err, 2, r"column 'age' holds values too large to standardise")


def test_a_padded_file_larger_than_memory_is_refused_by_line(tmp, monkeypatch):
    from nfm_numpy import backend
    monkeypatch.setattr(backend, "host_memory", lambda: 10_000)
    f = write(tmp, "long.libfm", "1 0:1\n" * 50 + "1 " + " ".join(f"{i}:1" for i in range(200)) + "\n")
    with pytest.raises(D.LibFMError, match=r"long\.libfm, line 51: 200 entries, while half the rows have at most 1"):
        D.read_libfm(f)


def test_a_base_url_that_is_not_a_url(tmp, monkeypatch):
    monkeypatch.setenv("NFM_NUMPY_BASE_URL", "notaurl")
    with pytest.raises(E.OptionError, match=r"\$NFM_NUMPY_BASE_URL 'notaurl' is not a URL"):
        D.fetch("frappe", directory=tmp / "cache")


def test_predict_to_a_closed_stdout(tmp):
    f = write(tmp, "x.libfm", "1 0:1\n")
    r = subprocess.run(["bash", "-c",
     f"{sys.executable} -m nfm_numpy predict --load {tmp / 'good.npz'} --file {f} >&-"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1 and "standard output is closed" in r.stderr and "Traceback" not in r.stderr


def test_an_interrupt_wrapped_by_an_import_is_still_an_interrupt(monkeypatch, capsys):
    """Python 3.11 re-raises a Ctrl-C that lands in a class's __set_name__ (during an import) as a
    RuntimeError caused by it: exit 130 with the interrupt line, not 'internal error'."""
    from nfm_numpy import datasets

    def cut_short(*a, **kw):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise RuntimeError("Error calling __set_name__ on 'Field' instance") from e

    monkeypatch.setattr(datasets, "load", cut_short)
    assert cli.main(["train", "--epochs", "1"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted (SIGINT) while") and "internal error" not in err


