"""Checkpoints: a model's parameters, batch-norm state and configuration in one .npz.

Two kinds of model are saved: an ``NFM`` or ``FM`` (its parameters and batch-norm state), and a
Bayesian FM (``bayes.BayesFM``): its kept posterior samples of (w0, w, V), from which it predicts
new rows (the posterior mean over them), not a single averaged model (the posterior mean of the
prediction is not the prediction of the mean parameters: the FM is quadratic in V).

No pickle anywhere: arrays are stored as arrays and the configuration as a JSON
string. Files are written through a temporary file and renamed into place
(``outputs.write_atomically``): an interrupted or failed save leaves the old
file as it was and no temporary file behind; only a regular file is ever
replaced, and it keeps its mode.

The format is closed: an archive holds ``config``, and for an NFM or FM
``param/<name>`` and ``state/<name>`` for the configured model, for a Bayesian
FM (``kind`` "bayes_fm" in the configuration) ``samples/w0``, ``samples/w`` and
``samples/V`` and nothing of the other kind; optionally ``extra/raw_ids``
(the libFM id map), ``extra/label_range`` and a feature encoder
(``extra/encoder``; ``extra/encoder.vocab<i>`` and ``extra/encoder.rare<i>`` for a
categorical or multi-valued field i of the encoder's JSON, ``extra/encoder.edges<i>`` for a
bucketed one: what ``Encoder.to_arrays`` writes, nothing else). ``save`` writes nothing else, and
``load`` refuses anything else, naming it, without decompressing it: a member
nobody reads is still a member someone put there, and ignoring it silently
would hide a foreign or edited file.

Loading never trusts the archive. The .npz is opened with ``zipfile``, and
before a single byte of data is decompressed every member's .npy header is
read and checked: a plain numeric or text dtype (pickled objects are never
loaded), a declared size equal to what the header describes, and a shape
the configuration allows (the parameters exactly; a Bayesian FM's samples
(keep,), (keep, n_features) and (keep, n_features, k) float64, with keep,
n_features, k and the rest of its configuration checked first; the id map one integer
per feature; the encoder's vocabularies and edges no more entries than the
model has features, its rare values no more than its JSON declares; the
JSON texts and each vocabulary value a bounded size), the parameters checked
against the shapes the configuration implies before the model is built, and
no member over 16 MiB, nor all members together, may decompress to more
than 100 times the stored size. So a small forged file cannot make a
load spend minutes and gigabytes (a "zip bomb"). Then the values are checked: weights and samples finite,
batch-norm variances non-negative, the id map distinct, the encoder
describing exactly the model's features.
"""
from __future__ import annotations

import collections
import json
import os
import re
import stat
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import backend as B, errors as E
from .errors import CheckpointError, CheckpointNotFound, InputError, OptionTypeError
from .outputs import write_atomically

FORMAT = "nfm_numpy-checkpoint-1"

_CONFIG_MAX = 1 << 20              # bytes of the configuration's JSON text (a real one is a few hundred)
_TEXT_MAX = 4 << 20                # bytes of the encoder's JSON text, plus _TEXT_PER_FEATURE per feature
_TEXT_PER_FEATURE = 4 << 10
_RATIO_MAX, _RATIO_FROM = 100, 16 << 20    # text members over 16 MiB may be at most 100x their compressed size
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
_NAME = re.compile(r"(config|(param|state)/[A-Za-z0-9_]+|samples/(w0|w|V)|"
                   r"extra/(raw_ids|label_range|encoder(\.(vocab|rare|edges)(0|[1-9][0-9]{0,8}))?))\.npy\Z")
_VALUE_MAX = 16 << 10              # bytes of one vocabulary or rare value (4,096 characters of UTF-32 text)
BAYES = "bayes_fm"                 # the configuration's kind of a Bayesian FM (bayes.fit)
_SAMPLES = ("w0", "w", "V")        # its members samples/<name>: the kept samples
# a Bayesian FM's configuration, as bayes.fit writes it: the keys it must have, and those it may have
_BAYES_KEYS = ("kind", "task", "n_features", "k", "n_samples", "burn_in", "keep", "prior")
_BAYES_OPTIONAL = ("seed", "init_std", "n_groups", "n_blocks")


