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
import os
import zipfile
from pathlib import Path

import numpy as np

from . import backend as B
from .errors import CheckpointError, InputError, OptionTypeError
from .outputs import write_atomically

FORMAT = "nfm_numpy-checkpoint-1"


def save(model, path, extra=None):
    """Write ``model`` to ``path`` (.npz). ``extra``: a dict of host arrays to keep beside it
    (``raw_ids``, the original feature ids of the dense ids; an encoder's arrays).
    Raises ``errors.OutputError`` naming the path if it cannot be written. A model with
    non-finite weights, or an ``extra`` that ``load`` would refuse, is refused before writing."""
    from .model import NFM
    if not isinstance(model, NFM):
        raise OptionTypeError(f"checkpoint.save needs an NFM or FM model, got {type(model).__name__}")
    if extra is not None and not isinstance(extra, dict):
        raise OptionTypeError(f"extra must be a dict of name -> array, got {type(extra).__name__}")
    arrays = {f"param/{n}": B.to_numpy(a) for n, a in model.params.items()}
    bad = [n for n, a in arrays.items() if not np.all(np.isfinite(a))]
    if bad:
        raise CheckpointError(f"{bad[0].split('/')[1]} holds NaN or infinite values: a diverged model is not saved")
    arrays.update({f"state/{n}": B.to_numpy(a) for n, a in model.state.items()})
    for n, a in (extra or {}).items():
        if a is None:
            continue
        a = np.asarray(a)
        if a.dtype.kind == "O":
            raise OptionTypeError(f"extra {n!r} holds Python objects, which a checkpoint never stores (no pickle)")
        arrays[f"extra/{n}"] = a
    if "extra/raw_ids" in arrays:
        _check_raw_ids("extra", arrays["extra/raw_ids"], model.config["n_features"])
    if model.label_range is not None:
        arrays["extra/label_range"] = np.asarray(model.label_range, dtype=np.float64)
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

    if not isinstance(path, (str, os.PathLike)):
        raise OptionTypeError(f"checkpoint.load needs a path, got {path!r}")
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
    # the tables first, before a model of the configured size is built: a damaged or forged
    # configuration must not allocate gigabytes before its arrays are found not to fit
    V, w = files.get("param/V"), files.get("param/w")
    want = (config.get("n_features"), config.get("k"))
    if V is None or w is None or V.shape != want or w.shape != want[:1]:
        raise CheckpointError(f"{path}: the tables w {None if w is None else w.shape} and V "
                              f"{None if V is None else V.shape} do not match the configuration "
                              f"(n_features {want[0]}, k {want[1]})")
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
    if "label_range" in extra:
        lr = extra["label_range"]
        if lr.shape != (2,) or not np.all(np.isfinite(lr)) or lr[0] > lr[1]:
            raise CheckpointError(f"{path}: the label range {lr.tolist()} is damaged")
        model.label_range = (float(lr[0]), float(lr[1]))
    return model.to(backend, device), extra


def _check_raw_ids(path, raw, n):
    if raw.ndim != 1 or raw.shape[0] != n or not np.issubdtype(raw.dtype, np.integer):
        raise CheckpointError(f"{path}: the id map raw_ids must be {n} integers, one per feature; "
                              f"got shape {raw.shape} {raw.dtype}")
    if raw.size and (raw.min() < 0 or np.unique(raw).size != raw.size):
        raise CheckpointError(f"{path}: the id map raw_ids must hold distinct non-negative ids")
