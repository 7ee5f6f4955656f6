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


# ----------------------------------------------------------------------- main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m nfm_numpy",
                                     description="Neural Factorization Machines in NumPy / CuPy.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_gradcheck(sub)
    a = parser.parse_args(argv)
    try:
        return a.run(a)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
