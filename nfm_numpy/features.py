"""Your own data: from named columns (a CSV file, or any mapping of name -> 1-D array)
to the padded (idx, val) rows that FM and NFM read.

A **field** is one column turned into features:

* ``categorical``: one feature per value seen in the training rows (an empty
  cell is a value of its own); values seen fewer than ``min_count`` times
  ("rare") share the field's own out-of-vocabulary (OOV) feature, which is
  therefore trained. x = 1.
* ``numeric``: one feature whose x is the value standardised with the
  training mean and standard deviation, (v - mean) / sd; a missing value
  (an empty cell, "NA", NaN, ...) gets x = 0, the training mean. Or, on
  request, ``buckets``: quantile buckets of the training values, each
  bucket a categorical value (missing values: the OOV feature).
* ``multi``-valued (``Action|Comedy``): one feature per value, each with
  x = 1/m for a cell of m distinct values, so a field's values sum to 1.

Every column must be named: by ``categorical``, ``numeric``, ``multi_valued``,
``ignore`` or as the label; ``categorical="*"`` takes every column no other
argument names. A column nobody named is an error, never a field made
silently (a column derived from the label would leak it into the model).

Each field owns a contiguous range of ids, its OOV id first. ``Encoder``
learns the vocabularies and statistics from training rows (``fit``), turns
any rows into ``(idx, val)`` (``transform``), prints itself as a table of
fields, and round-trips through a checkpoint as arrays and JSON
(``to_arrays`` / ``from_arrays``; no pickle). At prediction a value seen in
training (even a rare one) is never "unseen"; ``unseen`` decides only about
values never seen in training.

Also here: ``read_csv`` (comma or tab, sniffed; errors name file, line and
column; a pipe or ``/dev/stdin`` is read as a stream), ``read_csv_chunks`` (the
same, in pieces of a file larger than memory; ``Encoder.fit_chunks`` fits on them), ``add_negatives``
(implicit feedback, the way the NFM authors built Frappe from its log: for
each used (user, item), n items that user never used, with the same
context), ``split_rows`` (a seeded 70/20/10 split) and ``join`` (side
information, e.g. app metadata, by a key column). Every row keeps the file
and line it came from through splits, negatives and joins, so an error
always names the file's own line (a cell that ``join`` added: the other
file's line and the key, beside the row it was joined to). Everything is vectorised: columns are
encoded with one dictionary lookup per distinct value, never a loop over
rows in NumPy.
"""
from __future__ import annotations

import codecs
import collections
import collections.abc
import csv
import io
import itertools
import json
import numbers
import os
import re
import stat
import sys
from dataclasses import dataclass, field as dc_field
from itertools import repeat
from pathlib import Path

import numpy as np

from . import errors as E
from .data import Dataset, Split
from .errors import DataError, OptionError, OptionTypeError

KINDS = ("categorical", "numeric", "buckets", "multi")
MISSING = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None")
CSV_UNSEEN = ("oov", "ignore", "error")
LOSSES = ("square", "log")
ASCII_BLANKS = " \t\n\r\f\v"  # what is stripped around a cell (str.strip() would also remove U+00A0 and kin)
ALL = "*"                      # categorical="*": every column no other argument names
# A categorical column is "near-unique" when more than half of at least NEAR_UNIQUE_ROWS training rows hold
# a value that occurs once: as a field it memorises rows (a timestamp, a row id) instead of learning.
NEAR_UNIQUE_ROWS = 50
# bucket edges are quantiles of at most this many values of a column (all of them, if there are no more)
BUCKET_SAMPLE = 250_000       # (a quantile from 250,000 draws is within about 0.2 % of its rank)
# what a user's file may use as a delimiter by mistake: the hint of a wrong-delimiter error
LIKELY_DELIMITERS = (",", ";", "\t", "|", ":", " ")
# a path that names a descriptor already open (process substitution <(...), a shell pipe): read as a stream
OPEN_DESCRIPTOR = re.compile(r"/dev/stdin|/dev/fd/\d+|/proc/self/fd/\d+|/proc/\d+/fd/\d+\Z")


# ====================================================================== arguments
def _column(value, name):
    """One column name: a non-empty str."""
    if not isinstance(value, str):
        raise OptionTypeError(f"{name} must be a column name (a str), got {value!r}")
    if not value.strip():
        raise OptionError(f"{name} must be a column name, got an empty one ({value!r})")
    return value


def _column_list(value, name):
    """Column names: None is none, a str names ONE column (never read letter by letter), a list,
    tuple, set or 1-D array holds names. A mapping is refused (its values would be dropped)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [_column(value, name)]
    if hasattr(value, "items") or not hasattr(value, "__iter__") or isinstance(value, bytes):
        raise OptionTypeError(f"{name} must be a column name or a list of them, got {value!r}")
    names = list(value)
    return [_column(v, f"{name}[{i}]") for i, v in enumerate(names)]


def _path(value, name):
    """A file name: a str or path object, never empty (an empty name is not 'no file')."""
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)):
        raise OptionTypeError(f"{name} must be a file name, got {value!r}")
    text = os.fspath(value)
    if not isinstance(text, str) or not text.strip():
        raise OptionError(f"{name} must be a file name, got an empty one ({text!r})")
    return text


def _dtype(dtype):
    """float32 or float64 (the dtypes a model computes in)."""
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise OptionTypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if d not in (np.float32, np.float64):
        raise OptionError(f"dtype must be float32 or float64, got {d.name}")
    return d


def _delimiter(value):
    """None (sniffed) or one character that can separate CSV fields."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise OptionTypeError(f"delimiter must be one character such as ',' or '\\t', got {value!r}")
    if len(value) != 1:
        raise OptionError(f"delimiter must be one character such as ',' or '\\t', got {value!r}")
    why = ("it is the quote character, which opens a quoted field" if value == '"' else
           "it ends a row" if value in "\r\n" else
           "a NUL character is not text" if value == "\0" else
           "whitespace other than tab is too easily part of a cell (use tab or ',')" if value.isspace() and
           value != "\t" else "")
    if why:
        raise OptionError(f"delimiter {value!r} cannot separate fields: {why}")
    return value


def _label_text(value, name):
    """A label value as the text a file would hold it: a str, or a number (1 -> '1')."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, numbers.Real)):
        raise OptionTypeError(f"{name} must be a label value such as 'yes' or 1, got {value!r}")
    text = value.strip() if isinstance(value, str) else _num_text(value)
    if not text:
        raise OptionError(f"{name} must be a label value such as 'yes' or 1, got an empty one")
    return text


# ====================================================================== tables
class Table:
    """Named columns of one length, with where each row came from.

    ``columns``: name -> 1-D NumPy array (object arrays of text, as read from a
    file, or numbers). ``lines``: the 1-based line of each row in its file
    (``unit`` 'line'), or, for rows that came from a mapping, the row's number
    in that mapping (``unit`` 'row'). ``files``: the file of each row when the
    rows came from several files (else every row is from ``source``). Every
    way of making a table from another (``take``, ``with_column``, the
    concatenation of files) carries these along, so an error names the
    original line whatever shuffling came between. A column added by ``join`` also
    keeps the row of the other table each cell came from (``joined``: column ->
    ``_Joined``), so an error in such a cell names that table's file and line
    and the key it was joined by, not only the row it was joined to.
    """

    def __init__(self, columns, lines=None, source="data", *, files=None, unit=None, delimiter=None):
        cols = {}
        n = None
        for name, values in dict(columns).items():
            a = np.asarray(values)
            if a.ndim != 1:
                raise DataError(f"{source}: column {name!r} must be 1-D, got shape {a.shape}")
            if n is not None and a.shape[0] != n:
                raise DataError(f"{source}: column {name!r} has {a.shape[0]} rows, the others {n}")
            n = a.shape[0]
            cols[str(name)] = a
        self.columns, self.source = cols, source
        self.n_rows = 0 if n is None else n
        if lines is None:                   # rows of a mapping: numbered from 1, kept through take()
            lines, unit = np.arange(1, self.n_rows + 1), unit or "row"
        self.lines, self.unit = np.asarray(lines, dtype=np.int64), unit or "line"
        self.files, self.delimiter = files, delimiter
        self._codes = {}                     # name -> (codes, distinct texts): see ``codes``
        self.joined = {}                     # name -> _Joined, for the columns ``join`` added

    def __len__(self):
        return self.n_rows

    def __getitem__(self, name):
        if name not in self.columns:
            raise OptionError(self.no_column(name))
        return self.columns[name]

    def __contains__(self, name):
        return name in self.columns

    @property
    def names(self):
        return list(self.columns)

    def no_column(self, name, what="column"):
        """The message for a column this table lacks: the columns it has, and, when the header
        reads as one column holding ``name`` beside a likely delimiter, that the delimiter is wrong."""
        hint = _delimiter_hint(self.names, self.delimiter, name) if self.delimiter else ""
        if hint:
            return f"{self.source}, line 1: no {what} {name!r}: {hint}"
        return f"{self.source}: no {what} {name!r}; the columns are {_names(self.names)}"

    def where(self, row, column=None):
        """'file, line N, column C' (or 'source, row N' for a mapping) for error messages. For a
        column that ``join`` added: the other table's file and line the cell came from, the key,
        and this table's row it was joined to (or, for a key the other table lacks, that no row
        of it has the key: the cell is empty)."""
        source = self.source if self.files is None else self.files[row]
        here = f"{source}, {self.unit} {self.lines[row]}"
        if column is None:
            return here
        if column in self.joined:
            return self.joined[column].where(self, row, column, here)
        return f"{here}, column {column!r}"

    def first(self, mask):
        """The row, among those where ``mask`` is true, that comes first in the file (errors name the
        earliest offending line, whatever order a split or shuffle left the rows in)."""
        rows = np.flatnonzero(mask)
        return int(rows[np.argmin(self.lines[rows])])

    def codes(self, name):
        """The column as ``(codes, texts)``: ``texts[codes]`` is the column as text, ``texts``
        its distinct values. Computed once (one dictionary pass) and carried along by ``take``,
        so encoding works on the distinct values, then gathers: no Python loop over rows twice."""
        if name not in self._codes:
            try:
                self._codes[name] = _factorize(self[name])
            except TypeError:                    # an unhashable cell (a list, a dict): not a value
                bad = np.array([not isinstance(v, collections.abc.Hashable) for v in self[name].tolist()])
                r = self.first(bad)
                raise DataError(f"{self.where(r, name)}: a cell holds a {type(self[name][r]).__name__}; a cell must "
                                "be text or a number (a multi-valued cell is text such as 'a|b')") from None
            except _NulText as e:
                r = self.first(e.rows)
                raise DataError(f"{self.where(r, name)}: {_shown(_num_text(self[name][r]))} holds a NUL character "
                                "(\\x00), which is not text (NumPy would drop it at the end of a value, merging "
                                "two values); remove it") from None
        return self._codes[name]

    def _like(self, columns, rows=None, source=None):
        """A table of ``columns`` with this one's origins (of ``rows`` if given) and delimiter."""
        pick = (lambda a: a) if rows is None else (lambda a: a[rows])
        out = Table(columns, pick(self.lines), source or self.source, unit=self.unit, delimiter=self.delimiter,
                    files=None if self.files is None else pick(self.files))
        taken = {}                           # one join's columns share their rows: take them once
        for name, j in self.joined.items():
            if name in out.columns:
                if id(j) not in taken:
                    taken[id(j)] = j if rows is None else j.take(rows)
                out.joined[name] = taken[id(j)]
        return out

    def take(self, rows):
        rows = np.asarray(rows)
        out = self._like({n: a[rows] for n, a in self.columns.items()}, rows)
        out._codes = {n: (c[rows], t) for n, (c, t) in self._codes.items()}
        return out

    def with_column(self, name, values, codes=None):
        out = self._like({**self.columns, name: values})
        out.joined.pop(name, None)                   # new values: no longer the other table's cells
        out._codes = {n: ct for n, ct in self._codes.items() if n != name}
        if codes is not None:
            out._codes[name] = codes
        return out

    def __repr__(self):
        return f"Table({self.source!r}, rows={self.n_rows}, columns={self.names})"


