"""Speed of nfm_numpy against the PyTorch peer (../shared/peers/torch_nfm.py), side by side.

    python benchmarks/bench.py --peer-python /tmp/peer-venv/bin/python --rounds 3

Measures, for our code and (when --peer-python names a Python with torch) the
peer, in separate processes so that each peak memory is its own:

* the median training-epoch wall time (shuffle + every step; evaluation not
  counted, as the peer and the original count it), samples per second and peak
  resident memory, for FM and NFM (k = 64, one hidden layer of 64, BN,
  dropout 0.8/0.5; Adagrad 0.05) at batch 128 and 4096 on the Frappe train
  split, and NFM at batch 4096 on random data the size of MovieLens-tag
  (2,006,859 rows, fields of 17,045, 23,743 and 49,657 values, 90,445
  features; train on 1,404,801 rows as the original split);
* the time to read the three Frappe files;
* where one of our training steps spends its time (lookup, Bi-Interaction,
  MLP, backward scatter, optimiser), by timing each layer call.

The peer runs at its default and at its fastest for each configuration: a probe of two epochs of each of
its variants (``PEER_VARIANTS``: sparse embedding gradients, EmbeddingBag, one thread) picks the fastest,
which is then measured in the rounds beside the default. ``--load N`` runs N busy loops
(``python -c 'while 1: pass'``) during the whole measurement: a machine shared with other jobs.

It prints a table with our time divided by the peer's, default and fastest. With ``--rounds R`` each
configuration is measured R times, ours and the peer's alternating, and the
table gives the median ratio and its range: this machine's speed drifts by
10-15 % over minutes, and alternating makes a drift hit both sides. Frappe is read from
../shared/data/frappe (or --frappe DIR); configurations that need it are
skipped with the reason when it is absent.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import resource
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
MLTAG_FIELDS = (17045, 23743, 49657)
MLTAG_ROWS = (1_404_801, 401_372, 200_686)      # train, validation, test as the original split

CONFIGS = [  # (label, model, batch, dataset)
    ("FM  b128  frappe", "fm", 128, "frappe"),
    ("NFM b128  frappe", "nfm", 128, "frappe"),
    ("FM  b4096 frappe", "fm", 4096, "frappe"),
    ("NFM b4096 frappe", "nfm", 4096, "frappe"),
    ("NFM b4096 ml-tag-sized", "nfm", 4096, "mltag"),
]
BREAKDOWNS = [CONFIGS[1], CONFIGS[0], CONFIGS[4]]   # NFM and FM at batch 128, NFM ML-tag-sized


# ----------------------------------------------------------------- data
def mltag_sized(seed=0):
    """Random one-hot rows the size and shape of MovieLens-tag (labels +-1, as the original's)."""
    import numpy as np

    from nfm_numpy.data import Dataset
    from nfm_numpy.datasets import Split
    rng = np.random.default_rng(seed)
    offsets = np.concatenate(([0], np.cumsum(MLTAG_FIELDS)[:-1]))
    parts = []
    for role, n in zip(("train", "valid", "test"), MLTAG_ROWS):
        idx = np.stack([rng.integers(0, c, n) for c in MLTAG_FIELDS], axis=1) + offsets
        y = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), n)
        parts.append(Dataset(idx, np.ones(idx.shape, np.float32), y, sum(MLTAG_FIELDS), f"mltag-sized.{role}"))
    return Split(*parts)


def write_libfm(split, directory, name):
    """The split as libFM files, for the peer (its ids are read as 'id:1' tokens)."""
    import numpy as np
    for role, ds in zip(("train", "validation", "test"), split):
        lines = np.where(ds.y > 0, "1", "-1").astype("U2")
        for f in range(ds.idx.shape[1]):
            lines = np.char.add(np.char.add(lines, " "), np.char.add(ds.idx[:, f].astype("U6"), ":1"))
        Path(directory, f"{name}.{role}.libfm").write_text("\n".join(lines.tolist()) + "\n")


