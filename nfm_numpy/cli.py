"""Command line: ``python -m nfm_numpy {train,evaluate,predict,gradcheck,tune} ...`` (``tune`` lives in
``nfm_numpy/tune.py``).

This module only parses options and calls the library. Switches take 0 or 1
(``--batch-norm 1``), as the original code's do. Errors and exit statuses
(README, "Errors and exit codes"): every error is one line on stderr naming
the problem and the option, file or line; exit status 2 for bad input or
usage, 1 for a run that failed, 130 for an interrupt; a traceback only with
``NFM_NUMPY_DEBUG=1``.
"""
from __future__ import annotations

import argparse
import errno
import os
import re
import signal
import sys
import threading

from . import errors as E
from .tune import add_tune_command

NFM_ONLY = ("layers", "activation", "pretrain")      # options that mean nothing for --model fm


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (the option and the problem), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# ------------------------------------------------------------------ option types
def _typed(parse, check):
    """An argparse type: ``parse`` the text, then ``check`` the value (errors name the option)."""
    def convert(text):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {parse.__doc__}, got {text!r}") from None
        try:
            return check(value)
        except E.InputError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return convert


_INT = re.compile(r"\s*[+-]?[0-9]+\s*\Z")


def _int(text):
    """an integer"""
    if not _INT.match(text):              # int() would also take '0_4' and '٤'
        raise ValueError(text)
    return int(text)


def _float(text):
    """a number"""
    if not E.NUMBER.match(text.strip()):      # float() would also take '1_0' and '٤'
        raise ValueError(text)
    return float(text)


def _list(item):
    def parse(text):
        body = text.strip()
        if body[:1] + body[-1:] in ("[]", "()"):
            body = body[1:-1]
        if not body.strip():
            return []                     # '' (or '[]'): no values, e.g. --layers '' for NFM-0
        values = body.split(",")
        if any(not v.strip() for v in values):
            raise ValueError(text)        # ',,' or '4,,4': an empty value is a typo, not a value
        return [item(v) for v in values]
    parse.__doc__ = f"a comma-separated list of {item.__doc__.split(' ', 1)[1]}s (e.g. 64,32)"
    return parse


def count(lo=1, hi=None):
    return _typed(_int, lambda v: E.integer(v, "", lo, hi))


def number(lo=None, lo_open=False, hi=None):
    return _typed(_float, lambda v: E.real(v, "", lo, hi, lo_open=lo_open))


def int_list(text):
    return _typed(_list(_int), lambda v: E.int_list(v, "", 1))(text)


def small_int_list(text):
    """Layer sizes of a gradient check: 1 to 4096 units each."""
    return _typed(_list(_int), lambda v: [E.integer(x, f"value {i + 1}", 1, 4096) for i, x in enumerate(v)])(text)


def prob_list(text):
    def check(v):
        if not v:
            raise E.OptionError("needs at least one keep probability")
        return E.float_list(v, "", E.probability)
    return _typed(_list(_float), check)(text)


def path(text):
    """A file or folder name. An empty name is refused, never read as "no file": ``--csv "$F"`` with an
    unset variable must not train on the built-in data instead."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"an empty path ({text!r}); is a shell variable unset?")
    return text


def column(text):
    """A column name (an empty name is refused: it names no column)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"an empty column name ({text!r})")
    return text.strip()


def switch(s):
    if s not in ("0", "1"):
        raise argparse.ArgumentTypeError(f"expected 0 or 1, got {s!r}")
    return s == "1"


# ------------------------------------------------------------------ gradcheck
def add_gradcheck(sub):
    p = sub.add_parser("gradcheck", help="check every hand-derived gradient against central differences",
                       description="Build a small random problem (ids repeated within and across rows, "
                                   "variable-length rows, real values) and compare the model's gradients "
                                   "with central differences, parameter by parameter.")
    p.add_argument("--model", choices=["fm", "nfm"], default="nfm")
    p.add_argument("--hidden-factor", type=count(1, 1024), default=5, help="embedding size k (default 5)")
    p.add_argument("--layers", type=small_int_list, default=None, help="hidden sizes, e.g. 32,16 (nfm; default 8)")
    p.add_argument("--keep-prob", type=prob_list, default=None,
                   help="keep probabilities, one per hidden layer then the Bi-Interaction's; "
                        "default 1 (no dropout). Masks are fixed during the check")
    p.add_argument("--batch-norm", type=switch, default=True, help="0 or 1 (default 1)")
    p.add_argument("--activation", choices=["relu", "sigmoid", "tanh", "identity"], default=None,
                   help="nfm: relu (default), sigmoid, tanh or identity")
    p.add_argument("--loss", choices=["square", "log"], default="square")
    p.add_argument("--l2", type=number(0.0), default=0.0, help="lambda of the embedding L2 term")
    p.add_argument("--impl", choices=["sparse", "gather"], default="sparse")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                   help="float64 (default); float32 shows why checks need double precision")
    p.add_argument("--rows", type=count(2, 10_000), default=8, help="batch size of the random problem (2 to 10,000)")
    p.add_argument("--features", type=count(4, 100_000), default=40, help="number of features n (4 to 100,000)")
    p.add_argument("--step", type=number(1e-12, hi=0.1), default=None,
                   help="difference step h of the 4th-order central difference (default 1e-4, 1e-5 with ReLU "
                        "hidden layers; 1e-2 in float32)")
    p.add_argument("--threshold", type=number(0.0, lo_open=True), default=None,
                   help="fail above this error (default 1e-7; 1e-6 with ReLU hidden layers; 1e-2 float32)")
    p.add_argument("--seed", type=count(0), default=0)
    p.set_defaults(run=run_gradcheck, defaults={"layers": [8], "activation": "relu"})


