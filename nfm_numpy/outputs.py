"""Output files, written so that nothing good is lost.

* ``check_output(path, option)`` is called for every output before a run
  starts (``--save``, ``--plot``, ``--history``), so a path that cannot be
  written is found in a second, not after an hour of training. It checks what
  the write will do, not a guess at it: the lengths of the final and the
  temporary names and of the whole path against the file system's limits, and
  the folder's writability by creating and removing a probe file there, under
  the very name pattern the write will use.
* ``write_atomically(path, write)`` writes through a temporary file in the
  same folder and renames it into place: a reader sees the old file or the
  new one, never half of one; on any failure or interrupt (SIGINT, or SIGTERM
  where the command line turned it into an exception) the temporary file is
  removed and the old file is untouched.

The rules: only a regular file is ever replaced (never a folder, a FIFO, a
device or a socket); a symbolic link is followed and its target replaced; a
replaced file keeps its permission bits, a new one gets the umask's; a
read-only file is not replaced. The file written is exactly the path given
(no suffix is added). Errors are ``OutputError`` naming the path.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import OptionTypeError, OutputError

_KIND = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
         stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}

# The temporary file is '.' + at most _KEEP bytes of the final name + '.' + 8 random characters + '.tmp':
# short whatever the final name (a 255-byte name would otherwise give a temporary name over the
# file system's limit), yet still recognisable as belonging to its file if a hard kill leaves it.
_KEEP = 24
_RANDOM, _SUFFIX = 8, ".tmp"                     # tempfile's random part is 8 characters


def _target(path, label):
    """The file that will be written: ``path`` with symbolic links followed."""
    if not isinstance(path, (str, os.PathLike)):
        raise OptionTypeError(f"{label or 'an output path'} must be a path, got {path!r}")
    text = os.fspath(path)
    if "\0" in text:
        raise OutputError(f"{label or 'output'} {text!r} holds a NUL character, which no file name can")
    if not text or text.endswith((os.sep, "/")):
        raise OutputError(f"{label or 'output'} {text!r} names a folder (or nothing); give a file name")
    path = Path(text)
    _check_lengths(path, f"{label} {text}" if label else text)      # before any system call that a long name fails
    try:
        return path.resolve(strict=False) if path.is_symlink() else path
    except (RuntimeError, OSError) as e:            # a symbolic link loop
        raise OutputError(f"{label} {text}: {e}") from None


def _temp_prefix(name, name_max=255):
    """The prefix of the temporary name for the final name ``name``: '.' + its first bytes + '.',
    cut at a character boundary so that prefix + random part + suffix fits in ``name_max`` bytes."""
    keep = max(0, min(_KEEP, name_max - 2 - _RANDOM - len(_SUFFIX)))
    raw = os.fsencode(name)[:keep]
    while raw:                                          # never cut a multi-byte character in half
        try:
            raw.decode("utf-8")
            break
        except UnicodeDecodeError:
            raw = raw[:-1]
    return "." + os.fsdecode(raw) + "." if raw else "."


def _limit(folder, name, default):
    """The file system's limit ``name`` ('PC_NAME_MAX', 'PC_PATH_MAX') for ``folder``, or ``default``."""
    try:
        value = os.pathconf(folder, name)
    except (OSError, ValueError):
        return default
    return value if value and value > 0 else default


def _existing_folder(path):
    """The nearest folder above ``path`` that exists (``os.path.isdir`` is False, not an error, for a
    path whose names are too long)."""
    for parent in path.parents:
        if os.path.isdir(parent):
            return parent
    return Path(".")


def _check_lengths(path, label):
    """Every name the write will create (missing folders, the temporary file, the final file) within
    NAME_MAX bytes, and the longest path it will pass to the system within PATH_MAX. Returns NAME_MAX."""
    existing = _existing_folder(path)
    name_max, path_max = _limit(existing, "PC_NAME_MAX", 255), _limit(existing, "PC_PATH_MAX", 4096)
    created = [path] + [p for p in path.parents if not os.path.isdir(p)]
    for p in created:
        size = len(os.fsencode(p.name))
        if size > name_max:
            what = "the file name" if p == path else f"the folder name {p.name!r}"
            raise OutputError(f"{label}: {what} is {size} bytes long; this file system allows at most {name_max}")
    temp = path.parent / (_temp_prefix(path.name, name_max) + "x" * _RANDOM + _SUFFIX)
    longest = max(len(os.fsencode(str(p))) for p in (path, temp))
    if longest >= path_max:                             # PATH_MAX counts the terminating NUL
        raise OutputError(f"{label}: the path is {longest} bytes long (with its temporary file); this file "
                          f"system allows at most {path_max - 1}")
    return name_max


def _probe(folder, name, name_max, label):
    """Create and remove a file in ``folder`` under the temporary name pattern of ``name``: the honest
    test that the write can create its temporary file there (permissions, a read-only file system,
    ACLs and quotas that ``os.access`` cannot see)."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=_temp_prefix(name, name_max), suffix=_SUFFIX)
    except OSError as e:
        raise OutputError(f"{label}: cannot create a file in the folder {folder} ({e.strerror or e})") from None
    os.close(fd)
    os.remove(probe)


def check_output(path, option="output"):
    """Raise ``OutputError`` unless ``path`` can be written as a new or replaced regular file.

    Missing parent folders are fine if they can be created under a writable
    existing one. Returns the path (with symbolic links followed).
    """
    path = _target(path, option)
    label = f"{option} {path}" if option else str(path)
    for parent in reversed(path.parents):           # from the root down: a file where a folder must be
        if parent.is_symlink() and not parent.exists():
            raise OutputError(f"{label}: {parent} is a symbolic link to nothing")
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"{label}: {parent} is not a folder")
    if path.is_symlink() and not path.exists() and not Path(os.path.realpath(path)).parent.is_dir():
        raise OutputError(f"{label}: a symbolic link whose target's folder does not exist")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise OutputError(f"{label}: {e.strerror}") from None
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            kind = _KIND.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise OutputError(f"{label} is {kind}; only a regular file is ever replaced")
        if not (st.st_mode & 0o222) or not os.access(path, os.W_OK):   # (root may write anything: ask the bits)
            raise OutputError(f"{label} is read-only; it will not be replaced")
    name_max = _check_lengths(path, label)              # again: a symbolic link's target may be longer
    existing = _existing_folder(path)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{label}: the folder {existing} is not writable")
    _probe(existing, path.name, name_max, label)
    return path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path, write, option="output"):
    """Call ``write(f)`` on a binary file object, then move the result to ``path``.

    Returns the path written. Raises ``OutputError`` (naming the path and the
    reason: no space, file too large, permission) and leaves no temporary file.
    """
    path = check_output(path, option)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix = _temp_prefix(path.name, _limit(path.parent, "PC_NAME_MAX", 255))
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=_SUFFIX)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise OutputError(f"{path}: could not write ({e.strerror or e}); nothing was changed") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    return path