class _Joined:
    """Where the cells of the columns one ``join`` added came from: ``at``, for each row of the
    table, the row of the other table (-1: no row of it has the key), with that table's source,
    lines, files and unit, its key column ``on`` and the key texts, and ``names``: each added
    column's name in the other table (the added name may carry a prefix)."""

    def __init__(self, other, on, keys, at, names):
        self.source, self.unit, self.lines, self.files = other.source, other.unit, other.lines, other.files
        self.on, self.keys, self.at, self.names = on, keys, at, names

    def take(self, rows):
        out = object.__new__(_Joined)
        out.__dict__.update(self.__dict__, at=self.at[rows])
        return out

    def where(self, table, row, column, here):
        j = int(self.at[row])
        if j < 0:
            key = f" {_shown(_num_text(table[self.on][row]))}" if self.on in table else ""
            return f"{here}, column {column!r} (empty: joined from {self.source}, which has no row with {self.on}{key})"
        source = self.source if self.files is None else self.files[j]
        return (f"{source}, {self.unit} {self.lines[j]}, column {self.names[column]!r} (joined by {self.on} "
                f"{_shown(self.keys[j])} to {here})")


def as_table(data, source="data"):
    """A ``Table`` from a Table, or from any mapping of name -> 1-D array (``dict(df)`` of a
    pandas DataFrame works, and so does the DataFrame itself; pandas is not needed)."""
    if isinstance(data, Table):
        return data
    if not hasattr(data, "items"):
        raise OptionTypeError(f"expected a mapping of column name -> 1-D array (or a Table), "
                              f"got {type(data).__name__}")
    return Table(data, None, source)


def _delimiter_hint(names, delim, wanted=None):
    """'the header reads as one column ...; it looks like ';'' when a one-column header holds a likely
    delimiter (and, if ``wanted`` is given, splits into pieces that include it); else ''."""
    if len(names) != 1:
        return ""
    header = names[0]
    found = [d for d in LIKELY_DELIMITERS if d != delim and d in header and
             (wanted is None or wanted in [p.strip() for p in header.split(d)])]
    if not found:
        return ""
    d = max(found, key=header.count)
    shown = "tab" if d == "\t" else repr(d)
    return (f"the header reads as one column {header!r} with delimiter {'tab' if delim == chr(9) else repr(delim)}; "
            f"the delimiter seems wrong (it looks like {shown}: --delimiter {shown})")


# ====================================================================== reading CSV
def _sniff(header):
    counts = {d: header.count(d) for d in ("\t", ",", ";")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def read_csv(path, delimiter=None, encoding="utf-8-sig"):
    """A delimited text file with a header row, as a ``Table`` of text columns.

    ``delimiter``: one character such as ',' or '\\t' (not a quote, a line
    break or whitespace other than tab); None sniffs the header line (tab,
    comma or semicolon, the most frequent). Quoted fields follow the CSV rules,
    and a cell may be of any size. Blank lines are skipped.

    The file is read once, from its start, without seeking: a pipe, process
    substitution ``<(...)`` or ``/dev/stdin`` works. A path that is not a
    regular file (a named FIFO, a device, a folder) is refused, unless it
    names a descriptor already open (``/dev/stdin``, ``/dev/fd/N``): a named
    FIFO with no writer would wait forever.

    Raises ``DataError`` naming the file and line (and column, for the
    header): a row whose number of fields differs from the header's, an
    unclosed quote (the line it opens on), an empty or repeated column name,
    an empty file or a header alone, and text that is not UTF-8 (the first
    line holding a byte that is not, or a NUL byte, as UTF-16 text has).
    """
    path = _path(path, "path")
    delim = _delimiter(delimiter)
    text = _decode(path, _read_bytes(path), _encoding(encoding))
    return _parse(text, path, delim)


def _encoding(encoding):
    if not isinstance(encoding, str):
        raise OptionTypeError(f"encoding must be a codec name such as 'utf-8', got {encoding!r}")
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise OptionError(f"encoding {encoding!r} is not a text encoding Python knows") from None


def _read_bytes(path):
    """The file's bytes, read as a stream (no seek). Only a regular file or an open descriptor is read."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode) and not OPEN_DESCRIPTOR.match(path):
            raise DataError(_not_a_file(path, mode))
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise DataError(f"{path}: {e.strerror or e}") from None


def _not_a_file(path, mode):
    if stat.S_ISFIFO(mode):
        return (f"{path} is a named pipe (FIFO): reading it would wait forever if nothing writes to it; give a "
                f"regular file, or pipe the data in (--csv /dev/stdin < {path})")
    return f"{path} is {'a folder' if stat.S_ISDIR(mode) else 'not a regular file (a device or socket)'}"


def _line_of(data, at):
    """The 1-based line of byte ``at`` of ``data``."""
    return data.count(b"\n", 0, at) + 1


def _decode(path, data, encoding, line=1):
    """``data`` as text; a DataError naming the first line that is not text in ``encoding``. ``data``
    starts on line ``line`` of the file (a byte-order mark is looked for on line 1 only)."""
    wide = encoding.startswith(("utf-16", "utf-32"))
    name = "UTF-8" if encoding.startswith("utf-8") else encoding
    if not wide and line == 1 and data[:4] in (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE):   # (before UTF-16)
        raise DataError(f"{path}: not {name} text: it starts with a UTF-32 byte-order mark; save it as UTF-8")
    if not wide and line == 1 and data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DataError(f"{path}: not {name} text: it starts with a UTF-16 byte-order mark; save it as UTF-8")
    nul = -1 if wide else data.find(b"\0")
    if nul >= 0:                         # UTF-16 without a mark decodes as 'UTF-8' with a NUL every other byte
        raise DataError(f"{path}, line {_line_of(data, nul) + line - 1}: not {name} text (a NUL byte: perhaps "
                        "UTF-16); save it as UTF-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}, line {_line_of(data, e.start) + line - 1}: not {name} text (byte "
                        f"0x{data[e.start]:02x}: {e.reason}); save it as UTF-8") from None


def _parse(text, path, delimiter):
    header_line = io.StringIO(text, newline="").readline()
    if not header_line.strip():
        raise DataError(f"{path}: no header row (the file is empty or starts with a blank line)")
    delim = delimiter or _sniff(header_line)
    header, rows, ends = _csv_rows(text, path, delim)
    header = _header(header, path, delim)
    if ends == len(rows) + 1:                       # one line a row: the common case
        lines = np.arange(2, len(rows) + 2)
    else:                                           # quoted fields span lines: count them again
        lines = _row_lines(text, delim)
    table = _table_of(header, rows, lines, path, delim)
    if not len(table):
        raise DataError(f"{path}: a header row and no data rows")
    return table


def _table_of(header, rows, lines, path, delim):
    """A Table of parsed ``rows`` (lists of cells) starting on ``lines``; blank lines are dropped, and
    a row whose number of fields differs from the header's is an error at its line."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    keep = lengths > 0                              # blank lines
    if not keep.all():
        rows = [r for r, k in zip(rows, keep) if k]
        lines, lengths = lines[keep], lengths[keep]
    bad = np.flatnonzero(lengths != len(header))
    if bad.size:
        i = int(bad[0])
        hint = _delimiter_hint(header, delim)
        raise DataError(f"{path}, line {lines[i]}: {lengths[i]} fields, but the header has {len(header)} "
                        f"(delimiter {'tab' if delim == chr(9) else repr(delim)}; {bad.size} such rows)"
                        + (f"; {hint}" if hint else ""))
    cells = np.empty((len(rows), len(header)), dtype=object)        # (rows, columns): one C loop, not a zip
    cells[:] = rows if rows else cells
    columns = {name: np.ascontiguousarray(cells[:, j]) for j, name in enumerate(header)}
    return Table(columns, lines, path, delimiter=delim)


def read_csv_chunks(path, delimiter=None, rows=65536, encoding="utf-8-sig"):
    """``read_csv`` in pieces, for files larger than memory: ``Table`` objects of at most ``rows``
    rows each, in file order, each row with its own line; memory holds one piece at a time.

    The same checks and messages as ``read_csv``. The file is read once, as a stream, line by
    line in binary, so an error names its line exactly (text that is not in ``encoding``, a NUL
    byte); ``encoding`` must be one where a line break is the byte 0x0A (UTF-8, Latin-1, ...;
    not UTF-16 or UTF-32). A file with a header and no rows yields nothing after an error.
    """
    path = _path(path, "path")
    delim = _delimiter(delimiter)
    codec = _encoding(encoding)
    rows = E.integer(rows, "rows", 1)
    if codec.startswith(("utf-16", "utf-32")):
        raise OptionError(f"{path}: reading in pieces needs an encoding whose line break is one byte (UTF-8, "
                          f"Latin-1, ...), not {codec}; save the file as UTF-8")
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode) and not OPEN_DESCRIPTOR.match(path):
            raise DataError(_not_a_file(path, mode))
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"{path}: {e.strerror or e}") from None
    with f:
        yield from _chunks(f, path, delim, codec, rows)


