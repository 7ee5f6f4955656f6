"""The errors nfm_numpy raises, and the checks of arguments that raise them.

Every error names the problem, and the option, file or line where there is one.
The classes sort errors by who can fix them, which is also how the command
line chooses its exit status (README, "Errors and exit codes"):

* ``InputError`` (a ``ValueError``): bad input or usage; the caller can fix it.
  ``OptionError`` names an argument, ``DataError`` a file and line,
  ``CheckpointError`` a saved model, ``OutputError`` a path that cannot be
  written; ``DataFileNotFound`` and ``CheckpointNotFound`` (a path that does not
  exist) are also ``FileNotFoundError``. ``OptionTypeError`` is also a ``TypeError`` (a value of the wrong
  type). Command line: exit status 2.
* ``RunFailed`` (a ``RuntimeError``): the input was fine but the run failed,
  e.g. the loss diverged before any epoch finished. Exit status 1.
* ``Interrupted`` (a ``KeyboardInterrupt``): SIGINT or SIGTERM. Exit status 130.

The checks (``integer``, ``real``, ``flag``, ``choice``, ``int_list``,
``float_list``) return the value converted (an ``int``, a ``float``, ...) or
raise ``OptionError`` / ``OptionTypeError`` with the argument's name. They
refuse what Python would silently accept: a float where a count belongs
(``NFM(2.7)``), a string where a list belongs (``layers="64"`` is not
[6, 4]), NaN and infinity, a bool where a number belongs.
"""
from __future__ import annotations

import math
import numbers
import re

# a number as text, the way libFM files and options are written: decimal with an optional exponent,
# or inf / infinity / nan (what float() reads, without its underscores and non-ASCII digits)
NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z|[+-]?(inf|infinity|nan)\Z", re.I)


class InputError(ValueError):
    """Bad input or usage (command line: exit status 2)."""


class OptionError(InputError):
    """An argument (library) or option (command line) with a value it cannot take."""


class OptionTypeError(OptionError, TypeError):
    """An argument of the wrong type."""


class DataError(InputError):
    """A data file or array that cannot be used; the message names the file and line."""


class CheckpointError(InputError):
    """A file that is not a usable nfm_numpy checkpoint."""


class DataFileNotFound(DataError, FileNotFoundError):
    """A data file or folder that does not exist (also a ``FileNotFoundError``, as it always was)."""


class CheckpointNotFound(CheckpointError, FileNotFoundError):
    """A checkpoint path that does not exist (also a ``FileNotFoundError``)."""


class OutputError(InputError):
    """An output path that cannot or must not be written."""


class RunFailed(RuntimeError):
    """The input was valid but the run failed (e.g. the loss diverged before any epoch finished)."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or a second SIGINT) asked the process to stop."""


# ------------------------------------------------------------------- checks
def _name(name):
    return f"{name} " if name else ""


def integer(value, name, lo=None, hi=None):
    """``value`` as an int in [lo, hi]; a bool, a float (2.7 or 2.0) or a string is refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise OptionTypeError(f"{_name(name)}must be an integer, got {value!r}")
    value = int(value)
    if lo is not None and value < lo:
        raise OptionError(f"{_name(name)}must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        raise OptionError(f"{_name(name)}must be <= {hi}, got {value}")
    return value


def real(value, name, lo=None, hi=None, lo_open=False, hi_open=False):
    """``value`` as a finite float in the interval given (``lo_open``: lo itself excluded)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise OptionTypeError(f"{_name(name)}must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise OptionError(f"{_name(name)}must be a finite number, got {value}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise OptionError(f"{_name(name)}must be {'>' if lo_open else '>='} {lo:g}, got {value:g}")
    if hi is not None and (value >= hi if hi_open else value > hi):
        raise OptionError(f"{_name(name)}must be {'<' if hi_open else '<='} {hi:g}, got {value:g}")
    return value


def probability(value, name):
    """A keep probability: a number in (0, 1]."""
    value = real(value, name)
    if not 0.0 < value <= 1.0:
        raise OptionError(f"{_name(name)}must be a keep probability in (0, 1], got {value:g}")
    return value


def flag(value, name):
    """A bool (or the ints 0 and 1, as the original's switches)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    raise OptionTypeError(f"{_name(name)}must be True or False (or 0 or 1), got {value!r}")


def choice(value, name, options):
    if value not in options:
        raise OptionError(f"{_name(name)}must be one of {', '.join(map(str, options))}; got {value!r}")
    return value


def _sequence(value, name):
    """A list from a list, tuple, range or 1-D array; a string, set or dict is refused (a string
    would be read character by character, a set or dict in no fixed order)."""
    ordered = isinstance(value, (list, tuple, range)) or (type(value).__name__ == "ndarray" and value.ndim == 1)
    if not ordered:
        raise OptionTypeError(f"{_name(name)}must be a list (e.g. [64] or [64, 32]), got {value!r}")
    return list(value)


def _item(name, i):
    return f"{name}[{i}]" if name else f"value {i + 1}"


def int_list(value, name, lo=None):
    """A list of ints, each >= ``lo``; a string ("64") is refused, not read digit by digit."""
    return [integer(v, _item(name, i), lo) for i, v in enumerate(_sequence(value, name))]


def float_list(value, name, check=real):
    return [check(v, _item(name, i)) for i, v in enumerate(_sequence(value, name))]


__all__ = ["InputError", "OptionError", "OptionTypeError", "DataError", "CheckpointError", "OutputError",
           "DataFileNotFound", "CheckpointNotFound",
           "RunFailed", "Interrupted", "integer", "real", "probability", "flag", "choice", "int_list",
           "float_list"]