def run_gradcheck(a):
    from . import gradcheck as G
    from .model import FM, NFM

    check_model_options(a)
    layers = [] if a.model == "fm" else a.layers
    keep = a.keep_prob or [1.0] * (len(layers) + 1)
    batch = G.random_problem(a.features, a.rows, 6, a.loss, a.seed)

    def make(seed):
        if a.model == "fm":
            return FM(a.features, a.hidden_factor, keep, a.batch_norm, a.loss, a.l2, "float64", seed, impl=a.impl)
        return NFM(a.features, a.hidden_factor, layers, keep, a.batch_norm, a.activation, a.loss, a.l2,
                   "float64", seed, impl=a.impl)

    seed, model = G.relu_safe_seed(make, batch, range(a.seed, a.seed + 200))
    threshold = a.threshold if a.threshold is not None else \
        G.default_threshold(a.dtype, model.config["activation"], layers)
    h = a.step if a.step is not None else (None if a.dtype == "float64" else 1e-2)
    if a.dtype == "float32":
        report = G.float32_report(model, batch, seed, h, threshold)
    else:
        report = G.check_model(model, batch, seed=seed, h=h, threshold=threshold)
    print(model)
    print(f"random problem: {a.rows} rows x 6 entries, ids repeated within and across rows, padding, "
          f"real values; model seed {seed}")
    print(report)
    return 0 if report.ok else 1


# ---------------------------------------------------------------------- train
SYNTHETIC_NOISE = 0.1


def add_model_options(p):
    """Model options. NFM-only ones default to None, so that ``--model fm`` can refuse them."""
    p.add_argument("--model", choices=["fm", "nfm"], default="nfm")
    p.add_argument("--hidden-factor", type=count(), default=64, help="embedding size k (default 64)")
    p.add_argument("--layers", type=int_list, default=None,
                   help="nfm: hidden layer sizes, e.g. 64 or 64,32 ('' for none; default 64)")
    p.add_argument("--keep-prob", type=prob_list, default=None,
                   help="keep probabilities, one per hidden layer, the LAST for the Bi-Interaction layer, as "
                        "the original (default 0.8,0.5); fm: one value (default 0.5)")
    p.add_argument("--batch-norm", type=switch, default=None, help="0 or 1 (default: 1 for nfm, 0 for fm)")
    p.add_argument("--activation", choices=["relu", "sigmoid", "tanh", "identity"], default=None,
                   help="nfm: activation of the hidden layers (default relu)")
    p.add_argument("--loss", choices=["square", "log"], default="square",
                   help="square (regression) or log (binary; labels 0/1 or -1/1)")
    p.add_argument("--l2", type=number(0.0), default=None, help="lambda of the L2 term on the embeddings (default 0)")
    p.add_argument("--dtype", choices=["float32", "float64"], default=None,
                   help="float32 (default; the sampler of --solver mcmc computes in float64)")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--seed", type=count(0), default=2016, help="initial weights, dropout and shuffling (default 2016)")


def check_model_options(a):
    """``--model fm`` has no hidden layers: refuse the options that only NFM reads, then fill
    in the NFM defaults. Keep probabilities must match the layers."""
    from .backend import resolve
    if getattr(a, "backend", "numpy") != "numpy":
        resolve(a.backend)                   # fails now, not after the data is read, if CuPy is missing
    given = [n for n in NFM_ONLY if getattr(a, n, None) not in (None, False)]
    if a.model == "fm":
        if given:
            raise E.OptionError(f"--{given[0]} applies to --model nfm only (FM has no hidden layers)")
        if a.keep_prob is not None and len(a.keep_prob) != 1:
            raise E.OptionError(f"--keep-prob: --model fm takes one keep probability (the Bi-Interaction "
                                f"layer's), got {len(a.keep_prob)}")
        return
    for name, value in a.defaults.items():
        if getattr(a, name) is None:
            setattr(a, name, value)
    if a.keep_prob is not None and len(a.keep_prob) != len(a.layers) + 1:
        raise E.OptionError(f"--keep-prob needs {len(a.layers) + 1} values for --layers "
                            f"{','.join(map(str, a.layers)) or repr('')} (one per hidden layer, then the "
                            f"Bi-Interaction layer's), got {len(a.keep_prob)}")


SGD_DEFAULTS = {"optimizer": "adagrad", "lr": 0.05, "batch_size": 128, "early_stop": True, "eval_train": False,
                "l2": 0.0, "dtype": "float32"}
SGD_ONLY = ("optimizer", "lr", "batch_size", "early_stop", "eval_train", "l2", "epochs", "pretrain", "keep_prob",
            "batch_norm", "plot", "progress")
MCMC_ONLY = {"samples": 100, "burn_in": 20, "keep": 20}


def check_solver_options(a):
    """``--solver mcmc`` samples a Bayesian FM: it refuses what only SGD reads (a learning rate, dropout,
    epochs, ...) and SGD refuses the sampler's options; then each gets its defaults."""
    if a.solver == "mcmc":
        if a.model != "fm":
            raise E.OptionError("--solver mcmc samples a Bayesian FM: give --model fm (NFM's hidden layers are "
                                "trained by SGD)")
        given = [n for n in SGD_ONLY if getattr(a, n, None) is not None]
        if given:
            raise E.OptionError(f"--{given[0].replace('_', '-')} applies to --solver sgd; the sampler has no "
                                "learning rate, dropout or epochs (use --samples and --burn-in)")
        if a.dtype == "float32":
            raise E.OptionError("--dtype float32: the sampler computes in float64")
        a.dtype = "float64"
        for name, value in MCMC_ONLY.items():
            if getattr(a, name) is None:
                setattr(a, name, value)
        return
    given = [n for n in MCMC_ONLY if getattr(a, n, None) is not None]
    if given:
        raise E.OptionError(f"--{given[0].replace('_', '-')} applies to --solver mcmc")
    for name, value in SGD_DEFAULTS.items():
        if getattr(a, name) is None:
            setattr(a, name, value)