# ---------------------------------------------------------------------------- save
def save(model, path, extra=None):
    """Write ``model`` to ``path`` (.npz; exactly that path, no suffix added). ``extra``: host
    arrays to keep beside it: ``raw_ids`` (the original feature id of each dense id) and/or a
    feature encoder's arrays (``Encoder.to_arrays()``); nothing else, as the format is closed.
    Raises ``errors.OutputError`` naming the path if it cannot be written. A model with
    non-finite weights, or an ``extra`` that ``load`` would refuse, is refused before writing.
    ``model``: an ``NFM`` or ``FM``, or a ``bayes.BayesFM`` (its kept samples are saved; one
    that kept none cannot predict and is refused)."""
    from .bayes import BayesFM
    from .model import NFM
    if not isinstance(model, (NFM, BayesFM)):
        raise OptionTypeError(f"checkpoint.save needs an NFM, FM or BayesFM model, got {type(model).__name__}")
    if extra is not None and not isinstance(extra, dict):
        raise OptionTypeError(f"extra must be a dict of name -> array, got {type(extra).__name__}")
    if isinstance(model, BayesFM):
        arrays = _bayes_arrays(path, model)
    else:
        arrays = {f"param/{n}": B.to_numpy(a) for n, a in model.params.items()}
        bad = [n for n, a in arrays.items() if not np.all(np.isfinite(a))]
        if bad:
            raise CheckpointError(f"{bad[0].split('/')[1]} holds NaN or infinite values: a diverged model is not "
                                  "saved")
        arrays.update({f"state/{n}": B.to_numpy(a) for n, a in model.state.items()})
    kept = {}
    for n, a in (extra or {}).items():
        if a is None:
            continue
        a = np.asarray(a)
        if a.dtype.kind == "O":
            raise OptionTypeError(f"extra {n!r} holds Python objects, which a checkpoint never stores (no pickle)")
        if not isinstance(n, str) or n == "label_range" or not _NAME.match(f"extra/{n}.npy"):
            raise OptionTypeError(f"extra {n!r} is not part of the checkpoint format: it keeps raw_ids and a "
                                  "feature encoder's arrays (Encoder.to_arrays()) only")
        kept[n] = a
    n_features = model.config["n_features"]
    _check_extras("extra", kept, n_features)
    rare = _rare_counts("extra", kept["encoder"]) if "encoder" in kept else {}
    _check_extra_shapes("extra", {n: (a.shape, a.dtype, a.nbytes) for n, a in kept.items()}, n_features, rare)
    arrays.update({f"extra/{n}": a for n, a in kept.items()})
    label_range = getattr(model, "label_range", None)
    if label_range is not None:
        lr = np.asarray(label_range, dtype=np.float64)
        if lr.shape != (2,) or not np.all(np.isfinite(lr)) or lr[0] > lr[1]:
            raise CheckpointError(f"the model's label_range {label_range!r} is not a range (lo, hi) of finite "
                                  "numbers, lo <= hi; load would refuse it")
        arrays["extra/label_range"] = lr
    arrays["config"] = np.array(json.dumps({"format": FORMAT, **model.config}))
    return write_atomically(path, lambda f: np.savez(f, **arrays), "checkpoint")


# ---------------------------------------------------------------------------- the archive
class _Member(NamedTuple):
    """One .npy member of the archive, described by its header (its data not yet read)."""

    info: zipfile.ZipInfo
    shape: tuple
    dtype: np.dtype
    nbytes: int


class _Counting:
    """A file object that counts the bytes read through it (to find the end of a .npy header)."""

    def __init__(self, f):
        self.f, self.n = f, 0

    def read(self, size=-1):
        data = self.f.read(size)
        self.n += len(data)
        return data


_ARCHIVE_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError,
                   RuntimeError)           # RuntimeError: an encrypted member


