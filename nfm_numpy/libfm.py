"""The libFM (svmlight) text format: ``label id:value id:value ...``, one example a line.

``read_libfm`` parses a whole file with a handful of NumPy calls: the row
structure comes from the positions of whitespace and colons, the numbers from
one ``np.fromstring``. Feature ids are read as exact integers: an id must be
written as decimal digits and fit in 64 bits (a float parse would merge ids
above 2^53 and wrap those above 2^63). Anything the fast path cannot account
for is handed to a line-by-line walk that names the first bad line, so every
error says which file and line, and why.

Line ends may be LF, CRLF or CR alone (old Mac files); blank lines are
skipped; rows may have any length (padded with id -1 and value 0).
"""
from __future__ import annotations

import errno
import os
import re
import stat
import warnings
from typing import NamedTuple

import numpy as np

from .errors import NUMBER, DataError, DataFileNotFound

_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[ord(" "), ord("\t"), ord("\r"), ord("\n"), ord("\v"), ord("\f")]] = True
_ID = re.compile(r"[0-9]+\Z")
_SPACE = re.compile(r"[ \t\n\r\v\f]+")            # the whitespace of the fast path (not Unicode's)
ID_MAX = 2**63 - 1


class LibFMError(DataError):
    """A malformed libFM file; the message names the file and the line."""


class LibFM(NamedTuple):
    """A parsed libFM file."""

    ids: np.ndarray          # (N, F) int64 raw feature ids, -1 for padding
    val: np.ndarray          # (N, F) float64 values, 0 for padding
    y: np.ndarray            # (N,) float64 labels
    lines: np.ndarray        # (N,) int64 the line of the file each row came from (1-based)


_LITERAL = re.compile(r"[+-]?(inf|infinity|nan)\Z", re.I)     # written as not finite (not an overflow)


def _hint(dtype, hint):
    """What the message of a too-large number suggests (``hint`` if the caller gave one)."""
    if hint is not None:
        return hint
    if np.finfo(dtype).bits < 64:
        return "; rescale the values, or use float64, which holds it (--dtype float64)"
    return "; rescale the values"


def _check_number(where, what, text, token, dtype, hint):
    """Raise ``LibFMError`` unless ``text`` (a label or a value, in ``token``) is a finite number
    that fits in ``dtype``: 'nan' and 'inf' are not finite; '1e39' is too large for float32 and
    '1e309' for any dtype (it reads as infinity)."""
    shown = f"{what} {text!r}" + (f" in {token!r}" if token != text else "")
    if not NUMBER.match(text):
        raise LibFMError(f"{where}: {shown} is not a number")
    v = float(text)
    if _LITERAL.match(text):
        raise LibFMError(f"{where}: {what} in {token!r} is not finite" if token != text else
                         f"{where}: {shown} is not finite")
    big = float(np.finfo(dtype).max)
    if not np.isfinite(v) or abs(v) > big:
        at = f"{v:g}" if np.isfinite(v) else repr(text)
        name = np.dtype(dtype).name if np.isfinite(v) else "float64"
        big = big if np.isfinite(v) else float(np.finfo(np.float64).max)
        raise LibFMError(f"{where}: {what} {at} is too large for {name} (max {big:.3g})"
                         + (f" in {token!r}" if token != text else "")
                         + (_hint(dtype, hint) if np.isfinite(v) else "; rescale the values"))


def _check_token(where, tok, dtype=np.float64, hint=None):
    """Raise ``LibFMError`` for an entry token that is not ``id:value`` with a valid id and value."""
    if not tok.isascii():
        raise LibFMError(f"{where}: {tok!r} holds a character that is not ASCII (libFM files are ASCII: "
                         "digits, '.', 'e', ':', '-', spaces)")
    parts = tok.split(":")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise LibFMError(f"{where}: expected 'id:value', got {tok!r}")
    fid, v = parts
    if not _ID.match(fid):
        what = "negative" if fid.startswith("-") else "not a non-negative integer"
        raise LibFMError(f"{where}: feature id {fid!r} in {tok!r} is {what} (ids are written as digits 0-9)")
    if int(fid) > ID_MAX:
        raise LibFMError(f"{where}: feature id {fid} in {tok!r} does not fit in 64 bits (max {ID_MAX})")
    _check_number(where, "value", v, tok, dtype, hint)