def add_data_options(p):
    p.add_argument("--dataset", choices=["synthetic", "frappe", "ml-tag"], default=None,
                   help="synthetic (built in, the default), or frappe / ml-tag (downloaded once into the cache, "
                        "$NFM_NUMPY_DATA or ~/.cache/nfm_numpy)")
    p.add_argument("--data-dir", type=path, default=None,
                   help="a folder with NAME.train.libfm, NAME.validation.libfm and NAME.test.libfm")


def names(text):
    """'a,b' -> ['a', 'b']; an empty list or an empty name in it ('a,,b') is refused."""
    out = [c.strip() for c in text.split(",")]
    if not any(out):
        raise argparse.ArgumentTypeError(f"expected column names C1,C2, got {text!r}")
    if not all(out):
        raise argparse.ArgumentTypeError(f"an empty column name in {text!r}")
    return out


def numeric_columns(text):
    """'price,rating:8' -> [('price', 0), ('rating', 8)] (0: standardised; N: N quantile buckets)."""
    out = []
    for item in names(text):
        name, colon, buckets = item.partition(":")
        if not name.strip() or (colon and not buckets.strip()):      # ':8' or 'price:' is a typo
            raise argparse.ArgumentTypeError(f"expected COLUMN or COLUMN:BUCKETS such as price or price:8, "
                                             f"got {item!r}")
        check = _typed(_int, lambda v, name=name: E.integer(v, f"buckets of {name!r}", 2))
        out.append((name.strip(), check(buckets) if colon else 0))
    return out


def by_column(pairs, option):
    """(column, value) pairs of a repeatable option as a dict; one column with two values is an error."""
    out = {}
    for name, value in pairs or ():
        if out.get(name, value) != value:
            raise E.OptionError(f"{option}: column {name!r} given twice, as {out[name]!r} and {value!r}")
        out[name] = value
    return out


def delimiter(text):
    """a single character, or 'tab'"""
    text = "\t" if text in ("tab", "\\t") else text
    if len(text) != 1:
        raise argparse.ArgumentTypeError(f"expected one character such as ',' or ';', or tab, got {text!r}")
    return text


def multi_column(text):
    name, sep, separator = text.partition(":")
    if not sep or not separator or not name.strip():
        raise argparse.ArgumentTypeError(f"expected COLUMN:SEPARATOR such as genres:'|', got {text!r}")
    return name, separator


def split_fractions(text):
    def check(v):
        if len(v) != 3:
            raise E.OptionError(f"needs three fractions (train, validation, test), got {len(v)}")
        return E.float_list(v, "", lambda x, n: E.real(x, n, 0.0, 1.0))
    return _typed(_list(_float), check)(text)


def add_csv_options(p):
    g = p.add_argument_group("your own data (a CSV or tab-separated file with a header row)")
    g.add_argument("--csv", type=path, default=None, help="the file; one example a row")
    g.add_argument("--label", type=column, default=None, help="the label column (required with --csv)")
    g.add_argument("--positive", default=None,
                   help="with --loss log: the label value that is the positive class (1), e.g. yes; every "
                        "other value is 0 (needed for text labels; 0/1 and -1/1 labels need none)")
    # the column options may be repeated: each adds its columns (--ignore a --ignore b = --ignore a,b)
    g.add_argument("--categorical", type=names, action="extend", default=None,
                   help="categorical columns C1,C2; '*' for every column no other option names (a column that "
                        "no option names is an error, never used silently)")
    g.add_argument("--numeric", type=numeric_columns, action="extend", default=None,
                   help="numeric columns C3,C4:8: standardised, or (':8') in 8 quantile buckets")
    g.add_argument("--multi-valued", type=multi_column, action="append", default=None, metavar="COL:SEP",
                   help="a multi-valued column and its separator, e.g. genres:'|' (may be repeated)")
    g.add_argument("--ignore", type=names, action="extend", default=None, help="columns to leave out, e.g. cnt")
    g.add_argument("--min-count", type=count(), default=None,
                   help="values seen fewer times in training go to the field's OOV feature (default 1)")
    g.add_argument("--missing", type=lambda t: t.split(","), action="extend", default=None,
                   help="more texts that mean 'no value' in numeric columns, besides '',NA,N/A,NaN,nan,null,"
                        "NULL,None")
    g.add_argument("--delimiter", type=delimiter, default=None,
                   help="one character, or tab; default: sniffed from the header")
    g.add_argument("--negatives", type=count(), default=None,
                   help="implicit feedback: every row is a positive; add N negatives per row (same user and "
                        "context, an item the user never used), as the NFM authors built Frappe")
    g.add_argument("--user-col", type=column, default=None, help="the user column (with --negatives)")
    g.add_argument("--item-col", type=column, default=None, help="the item column (with --negatives)")
    g.add_argument("--split", type=split_fractions, default=None,
                   help="train, validation, test fractions of the rows (seeded by --seed; default 0.7,0.2,0.1)")
    g.add_argument("--valid-csv", type=path, default=None,
                   help="validation rows in their own file (with --test-csv)")
    g.add_argument("--test-csv", type=path, default=None, help="test rows in their own file (with --valid-csv)")
    g.add_argument("--cache", type=path, default=None, metavar="DIR",
                   help="for files larger than memory: encode the rows in pieces into the folder DIR (two "
                        "passes over the files; three with --split) and train from there, a shard of rows at "
                        "a time; a folder made from the same files and options is reused")


CSV_ONLY = ("label", "positive", "categorical", "numeric", "multi_valued", "ignore", "min_count", "missing",
            "delimiter", "negatives", "user_col", "item_col", "split", "valid_csv", "test_csv", "cache")