def _text_blocks(f, path, codec, size=1 << 22):
    """The file as text, in blocks of whole lines (about ``size`` bytes each), each decoded at once:
    an error names its line (``_decode`` is told the line each block starts on)."""
    line, rest = 1, b""
    while True:
        raw = f.read(size)
        data = rest + raw
        cut = len(data) if not raw else data.rfind(b"\n") + 1
        if raw and not cut:                          # no line break yet: read on
            rest = data
            continue
        data, rest = data[:cut], data[cut:]
        if data:
            yield _decode(path, data, codec, line)
            codec = "utf-8" if codec == "utf-8-sig" else codec      # a byte-order mark may open the file only
            line += data.count(b"\n")
        if not raw:
            return


def _chunks(f, path, delim, codec, rows):
    limit = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        lines = itertools.chain.from_iterable(io.StringIO(t, newline="") for t in _text_blocks(f, path, codec))
        first = next(lines, "")
        if not first.strip():
            raise DataError(f"{path}: no header row (the file is empty or starts with a blank line)")
        delim = delim or _sniff(first)
        reader = csv.reader(itertools.chain([first], lines), delimiter=delim, strict=True)
        try:
            header = _header(next(reader), path, delim)
            piece, starts, last, total = [], [], reader.line_num, 0
            for row in reader:
                if row:                          # (a blank line is no row)
                    piece.append(row)
                    starts.append(last + 1)
                last = reader.line_num
                if len(piece) == rows:
                    table = _table_of(header, piece, np.array(starts, dtype=np.int64), path, delim)
                    total += len(table)
                    yield table
                    piece, starts = [], []
        except csv.Error as e:
            raise DataError(f"{path}, line {last + 1}: {e}{_quote_hint(e)}") from None
        table = _table_of(header, piece, np.array(starts, dtype=np.int64), path, delim)
        if len(table) or not total:
            if not len(table):
                raise DataError(f"{path}: a header row and no data rows")
            yield table
    finally:
        csv.field_size_limit(limit)


def _csv_rows(text, path, delim):
    """(header, rows, last line number) of ``text``. No limit on a cell's size: the file is in memory
    already, and csv's default limit (128 KiB) would refuse a valid long cell and blame a quote."""
    limit = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    rows = []
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, strict=True)
        try:
            header = next(reader)
        except csv.Error as e:
            raise DataError(f"{path}, line 1: {e}{_quote_hint(e)}") from None
        try:
            rows.extend(reader)                     # on an error, the rows before it stay in ``rows``
        except csv.Error as e:                      # name the line the bad row starts on, not the file's end
            raise DataError(f"{path}, line {_row_lines(text, delim, len(rows) + 1)[-1]}: {e}{_quote_hint(e)}") \
                from None
    finally:
        csv.field_size_limit(limit)
    return header, rows, reader.line_num


def _quote_hint(error):
    return " (an unclosed quote runs to the end of the file?)" if "end of data" in str(error) else ""


def _header(header, path, delim):
    """The column names, stripped; an empty name or a name given twice is refused by its column
    number (no option could name the column, or name only one of the two)."""
    header = [h.strip() for h in header]
    for j, h in enumerate(header):
        if not h:
            last = " (a delimiter at the end of the header line?)" if j == len(header) - 1 else ""
            raise DataError(f"{path}, line 1, column {j + 1}: a column with no name{last}; name it, or remove it")
    seen = {}
    for j, h in enumerate(header):
        if h in seen:
            raise DataError(f"{path}, line 1, column {j + 1}: the header names column {h!r} twice (columns "
                            f"{seen[h] + 1} and {j + 1})")
        seen[h] = j
    return header


def _row_lines(text, delim, stop=None):
    """The line each row starts on (after the header), for files whose quoted fields span lines;
    with ``stop``, only for the first ``stop`` rows (reading stops before a bad one)."""
    limit = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    starts = []
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, strict=True)
        next(reader)
        last = reader.line_num
        while stop is None or len(starts) < stop:
            starts.append(last + 1)
            try:
                next(reader)
            except (StopIteration, csv.Error):
                starts.pop() if stop is None else None
                break
            last = reader.line_num
    finally:
        csv.field_size_limit(limit)
    return np.array(starts, dtype=np.int64)


def write_csv(path, table, delimiter=","):
    """Write a ``Table`` (or mapping) as a delimited UTF-8 file with a header row, through a temporary
    file (a failed write leaves the old file). Cells are written as the encoder reads them: a
    missing value (None, NaN, pandas' NA) as an empty cell."""
    from .outputs import write_atomically
    table, path = as_table(table), _path(path, "path")
    delimiter = _delimiter(delimiter) or ","
    columns = [_text(table[n]).tolist() for n in table.names]
    if not table.names:
        raise OptionError("write_csv: the table has no columns")

    def write(f):
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        w = csv.writer(text, delimiter=delimiter)
        w.writerow(table.names)
        w.writerows(zip(*columns))
        text.flush()
        text.detach()                               # leave ``f`` open for write_atomically
    return write_atomically(path, write, "path")


def join(table, other, on, columns=None, prefix=""):
    """``table`` with columns of ``other`` added by matching key column ``on`` (a left join: a
    key missing from ``other`` gets empty cells). Keys must be unique in ``other``; a new column
    may not replace one ``table`` has (give a ``prefix``)."""
    table, other = as_table(table), as_table(other, "other")
    on = _column(on, "on")
    if not isinstance(prefix, str):
        raise OptionTypeError(f"prefix must be a str, got {prefix!r}")
    names = _column_list(columns, "columns") if columns is not None else [c for c in other.names if c != on]
    for name in names:
        other[name]                                              # the column exists (else: named error)
        if prefix + name in table:
            raise OptionError(f"{table.source} already has a column {prefix + name!r}; give a prefix")
    keys = _text(other[on])
    index = {k: i for i, k in enumerate(keys.tolist())}
    if len(index) != len(keys):
        raise DataError(f"{other.source}: key column {on!r} repeats a value; a join needs unique keys")
    at = np.fromiter(map(index.get, _text(table[on]).tolist(), repeat(-1)), dtype=np.int64, count=len(table))
    out = table
    for name in names:
        values = np.append(_text(other[name]), "")              # position -1: an empty cell
        out = out.with_column(prefix + name, values[at])
    origin = _Joined(other, on, keys, at, {prefix + name: name for name in names})
    out.joined.update({prefix + name: origin for name in names})   # errors in these cells name other's rows
    return out


def split_rows(n, fractions=(0.7, 0.2, 0.1), seed=0):
    """Row indices of a seeded random split into parts of the given fractions (which must sum to 1)."""
    n = E.integer(n, "n", 1)
    fractions = E.float_list(fractions, "split", lambda v, name: E.real(v, name, 0.0, 1.0))
    if abs(sum(fractions) - 1.0) > 1e-9 or any(f == 0 for f in fractions):
        raise OptionError(f"split fractions must be positive and sum to 1, got {fractions}")
    perm = np.random.default_rng(E.integer(seed, "seed", 0)).permutation(n)
    cuts = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
    parts = np.split(perm, cuts)
    empty = [i for i, p in enumerate(parts) if p.size == 0]
    if empty:
        i = empty[0]
        what = f"the {('train', 'validation', 'test')[i]} fraction" if len(parts) == 3 else f"fraction {i + 1}"
        raise DataError(f"{n:,} rows are too few for split {', '.join(f'{f:g}' for f in fractions)}: {what} "
                        f"{fractions[i]:g} gives 0 of the {n:,} rows; each part needs a row at least (a fraction "
                        f"of about {1 / n:.2g})")
    return parts


# ====================================================================== negatives
def add_negatives(table, user, item, n=2, label="label", positive=1.0, negative=-1.0, seed=0):
    """Implicit feedback as the NFM authors built Frappe: every row of ``table`` is a positive
    (label ``positive``); for each, ``n`` negatives (label ``negative``) copy its user and context
    and take an item that this user never used anywhere in ``table`` (distinct for one positive).

    Each negative is drawn uniformly from the user's unused items (the items of the table that
    this user never used): no rejection loop, so the time is O(rows x n) however many items a
    user used. A user with fewer than ``n`` unused items is a ``DataError`` naming the user.
    Seeded. Returns a new ``Table`` of (n + 1) rows per input row: the positives first, then the
    negatives in groups of n; each row keeps the file line of the positive it copies.
    """
    table = as_table(table)
    user, item, label = _column(user, "user"), _column(item, "item"), _column(label, "label")
    n = E.integer(n, "negatives", 1)
    positive, negative = E.real(positive, "positive"), E.real(negative, "negative")
    seed = E.integer(seed, "seed", 0)
    if positive == negative:
        raise OptionError(f"the positive and negative labels must differ, got {positive:g} for both")
    if user == item:
        raise OptionError(f"the user and item columns must differ, got {user!r} for both")
    if label in table:
        raise OptionError(f"{table.source}: already has a column {label!r}; the negatives make the label")
    if len(table) == 0:
        raise DataError(f"{table.source}: no rows to draw negatives for")
    user_code, user_names = _present(*table.codes(user))
    item_code, item_names = _present(*table.codes(item))
    draw = _unused_items(user_code, item_code, item_names.size, n, np.random.default_rng(seed),
                         lambda u, used, free: _too_few_items(table, user_names[u], used, item_names.size, free, n))
    rows = len(table)
    src = np.concatenate([np.arange(rows), np.repeat(np.arange(rows), n)])       # the row each output copies
    for name in table.names:                   # factorise here, on 1/(n + 1) of the rows the encoder would see
        table.codes(name)
    out = table.take(src)                                                        # users and context copied
    new_items = np.concatenate([item_code, draw.ravel()])
    out = out.with_column(item, item_names[new_items], codes=(new_items, item_names))
    return out.with_column(label, np.concatenate([np.full(rows, positive), np.full(rows * n, negative)]))


