"""Recognising what an artifact file is, by its bytes, without loading it."""

from __future__ import annotations

import zipfile
from pathlib import Path


def detect(path: Path) -> str:
    """'skops', 'pickle' (pickle or joblib; never loaded by default), or 'file'."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as zf:
                if "schema.json" in zf.namelist():
                    return "skops"
        except zipfile.BadZipFile:
            return "file"
        return "file"
    # pickle protocol 2+ starts with PROTO; joblib may zlib-compress it (0x78)
    if head[:1] == b"\x80" or head[:1] == b"\x78":
        return "pickle"
    return "file"