def check_csv_options(a):
    """The CSV options apply to --csv only; --csv needs --label; --split or the two files."""
    if getattr(a, "csv", None) is None:
        given = [n for n in CSV_ONLY if getattr(a, n, None) is not None]
        if given:
            raise E.OptionError(f"--{given[0].replace('_', '-')} applies to --csv only")
        return
    if a.dataset is not None or a.data_dir is not None:
        raise E.OptionError("give one source of data: --csv, --dataset or --data-dir")
    if a.label is None:
        raise E.OptionError("--csv needs --label (the label column)")
    if a.positive is not None and a.loss != "log":
        raise E.OptionError("--positive names the positive class of --loss log; the square loss reads labels as "
                            "numbers")
    if a.split is not None and (a.valid_csv is not None or a.test_csv is not None):
        raise E.OptionError("give --split or --valid-csv/--test-csv, not both")
    if a.negatives is None and (a.user_col is not None or a.item_col is not None):
        raise E.OptionError("--user-col and --item-col go with --negatives")
    if getattr(a, "cache", None) is not None:
        why = ("--negatives (drawing them needs every user's rows at once)" if a.negatives is not None else
               "--solver mcmc (the sampler holds every row)" if getattr(a, "solver", None) == "mcmc" else
               "--train-rows (take the rows you want into a file of their own)"
               if getattr(a, "train_rows", None) is not None else "")
        if why:
            raise E.OptionError(f"--cache reads the rows a piece at a time; it does not go with {why}")


def add_threads_option(p):
    p.add_argument("--threads", type=count(1, 1024), default=None,
                   help="BLAS threads for the matrix products (default 1, or your OPENBLAS_NUM_THREADS / "
                        "OMP_NUM_THREADS: more threads only pay for large batches on an idle machine)")


def add_commands(sub):
    p = sub.add_parser("train", help="train FM or NFM (default: NFM on the built-in synthetic data)",
                       description="Train FM or NFM; print one line per epoch and, last, the test metric at the "
                                   "best validation epoch.")
    add_model_options(p)
    add_data_options(p)
    add_csv_options(p)
    p.add_argument("--optimizer", choices=["adagrad", "adam", "sgd", "momentum"], default=None,
                   help="default adagrad")
    p.add_argument("--lr", type=number(0.0, lo_open=True), default=None, help="learning rate (default 0.05)")
    p.add_argument("--batch-size", type=count(), default=None, help="default 128")
    p.add_argument("--epochs", type=count(), default=None,
                   help="epochs (the cap, with early stopping): default 200 on real data (the original's), "
                        "40 on synthetic")
    p.add_argument("--early-stop", type=switch, default=None,
                   help="1 (default): stop when the validation metric rose 4 epochs in a row")
    p.add_argument("--pretrain", type=switch, default=None,
                   help="nfm, 1: train an FM first and start NFM's w0, w and V from it (the paper's pretraining)")
    p.add_argument("--eval-train", type=switch, default=None,
                   help="1: evaluate the whole training set each epoch (the original does; slower). "
                        "0 (default): the train column is the running metric of the epoch's batches")
    p.add_argument("--train-rows", type=count(), default=None, help="use only the first N training rows")
    p.add_argument("--save", type=path, default=None, help="write the trained model to this .npz file")
    p.add_argument("--plot", type=path, default=None,
                   help="write the learning curves to this image file (.png, .pdf or .svg)")
    p.add_argument("--history", type=path, default=None, help="write one JSON line per epoch to this file")
    p.add_argument("--progress", type=switch, default=None, help="progress bar (default: on a terminal)")
    add_threads_option(p)
    g = p.add_argument_group("Bayesian FM (--solver mcmc): Gibbs sampling; no learning rate, regularisation or "
                             "epochs to tune (nfm_numpy.bayes)")
    g.add_argument("--solver", choices=["sgd", "mcmc"], default="sgd",
                   help="sgd (default): mini-batch training of FM or NFM; mcmc: a Bayesian FM (--model fm), "
                        "libFM's default solver")
    g.add_argument("--samples", type=count(1), default=None, help="mcmc: sweeps after burn-in (default 100)")
    g.add_argument("--burn-in", type=count(0), default=None, help="mcmc: sweeps discarded first (default 20)")
    g.add_argument("--keep", type=count(1), default=None,
                   help="mcmc: samples of the weights kept for --save, evenly spaced (default 20; each is the "
                        "size of w and V)")
    p.set_defaults(run=run_train, defaults={"layers": [64], "activation": "relu", "pretrain": False})

    for name, helptext in (("evaluate", "metrics of a saved model on a file (libFM or CSV) or a dataset's part"),
                           ("predict", "one prediction per line, in the file's row order, for a libFM or CSV file "
                                       "or a dataset's part")):
        p = sub.add_parser(name, help=helptext, description=helptext)
        p.add_argument("--load", type=path, required=True, help="a model saved with train --save")
        add_data_options(p)
        p.add_argument("--file", type=path, default=None,
                       help="a libFM file (its ids are the raw ids of the training data)")
        p.add_argument("--csv", type=path, default=None,
                       help="a CSV file with the training columns (for a model trained with --csv)"
                            + ("; the label column may be absent" if name == "predict" else ""))
        p.add_argument("--delimiter", type=delimiter, default=None,
                       help="of --csv: one character, or tab; default: sniffed")
        p.add_argument("--part", choices=["train", "validation", "test"], default=None,
                       help="with --data-dir or --dataset: which file (default test)")
        # features.CSV_UNSEEN and datasets.LIBFM_UNSEEN together, written out: --help imports no NumPy
        p.add_argument("--unseen", choices=["oov", "ignore", "error"], default=None,
                       help="values or ids the model never saw: oov (--csv default: the field's out-of-"
                            "vocabulary feature), ignore (libFM default: x = 0; counted on stderr) or error")
        p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
        if name == "predict":
            p.add_argument("--out", type=path, default=None,
                           help="write the predictions to this CSV file, with a header: the id column (row, the "
                                "row's number from 1, or --id-col), then prediction (square loss) or probability "
                                "(log loss); checked before anything is read, never one of the inputs. Default: "
                                "stdout, one prediction a line")
            p.add_argument("--id-col", type=column, default=None,
                           help="with --csv and --out: the column of --csv whose values identify each row in the "
                                "file (default: row numbers)")
        add_threads_option(p)
        p.set_defaults(run=run_evaluate if name == "evaluate" else run_predict)


