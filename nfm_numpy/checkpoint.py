"""Checkpoints: a model's parameters, batch-norm state and configuration in one .npz.

No pickle anywhere: arrays are stored as arrays and the configuration as a JSON
string, and files are read with ``allow_pickle=False``. Files are written
through a temporary file and renamed into place (``outputs.write_atomically``):
an interrupted or failed save leaves the old file as it was and no temporary
file behind; only a regular file is ever replaced, and it keeps its mode.

Loading checks everything a damaged or foreign file could get wrong, and
names it: the configuration must hold every key a model needs and no other,
every array must have the shape and dtype the configuration implies, weights
must be finite and batch-norm variances non-negative, and the saved id map
(``extra/raw_ids``) must be one id per feature, all distinct.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from . import backend as B
from .errors import CheckpointError, InputError
from .outputs import write_atomically

FORMAT = "nfm_numpy-checkpoint-1"


def save(model, path, extra=None):
    """Write ``model`` to ``path`` (.npz). ``extra``: a dict of host arrays to keep beside it
    (``raw_ids``, the original feature ids of the dense ids; an encoder's arrays).
    Raises ``errors.OutputError`` naming the path if it cannot be written."""
    arrays = {f"param/{n}": B.to_numpy(a) for n, a in model.params.items()}
    arrays.update({f"state/{n}": B.to_numpy(a) for n, a in model.state.items()})
    arrays.update({f"extra/{n}": np.asarray(a) for n, a in (extra or {}).items() if a is not None})
    arrays["config"] = np.array(json.dumps({"format": FORMAT, **model.config}))
    return write_atomically(path, lambda f: np.savez(f, **arrays), "checkpoint")


def _read(path):
    try:
        f = np.load(path, allow_pickle=False)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except ValueError as e:
        if "pickle" in str(e):      # NumPy's text would suggest allow_pickle=True: never do that
            raise CheckpointError(f"{path}: not an nfm_numpy checkpoint (not a .npz archive; pickled data "
                                  "is never loaded)") from None
        raise CheckpointError(f"{path}: not a readable checkpoint ({e})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (damaged or not a .npz file: {e})") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise CheckpointError(f"{path}: a single .npy array, not an nfm_numpy checkpoint (.npz)")
    try:
        with f:
            return {k: f[k] for k in f.files}
    except ValueError as e:
        if "pickle" in str(e):
            raise CheckpointError(f"{path}: not an nfm_numpy checkpoint (it holds pickled objects, which are "
                                  "never loaded)") from None
        raise CheckpointError(f"{path}: not a readable checkpoint ({e})") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (damaged: {e})") from None


def load(path, backend="numpy", device=None):
    """Read a checkpoint: returns ``(model, extra)``. Raises ``CheckpointError`` for a file
    that is not a checkpoint, is damaged, or whose arrays do not fit its configuration."""
    from .model import build

    path = Path(path)
    files = _read(path)
    if "config" not in files:
        raise CheckpointError(f"{path}: no configuration inside; not an nfm_numpy checkpoint")
    try:
        config = json.loads(str(files["config"]))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: damaged configuration ({e})") from None
    if not isinstance(config, dict) or config.pop("format", None) != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format (expected {FORMAT})")
    try:
        model = build(config)
    except InputError as e:
        raise CheckpointError(f"{path}: the configuration does not describe a model: {e}") from None
    for group, target in (("param", model.params), ("state", model.state)):
        stored = {k.split("/", 1)[1]: v for k, v in files.items() if k.startswith(group + "/")}
        if set(stored) != set(target):
            raise CheckpointError(f"{path}: {group} names {sorted(stored)} do not match the model's "
                                  f"{sorted(target)}")
        for n, a in stored.items():
            if a.shape != target[n].shape or a.dtype != target[n].dtype:
                raise CheckpointError(f"{path}: {group} {n} has shape {a.shape} {a.dtype}, the model expects "
                                      f"{target[n].shape} {target[n].dtype}")
            if not np.all(np.isfinite(a)):
                raise CheckpointError(f"{path}: {group} {n} holds {int((~np.isfinite(a)).sum())} NaN or "
                                      "infinite values; the file is damaged or was saved from a diverged run")
            if group == "state" and n.startswith("var") and np.any(a < 0):
                raise CheckpointError(f"{path}: batch-norm running variance {n} is negative; the file is damaged")
            target[n] = a
    extra = {k.split("/", 1)[1]: v for k, v in files.items() if k.startswith("extra/")}
    if "raw_ids" in extra:
        _check_raw_ids(path, extra["raw_ids"], model.config["n_features"])
    return model.to(backend, device), extra


def _check_raw_ids(path, raw, n):
    if raw.ndim != 1 or raw.shape[0] != n or not np.issubdtype(raw.dtype, np.integer):
        raise CheckpointError(f"{path}: the id map raw_ids must be {n} integers, one per feature; "
                              f"got shape {raw.shape} {raw.dtype}")
    if raw.size and (raw.min() < 0 or np.unique(raw).size != raw.size):
        raise CheckpointError(f"{path}: the id map raw_ids must hold distinct non-negative ids")
