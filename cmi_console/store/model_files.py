"""Model files in the skops format, written byte-for-byte reproducibly.

skops names array files and memo ids after CPython object ids, and zip
entries carry the current time, so two dumps of one model differ. We renumber
ids in order of first appearance and fix the zip metadata, so the same model
always has the same SHA-256 (needed for content addressing and `reproduce`).
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

_EPOCH = (1980, 1, 1, 0, 0, 0)


def _renumber(node: Any, ids: dict[int, int]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "__id__" and isinstance(value, int):
                out[key] = ids.setdefault(value, len(ids))
            elif key == "file" and isinstance(value, str) and value.endswith(".npy"):
                stem = value[: -len(".npy")]
                out[key] = f"{ids.setdefault(int(stem), len(ids))}.npy" if stem.isdigit() else value
            else:
                out[key] = _renumber(value, ids)
        return out
    if isinstance(node, list):
        return [_renumber(v, ids) for v in node]
    return node


def dumps(model: Any) -> bytes:
    import skops.io as sio

    src = zipfile.ZipFile(io.BytesIO(sio.dumps(model)))
    ids: dict[int, int] = {}
    schema = _renumber(json.loads(src.read("schema.json")), ids)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        files = {"schema.json": json.dumps(schema, sort_keys=True, indent=1).encode()}
        for name in src.namelist():
            if name == "schema.json":
                continue
            stem, dot, ext = name.partition(".")
            new = f"{ids[int(stem)]}{dot}{ext}" if stem.isdigit() and int(stem) in ids else name
            files[new] = src.read(name)
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, files[name])
    return out.getvalue()


# What a skops file may unpack to. skops reads schema.json whole (and parses
# it) and each array whole: a few MB of deflated zeros that unpack to many GB
# would take a validator's memory before any type check ran.
MAX_SCHEMA = 256 << 20
MAX_UNPACKED = 8 << 30


def _refuse_bombs(data: bytes, where: str) -> None:
    from cmi_console.core.errors import IntegrityError

    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise IntegrityError(f"{where}: not a readable skops file ({exc})") from None
    # zipfile reads no member past its declared size (a larger one fails its
    # CRC), so the declared sizes bound what loading can take
    schema = sum(m.file_size for m in members if m.filename == "schema.json")
    total = sum(m.file_size for m in members)
    if schema > MAX_SCHEMA or total > MAX_UNPACKED:
        raise IntegrityError(
            f"{where}: unpacks to {total:,} bytes (schema.json {schema:,}); refused: a "
            f"skops file may unpack to {MAX_UNPACKED:,} bytes, its schema to {MAX_SCHEMA:,}"
        )


# Types outside skops' defaults that scikit-learn models legitimately hold.
_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")


def loads(data: bytes, fmt: str, *, allow_pickle: bool = False, where: str = "artifact") -> Any:
    """Load model bytes whose hash the caller has verified. Pickle is refused
    unless the policy allows it; skops files load only trusted types."""
    from cmi_console.core.errors import IntegrityError

    if fmt == "pickle":
        if not allow_pickle:
            raise IntegrityError(
                f"{where}: is a pickle/joblib file; refused, because loading it could run "
                "arbitrary code (set allow_pickle = true in the model's policy to accept it)"
            )
        import joblib

        return joblib.load(io.BytesIO(data))
    if fmt != "skops":
        raise IntegrityError(f"{where}: is not a model file cmi can load safely ({fmt})")
    import skops.io as sio

    _refuse_bombs(data, where)
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # a damaged or hostile zip: never load it
        raise IntegrityError(f"{where}: not a readable skops file ({exc})") from None
    unsafe = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES)]
    if unsafe:
        raise IntegrityError(f"{where}: holds untrusted type(s) {', '.join(sorted(unsafe))}")
    try:
        return sio.loads(data, trusted=untrusted)
    except Exception as exc:
        raise IntegrityError(f"{where}: cannot be loaded ({type(exc).__name__}: {exc})") from None