def make_model(a, n_features):
    from .model import FM, NFM
    if a.model == "fm":
        keep = (a.keep_prob or [0.5])[0]
        bn = bool(a.batch_norm) if a.batch_norm is not None else False
        return FM(n_features, a.hidden_factor, keep, bn, a.loss, a.l2, a.dtype, a.seed, a.backend)
    keep = a.keep_prob or ([0.8] * len(a.layers) + [0.5])
    bn = True if a.batch_norm is None else a.batch_norm
    return NFM(n_features, a.hidden_factor, a.layers, keep, bn, a.activation, a.loss, a.l2, a.dtype, a.seed,
               a.backend)


def _source(a):
    """The data option given (at most one of --dataset, --data-dir, --csv and --file)."""
    given = [n for n in ("dataset", "data_dir", "csv", "file") if getattr(a, n, None) is not None]
    if len(given) > 1:
        raise E.OptionError(f"give one source of data, not --{given[0].replace('_', '-')} and "
                            f"--{given[1].replace('_', '-')}")
    return a.dataset if a.dataset is not None else ("synthetic" if not given else None)


def load_data(a, loss, progress=True, dtype=None):
    """The Split the options name, read in ``dtype`` (default: the model's, ``--dtype``)."""
    import numpy as np

    from . import datasets as D
    dtype = np.dtype(dtype or a.dtype)
    if getattr(a, "cache", None) is not None:
        from .features import MISSING
        from .ondisk import build_csv_cache
        split, a.encoder, notes = build_csv_cache(
            a.cache, a.csv, a.label, a.categorical, by_column(a.numeric, "--numeric"),
            by_column(a.multi_valued, "--multi-valued"), a.ignore or [], a.min_count or 1,
            MISSING + tuple(a.missing or ()), a.delimiter, a.split or (0.7, 0.2, 0.1), a.valid_csv, a.test_csv,
            loss, a.seed, dtype=dtype, positive=a.positive)
        print(a.encoder)
        for note in notes:
            print(note)
        return split
    if getattr(a, "csv", None) is not None:
        from .features import MISSING, load_csv_split
        split, a.encoder, notes = load_csv_split(
            a.csv, a.label, a.categorical, by_column(a.numeric, "--numeric"),
            by_column(a.multi_valued, "--multi-valued"), a.ignore or [], a.min_count or 1,
            MISSING + tuple(a.missing or ()), a.delimiter, a.negatives or 0, a.user_col, a.item_col,
            a.split or (0.7, 0.2, 0.1), a.valid_csv, a.test_csv, loss, a.seed, dtype=dtype, positive=a.positive)
        print(a.encoder)
        for note in notes:
            print(note)
        return split
    name = _source(a)
    if a.data_dir is not None:
        return D.load(data_dir=a.data_dir, loss=loss, dtype=dtype)
    if name == "synthetic":
        return D.load("synthetic", loss=loss, seed=0, noise=SYNTHETIC_NOISE, dtype=dtype)
    return D.load(name, loss=loss, progress=progress, dtype=dtype)


def input_files(a):
    """The data files a command reads (so that no output may overwrite one)."""
    from pathlib import Path
    files = [getattr(a, n, None) for n in ("file", "load", "csv", "valid_csv", "test_csv")]
    if getattr(a, "data_dir", None) is not None and Path(a.data_dir).is_dir():
        files += list(Path(a.data_dir).glob("*.libfm"))
    return {_resolved(f, "input") for f in files if f is not None}


def _resolved(path, what):
    """The absolute path with links followed; a loop of symbolic links is bad input naming the path."""
    from pathlib import Path
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError) as e:       # Python 3.11 raises RuntimeError for a loop
        raise E.InputError(f"{path}: cannot follow the {what} path ({e})") from None


def check_outputs(a, options=("save", "plot", "history")):
    """Every output path is writable, distinct, and not one of the inputs: checked before training."""
    from .outputs import check_output
    seen, inputs = {}, input_files(a)
    for name in options:
        path = getattr(a, name, None)
        if path is None:
            continue
        target = _resolved(check_output(path, f"--{name}"), f"--{name}")
        if name == "plot":
            from .report import image_format
            image_format(path)
        if target in inputs:
            raise E.OutputError(f"--{name} {path} is one of the input files; it will not be overwritten")
        if target in seen:
            raise E.OutputError(f"--{name} and --{seen[target]} name the same file {path}")
        seen[target] = name


