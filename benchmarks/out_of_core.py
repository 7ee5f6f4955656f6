"""Data larger than memory: ``train --csv --cache`` on a generated click log shaped like Criteo's
(a 0/1 label, 13 integer columns I1-I13 with missing cells, 26 categorical columns C1-C26 of
8 hex digits whose values follow a power law), under a memory limit far below the file's size.

    python3 benchmarks/out_of_core.py make --rows 20000000 --out /tmp/clicks.tsv     # ~5 GB, a few minutes
    python3 benchmarks/out_of_core.py run --file /tmp/clicks.tsv --limit-mb 2048 --cache /tmp/clicks.cache

``run`` starts the command line under ``ulimit -v`` (address space, which bounds what the
process can ever hold in memory), prints each line of its output with the seconds since the start,
then the peak resident memory of the run and rows per second for each pass. The log is synthetic:
its labels come from a logistic model of a few columns and one pairwise interaction, so a model
that learns shows it in its AUC. Nothing here is Criteo's data.
"""
import argparse
import os
import resource
import subprocess
import sys
import time

import numpy as np

N_INT, N_CAT = 13, 26
VOCAB = (3, 30, 300, 3_000, 30_000, 300_000)      # distinct values of C1, C2, ... in turn


def _digits(v, width):
    """(n, width) ASCII digits of non-negative ints, right-aligned, and the mask of the digits shown."""
    powers = 10 ** np.arange(width - 1, -1, -1)
    d = (v[:, None] // powers) % 10
    shown = (v[:, None] >= powers) | (powers == 1)
    return (d + 48).astype(np.uint8), shown


def _hex8(v):
    nib = (v[:, None] >> np.arange(28, -4, -4, dtype=np.uint64)) & np.uint64(15)
    return np.where(nib < 10, nib + 48, nib + 87).astype(np.uint8)


def make(path, rows, seed=0, chunk=500_000):
    """Write the log: tab-separated, a header row, ``rows`` rows (vectorised: a chunk of rows is one
    byte matrix, whose shown characters are written in row order)."""
    rng = np.random.default_rng(seed)
    effect = [rng.normal(0, 0.6, VOCAB[c % len(VOCAB)]) for c in range(N_CAT)]
    pair = rng.normal(0, 0.8, (VOCAB[1], VOCAB[2]))      # C2 x C3: an interaction a linear model misses
    salt = rng.integers(1, 2**31, N_CAT, dtype=np.uint64)
    with open(path, "wb") as f:
        f.write(("\t".join(["label"] + [f"I{i + 1}" for i in range(N_INT)] + [f"C{i + 1}" for i in range(N_CAT)])
                 + "\n").encode())
        done = 0
        while done < rows:
            n = min(chunk, rows - done)
            cats = []
            for c in range(N_CAT):
                v = VOCAB[c % len(VOCAB)]
                cats.append(np.minimum(rng.zipf(1.3, n) - 1, v - 1).astype(np.uint64))
            ints = np.minimum(rng.geometric(0.05, (n, N_INT)) - 1, 999_999)
            logit = -1.5 + 0.05 * np.log1p(ints[:, 0]) + sum(effect[c][cats[c]] for c in (0, 1, 2, 4, 6)) \
                + pair[cats[1], cats[2]]
            label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.uint8)
            pieces, masks = [(label[:, None] + 48).astype(np.uint8)], [np.ones((n, 1), bool)]
            tab = np.full((n, 1), 9, np.uint8)
            for i in range(N_INT):
                d, shown = _digits(ints[:, i], 6)
                shown &= (rng.random(n) > 0.1 * (i % 3))[:, None]            # some columns have missing cells
                pieces += [tab, d]
                masks += [np.ones((n, 1), bool), shown]
            for c in range(N_CAT):
                h = _hex8((cats[c] * np.uint64(2654435761) + salt[c]) & np.uint64(0xFFFFFFFF))
                present = np.broadcast_to((rng.random(n) > (0.2 if c % 7 == 6 else 0.0))[:, None], (n, 8))
                pieces += [tab, h]
                masks += [np.ones((n, 1), bool), present]
            pieces.append(np.full((n, 1), 10, np.uint8))
            masks.append(np.ones((n, 1), bool))
            block, mask = np.concatenate(pieces, axis=1), np.concatenate(masks, axis=1)
            f.write(block[mask].tobytes())
            done += n
            print(f"wrote {done:,} rows", file=sys.stderr)


def run(a):
    numeric = ",".join(f"I{i + 1}:16" for i in range(N_INT))
    cmd = [sys.executable, "-m", "nfm_numpy", "train", "--csv", a.file, "--label", "label", "--loss", "log",
           "--numeric", numeric, "--categorical", "*", "--min-count", "10", "--split", "0.9,0.05,0.05",
           "--cache", a.cache, "--hidden-factor", "16", "--layers", "16", "--batch-size", str(a.batch_size),
           "--epochs", str(a.epochs)]
    limit = f"ulimit -v {a.limit_mb * 1024} && " if a.limit_mb else ""
    shell = limit + "exec " + " ".join(f"'{c}'" for c in cmd)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    print(f"$ {shell}\n(file: {os.path.getsize(a.file) / 1e9:.2f} GB)", flush=True)
    t0 = time.perf_counter()
    with subprocess.Popen(["bash", "-c", shell], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env) as p:
        for line in p.stdout:
            print(f"[{time.perf_counter() - t0:8.1f} s] {line}", end="", flush=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"exit {p.returncode}; wall {time.perf_counter() - t0:.1f} s; peak resident memory {peak:.0f} MiB "
          f"(limit {a.limit_mb or 'none'} MiB of address space)")
    return p.returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--rows", type=int, default=20_000_000)
    m.add_argument("--out", required=True)
    m.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("run")
    r.add_argument("--file", required=True)
    r.add_argument("--cache", required=True)
    r.add_argument("--limit-mb", type=int, default=2048)
    r.add_argument("--batch-size", type=int, default=1024)
    r.add_argument("--epochs", type=int, default=1)
    a = ap.parse_args()
    if a.cmd == "make":
        t0 = time.perf_counter()
        make(a.out, a.rows, a.seed)
        print(f"{a.rows:,} rows, {os.path.getsize(a.out) / 1e9:.2f} GB in {time.perf_counter() - t0:.0f} s")
        return 0
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