def _present(codes, texts):
    """``(codes, texts)`` keeping only the texts these rows hold (a table taken from a larger one
    shares that one's list of texts; an item no row here holds must not be drawn)."""
    keep, dense = np.unique(codes, return_inverse=True)
    return dense.astype(np.int64).reshape(-1), texts[keep]


def _unused_items(user, item, n_items, n, rng, too_few):
    """(rows, n) items, distinct in a row, none used by the row's user: uniform among each user's
    unused items. ``too_few(u, used, free)`` makes the error for a user with fewer than n unused.

    How: the (user, item) pairs used, sorted, give each user's used items s_0 < s_1 < ...; the
    r-th unused item (0-based) is r + #{j: s_j - j <= r}, one ``searchsorted`` for all rows at once
    in the global sorted array of user * n_items + (s_j - j). Ranks r are drawn distinct per row
    with Floyd's algorithm (n draws a row, each checked against the row's earlier draws)."""
    used = np.unique(user * n_items + item)                       # sorted (user, item) codes
    owner = used // n_items
    per_user = np.bincount(owner, minlength=int(user.max()) + 1)
    free = n_items - per_user
    if np.any(free < n):
        u = int(np.flatnonzero(free < n)[0])
        raise too_few(u, int(per_user[u]), free)
    start = np.concatenate([[0], np.cumsum(per_user)[:-1]])
    keys = used - (np.arange(used.size) - start[owner])           # user * n_items + (s_j - j): still sorted
    ranks = _distinct_ranks(rng, free[user], n)
    below = np.searchsorted(keys, user[:, None] * n_items + ranks, side="right") - start[user][:, None]
    return ranks + below


def _distinct_ranks(rng, m, n):
    """(rows, n) ints, distinct in a row, a uniform n-subset of [0, m[r]) for row r (Floyd's
    algorithm: step j draws t in [0, m - n + j] and takes m - n + j itself if t was drawn already)."""
    out = np.empty((m.size, n), dtype=np.int64)
    for j in range(n):
        top = m - n + j
        t = rng.integers(0, top + 1)
        drawn = (out[:, :j] == t[:, None]).any(axis=1)
        out[:, j] = np.where(drawn, top, t)
    return out


def _too_few_items(table, name, used, n_items, free, n):
    most = int(free.min())
    way = (f"use --negatives {most} or fewer" if most >= 1 else
           "leave out the users who used every item")
    return DataError(f"{table.source}: user {_shown(name)} used {used:,} of the {n_items:,} items, leaving "
                     f"{n_items - used:,} unused, fewer than the {n} negative{'s' * (n != 1)} each of their rows needs "
                     f"({_count((free < n).sum(), 'such user')}); {way}")


def _count(k, what):
    """'1 such user', '3 such users'."""
    return f"{int(k):,} {what}{'s' * (int(k) != 1)}"


# ====================================================================== encoding
def _blank(v):
    """None, NaN (of any number type), pandas' NA and NaT: the empty cell, whatever the source."""
    if v is None:
        return True
    if type(v).__name__ in ("NAType", "NaTType"):
        return True
    if isinstance(v, (np.datetime64, np.timedelta64)):
        return bool(np.isnat(v))
    if isinstance(v, numbers.Number) and not isinstance(v, numbers.Integral):
        try:
            return bool(v != v)
        except (TypeError, ValueError):
            return False
    return False


def _text(values):
    """A column as an object array of str (numbers as their text, as a CSV file would hold them;
    a missing value, however written, as the empty cell)."""
    a = np.asarray(values)
    if a.dtype == object:
        items = a.tolist()
        if set(map(type, items)) <= {str}:                   # text already (a CSV column): as it is
            return a
        return np.array([v if isinstance(v, str) else _num_text(v) for v in items], dtype=object)
    if a.dtype.kind in "iub":
        return a.astype(str).astype(object)
    if a.dtype.kind == "S":
        return np.array([_num_text(v) for v in a.tolist()], dtype=object)
    if a.dtype.kind == "f":
        return np.array([_num_text(v) for v in a.tolist()], dtype=object)
    if a.dtype.kind in "mM":
        return np.where(np.isnat(a), "", a.astype(str)).astype(object)
    return a.astype(str).astype(object)


def _num_text(v):
    if _blank(v):
        return ""
    if isinstance(v, bytes):                  # bytes as the text they hold (UTF-8), not "b'...'"
        return v.decode("utf-8", "backslashreplace")
    if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral):
        v = float(v)
        return str(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)
    return str(v)


def _factorize(values):
    """``(codes, texts)`` with ``texts[codes]`` the column as text and ``texts`` distinct, in order
    of first appearance: one dictionary pass over the cells (NumPy's sort for number columns)."""
    a = np.asarray(values)
    if a.dtype.kind in "iub":
        uniq, codes = np.unique(a, return_inverse=True)
        return codes.astype(np.int64).reshape(-1), _text(uniq)
    items = a.tolist()
    seen = {}
    first = np.fromiter(map(seen.setdefault, items, itertools.count()), dtype=np.int64, count=len(items))
    order = np.fromiter(seen.values(), dtype=np.int64, count=len(seen))      # first positions, increasing
    codes = np.searchsorted(order, first)
    texts = _text(np.array(list(seen) + [None], dtype=object)[:-1])          # (+ None: never a 2-D array)
    nul = [i for i, t in enumerate(texts.tolist()) if "\0" in t]
    if nul:                 # NumPy's str drops a trailing NUL: 'x\0' would merge with 'x' (here, in a vocabulary)
        raise _NulText(np.isin(codes, nul))
    merged, back = np.unique(texts.astype(str), return_inverse=True)         # 1 and "1" are one text
    if merged.size == texts.size:
        return codes, texts
    return back.reshape(-1)[codes], merged.astype(object)


def _not_numbers(texts):
    """Which of ``texts`` (str) do not read as a number. The one test that both decides that a column
    is bad and marks its first bad cell: a number is ASCII text matching ``errors.NUMBER``, with ASCII
    blanks around it at most (float() and NumPy also read '1_000', non-ASCII digits and Unicode
    spaces such as U+00A0, which str.strip() removes; none of them is a number here)."""
    return np.fromiter((not (v.isascii() and E.NUMBER.match(v.strip())) for v in texts.tolist()), dtype=bool,
                       count=len(texts))


class _NulText(Exception):
    """A column holds a NUL character (``rows``: the rows holding one); ``Table.codes`` names the first."""

    def __init__(self, rows):
        super().__init__("a NUL character")
        self.rows = rows


def _numbers(table, name, missing, what="numeric column"):
    """A column as float64 with NaN for missing cells; text, or a number too large for float64,
    is an error naming the first such cell in the file (file, line and column). Each distinct
    text is tested (``_not_numbers``) and converted once, then gathered for every row."""
    a = np.asarray(table[name])
    if a.dtype.kind in "iufb":
        x = a.astype(np.float64)
    else:
        codes, texts = table.codes(name)
        # a table taken from a larger one shares its list of texts: only those these rows hold count
        held = np.bincount(codes, minlength=texts.size) > 0
        blank = ~held | np.isin(texts, list(missing) + [""])
        bad = ~blank
        bad[bad] = _not_numbers(texts[bad])
        if bad.any():
            r = table.first(bad[codes])
            how = (f"; missing values are written as one of {', '.join(map(repr, missing))}; if it means no "
                   "value, add it to missing (--missing on the command line)" if missing and what == "numeric column"
                   else "")
            raise DataError(f"{table.where(r, name)}: {_shown(texts[codes[r]])} is not a number (a {what}{how})")
        values = np.where(blank, "nan", texts).astype(object).astype(np.float64)      # float() of each text
        values[blank] = np.nan
        x = values[codes]
        inf = np.isinf(x)
        if inf.any():
            r = table.first(inf)
            cell = texts[codes[r]].strip().lower().lstrip("+-")
            why = "is not a finite number" if cell in ("inf", "infinity") else \
                f"is too large for float64 (max {np.finfo(np.float64).max:.4g})"
            raise DataError(f"{table.where(r, name)}: {_shown(texts[codes[r]])} {why}")
    inf = np.isinf(x)
    if inf.any():
        r = table.first(inf)
        raise DataError(f"{table.where(r, name)}: {x[r]} is not a finite number")
    return x


def _names(names, most=20):
    """Column names for a message: repr()'d (a BOM, a comma or a line break shows), at most ``most``."""
    names = list(names)
    shown = ", ".join(map(repr, names[:most]))
    return shown + (f", ... ({len(names):,} columns)" if len(names) > most else "")


def _shown(text, most=40):
    """A cell as an error message shows it: repr(), cut to ``most`` characters (with its length)."""
    text = str(text)
    if len(text) <= most:
        return repr(text)
    return f"{text[:most]!r}... ({len(text):,} characters)"


@dataclass
class Field:
    """One column as a range of feature ids: ``offset`` is its OOV id, then its values."""

    name: str
    kind: str                                 # categorical, numeric, buckets or multi
    offset: int = 0
    vocab: np.ndarray = None                  # categorical, multi: the values, in id order after the OOV id
    rare: np.ndarray = None                   # categorical, multi: values seen in training, fewer than
    #                                           min_count times: they map to the OOV id and are not unseen
    edges: np.ndarray = None                  # buckets: the inner bucket edges
    mean: float = 0.0                         # numeric
    sd: float = 1.0
    sep: str = "|"                            # multi
    width: int = 1                            # entries a row uses (multi: the most values in a training cell)
    counts: dict = dc_field(default_factory=dict)

    @property
    def size(self):
        """Number of feature ids of this field."""
        if self.kind == "numeric":
            return 1
        if self.kind == "buckets":
            return 2 + self.edges.size        # OOV (missing) + edges.size + 1 buckets
        return 1 + self.vocab.size