def _open(path):
    """The archive at ``path`` as a ``zipfile.ZipFile``; a ``CheckpointError`` for what is not one."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CheckpointNotFound(f"{path}: No such file or directory (no checkpoint there)") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO, device or socket)"
        raise CheckpointError(f"{path} is {kind}, not a checkpoint file")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        raise CheckpointError(f"{path}: a single .npy array, not an nfm_numpy checkpoint (.npz)")
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        if magic.startswith(b"PK"):
            raise CheckpointError(f"{path}: not a readable checkpoint (a truncated or damaged .npz: {e})") from None
        what = ("the file is empty" if not magic else "a pickle, which is never loaded" if magic[:1] == b"\x80"
                else "not a .npz archive")
        raise CheckpointError(f"{path}: not an nfm_numpy checkpoint ({what})") from None
    except _ARCHIVE_ERRORS as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (damaged: {e})") from None


def _members(path, zf):
    """Every member's .npy header, by key (``param/V``), checked; no data is decompressed."""
    infos = zf.infolist()
    count = collections.Counter(i.filename for i in infos)
    if "config.npy" not in count:
        raise CheckpointError(f"{path}: no configuration inside; not an nfm_numpy checkpoint")
    out = {}
    for info in infos:
        name = info.filename
        if count[name] > 1:
            raise CheckpointError(f"{path}: the member {name!r} appears {count[name]} times; the file was "
                                  "not written by nfm_numpy or is damaged")
        if info.is_dir():
            raise CheckpointError(f"{path}: the member {name!r} is a folder; a checkpoint holds arrays only")
        if not name.endswith(".npy"):
            _unknown(path, name)
        if info.flag_bits & 0x1:
            raise CheckpointError(f"{path}: the member {name!r} is encrypted")
        if info.compress_type not in _METHODS:
            raise CheckpointError(f"{path}: the member {name!r} uses compression method {info.compress_type}, "
                                  "which a .npz does not")
        member = _header(path, zf, info)            # its header only: pickled objects are named as such
        if not _NAME.match(name):
            _unknown(path, name)
        _check_ratio(path, member)
        out[name[:-4]] = member
    _check_total_ratio(path, out.values())
    return out


def _unknown(path, name):
    raise CheckpointError(f"{path}: the member {name!r} is not part of an nfm_numpy checkpoint (it holds config, "
                          "param/ and state/ (an NFM or FM) or samples/w0, w, V (a Bayesian FM), and extra/raw_ids, "
                          "label_range, encoder arrays only); its data was not read")


def _header(path, zf, info):
    """The ``_Member`` of ``info``: its .npy header read (a few hundred bytes decompressed) and checked."""
    where = f"{path}: the member {info.filename!r}"
    try:
        with zf.open(info) as raw:
            f = _Counting(raw)
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f".npy version {version} is not one numpy.savez writes for these arrays")
    except _ARCHIVE_ERRORS as e:
        raise CheckpointError(f"{where} is damaged: not a readable .npy array ({e})") from None
    if dtype.hasobject:
        raise CheckpointError(f"{where} holds pickled objects, which are never loaded")
    if dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in "biufU":
        raise CheckpointError(f"{where} has dtype {dtype}; a checkpoint holds numbers and text only")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if info.file_size != f.n + nbytes:
        raise CheckpointError(f"{where} is damaged: its header describes {nbytes:,} bytes of data (shape {shape} "
                              f"{dtype}), the archive entry holds {info.file_size - f.n:,}")
    return _Member(info, tuple(shape), dtype, nbytes)


