"""Context.batch(): many service calls, one transaction (group commit).

Each call keeps its own audit entry; one checkpoint seals them; a failure in
any call leaves nothing behind; the witness moves once, after the commit."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Workspace
from sqlalchemy import func, select
from sqlmodel import SQLModel

from cmi_console.core.errors import NotFound
from cmi_console.services import registry
from cmi_console.services.verify import verify


def _count(ws: Workspace, table: str) -> int:
    tbl = {t.name: t for t in SQLModel.metadata.sorted_tables}[table]
    with ws.ctx().read() as conn:
        return int(conn.execute(select(func.count()).select_from(tbl)).scalar_one())


def _artifacts(tmp_path: Path, n: int) -> list[Path]:
    out = []
    for i in range(n):
        path = tmp_path / f"model-{i}.bin"
        path.write_bytes(f"model bytes {i}".encode())
        out.append(path)
    return out


def test_a_batch_records_every_call_and_seals_once(ws: Workspace, tmp_path: Path) -> None:
    ctx = ws.ctx("root")
    registry.create_model(ctx, "m")
    entries0, checkpoints0 = _count(ws, "audit_entries"), _count(ws, "checkpoints")
    with ctx.batch():
        for i, art in enumerate(_artifacts(tmp_path, 12)):
            view = registry.register_version(ctx, "m", art, tags={"i": str(i)})
            # the returned view equals what a reader sees once it commits
            assert view["version"] == i + 1
        # inside the batch, reads see the batch's own writes
        assert registry.show_version(ctx, "m:12")["tags"] == {"i": "11"}
        registry.set_alias(ctx, "m", "champion", 3)
    assert _count(ws, "audit_entries") == entries0 + 13
    assert _count(ws, "checkpoints") == checkpoints0 + 1
    assert registry.show_version(ctx, "m@champion")["version"] == 3
    fresh = registry.show_version(ctx, "m:7")
    assert fresh == {**fresh, "tags": {"i": "6"}, "aliases": []}
    for i in range(1, 13):  # every artifact landed intact
        v = registry.show_version(ctx, f"m:{i}")
        assert ctx.workspace.artifacts.is_intact(v["artifact_sha256"])
    report = verify(ctx)
    assert report.ok, report.findings
    assert report.witness_size == report.entries


def test_register_returns_what_show_returns(ws: Workspace, tmp_path: Path) -> None:
    ctx = ws.ctx("root")
    registry.create_model(ctx, "m")
    [art] = _artifacts(tmp_path, 1)
    made = registry.register_version(
        ctx, "m", art, tags={"b": "2", "a": "1"}, metrics={"z": 1, "auc": 0.75}
    )
    assert made == {**registry.show_version(ctx, "m:1"), "created": True}


def test_a_failed_call_rolls_back_the_whole_batch(ws: Workspace, tmp_path: Path) -> None:
    ctx = ws.ctx("root")
    registry.create_model(ctx, "m")
    before = {t: _count(ws, t) for t in ("audit_entries", "checkpoints", "model_versions")}
    witness = ctx.workspace.witness.read()
    arts = _artifacts(tmp_path, 3)
    with pytest.raises(RuntimeError, match="batch is rolled back"), ctx.batch():
        registry.register_version(ctx, "m", arts[0])
        # a caller that swallows a failure cannot commit the half-done batch
        with pytest.raises(NotFound):
            registry.set_alias(ctx, "m", "champion", 99)
        registry.register_version(ctx, "m", arts[1])
    assert {t: _count(ws, t) for t in before} == before
    assert ctx.workspace.witness.read() == witness
    report = verify(ctx)
    assert report.ok, report.findings


def test_an_exception_out_of_a_batch_leaves_nothing(ws: Workspace, tmp_path: Path) -> None:
    ctx = ws.ctx("root")
    registry.create_model(ctx, "m")
    entries0 = _count(ws, "audit_entries")
    with pytest.raises(KeyboardInterrupt), ctx.batch():
        for art in _artifacts(tmp_path, 3):
            registry.register_version(ctx, "m", art)
        raise KeyboardInterrupt
    assert _count(ws, "audit_entries") == entries0
    assert registry.list_versions(ctx, "m") == []
    # and the context is usable again afterwards
    registry.register_version(ctx, "m", _artifacts(tmp_path, 1)[0])
    assert verify(ctx).ok


def test_an_open_batch_belongs_to_its_thread(ws: Workspace, tmp_path: Path) -> None:
    """The console shares a Context between worker threads: a read in another
    thread must not use the batch's connection (nor see its uncommitted rows)."""
    import threading

    ctx = ws.ctx("root")
    registry.create_model(ctx, "m")
    seen: list[int] = []
    with ctx.batch():
        registry.register_version(ctx, "m", _artifacts(tmp_path, 1)[0])
        other = threading.Thread(target=lambda: seen.append(len(registry.list_versions(ctx, "m"))))
        other.start()
        other.join()
        assert len(registry.list_versions(ctx, "m")) == 1  # this thread sees its own write
    assert seen == [0]  # the other thread read the committed state