class _FieldFit:
    """What fitting one field gathers from pieces of the rows: value counts (categorical, multi),
    or count, mean and sum of squared deviations (numeric), or values for bucket edges: all of
    them up to ``BUCKET_SAMPLE``, then a seeded uniform sample of that many (the values with the
    smallest random keys, so the sample does not depend on how the rows were cut)."""

    def __init__(self, field, starred):
        self.field, self.starred = field, starred
        self.counts = collections.Counter()
        self.n, self.mean, self.m2, self.missing, self.width = 0, 0.0, 0.0, 0, 0
        self._kept, self._keys = [], []
        self._rng = np.random.default_rng(0)

    def combine(self, n, mean, m2):
        """Chan et al.'s pairwise update of (count, mean, sum of squared deviations); for the first
        piece it is that piece's own numbers, exactly."""
        if not self.n:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total

    def sample(self, seen):
        self.n += seen.size
        self._kept.append(seen)
        self._keys.append(self._rng.random(seen.size))
        if sum(k.size for k in self._keys) > 2 * BUCKET_SAMPLE:
            self._shrink()

    def _shrink(self):
        keys, kept = np.concatenate(self._keys), np.concatenate(self._kept)
        if keys.size > BUCKET_SAMPLE:
            low = np.argpartition(keys, BUCKET_SAMPLE)[:BUCKET_SAMPLE]
            keys, kept = keys[low], kept[low]
        self._keys, self._kept = [keys], [kept]

    def values(self):
        self._shrink()
        return self._kept[0]