def _read(path, zf, m):
    """The data of member ``m``, once its header has been checked against what the format allows."""
    try:
        with zf.open(m.info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except _ARCHIVE_ERRORS as e:
        raise CheckpointError(f"{path}: the member {m.info.filename!r} is damaged ({e})") from None


def _check_text(path, key, m, limit):
    """A 0-d text member (a JSON string) of at most ``limit`` bytes."""
    if m.shape != () or m.dtype.kind != "U":
        raise CheckpointError(f"{path}: {key} must be one text string, got shape {m.shape} {m.dtype}")
    if m.nbytes > limit:
        raise CheckpointError(f"{path}: {key} declares {m.nbytes:,} bytes of text, more than the {limit:,} "
                              "a checkpoint needs; the file is damaged or forged, and was not read further")


def _check_ratio(path, m):
    """Refuse a member over 16 MiB that decompresses to over 100 times its stored size: a "zip
    bomb". nfm_numpy writes members uncompressed, and weights recompressed by hand shrink a little,
    not a hundredfold; without this a forged configuration could declare gigabytes of zeros that
    fit its own shapes exactly. Checked before the model is built."""
    info = m.info
    if info.file_size > _RATIO_FROM and info.file_size > _RATIO_MAX * max(info.compress_size, 1):
        raise CheckpointError(f"{path}: the member {info.filename!r} declares {info.file_size / 2**20:,.0f} MiB "
                              f"from {info.compress_size:,} bytes stored (over {_RATIO_MAX}:1); refused unread as a "
                              "possible zip bomb (checkpoint.save writes members uncompressed)")


def _check_total_ratio(path, members):
    """The same bound over the whole archive: many members, each under 16 MiB, may not together
    declare more than 16 MiB at over 100:1 (250 members of 15 MB of zeros each are still a bomb)."""
    members = list(members)
    declared = sum(m.info.file_size for m in members)
    stored = sum(m.info.compress_size for m in members)
    if declared > _RATIO_FROM and declared > _RATIO_MAX * max(stored, 1):
        raise CheckpointError(f"{path}: its {len(members)} members declare {declared / 2**20:,.0f} MiB together "
                              f"from {stored:,} bytes stored (over {_RATIO_MAX}:1); refused unread as a possible zip "
                              "bomb (checkpoint.save writes members uncompressed)")


_PART = re.compile(r"encoder\.(vocab|rare|edges)(\d+)\Z")
_FEATURES = re.compile(r"encoder\.(vocab|edges)\d+\Z")


def _check_extra_shape(path, name, shape, dtype, nbytes, n_features, rare):
    """What the format allows for the extra array ``name``, from its shape and dtype alone.
    ``rare``: field index -> (its kind, the number of rare values) as the encoder's JSON declares:
    ``Encoder.to_arrays`` writes encoder.vocab<i> and encoder.rare<i> for a categorical or
    multi-valued field i, encoder.edges<i> for a bucketed one, and nothing else."""
    if name == "raw_ids":
        if shape != (n_features,) or dtype.kind not in "iu" or dtype.itemsize > 8:
            raise CheckpointError(f"{path}: the id map raw_ids must be {n_features} integers, one per feature; "
                                  f"got shape {shape} {dtype}")
    elif name == "label_range":
        if shape != (2,) or dtype.kind != "f":
            raise CheckpointError(f"{path}: the label range must be 2 numbers, got shape {shape} {dtype}")
    elif name == "encoder":
        if shape != () or dtype.kind != "U":
            raise CheckpointError(f"{path}: the encoder must be one JSON text, got shape {shape} {dtype}")
        limit = _TEXT_MAX + _TEXT_PER_FEATURE * n_features
        if nbytes > limit:
            raise CheckpointError(f"{path}: the encoder declares {nbytes:,} bytes of text, more than the "
                                  f"{limit:,} a model of {n_features} features needs; the file is damaged or forged")
    part = _PART.match(name)
    if part is None:
        return
    what, i = part.group(1), int(part.group(2))
    kind = rare.get(i, (None, 0))[0]
    if kind not in (("buckets",) if what == "edges" else ("categorical", "multi")):
        why = (f"the encoder declares {len(rare)} fields, none numbered {i}" if kind is None else
               f"the encoder's field {i} is {kind!r}, which has no {what} array")
        raise CheckpointError(f"{path}: the member 'extra/{name}.npy' is not part of this checkpoint ({why}); "
                              "its data was not read")
    if what == "edges":
        if dtype.kind != "f" or dtype.itemsize > 8:
            raise CheckpointError(f"{path}: the encoder array {name} must hold bucket edges (floats), got "
                                  f"{dtype}")
    elif dtype.kind not in "Uiub" or (dtype.kind != "U" and dtype.itemsize > 8) or dtype.itemsize > _VALUE_MAX:
        raise CheckpointError(f"{path}: the encoder array {name} has dtype {dtype} ({dtype.itemsize:,} bytes a "
                              f"value); a vocabulary value is text of at most {_VALUE_MAX // 4:,} characters; "
                              "the file is damaged or forged, and its data was not read")
    if what == "rare":                        # rare values are not features: their count is in the JSON
        declared = rare[i][1]
        if len(shape) != 1 or shape[0] > declared:
            raise CheckpointError(f"{path}: the encoder array {name} must list at most the {declared} rare values "
                                  f"the encoder declares, got shape {shape}")
    elif len(shape) != 1 or shape[0] > n_features:
        raise CheckpointError(f"{path}: the encoder array {name} must be a list of at most {n_features} entries "
                              f"(the model's features), got shape {shape}")


def _rare_counts(path, text):
    """Field index -> (its kind, the number of rare values) as the encoder's JSON ``text`` declares."""
    try:
        spec = json.loads(str(text))
        return {i: (f.get("kind"), int(f.get("counts", {}).get("rare", 0))) for i, f in enumerate(spec["fields"])}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:
        raise CheckpointError(f"{path}: the saved feature encoder is damaged ({type(e).__name__}: {e})") from None


def _check_extra_shapes(path, shapes, n_features, rare):
    """Every extra array's shape against the format; ``shapes``: name -> (shape, dtype, nbytes).
    Vocabulary values and bucket edges are features: together no more than the model's."""
    for name, (shape, dtype, nbytes) in shapes.items():
        _check_extra_shape(path, name, shape, dtype, nbytes, n_features, rare)
    entries = sum(shape[0] for name, (shape, _, _) in shapes.items() if _FEATURES.match(name))
    if entries > n_features:
        raise CheckpointError(f"{path}: the encoder's vocabularies and bucket edges hold {entries:,} entries, more "
                              f"than the model's {n_features:,} features")


def _bound_extras(path, zf, members, n_features):
    """Check every extra member's header against the format before any of them is read (the
    encoder's JSON, itself bounded, is read first: it declares how many rare values there are)."""
    extras = {k[len("extra/"):]: m for k, m in members.items() if k.startswith("extra/")}
    parts = sorted(n for n in extras if n.startswith("encoder."))
    if parts and "encoder" not in extras:
        raise CheckpointError(f"{path}: encoder arrays {parts} without the encoder itself; their data was not read")
    rare = {}
    if "encoder" in extras:
        m = extras["encoder"]
        _check_extra_shape(path, "encoder", m.shape, m.dtype, m.nbytes, n_features, rare)
        rare = _rare_counts(path, _read(path, zf, m))
    _check_extra_shapes(path, {n: (m.shape, m.dtype, m.nbytes) for n, m in extras.items()}, n_features, rare)


# ---------------------------------------------------------------------------- load
def load(path, backend="numpy", device=None):
    """Read a checkpoint: returns ``(model, extra)``. Raises ``CheckpointError`` for a file
    that is not a checkpoint, is damaged, or whose arrays do not fit its configuration."""
    if not isinstance(path, (str, os.PathLike)):
        raise OptionTypeError(f"checkpoint.load needs a path, got {path!r}")
    path = Path(path)
    with _open(path) as zf:
        members = _members(path, zf)
        config = _config(path, zf, members)
        if config.get("kind") == BAYES:
            return _load_bayes(path, zf, members, config, backend, device)
        _not_of_kind(path, members, "samples/", config.get("kind"))
        model = _model(path, members, config)
        n = model.config["n_features"]
        _bound_extras(path, zf, members, n)
        _fill(path, zf, members, model)
        extra = {k.split("/", 1)[1]: _read(path, zf, m) for k, m in members.items() if k.startswith("extra/")}
    _check_extras(path, extra, n)
    if "label_range" in extra:
        model.label_range = _label_range(path, extra["label_range"])
    return model.to(backend, device), extra


def _config(path, zf, members):
    """The configuration dict (its size checked before it is read; the format marker removed)."""
    _check_text(path, "the configuration", members["config"], _CONFIG_MAX)
    try:
        config = json.loads(str(_read(path, zf, members["config"])))
    except (json.JSONDecodeError, RecursionError) as e:      # RecursionError: '[[[[...' nested too deep
        raise CheckpointError(f"{path}: damaged configuration ({type(e).__name__}: {e})") from None
    if not isinstance(config, dict) or config.pop("format", None) != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format (expected {FORMAT})")
    return config


def _shapes(path, config):
    """The parameters' and state's (shape, dtype) that ``config`` implies, by model.py's naming
    (w0, w, V; gamma<l>, beta<l>, mean<l>, var<l> with batch norm; W<l>, b<l>; h for an NFM),
    computed from the configuration alone: nothing is allocated."""
    from .model import CONFIG_KEYS, DTYPES
    missing = [k for k in CONFIG_KEYS if k not in config]
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if missing or unknown:
        raise CheckpointError(f"{path}: the configuration does not describe a model: model configuration " + "; ".join(
            ([f"lacks {', '.join(missing)}"] if missing else []) + ([f"has unknown {', '.join(unknown)}"]
                                                                    if unknown else [])))
    try:
        kind = E.choice(config["kind"], "kind", ("nfm", "fm"))
        n = E.integer(config["n_features"], "n_features", 1)
        k = E.integer(config["k"], "k", 1)
        layers = E.int_list(config["layers"], "layers", 1)
        bn = E.flag(config["batch_norm"], "batch_norm")
        dtype = np.dtype(E.choice(config["dtype"], "dtype", DTYPES))
    except InputError as e:
        raise CheckpointError(f"{path}: the configuration does not describe a model: {e}") from None
    params = {"w0": (), "w": (n,), "V": (n, k)}
    state = {}
    if bn:
        params.update(gamma0=(k,), beta0=(k,))
        state.update(mean0=(k,), var0=(k,))
    d_in = k
    for l, d in enumerate(layers, start=1):
        params[f"W{l}"], params[f"b{l}"] = (d_in, d), (d,)
        if bn:
            params[f"gamma{l}"], params[f"beta{l}"] = (d,), (d,)
            state[f"mean{l}"], state[f"var{l}"] = (d,), (d,)
        d_in = d
    if kind == "nfm":
        params["h"] = (d_in,)
    return {"param": {n_: (s, dtype) for n_, s in params.items()}, "state": {n_: (s, dtype) for n_, s in state.items()}}


def _model(path, members, config):
    """A model of the configuration, every stored parameter's and state's header checked against
    the shapes the configuration implies BEFORE the model is built (which draws every layer), so
    a forged configuration (layers [20000, 20000] in a 12 KB file) allocates nothing its arrays do
    not back; their data is not read yet."""
    from .model import build

    shapes = _shapes(path, config)            # the configuration's types and ranges checked first
    V, w = members.get("param/V"), members.get("param/w")
    want = (config["n_features"], config["k"])
    if V is None or w is None or V.shape != want or w.shape != want[:1]:
        raise CheckpointError(f"{path}: the tables w {None if w is None else w.shape} and V "
                              f"{None if V is None else V.shape} do not match the configuration "
                              f"(n_features {want[0]}, k {want[1]})")
    for group, want in shapes.items():
        stored = {k.split("/", 1)[1]: m for k, m in members.items() if k.startswith(group + "/")}
        if set(stored) != set(want):
            raise CheckpointError(f"{path}: {group} names {sorted(stored)} do not match the model's "
                                  f"{sorted(want)}")
        for n, m in stored.items():
            shape, dtype = want[n]
            if m.shape != shape or m.dtype != dtype:
                raise CheckpointError(f"{path}: {group} {n} has shape {m.shape} {m.dtype}, the model expects "
                                      f"{shape} {dtype}")
    try:
        model = build(config)
    except InputError as e:
        raise CheckpointError(f"{path}: the configuration does not describe a model: {e}") from None
    for group, target in (("param", model.params), ("state", model.state)):
        for n, a in target.items():          # the build agrees with _shapes (a guard against drift)
            m = members.get(f"{group}/{n}")
            if m is None or m.shape != a.shape or m.dtype != a.dtype:
                got = "is missing" if m is None else f"has shape {m.shape} {m.dtype}"
                raise CheckpointError(f"{path}: {group} {n} {got}, the model expects {a.shape} {a.dtype}")
    return model


def _fill(path, zf, members, model):
    """Read the parameters and state into ``model``: finite, batch-norm variances non-negative."""
    for group, target in (("param", model.params), ("state", model.state)):
        for n in list(target):
            a = _read(path, zf, members[f"{group}/{n}"])
            if not np.all(np.isfinite(a)):
                raise CheckpointError(f"{path}: {group} {n} holds {int((~np.isfinite(a)).sum())} NaN or "
                                      "infinite values; the file is damaged or was saved from a diverged run")
            if group == "state" and n.startswith("var") and np.any(a < 0):
                raise CheckpointError(f"{path}: batch-norm running variance {n} is negative; the file is damaged")
            target[n] = a


# ---------------------------------------------------------------------------- a Bayesian FM
def _not_of_kind(path, members, prefix, kind):
    """Refuse the first member under ``prefix`` (``samples/`` in an NFM's file, ``param/`` or
    ``state/`` in a Bayesian FM's), naming it: the other kind's arrays, which nothing would read."""
    prefixes = (prefix,) if isinstance(prefix, str) else prefix
    for key, m in members.items():
        if key.startswith(prefixes):
            holds = ("samples/w0, samples/w and samples/V" if kind == BAYES else "param/ and state/ arrays")
            raise CheckpointError(f"{path}: the member {m.info.filename!r} does not belong in a checkpoint of kind "
                                  f"{kind!r}, which holds {holds}; the file was edited or is damaged, and its data "
                                  "was not read")


def _bayes_config(path, config):
    """A Bayesian FM's configuration, checked (every key, its type and range); returns
    (n_features, k, keep) as ints. Checked on save and load alike."""
    missing = [k for k in _BAYES_KEYS if k not in config]
    unknown = sorted(set(config) - set(_BAYES_KEYS) - set(_BAYES_OPTIONAL))
    if missing or unknown:
        raise CheckpointError(f"{path}: the configuration of a Bayesian FM " + "; ".join(
            ([f"lacks {', '.join(missing)}"] if missing else []) + ([f"has unknown {', '.join(unknown)}"]
                                                                    if unknown else [])))
    from .bayes import TASKS, Prior, check_prior
    c = config
    try:
        E.choice(c["task"], "task", TASKS)
        n = E.integer(c["n_features"], "n_features", 1)
        k = E.integer(c["k"], "k", 1)
        n_samples = E.integer(c["n_samples"], "n_samples", 1)
        E.integer(c["burn_in"], "burn_in", 0)
        keep = E.integer(c["keep"], "keep", 1, n_samples)
        prior = c["prior"]
        if not isinstance(prior, dict) or set(prior) != set(Prior._fields):
            raise OptionTypeError(f"prior must hold {', '.join(Prior._fields)}, got {prior!r}")
        check_prior(Prior(**prior))
        if "seed" in c:
            E.integer(c["seed"], "seed", 0)
        if "init_std" in c:
            E.real(c["init_std"], "init_std", 0.0)
        for key in ("n_groups", "n_blocks"):
            if key in c:
                E.integer(c[key], key, 1, n)
    except InputError as e:
        raise CheckpointError(f"{path}: the configuration does not describe a Bayesian FM: {e}") from None
    return n, k, keep


def _sample_shapes(n, k, keep):
    return {"w0": (keep,), "w": (keep, n), "V": (keep, n, k)}


def _bayes_arrays(path, model):
    """What ``save`` writes of a ``BayesFM``: its kept samples (host float64), checked as ``load`` checks them."""
    if model.n_kept == 0:
        raise CheckpointError("this BayesFM kept no samples (fit with keep >= 1): it cannot predict, and is not saved")
    n, k, keep = _bayes_config(f"the BayesFM to save to {path}", model.config)
    arrays = {}
    for name, want in _sample_shapes(n, k, keep).items():
        a = np.asarray(B.to_numpy(getattr(model, name)))
        if a.dtype.kind != "f" or a.shape != want:
            raise CheckpointError(f"the BayesFM's samples {name} have shape {a.shape} {a.dtype}; its configuration "
                                  f"(keep {keep}, n_features {n}, k {k}) needs {want} float64")
        if not np.all(np.isfinite(a)):
            raise CheckpointError(f"the BayesFM's samples {name} hold NaN or infinite values: it is not saved")
        arrays[f"samples/{name}"] = a.astype(np.float64)
    return arrays


def _load_bayes(path, zf, members, config, backend, device):
    """``load`` for a configuration of kind "bayes_fm": the configuration, then every member's
    header (samples and extras) against it, then the data; returns (BayesFM, extra)."""
    from .bayes import BayesFM
    n, k, keep = _bayes_config(path, config)
    _not_of_kind(path, members, ("param/", "state/"), BAYES)
    for name, want in _sample_shapes(n, k, keep).items():
        m = members.get(f"samples/{name}")
        if m is None:
            raise CheckpointError(f"{path}: the member 'samples/{name}.npy' is missing; a Bayesian FM's checkpoint "
                                  "holds samples/w0, samples/w and samples/V")
        if m.shape != want or m.dtype != np.float64:
            raise CheckpointError(f"{path}: the member {m.info.filename!r} has shape {m.shape} {m.dtype}; the "
                                  f"configuration (keep {keep}, n_features {n}, k {k}) needs {want} float64; the "
                                  "file is damaged or forged, and its data was not read")
    _bound_extras(path, zf, members, n)
    samples = {}
    for name in _SAMPLES:
        m = members[f"samples/{name}"]
        a = _read(path, zf, m)
        if not np.all(np.isfinite(a)):
            raise CheckpointError(f"{path}: the member {m.info.filename!r} holds {int((~np.isfinite(a)).sum())} NaN "
                                  "or infinite values; the file is damaged")
        samples[name] = a
    extra = {k_.split("/", 1)[1]: _read(path, zf, m) for k_, m in members.items() if k_.startswith("extra/")}
    _check_extras(path, extra, n)
    model = BayesFM.from_arrays(config, samples)
    if "label_range" in extra:
        model.label_range = _label_range(path, extra["label_range"])
    xp = B.resolve(backend)
    if not B.is_numpy(xp) or device is not None:
        model.w0, model.w, model.V = (B.to_device(a, xp, device) for a in (model.w0, model.w, model.V))
    return model, extra


def _label_range(path, lr):
    if not np.all(np.isfinite(lr)) or lr[0] > lr[1]:
        raise CheckpointError(f"{path}: the label range {lr.tolist()} is damaged")
    return (float(lr[0]), float(lr[1]))


# ---------------------------------------------------------------------------- the extras
def _check_extras(path, extra, n):
    """The id map and the encoder, against the model's ``n`` features (on save and on load)."""
    if "raw_ids" in extra:
        _check_raw_ids(path, extra["raw_ids"], n)
    if "label_range" in extra and (extra["label_range"].shape != (2,) or extra["label_range"].dtype.kind != "f"):
        raise CheckpointError(f"{path}: the label range must be 2 numbers")
    encoder = {k: v for k, v in extra.items() if k == "encoder" or k.startswith("encoder.")}
    if encoder and "encoder" not in encoder:
        raise CheckpointError(f"{path}: encoder arrays {sorted(encoder)} without the encoder itself")
    if encoder:
        _check_encoder(path, encoder, n)


def _check_raw_ids(path, raw, n):
    """The libFM id map: ``n`` integers, one per feature, distinct and non-negative."""
    if raw.ndim != 1 or raw.shape[0] != n or not np.issubdtype(raw.dtype, np.integer):
        raise CheckpointError(f"{path}: the id map raw_ids must be {n} integers, one per feature; "
                              f"got shape {raw.shape} {raw.dtype}")
    if raw.size and (raw.min() < 0 or raw.max() > np.iinfo(np.int64).max or np.unique(raw).size != raw.size):
        raise CheckpointError(f"{path}: the id map raw_ids must hold distinct non-negative ids below 2^63")


def _check_encoder(path, arrays, n):
    """The saved feature encoder describes exactly the model's ``n`` features: fields in order,
    each range of ids inside [0, n), distinct names, distinct vocabulary values, sorted finite
    bucket edges, a separator for multi-valued fields. A mismatched encoder would read a CSV
    file into the wrong features without a word."""
    from .features import Encoder
    try:
        enc = Encoder.from_arrays(arrays)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise CheckpointError(f"{path}: the saved feature encoder is damaged ({e})") from None
    if enc.n_features != n:
        raise CheckpointError(f"{path}: the encoder describes {enc.n_features} features, the model has {n}")
    names = [f.name for f in enc.fields]
    if len(set(names)) != len(names) or not all(isinstance(x, str) for x in names):
        raise CheckpointError(f"{path}: the encoder names a field twice (fields {names})")
    for f in enc.fields:
        if not 0 <= f.offset < n:
            raise CheckpointError(f"{path}: the encoder's field {f.name!r} starts at feature {f.offset}, outside the "
                                  f"model's {n} features")
        values = f.vocab if f.vocab is not None else np.zeros(0)
        if np.unique(values).size != values.size:
            raise CheckpointError(f"{path}: the encoder's field {f.name!r} lists a value twice; the file is damaged")
        if f.edges is not None and (not np.all(np.isfinite(f.edges)) or np.any(np.diff(f.edges) <= 0)):
            raise CheckpointError(f"{path}: the bucket edges of the encoder's field {f.name!r} are not finite "
                                  "and increasing; the file is damaged")
        if f.kind == "multi" and (not isinstance(f.sep, str) or not f.sep):
            raise CheckpointError(f"{path}: the encoder's multi-valued field {f.name!r} has no separator")
        if f.kind == "multi" and f.width < 1:
            raise CheckpointError(f"{path}: the encoder's multi-valued field {f.name!r} has width {f.width} (the most "
                                  "values a row holds); it must be at least 1; the file is damaged")