def run_train(a):
    import statistics
    import time
    from pathlib import Path

    from . import checkpoint, train
    from .datasets import Split
    from .report import plot_history, text_curve

    check_model_options(a)
    check_solver_options(a)
    check_csv_options(a)
    check_outputs(a)
    t0 = time.perf_counter()
    phase("reading the data; nothing was written")
    split = load_data(a, a.loss)
    if a.train_rows is not None:
        if a.train_rows > len(split.train):
            print(f"note: --train-rows {a.train_rows} is more than the {len(split.train)} training rows: "
                  "all are used")
        split = Split(split.train.subset(a.train_rows), split.valid, split.test)
    print(f"data: {split.train} | {len(split.valid)} validation, {len(split.test)} test rows "
          f"[read in {time.perf_counter() - t0:.2f} s]")
    _refuse_one_valued_labels(split.train)
    if split.train.label_map and a.csv is None:
        print(split.train.label_map)
    # the built-in synthetic data has a known noise floor: the best achievable rmse
    synthetic = _source(a) == "synthetic"
    floor = SYNTHETIC_NOISE if synthetic and a.loss == "square" else None
    if floor is not None:
        print(f"noise floor: the best achievable test rmse is about {floor} (the label noise)")
    if a.solver == "mcmc":
        return run_mcmc(a, split)
    model = make_model(a, split.train.n_features)
    print(model)
    epochs = a.epochs or (40 if synthetic else 200)
    kw = dict(optimizer=a.optimizer, lr=a.lr, batch_size=a.batch_size, epochs=epochs, early_stop=a.early_stop,
              progress=a.progress, eval_train=a.eval_train, on_interrupt="return")   # we save, then exit 130
    phase("training (before the first epoch); nothing was written")
    if a.pretrain:
        fm_hist = train.pretrain_fm(model, split, **kw)
        if fm_hist.interrupted or not fm_hist.best_epoch:
            print(f"{'interrupted' if fm_hist.interrupted else 'error: FM pretraining diverged'} "
                  f"({fm_hist.stopped}); NFM was not trained, nothing saved", file=sys.stderr)
            return 130 if fm_hist.interrupted else 1
        print("training NFM:")
    hist = train.fit(model, split, history_path=a.history, **kw)
    best = hist.best
    saved = []
    if best is not None:                     # a run that finished no epoch never writes a model
        if a.save is not None:
            phase(f"saving {a.save}; the old file, if any, is as it was")
            extra = a.encoder.to_arrays() if a.csv is not None else {"raw_ids": split.train.raw_ids}
            checkpoint.save(model, a.save, extra)
            saved.append(a.save)
            print(f"saved {a.save} (the weights of epoch {hist.best_epoch}, the best validation epoch)")
        if a.plot is not None:
            phase(f"writing {a.plot}" + (f"; {a.save} was saved" if a.save is not None else ""))
            plot_history(hist, a.plot, f"{'FM' if a.model == 'fm' else 'NFM'} on "
                                       f"{_source(a) or a.data_dir or Path(a.csv).name}",
                         floor)
            print(f"wrote {a.plot}")
    kept = (f"kept the weights of epoch {hist.best_epoch}" + (f", saved {', '.join(saved)}" if saved else "")
            if best else "no epoch finished, nothing saved")
    if hist.interrupted:
        print(f"interrupted ({hist.stopped}); {kept}", file=sys.stderr)
        return 130
    if hist.diverged:
        print(f"error: training diverged ({hist.stopped}); {kept}. Try a smaller --lr", file=sys.stderr)
        return 1
    print(text_curve(hist, floor))
    print(f"{hist.stopped}; best validation epoch {hist.best_epoch} of {len(hist.epochs)} "
          f"(median epoch {statistics.median(hist.column('seconds')):.2f} s)")
    if a.loss == "square":
        if best.get("test_auc") is not None:          # only for labels of two values (e.g. Frappe's -1/1)
            print(f"test auc: {_metric(best['test_auc'])}")
        print(f"test rmse: {_metric(best['test'])}")
    else:
        print(f"test logloss: {_metric(best['test'])}")
        print(f"test auc: {_metric(best['test_auc'])}")
    return 0


def _refuse_one_valued_labels(train):
    """Training labels that hold one value leave nothing to learn, and every metric would look perfect
    (test rmse 0.0000 after clipping to the training range): bad input, said before training."""
    import numpy as np
    lo, hi = getattr(train, "label_range", None) or (np.min(train.y), np.max(train.y))     # (on disk: recorded)
    if lo == hi:
        raise E.DataError(f"{train.name}: every training label is {float(lo):g}: there is nothing to learn, "
                          "and every metric would look perfect; check the label column or the file")


def run_mcmc(a, split):
    """``train --solver mcmc``: a Bayesian FM by Gibbs sampling (nfm_numpy.bayes). One line a sweep;
    the test metric is that of the posterior mean of the predictions over the samples after burn-in."""
    import numpy as np

    from . import bayes, checkpoint, metrics as M
    from .data import binary_labels
    groups = None
    if a.csv is not None:                 # one prior group per field, as libFM's groups (-meta)
        groups = np.zeros(a.encoder.n_features, dtype=np.int64)
        for g, f in enumerate(a.encoder.fields):
            groups[f.offset:f.offset + f.size] = g
    task = "probit" if a.loss == "log" else "regression"
    print(f"Bayesian FM by Gibbs sampling: k={a.hidden_factor}, {a.burn_in} burn-in + {a.samples} sweeps, {task}, "
          f"{'one prior group per field' if groups is not None else 'one prior group'}")

    def line(rec):
        test = {k: v for k, v in rec.items() if k.startswith("test_")}
        print(f"sweep {rec['sweep']:4d}  train rmse {rec['train_rmse']:.4f}  noise precision {rec['alpha']:.3g}"
              + "".join(f"  {k.replace('_', ' ')} (posterior mean) {v:.4f}" for k, v in test.items())
              + ("  (burn-in)" if rec["sweep"] <= a.burn_in else ""))
    phase("sampling (nothing was written)")
    model = bayes.fit(split.train, split.test, k=a.hidden_factor, n_samples=a.samples, burn_in=a.burn_in, task=task,
                      groups=groups, keep=a.keep, seed=a.seed, on_sweep=line)
    y_train = split.train.y
    if task == "regression":
        model.label_range = (float(np.min(y_train)), float(np.max(y_train)))
    loss = "log" if task == "probit" else "square"
    if a.save is not None:
        phase(f"saving {a.save}; the old file, if any, is as it was")
        checkpoint.save(model, a.save, a.encoder.to_arrays() if a.csv is not None
                        else {"raw_ids": split.train.raw_ids})
        print(f"saved {a.save} ({model.n_kept} samples of the weights)")
    if a.history is not None:
        import json

        from .outputs import write_atomically
        text = "".join(json.dumps(rec) + "\n" for rec in model.trace)
        write_atomically(a.history, lambda f: f.write(text.encode()), "history")
    # test: the running posterior mean over every sample after burn-in (libFM's -test); validation: the
    # mean over the --keep kept samples, which is what a saved model gives evaluate and predict
    for name, part, pred in (("validation", split.valid, model.predict(split.valid.idx, split.valid.val)),
                             ("test", split.test, model.test_pred)):
        y = np.asarray(part.y, dtype=np.float64)
        if loss == "log":
            y = binary_labels(y, part.name)[0]
        for metric, value in M.evaluate(loss, y, np.asarray(pred), getattr(model, "label_range", None)
                                        if loss == "square" else None).items():
            print(f"{name} {metric}: {_metric(value)}")
    return 0


