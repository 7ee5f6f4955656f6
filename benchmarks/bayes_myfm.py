"""Our Bayesian FM (nfm_numpy.bayes) beside myFM's Gibbs sampler on Frappe: test RMSE and time per sweep.

    python3 -m venv /tmp/myfm-venv && /tmp/myfm-venv/bin/pip install myfm numpy scipy   # never in requirements
    PYTHONPATH=. python3 benchmarks/bayes_myfm.py [--k 64] [--burn-in 20] [--samples 80] [--seed 0]

Both get the same rows (read once with nfm_numpy.datasets.load, handed to myFM as CSR matrices
through a temporary file outside the repository), the same k, sweeps and burn-in, one prior group,
and libFM's hyper-priors (myFM's defaults are the same). myFM runs in its own virtual environment
(--myfm-python). Skips with a message when myFM or the Frappe split (../shared/data/frappe) is absent.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from nfm_numpy import bayes, datasets  # noqa: E402

FRAPPE = ROOT.parent / "shared" / "data" / "frappe"

MYFM = r"""
import json, sys, time
import numpy as np, scipy.sparse as sp, myfm
d = np.load(sys.argv[1]); a = json.loads(sys.argv[2])
X = {s: sp.csr_matrix((d[s + "_data"], d[s + "_indices"], d[s + "_indptr"]), shape=tuple(d[s + "_shape"]))
     for s in ("train", "test")}
stamps = []
def cb(i, fm, hyper, history):
    stamps.append(time.perf_counter())
    return False, None
m = myfm.MyFMRegressor(rank=a["k"], random_seed=a["seed"])
t = time.perf_counter()
m.fit(X["train"], d["train_y"], n_iter=a["burn_in"] + a["samples"], n_kept_samples=a["samples"], callback=cb)
total = time.perf_counter() - t
p = m.predict(X["test"])
steps = np.diff([t] + stamps)
print(json.dumps({"rmse": float(np.sqrt(np.mean((p - d["test_y"]) ** 2))),
                  "rmse_clipped": float(np.sqrt(np.mean((np.clip(p, -1, 1) - d["test_y"]) ** 2))),
                  "sweep_s": float(np.median(steps)), "total_s": total, "version": myfm.__version__}))
"""


def csr(ds):
    """The rows as CSR arrays (padding entries dropped)."""
    keep = ds.val != 0
    indptr = np.concatenate([[0], np.cumsum(keep.sum(1))])
    return ds.val[keep].astype(np.float64), ds.idx[keep].astype(np.int32), indptr, (len(ds), ds.n_features)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--burn-in", type=int, default=20)
    ap.add_argument("--samples", type=int, default=80)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=str(FRAPPE))
    ap.add_argument("--myfm-python", default="/tmp/myfm-venv/bin/python")
    a = ap.parse_args()
    if not Path(a.data_dir, "frappe.train.libfm").exists():
        print(f"skipped: the Frappe split is not at {a.data_dir}")
        return
    has_myfm = Path(a.myfm_python).exists() and subprocess.run(
        [a.myfm_python, "-c", "import myfm"], capture_output=True).returncode == 0
    if not has_myfm:
        print(f"skipped: no myFM at {a.myfm_python} (python3 -m venv /tmp/myfm-venv && "
              "/tmp/myfm-venv/bin/pip install myfm numpy scipy)")
        return
    print("load average before:", os.getloadavg())
    split = datasets.load(data_dir=a.data_dir, dtype=np.float64)
    tr, te = split.train, split.test
    stamps = []
    t = time.perf_counter()
    m = bayes.fit(tr, te, k=a.k, n_samples=a.samples, burn_in=a.burn_in, keep=0, seed=a.seed,
                  on_sweep=lambda rec: stamps.append(time.perf_counter()))
    total = time.perf_counter() - t
    p = np.asarray(m.test_pred)
    ours = {"rmse": float(np.sqrt(np.mean((p - te.y) ** 2))),
            "rmse_clipped": float(np.sqrt(np.mean((np.clip(p, -1, 1) - te.y) ** 2))),
            "sweep_s": float(np.median(np.diff(stamps))), "total_s": total, "blocks": m.config["n_blocks"]}
    print("ours :", json.dumps(ours))
    print("load average between:", os.getloadavg())
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "frappe_csr.npz"
        arrays = {}
        for name, ds in (("train", tr), ("test", te)):
            data, indices, indptr, shape = csr(ds)
            arrays.update({f"{name}_data": data, f"{name}_indices": indices, f"{name}_indptr": indptr,
                           f"{name}_shape": np.array(shape), f"{name}_y": ds.y.astype(np.float64)})
        np.savez(f, **arrays)
        args = json.dumps({"k": a.k, "burn_in": a.burn_in, "samples": a.samples, "seed": a.seed})
        out = subprocess.run([a.myfm_python, "-c", MYFM, str(f), args], capture_output=True, text=True)
    if out.returncode:
        print("myFM failed:", out.stderr[-2000:])
        return
    print("myFM :", out.stdout.strip().splitlines()[-1])
    print("load average after:", os.getloadavg())


if __name__ == "__main__":
    main()
