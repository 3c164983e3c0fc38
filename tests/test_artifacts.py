"""Content-addressed artifacts: traversal refused, every read re-hashed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cmi_console.core.errors import BadInput, IntegrityError
from cmi_console.store.artifacts import ArtifactStore


def test_put_and_read(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    src = tmp_path / "a.bin"
    src.write_bytes(b"model bytes")
    digest, size = store.put_file(src)
    assert size == 11 and store.read(digest) == b"model bytes"
    assert store.put_file(src) == (digest, size)  # idempotent


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "/etc/passwd", "ab" * 31 + "/x", "A" * 64, ""]
)
def test_names_cannot_escape_the_store(tmp_path: Path, name: str) -> None:
    with pytest.raises(BadInput):
        ArtifactStore(tmp_path).path_for(name)


def test_a_changed_file_is_an_integrity_violation(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    src = tmp_path / "a.bin"
    src.write_bytes(b"model bytes")
    digest, _ = store.put_file(src)
    path = store.path_for(digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"evil bytes!")
    with pytest.raises(IntegrityError, match="hashes to"):
        store.read(digest)
    # registering the good file again heals the store
    store.put_file(src)
    assert store.read(digest) == b"model bytes"
