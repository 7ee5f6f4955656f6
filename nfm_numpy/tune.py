"""``python -m nfm_numpy tune``: a budgeted hyper-parameter search for FM or NFM (issue 17, part 2).

The search logic is Optuna's (an optional extra: ``pip install optuna``), not ours: its TPE sampler
proposes the settings of each trial (learning rate and L2 on a log scale, keep probabilities, the
embedding size k and, for NFM, the hidden layers), and a pruner (successive halving by default, or
Hyperband, or the median rule) discards a trial early when its validation metric after an epoch is
worse than the trials before it at the same epoch. This module only trains each trial with
``train.fit`` (early stopping on the validation split), reports the validation metric of every epoch
to Optuna through ``on_epoch``, and prints a line per trial and a leaderboard.

The best model is the one with the lowest validation metric over every trial that finished an
epoch, pruned ones included (a pruned trial's model holds the weights of its best epoch, like any
other): it is *kept*, never retrained, so the saved file scores exactly the reported metric.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

from . import cli, errors as E

# train's options for what tune searches, and the option that sets the range searched instead
SEARCHED = {"--lr": "--lr-range", "--l2": "--l2-range", "--keep-prob": "--keep-range",
            "--hidden-factor": "--hidden-factors", "--layers": "--layer-choices"}
PRUNERS = ("halving", "hyperband", "median", "none")
DEFAULT_LAYERS = "64;128;64,32;''"          # NFM's choices of hidden layers ('' : NFM-0, no hidden layer)


# ------------------------------------------------------------------ option types
def _range(lo_bound, hi_bound=None):
    """'LO,HI' -> (LO, HI), both > lo_bound and <= hi_bound (if given), LO <= HI."""
    def parse(text):
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 2 or not all(parts):
            raise argparse.ArgumentTypeError(f"expected two numbers LO,HI such as 0.001,0.3, got {text!r}")
        try:
            lo, hi = (cli.number(lo_bound, lo_open=True, hi=hi_bound)(p) for p in parts)
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"{e} (in {text!r})") from None
        if lo > hi:
            raise argparse.ArgumentTypeError(f"LO must not exceed HI, got {text!r}")
        return lo, hi
    return parse


def _layer_choices(text):
    """'64;128;64,32;' -> [[64], [128], [64, 32], []]: each choice a comma-separated list of sizes."""
    out = []
    for item in text.split(";"):
        item = item.strip()
        if item in ("''", '""', ""):
            out.append([])
            continue
        try:
            out.append(cli.int_list(item))
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"{e} (choice {item!r} of {text!r})") from None
    if len({tuple(c) for c in out}) != len(out):
        raise argparse.ArgumentTypeError(f"a choice is given twice in {text!r}")
    return out


def _ks(text):
    ks = cli.int_list(text)
    if not ks:
        raise argparse.ArgumentTypeError("needs at least one embedding size")
    if len(set(ks)) != len(ks):
        raise argparse.ArgumentTypeError(f"a size is given twice in {text!r}")
    return ks


# ------------------------------------------------------------------ the command
def add_tune_command(sub):
    p = sub.add_parser("tune", help="search lr, L2, keep probabilities, k and layers under a budget (needs optuna)",
                       description="A budgeted search over the learning rate, L2, keep probabilities, the "
                                   "embedding size k and (NFM) the hidden layers: Optuna's TPE sampler proposes "
                                   "each trial's settings, each trial trains with early stopping on the validation "
                                   "split, and a pruner stops trials whose validation metric falls behind. One "
                                   "line per trial, a leaderboard at the end; --save keeps the best trial's model "
                                   "(never retrained). Needs optuna: pip install optuna.")
    p.add_argument("--model", choices=["fm", "nfm"], default="nfm")
    p.add_argument("--loss", choices=["square", "log"], default="square",
                   help="square (regression) or log (binary; labels 0/1 or -1/1)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--seed", type=cli.count(0), default=2016,
                   help="the sampler's seed, and every trial's initial weights, dropout and shuffling (default 2016)")
    cli.add_data_options(p)
    cli.add_csv_options(p)
    g = p.add_argument_group("the budget (give --trials, --minutes or both; the search stops at the first reached)")
    g.add_argument("--trials", type=cli.count(1), default=None, help="the number of trials")
    g.add_argument("--minutes", type=cli.number(0.0, lo_open=True), default=None,
                   help="wall-clock minutes; no trial starts after they ran out (the one running finishes)")
    g = p.add_argument_group("the search space")
    g.add_argument("--lr-range", type=_range(0.0), default=(0.005, 0.5),
                   help="learning rate, sampled on a log scale (default 0.005,0.5)")
    g.add_argument("--l2-range", type=_range(0.0), default=(1e-7, 1e-2),
                   help="lambda of the L2 term on the embeddings, log scale (default 1e-7,1e-2)")
    g.add_argument("--keep-range", type=_range(0.0, 1.0), default=(0.3, 1.0),
                   help="keep probabilities of the Bi-Interaction layer and (nfm) of the hidden layers "
                        "(default 0.3,1)")
    g.add_argument("--hidden-factors", type=_ks, default=[16, 32, 64],
                   help="the embedding sizes k to choose from (default 16,32,64)")
    g.add_argument("--layer-choices", type=_layer_choices, default=None,
                   help="nfm: the hidden layers to choose from, separated by ';', '' for none "
                        f"(default {DEFAULT_LAYERS})")
    g = p.add_argument_group("each trial")
    g.add_argument("--optimizer", choices=["adagrad", "adam", "sgd", "momentum"], default="adagrad")
    g.add_argument("--batch-size", type=cli.count(), default=128, help="default 128")
    g.add_argument("--epochs", type=cli.count(), default=None,
                   help="the cap per trial, with early stopping: default 40 on synthetic data, 100 otherwise")
    g.add_argument("--patience", type=cli.count(), default=4,
                   help="early stop when the validation metric rose this many epochs in a row (default 4)")
    g.add_argument("--pruner", choices=PRUNERS, default="halving",
                   help="halving (default: asynchronous successive halving), hyperband, median, or none")
    g.add_argument("--train-rows", type=cli.count(), default=None, help="use only the first N training rows")
    g = p.add_argument_group("outputs")
    g.add_argument("--save", type=cli.path, default=None, help="write the best trial's model to this .npz file")
    g.add_argument("--history", type=cli.path, default=None,
                   help="write one JSON line per trial, then one for the best, to this file")
    cli.add_threads_option(p)
    for option in SEARCHED:            # train's fixed settings: refused with a pointer to the range searched
        p.add_argument(option, dest="fixed_" + option[2:].replace("-", "_"), default=None, help=argparse.SUPPRESS)
    p.set_defaults(run=run_tune)


def import_optuna():
    """Optuna, or one line saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise E.OptionError("tune needs Optuna (an optional extra): pip install optuna, or pip install "
                            "'nfm-numpy[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


def check_tune_options(a):
    for option, instead in SEARCHED.items():
        if getattr(a, "fixed_" + option[2:].replace("-", "_")) is not None:
            raise E.OptionError(f"{option}: tune searches it; give the range to search with {instead}")
    if a.trials is None and a.minutes is None:
        raise E.OptionError("give a budget: --trials N, --minutes M or both")
    if a.model == "fm" and a.layer_choices is not None:
        raise E.OptionError("--layer-choices applies to --model nfm only (FM has no hidden layers)")
    if a.model == "nfm" and a.layer_choices is None:
        a.layer_choices = _layer_choices(DEFAULT_LAYERS)
    if a.backend != "numpy":
        from .backend import resolve
        resolve(a.backend)
    cli.check_csv_options(a)
    cli.check_outputs(a, ("save", "history"))


def make_pruner(optuna, name):
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def suggest(trial, a):
    """One trial's settings, from the sampler."""
    s = {"lr": trial.suggest_float("lr", *a.lr_range, log=True),
         "l2": trial.suggest_float("l2", *a.l2_range, log=True),
         "k": trial.suggest_categorical("k", a.hidden_factors)}
    if a.model == "fm":
        s["keep_prob"] = [trial.suggest_float("keep_bi", *a.keep_range)]
        return s
    names = [",".join(map(str, c)) for c in a.layer_choices]
    chosen = trial.suggest_categorical("layers", names)
    s["layers"] = a.layer_choices[names.index(chosen)]
    keep_bi = trial.suggest_float("keep_bi", *a.keep_range)
    keep_hidden = trial.suggest_float("keep_hidden", *a.keep_range) if s["layers"] else None
    s["keep_prob"] = [keep_hidden] * len(s["layers"]) + [keep_bi]
    return s


def settings_text(s):
    text = f"lr={s['lr']:.3g} l2={s['l2']:.2g} k={s['k']}"
    if "layers" in s:
        text += f" layers={','.join(map(str, s['layers'])) or repr('')}"
    return text + f" keep={','.join(f'{p:.2f}' for p in s['keep_prob'])}"


def model_args(a, s):
    """The namespace cli.make_model reads, for one trial's settings."""
    return argparse.Namespace(model=a.model, hidden_factor=s["k"], keep_prob=s["keep_prob"], batch_norm=None,
                              loss=a.loss, l2=s["l2"], dtype=a.dtype, seed=a.seed, backend=a.backend,
                              layers=s.get("layers"), activation="relu")


def run_tune(a):
    from . import checkpoint, train
    from .datasets import Split

    check_tune_options(a)
    optuna = import_optuna()
    cli.phase("reading the data; nothing was written")
    split = cli.load_data(a, a.loss)
    if a.train_rows is not None:
        split = Split(split.train.subset(min(a.train_rows, len(split.train))), split.valid, split.test)
    print(f"data: {split.train} | {len(split.valid)} validation, {len(split.test)} test rows")
    cli._refuse_one_valued_labels(split.train)
    synthetic = cli._source(a) == "synthetic"
    epochs = a.epochs or (40 if synthetic else 100)
    metric = "rmse" if a.loss == "square" else "logloss"
    budget = " and ".join(([f"{a.trials} trials"] if a.trials else []) + ([f"{a.minutes:g} minutes"]
                                                                           if a.minutes else []))
    print(f"searching {a.model.upper()} ({budget}; up to {epochs} epochs a trial, early stop after {a.patience} "
          f"rising epochs, pruner {a.pruner}); the validation {metric} ranks the trials")

    results = []                       # one dict per trial that ran
    best = {"value": math.inf, "model": None, "result": None}
    stop = {"why": None}

    def objective(trial):
        s = suggest(trial, a)
        model = cli.make_model(model_args(a, s), split.train.n_features)
        t0 = time.perf_counter()
        records = []                   # fit's records, kept here too: a pruned trial's are lost with the exception

        def on_epoch(rec, is_best):
            records.append(rec)
            trial.report(rec["valid"], rec["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        pruned = False
        try:
            hist = train.fit(model, split, optimizer=a.optimizer, lr=s["lr"], batch_size=a.batch_size,
                             epochs=epochs, early_stop=True, patience=a.patience, progress=False, log=None,
                             on_epoch=on_epoch, on_interrupt="return", threads=a.threads)
        except optuna.TrialPruned:
            pruned, hist = True, None
        # the model holds the weights of its best epoch (fit restores them, pruned or not)
        valid = [r["valid"] for r in records]
        value = min(valid) if valid else math.inf
        i_best = valid.index(value) if valid else None
        r = {"trial": trial.number, "settings": s, "valid": value if valid else None,
             "test": records[i_best]["test"] if valid else None,
             "best_epoch": records[i_best]["epoch"] if valid else 0, "epochs": len(records),
             "pruned": pruned, "seconds": round(time.perf_counter() - t0, 3),
             "outcome": "pruned" if pruned else hist.outcome}
        results.append(r)
        print(trial_line(r, metric), flush=True)
        if valid and value < best["value"]:
            best.update(value=value, model=model, result=r)
        if hist is not None and hist.interrupted:
            stop["why"] = f"interrupted ({hist.stopped})"
            trial.study.stop()
        if pruned:
            raise optuna.TrialPruned()
        if not valid:
            return math.nan                # Optuna marks the trial failed (it diverged before any epoch)
        return value

    sampler = optuna.samplers.TPESampler(seed=a.seed)
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=make_pruner(optuna, a.pruner))
    cli.phase("searching; nothing was written")
    t_start = time.perf_counter()
    study.optimize(objective, n_trials=a.trials,
                   timeout=None if a.minutes is None else a.minutes * 60, catch=())
    elapsed = time.perf_counter() - t_start
    if stop["why"] is None:
        if a.trials is not None and len(results) >= a.trials:
            stop["why"] = f"ran the {a.trials} trials of --trials"
        else:
            stop["why"] = f"the {a.minutes:g}-minute budget (--minutes) ran out after {len(results)} " \
                          f"trial{'s' if len(results) != 1 else ''}"
    print(f"search stopped: {stop['why']} [{elapsed:.1f} s]")
    print(leaderboard(results, metric))
    r = best["result"]
    if r is None:
        why = "interrupted before any trial finished an epoch" if stop["why"].startswith("interrupted") else \
            "no trial finished an epoch (each diverged: try a smaller --lr-range)"
        print(f"{'' if why.startswith('interrupted') else 'error: '}{why}; nothing saved", file=sys.stderr)
        return 130 if why.startswith("interrupted") else 1
    print(f"best: trial {r['trial']}, {settings_text(r['settings'])}: validation {metric} {r['valid']:.4f} "
          f"(epoch {r['best_epoch']}), test {metric} {r['test']:.4f}")
    if a.save is not None:
        cli.phase(f"saving {a.save}; the old file, if any, is as it was")
        extra = a.encoder.to_arrays() if a.csv is not None else {"raw_ids": split.train.raw_ids}
        checkpoint.save(best["model"], a.save, extra)
        print(f"saved {a.save} (the model of trial {r['trial']} as it was scored, at its best validation epoch; "
              "not retrained)")
    if a.history is not None:
        from .outputs import write_atomically
        lines = [json.dumps(x) for x in results] + [json.dumps({"best": r, "optimizer": a.optimizer,
                                                                "batch_size": a.batch_size})]
        text = "".join(line + "\n" for line in lines)
        write_atomically(a.history, lambda f: f.write(text.encode()), "history")
    if stop["why"].startswith("interrupted"):
        print(f"{stop['why']}; the search stopped", file=sys.stderr)
        return 130
    return 0


def trial_line(r, metric):
    score = f"valid {metric} {r['valid']:.4f} (epoch {r['best_epoch']} of {r['epochs']})" if r["valid"] is not None \
        else "no epoch finished"
    return (f"trial {r['trial']:3d}  {settings_text(r['settings'])}  {score}  "
            f"{'pruned' if r['pruned'] else r['outcome'].replace('_', ' ')}  [{r['seconds']:.1f} s]")


def leaderboard(results, metric, top=5):
    ranked = sorted((r for r in results if r["valid"] is not None), key=lambda r: r["valid"])[:top]
    lines = [f"leaderboard (top {min(top, len(ranked))} of {len(results)} trials, by validation {metric}):"]
    for place, r in enumerate(ranked, 1):
        lines.append(f"{place:2d}. trial {r['trial']:3d}  valid {metric} {r['valid']:.4f}  test {metric} "
                     f"{r['test']:.4f}  {settings_text(r['settings'])}{'  (pruned)' if r['pruned'] else ''}")
    return "\n".join(lines)