class Encoder:
    """Columns -> feature ids and values, learned from training rows.

    Parameters
    ----------
    categorical : a column name or a list of them, one feature per value. ``"*"`` (alone or in the
        list) adds every column that no other argument names. None (the default): no categorical
        columns. Whatever the lists, a column that no argument names is an error, never a field
        made silently nor a column silently dropped (``ignore`` leaves it out)
    numeric : column names, standardised; or a mapping name -> number of quantile buckets
        (0 or None: standardised)
    multi_valued : mapping column name -> separator (e.g. {"genres": "|"})
    label : the label column (None: no label)
    ignore : a column name or a list of them, left out
    min_count : values seen fewer times in training ("rare") go to the field's OOV feature
    missing : cell texts that mean "no value" in numeric columns (a str is one text)

    After ``fit``, ``notes`` holds lines worth printing: warnings about near-unique categorical
    columns named explicitly.
    """

    def __init__(self, categorical=None, numeric=(), multi_valued=None, label=None, ignore=(), min_count=1,
                 missing=MISSING):
        cats = None if categorical is None else _column_list(categorical, "categorical")
        self.star = cats is not None and ALL in cats
        self.categorical = None if cats is None else [c for c in cats if c != ALL]
        self.numeric = _numeric_arg(numeric)
        self.multi_valued = _multi_arg(multi_valued)
        self.label = None if label is None else _column(label, "label")
        self.ignore = _column_list(ignore, "ignore")
        self.min_count = E.integer(min_count, "min_count", 1)
        self.missing = _missing_arg(missing)
        self.positive, self.classes = None, None       # a two-class text label: see load_csv_split(positive=)
        if ALL in list(self.numeric) + list(self.multi_valued) + self.ignore or self.label == ALL:
            raise OptionError(f"{ALL!r} (every column no other option names) is a value of categorical only")
        named = (self.categorical or []) + list(self.numeric) + list(self.multi_valued)
        dupes = [c for c, k in collections.Counter(named).items() if k > 1]
        if dupes:
            raise OptionError(f"column {dupes[0]!r} is given two kinds")
        if self.label is not None and self.label in named:
            raise OptionError(f"the label column {self.label!r} cannot also be a feature")
        both = [c for c in self.ignore if c in named or c == self.label]
        if both:
            raise OptionError(f"column {both[0]!r} is both ignored and " +
                              ("the label" if both[0] == self.label else "given a kind"))
        self.fields, self.notes = None, []

    # ---------------------------------------------------------------- fitting
    def _columns(self, table):
        """[(name, kind, from_star)] of the feature columns, in the table's column order. A column
        that no argument names is an error (unless ``categorical`` holds '*')."""
        explicit = self.categorical or []
        for c in explicit + list(self.numeric) + list(self.multi_valued) + self.ignore:
            if c not in table:
                raise OptionError(table.no_column(c))
        taken = set(explicit) | set(self.numeric) | set(self.multi_valued) | set(self.ignore) | {self.label}
        rest = [c for c in table.names if c not in taken]
        starred = set(rest) if self.star else set()
        if rest and not self.star:           # whatever lists were given: a column nobody named is never dropped
            raise OptionError(f"{table.source}: no option names column{'s' * (len(rest) > 1)} {_names(rest)}, and a "
                              "column nobody named is not used; name each column: --categorical, --numeric, "
                              "--multi-valued or --ignore (or --categorical '*' for every column no other "
                              "option names)")
        kinds = {c: "categorical" for c in explicit + rest if c in set(explicit) | starred}
        kinds.update({c: "buckets" if b else "numeric" for c, b in self.numeric.items()})
        kinds.update({c: "multi" for c in self.multi_valued})
        order = [c for c in table.names if c in kinds]
        if not order:
            raise OptionError(f"{table.source}: no feature columns (all are the label or ignored)")
        return [(c, kinds[c], c in starred) for c in order]

    def fit(self, data):
        """Learn vocabularies (and which values are rare), OOV ids, means and deviations, bucket
        edges from training rows."""
        return self.fit_chunks([as_table(data)])

    def fit_chunks(self, tables):
        """``fit`` on training rows that come in pieces (e.g. ``read_csv_chunks``), holding one piece
        and the counts at a time: memory grows with the number of distinct values, never of rows.

        The result equals ``fit`` on all the rows at once: the same vocabularies, rare values and
        counts; means and deviations combined exactly (Chan's pairwise update; equal to the last bit
        for one piece, within rounding for several); bucket edges from every value while there are at
        most ``BUCKET_SAMPLE`` of a column, else from a seeded uniform sample of that many.
        """
        acc, rows, source = None, 0, "data"
        for table in tables:
            table = as_table(table)
            if acc is None:
                source = table.source
                acc = [_FieldFit(Field(name, kind), starred) for name, kind, starred in self._columns(table)]
            else:
                names = [a.field.name for a in acc]
                missing = [n for n in names if n not in table]
                if missing:
                    raise DataError(f"{table.source}: no column {missing[0]!r} in this piece of the rows")
            for a in acc:
                if a.field.kind in ("categorical", "multi"):
                    self._count_values(a, table)
                else:
                    self._add_numbers(a, table)
            rows += len(table)
        if not rows:
            raise DataError(f"{source}: no rows to fit an encoder on")
        self.notes, offset = [], 0
        for a in acc:
            f = a.field
            f.offset = offset
            if f.kind in ("categorical", "multi"):
                self._vocabulary(a, rows, source)
            else:
                self._statistics(a, source)
            offset += f.size
        self.fields = [a.field for a in acc]
        return self

    def _count_values(self, a, table):
        """Add the rows of ``table`` to a categorical or multi-valued field's counts (and width)."""
        f = a.field
        codes, texts = table.codes(f.name)
        per_text = np.bincount(codes, minlength=texts.size)                # rows holding each text
        held = per_text > 0           # a table taken from a larger one shares its texts: only these rows' count
        if f.kind == "multi":
            f.sep = self.multi_valued[f.name]
            cells = [_cell_values(t, f.sep) for t in texts[held].tolist()]
            a.width = max(a.width, max(map(len, cells)))
            for c, k in zip(cells, per_text[held].tolist()):
                for v in c:
                    a.counts[v] += k
        else:
            a.counts.update(dict(zip(texts[held].tolist(), per_text[held].tolist())))

    def _vocabulary(self, a, rows, source):
        """A field's vocabulary (values seen at least min_count times, most frequent first) and its
        rare values (seen, but fewer times: the OOV feature), from its counts."""
        f, counts = a.field, a.counts
        kept = sorted(((v, c) for v, c in counts.items() if c >= self.min_count), key=lambda vc: (-vc[1], vc[0]))
        f.vocab = np.array([v for v, _ in kept], dtype=str) if kept else np.zeros(0, dtype=str)
        f.rare = np.array(sorted(v for v, c in counts.items() if c < self.min_count), dtype=str).reshape(-1)
        f.counts = {"values": len(counts), "rare": len(counts) - len(kept)}
        if f.kind == "multi":
            f.width = a.width                   # the most values in one training cell
        else:
            self._near_unique(f.name, counts, rows, source, a.starred)

    def _near_unique(self, name, counts, rows, source, starred):
        """A categorical column where most rows hold a value seen once (an id, a timestamp) lets the
        model learn the training rows by heart: an error if only '*' chose it, else a warning."""
        once = sum(1 for c in counts.values() if c == 1)
        if rows < NEAR_UNIQUE_ROWS or once <= rows / 2:
            return
        what = f"{len(counts):,} distinct values in {rows:,} rows, {once:,} of them seen once"
        if starred:
            raise OptionError(f"{source}: column {name!r} is near-unique ({what}): as a categorical field it "
                              f"would learn the training rows by heart; use --numeric {name} or --ignore {name}, "
                              f"or name it with --categorical {name} to keep it")
        self.notes.append(f"warning: categorical column {name!r} is near-unique ({what}): the model can learn "
                          f"its training rows by heart; --numeric {name} or --ignore {name} if it is an id, a "
                          "time or a number")

    def _add_numbers(self, a, table):
        """Add the rows of ``table`` to a numeric field's statistics: count, mean and sum of squared
        deviations (combined with Chan's update), missing cells, and the values bucket edges need."""
        f = a.field
        x = _numbers(table, f.name, self.missing)
        seen = x[~np.isnan(x)]
        a.missing += int(x.size - seen.size)
        if not seen.size:
            return
        if f.kind == "buckets":
            a.sample(seen)
            return
        with np.errstate(over="ignore", invalid="ignore"):
            mean = seen.mean()
            m2 = ((seen - mean) ** 2).sum()
        if not (np.isfinite(mean) and np.isfinite(m2)):
            # the sum of squares overflows only if some |x| exceeds half the square root of max / n
            big = np.abs(x) > np.sqrt(np.finfo(np.float64).max / seen.size) / 2
            r = table.first(big if big.any() else np.abs(x) == np.abs(seen).max())
            raise DataError(f"{table.where(r)}: column {f.name!r} holds values too large to standardise "
                            f"({x[r]:g} here; their squares overflow float64); rescale them, or use buckets "
                            f"({f.name}:8)")
        a.combine(seen.size, float(mean), float(m2))

    def _statistics(self, a, source):
        """A numeric field's mean and deviation, or its quantile bucket edges, from its statistics."""
        f = a.field
        if not a.n:
            raise DataError(f"{source}: numeric column {f.name!r} has no values in the training rows")
        if f.kind == "numeric":
            with np.errstate(over="ignore", invalid="ignore"):
                f.mean, f.sd = a.mean, float(np.sqrt(a.m2 / a.n))
            if not (np.isfinite(f.mean) and np.isfinite(f.sd)):
                raise DataError(f"{source}: column {f.name!r} holds values too large to standardise (their "
                                f"squares overflow float64); rescale them, or use buckets ({f.name}:8)")
            f.sd = f.sd if f.sd > 0 else 1.0
        else:
            seen = a.values()
            # no more buckets than distinct values (quantiles of a few values differ only by
            # rounding, and would each make a feature of their own)
            n_buckets = min(self.numeric[f.name], np.unique(seen).size)
            q = np.linspace(0, 1, n_buckets + 1)[1:-1]
            f.edges = np.unique(np.quantile(seen, q))
        f.counts = {"missing": a.missing}

    @property
    def n_features(self):
        self._need_fit()
        return sum(f.size for f in self.fields)

    def _need_fit(self):
        if self.fields is None:
            raise E.InputError("the encoder is not fitted yet: call fit(training rows) first")

    # ---------------------------------------------------------------- transform
    def transform(self, data, unseen="oov", labels=True, widths=None):
        """Rows -> ``(idx, val, y, n_unseen)``: padded (N, F) int64 ids and float64 values, the
        labels (None without a label column, or with ``labels`` false: then the label column is
        not read at all) and how many cells held a value never seen in training.

        A value seen in training, even one rarer than ``min_count``, is not unseen: a rare value
        goes to its field's OOV feature, which training learned from. ``unseen`` decides about the
        others: 'oov' (the field's OOV feature), 'ignore' (x = 0, as if absent) or 'error' (a
        ``DataError`` naming the file, line and column). ``widths`` (column -> entries) pads a
        multi-valued field to at least that many entries a row (rows read in pieces share one width).
        """
        self._need_fit()
        table = as_table(data)
        E.choice(unseen, "unseen", CSV_UNSEEN)
        labels = E.flag(labels, "labels")
        if len(table) == 0:
            raise DataError(f"{table.source}: no rows")
        blocks_i, blocks_v, n_unseen = [], [], 0
        for f in self.fields:
            if f.name not in table:
                raise DataError(f"{table.no_column(f.name)} (the model was trained with columns "
                                f"{_names(g.name for g in self.fields)})")
            ids, val, k = self._encode(f, table, unseen, (widths or {}).get(f.name, 0))
            n_unseen += k
            blocks_i.append(ids)
            blocks_v.append(val)
        idx, val = np.concatenate(blocks_i, axis=1), np.concatenate(blocks_v, axis=1)
        y = None
        if labels and self.label is not None and self.label in table:
            y = _numbers(table, self.label, self.missing, "label")
            if np.isnan(y).any():
                raise DataError(f"{table.where(table.first(np.isnan(y)), self.label)}: the label is missing")
        return idx, val, y, n_unseen

    def _encode(self, f, table, unseen, width=0):
        """One field of every row: (ids (N, w), values (N, w), cells never seen in training)."""
        n = len(table)
        if f.kind == "numeric":
            x = _numbers(table, f.name, self.missing)
            with np.errstate(over="ignore"):           # too large for float64: inf, named by the caller's check
                z = np.nan_to_num((x - f.mean) / f.sd, nan=0.0, posinf=np.inf, neginf=-np.inf)
            return np.full((n, 1), f.offset, dtype=np.int64), z[:, None], 0
        if f.kind == "buckets":
            x = _numbers(table, f.name, self.missing)
            ids = np.where(np.isnan(x), f.offset, f.offset + 1 + np.searchsorted(f.edges, x, side="right"))
            return ids[:, None].astype(np.int64), np.ones((n, 1)), 0
        # encode the distinct texts of the column (few), then gather them for every row; rare values
        # are known, and go to the OOV id whatever ``unseen`` says
        lookup = dict.fromkeys(f.rare.tolist(), f.offset)
        lookup.update((v, i) for i, v in enumerate(f.vocab.tolist(), start=f.offset + 1))
        codes, texts = table.codes(f.name)
        if f.kind == "categorical":
            tid = np.fromiter(map(lookup.get, texts.tolist(), repeat(-1)), dtype=np.int64, count=texts.size)
            ids, val = tid[codes][:, None], np.ones((n, 1))
        else:
            cells = [_cell_values(t, f.sep) for t in texts.tolist()]
            width = max(f.width, width, max(len(c) for c in cells))
            tid = np.full((texts.size, width), -2, dtype=np.int64)          # -2: no entry
            tval = np.zeros((texts.size, width))
            for j, c in enumerate(cells):
                tid[j, :len(c)] = [lookup.get(v, -1) for v in c]
                tval[j, :len(c)] = 1.0 / len(c)
            ids, val = tid[codes], tval[codes]
        ids, val, k = self._unseen(table, f, ids, val, unseen, texts, codes)
        if f.kind == "multi":
            ids[ids == -2] = 0                       # padding: the padding id 0 with x = 0 (data.py's convention)
        return ids, val, k

    def _unseen(self, table, f, ids, val, unseen, texts, codes):
        bad = ids == -1
        k = int(bad.sum())
        if not k:
            return ids, val, 0
        if unseen == "error":
            r = table.first(bad.any(axis=1))
            c = int(np.flatnonzero(bad[r])[0])
            cell = texts[codes[r]]
            v = cell if f.kind == "categorical" else _cell_values(cell, f.sep)[c]
            raise DataError(f"{table.where(r, f.name)}: value {_shown(v)} was never seen in training "
                            f"({_count(k, 'such cell')}; --unseen oov or ignore accepts them)")
        if unseen == "oov":
            ids = np.where(bad, f.offset, ids)
        else:
            ids, val = np.where(bad, 0, ids), np.where(bad, 0.0, val)
        return ids, val, k

    def fit_transform(self, data, unseen="oov"):
        return self.fit(data).transform(data, unseen)

    # ---------------------------------------------------------------- saving
    def to_arrays(self, prefix="encoder"):
        """Arrays (for ``checkpoint.save``'s ``extra``): the spec and statistics as a JSON string,
        and per field its vocabulary and rare values (string arrays) or bucket edges."""
        self._need_fit()
        spec = {"label": self.label, "min_count": self.min_count, "missing": list(self.missing),
                "positive": self.positive, "classes": self.classes,
                "fields": [{"name": f.name, "kind": f.kind, "offset": f.offset, "mean": f.mean, "sd": f.sd,
                            "sep": f.sep, "width": f.width, "counts": f.counts} for f in self.fields]}
        out = {prefix: np.array(json.dumps(spec))}
        for i, f in enumerate(self.fields):
            if f.vocab is not None:
                out[f"{prefix}.vocab{i}"] = f.vocab
                out[f"{prefix}.rare{i}"] = f.rare
            if f.edges is not None:
                out[f"{prefix}.edges{i}"] = f.edges
        return out

    @classmethod
    def from_arrays(cls, arrays, prefix="encoder"):
        """The encoder saved by ``to_arrays``; a ``CheckpointError`` if it is damaged, or if it was
        saved before encoders recorded their rare values and had some (it could not tell a rare
        value from one never seen; one without rare values loads as it always did)."""
        try:
            spec = json.loads(str(arrays[prefix]))
            enc = cls(categorical=[], label=spec["label"], min_count=spec["min_count"], missing=spec["missing"])
            enc.positive, enc.classes = _saved_classes(spec.get("positive"), spec.get("classes"))
            enc.fields, offset = [], 0
            for i, d in enumerate(spec["fields"]):
                f = Field(d["name"], E.choice(d["kind"], "kind", KINDS), int(d["offset"]), mean=float(d["mean"]),
                          sd=float(d["sd"]), sep=d["sep"], width=int(d["width"]), counts=d.get("counts", {}))
                if f.kind in ("categorical", "multi"):
                    f.vocab = np.asarray(arrays[f"{prefix}.vocab{i}"], dtype=str).reshape(-1)
                    f.rare = _saved_rare(arrays, f"{prefix}.rare{i}", f, enc.min_count)
                    if np.intersect1d(f.vocab, f.rare).size or f.rare.size > int(f.counts.get("rare", 0)):
                        raise ValueError(f"field {f.name!r}: its rare values overlap its vocabulary or outnumber "
                                         f"the {f.counts.get('rare', 0)} its counts declare")
                if f.kind == "buckets":
                    f.edges = np.asarray(arrays[f"{prefix}.edges{i}"], dtype=np.float64)
                if f.offset != offset or not (np.isfinite(f.mean) and np.isfinite(f.sd) and f.sd > 0):
                    raise ValueError(f"field {f.name!r} is inconsistent")
                offset += f.size
                enc.fields.append(f)
        except E.CheckpointError:
            raise
        except (KeyError, ValueError, TypeError, json.JSONDecodeError) as e:
            raise E.CheckpointError(f"the saved feature encoder is damaged ({e})") from None
        return enc

    # ---------------------------------------------------------------- display
    def __str__(self):
        if self.fields is None:
            return "Encoder (not fitted)"
        lines = [f"{'field':<16}{'kind':<13}{'features':>9}  {'ids':<15}{'OOV id':>7}  notes"]
        for f in self.fields:
            ids = f"{f.offset}-{f.offset + f.size - 1}" if f.size > 1 else f"{f.offset}"
            oov = "-" if f.kind == "numeric" else str(f.offset)
            if f.kind == "numeric":
                note = f"x = (v - {f.mean:.4g}) / {f.sd:.4g}; missing {f.counts.get('missing', 0)}"
            elif f.kind == "buckets":
                note = f"{f.edges.size + 1} quantile buckets; missing -> OOV ({f.counts.get('missing', 0)})"
            else:
                note = f"{f.counts.get('values', f.vocab.size)} values, {f.counts.get('rare', 0)} rare -> OOV"
                if f.kind == "multi":
                    note += f"; separator {f.sep!r}, x = 1/m, up to {f.width} a row"
            lines.append(f"{f.name:<16}{f.kind:<13}{f.size:>9,}  {ids:<15}{oov:>7}  {note}")
        label = f"   label: {self.label}" if self.label else ""
        if label and self.positive is not None:
            label += f" (positive class {self.positive!r})"
        lines.append(f"{'total':<29}{self.n_features:>9,}" + label)
        return "\n".join(lines)

    __repr__ = __str__