def _slow_find_error(path, text, dtype=np.float64, need_y=True, hint=None):
    """Walk the lines one by one to name the first malformed one (only on the error path)."""
    for number, line in enumerate(text.decode("utf-8", errors="replace").split("\n"), start=1):
        tokens = [t for t in _SPACE.split(line) if t]
        if not tokens:
            continue
        where = f"{path}, line {number}"
        if need_y:
            _check_number(where, "label", tokens[0], tokens[0], dtype, hint)
        for tok in tokens[1:]:
            _check_token(where, tok, dtype, hint)
    # the fast path and this walk disagree: a bug, but still say where to look
    raise LibFMError(f"{path}: could not be parsed, though every line looks well formed; please report this")


def _read_bytes(path):
    """The bytes of ``path``. A folder, device or socket is refused (reading /dev/zero would never
    end); a FIFO or pipe is read to its end (``<(zcat f.gz)`` works), and one that no program
    writes to is refused at once instead of blocking forever."""
    try:
        st = os.stat(path)                               # PermissionError etc.: an OSError with the path
    except FileNotFoundError:
        raise DataFileNotFound(f"{path}: No such file or directory") from None
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            return f.read()
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not stat.S_ISFIFO(st.st_mode):
        raise LibFMError(f"{path} is not a regular file (a device or a socket); give a libFM file")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)     # opening a FIFO without a writer would block
    try:
        os.set_blocking(fd, True)                        # then wait for the data a writer sends
        with os.fdopen(fd, "rb") as f:
            fd = None
            data = f.read()
    finally:
        if fd is not None:
            os.close(fd)
    if not data:
        raise LibFMError(f"{path}: a FIFO (named pipe) that gave no data: no program was writing to it")
    return data


def _as_text(path, data):
    """Normalise line ends to LF and refuse what is not text."""
    if not data:
        raise LibFMError(f"{path}: no examples (the file is empty)")
    nul = data.find(b"\0")
    if nul >= 0:
        raise LibFMError(f"{path}: not a text file (a NUL byte at offset {nul}); expected libFM lines "
                         "'label id:value ...'")
    if b"\r" in data:                        # CRLF, or CR alone (old Mac files): both end a line
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data


_POW10 = 10 ** np.arange(19, dtype=np.int64)


