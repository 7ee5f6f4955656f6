"""Time to accuracy: how long until the model is good, ours against the PyTorch peer.

    python benchmarks/time_to_accuracy.py --peer-python /tmp/peer-venv/bin/python     # ~6 minutes

Wall-clock seconds, training and the per-epoch evaluation together, from the first
step until the validation RMSE first reaches ``--target`` (0.33), for NFM with the
paper's settings (k = 64, one hidden layer of 64, BN, dropout 0.8/0.5, Adagrad 0.05,
batch 128) on the Frappe split in ../shared/data/frappe, and the test RMSE at that
epoch. Each run is its own process; reading the data and building the model are not
timed. Three curves:

* ours, as ``python -m nfm_numpy train`` runs: each epoch evaluates the validation and
  test sets;
* ours with ``eval_train=True``: each epoch also evaluates the whole training set,
  as the original code and the peer do (the like-for-like comparison);
* the peer (``../shared/peers/torch_nfm.py``, 2 threads), which evaluates the training,
  validation and test sets after every epoch, as the original.

With ``--rounds R`` the three alternate R times and the table gives the medians.
Prints a table; writes the curves (validation RMSE against seconds) to
``benchmarks/results/time_to_accuracy.png`` and the figures to ``time_to_accuracy.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
DEFAULT_FRAPPE = ROOT.parent / "shared" / "data" / "frappe"
PEER = ROOT.parent / "shared" / "peers" / "torch_nfm.py"


def child(a):
    """One of our runs, in this (fresh) process: per-epoch wall time since the first step."""
    import nfm_numpy as nf
    from nfm_numpy import datasets as D, train as T

    split = D.load(data_dir=a.frappe)
    model = nf.NFM(split.train.n_features, k=64, layers=[64], keep_prob=[0.8, 0.5], batch_norm=True, seed=a.seed)
    marks = []
    t0 = [None]

    def log(line):                           # "epoch ..." once an epoch, after its evaluation
        if line.startswith("epoch"):
            marks.append(time.perf_counter() - t0[0])

    t0[0] = time.perf_counter()
    hist = T.fit(model, split, optimizer="adagrad", lr=0.05, batch_size=128, epochs=a.epochs, early_stop=False,
                 log=log, progress=False, eval_train=a.eval_train)
    print(json.dumps({"wall": marks, "valid": hist.column("valid"), "test": hist.column("test"),
                      "train_seconds": hist.column("seconds")}))


def ours(a, eval_train):
    cmd = [sys.executable, __file__, "--child", "--frappe", str(a.frappe), "--epochs", str(a.epochs),
           "--seed", str(a.seed)] + (["--eval-train"] if eval_train else [])
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def peer(a):
    cmd = [a.peer_python, str(PEER), "--split", "full", "--threads", "2", *a.peer_options.split(), "--model", "nfm",
           "--hidden-factor", "64",
           "--layers", "64", "--keep-prob", "0.8,0.5", "--batch-norm", "1", "--lr", "0.05", "--batch-size", "128",
           "--max-epochs", str(a.epochs), "--early-stop", "0", "--seed", str(a.seed),
           "--data-dir", str(a.frappe), "--name", "frappe"]
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run(cmd + ["--json-out", f.name], capture_output=True, text=True, check=True)
        res = json.loads(Path(f.name).read_text())
    wall, t = [], 0.0
    for tr, ev in zip(res["epoch_train_seconds"], res["epoch_eval_seconds"]):
        t += tr + ev
        wall.append(t)
    return {"wall": wall, "valid": res["valid_rmse"], "test": res["test_rmse"],
            "train_seconds": res["epoch_train_seconds"], "versions": res.get("versions")}


def reach(run, target):
    """(seconds, epoch, test RMSE) when the validation RMSE first reaches ``target``; None if never."""
    for i, v in enumerate(run["valid"]):
        if v <= target:
            return run["wall"][i], i + 1, run["test"][i]
    return None


def plot(runs, target, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, run in runs.items():
        ax.plot(run["wall"], run["valid"], marker=".", label=label)
    ax.axhline(target, color="gray", ls="--", lw=1, label=f"target {target}")
    ax.set_xlabel("wall-clock seconds (training + per-epoch evaluation)")
    ax.set_ylabel("validation RMSE")
    ax.set_ylim(0.29, 0.6)
    ax.set_title("NFM on Frappe (k = 64, batch 128, Adagrad 0.05), 2 cores")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peer-python", default=None, help="a Python with torch==2.13.0 (e.g. /tmp/peer-venv/bin/python)")
    ap.add_argument("--frappe", type=Path, default=DEFAULT_FRAPPE)
    ap.add_argument("--target", type=float, default=0.33)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=2016)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--peer-options", default="",
                    help="more options for the peer, e.g. '--sparse-grad 1' (its fastest at batch 128 in bench.py)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--eval-train", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)
    if not (a.frappe / "frappe.train.libfm").exists():
        print(f"skipped: the Frappe split is not at {a.frappe} (it may not be redistributed)")
        return 0
    labels = ["ours", "ours, eval_train (as the peer)"] + (["peer (PyTorch)"] if a.peer_python else [])
    rounds = {label: [] for label in labels}
    for r in range(a.rounds):
        for label in labels:
            t = time.perf_counter()
            run = ours(a, False) if label == "ours" else ours(a, True) if label.startswith("ours,") else peer(a)
            rounds[label].append(run)
            got = reach(run, a.target)
            print(f"round {r + 1}: {label:<32} " + (f"valid rmse <= {a.target} after {got[0]:.1f} s (epoch {got[1]}, "
                  f"test rmse {got[2]:.4f})" if got else f"never reached {a.target}") +
                  f"  [{time.perf_counter() - t:.0f} s]", flush=True)
    summary = {}
    for label, runs in rounds.items():
        hits = [reach(run, a.target) for run in runs]
        if all(hits):
            summary[label] = {"seconds": statistics.median(h[0] for h in hits),
                              "epochs": statistics.median(h[1] for h in hits),
                              "test_rmse": statistics.median(h[2] for h in hits),
                              "rounds": [h[0] for h in hits],
                              "train_epoch_seconds": statistics.median(
                                  statistics.median(r["train_seconds"]) for r in runs)}
    print(f"\ntime to validation RMSE {a.target}: NFM k=64 [64], batch 128, Frappe; "
          f"{platform.machine()}, 2 cores, python {platform.python_version()}")
    print("| run | seconds to target | epochs | test RMSE there | ours / peer |")
    print("|---|---|---|---|---|")
    base = summary.get("peer (PyTorch)", {}).get("seconds")
    for label, s in summary.items():
        ratio = f"**{s['seconds'] / base:.2f}**" if base and label != "peer (PyTorch)" else "-"
        print(f"| {label} | {s['seconds']:.1f} | {s['epochs']:g} | {s['test_rmse']:.4f} | {ratio} |")
    a.out.mkdir(parents=True, exist_ok=True)
    plot({label: runs[-1] for label, runs in rounds.items()}, a.target, a.out / "time_to_accuracy.png")
    (a.out / "time_to_accuracy.json").write_text(json.dumps({"target": a.target, "summary": summary,
                                                             "runs": rounds}, indent=1))
    print(f"wrote {a.out / 'time_to_accuracy.png'} and time_to_accuracy.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
