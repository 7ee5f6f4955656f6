"""Files the program is handed or writes, trusted no further than they deserve (issue 16).

* Checkpoints: only the members the format defines are read, every member's .npy header is
  checked before its data is decompressed (a zip bomb costs nothing), and a saved feature
  encoder must describe the model it travels with.
* Output paths: "checked before training" is true: the names the write will create (the
  temporary one too) fit the file system's limits, and the folder takes a probe file.
* libFM files and arrays: numbers are parsed in float64 and must fit the dtype they are cast
  to; one that does not (or a literal nan / inf) is named by file, line and token, or by
  argument and index; a FIFO or device never makes a read hang.

Each case asserts the exit status or exception type, a message naming the problem, no
traceback, and that the files that existed (inputs, the checkpoint, old outputs) are unchanged.
"""
import io
import json
import os
import re
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from test_errors import assert_one_line_error, digest, run_cli, write_split

from nfm_numpy import checkpoint, data as Dt, datasets as D, features as Fe, outputs
from nfm_numpy.errors import CheckpointError, DataError, OutputError
from nfm_numpy.libfm import LibFMError, read_libfm
from nfm_numpy.model import FM

NAME_MAX = os.pathconf("/tmp", "PC_NAME_MAX")
TRAIN_TINY = ["train", "--train-rows", "300", "--epochs", "1", "--hidden-factor", "2", "--layers", "2",
              "--batch-size", "64"]


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A toy libFM split with a model trained on it, and a CSV-encoder checkpoint (library)."""
    d = tmp_path_factory.mktemp("trust")
    write_split(d / "split")
    from nfm_numpy import cli
    assert cli.main(["train", "--data-dir", str(d / "split"), "--epochs", "2", "--batch-size", "16",
                     "--hidden-factor", "4", "--layers", "4", "--save", str(d / "good.npz")]) == 0
    enc = Fe.Encoder(categorical=["user", "movie"], numeric=["year"], multi_valued={"genres": "|"},
                     label="label").fit({"user": ["u1", "u2", "u1", "u3"], "movie": ["m1", "m1", "m2", "m3"],
                                         "genres": ["a|b", "b", "", "c"], "year": [1999, 2005, 2010, 2001],
                                         "label": [1.0, 0.0, 1.0, 0.0]})
    checkpoint.save(FM(enc.n_features, k=2), d / "enc.npz", enc.to_arrays())
    return d


@pytest.fixture
def tmp(base, tmp_path):
    write_split(tmp_path / "split")
    for name in ("good.npz", "enc.npz"):
        (tmp_path / name).write_bytes((base / name).read_bytes())
    return tmp_path


def files_in(folder):
    return [p for p in Path(folder).rglob("*") if p.is_file()]


# ------------------------------------------------------------------ forging checkpoints
def npy(arr):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=True)
    return buf.getvalue()


def npy_header(shape, dtype, version=(1, 0)):
    buf = io.BytesIO()
    d = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    (np.lib.format.write_array_header_1_0 if version == (1, 0) else np.lib.format.write_array_header_2_0)(buf, d)
    return buf.getvalue()


def rebuild(src, dst, drop=(), add=(), bombs=()):
    """Copy the members of ``src`` to ``dst`` except ``drop``; then ``add`` (name, bytes) pairs
    (stored) and ``bombs`` (name, header bytes, zero bytes after it), deflated from a stream
    of zeros: a few kilobytes on disk that declare megabytes."""
    warnings.simplefilter("ignore", UserWarning)          # zipfile warns of the duplicate name we mean
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename not in drop:
                zout.writestr(info.filename, zin.read(info))
        for name, payload in add:
            if name.endswith("/"):
                zout.writestr(zipfile.ZipInfo(name), b"")
            else:
                zout.writestr(name, payload)
        for name, header, zeros in bombs:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zout.open(info, "w", force_zip64=True) as f:
                f.write(header)
                chunk = bytes(1 << 20)
                for start in range(0, zeros, len(chunk)):
                    f.write(chunk[:min(len(chunk), zeros - start)])
    return dst


def arrays_of(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def with_encoder_spec(tmp, change):
    """enc.npz with its encoder's JSON (a dict) changed by ``change(spec, arrays)``."""
    arrays = arrays_of(tmp / "enc.npz")
    spec = json.loads(str(arrays["extra/encoder"]))
    change(spec, arrays)
    arrays["extra/encoder"] = np.array(json.dumps(spec))
    np.savez(tmp / "bad.npz", **arrays)
    return tmp / "bad.npz"


def with_arrays(tmp, src, change):
    arrays = arrays_of(tmp / src)
    change(arrays)
    np.savez(tmp / "bad.npz", **arrays)
    return tmp / "bad.npz"


def flip_flag(path, flag):
    """Set a general-purpose flag bit in every central-directory entry (e.g. 'encrypted')."""
    raw = bytearray(path.read_bytes())
    at = raw.find(b"PK\x01\x02")
    while at >= 0:
        raw[at + 8] |= flag
        at = raw.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(raw))
    return path


def corrupt_member_data(tmp):
    """good.npz with a byte of param/V's data changed: its CRC no longer matches."""
    raw = bytearray((tmp / "good.npz").read_bytes())
    with zipfile.ZipFile(tmp / "good.npz") as zf:
        info = zf.getinfo("param/V.npy")
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    raw[at] ^= 0xFF
    (tmp / "bad.npz").write_bytes(bytes(raw))
    return tmp / "bad.npz"