def _integers(arr, start, stop, max_digits=18, chunk=1 << 19):
    """The integers written in ``arr[start:stop]`` (one token each, an optional '-' then
    digits), parsed from the bytes without a float in between.

    Returns ``(value, ok)``: int64 values and a mask of the tokens that were such
    integers of at most ``max_digits`` digits (others: value 0, ok False). Tokens go
    ``chunk`` at a time, so the per-byte temporaries stay a few megabytes.
    """
    if start.size > chunk:
        parts = [_integers(arr, start[i:i + chunk], stop[i:i + chunk], max_digits, chunk)
                 for i in range(0, start.size, chunk)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    neg = arr[start] == ord("-")
    first = start + neg                                                   # first digit
    n = stop - first                                                      # digits
    ok = (n >= 1) & (n <= max_digits)
    length = np.where(ok, n, 0)
    offset = np.cumsum(length) - length
    byte = np.repeat(first - offset, length) + np.arange(int(length.sum()))   # every byte of every ok token
    digit = arr[byte].astype(np.int64) - ord("0")
    value = np.zeros(start.size, dtype=np.int64)
    if byte.size:
        has = length > 0
        bad = np.add.reduceat((digit < 0) | (digit > 9), offset[has])    # non-digits per token
        value[has] = np.add.reduceat(digit * _POW10[np.repeat(stop - 1, length) - byte], offset[has])
        ok[np.flatnonzero(has)[bad > 0]] = False
    value[neg] *= -1
    return value, ok


def _numbers(data, arr, start, stop):
    """The numbers written in ``arr[start:stop]`` as float64: integers straight from their
    digits, anything else ("0.5", "1e-3") by ``np.fromstring``. None if one is not a number."""
    value, ok = _integers(arr, start, stop, 15)                          # < 10^15: exact as float64
    out = value.astype(np.float64)
    rest = np.flatnonzero(~ok)
    if rest.size:
        text = b" ".join(data[a:b] for a, b in zip(start[rest].tolist(), stop[rest].tolist()))
        with warnings.catch_warnings():
            warnings.simplefilter("error")                                # text that is not a number
            try:
                parsed = np.fromstring(text, sep=" ")
            except (ValueError, DeprecationWarning):
                return None
        if parsed.size != rest.size:
            return None
        out[rest] = parsed
    return out


def read_libfm(path, dtype=np.float64, need_y=True, hint=None):
    """Read a libFM / svmlight file: one example a line, ``label id:value id:value ...``.

    Returns a ``LibFM(ids, val, y, lines)``: raw feature ids (N, F) int64
    padded with -1, values (N, F) float64 padded with 0, labels (N,) float64,
    and the line number of each row. Numbers are parsed as float64 whatever
    ``dtype``, then each must fit in ``dtype`` (the dtype the caller will cast
    to: a float32 model cannot hold 1e39). ``need_y=False`` (prediction) does
    not read the labels: y is all 0. Raises ``LibFMError`` naming the file,
    line and token of the first malformed, non-finite or too large number, or
    saying why the file holds no examples; ``hint`` replaces the suggestion
    that ends a too-large message.
    """
    path = str(path)
    dtype = np.dtype(dtype)
    data = _as_text(path, _read_bytes(path))
    arr = np.frombuffer(data, dtype=np.uint8)
    space = _WHITESPACE[arr]                                              # (nbytes,)
    newlines = np.flatnonzero(arr == ord("\n"))
    colons = np.flatnonzero(arr == ord(":"))
    starts = np.flatnonzero(~space[1:] & space[:-1]) + 1                  # first byte of each token
    if not space[0]:
        starts = np.concatenate(([0], starts))
    stops = np.flatnonzero(~space[:-1] & space[1:]) + 1                   # one past the last byte of each token
    if not space[-1]:
        stops = np.concatenate((stops, [arr.size]))
    # per line: how many token starts (colons) lie before each line end, differenced
    ends = np.concatenate((newlines, [arr.size]))
    first_token = np.searchsorted(starts, ends)                          # tokens before each line end
    tokens_per_line = np.diff(first_token, prepend=0)
    colons_per_line = np.diff(np.searchsorted(colons, ends), prepend=0)
    used = tokens_per_line > 0                                            # blank lines are skipped
    if not used.any():
        blank = newlines.size + (not data.endswith(b"\n"))
        raise LibFMError(f"{path}: no examples ({blank} blank line{'s' if blank != 1 else ''}, nothing else)")
    if np.any(tokens_per_line[used] != 1 + colons_per_line[used]):
        _slow_find_error(path, data, dtype, need_y, hint)
    if not need_y:          # the label is not read, but a line that is one word of text is no libFM line
        for line in np.flatnonzero(used & (tokens_per_line == 1)):   # (a CSV line: 'user,item,rating')
            t = first_token[line] - 1
            token = data[starts[t]:stops[t]].decode("utf-8", errors="replace")
            if not NUMBER.match(token):
                raise LibFMError(f"{path}, line {line + 1}: expected 'id:value', got {token!r}; a libFM line is "
                                 "'label id:value id:value ...' (is this a CSV file?)")
    if colons.size == 0:
        raise LibFMError(f"{path}: no row has any feature (every line is a label alone): a model has nothing to "
                         "read in it")
    # entry tokens: every token but the first of each line; the k-th colon must lie inside the k-th
    is_entry = np.ones(starts.size, dtype=bool)
    label_tok = (first_token - tokens_per_line)[used]
    is_entry[label_tok] = False
    e_start, e_stop = starts[is_entry], stops[is_entry]
    if not (np.all(e_start < colons) and np.all(colons + 1 < e_stop)):
        _slow_find_error(path, data, dtype, need_y, hint)
    # ids: decimal digits only ("3.0", "1e3", "+3", "-3" are not ids), exact in int64
    ids, ok = _integers(arr, e_start, colons)
    ok &= arr[e_start] != ord("-")
    for t in np.flatnonzero(~ok):                                         # rare: 19 digits, or not an id
        token = data[e_start[t]:colons[t]]
        if not token.isdigit() or int(token) > ID_MAX:
            _slow_find_error(path, data, dtype, need_y, hint)
        ids[t] = int(token)
    y = _numbers(data, arr, starts[label_tok], stops[label_tok]) if need_y else np.zeros(label_tok.size)
    values = _numbers(data, arr, colons + 1, e_stop)
    if y is None or values is None or not (_fit(y, dtype) and _fit(values, dtype)):
        _slow_find_error(path, data, dtype, need_y, hint)
    nnz = colons_per_line[used]                                           # (N,) entries per row
    N, F = nnz.size, int(nnz.max(initial=0))
    _check_padded_size(path, N, F, nnz, np.flatnonzero(used) + 1)
    row = np.repeat(np.arange(N), nnz)                                    # row of each entry
    pos = np.arange(row.size) - np.repeat(np.cumsum(nnz) - nnz, nnz)      # place within its row
    out_ids = np.full((N, max(F, 1)), -1, dtype=np.int64)
    out_val = np.zeros((N, max(F, 1)), dtype=np.float64)
    out_ids[row, pos] = ids
    out_val[row, pos] = values
    return LibFM(out_ids, out_val, y, np.flatnonzero(used) + 1)


def _fit(values, dtype):
    """Every value finite and within ``dtype``'s range."""
    with np.errstate(invalid="ignore"):
        return bool(np.all(np.abs(values) <= float(np.finfo(dtype).max)))


def _check_padded_size(path, N, F, nnz, lines):
    """Rows are padded to the longest: refuse a file whose padded form cannot fit in memory
    (one very long line among short ones), naming that line, rather than run out of memory."""
    from .backend import host_memory
    need, total = 16 * N * max(F, 1), host_memory()               # int64 ids + float64 values
    if total is not None and need > total // 2:
        longest = int(np.argmax(nnz))
        raise LibFMError(f"{path}, line {lines[longest]}: {F:,} entries, while half the rows have at most "
                         f"{int(np.median(nnz)):,}; every row is padded to the longest, which would take "
                         f"{need / 2**30:,.1f} GiB. Split that row, or drop it")


def to_model_ids(ids, raw_ids):
    """Map raw ids (-1 = padding) to a model's dense ids, given ``raw_ids`` (the raw id of each
    dense id). Returns ``(dense, known)``: dense ids (0 where unknown or padding) and a mask of
    the entries whose raw id the model knows (padding counts as known)."""
    order = np.argsort(raw_ids, kind="stable")
    real = ids >= 0
    pos = np.minimum(np.searchsorted(raw_ids, ids[real], sorter=order), raw_ids.size - 1)
    found = raw_ids[order[pos]] == ids[real]
    dense = np.zeros(ids.shape, dtype=np.int64)
    dense[real] = np.where(found, order[pos], 0)
    known = np.ones(ids.shape, dtype=bool)
    known[real] = found
    return dense, known