def _metric(value):
    """A metric as printed; AUC is undefined (NaN) when the scored labels hold one class."""
    return f"{value:.4f}" if value == value else "undefined (the labels hold one class)"


# -------------------------------------------------------------- evaluate, predict
def _part(a, model, extra):
    """The data to evaluate or predict, in the saved model's id space (never a map rebuilt from files:
    the same model on the same file gives the same numbers whatever else the folder holds)."""
    from . import datasets as D
    loss = _loss(model)
    raw_ids = extra.get("raw_ids")
    source = _source(a)
    if a.part is not None and (a.file is not None or a.csv is not None):
        raise E.OptionError("--part chooses a file of --data-dir or --dataset; --file and --csv name the file")
    part = a.part or "test"
    dtype = _dtype(model)                # the data in the model's own dtype
    if a.csv is not None:
        from .features import Encoder, read_csv_dataset
        if "encoder" not in extra:
            raise E.InputError(f"{a.load} was not trained with --csv (it holds no feature encoder); use --file "
                               "or --data-dir")
        data, n_unseen = read_csv_dataset(a.csv, Encoder.from_arrays(extra), loss, a.unseen or "oov",
                                          need_y=a.run is run_evaluate, delimiter=a.delimiter, dtype=dtype)
        if n_unseen:
            print(f"note: {n_unseen} cell{'s' if n_unseen > 1 else ''} of {a.csv} hold values never seen in "
                  f"training ({'the field' + chr(39) + 's OOV feature' if (a.unseen or 'oov') == 'oov' else 'x = 0'})",
                  file=sys.stderr)
        if data.label_map:
            print(f"note: {data.label_map}", file=sys.stderr)
        return data
    if a.unseen == "oov":
        raise E.OptionError("--unseen oov applies to --csv (libFM ids have no fields); use ignore or error")
    if a.delimiter is not None:
        raise E.OptionError("--delimiter applies to --csv only")
    if source == "synthetic":
        split = load_data(a, loss, progress=False, dtype=dtype)
        if split.train.n_features != model.config["n_features"]:
            raise E.InputError(f"the synthetic data has {split.train.n_features} features, the model "
                               f"{model.config['n_features']}: not the data it was trained on")
        return {"train": split.train, "validation": split.valid, "test": split.test}[part]
    if raw_ids is None:
        raise E.InputError(f"{a.load} holds no feature-id map, so it cannot read libFM files"
                           + (" (it was trained with --csv: use --csv)" if "encoder" in extra else ""))
    if a.file is not None:
        path = a.file
    elif a.data_dir is not None:
        path = D.find_split_files(a.data_dir)[1][("train", "validation", "test").index(part)]
    else:
        path = D.find_split_files(D.fetch(source, progress=False), source)[1][
            ("train", "validation", "test").index(part)]
    data, ignored = D.read_with_ids(path, raw_ids, loss, dtype=dtype, unseen=a.unseen or "ignore",
                                    need_y=a.run is run_evaluate)          # predict never reads labels
    if ignored:
        print(f"note: {ignored} feature id{'s' if ignored > 1 else ''} in {path} never seen in training, ignored "
              "(x = 0); --unseen error refuses them", file=sys.stderr)
    if data.label_map:
        print(f"note: {data.label_map}", file=sys.stderr)
    return data


def _loss(model):
    """The loss a saved model was trained with: a Bayesian FM's probit task scores as the log loss."""
    if model.config.get("kind") == "bayes_fm":
        return "log" if model.config["task"] == "probit" else "square"
    return model.config["loss"]


def _dtype(model):
    return model.config.get("dtype", "float64")          # a Bayesian FM computes in float64


def _predictions(model, data):
    """Host predictions for a dataset; non-finite ones (an overflow) are an error, never printed."""
    import numpy as np

    from . import backend as B
    from .train import predictions
    if model.config.get("kind") == "bayes_fm":             # the posterior mean over the kept samples
        pred = np.asarray(B.to_numpy(model.predict(data.idx, data.val)), dtype=np.float64)
    else:
        pred = predictions(model, data)
    bad = ~np.isfinite(pred)
    if bad.any():
        first = int(np.argmax(bad))
        raise E.RunFailed(f"{int(bad.sum())} of {pred.size} predictions on {data.name} are not finite, the first for "
                          f"data row {first + 1} (largest |x| in it {float(np.abs(data.val[first]).max()):.3g}): the "
                          "values of the input overflow this model")
    return pred


def run_evaluate(a):
    from . import checkpoint, metrics as M
    model, extra = checkpoint.load(a.load, a.backend)
    data = _part(a, model, extra)
    pred, loss = _predictions(model, data), _loss(model)
    clip = getattr(model, "label_range", None) if loss == "square" else None
    for name, value in M.evaluate(loss, data.y, pred, clip).items():
        print(f"{data.name if (a.file is not None or a.csv is not None) else a.part or 'test'} {name}: "
              f"{_metric(value)}")
    return 0