def unseen_encoder(tmp):
    """A checkpoint whose encoder describes 2 features more than its model (a mismatch
    that a hand-assembled file, or a model swapped between files, can produce)."""
    arrays = arrays_of(tmp / "enc.npz")
    spec = json.loads(str(arrays["extra/encoder"]))
    i = next(i for i, f in enumerate(spec["fields"]) if f["kind"] == "categorical")
    arrays[f"extra/encoder.vocab{i}"] = np.concatenate([arrays[f"extra/encoder.vocab{i}"], ["zz1", "zz2"]])
    for f in spec["fields"][i + 1:]:
        f["offset"] += 2
    arrays["extra/encoder"] = np.array(json.dumps(spec))
    np.savez(tmp / "bad.npz", **arrays)
    return tmp / "bad.npz"


def with_config(tmp, src, change):
    """``src`` with its configuration (a dict) changed by ``change(config)``."""
    arrays = arrays_of(tmp / src)
    config = json.loads(str(arrays["config"]))
    change(config)
    arrays["config"] = np.array(json.dumps(config))
    np.savez(tmp / "bad.npz", **arrays)
    return tmp / "bad.npz"


def wide_layers(config):
    config.update(layers=[20000, 20000], keep_prob=[0.8, 0.8, 0.5])


def first(spec, kind):
    return next(f for f in spec["fields"] if f["kind"] == kind)


def index_of(spec, kind):
    return next(i for i, f in enumerate(spec["fields"]) if f["kind"] == kind)


