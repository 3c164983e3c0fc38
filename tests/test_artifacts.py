"""Content-addressed artifacts: traversal refused, every read re-hashed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import Workspace
from gate_helpers import ok

from cmi_console.core.errors import BadInput, IntegrityError
from cmi_console.services.context import Context
from cmi_console.store.artifacts import ArtifactStore


def test_put_and_read(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    src = tmp_path / "a.bin"
    src.write_bytes(b"model bytes")
    digest, size = store.put_file(src)
    assert size == 11 and store.read(digest) == b"model bytes"
    assert store.put_file(src) == (digest, size)  # idempotent


@pytest.mark.parametrize(
    # a digest and a newline: "$" would have taken it
    "name",
    ["../../etc/passwd", "/etc/passwd", "ab" * 31 + "/x", "A" * 64, "", "a" * 64 + "\n"],
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


def test_a_commit_waits_for_its_artifacts_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one registration overlaps the artifact's fsync with its transaction; a
    # failed fsync must stop the commit: no version, no entry names the file
    from cmi_console.services import registry
    from cmi_console.services.setup import init_workspace

    ctx = init_workspace(tmp_path / "ws", admin="root")
    registry.create_model(ctx, "m")
    art = tmp_path / "model.bin"
    art.write_bytes(b"weights")
    with ctx.read() as conn:
        before = conn.exec_driver_sql("SELECT count(*) FROM audit_entries").scalar_one()

    def failing_sync(self: ArtifactStore, digests: list[str]) -> None:
        if digests:
            raise OSError(5, "Input/output error")

    with monkeypatch.context() as patched:
        patched.setattr(ArtifactStore, "sync", failing_sync)
        with pytest.raises(OSError, match="Input/output"):
            registry.register_version(ctx, "m", art)
    with ctx.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM audit_entries").scalar_one() == before
        assert conn.exec_driver_sql("SELECT count(*) FROM model_versions").scalar_one() == 0
    assert registry.register_version(ctx, "m", art)["version"] == 1  # and the next one works


def test_only_regular_files_are_stored(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it to read would block without a writer
    for source, why in [
        (tmp_path, "not a regular file"),
        (fifo, "not a regular file"),
        (tmp_path / "missing.bin", "no such file"),
    ]:
        with pytest.raises(BadInput, match=why):
            store.put_file(source)
    assert not (tmp_path / "store" / "sha256").exists()


def test_a_large_file_is_stored_whole_and_read_only_for_everyone(tmp_path: Path) -> None:
    import hashlib

    store = ArtifactStore(tmp_path / "store")
    src = tmp_path / "big.bin"
    data = os.urandom(3 * (1 << 20) + 17)  # more than one read chunk
    src.write_bytes(data)
    old = os.umask(0o077)  # a team's store must stay readable whatever the writer's umask
    try:
        digest, size = store.put_file(src)
    finally:
        os.umask(old)
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert store.read(digest) == data
    assert os.stat(store.path_for(digest)).st_mode & 0o777 == 0o444
    assert list((tmp_path / "store" / "tmp").iterdir()) == []  # no temporary left behind


def test_verify_artifacts_names_the_rows_whose_files_are_gone_or_changed(
    populated: Workspace,
) -> None:
    """The log cannot see the store: plain verify passes, `--artifacts`
    re-hashes every file a row names. A missing file had been bad input
    (exit 2) on read; it is an integrity violation like a changed one."""
    ctx = populated.ctx()
    store = ctx.workspace.artifacts
    versions = ok(populated.cli("version", "list", "cancer", "--json")).json()
    by_number = {v["version"]: v["artifact_sha256"] for v in versions}
    gone, changed = store.path_for(by_number[1]), store.path_for(by_number[2])
    os.chmod(gone.parent, 0o755)
    gone.unlink()
    os.chmod(changed, 0o644)
    changed.write_bytes(b"not the model")
    assert ok(populated.cli("audit", "verify")).code == 0
    r = populated.cli("audit", "verify", "--artifacts", "--json")
    assert r.code == 4
    found = {(f["kind"], f["table"], f["row_id"]) for f in r.json()["findings"]}
    rows = {v["version"]: v["id"] for v in _version_rows(ctx)}
    assert found == {
        ("artifact-missing", "model_versions", rows[1]),
        ("artifact-altered", "model_versions", rows[2]),
    }
    with pytest.raises(IntegrityError, match="missing from the store"):
        store.read(by_number[1])


def _version_rows(ctx: Context) -> list[dict[str, int]]:
    from sqlalchemy import select

    from cmi_console.store.tables import ModelVersion, table

    versions = table(ModelVersion)
    with ctx.read() as conn:
        return [
            {"version": v, "id": i}
            for i, v in conn.execute(select(versions.c.id, versions.c.version))
        ]