def _csv_with_ids(a, model, extra):
    """predict --csv --id-col: the rows and their ids, from one read of the file."""
    from .features import Encoder
    from .predictions_file import read_csv_for_prediction
    if a.part is not None:
        raise E.OptionError("--part chooses a file of --data-dir or --dataset; --file and --csv name the file")
    if "encoder" not in extra:
        raise E.InputError(f"{a.load} was not trained with --csv (it holds no feature encoder); use --file "
                           "or --data-dir")
    data, n_unseen, ids, _ = read_csv_for_prediction(a.csv, Encoder.from_arrays(extra), a.unseen or "oov",
                                                     a.delimiter, _dtype(model), a.id_col)
    if n_unseen:
        print(f"note: {n_unseen} cell{'s' if n_unseen > 1 else ''} of {a.csv} hold values never seen in "
              f"training ({'the field' + chr(39) + 's OOV feature' if (a.unseen or 'oov') == 'oov' else 'x = 0'})",
              file=sys.stderr)
    return data, ids


def run_predict(a):
    import numpy as np

    from . import checkpoint
    if a.id_col is not None and a.csv is None:
        raise E.OptionError("--id-col names a column of --csv; other inputs are identified by row number")
    if a.id_col is not None and a.out is None:
        raise E.OptionError("--id-col goes with --out (stdout holds one prediction a line, in row order)")
    if a.out is not None:
        check_outputs(a, ("out",))           # before anything is read: a bad path costs nothing
    model, extra = checkpoint.load(a.load, a.backend)
    if a.id_col is not None:
        data, ids = _csv_with_ids(a, model, extra)
    else:
        data, ids = _part(a, model, extra), None
    pred = _predictions(model, data)
    if a.out is not None:
        from .predictions_file import value_column, write_predictions
        write_predictions(a.out, pred, ids, a.id_col or "row", _loss(model), "--out")
        print(f"wrote {a.out}: {pred.size} rows ({a.id_col or 'row'}, {value_column(model.config['loss'])})")
        return 0
    if sys.stdout is None or sys.stdout.closed:
        raise E.RunFailed("standard output is closed: nowhere to write the predictions")
    np.savetxt(sys.stdout, pred, fmt="%.6g")
    return 0


# ----------------------------------------------------------------------- main
def build_parser():
    parser = Parser(prog="python -m nfm_numpy", description="Neural Factorization Machines in NumPy / CuPy.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    add_gradcheck(sub)
    add_tune_command(sub)
    return parser


def _terminate(signum, frame):
    raise E.Interrupted(signal.Signals(signum).name)


def _signal_name(e):
    """The signal an interrupt names (``E.Interrupted("SIGTERM")``), SIGINT for a plain Ctrl-C.
    Formats the text of the exception, never the exception object (``interrupted ()``)."""
    found = re.search(r"\bSIG[A-Z]+\b", str(e))        # an interrupt re-raised inside a codec wraps its text
    return found.group(0) if found else "SIGINT"


def _message(e):
    """One line for an exception: OS errors with their path, others as they are."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    return str(e).replace("\n", " ") or type(e).__name__


def _interrupt_in(e):
    """The KeyboardInterrupt behind ``e``, if any. A Ctrl-C that lands inside an import can reach us
    wrapped (Python 3.11 re-raises an error in a class's ``__set_name__`` as a RuntimeError whose
    cause is the interrupt), and it is still an interrupt, not a bug."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


_PHASE = ["starting"]            # what the command is doing, for the message of an interrupt


def phase(text):
    _PHASE[0] = text


def main(argv=None):
    """Run one command; returns its exit status (2 bad input, 1 failed run, 130 interrupt)."""
    debug = os.environ.get("NFM_NUMPY_DEBUG") == "1"
    try:
        a = build_parser().parse_args(argv)
    except SystemExit as e:                  # --help (0) or a usage error (2), already printed
        return e.code
    except KeyboardInterrupt as e:
        print(f"interrupted ({_signal_name(e)}) while starting; nothing was done", file=sys.stderr)
        return 130
    previous = {}
    try:
        # SIGTERM, SIGHUP (a closed terminal) and SIGQUIT stop a command as Ctrl-C does: files being
        # written are cleaned up, training saves its best weights; a signal ignored at start stays
        # ignored. (Inside the try: an interrupt from here on is one line and exit 130.)
        if threading.current_thread() is threading.main_thread():
            for name in ("SIGTERM", "SIGHUP", "SIGQUIT"):
                sig = getattr(signal, name, None)
                if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
                    previous[sig] = signal.signal(sig, _terminate)
        phase(f"running {a.command}")
        import warnings

        import numpy as np
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)    # overflow is caught where it matters: not finite
            from .threads import blas_threads
            with blas_threads(getattr(a, "threads", None)):
                code = a.run(a)
            sys.stdout.flush()
        return code
    except KeyboardInterrupt as e:
        if debug:
            raise
        print(f"interrupted ({_signal_name(e)}) while {_PHASE[0]}", file=sys.stderr)
        return 130
    except BrokenPipeError:                  # e.g. predict ... | head: the reader left, stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:
        if debug:
            raise
        stop = _interrupt_in(e)
        if stop is not None:
            print(f"interrupted ({_signal_name(stop)}) while {_PHASE[0]}", file=sys.stderr)
            return 130
        if isinstance(e, OSError) and e.filename is None and e.errno in (errno.ENOSPC, errno.EBADF, errno.EIO):
            print(f"error: could not write the output ({e.strerror})", file=sys.stderr)
            return 1
        if isinstance(e, (E.InputError, OSError, ValueError, TypeError)):
            print(f"error: {_message(e)}", file=sys.stderr)
            return 2
        if isinstance(e, E.RunFailed):
            print(f"error: {_message(e)}", file=sys.stderr)
            return 1
        if isinstance(e, MemoryError):
            print("error: out of memory: the data or the model needs more memory than this machine has "
                  "(for train: a smaller --batch-size, --hidden-factor or --train-rows)", file=sys.stderr)
            return 1
        print(f"error: internal error ({type(e).__name__}: {_message(e)}); this is a bug, please report it "
              "(NFM_NUMPY_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


if __name__ == "__main__":      # pragma: no cover
    sys.exit(main())
