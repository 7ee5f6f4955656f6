"""Command line: ``python -m nfm_numpy {train,evaluate,predict,gradcheck} ...``.

Switches take 0 or 1 (``--batch-norm 1``), as the original code's do.
"""
from __future__ import annotations

import argparse
import sys


def int_list(s):
    s = s.strip("[]() ")
    return [int(v) for v in s.split(",") if v.strip()] if s else []


def float_list(s):
    s = s.strip("[]() ")
    return [float(v) for v in s.split(",") if v.strip()] if s else []


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
    p.add_argument("--hidden-factor", type=int, default=5, help="embedding size k (default 5)")
    p.add_argument("--layers", type=int_list, default=[8], help="hidden sizes, e.g. 32,16 (nfm; default 8)")
    p.add_argument("--keep-prob", type=float_list, default=None,
                   help="keep probabilities, one per hidden layer then the Bi-Interaction's; "
                        "default 1 (no dropout). Masks are fixed during the check")
    p.add_argument("--batch-norm", type=switch, default=True, help="0 or 1 (default 1)")
    p.add_argument("--activation", default="relu", help="relu, sigmoid, tanh or identity")
    p.add_argument("--loss", default="square", help="square or log")
    p.add_argument("--l2", type=float, default=0.0, help="lambda of the embedding L2 term")
    p.add_argument("--impl", choices=["sparse", "gather"], default="sparse")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                   help="float64 (default); float32 shows why checks need double precision")
    p.add_argument("--rows", type=int, default=8, help="batch size of the random problem")
    p.add_argument("--features", type=int, default=40, help="number of features n")
    p.add_argument("--step", type=float, default=None,
                   help="difference step h of the 4th-order central difference (default 1e-4, 1e-5 with ReLU "
                        "hidden layers; 1e-2 in float32)")
    p.add_argument("--threshold", type=float, default=None,
                   help="fail above this error (default 1e-7; 1e-6 with ReLU hidden layers; 1e-2 float32)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run_gradcheck)


def run_gradcheck(a):
    from . import gradcheck as G
    from .model import FM, NFM

    layers = [] if a.model == "fm" else a.layers
    keep = a.keep_prob or [1.0] * (len(layers) + 1)
    batch = G.random_problem(a.features, a.rows, 6, a.loss, a.seed)

    def make(seed):
        if a.model == "fm":
            return FM(a.features, a.hidden_factor, keep[-1], a.batch_norm, a.loss, a.l2, "float64", seed, impl=a.impl)
        return NFM(a.features, a.hidden_factor, layers, keep, a.batch_norm, a.activation, a.loss, a.l2,
                   "float64", seed, impl=a.impl)

    seed, model = G.relu_safe_seed(make, batch, range(a.seed, a.seed + 200))
    threshold = a.threshold or G.default_threshold(a.dtype, model.config["activation"], layers)
    h = a.step or (None if a.dtype == "float64" else 1e-2)
    if a.dtype == "float32":
        report = _float32_report(model, batch, seed, h, threshold)
    else:
        report = G.check_model(model, batch, seed=seed, h=h, threshold=threshold)
    print(model)
    print(f"random problem: {a.rows} rows x 6 entries, ids repeated within and across rows, padding, "
          f"real values; model seed {seed}")
    print(report)
    return 0 if report.ok else 1


def _float32_report(model64, batch, seed, h, threshold):
    """Differences of a float32 copy of the model, against its float32 analytic gradients."""
    import numpy as np

    from . import gradcheck as G
    from .data import Batch
    from .model import build

    cfg = dict(model64.config, dtype="float32")
    m = build(cfg)
    b = Batch(batch.idx, batch.val.astype(np.float32), batch.y.astype(np.float32), True)
    _, grads = m.loss(b, rng=G.B.Random(seed, np), input_grad=False)
    report = G.Report(threshold=threshold, zero_floor=1e-3)

    def f():
        return float(m.loss(b, rng=G.B.Random(seed, np))[0])

    for name, a in m.params.items():
        g = grads[name]
        dense = g.to_dense(a.shape[0]) if isinstance(g, G.RowGrad) else g
        report.add(name, dense, G.numerical_gradient(f, a, h, order=4))
    return report


# ---------------------------------------------------------------------- train
SYNTHETIC_NOISE = 0.1


def add_model_options(p):
    p.add_argument("--model", choices=["fm", "nfm"], default="nfm")
    p.add_argument("--hidden-factor", type=int, default=64, help="embedding size k (default 64)")
    p.add_argument("--layers", type=int_list, default=[64], help="hidden layer sizes (nfm), e.g. 64 or 64,32")
    p.add_argument("--keep-prob", type=float_list, default=None,
                   help="keep probabilities, one per hidden layer, the LAST for the Bi-Interaction layer, as "
                        "the original (default 0.8,0.5; fm: 0.5)")
    p.add_argument("--batch-norm", type=switch, default=None, help="0 or 1 (default: 1 for nfm, 0 for fm)")
    p.add_argument("--activation", default="relu", help="relu, sigmoid, tanh or identity")
    p.add_argument("--loss", default="square", help="square (regression) or log (binary)")
    p.add_argument("--l2", type=float, default=0.0, help="lambda of the L2 term on the embeddings (default 0)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--seed", type=int, default=2016, help="initial weights, dropout and shuffling (default 2016)")


def add_data_options(p):
    p.add_argument("--dataset", choices=["synthetic", "frappe", "ml-tag"], default="synthetic",
                   help="synthetic (built in, default), or frappe / ml-tag (downloaded once into the cache, "
                        "$NFM_NUMPY_DATA or ~/.cache/nfm_numpy)")
    p.add_argument("--data-dir", default=None,
                   help="a folder with NAME.train.libfm, NAME.validation.libfm and NAME.test.libfm")


def add_commands(sub):
    p = sub.add_parser("train", help="train FM or NFM (default: NFM on the built-in synthetic data)",
                       description="Train FM or NFM; print one line per epoch and, last, the test metric at the "
                                   "best validation epoch.")
    add_model_options(p)
    add_data_options(p)
    p.add_argument("--optimizer", choices=["adagrad", "adam", "sgd", "momentum"], default="adagrad")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs (the cap, with early stopping): default 200 on real data (the original's), "
                        "40 on synthetic")
    p.add_argument("--early-stop", type=switch, default=True,
                   help="1 (default): stop when the validation metric rose 4 epochs in a row")
    p.add_argument("--pretrain", type=switch, default=False,
                   help="1: train an FM first and start NFM's w0, w and V from it (the paper's pretraining)")
    p.add_argument("--eval-train", type=switch, default=False,
                   help="1: evaluate the whole training set each epoch (the original does; slower). "
                        "0 (default): the train column is the running metric of the epoch's batches")
    p.add_argument("--train-rows", type=int, default=None, help="use only the first N training rows")
    p.add_argument("--save", default=None, help="write the trained model to this .npz file")
    p.add_argument("--plot", default=None, help="write the learning curves to this PNG file")
    p.add_argument("--history", default=None, help="write one JSON line per epoch to this file")
    p.add_argument("--progress", type=switch, default=None, help="progress bar (default: on a terminal)")
    p.set_defaults(run=run_train)

    for name, helptext in (("evaluate", "metrics of a saved model on a dataset's validation and test parts"),
                           ("predict", "one prediction per line for a libFM file or a dataset part")):
        p = sub.add_parser(name, help=helptext, description=helptext)
        p.add_argument("--load", required=True, help="a model saved with train --save")
        add_data_options(p)
        p.add_argument("--file", default=None, help="a libFM file (its ids are the raw ids of the training data)")
        p.add_argument("--part", choices=["train", "validation", "test"], default="test")
        p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
        p.set_defaults(run=run_evaluate if name == "evaluate" else run_predict)


def make_model(a, n_features):
    from .model import FM, NFM
    if a.model == "fm":
        keep = (a.keep_prob or [0.5])[-1]
        bn = bool(a.batch_norm) if a.batch_norm is not None else False
        return FM(n_features, a.hidden_factor, keep, bn, a.loss, a.l2, a.dtype, a.seed, a.backend)
    keep = a.keep_prob or ([0.8] * len(a.layers) + [0.5])
    bn = True if a.batch_norm is None else a.batch_norm
    return NFM(n_features, a.hidden_factor, a.layers, keep, bn, a.activation, a.loss, a.l2, a.dtype, a.seed,
               a.backend)


def load_data(a, loss, progress=True):
    from . import datasets as D
    if a.data_dir:
        return D.load(a.dataset if a.dataset != "synthetic" else None, data_dir=a.data_dir, loss=loss)
    return D.load(a.dataset, loss=loss, seed=0, noise=SYNTHETIC_NOISE) if a.dataset == "synthetic" \
        else D.load(a.dataset, loss=loss, progress=progress)


def run_train(a):
    import statistics
    import time

    from . import checkpoint, train
    from .datasets import Split

    t0 = time.perf_counter()
    split = load_data(a, a.loss)
    if a.train_rows:
        split = Split(split.train.subset(a.train_rows), split.valid, split.test)
    print(f"data: {split.train} | {len(split.valid)} validation, {len(split.test)} test rows "
          f"[read in {time.perf_counter() - t0:.2f} s]")
    # the built-in synthetic data has a known noise floor: the best achievable rmse
    floor = SYNTHETIC_NOISE if a.dataset == "synthetic" and not a.data_dir and a.loss == "square" else None
    if floor is not None:
        print(f"noise floor: the best achievable test rmse is about {floor} (the label noise)")
    model = make_model(a, split.train.n_features)
    print(model)
    epochs = a.epochs or (40 if a.dataset == "synthetic" and not a.data_dir else 200)
    kw = dict(optimizer=a.optimizer, lr=a.lr, batch_size=a.batch_size, epochs=epochs, early_stop=a.early_stop,
              progress=a.progress, eval_train=a.eval_train)
    if a.pretrain and a.model == "nfm":
        train.pretrain_fm(model, split, **kw)
        print("training NFM:")
    hist = train.fit(model, split, history_path=a.history, **kw)
    best = hist.best
    if a.save:
        checkpoint.save(model, a.save, {"raw_ids": split.train.raw_ids})
        print(f"saved {a.save}")
    if a.plot:
        plot_history(hist, a.plot, f"{'FM' if a.model == 'fm' else 'NFM'} on {a.dataset}", floor)
        print(f"wrote {a.plot}")
    if best is None:
        print(f"{hist.stopped}; no epoch finished")
        return 1
    print(text_curve(hist, floor))
    print(f"{hist.stopped}; best validation epoch {hist.best_epoch} of {len(hist.epochs)} "
          f"(median epoch {statistics.median(hist.column('seconds')):.2f} s)")
    if a.loss == "square":
        print(f"test auc: {best['test_auc']:.4f}")
        print(f"test rmse: {best['test']:.4f}")
    else:
        print(f"test logloss: {best['test']:.4f}")
        print(f"test auc: {best['test_auc']:.4f}")
    return 0


def text_curve(hist, floor=None, width=50, max_lines=25):
    """The validation learning curve as text bars (every few epochs when there are many),
    with the noise floor marked '|' where it is known."""
    valid = hist.column("valid")
    lo = min(valid + ([floor] if floor is not None else [])) * 0.95
    hi = max(valid)
    step = max(1, -(-len(valid) // max_lines))

    def col(v):
        return int(round((v - lo) / (hi - lo + 1e-12) * (width - 1)))

    lines = [f"learning curve, validation {hist.metric}" + (f" ('|' marks the noise floor {floor})" if floor else "")]
    for e in list(range(0, len(valid), step)) + ([len(valid) - 1] if (len(valid) - 1) % step else []):
        bar = list("#" * (col(valid[e]) + 1) + " " * (width - col(valid[e]) - 1))
        if floor is not None:
            bar[col(floor)] = "|"
        lines.append(f"  epoch {e + 1:3d} {valid[e]:.4f} {''.join(bar)}{'  best' if e + 1 == hist.best_epoch else ''}")
    return "\n".join(lines)


def plot_history(hist, path, title, floor=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = hist.column("epoch")
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("train", "valid", "test"):
        ax.plot(ep, hist.column(key), label=key)
    if floor is not None:
        ax.axhline(floor, color="gray", ls="--", label="noise floor")
    ax.axvline(hist.best_epoch, color="k", lw=0.5, ls=":", label="best validation epoch")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{hist.metric}")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _saved(a):
    from . import checkpoint
    model, extra = checkpoint.load(a.load, a.backend)
    return model, extra.get("raw_ids")


def _part(a, model, raw_ids):
    from . import datasets as D
    loss = model.config["loss"]
    if a.file:
        if raw_ids is None:
            raise ValueError(f"{a.load} holds no feature-id map; predict on a --dataset part instead")
        return D.read_with_ids(a.file, raw_ids, loss)
    split = load_data(a, loss, progress=False)
    if split.train.n_features != model.config["n_features"]:
        raise ValueError(f"the data has {split.train.n_features} features, the model "
                         f"{model.config['n_features']}: not the data it was trained on")
    return {"train": split.train, "validation": split.valid, "test": split.test}[a.part]


def run_evaluate(a):
    from .train import evaluate
    model, raw_ids = _saved(a)
    data = _part(a, model, raw_ids)
    for name, value in evaluate(model, data.to(model.xp, model.device, model.config["dtype"])).items():
        print(f"{a.part if not a.file else data.name} {name}: {value:.4f}")
    return 0


def run_predict(a):
    import numpy as np

    from . import backend as B
    model, raw_ids = _saved(a)
    data = _part(a, model, raw_ids).to(model.xp, model.device, model.config["dtype"])
    pred = B.to_numpy(model.predict(data.batch()))
    np.savetxt(sys.stdout, pred, fmt="%.6g")
    return 0


# ----------------------------------------------------------------------- main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m nfm_numpy",
                                     description="Neural Factorization Machines in NumPy / CuPy.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    add_gradcheck(sub)
    a = parser.parse_args(argv)
    try:
        return a.run(a)
    except (ValueError, TypeError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
