"""Small text documents a user names: a policy, a recipe, a JSON option's
@FILE, a checkpoint, a key. Read whole, so they are held to a size and to
being regular files: `@/dev/zero` was read until memory ran out, and a FIFO
blocked the command."""

from __future__ import annotations

import stat
from pathlib import Path

from cmi_console.core.errors import BadInput

MAX_DOCUMENT = 16 << 20


def read_document(path: Path, label: str) -> str:
    """The UTF-8 text at `path`; BadInput starting with `label` otherwise."""
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise BadInput(f"{label}: not a regular file")
        with path.open("rb") as fh:
            data = fh.read(MAX_DOCUMENT + 1)
    except FileNotFoundError:
        raise BadInput(f"{label}: no such file") from None
    except OSError as exc:
        raise BadInput(f"{label}: cannot read ({exc.strerror})") from None
    if len(data) > MAX_DOCUMENT:
        raise BadInput(f"{label}: larger than {MAX_DOCUMENT >> 20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{label}: not UTF-8 text") from None
