"""Checkpoints: a model's parameters, batch-norm state and configuration in one .npz.

No pickle anywhere: arrays are stored as arrays and the configuration as a JSON
string, and files are read with ``allow_pickle=False``. Files are written
atomically (to a temporary file in the same folder, then renamed), so an
interrupted save never leaves a half-written checkpoint behind.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import backend as B

FORMAT = "nfm_numpy-checkpoint-1"


class CheckpointError(ValueError):
    pass


def save(model, path, extra=None):
    """Write ``model`` to ``path`` (.npz). ``extra``: a dict of host arrays to keep beside it
    (e.g. ``raw_ids``, the original feature ids of the dense ids)."""
    path = Path(path)
    arrays = {f"param/{n}": B.to_numpy(a) for n, a in model.params.items()}
    arrays.update({f"state/{n}": B.to_numpy(a) for n, a in model.state.items()})
    arrays.update({f"extra/{n}": np.asarray(a) for n, a in (extra or {}).items()})
    arrays["config"] = np.array(json.dumps({"format": FORMAT, **model.config}))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def load(path, backend="numpy", device=None):
    """Read a checkpoint: returns ``(model, extra)``. Raises ``CheckpointError`` for a file
    that is not a checkpoint, is damaged, or whose arrays do not fit its configuration."""
    from .model import build

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            files = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({e})") from e
    if "config" not in files:
        raise CheckpointError(f"{path}: no configuration inside; not an nfm_numpy checkpoint")
    try:
        config = json.loads(str(files["config"]))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: damaged configuration ({e})") from e
    if config.pop("format", None) != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format (expected {FORMAT})")
    try:
        model = build(config)
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: configuration does not describe a model ({e})") from e
    for group, target in (("param", model.params), ("state", model.state)):
        stored = {k.split("/", 1)[1]: v for k, v in files.items() if k.startswith(group + "/")}
        if set(stored) != set(target):
            raise CheckpointError(f"{path}: {group} names {sorted(stored)} do not match the model's "
                                  f"{sorted(target)}")
        for n, a in stored.items():
            if a.shape != target[n].shape or a.dtype != target[n].dtype:
                raise CheckpointError(f"{path}: {group} {n} has shape {a.shape} {a.dtype}, the model expects "
                                      f"{target[n].shape} {target[n].dtype}")
            target[n] = a
    extra = {k.split("/", 1)[1]: v for k, v in files.items() if k.startswith("extra/")}
    return model.to(backend, device), extra
