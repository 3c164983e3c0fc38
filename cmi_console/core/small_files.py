"""Files a user names: a data file or an artifact must be a regular file;
a small text document (a policy, a recipe, a JSON option's @FILE, a
checkpoint, a key) is read whole, so it is also held to a size: `@/dev/zero`
was read until memory ran out, and a FIFO blocked the command."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from cmi_console.core.errors import BadInput

MAX_DOCUMENT = 16 << 20


def kind_of(path: Path, where: str = "") -> str:
    """'file', 'directory', 'other' or 'missing'. A path that cannot even be
    looked up (a name too long, no permission on the way) is BadInput: pathlib's
    is_file() and exists() raised there, and every command naming such a path
    ended in an internal error."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as exc:
        raise BadInput(f"{where + ': ' if where else ''}{path}: {exc.strerror}") from None
    return "file" if stat.S_ISREG(mode) else "directory" if stat.S_ISDIR(mode) else "other"


def require_file(path: Path, where: str = "") -> None:
    """BadInput unless `path` is a regular file, saying which it is not."""
    kind = kind_of(path, where)
    if kind != "file":
        what = "no such file" if kind == "missing" else "not a regular file"
        raise BadInput(f"{where + ': ' if where else ''}{path}: {what}")


def _label(path: Path, where: str) -> str:
    """How an error names a file: the option that gave it, then the path."""
    return f"{where}: {path}" if where else str(path)


def open_if_regular(path: Path) -> int | None:
    """A descriptor to read `path` if it is a regular file at the moment it is
    opened; None if it is something else; OSError (FileNotFoundError...) as
    the open raises it, for callers that name a missing file their own way.

    Checked on the descriptor, not only on the name: a file swapped for a FIFO
    after its name was checked had blocked the read for good. O_NONBLOCK
    keeps the open of a FIFO from blocking too; on a regular file it changes
    nothing."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def open_regular(path: Path, where: str = "", within: Path | None = None) -> int:
    """A descriptor to read `path`, a regular file (open_if_regular); BadInput
    naming `where` and the path otherwise. With `within`, the file opened
    must be inside that directory (see _landed_inside)."""
    label = _label(path, where)
    try:
        fd = open_if_regular(path)
    except OSError as exc:
        require_file(path, where)  # missing, or not a regular file: says which
        raise BadInput(f"{label}: cannot read ({exc.strerror})") from None
    if fd is None:
        raise BadInput(f"{label}: not a regular file")
    if within is not None and not _landed_inside(fd, within):
        os.close(fd)
        raise BadInput(f"{label}: leads outside {within} (a link on its way changed)")
    return fd


def _landed_inside(fd: int, root: Path) -> bool:
    """Whether the file open on `fd` is inside `root`, asked of the open file
    itself (Linux's /proc/self/fd): a path checked to stay inside a directory
    could be sent elsewhere by a link swapped in between the check and the
    open. Where /proc cannot say, the check made before the open stands."""
    try:
        landed = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return True
    return Path(landed).is_relative_to(root.resolve())


def read_regular(
    path: Path, where: str = "", limit: int | None = None, within: Path | None = None
) -> bytes:
    """The bytes of a regular file (at most `limit` + 1 of them, so a caller
    can tell a file over its limit); `within` as for open_regular."""
    label = _label(path, where)
    with os.fdopen(open_regular(path, where, within), "rb") as fh:
        try:
            return fh.read() if limit is None else _read_upto(fh, limit + 1)
        except OSError as exc:  # EIO, a file system that refuses the read
            raise BadInput(f"{label}: cannot read ({exc.strerror})") from None


def _read_upto(fh: BinaryIO, most: int) -> bytes:
    """At most `most` bytes, in reads of about the file's size: read(most)
    itself allocates `most` bytes first, 16 MiB for every document (the
    workspace's configuration at every command's start)."""
    step = max(os.fstat(fh.fileno()).st_size + 1, 1 << 16)
    parts: list[bytes] = []
    while most > 0 and (chunk := fh.read(min(most, step))):
        parts.append(chunk)
        most -= len(chunk)
    return b"".join(parts)


def read_document(path: Path, where: str = "") -> str:
    """The UTF-8 text at `path`; BadInput naming `where` and the path otherwise."""
    label = _label(path, where)
    data = read_regular(path, where, MAX_DOCUMENT)
    if len(data) > MAX_DOCUMENT:
        raise BadInput(f"{label}: larger than {MAX_DOCUMENT >> 20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{label}: not UTF-8 text") from None