def _numeric_arg(numeric):
    """``numeric`` as {column: buckets}: None is none, a str one column, a list columns (standardised),
    a mapping column -> buckets (0 or None: standardised; else a whole number >= 2)."""
    if numeric is None:
        return {}
    pairs = list(numeric.items()) if hasattr(numeric, "items") else \
        [(c, 0) for c in _column_list(numeric, "numeric")]
    out = {}
    for c, b in pairs:
        c = _column(c, "a numeric column")
        if b is None or (isinstance(b, numbers.Integral) and not isinstance(b, bool) and b == 0):
            out[c] = 0
        elif isinstance(b, bool) or not isinstance(b, numbers.Integral):
            # '' (what 'price:' leaves) or 8.0 is no bucket count: never silently standardised
            raise OptionTypeError(f"buckets of {c!r} must be a whole number >= 2 (or 0 or None: standardised), "
                                  f"got {b!r}")
        else:
            out[c] = E.integer(b, f"buckets of {c!r}", 2)
    return out


def _multi_arg(multi_valued):
    """``multi_valued`` as {column: separator}; a list of names is refused (it has no separators)."""
    if multi_valued is None:
        return {}
    if not hasattr(multi_valued, "items"):
        raise OptionTypeError(f"multi_valued must be a mapping of column -> separator such as {{'genres': '|'}}, "
                              f"got {multi_valued!r}")
    out = {}
    for c, sep in multi_valued.items():
        c = _column(c, "a multi-valued column")
        if not isinstance(sep, str) or len(sep) == 0:
            raise OptionError(f"multi-valued column {c!r} needs a separator such as '|', got {sep!r}")
        out[c] = sep
    return out


def _missing_arg(missing):
    """``missing`` as a tuple of texts: None is none, a str is one text."""
    if missing is None:
        return ()
    if isinstance(missing, str):
        return (missing,)
    if hasattr(missing, "items") or not hasattr(missing, "__iter__"):
        raise OptionTypeError(f"missing must be a list of texts such as ['NA', '?'], got {missing!r}")
    out = tuple(missing)
    bad = [v for v in out if not isinstance(v, str)]
    if bad:
        raise OptionTypeError(f"missing must hold texts, got {bad[0]!r}")
    return out


def _saved_rare(arrays, key, f, min_count):
    if key in arrays:
        return np.asarray(arrays[key], dtype=str).reshape(-1)
    if min_count > 1 and int(f.counts.get("rare", 0)) > 0:
        raise E.CheckpointError(f"the saved feature encoder comes from an older nfm_numpy that did not record "
                                f"which values of field {f.name!r} were rare (seen fewer than min_count = "
                                f"{min_count} times), so it cannot tell them from values never seen; train the "
                                "model again")
    return np.zeros(0, dtype=str)


def _saved_classes(positive, classes):
    if positive is None and classes is None:
        return None, None
    if not (isinstance(positive, str) and isinstance(classes, list) and len(classes) == 2
            and all(isinstance(c, str) for c in classes) and _key(classes[0]) == _key(positive)):
        raise ValueError(f"positive class {positive!r} and classes {classes!r} do not match")
    return positive, classes


def _cell_values(cell, sep):
    """The distinct values of a multi-valued cell, in order; an empty cell is one empty value."""
    if not cell:
        return [""]
    return list(dict.fromkeys(v.strip() for v in cell.split(sep)))


# ====================================================================== labels
def _key(text):
    """A label as a class: a number by its value ('1' and '1.0' are one class), other text as it is."""
    return float(text) if E.NUMBER.match(text) else text


def _listing(values, most=6):
    values = list(values)
    return ", ".join(map(_shown, values[:most])) + (", ..." if len(values) > most else "")


def _labels(table, label, loss, missing, positive=None, classes=None):
    """The label column as float64 for ``loss``: ``(y, note, classes)``. ``note`` says how labels were
    mapped ('' if not); ``classes`` (with ``positive``) are the two label texts, the positive first.

    Numbers are read as they are (the log loss: 0/1, or -1/1 read as 0/1). With ``positive`` (the
    log loss only), the label equal to it is 1 and the one other value 0: the training rows fix the
    two classes (``classes`` None), later rows must hold one of them. Text without ``positive`` is an
    error that lists the values and, for two, says how to name the positive class."""
    codes, texts = table.codes(label)
    present = np.unique(codes)
    text = {int(c): texts[c].strip(ASCII_BLANKS) for c in present}      # U+00A0 is no blank: '\xa07' is not 7
    number = dict(zip(text, ~_not_numbers(texts[present])))
    gone = [c for c, v in text.items() if not v or v in missing or (number[c] and np.isnan(float(v)))]
    if gone:
        r = table.first(np.isin(codes, gone))
        raise DataError(f"{table.where(r, label)}: the label is missing ({_shown(texts[codes[r]])})")
    if positive is not None:
        return _two_classes(table, label, codes, texts.size, text, positive, classes)
    words = [c for c in text if not number[c]]
    if words:
        raise _text_labels(table, label, loss, codes, text, words)
    y = _numbers(table, label, (), "label")
    if loss == "log":
        return (*_binary(table, label, y), None)
    return y, "", None


def _two_classes(table, label, codes, n_texts, text, positive, classes):
    keys = {c: _key(v) for c, v in text.items()}
    shown = {}
    for c in sorted(keys, key=lambda c: text[c]):
        shown.setdefault(keys[c], text[c])
    pos = _key(positive)
    if classes is None:                          # the training rows: they decide the two classes
        if len(shown) > 2:
            raise DataError(f"{table.source}: label column {label!r} holds {len(shown)} values "
                            f"({_listing(shown.values())}); a positive class splits two values, not more")
        if pos not in shown:
            raise DataError(f"{table.source}: the positive class {positive!r} never occurs in the training labels "
                            f"(column {label!r} holds {_listing(shown.values())})")
        if len(shown) < 2:
            raise DataError(f"{table.source}: the training labels (column {label!r}) hold one class, "
                            f"{positive!r}; the log loss needs two")
        classes = [shown[pos]] + [t for k, t in shown.items() if k != pos]
    else:
        known = {_key(t) for t in classes}
        odd = [c for c, k in keys.items() if k not in known]
        if odd:
            r = table.first(np.isin(codes, odd))
            raise DataError(f"{table.where(r, label)}: label {_shown(text[int(codes[r])])} is neither class of the "
                            f"training labels ({_shown(classes[0])}, the positive class, and {_shown(classes[1])})")
    lut = np.zeros(n_texts)
    lut[[c for c, k in keys.items() if k == pos]] = 1.0
    note = f"labels for the log loss: {_shown(classes[0])} -> 1 (the positive class), {_shown(classes[1])} -> 0"
    return lut[codes], note, classes


def _present_labels(table, label, missing):
    """The distinct label cells of ``table`` that are not missing (blank, or one of ``missing``), as text."""
    codes, texts = table.codes(label)
    held = np.bincount(codes, minlength=texts.size) > 0
    return [t for t in texts[held].tolist() if t.strip(ASCII_BLANKS) and t.strip(ASCII_BLANKS) not in missing]


def _guess_positive(values):
    """The value of two that most likely means 'positive', for an example in a message."""
    for v in values:
        if v.lower() in ("yes", "y", "true", "t", "1", "positive", "pos", "clicked", "click"):
            return v
    return values[-1]


def _text_labels(table, label, loss, codes, text, words):
    """The error for a label column holding text, with the way out (a positive class, or numbers)."""
    r = table.first(np.isin(codes, words))
    values = sorted(set(text.values()))
    if len(values) == 2:
        guess = _guess_positive(values)
        way = (f"name the positive class, e.g. --positive {guess}" if loss == "log" else
               f"the square loss needs numbers; for two classes use --loss log --positive {guess}")
    else:
        way = f"the log loss needs two classes, the labels hold {len(values)}" if loss == "log" else \
            "the square loss needs numbers"
    return DataError(f"{table.where(r, label)}: label {_shown(text[int(codes[r])])} is not a number ({way}; the labels "
                     f"are {_listing(values)})")


def _binary(table, label, y):
    """Numeric labels for the log loss as 0/1: {0, 1} stays, {-1, 1} maps -1 -> 0. Any other
    value (or a mix such as {-1, 0, 1}) is an error at its first line in the file."""
    zero_one = (y == 0) | (y == 1)
    if zero_one.all():
        return y, ""
    if ((y == -1) | (y == 1)).all():
        return (y > 0).astype(np.float64), "labels -1/1 read as 0/1 for the log loss (-1 -> 0, 1 -> 1)"
    odd = ~zero_one & (y != -1)
    r = table.first(odd if odd.any() else ~zero_one)
    found = np.unique(y)
    shown = ", ".join(f"{v:g}" for v in found[:6]) + (", ..." if found.size > 6 else "")
    two = f", or name the positive class (e.g. --positive {_num_text(found.max())})" if found.size == 2 else ""
    raise DataError(f"{table.where(r, label)}: label {y[r]:g} cannot be used with the log loss, which needs "
                    f"labels 0/1 or -1/1 (found {shown}); use the square loss for other labels{two}")


# ====================================================================== whole splits
def _check_fits(values, dtype, table, column, what, wider):
    """Every value (rows of ``table``, one or more a row) within ``dtype``; else a DataError at the
    earliest line, naming the column (``column(r, c)``) and the dtype; the hint ``wider`` (how to get
    float64) only where float64 would hold the value."""
    v = values.reshape(len(table), -1)
    big = np.finfo(dtype).max
    over = ~(np.abs(v) <= big)
    if not over.any():
        return
    r = table.first(over.any(axis=1))
    c = int(np.flatnonzero(over[r])[0])
    x = float(v[r, c])
    hint = f"{wider} holds it" if dtype == np.float32 and np.isfinite(x) else "rescale the column"
    raise DataError(f"{table.where(r, column(r, c))}: {what} {x:g} does not fit {np.dtype(dtype).name} "
                    f"(max {big:.3g}); {hint}")


def _precision_note(table, label, y, dtype, wider):
    """A note when float32 changes whole-number labels (above 2**24 they are rounded)."""
    if dtype != np.float32:
        return ""
    y32 = y.astype(np.float32).astype(np.float64)
    lost = (y32 != y) & (y == np.round(y))
    if not lost.any():
        return ""
    r = table.first(lost)
    return (f"{table.where(r, label)}: label {y[r]:.17g} is {y32[r]:.17g} in float32 (whole numbers above "
            f"16,777,216 are rounded); {wider} keeps them")


