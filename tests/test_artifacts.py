"""Content-addressed artifacts: traversal refused, every read re-hashed."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import pytest
from conftest import Workspace
from gate_helpers import ok
from open_hook import before_open

from cmi_console.core.errors import BadInput, IntegrityError
from cmi_console.services.context import Context
from cmi_console.store.artifacts import ArtifactStore


def test_put_and_read(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    src = tmp_path / "a.bin"
    src.write_bytes(b"model bytes")
    digest, size, created = store.put_file(src)
    assert size == 11 and created and store.read(digest) == b"model bytes"
    assert store.put_file(src) == (digest, size, False)  # idempotent


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
    digest = store.put_file(src).digest
    path = store.path_for(digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"evil bytes!")
    with pytest.raises(IntegrityError, match="hashes to"):
        store.read(digest)
    # registering the good file again heals the store
    assert store.put_file(src).created
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
        digest, size, _ = store.put_file(src)
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


def test_a_stored_file_swapped_for_a_fifo_is_reported_not_waited_on(
    populated: Workspace,
) -> None:
    """The store checked the name (a regular file), then opened it: a FIFO put
    there in between held `verify --artifacts` (and any read) for good. It is
    now opened without blocking and checked on the descriptor: altered."""
    ctx = populated.ctx()
    store = ctx.workspace.artifacts
    versions = ok(populated.cli("version", "list", "cancer", "--json")).json()
    digest = next(v["artifact_sha256"] for v in versions if v["version"] == 1)
    path = store.path_for(digest)
    os.chmod(path.parent, 0o755)

    def swap() -> None:
        path.unlink()
        os.mkfifo(path)

    waited: list[Path] = []

    def unblock() -> None:  # should the read wait after all, the test fails, not hangs
        with contextlib.suppress(OSError), open(path, "wb"):
            waited.append(path)

    rescue = threading.Timer(10, unblock)
    rescue.start()
    try:
        with before_open(path, swap):
            r = populated.cli("audit", "verify", "--artifacts", "--json")
    finally:
        rescue.cancel()
    assert waited == [] and r.code == 4
    rows = {v["version"]: v["id"] for v in _version_rows(ctx)}
    found = {(f["kind"], f["table"], f["row_id"]) for f in r.json()["findings"]}
    assert found == {("artifact-altered", "model_versions", rows[1])}
    with pytest.raises(IntegrityError, match="not a regular file in the store"):
        store.read(digest)


def _version_rows(ctx: Context) -> list[dict[str, int]]:
    from sqlalchemy import select

    from cmi_console.store.tables import ModelVersion, table

    versions = table(ModelVersion)
    with ctx.read() as conn:
        return [
            {"version": v, "id": i}
            for i, v in conn.execute(select(versions.c.id, versions.c.version))
        ]


def _stored_files(ws: Workspace) -> set[str]:
    root = ws.ctx().workspace.artifacts.root / "sha256"
    return {p.name for p in root.glob("*/*")}


def test_a_refused_write_leaves_no_file_of_its_own_in_the_store(
    populated: Workspace, tmp_path: Path
) -> None:
    """A registration refused inside its transaction (its artifact already
    copied in, so that the file's fsync overlaps the transaction) left the
    file behind, named by no row, for good; so did a failed batch."""
    from cmi_console.services import registry

    ws = populated
    before = _stored_files(ws)
    art = tmp_path / "new.bin"
    art.write_bytes(b"a model nobody registers")
    r = ws.cli("version", "register", "cancer", "--artifact", str(art), "--run", "nope")
    assert r.code == 2 and "run 'nope' does not exist" in r.err
    r = ws.cli("version", "register", "ghost", "--artifact", str(art))
    assert r.code == 2 and "model 'ghost' does not exist" in r.err
    assert _stored_files(ws) == before
    # a batch that fails takes back every file it stored, its earlier calls' too
    other = tmp_path / "other.bin"
    other.write_bytes(b"another model")
    ctx = ws.ctx("alice")
    with pytest.raises(BadInput), ctx.batch():
        registry.register_version(ctx, "cancer", other)
        registry.register_version(ctx, "ghost", art)
    assert _stored_files(ws) == before
    # a refused write of bytes a row already names keeps them
    cancer_1 = ok(ws.cli("version", "show", "cancer:1", "--json")).json()["artifact_sha256"]
    again = tmp_path / "again.skops"
    again.write_bytes(ws.ctx().workspace.artifacts.read(cancer_1))
    r = ws.cli("version", "register", "ghost", "--artifact", str(again))
    assert r.code == 2 and _stored_files(ws) == before
    assert ok(ws.cli("audit", "verify", "--artifacts")).code == 0


def test_a_store_that_cannot_take_the_file_is_one_line_and_nothing_is_written(
    populated: Workspace, tmp_path: Path
) -> None:
    """A full disk (here: a file size limit, the same errno class) while a
    model or a dataset was copied in was an internal error."""
    from file_limit import cli_with_file_limit

    from cmi_console.services import audit

    ws = populated
    before, size = _stored_files(ws), audit.count(ws.ctx())
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(300_000))
    data = tmp_path / "big.csv"
    data.write_text("a,b\n" + "".join(f"{i},{i * 7}\n" for i in range(40_000)))
    store = ws.ctx().workspace.artifacts.root
    for args in (
        ("version", "register", "cancer", "--artifact", str(big)),
        ("dataset", "register", str(data), "--name", "big"),
    ):
        done = cli_with_file_limit(ws, 200_000, tmp_path, *args, as_="alice")
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == f"cmi: artifact store {store}: cannot write (File too large)"
    assert _stored_files(ws) == before and list((store / "tmp").iterdir()) == []
    assert audit.count(ws.ctx()) == size


def test_a_file_taken_between_its_copy_and_the_commit_is_stored_again(
    populated: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writes of the same bytes: one copies the file in, the other finds
    it there; the first is refused and removes it, under the write lock the
    second is waiting for. The second, once it holds the lock, must store the
    file again, or its row names a file the store no longer has."""
    ws = populated
    art = tmp_path / "new.bin"
    art.write_bytes(b"a model two writers store at once")
    real = ArtifactStore.put_file
    taken: list[str] = []

    def copy_then_lose_it(self: ArtifactStore, source: Path, *, sync: bool = True) -> object:
        stored = real(self, source, sync=sync)
        if not taken:  # the other write's clean-up runs right after this copy
            taken.append(stored[0])
            os.chmod(self.path_for(stored[0]).parent, 0o755)
            self.path_for(stored[0]).unlink()
        return stored

    monkeypatch.setattr(ArtifactStore, "put_file", copy_then_lose_it)
    out = ok(ws.cli("version", "register", "cancer", "--artifact", str(art), "--json")).json()
    assert taken == [out["artifact_sha256"]]
    assert ws.ctx().workspace.artifacts.read(taken[0]) == art.read_bytes()
    assert ok(ws.cli("audit", "verify", "--artifacts")).code == 0