# (case id, maker of the file to load, regex of the message)
CHECKPOINT_CASES = [
    ("zip bomb in an unknown member", lambda t: rebuild(t / "good.npz", t / "bad.npz", bombs=[
        ("junk.npy", npy_header((40 << 20,), np.uint8), 40 << 20)]),
     r"bad\.npz: the member 'junk\.npy' is not part of an nfm_numpy checkpoint.*not read"),
    ("unknown extra member", lambda t: rebuild(t / "good.npz", t / "bad.npz", add=[
        ("extra/notes.npy", npy(np.arange(3)))]), r"member 'extra/notes\.npy' is not part of an nfm_numpy checkpoint"),
    ("member that is not .npy", lambda t: rebuild(t / "good.npz", t / "bad.npz", add=[("README.txt", b"hi")]),
     r"member 'README\.txt' is not part of an nfm_numpy checkpoint"),
    ("member that is a folder", lambda t: rebuild(t / "good.npz", t / "bad.npz", add=[("param/", b"")]),
     r"member 'param/' is a folder"),
    ("duplicate member", lambda t: rebuild(t / "good.npz", t / "bad.npz", add=[
        ("param/w0.npy", npy(np.float32(5.0)))]), r"member 'param/w0\.npy' appears 2 times"),
    ("pickled id map", lambda t: rebuild(t / "good.npz", t / "bad.npz", drop=["extra/raw_ids.npy"], add=[
        ("extra/raw_ids.npy", npy(np.array([{"a": 1}], dtype=object)))]),
     r"member 'extra/raw_ids\.npy' holds pickled objects, which are never loaded"),
    ("header smaller than the data", lambda t: rebuild(t / "good.npz", t / "bad.npz", drop=["param/w0.npy"], add=[
        ("param/w0.npy", npy(np.float32(0.0)) + bytes(64))]),
     r"member 'param/w0\.npy' is damaged: its header describes 4 bytes of data .*holds 68"),
    ("header larger than the data", lambda t: rebuild(t / "good.npz", t / "bad.npz", drop=["extra/raw_ids.npy"],
                                                      add=[("extra/raw_ids.npy",
                                                            npy_header((10**12,), np.int64) + bytes(16))]),
     r"member 'extra/raw_ids\.npy' is damaged: its header describes 8,000,000,000,000 bytes"),
    ("bomb declared as a parameter", lambda t: rebuild(t / "good.npz", t / "bad.npz", drop=["param/h.npy"], bombs=[
        ("param/h.npy", npy_header((2 << 20,), np.float32), 8 << 20)]),
     r"param h has shape \(2097152,\) float32, the model expects \(4,\) float32"),
    ("bomb that fits a forged configuration", lambda t: rebuild(t / "good.npz", t / "bad.npz", drop=["param/V.npy"],
                                                                bombs=[("param/V.npy", npy_header((2 << 20, 4), "<f4"),
                                                                        32 << 20)]),
     r"member 'param/V\.npy' declares 32 MiB from [\d,]+ bytes stored \(over 100:1\); refused unread"),
    ("configuration nested too deep", lambda t: rebuild(t / "good.npz", t / "bad.npz", drop=["config.npy"], add=[
        ("config.npy", npy(np.array("[" * 100_000)))]), r"damaged configuration \(RecursionError"),
    ("id map beyond 2^63", lambda t: with_arrays(t, "good.npz", lambda a: a.update(
        {"extra/raw_ids": np.arange(a["extra/raw_ids"].size, dtype=np.uint64) + np.uint64(2**63)})),
     r"raw_ids must hold distinct non-negative ids below 2\^63"),
    ("bomb declared as the id map", lambda t: rebuild(t / "good.npz", t / "bad.npz", drop=["extra/raw_ids.npy"],
                                                      bombs=[("extra/raw_ids.npy", npy_header((1 << 20,), np.int64),
                                                              8 << 20)]),
     r"the id map raw_ids must be \d+ integers, one per feature; got shape \(1048576,\)"),
    ("bomb declared as the configuration", lambda t: rebuild(t / "good.npz", t / "bad.npz", drop=["config.npy"],
                                                             bombs=[("config.npy", npy_header((), "<U600000"),
                                                                     2_400_000)]),
     r"the configuration declares 2,400,000 bytes of text, more than the 1,048,576"),
    ("bomb declared as the encoder", lambda t: rebuild(t / "enc.npz", t / "bad.npz", drop=["extra/encoder.npy"],
                                                       bombs=[("extra/encoder.npy", npy_header((), "<U3000000"),
                                                               12_000_000)]),
     r"the encoder declares 12,000,000 bytes of text, more than the"),
    ("bomb declared as a vocabulary", lambda t: rebuild(
        t / "enc.npz", t / "bad.npz", drop=["extra/encoder.vocab0.npy"],
        bombs=[("extra/encoder.vocab0.npy", npy_header((4,), "<U2000000"), 32_000_000)]),
     r"member 'extra/encoder\.vocab0\.npy' declares 31 MiB from .* bytes stored \(over 100:1\); refused unread"),
    ("bomb declared as rare values", lambda t: rebuild(t / "enc.npz", t / "bad.npz", drop=["extra/encoder.rare0.npy"],
                                                       bombs=[("extra/encoder.rare0.npy",
                                                               npy_header((1 << 20,), "<U2"), 8 << 20)]),
     r"the encoder array encoder\.rare0 must list at most the 0 rare values the encoder declares"),
    ("vocabulary longer than the model", lambda t: with_arrays(t, "enc.npz", lambda a: a.update(
        {"extra/encoder.vocab0": np.array([f"v{i}" for i in range(500)])})),
     r"the encoder array encoder\.vocab0 must be a list of at most \d+ entries"),
    ("npy version 3", lambda t: rebuild(t / "good.npz", t / "bad.npz", drop=["param/w0.npy"], add=[
        ("param/w0.npy", b"\x93NUMPY\x03\x00" + npy(np.float32(0))[10:])]),
     r"member 'param/w0\.npy' is damaged: not a readable \.npy array"),
    ("garbage header", lambda t: rebuild(t / "good.npz", t / "bad.npz", drop=["param/w0.npy"], add=[
        ("param/w0.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': oops}\n")]),
     r"member 'param/w0\.npy' is damaged: not a readable \.npy array"),
    ("structured dtype", lambda t: rebuild(t / "good.npz", t / "bad.npz", drop=["param/w0.npy"], add=[
        ("param/w0.npy", npy(np.zeros((), dtype=[("a", "<f4")])))]),
     r"member 'param/w0\.npy' has dtype .*numbers and text only"),
    ("encrypted members", lambda t: flip_flag(rebuild(t / "good.npz", t / "bad.npz"), 0x1),
     r"the member '[a-z/]+\w*\.npy' is encrypted"),
    ("damaged member data", corrupt_member_data, r"member 'param/V\.npy' is damaged.*\(Bad CRC-32"),
    ("truncated archive", lambda t: (t / "bad.npz").write_bytes((t / "good.npz").read_bytes()[:-100]) and
     t / "bad.npz", r"bad\.npz: not a readable checkpoint \(a truncated or damaged \.npz"),
    ("a folder", lambda t: (t / "dir.npz").mkdir() or t / "dir.npz", r"dir\.npz is a folder, not a checkpoint file"),
    # --- the encoder against the model (issue 16, class 13)
    ("encoder describes more features", unseen_encoder,
     r"bad\.npz: the encoder describes (\d+) features, the model has (?!\1)\d+"),
    ("encoder field offset out of range", lambda t: with_encoder_spec(t, lambda s, a: s["fields"][0].update(offset=-3)),
     r"bad\.npz: the saved feature encoder is damaged \(field 'user' is inconsistent\)"),
    ("encoder vocabulary repeats a value", lambda t: with_arrays(t, "enc.npz", lambda a: a.update(
        {"extra/encoder.vocab0": np.array(["u1", "u1", "u3"])})), r"field 'user' lists a value twice"),
    ("encoder multi field without separator", lambda t: with_encoder_spec(
        t, lambda s, a: first(s, "multi").update(sep="")), r"multi-valued field 'genres' has no separator"),
    ("encoder multi field of width 0", lambda t: with_encoder_spec(t, lambda s, a: first(s, "multi").update(width=0)),
     r"bad\.npz: the encoder's multi-valued field 'genres' has width 0 \(the most values a row holds\); it must "
     r"be at least 1"),
    ("encoder names a field twice", lambda t: with_encoder_spec(
        t, lambda s, a: s["fields"][1].update(name="user")), r"the encoder names a field twice"),
    ("encoder arrays without the encoder", lambda t: with_arrays(t, "enc.npz", lambda a: a.pop("extra/encoder")),
     r"encoder arrays \[.*\] without the encoder itself"),
    # --- members that only a forger writes (issue 16, adversarial round): encoder.<name> is what
    # Encoder.to_arrays writes and nothing else, each value's width is bounded, and many members
    # under 16 MiB each are still one bomb
    ("unknown encoder member", lambda t: rebuild(t / "enc.npz", t / "bad.npz", add=[
        ("extra/encoder.foo.npy", npy(np.arange(3)))]),
     r"bad\.npz: the member 'extra/encoder\.foo\.npy' is not part of an nfm_numpy checkpoint.*not read"),
    ("encoder member for a field the encoder lacks", lambda t: rebuild(t / "enc.npz", t / "bad.npz", add=[
        ("extra/encoder.vocab9.npy", npy(np.array(["a"])))]),
     r"bad\.npz: the member 'extra/encoder\.vocab9\.npy' is not part of this checkpoint \(the encoder declares 4 "
     r"fields, none numbered 9\); its data was not read"),
    ("encoder edges for a categorical field", lambda t: rebuild(t / "enc.npz", t / "bad.npz", add=[
        ("extra/encoder.edges0.npy", npy(np.array([1.0])))]),
     r"the member 'extra/encoder\.edges0\.npy' is not part of this checkpoint \(the encoder's field 0 is "
     r"'categorical', which has no edges array\)"),
    ("encoder vocabulary bomb under 16 MiB", lambda t: rebuild(
        t / "enc.npz", t / "bad.npz", drop=["extra/encoder.vocab0.npy"],
        bombs=[("extra/encoder.vocab0.npy", npy_header((1,), "<U3750000"), 15_000_000)]),
     r"the encoder array encoder\.vocab0 has dtype <U3750000 \(15,000,000 bytes a value\); a vocabulary value "
     r"is text of at most 4,096 characters"),
    ("encoder bombs under 16 MiB each", lambda t: rebuild(
        t / "enc.npz", t / "bad.npz", drop=["extra/encoder.vocab0.npy", "extra/encoder.vocab1.npy"],
        bombs=[(f"extra/encoder.vocab{i}.npy", npy_header((1,), "<U2500000"), 10_000_000) for i in (0, 1)]),
     r"bad\.npz: its \d+ members declare 19 MiB together from [\d,]+ bytes stored \(over 100:1\); refused unread"),
    ("configuration with layers its arrays do not back", lambda t: with_config(t, "good.npz", wide_layers),
     r"bad\.npz: param names \[.*\] do not match the model's \[.*'W2'.*\]"),
    ("configuration with n_features as text", lambda t: with_config(
        t, "good.npz", lambda c: c.update(n_features=str(c["n_features"]))),
     r"bad\.npz: the configuration does not describe a model: n_features must be an integer, got '\d+'"),
    ("id map with a repeated id", lambda t: with_arrays(t, "good.npz", lambda a: a.update(
        {"extra/raw_ids": np.zeros_like(a["extra/raw_ids"])})), r"raw_ids must hold distinct non-negative ids"),
]


