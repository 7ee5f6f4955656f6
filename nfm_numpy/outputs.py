"""Output files, written so that nothing good is lost.

* ``check_output(path, option)`` is called for every output before a run
  starts (``--save``, ``--plot``, ``--history``), so a path that cannot be
  written is found in a second, not after an hour of training.
* ``write_atomically(path, write)`` writes through a temporary file in the
  same folder and renames it into place: a reader sees the old file or the
  new one, never half of one; on any failure or interrupt (SIGINT, or SIGTERM
  where the command line turned it into an exception) the temporary file is
  removed and the old file is untouched.

The rules: only a regular file is ever replaced (never a folder, a FIFO, a
device or a socket); a symbolic link is followed and its target replaced; a
replaced file keeps its permission bits, a new one gets the umask's; a
read-only file is not replaced. Errors are ``OutputError`` naming the path.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import OptionTypeError, OutputError

_KIND = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
         stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def _target(path, label):
    """The file that will be written: ``path`` with symbolic links followed."""
    if not isinstance(path, (str, os.PathLike)):
        raise OptionTypeError(f"{label or 'an output path'} must be a path, got {path!r}")
    text = os.fspath(path)
    if not text or text.endswith((os.sep, "/")):
        raise OutputError(f"{label or 'output'} {text!r} names a folder (or nothing); give a file name")
    path = Path(text)
    try:
        return path.resolve(strict=False) if path.is_symlink() else path
    except (RuntimeError, OSError) as e:            # a symbolic link loop
        raise OutputError(f"{label} {text}: {e}") from None


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
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{label}: the folder {parent} is not writable")
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
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