def _dataset(enc, table, name, loss, dtype, unseen="oov", need_y=True, positive=None, classes=None,
             wider="--dtype float64", widths=None):
    """``(Dataset, n_unseen, classes, rounded)`` of a table in ``enc``'s feature space. Labels and values
    are computed in float64, checked against ``dtype`` (naming file, line and column), then cast;
    ``rounded`` is a note when float32 rounds whole-number labels ('' if not). ``wider`` says how to get
    float64 (train: --dtype float64; a saved float32 model: train it again so). Without ``need_y`` the
    label column is not read at all (a prediction sheet may hold anything there)."""
    idx, val, _, n_unseen = enc.transform(table, unseen, labels=False, widths=widths)
    note = ""
    if need_y:
        if enc.label is None:
            raise OptionError(f"{table.source}: the model's encoder has no label column, so labels cannot be read "
                              "from it (predict needs none; a library Encoder takes label=...)")
        if enc.label not in table:
            raise DataError(table.no_column(enc.label, "label column"))
        y, note, classes = _labels(table, enc.label, loss, enc.missing, positive, classes)
        _check_fits(y, dtype, table, lambda r, c: enc.label, "the label", wider)
        rounded = _precision_note(table, enc.label, y, dtype, wider)
    else:
        y, rounded = np.zeros(len(table)), ""
    offsets = {f.offset: f.name for f in enc.fields if f.kind == "numeric"}
    _check_fits(val, dtype, table, lambda r, c: offsets.get(int(idx[r, c])), "the standardised value", wider)
    ds = Dataset(idx, val.astype(dtype), y.astype(dtype), enc.n_features, name)
    ds.label_map = note
    return ds, n_unseen, classes, rounded


def load_csv_split(path, label, categorical=None, numeric=(), multi_valued=None, ignore=(), min_count=1,
                   missing=MISSING, delimiter=None, negatives=0, user=None, item=None, split=(0.7, 0.2, 0.1),
                   valid_path=None, test_path=None, loss="square", seed=0, dtype=np.float32, positive=None):
    """A ``Split`` and its fitted ``Encoder`` from CSV files.

    Every column must be named (``categorical``, ``numeric``, ``multi_valued``, ``ignore``, or
    the label; ``categorical="*"`` takes every column no other argument names): see ``Encoder``.
    With ``negatives`` n > 0 every row of the files is a positive: n negatives per row are
    added first (``add_negatives``, columns ``user`` and ``item``; label 1 for positives,
    -1 for negatives), as the NFM authors built Frappe. Then the rows are split
    (``split`` fractions, seeded) unless ``valid_path`` and ``test_path`` give the
    validation and test rows. The encoder is fitted on the training rows only; values
    that first appear in validation or test go to their field's OOV feature.
    ``positive`` (the log loss): the label value that is the positive class (1); the one other
    value is 0. Labels and values are read in float64 and checked to fit ``dtype``.
    Returns ``(split, encoder, notes)``: ``notes`` are lines worth printing (warnings about
    columns, unseen counts, label mapping).
    """
    path, label = _path(path, "path"), _column(label, "label")
    valid_path = None if valid_path is None else _path(valid_path, "valid_path")
    test_path = None if test_path is None else _path(test_path, "test_path")
    negatives = E.integer(negatives, "negatives", 0)
    loss, dtype, seed = E.choice(loss, "loss", LOSSES), _dtype(dtype), E.integer(seed, "seed", 0)
    positive = _label_text(positive, "positive")
    _split_fractions(split)
    if positive is not None and loss != "log":
        raise OptionError("positive names the positive class of the log loss; the square loss reads labels as numbers")
    if positive is not None and negatives:
        raise OptionError("positive names a class of the file's label column; with negatives the label is made "
                          "(1 positive, -1 negative)")
    if (valid_path is None) != (test_path is None):
        raise OptionError("give both --valid-csv and --test-csv, or neither (then --split divides one file)")
    if negatives and (user is None or item is None):
        raise OptionError("--negatives needs --user-col and --item-col")
    if not negatives and (user is not None or item is not None):
        raise OptionError("--user-col and --item-col go with --negatives")
    enc = Encoder(categorical, numeric, multi_valued, label, ignore, min_count, missing)   # checked before reading
    if negatives:
        _negative_columns(enc, user, item)
    tables = [read_csv(p, delimiter) for p in [path] + ([valid_path, test_path] if valid_path else [])]
    if negatives:
        tables = _with_negatives(tables, label, negatives, user, item, seed)
    elif label not in tables[0]:
        raise OptionError(tables[0].no_column(label, "label column"))
    if len(tables) == 1:
        tables = [tables[0].take(rows) for rows in split_rows(len(tables[0]), split, seed)]
    enc.fit(tables[0])
    if negatives:
        _negative_columns(enc, user, item)
    parts, notes, classes, rounded = [], list(enc.notes), None, []
    for t, role in zip(tables, ("train", "valid", "test")):
        ds, n_unseen, classes, r = _dataset(enc, t, f"{Path(path).stem}.{role}", loss, dtype, positive=positive,
                                            classes=classes)
        if n_unseen and role != "train":
            one = n_unseen == 1
            notes.append(f"{role}: {_count(n_unseen, 'cell')} hold{'s a value' if one else ' values'} never seen in "
                         "training (their field's OOV feature)")
        if ds.label_map and ds.label_map not in notes:
            notes.append(ds.label_map)
        rounded += [r] if r else []
        parts.append(ds)
    notes += rounded[:1]                                     # one example is enough
    if positive is not None:
        enc.positive, enc.classes = classes[0], classes
    return Split(*parts), enc, notes


def _negative_columns(enc, user, item):
    """The user and item columns of ``negatives`` must be feature fields: a negative differs from its
    positive only by its item, so an item column left out makes every negative its positive's copy
    with the opposite label (and a user column left out mixes every user's items)."""
    user, item = _column(user, "user"), _column(item, "item")
    fields = None if enc.fields is None else {f.name for f in enc.fields}
    for option, name in (("--user-col", user), ("--item-col", item)):
        why = ("the label column" if name == enc.label else "ignored" if name in enc.ignore else
               "not a feature field" if fields is not None and name not in fields else "")
        if why:
            raise OptionError(f"{option} {name!r} is {why}: the negatives differ from their positives by the item "
                              f"and are drawn per user, so both must be feature fields (name {name!r} with "
                              "--categorical)")


def _split_fractions(split):
    """Three fractions (train, validation, test), positive, summing to 1: checked before any file is read."""
    fractions = E.float_list(split, "split", lambda v, name: E.real(v, name, 0.0, 1.0))
    if len(fractions) != 3:
        raise OptionError(f"split needs three fractions (train, validation, test), got {len(fractions)}")
    if abs(sum(fractions) - 1.0) > 1e-9 or any(f == 0 for f in fractions):
        raise OptionError(f"split fractions must be positive and sum to 1, got {fractions}")
    return fractions


def _with_negatives(tables, label, negatives, user, item, seed):
    """The tables with negatives added. With three files, "never used" means in any of them: the
    negatives are drawn on all rows together, then each row goes back to its file."""
    for t in tables:
        if label in t:
            raise OptionError(f"{t.source} already has a column {label!r}: with --negatives every row is a "
                              "positive and the label column is made (1 positive, -1 negative)")
    if len(tables) == 1:
        return [add_negatives(tables[0], user, item, negatives, label, seed=seed)]
    both = add_negatives(_concat(tables), user, item, negatives, label, seed=seed)
    part = np.concatenate([np.full(len(t), i) for i, t in enumerate(tables)])
    origin = np.concatenate([part, np.repeat(part, negatives)])
    out = []
    for i, t in enumerate(tables):
        one = both.take(np.flatnonzero(origin == i))
        one.source, one.files = t.source, None               # every row of it is from file i
        out.append(one)
    return out


def _concat(tables):
    """The rows of several tables in one, each row keeping its own file and line."""
    names = tables[0].names
    for t in tables[1:]:
        if t.names != names:
            raise DataError(f"{t.source}: columns {t.names} differ from {tables[0].source}'s {names}")
    files = np.concatenate([t.files if t.files is not None else np.full(len(t), t.source, dtype=object)
                            for t in tables])
    return Table({n: np.concatenate([t[n] for t in tables]) for n in names},
                 np.concatenate([t.lines for t in tables]), tables[0].source, files=files, unit=tables[0].unit,
                 delimiter=tables[0].delimiter)


def read_csv_dataset(path, encoder, loss="square", unseen="oov", need_y=True, delimiter=None, dtype=np.float32,
                     positive=None):
    """A CSV file as a ``Dataset`` in a fitted encoder's feature space (for evaluate and predict).
    With ``need_y`` false (predict) the label column is never read: it may be absent, blank or
    anything. ``positive`` defaults to the positive class the encoder was trained with (if any);
    another one is an error. Returns ``(dataset, n_unseen)``: cells never seen in training."""
    if not isinstance(encoder, Encoder):
        raise OptionTypeError(f"encoder must be a fitted Encoder, got {type(encoder).__name__}")
    encoder._need_fit()
    path, loss = _path(path, "path"), E.choice(loss, "loss", LOSSES)
    unseen, need_y, dtype = E.choice(unseen, "unseen", CSV_UNSEEN), E.flag(need_y, "need_y"), _dtype(dtype)
    positive, saved = _label_text(positive, "positive"), encoder.positive
    if positive is not None and loss != "log":
        raise OptionError("positive names the positive class of the log loss; the square loss reads labels as numbers")
    if positive is not None and saved is not None and _key(positive) != _key(saved):
        raise OptionError(f"the model was trained with the positive class {saved!r}, not {positive!r}")
    if positive is None and loss == "log":
        positive = saved
    classes = encoder.classes if positive is not None and saved is not None else None
    ds, n_unseen, _, rounded = _dataset(encoder, read_csv(path, delimiter), Path(path).name, loss, dtype, unseen,
                                        need_y, positive, classes, "a model trained with --dtype float64")
    ds.label_map = "; ".join(n for n in (ds.label_map, rounded) if n)
    return ds, n_unseen