@pytest.mark.parametrize("case", CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_checkpoint_case_library(case, tmp, monkeypatch):
    """checkpoint.load refuses the file with a CheckpointError naming the member or the mismatch;
    no member's data is read before every header has passed (a bomb is never decompressed)."""
    name, make, pattern = case
    path = make(tmp)
    read = []                                  # the members whose data was read
    real = np.lib.format.read_array
    monkeypatch.setattr(np.lib.format, "read_array", lambda f, *a, **k: read.append(f.name) or real(f, *a, **k))
    before = digest(files_in(tmp))
    with pytest.raises(CheckpointError, match=pattern):
        checkpoint.load(path)
    assert digest(files_in(tmp)) == before
    if "bomb" in name:
        bomb = next(m for m in zipfile.ZipFile(path).namelist() if zipfile.ZipFile(path).getinfo(m).file_size > 1 << 20)
        assert bomb not in read, f"{bomb} was decompressed"


@pytest.mark.parametrize("case", CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_checkpoint_case_command_line(case, tmp, capsys):
    """The same files through `evaluate --load`: one line, exit 2, nothing changed."""
    name, make, pattern = case
    path = make(tmp)
    before = digest(files_in(tmp))
    data = ["--csv", tmp / "m.csv"] if Path(path).name == "bad.npz" and "encoder" in name else \
        ["--file", tmp / "split" / "toy.test.libfm"]
    if data[0] == "--csv":
        (tmp / "m.csv").write_text("user,movie,genres,year,label\nu1,m1,a,1999,1\n")
        before = digest(files_in(tmp))
    code, out, err = run_cli(["evaluate", "--load", path, *data], capsys)
    assert_one_line_error(code, err, 2, pattern)
    assert digest(files_in(tmp)) == before


def test_a_forged_configuration_allocates_nothing(tmp):
    """layers [20000, 20000] in a file of kilobytes: refused from the headers, before the model
    (3.2 GB of draws) is built; checked in a child process held to 1 GiB of address space above
    what importing takes."""
    path = with_config(tmp, "good.npz", wide_layers)
    code = ("import resource, sys\n"
            "from nfm_numpy import checkpoint\n"
            "from nfm_numpy.errors import CheckpointError\n"
            "soft, hard = resource.getrlimit(resource.RLIMIT_AS)\n"
            "used = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()\n"
            "resource.setrlimit(resource.RLIMIT_AS, (used + (1 << 30), hard))\n"
            "try:\n"
            "    checkpoint.load(sys.argv[1])\n"
            "except CheckpointError as e:\n"
            "    print('refused:', e)\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert re.search(r"refused: .*bad\.npz: param names .* do not match", done.stdout), done.stdout


def test_a_good_encoder_checkpoint_still_loads(tmp):
    model, extra = checkpoint.load(tmp / "enc.npz")
    assert Fe.Encoder.from_arrays(extra).n_features == model.config["n_features"]


def test_rare_values_may_outnumber_the_features(tmp):
    """Rare values (fewer than min_count) are not features: 300 of them beside 4 features load."""
    users = [f"u{i}" for i in range(300)] + ["a", "a", "b", "b"]
    enc = Fe.Encoder(categorical=["user"], label="y", min_count=2).fit({"user": users, "y": np.ones(len(users))})
    assert enc.n_features < 10
    checkpoint.save(FM(enc.n_features, k=2), tmp / "rare.npz", enc.to_arrays())
    _, extra = checkpoint.load(tmp / "rare.npz")
    assert extra["encoder.rare0"].size == 300


# ------------------------------------------------------------------ saving checks what load will
SAVE_CASES = [
    ("an extra the format does not keep", lambda enc: {"notes": np.arange(3)}, TypeError,
     r"extra 'notes' is not part of the checkpoint format"),
    ("an encoder of another size", lambda enc: enc.to_arrays(), CheckpointError,
     r"extra: the encoder describes (\d+) features, the model has 3"),
    ("an id map of another size", lambda enc: {"raw_ids": np.arange(5)}, CheckpointError,
     r"the id map raw_ids must be 3 integers"),
    ("a label range by hand", lambda enc: {"label_range": np.array([0.0, 1.0])}, TypeError,
     r"extra 'label_range' is not part of the checkpoint format"),
]


@pytest.mark.parametrize("case", SAVE_CASES, ids=[c[0] for c in SAVE_CASES])
def test_save_refuses_what_load_would(case, tmp):
    name, extra, exc, pattern = case
    enc = Fe.Encoder.from_arrays(checkpoint.load(tmp / "enc.npz")[1])
    target = tmp / "good.npz"
    before = digest(files_in(tmp))
    with pytest.raises(exc, match=pattern):
        checkpoint.save(FM(3, k=2), target, extra(enc))
    assert digest(files_in(tmp)) == before


# ------------------------------------------------------------------ output paths
def long_name(n, suffix=".npz"):
    return "m" * (n - len(suffix)) + suffix


# (case id, argv with {tmp} / {name} placeholders, status, regex of the message or of stdout)
OUTPUT_CASES = [
    ("--save at NAME_MAX - 5 bytes", ["--save", "{tmp}/" + long_name(NAME_MAX - 5)], 0, r"saved .*mmm\.npz"),
    ("--save at NAME_MAX bytes", ["--save", "{tmp}/" + long_name(NAME_MAX)], 0, r"saved .*mmm\.npz"),
    ("--history at NAME_MAX bytes", ["--history", "{tmp}/" + long_name(NAME_MAX, ".jsonl")], 0, r"reached 1 epochs"),
    ("--plot at NAME_MAX bytes", ["--plot", "{tmp}/" + long_name(NAME_MAX, ".png")], 0, r"wrote .*mmm\.png"),
    ("--save over NAME_MAX", ["--save", "{tmp}/" + long_name(NAME_MAX + 1)], 2,
     rf"--save .*: the file name is {NAME_MAX + 1} bytes long; this file system allows at most {NAME_MAX}"),
    ("--plot over NAME_MAX", ["--plot", "{tmp}/" + long_name(NAME_MAX + 1, ".png")], 2,
     r"--plot .*: the file name is \d+ bytes long"),
    ("--history over NAME_MAX", ["--history", "{tmp}/" + long_name(NAME_MAX + 1, ".jsonl")], 2,
     r"--history .*: the file name is \d+ bytes long"),
    ("--save in a new folder over NAME_MAX", ["--save", "{tmp}/" + "d" * (NAME_MAX + 1) + "/m.npz"], 2,
     r"--save .*: the folder name 'ddd+' is \d+ bytes long"),
    ("--save with a path over PATH_MAX", ["--save", "{tmp}/" + "/".join(["d" * 200] * 21) + "/m.npz"], 2,
     r"--save .*: the path is \d+ bytes long \(with its temporary file\)"),
    ("--save of a multi-byte name at NAME_MAX", ["--save", "{tmp}/" + "é" * (NAME_MAX // 2 - 2) + ".npz"], 0,
     r"saved .*\.npz"),
]


@pytest.mark.parametrize("case", OUTPUT_CASES, ids=[c[0] for c in OUTPUT_CASES])
def test_output_path_case(case, tmp, capsys):
    """A legal name is written (its temporary name is short whatever its length); an illegal one
    is refused before training, naming the limit; nothing that existed changes, no temporary stays."""
    name, argv, status, pattern = case
    args = [a.format(tmp=tmp) for a in argv]
    target = Path(args[1])
    before = digest(files_in(tmp))
    code, out, err = run_cli(TRAIN_TINY + args, capsys)
    if status == 0:
        assert code == 0, err
        assert "Traceback" not in err and re.search(pattern, out), out
        assert target.is_file() and target.stat().st_size > 0
    else:
        assert_one_line_error(code, err, status, pattern)
        assert "reading the data" not in err and "data:" not in out      # refused before reading or training
        assert not os.path.lexists(target)
    after = digest(files_in(tmp))
    assert {p: h for p, h in after.items() if p in before} == before
    assert not [p for p in tmp.rglob("*.tmp")], "a temporary file was left behind"


def test_the_checked_name_is_the_written_name(tmp, capsys):
    """--save m writes m, not m.npz (np.savez adds .npz to a name, never to a file object)."""
    code, _, err = run_cli(TRAIN_TINY + ["--save", tmp / "m"], capsys)
    assert code == 0, err
    assert (tmp / "m").is_file() and not (tmp / "m.npz").exists()
    assert checkpoint.load(tmp / "m")[0].config["k"] == 2


LIBRARY_OUTPUT_CASES = [
    ("a NUL in the name", lambda t: t / "a\0b.npz", OutputError, r"holds a NUL character"),
    ("bytes for a path", lambda t: os.fsencode(t / "m.npz"), TypeError, r"must be a path, got b'"),
    ("a folder nobody may write to", lambda t: t / "m.npz", OutputError,
     r"cannot create a file in the folder .* \(Permission denied\)"),
]


@pytest.mark.parametrize("case", LIBRARY_OUTPUT_CASES, ids=[c[0] for c in LIBRARY_OUTPUT_CASES])
def test_output_path_library(case, tmp, monkeypatch):
    name, make, exc, pattern = case
    if name.startswith("a folder nobody"):
        # root may write anywhere, so the probe's refusal is simulated where the system would give it
        def refuse(*a, **k):
            raise PermissionError(13, "Permission denied")
        monkeypatch.setattr(outputs.tempfile, "mkstemp", refuse)
    before = digest(files_in(tmp))
    with pytest.raises(exc, match=pattern):
        outputs.write_atomically(make(tmp), lambda f: f.write(b"x"))
    assert digest(files_in(tmp)) == before
    assert not [p for p in tmp.rglob("*.tmp")]


def test_every_legal_name_has_a_legal_temporary_name():
    for name in ("m.npz", "m" * NAME_MAX, "é" * (NAME_MAX // 2), "x"):
        prefix = outputs._temp_prefix(name, NAME_MAX)
        assert len(os.fsencode(prefix)) + 8 + len(".tmp") <= NAME_MAX
        prefix.encode("utf-8")                               # never half a character
    assert len(os.fsencode(outputs._temp_prefix("m" * 14, 14))) + 12 <= 14


# ------------------------------------------------------------------ numbers and the dtype
def libfm(tmp, text, name="x.libfm"):
    p = tmp / name
    p.write_text(text)
    return p


# (case id, libFM text, dtype, regex)
LIBFM_CASES = [
    ("value over float32", "1 0:1\n1 0:1e39\n", np.float32,
     r"x\.libfm, line 2: value 1e\+39 is too large for float32 \(max 3\.4e\+38\) in '0:1e39'; .*float64"),
    ("label over float32", "1 0:1\n-2e39 0:1\n", np.float32,
     r"x\.libfm, line 2: label -2e\+39 is too large for float32 \(max 3\.4e\+38\); .*float64"),
    ("value over float64", "1 0:1e309\n", np.float64,
     r"x\.libfm, line 1: value '1e309' is too large for float64 \(max 1\.8e\+308\) in '0:1e309'; rescale"),
    ("label over float64", "1 0:1\n1 1:1\n-1e400 0:1\n", np.float64,
     r"x\.libfm, line 3: label '-1e400' is too large for float64"),
    ("label over float64, read as float32", "1e309 0:1\n", np.float32,
     r"line 1: label '1e309' is too large for float64"),
    ("literal nan label", "nan 0:1\n", np.float64, r"x\.libfm, line 1: label 'nan' is not finite"),
    ("literal -inf value", "1 0:1 1:-inf\n", np.float32, r"x\.libfm, line 1: value in '1:-inf' is not finite"),
    ("literal infinity label", "+Infinity 0:1\n", np.float32, r"line 1: label '\+Infinity' is not finite"),
    ("no float64 hint in float64", "1 0:1e309\n", np.float64, r"^(?!.*--dtype).*too large for float64"),
]


@pytest.mark.parametrize("case", LIBFM_CASES, ids=[c[0] for c in LIBFM_CASES])
def test_libfm_numbers(case, tmp):
    name, text, dtype, pattern = case
    path = libfm(tmp, text)
    before = digest(files_in(tmp))
    with pytest.raises(LibFMError, match=pattern):
        read_libfm(path, dtype)
    assert digest(files_in(tmp)) == before


# (case id, argv, maker of the file, status, regex)
CLI_DATA_CASES = [
    ("train: value over float32", ["train", "--data-dir", "{split}", "--epochs", "1"],
     lambda t: libfm(t / "split", "1 0:1\n1 10:1e39\n", "toy.validation.libfm"), 2,
     r"toy\.validation\.libfm, line 2: value 1e\+39 is too large for float32 .* in '10:1e39'; .*--dtype float64"),
    ("predict: value over the model's float32", ["predict", "--load", "{good}", "--file", "{file}"],
     lambda t: libfm(t, "1 0:1\n1 0:1e39\n"), 2,
     r"x\.libfm, line 2: value 1e\+39 is too large for float32 .*the model is float32: a model trained with"),
    ("evaluate: label over float64", ["evaluate", "--load", "{good}", "--file", "{file}"],
     lambda t: libfm(t, "1e309 0:1\n"), 2, r"x\.libfm, line 1: label '1e309' is too large for float64"),
    # a file with no feature entry would give one constant prediction a row (issue 16, adversarial round)
    ("predict: a CSV file given to --file", ["predict", "--load", "{good}", "--file", "{file}"],
     lambda t: libfm(t, "user,movie,rating\nu1,m1,4\n"), 2,
     r"x\.libfm, line 1: expected 'id:value', got 'user,movie,rating'"),
    ("evaluate: a libFM file of labels only", ["evaluate", "--load", "{good}", "--file", "{file}"],
     lambda t: libfm(t, "1\n0\n1\n"), 2, r"x\.libfm: no row has any feature \(every line is a label alone\)"),
    ("predict: a libFM file of labels only", ["predict", "--load", "{good}", "--file", "{file}"],
     lambda t: libfm(t, "1\n0\n1\n"), 2, r"x\.libfm: no row has any feature"),
    ("evaluate: a checkpoint that does not exist", ["evaluate", "--load", "{tmp}/none.npz", "--file", "{file}"],
     lambda t: libfm(t, "1 0:1\n"), 2, r"none\.npz: No such file or directory \(no checkpoint there\)"),
    ("train: two splits in one folder", ["train", "--data-dir", "{split}", "--epochs", "1"],
     lambda t: (t / "split" / "two.train.libfm").write_text("1 0:1\n"), 2,
     r"split: expected one \*\.train\.libfm file, found 2 \(toy\.train\.libfm, two\.train\.libfm\)"),
]


def no_split_part(t):
    (t / "split" / "toy.test.libfm").unlink()
    return t / "split"


# (case id, call with the test's folder, exception types it must be, regex): every read path
# raises nfm_numpy.errors classes naming the file (issue 16)
READ_CASES = [
    ("prediction read of a CSV file", lambda t: D.read_with_ids(libfm(t, "user,movie\nu1,m1\n"), np.arange(3),
                                                                need_y=False),
     (LibFMError,), r"x\.libfm, line 1: expected 'id:value', got 'user,movie'"),
    ("prediction read of labels only", lambda t: D.read_with_ids(libfm(t, "1\n0\n1\n"), np.arange(3), need_y=False),
     (LibFMError,), r"x\.libfm: no row has any feature"),
    ("evaluation read of labels only", lambda t: D.read_with_ids(libfm(t, "1\n0\n1\n"), np.arange(3)),
     (LibFMError,), r"x\.libfm: no row has any feature"),
    ("a test file of labels only", lambda t: D.load(data_dir=write_split(t / "s", test="1\n0\n")),
     (LibFMError,), r"toy\.test\.libfm: no row has any feature"),
    ("a missing libFM file", lambda t: read_libfm(t / "none.libfm"), (DataError, FileNotFoundError),
     r"none\.libfm: No such file or directory"),
    ("a missing checkpoint", lambda t: checkpoint.load(t / "none.npz"), (CheckpointError, FileNotFoundError),
     r"none\.npz: No such file or directory \(no checkpoint there\)"),
    ("a missing data folder", lambda t: D.load(data_dir=t / "nowhere"), (DataError, FileNotFoundError),
     r"nowhere: No such file or directory"),
    ("a data folder with two splits", lambda t: (t / "split" / "b.train.libfm").write_text("1 0:1\n") and
     D.load(data_dir=t / "split"), (DataError,), r"split: expected one \*\.train\.libfm file, found 2"),
    ("a data folder without train files", lambda t: D.load(data_dir=t), (DataError, FileNotFoundError),
     r"expected one \*\.train\.libfm file, found 0"),
    ("a split without its test file", lambda t: D.load(data_dir=no_split_part(t)), (DataError, FileNotFoundError),
     r"missing: .*toy\.test\.libfm"),
]


@pytest.mark.parametrize("case", READ_CASES, ids=[c[0] for c in READ_CASES])
def test_read_case_library(case, tmp):
    name, call, types, pattern = case
    with pytest.raises(types[0], match=pattern) as caught:
        call(tmp)
    assert all(isinstance(caught.value, t) for t in types)


@pytest.mark.parametrize("case", CLI_DATA_CASES, ids=[c[0] for c in CLI_DATA_CASES])
def test_data_case_command_line(case, tmp, capsys):
    name, argv, make, status, pattern = case
    file = make(tmp) if make else None
    before = digest(files_in(tmp))
    args = [a.format(tmp=tmp, good=tmp / "good.npz", split=tmp / "split", file=file) for a in argv]
    code, out, err = run_cli(args, capsys)
    assert_one_line_error(code, err, status, pattern)
    assert digest(files_in(tmp)) == before


# Inputs that once made a read block forever (a FIFO nobody writes to) or never end (/dev/zero).
# They run in a child process with its memory capped, so that a regression fails the case instead
# of hanging the suite or filling the memory; the limit is far above the second the command takes.
HANG_CASES = [
    ("checkpoint: a FIFO", ["evaluate", "--load", "{fifo}", "--file", "{split}/toy.test.libfm"],
     r"pipe\.npz is not a regular file \(a FIFO, device or socket\), not a checkpoint file"),
    ("checkpoint: a device", ["evaluate", "--load", "/dev/zero", "--file", "{split}/toy.test.libfm"],
     r"/dev/zero is not a regular file"),
    ("libFM: a FIFO nobody writes to", ["predict", "--load", "{good}", "--file", "{fifo}"],
     r"pipe\.npz: a FIFO \(named pipe\) that gave no data: no program was writing to it"),
    ("libFM: a device", ["predict", "--load", "{good}", "--file", "/dev/zero"],
     r"/dev/zero is not a regular file \(a device or a socket\)"),
    ("libFM: a folder", ["predict", "--load", "{good}", "--file", "{split}"], r"split: Is a directory"),
]


def _cap_memory():
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


@pytest.mark.parametrize("case", HANG_CASES, ids=[c[0] for c in HANG_CASES])
def test_input_that_could_hang(case, tmp):
    name, argv, pattern = case
    os.mkfifo(tmp / "pipe.npz")
    before = digest(files_in(tmp))
    args = [a.format(fifo=tmp / "pipe.npz", good=tmp / "good.npz", split=tmp / "split") for a in argv]
    proc = subprocess.run([sys.executable, "-m", "nfm_numpy", *args], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], preexec_fn=_cap_memory, timeout=600)
    assert_one_line_error(proc.returncode, proc.stderr, 2, pattern)
    assert digest(files_in(tmp)) == before


def test_a_pipe_with_a_writer_is_read(tmp):
    """<(cat f) works: a pipe is read to its end."""
    r, w = os.pipe()
    os.write(w, b"1 0:1\n0 1:2.5\n")
    os.close(w)
    try:
        f = read_libfm(f"/dev/fd/{r}")
    finally:
        os.close(r)
    assert f.y.tolist() == [1.0, 0.0] and f.val[1, 0] == 2.5


def test_float64_reaches_the_data(tmp):
    """Labels near 1e8 keep every digit in float64, and values float32 cannot hold are accepted."""
    text = "100000001 0:1\n100000007 1:1e39\n"
    for part in ("train", "validation", "test"):
        libfm(tmp / "split", text, f"toy.{part}.libfm")
    split = D.load(data_dir=tmp / "split", dtype=np.float64)
    assert split.train.val.dtype == np.float64 and split.train.y.tolist() == [100000001.0, 100000007.0]
    assert split.train.val.max() == 1e39
    ds, _ = D.read_with_ids(tmp / "split" / "toy.test.libfm", split.train.raw_ids, dtype=np.float64)
    assert ds.y.tolist() == [100000001.0, 100000007.0]
    with pytest.raises(DataError, match=r"line 2: value 1e\+39 is too large for float32"):
        D.load(data_dir=tmp / "split")                       # the default stays float32


def test_prediction_reads_no_labels(tmp):
    path = libfm(tmp, "nan 0:1\n7 1:1\n")
    raw = np.array([0, 1])
    ds, _ = D.read_with_ids(path, raw, loss="log", need_y=False)
    assert ds.y.tolist() == [0.0, 0.0]
    with pytest.raises(LibFMError, match=r"line 1: label 'nan' is not finite"):
        D.read_with_ids(path, raw, loss="log")


# (case id, call, exception type, regex)
ARRAY_CASES = [
    ("make_batch labels inf", lambda: Dt.make_batch(np.array([[0], [1], [2]]), None, [1.0, 2.0, np.inf]), DataError,
     r"batch: labels y hold NaN or inf \(inf at row 2; rows count from 0\)"),
    ("make_batch value nan", lambda: Dt.make_batch(np.array([[0, 1], [1, 2]]), [[1.0, 1.0], [np.nan, 1.0]]),
     DataError, r"batch: val holds NaN or inf \(nan at row 1, entry 0"),
    ("weights inf", lambda: Dt.make_batch(np.array([[0], [1]]), None, [1.0, 2.0], weight=[1.0, np.inf]), DataError,
     r"weights hold NaN or inf \(inf at row 1"),
    ("from_csr value over float32", lambda: Dt.from_csr(sp.csr_array(np.array([[1.0, 0, 0], [0, 0, 1e39]]))),
     DataError, r"from_csr: X\[1, 2\]: a value 1e\+39 is too large for float32 \(max 3\.4e\+38\)"),
    ("from_csr label over float32", lambda: Dt.from_csr(sp.csr_array(np.eye(2)), [1e39, 0.0]), DataError,
     r"from_csr: y\[0\]: a value 1e\+39 is too large for float32"),
    ("from_csr weight over float32", lambda: Dt.from_csr(sp.csr_array(np.eye(2)), [1.0, 0.0], weight=[1.0, -1e40]),
     DataError, r"from_csr: sample_weight\[1\]: a value -1e\+40 is too large for float32"),
    ("from_csr value inf", lambda: Dt.from_csr(sp.csr_array(np.array([[np.inf, 1.0]]))), DataError,
     r"from_csr: X holds NaN or inf \(inf at row 0"),
    ("from_csr label nan", lambda: Dt.from_csr(sp.csr_array(np.eye(2)), [np.nan, 0.0]), DataError,
     r"from_csr: y holds NaN or inf \(nan at row 0"),
    ("float64 batch into float32", lambda: Dt.validate(np.array([[0], [1]]), np.array([[1.0], [1e39]]),
                                                       np.array([1.0, 2.0]), 3, dtype=np.float32), DataError,
     r"batch: val\[1, 0\]: value 1e\+39 is too large for float32 .*float64 model"),
    ("float64 labels into float32", lambda: Dt.validate(np.array([[0], [1]]), np.ones((2, 1)),
                                                        np.array([1.0, -5e38]), 3, dtype=np.float32), DataError,
     r"batch: y\[1\]: value -5e\+38 is too large for float32"),
    ("float64 dataset cast to float32", lambda: Dt.Dataset(np.array([[0], [1]]), np.array([[1.0], [4e38]]),
                                                           np.zeros(2), 2, "rows").to(np, dtype=np.float32),
     DataError, r"rows: val\[1, 0\]: value 4e\+38 is too large for float32"),
    ("fits: the caller's hint replaces float64's", lambda: Dt.fits(np.array([7e4]), np.float16, "v", hint=""),
     DataError, r"v 70000 is too large for float16 \(max 6\.55e\+04\)\Z"),
    ("fits: the float64 hint in float32", lambda: Dt.fits(np.array([1.0, 1e39]), np.float32, "v", lambda i: f"at {i}"),
     DataError, r"at 1: v 1e\+39 is too large for float32 \(max 3\.4e\+38\); .*--dtype float64 holds it"),
    ("load: a dtype that is not a float", lambda: D.load("synthetic", dtype="int8"), ValueError,
     r"dtype must be float32 or float64, got 'int8'"),
]


@pytest.mark.parametrize("case", ARRAY_CASES, ids=[c[0] for c in ARRAY_CASES])
def test_array_case(case):
    name, call, exc, pattern = case
    with np.errstate(all="raise", under="ignore"):
        with pytest.raises(exc, match=pattern):
            call()


def test_fits_passes_what_the_cast_keeps():
    values = np.array([np.nan, np.inf, 3e38, -1.0])
    assert Dt.fits(values, np.float32, "v") is not None        # NaN and inf are the finiteness checks' business
    assert Dt.fits(np.array([1e300]), np.float64, "v")[0] == 1e300


def test_there_are_at_least_thirty_cases():
    n = (len(CHECKPOINT_CASES) * 2 + len(HANG_CASES) + len(SAVE_CASES) + len(OUTPUT_CASES) + len(LIBRARY_OUTPUT_CASES)
         + len(LIBFM_CASES) + len(CLI_DATA_CASES) + len(ARRAY_CASES))
    assert n >= 30
