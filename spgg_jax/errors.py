"""One-line errors for what people hand the CLI: directories to write, files to read, and what the
operating system says when a write fails.

Every function here raises :class:`UserError` (a ``ValueError``) whose message names the path and
what is wrong with it, so ``spgg`` prints it on one line, without a traceback, before any work
starts. :func:`os_error_line` turns an ``OSError`` met during the work (a full disk, a directory
that became read-only) into the same kind of line.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["UserError", "RunError", "CheckpointError", "check_writable_dir", "read_text_file", "read_json_object", "os_error_line",
           "io_errno"]

#: the longest file name component and path Linux accepts (NAME_MAX, PATH_MAX)
NAME_MAX = 255
PATH_MAX = 4096

_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
         (b"\xfe\xff", "UTF-16"))


class UserError(ValueError):
    """Something the user gave cannot be used; the message is one line naming it."""


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read (the message names the step and the directory); defined here so
    the CLI can catch it without importing orbax."""


class RunError(RuntimeError):
    """Work stopped by its surroundings (a full disk, a file system turned read-only); one line saying
    what failed, where, and how to continue."""


def _check_length(path: Path, what: str) -> None:
    raw = os.fsencode(str(path))
    if len(raw) >= PATH_MAX:
        raise UserError(f"{what} {str(path)[:60]}... is too long ({len(raw)} bytes; the limit is {PATH_MAX - 1})")
    for part in path.parts:
        n = len(os.fsencode(part))
        if n > NAME_MAX:
            raise UserError(f"{what} {str(path)[:60]}...: the name {part[:40]}... is too long ({n} bytes; "
                            f"a file or directory name may have at most {NAME_MAX})")


def check_writable_dir(path: str | os.PathLike, what: str = "directory") -> Path:
    """``path`` as a directory this process can write into, or create (nothing is created here).

    Refused with a one-line :class:`UserError`: a name that is too long, a path that is (or runs
    through) a file, an existing directory without write permission or on a read-only file system,
    and a missing directory whose nearest existing parent cannot be written.
    """
    p = Path(path)
    _check_length(p, what)
    try:
        if p.exists() and not p.is_dir():
            raise UserError(f"{what} {p} is a file, not a directory")
        if p.is_dir():
            if not os.access(p, os.W_OK | os.X_OK):
                raise UserError(f"{what} {p} is not writable ({_why_not_writable(p)})")
            return p
        parent = p.absolute().parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise UserError(f"{what} {p} cannot be created: {parent} is a file, not a directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UserError(f"{what} {p} cannot be created: {parent} is not writable ({_why_not_writable(parent)})")
    except OSError as err:  # ENOTDIR, EACCES on a parent, ELOOP, ...
        raise UserError(f"{what} {p}: {os_error_line(err)}") from None
    return p


def _why_not_writable(p: Path) -> str:
    try:
        st = os.statvfs(p)
        if st.f_flag & os.ST_RDONLY:
            return "a read-only file system"
    except OSError:
        pass
    return "permission denied"


def read_text_file(path: str | os.PathLike, what: str = "file") -> str:
    """The UTF-8 text of ``path`` (a UTF-8 byte-order mark is allowed); one-line errors naming the file
    for a missing file, a directory, a UTF-16/32 or binary file."""
    p = Path(path)
    _check_length(p, what)
    if p.is_dir():
        raise UserError(f"{what} {p} is a directory, not a file")
    if not p.exists():
        raise FileNotFoundError(f"{what} not found: {p}")
    try:
        data = p.read_bytes()
    except OSError as err:
        raise UserError(f"{what} {p}: {os_error_line(err)}") from None
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise UserError(f"{what} {p} is {name} text; save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(f"{what} {p} is not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); "
                        "is it a binary file?") from None


def read_json_object(path: str | os.PathLike, what: str = "JSON file") -> dict[str, Any]:
    """The JSON object in ``path``; one-line errors naming the file (and the line of a syntax error)."""
    text = read_text_file(path, what)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{what} {path} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{what} {path} must hold a JSON object, not a {type(obj).__name__}")
    return obj


_HINTS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "a read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "a name is too long",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EISDIR: "it is a directory",
    errno.ENOENT: "no such file or directory",
    errno.EEXIST: "it exists already",
}


def io_errno(err: BaseException) -> int | None:
    """The errno behind ``err``: an ``OSError``'s, or the ``os_error_code`` TensorStore (orbax's
    storage layer) puts in the text of the ``ValueError`` it raises for a failed write; else None."""
    if isinstance(err, OSError):
        return err.errno
    import re

    m = re.search(r"os_error_code='?(\d+)", str(err))
    if m:
        return int(m.group(1))
    for code, words in ((errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system"),
                        (errno.EACCES, "Permission denied"), (errno.EDQUOT, "Disk quota exceeded")):
        if words in str(err):
            return code
    return None


def errno_text(code: int) -> str:
    """A short text for an errno (``no space left on the device``)."""
    return _HINTS.get(code) or os.strerror(code)


def os_error_line(err: OSError) -> str:
    """``err`` on one line: what failed, on which path(s)."""
    if err.errno in _HINTS:
        what = _HINTS[err.errno]
    elif err.strerror:
        what = err.strerror
    else:
        what = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
    paths = [str(x) for x in (err.filename, err.filename2) if x is not None]
    where = f" ({' -> '.join(paths)})" if paths else ""
    return f"{what}{where}"
