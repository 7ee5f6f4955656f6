"""Time one Gibbs sweep of the Bayesian FM (nfm_numpy.bayes) on Frappe's training rows.

    PYTHONPATH=. python3 benchmarks/bayes_fm.py [--k 64] [--sweeps 5] [--blocks auto|fields]

Run it on a quiet machine: it prints the load average (uptime) before and after. Skips with a
message when the Frappe split is not at ../shared/data/frappe (it is never copied into the repo).
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nfm_numpy import bayes, datasets  # noqa: E402

FRAPPE = Path(__file__).resolve().parents[2] / "shared" / "data" / "frappe"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--sweeps", type=int, default=5)
    ap.add_argument("--blocks", default="auto", help="auto (found from the rows) or fields (groups by raw id range)")
    ap.add_argument("--data-dir", default=str(FRAPPE))
    a = ap.parse_args()
    if not Path(a.data_dir, "frappe.train.libfm").exists():
        print(f"skipped: the Frappe split is not at {a.data_dir}")
        return
    print("load average before:", os.getloadavg())
    split = datasets.load(data_dir=a.data_dir, dtype=np.float64)
    tr = split.train
    t = time.perf_counter()
    s = bayes.GibbsFM(tr.idx, tr.val, tr.y, tr.n_features, k=a.k, seed=0)
    print(f"setup {time.perf_counter() - t:.2f} s: {len(s.blocks)} blocks, rows {len(tr)}, k {a.k}")
    times = []
    for _ in range(a.sweeps):
        t = time.perf_counter()
        s.sweep()
        times.append(time.perf_counter() - t)
    print("sweep seconds:", " ".join(f"{x:.3f}" for x in times), f"(median {np.median(times):.3f})")
    print("load average after:", os.getloadavg())


if __name__ == "__main__":
    main()