# ----------------------------------------------------------------- one run (child process)
def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(model_kind, batch, dataset, epochs, frappe_dir, backend, breakdown):
    import nfm_numpy as nf
    from nfm_numpy import datasets as D, train as T
    if dataset == "frappe":
        split = D.load(data_dir=frappe_dir)
    else:
        split = mltag_sized()
    # evaluation is not timed; a small slice keeps it from dominating the run
    split = D.Split(split.train, split.valid.subset(2000), split.test.subset(2000))
    n = split.train.n_features
    model = (nf.NFM(n, 64, [64], [0.8, 0.5], backend=backend) if model_kind == "nfm"
             else nf.FM(n, 64, keep_prob=0.5, backend=backend))
    hist = T.fit(model, split, batch_size=batch, epochs=epochs, early_stop=False, log=None, progress=False)
    secs = hist.column("seconds")
    out = {"epoch_seconds": secs, "median": statistics.median(secs[1:] or secs),
           "rows": (len(split.train) // batch) * batch, "peak_rss_mib": peak_rss_mib()}
    if breakdown:
        out["breakdown"] = step_breakdown(model_kind, split, batch, backend)
    return out


CATEGORY = {  # layer function -> part of the step
    "sparse_input": "lookup", "sparse_linear_forward": "lookup",
    "sparse_bi_interaction_forward": "Bi-Interaction",
    "sparse_bi_interaction_backward": "backward scatter", "sparse_linear_backward": "backward scatter",
}


def step_breakdown(model_kind, split, batch, backend, epochs=1):
    """Microseconds per step in each part, timing every layer call of one epoch."""
    import nfm_numpy as nf
    from nfm_numpy import layers as L, optim, train as T
    acc = collections.Counter()

    def timed(part, f):
        def g(*a, **k):
            t = time.perf_counter()
            r = f(*a, **k)
            acc[part] += time.perf_counter() - t
            return r
        return g

    originals = {}
    for name in dir(L):
        if name.endswith(("_forward", "_backward")) or name == "sparse_input":
            originals[name] = getattr(L, name)
            setattr(L, name, timed(CATEGORY.get(name, "MLP (BN, dropout, affine, output)"), originals[name]))
    try:
        n = split.train.n_features
        model = (nf.NFM(n, 64, [64], [0.8, 0.5], backend=backend) if model_kind == "nfm"
                 else nf.FM(n, 64, keep_prob=0.5, backend=backend))
        opt = optim.make("adagrad", 0.05)
        opt.step = timed("optimiser", opt.step)
        model.loss = timed("model.loss", model.loss)
        hist = T.fit(model, split, optimizer=opt, batch_size=batch, epochs=epochs, early_stop=False, log=None,
                     progress=False)
    finally:
        for name, f in originals.items():
            setattr(L, name, f)
    steps = len(split.train) // batch
    total = hist.epochs[-1]["seconds"]
    parts = {k: v / steps * 1e6 for k, v in acc.items() if k != "model.loss"}
    parts["other (model wiring, loss, loop, shuffle)"] = total / steps * 1e6 - sum(parts.values())
    return {"step_us": total / steps * 1e6, "parts_us": parts}


# the peer's configurations: its default, and what a PyTorch user who wants speed turns on (sparse embedding
# gradients, EmbeddingBag for the Bi-Interaction sums, one thread on a busy machine); "fastest" is, for each
# configuration, the one of these with the shortest epochs in a probe run before the rounds
PEER_VARIANTS = {  # name: (threads, options)
    "default": (2, []),
    "sparse": (2, ["--sparse-grad", "1"]),
    "bag": (2, ["--bi-impl", "bag"]),
    "sparse+bag": (2, ["--sparse-grad", "1", "--bi-impl", "bag"]),
    "sparse+bag/1 thread": (1, ["--sparse-grad", "1", "--bi-impl", "bag"]),
}


def run_peer(peer_python, model_kind, batch, data_dir, name, epochs, variant="default"):
    threads, extra = PEER_VARIANTS[variant]
    cmd = [peer_python, str(PEER), "--split", "full", "--threads", str(threads), "--model", model_kind, *extra,
           "--hidden-factor", "64", "--lr", "0.05", "--batch-size", str(batch), "--max-epochs", str(epochs),
           "--early-stop", "0", "--data-dir", str(data_dir), "--name", name]
    cmd += (["--layers", "64", "--keep-prob", "0.8,0.5", "--batch-norm", "1"] if model_kind == "nfm"
            else ["--keep-prob", "0.5", "--batch-norm", "0"])
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        t = time.perf_counter()
        r = subprocess.run(cmd + ["--json-out", f.name], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"peer failed: {r.stderr[-2000:]}")
        res = json.loads(Path(f.name).read_text())
        wall = time.perf_counter() - t
    secs = res["epoch_train_seconds"]
    return {"epoch_seconds": secs, "median": statistics.median(secs[1:] or secs), "variant": variant,
            "peak_rss_mib": res.get("peak_rss_mib"), "wall": wall, "versions": res.get("versions")}


def busy_loops(n):
    """n processes that spin (``python -c 'while 1: pass'``): a machine busy with other jobs."""
    return [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(n)]


def summarise(runs):
    """One side's figures over rounds: the median of the per-round median epochs, the largest peak memory."""
    out = dict(runs[0])
    out["median"] = statistics.median(r["median"] for r in runs)
    out["round_medians"] = [r["median"] for r in runs]
    out["peak_rss_mib"] = max((r["peak_rss_mib"] or 0) for r in runs) or None
    return out


def child(args):
    """Entry point of one measurement in a fresh process; prints one JSON line."""
    out = run_ours(args.model, args.batch, args.dataset, args.epochs, args.frappe, args.backend, args.breakdown)
    print(json.dumps(out))


# ----------------------------------------------------------------- driver
def measure_read(frappe_dir, repeats=5):
    code = ("import time,statistics,sys; sys.path.insert(0, %r); from nfm_numpy import datasets as D\n"
            "ts=[]\nfor _ in range(%d):\n"
            " t=time.perf_counter(); D.load(data_dir=%r); ts.append(time.perf_counter()-t)\n"
            "print(statistics.median(ts), min(ts), max(ts))") % (str(ROOT), repeats, str(frappe_dir))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [float(v) for v in r.stdout.split()]


def ours_in_child(a, model, batch, dataset, breakdown=False):
    cmd = [sys.executable, str(Path(__file__)), "--child", "--model", model, "--batch", str(batch),
           "--dataset", dataset, "--epochs", "1" if breakdown else str(a.epochs), "--frappe", str(a.frappe),
           "--backend", a.backend]
    if breakdown:   # the breakdown's own epoch is timed layer by layer; one plain epoch warms up before it
        cmd.append("--breakdown")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer-python", default=None, help="a Python with torch==2.13.0 (e.g. /tmp/peer-venv/bin/python)")
    ap.add_argument("--frappe", type=Path, default=DEFAULT_FRAPPE)
    ap.add_argument("--epochs", type=int, default=4, help="epochs per run; the median skips the first (default 4)")
    ap.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    ap.add_argument("--only", default=None, help="run only configurations whose label contains this")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure each configuration this many times, alternating ours and the peer; the table "
                         "gives the median ratio and its range (default 1)")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--load", type=int, default=0,
                    help="run N busy loops (python -c 'while 1: pass') during every measurement: a loaded machine")
    ap.add_argument("--peer-variants", default=",".join(PEER_VARIANTS),
                    help="the peer configurations to probe for its fastest (names from PEER_VARIANTS, comma-"
                         "separated; 'default' is always measured)")
    ap.add_argument("--no-breakdown", action="store_true", help="skip where-the-step-goes (the per-layer timing)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="nfm", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=128, help=argparse.SUPPRESS)
    ap.add_argument("--dataset", default="frappe", help=argparse.SUPPRESS)
    ap.add_argument("--breakdown", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)

    loops = busy_loops(a.load)
    try:
        return measure(a)
    finally:
        for q in loops:
            q.kill()


def measure(a):
    have_frappe = all((a.frappe / f"frappe.{s}.libfm").exists() for s in ("train", "validation", "test"))
    import numpy as np
    import scipy
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}; "
          f"backend {a.backend}; epochs per run {a.epochs} (median of all but the first); "
          f"{a.load} busy loops running; our BLAS threads: nfm_numpy's default (1) unless OPENBLAS_NUM_THREADS says")
    results = {}
    if have_frappe:
        med, lo, hi = measure_read(a.frappe)
        results["read"] = {"median": med, "min": lo, "max": hi}
        print(f"reading the three Frappe files: median {med:.3f} s (min {lo:.3f}, max {hi:.3f}, 5 runs)")
    else:
        print(f"Frappe not found at {a.frappe}: Frappe configurations skipped")
    mltag_dir = None
    rows = []
    for label, model, batch, dataset in CONFIGS:
        if a.only and a.only not in label:
            continue
        if dataset == "frappe" and not have_frappe:
            continue
        if a.peer_python:
            if dataset == "frappe":
                data_dir, name = a.frappe, "frappe"
            else:
                if mltag_dir is None:
                    mltag_dir = tempfile.mkdtemp(prefix="mltag-sized-")
                    write_libfm(mltag_sized(), mltag_dir, "mltag")
                data_dir, name = mltag_dir, "mltag"
        fastest = "default"
        if a.peer_python:                 # a probe of each variant picks the peer's fastest for this configuration
            probe = {v: run_peer(a.peer_python, model, batch, data_dir, name, 2, v)["median"]
                     for v in a.peer_variants.split(",")}
            fastest = min(probe, key=probe.get)
            print(f"  {label:<24} peer probe (s/epoch): "
                  + ", ".join(f"{v} {t:.3f}" for v, t in probe.items()) + f" -> fastest: {fastest}", flush=True)
        # rounds alternate ours and the peer, so a drift of the machine's speed hits both alike
        ours_runs, peer_runs, fast_runs = [], [], []
        for _ in range(a.rounds):
            ours_runs.append(ours_in_child(a, model, batch, dataset))
            if a.peer_python:
                peer_runs.append(run_peer(a.peer_python, model, batch, data_dir, name, a.epochs))
                fast_runs.append(peer_runs[-1] if fastest == "default" else
                                 run_peer(a.peer_python, model, batch, data_dir, name, a.epochs, fastest))
        ours = summarise(ours_runs)
        peer = summarise(peer_runs) if peer_runs else None
        fast = summarise(fast_runs) if fast_runs else None
        for side, runs in ((peer, peer_runs), (fast, fast_runs)):
            if side:
                ratios = [o["median"] / q["median"] for o, q in zip(ours_runs, runs)]
                side["ratio"], side["ratio_range"] = statistics.median(ratios), (min(ratios), max(ratios))
        results[label] = {"ours": ours, "peer": peer, "peer_fastest": fast, "load": a.load}
        rows.append((label, ours, peer, fast))
        ratio = f"{peer['ratio']:.2f} (fastest {fast['ratio']:.2f})" if peer else "-"
        print(f"  {label:<24} ours {ours['median']:.3f} s   peer {peer['median'] if peer else float('nan'):.3f} s"
              f"   ratio {ratio}", flush=True)

    print()
    print("| configuration | ours s/epoch | peer default s | ours / default | peer fastest (which) s "
          "| ours / fastest | ours rows/s | ours peak MiB | peer peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|")

    def ratio(side):
        lo, hi = side["ratio_range"]
        return f"**{side['ratio']:.2f}**" + (f" ({lo:.2f}-{hi:.2f})" if a.rounds > 1 else "")
    for label, ours, peer, fast in rows:
        sps = ours["rows"] / ours["median"]
        if peer:
            print(f"| {label} | {ours['median']:.3f} | {peer['median']:.3f} | {ratio(peer)} | {fast['median']:.3f} "
                  f"({fast['variant']}) | {ratio(fast)} | {sps:,.0f} | {ours['peak_rss_mib']:.0f} "
                  f"| {max(peer['peak_rss_mib'] or 0, fast['peak_rss_mib'] or 0):.0f} |")
        else:
            print(f"| {label} | {ours['median']:.3f} | - | - | - | - | {sps:,.0f} | {ours['peak_rss_mib']:.0f} | - |")

    # where the time goes: the per-step-overhead-bound case (Frappe, batch 128) and the
    # memory-bound one (ML-tag-sized tables, batch 4096)
    for label, model, batch, dataset in BREAKDOWNS:
        if (a.only and a.only not in label) or (dataset == "frappe" and not have_frappe) or a.no_breakdown:
            continue
        bd = ours_in_child(a, model, batch, dataset, breakdown=True)["breakdown"]
        results[f"breakdown {label}"] = bd
        print(f"\nwhere one {label} step spends its time ({bd['step_us']:.0f} us a step, layer calls timed):")
        for part, us in sorted(bd["parts_us"].items(), key=lambda kv: -kv[1]):
            print(f"  {part:<42} {us:8.1f} us  {100 * us / bd['step_us']:5.1f} %")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
