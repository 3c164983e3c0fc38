"""Files a user names: a data file or an artifact must be a regular file;
a small text document (a policy, a recipe, a JSON option's @FILE, a
checkpoint, a key) is read whole, so it is also held to a size: `@/dev/zero`
was read until memory ran out, and a FIFO blocked the command."""

from __future__ import annotations

from pathlib import Path

from cmi_console.core.errors import BadInput

MAX_DOCUMENT = 16 << 20


def require_file(path: Path, where: str = "") -> None:
    """BadInput unless `path` is a regular file, saying which it is not."""
    prefix = f"{where}: " if where else ""
    if not path.is_file():
        what = "not a regular file" if path.exists() else "no such file"
        raise BadInput(f"{prefix}{path}: {what}")


def read_document(path: Path, where: str = "") -> str:
    """The UTF-8 text at `path`; BadInput naming `where` and the path otherwise."""
    require_file(path, where)
    label = f"{where}: {path}" if where else str(path)
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_DOCUMENT + 1)
    except OSError as exc:
        raise BadInput(f"{label}: cannot read ({exc.strerror})") from None
    if len(data) > MAX_DOCUMENT:
        raise BadInput(f"{label}: larger than {MAX_DOCUMENT >> 20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{label}: not UTF-8 text") from None
