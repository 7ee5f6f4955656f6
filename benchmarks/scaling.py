"""Scaling laws, measured: how the epoch time grows with k, the batch size, the entries per
row N_x and the number of rows, ours and the PyTorch peer's.

    python benchmarks/scaling.py --peer-python /tmp/peer-venv/bin/python      # ~12 minutes

The paper's claim: NFM's Bi-Interaction costs O(k N_x) a row, linear in both. Each scan
changes one thing (NFM, one hidden layer of 64, BN, dropout 0.8/0.5, Adagrad 0.05):

* k from 16 to 512, Frappe, batch 4096;
* the batch size from 32 to 16,384, Frappe, k = 64 (an epoch is a fixed number of rows, so
  a slope of 0 means the cost is per row, a negative slope that a per-step cost shrinks);
* N_x from 2 to 200 entries a row (multi-hot rows of ids drawn uniformly from 20,000
  features), 40,000 rows, k = 64, batch 512;
* the number of rows from 25,000 to 800,000 (10 one-hot fields of Frappe's sizes), k = 64,
  batch 4096.

Every point is the median epoch time of 3 epochs, without the first (its own process for
ours; the peer on libFM files). Prints the slope of log(time) against log(x) over the
upper half of each scan (where fixed costs no longer dominate) and over all of it, and
draws ``benchmarks/results/scaling.png`` (log-log, both sides) and ``scaling.json``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
DEFAULT_FRAPPE = ROOT.parent / "shared" / "data" / "frappe"
PEER = ROOT.parent / "shared" / "peers" / "torch_nfm.py"
FIELDS = (957, 4082, 7, 7, 2, 3, 2, 9, 80, 233)                 # Frappe's fields

SCANS = {
    "k": dict(values=[16, 32, 64, 128, 256, 512], label="embedding size k", data="frappe", batch=4096),
    "batch": dict(values=[32, 128, 512, 2048, 8192, 16384], label="batch size", data="frappe", k=64),
    "n_x": dict(values=[2, 5, 10, 20, 50, 100, 200], label="entries per row N_x", k=64, batch=512),
    "rows": dict(values=[25_000, 50_000, 100_000, 200_000, 400_000, 800_000], label="training rows", k=64,
                 batch=4096),
}


def generated(kind, value, directory):
    """Write the train, validation and test libFM files of one point of the n_x or rows scans (ours
    and the peer read them): multi-hot rows of ids from 20,000 features, or 10 one-hot fields."""
    rng = np.random.default_rng(0)
    n = 40_000 if kind == "n_x" else value
    for role, rows in (("train", n), ("validation", 2000), ("test", 2000)):
        if kind == "n_x":
            idx = rng.integers(0, 20_000, (rows, value))
        else:
            idx = np.stack([rng.integers(0, c, rows) for c in FIELDS], axis=1) + np.cumsum((0,) + FIELDS[:-1])
        labels = np.where(rng.choice(np.array([-1.0, 1.0], np.float32), rows) > 0, "1", "-1")
        with open(Path(directory, f"scan.{role}.libfm"), "w") as f:
            f.writelines(f"{y} {' '.join(i + ':1' for i in row)}\n" for y, row in zip(labels, idx.astype(str).tolist()))


def child(a):
    """One of our points, in this process: prints the median epoch time."""
    import nfm_numpy as nf
    from nfm_numpy import datasets as D, train as T
    split = D.load(data_dir=a.data_dir)
    split = D.Split(split.train, split.valid.subset(2000), split.test.subset(2000))
    model = nf.NFM(split.train.n_features, a.k, [64], [0.8, 0.5])
    h = T.fit(model, split, batch_size=a.batch, epochs=3, early_stop=False, log=None, progress=False)
    print(json.dumps(statistics.median(h.column("seconds")[1:])))


def ours(data_dir, k, batch):
    cmd = [sys.executable, __file__, "--child", "--data-dir", str(data_dir), "--k", str(k), "--batch", str(batch)]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])


def peer(peer_python, data_dir, name, k, batch):
    cmd = [peer_python, str(PEER), "--split", "full", "--threads", "2", "--model", "nfm", "--hidden-factor", str(k),
           "--layers", "64", "--keep-prob", "0.8,0.5", "--batch-norm", "1", "--lr", "0.05", "--batch-size",
           str(batch), "--max-epochs", "3", "--early-stop", "0", "--data-dir", str(data_dir), "--name", name]
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        r = subprocess.run(cmd + ["--json-out", f.name], capture_output=True, text=True)
        if r.returncode != 0:
            return None
        return statistics.median(json.loads(Path(f.name).read_text())["epoch_train_seconds"][1:])


def slope(xs, ts):
    """The slope of log t against log x (None for fewer than 2 points)."""
    pts = [(x, t) for x, t in zip(xs, ts) if t]
    if len(pts) < 2:
        return None
    return float(np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peer-python", default=None)
    ap.add_argument("--frappe", type=Path, default=DEFAULT_FRAPPE)
    ap.add_argument("--only", default=None, help="one scan: k, batch, n_x or rows")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--replot", type=Path, default=None, help="redraw the figure from a scaling.json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--k", type=int, default=64, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=128, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)
    if a.replot:
        plot(json.loads(a.replot.read_text()), a.out / "scaling.png")
        return 0
    results = {}
    for name, scan in SCANS.items():
        if a.only and name != a.only:
            continue
        if scan.get("data") == "frappe" and not (a.frappe / "frappe.train.libfm").exists():
            print(f"{name}: skipped, the Frappe split is not at {a.frappe}")
            continue
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for v in scan["values"]:
                k = v if name == "k" else scan.get("k", 64)
                batch = v if name == "batch" else scan["batch"]
                if scan.get("data") == "frappe":
                    data_dir, dname = a.frappe, "frappe"
                else:
                    data_dir, dname = Path(tmp) / f"{name}{v}", "scan"
                    data_dir.mkdir()
                    generated(name, v, data_dir)
                t_ours = ours(data_dir, k, batch)
                t_peer = peer(a.peer_python, data_dir, dname, k, batch) if a.peer_python else None
                rows.append({"x": v, "ours": t_ours, "peer": t_peer})
                print(f"{name:>5} = {v:<7} ours {t_ours:7.3f} s/epoch" +
                      (f"   peer {t_peer:7.3f} s/epoch" if t_peer else ""), flush=True)
        xs = [r["x"] for r in rows]
        half = len(xs) // 2
        fit = {side: {"all": slope(xs, [r[side] for r in rows]),
                      "upper half": slope(xs[half:], [r[side] for r in rows][half:])} for side in ("ours", "peer")}
        results[name] = {"label": scan["label"], "points": rows, "slopes": fit}
        print(f"  slope of log time on log {name}: ours {fit['ours']['upper half']:.2f} (upper half), "
              f"{fit['ours']['all']:.2f} (all)" + (f"; peer {fit['peer']['upper half']:.2f}, {fit['peer']['all']:.2f}"
                                                   if fit["peer"]["all"] is not None else ""), flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "scaling.json").write_text(json.dumps(results, indent=1))
    plot(results, a.out / "scaling.png")
    print(f"wrote {a.out / 'scaling.png'} and scaling.json")
    return 0


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.6), squeeze=False)
    for ax, res in zip(axes[0], results.values()):
        xs = [p["x"] for p in res["points"]]
        for side, marker in (("ours", "o-"), ("peer", "s--")):
            ts = [p[side] for p in res["points"]]
            if any(ts):
                s = res["slopes"][side]["upper half"]
                ax.loglog(xs, ts, marker, label=f"{side} (slope {s:.2f})")
        ax.set_xticks(xs, [f"{x:,}" if x < 10_000 else f"{x // 1000}k" for x in xs], fontsize=7)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(res["label"] + " (log scale)")
        ax.set_ylabel("seconds per epoch (log scale)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
