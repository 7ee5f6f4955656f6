"""The GPU check in one command, for a machine with an NVIDIA GPU and nothing else prepared.

    python3 benchmarks/gpu_check.py          # from the repository root; about 5 minutes

Steps (each timed, each allowed to fail without stopping the others):

1. install the requirements and CuPy for the CUDA version ``nvidia-smi`` reports
   (``cupy-cuda12x`` or ``cupy-cuda13x``; ``--no-install`` to skip, where they are there);
2. run the CuPy tests (``tests/test_backends.py``: forward, backward and every optimiser
   on CuPy arrays against NumPy, and no silent host copies);
3. train NFM (k = 64, one hidden layer of 64, the paper's settings) for 3 epochs on the CPU
   and on the GPU, at batch 128 and 4096, on Frappe (``../shared/data/frappe``) or, where it
   is absent, on the built-in synthetic data; the GPU draws its dropout masks on the host,
   so both see the same masks and batches; their sums run in another order, so the weights part
   (Adagrad amplifies float32 rounding in near-zero gradients: notebook 7, exercise 1) while the
   test RMSEs should agree to about the seed noise, a few thousandths, not to float32 rounding;
4. execute notebook 7 in place, storing its outputs;
5. print one summary table (samples per second, GPU / CPU, test RMSE on both).

Everything it writes goes to ``benchmarks/results/gpu/`` (and, where the environment
variable OUT names a folder, is copied there too, with the executed notebook).
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "gpu"
FRAPPE = ROOT.parent / "shared" / "data" / "frappe"


RESULT = "RESULT "                 # marks the child's one line of JSON


def sh(cmd, timeout=600):
    t = time.perf_counter()
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as e:
        return 127, str(e), time.perf_counter() - t
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout} s", time.perf_counter() - t
    return r.returncode, (r.stdout + r.stderr)[-4000:], time.perf_counter() - t


def cuda_major():
    code, out, _ = sh(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"])
    if code != 0:
        return None, f"no usable nvidia-smi ({out.strip().splitlines()[-1] if out.strip() else code})"
    _, full, _ = sh(["nvidia-smi"])
    major = next((int(t.split(".")[0]) for t in full.split("CUDA Version:")[1:2]), 12)
    return major, out.strip()


def train_child(backend, batch, epochs):
    """One training run in this process (--child): prints a JSON line."""
    sys.path.insert(0, str(ROOT))
    import nfm_numpy as nf
    from nfm_numpy import backend as B, datasets as D, train as T
    split = D.load(data_dir=FRAPPE) if (FRAPPE / "frappe.train.libfm").exists() else D.load("synthetic")
    model = nf.NFM(split.train.n_features, 64, [64], [0.8, 0.5], backend=backend)
    if backend == "cupy":
        import cupy
        model.rng = B.Random(model.config["seed"] + 1, cupy, host=True)   # the CPU's masks, moved to the GPU
    h = T.fit(model, split, batch_size=batch, epochs=epochs, early_stop=False, log=None, progress=False)
    secs = h.column("seconds")
    rows = (len(split.train) // batch) * batch
    print(RESULT + json.dumps({"data": split.train.name, "median_epoch_s": statistics.median(secs[1:] or secs),
                      "samples_per_s": rows / statistics.median(secs[1:] or secs), "test_rmse": h.epochs[-1]["test"]}))


def fmt(run, key, spec):
    return format(run[key], spec) if run else "failed"


def main():
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        return train_child(sys.argv[i + 1], int(sys.argv[i + 2]), int(sys.argv[i + 3]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    log, summary = [], {"machine": platform.node(), "python": platform.python_version()}
    t_all = time.perf_counter()

    major, info = cuda_major()
    summary["nvidia-smi"] = info
    print(f"GPU: {summary['nvidia-smi']}", flush=True)

    if "--no-install" not in sys.argv:
        pkg = f"cupy-cuda{major}x" if major else "cupy-cuda12x"
        code, out, secs = sh([sys.executable, "-m", "pip", "install", "--quiet", "-r", "requirements.txt",
                              "-r", "requirements-test.txt", pkg], timeout=900)
        log.append(("install requirements and " + pkg, code, secs, out))
        print(f"install: {'ok' if code == 0 else 'FAILED'} in {secs:.0f} s", flush=True)

    code, out, secs = sh([sys.executable, "-m", "pytest", "tests/test_backends.py", "-q", "-p", "no:cacheprovider",
                          "-k", "cupy"], timeout=600)
    tail = out.strip().splitlines()[-1] if out.strip() else ""
    log.append(("CuPy tests", code, secs, out))
    summary["cupy_tests"] = tail
    print(f"CuPy tests: {tail} ({secs:.0f} s)", flush=True)

    runs = {}
    for batch in (128, 4096):
        for backend in ("numpy", "cupy"):
            code, out, secs = sh([sys.executable, __file__, "--child", backend, str(batch), "3"], timeout=900)
            # the child's result line, wherever a warning on stderr put it in the output
            line = next((s for s in reversed(out.splitlines()) if s.startswith(RESULT)), "")
            try:
                runs[(backend, batch)] = json.loads(line[len(RESULT):])
            except ValueError:
                runs[(backend, batch)] = None
                log.append((f"train {backend} batch {batch}", code, secs, out))
            r = runs[(backend, batch)]
            print(f"train {backend:<5} batch {batch:>5}: " + (f"{r['samples_per_s']:,.0f} samples/s, test RMSE "
                  f"{r['test_rmse']:.4f}" if r else "FAILED"), flush=True)

    nb = ROOT / "notebooks" / "07_gpu_cupy.ipynb"
    code, out, secs = sh([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                          "--ExecutePreprocessor.timeout=900", str(nb)], timeout=1200)
    log.append(("notebook 7", code, secs, out))
    summary["notebook7"] = "executed, outputs stored" if code == 0 else "FAILED"
    print(f"notebook 7: {summary['notebook7']} ({secs:.0f} s)", flush=True)

    print("\n| batch | CPU samples/s | GPU samples/s | GPU / CPU | CPU test RMSE | GPU test RMSE |")
    print("|---|---|---|---|---|---|")
    summary["runs"] = {}
    for batch in (128, 4096):
        c, g = runs.get(("numpy", batch)), runs.get(("cupy", batch))
        ratio = g["samples_per_s"] / c["samples_per_s"] if c and g else None
        summary["runs"][batch] = {"cpu": c, "gpu": g, "gpu_over_cpu": ratio}
        print(f"| {batch} | {fmt(c, 'samples_per_s', ',.0f')} | {fmt(g, 'samples_per_s', ',.0f')} | "
              f"{format(ratio, '.1f') + 'x' if ratio else '-'} | {fmt(c, 'test_rmse', '.4f')} | "
              f"{fmt(g, 'test_rmse', '.4f')} |")
    summary["total_seconds"] = time.perf_counter() - t_all
    print(f"total {summary['total_seconds']:.0f} s; CuPy tests: {summary['cupy_tests']}; notebook 7: "
          f"{summary['notebook7']}")
    (RESULTS / "gpu_check.json").write_text(json.dumps(summary, indent=1, default=str))
    (RESULTS / "gpu_check.log").write_text("\n\n".join(f"== {name} (exit {code}, {secs:.0f} s)\n{out}"
                                                      for name, code, secs, out in log))
    if os.environ.get("OUT"):
        out_dir = Path(os.environ["OUT"])
        shutil.copytree(RESULTS, out_dir / "gpu", dirs_exist_ok=True)
        shutil.copy(nb, out_dir / nb.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
