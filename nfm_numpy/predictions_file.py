"""Predictions written to a file: a CSV with a header, an id column, then the prediction.

As libFM's ``-out`` and xLearn's output file, but with a header and ids, so the file can be
joined back to the rows it scored without counting lines::

    row,prediction            user,probability
    1,3.71245                 u17,0.81234
    2,4.02871                 u03,0.12001

* The id column is ``row`` (the row's number in the input, 1 for the first data row: a CSV's
  header and blank lines are not counted; a libFM file's line number), or a column of the input
  CSV named by the caller (``id_col``), written as the text the file holds.
* The value column is ``prediction`` (the square loss: in the label's units) or ``probability``
  (the log loss: of the positive class), formatted as ``predict`` prints them to stdout
  (``%.6g``), so the file's values are stdout's, digit for digit.
* The file is written through ``outputs.write_atomically`` (a temporary file renamed into place:
  an interrupted write leaves the old file); callers check the path with ``outputs.check_output``
  before reading anything, and never name an input as the output.

The CSV route reads the file once (a pipe or ``/dev/stdin`` works) and takes the ids from the same
rows it encodes: ``read_csv_for_prediction``.
"""
from __future__ import annotations

import csv
import io

import numpy as np

from . import errors as E
from .features import Encoder, _dataset, read_csv
from .outputs import write_atomically

ROW = "row"
FORMAT = "%.6g"                    # as predict prints to stdout


def value_column(loss):
    """The header of the predictions: ``prediction`` (square loss) or ``probability`` (log loss)."""
    return "probability" if E.choice(loss, "loss", ("square", "log")) == "log" else "prediction"


def row_numbers(n):
    """The default ids: 1 .. n."""
    return np.arange(1, E.integer(n, "n", 0) + 1)


def read_csv_for_prediction(path, encoder, unseen="oov", delimiter=None, dtype=np.float32, id_col=None):
    """A CSV file as ``(Dataset, n_unseen, ids, id_name)`` in a fitted encoder's feature space, for
    prediction: the label column is never read (it may be absent). ``ids`` are the ``id_col``
    column's texts, or (``id_col`` None) the row numbers 1..n with ``id_name`` 'row'. The file is
    read once."""
    if not isinstance(encoder, Encoder):
        raise E.OptionTypeError(f"encoder must be a fitted Encoder, got {type(encoder).__name__}")
    encoder._need_fit()
    table = read_csv(path, delimiter)
    if id_col is not None:
        id_col = _id_name(id_col)
        if id_col not in table:
            raise E.OptionError(table.no_column(id_col, "id column"))
        ids = np.asarray(table[id_col], dtype=object)
    else:
        ids = row_numbers(len(table))
    name = str(getattr(path, "name", None) or path).rsplit("/", 1)[-1]
    ds, n_unseen, _, _ = _dataset(encoder, table, name, "square", np.dtype(dtype), E.choice(unseen, "unseen",
                                  ("oov", "ignore", "error")), need_y=False, wider="a model trained with --dtype "
                                  "float64")
    return ds, n_unseen, ids, id_col or ROW


def _id_name(id_col):
    if not isinstance(id_col, str):
        raise E.OptionTypeError(f"id_col must be a column name, got {id_col!r}")
    if not id_col.strip():
        raise E.OptionError(f"id_col: an empty column name ({id_col!r})")
    return id_col


def format_predictions(pred, ids=None, id_name=ROW, loss="square"):
    """The file's text: a header (``id_name``, then ``prediction`` or ``probability``) and one line a
    row. ``ids`` default to the row numbers; texts are quoted as CSV needs (an id holding a comma)."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    ids = row_numbers(pred.size) if ids is None else np.asarray(ids, dtype=object).reshape(-1)
    if ids.size != pred.size:
        raise E.DataError(f"{ids.size} ids for {pred.size} predictions")
    bad = ~np.isfinite(pred)
    if bad.any():
        raise E.RunFailed(f"{int(bad.sum())} of {pred.size} predictions are not finite (the first for row "
                          f"{int(np.argmax(bad)) + 1}); nothing was written")
    column = value_column(loss)
    id_name = _id_name(id_name)
    if id_name == column:
        raise E.OptionError(f"the id column {id_name!r} has the name of the predictions' column; the file would "
                            "have two columns of that name")
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow([id_name, column])
    w.writerows(zip((str(i) for i in ids.tolist()), (FORMAT % v for v in pred.tolist())))
    return out.getvalue()


def write_predictions(path, pred, ids=None, id_name=ROW, loss="square", option="out"):
    """Write ``format_predictions(pred, ids, id_name, loss)`` to ``path`` atomically; returns the path.
    Errors: ``OutputError`` naming ``option`` and the path (folder, FIFO, read-only file, no space)."""
    text = format_predictions(pred, ids, id_name, loss)
    return write_atomically(path, lambda f: f.write(text.encode("utf-8")), option)


__all__ = ["read_csv_for_prediction", "format_predictions", "write_predictions", "value_column", "row_numbers"]
