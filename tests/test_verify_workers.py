"""`audit verify` scanning the log in worker processes: the same report as a
scan in one process, on both backends, clean and tampered; a failing worker
never changes the answer."""

from __future__ import annotations

import io
import random
from typing import Any

import pytest
import tamper
from conftest import Workspace

from cmi_console.core.log_scan import Carry, scan
from cmi_console.services import identity, registry
from cmi_console.services import verify as verify_mod
from cmi_console.services.context import Context
from cmi_console.store import verify_worker


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # 8-row chunks, so a log of a few hundred entries spans many chunks and
    # checkpoints fall inside chunks and on their edges
    monkeypatch.setattr(verify_mod, "CHUNK", 8)
    monkeypatch.setattr(verify_mod, "PARALLEL_FROM", 0)


def build(ctx: Context, batches: int) -> None:
    """Batches of notes of odd sizes, each sealed by a checkpoint, between
    signed role decisions that change rows."""
    ctx.actor = "root"
    identity.add_user(ctx, "rev", ["reviewer"])
    registry.create_model(ctx, "m")
    for b in range(batches):
        change = identity.grant_role if b % 2 == 0 else identity.revoke_role
        change(ctx, "rev", "validator")
        with ctx.write() as tx:
            for i in range(2 + b % 7):
                tx.record("model.note", "model:m", {"b": b, "i": i, "x": 0.5 + i})


def both(ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
    here = verify_mod.verify(ctx, workers=1).as_json()
    there = verify_mod.verify(ctx, workers=2).as_json()
    assert (here.pop("workers"), there.pop("workers")) == (1, 2), there["notes"]
    return here, there


@pytest.mark.usefixtures("small_chunks")
def test_workers_and_one_process_give_the_same_report(ws: Workspace) -> None:
    ctx = ws.ctx()
    build(ctx, 40)
    here, there = both(ctx)
    assert here == there
    assert here["ok"] and here["entries"] > 200 and here["signatures"] > 40
    assert here["covered"] == here["entries"] == here["witness_size"]


@pytest.mark.usefixtures("small_chunks")
def test_workers_find_what_one_process_finds(ws: Workspace) -> None:
    ctx = ws.ctx()
    build(ctx, 30)
    n = len(tamper.rows(ws))
    # a careful attacker rewrites an entry inside a chunk and recomputes every
    # later hash; plus a column edit on a chunk edge and a forged decision row
    tamper.rewrite_from(ws, 21, lambda obj: obj["data"].update(i=99))
    tamper.raw(ws, ("UPDATE audit_entries SET actor = 'eve' WHERE seq = 40", {}))
    seq = tamper.append_forged(ws, "role.grant", [])
    here, there = both(ctx)
    assert here == there
    kinds = {(f["kind"], f.get("seq")) for f in here["findings"]}
    assert {("checkpoint-mismatch", 21), ("column-mismatch", 40)} <= kinds
    assert ("signature-missing", seq) in kinds and seq == n


@pytest.mark.usefixtures("small_chunks")
def test_entries_stamped_out_of_order_are_counted_across_chunks_and_not_a_fault(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a log written before entries were stamped in log order, by writers whose
    # clocks disagreed: some transactions' clock is an hour behind, so
    # entries stamped earlier than the one ahead fall inside chunks and on
    # their edges (where only the chunk's carry can see them)
    from cmi_console.services import ledger

    monkeypatch.setattr(ledger.Tail, "stamp", lambda self, now: now)
    monkeypatch.setattr(verify_mod, "CHUNK", 2)  # an odd seq inside a chunk, an even on its edge
    ticks = iter(range(10_000))
    behind = random.Random(7)

    def clock() -> str:  # seconds pass; now and then a writer an hour behind
        n = next(ticks)
        return f"2030-01-01T{11 - (behind.random() < 0.5)}:{n // 60:02d}:{n % 60:02d}.000000Z"

    ctx = ws.ctx()
    ctx.clock = clock
    build(ctx, 40)
    with ctx.read() as conn:
        times = [t for (t,) in conn.exec_driver_sql("SELECT time FROM audit_entries ORDER BY seq")]
    earlier = [i for i in range(1, len(times)) if times[i] < times[i - 1]]
    assert len(earlier) > 10 and {i % 2 for i in earlier} == {0, 1}
    here, there = both(ctx)
    assert here == there and here["ok"]
    assert here["stamped_out_of_order"] == len(earlier)
    (note,) = here["notes"]
    assert note.startswith(
        f"{len(earlier)} entries are stamped before the entry ahead (first: entry {earlier[0]})"
    )
    monkeypatch.undo()
    r = ws.cli("audit", "verify")
    assert r.code == 0 and r.out.startswith("ok:"), r.out
    assert r.err.startswith(f"note: {len(earlier)} entries are stamped before"), r.err


@pytest.mark.usefixtures("small_chunks")
def test_a_failing_worker_does_not_change_the_answer(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    ctx = ws.ctx()
    build(ctx, 10)
    tamper.raw(ws, ("UPDATE audit_entries SET subject = 'x' WHERE seq = 12", {}))
    # the workers are pointed at a database that is not there: they really fail
    monkeypatch.setattr(verify_mod, "_worker_db", lambda conn: {"sqlite": str(tmp_path / "no")})
    report = verify_mod.verify(ctx, workers=2)
    assert report.workers == 1 and "verify worker" in report.notes[0]
    assert [(f.kind, f.seq) for f in report.findings] == [("column-mismatch", 12)]
    r = ws.cli("audit", "verify", "--workers", "2")
    assert r.code == 4 and "note: verify worker 0 stopped" in r.err


def test_worker_output_cut_inside_a_frame_is_refused(ws: Workspace) -> None:
    ctx = ws.ctx()
    with ctx.read() as conn:
        rows = conn.exec_driver_sql(verify_worker.ALL_ROWS).all()
    out = io.BytesIO()
    sent = scan(rows, Carry(), {1, len(rows)})
    verify_worker.write_scan(out, sent)
    frame = out.getvalue()
    back = verify_worker.read_scan(io.BytesIO(frame))
    assert back is not None and back.rng.peaks == sent.rng.peaks
    assert {s: r.peaks for s, r in back.cuts.items()} == {s: r.peaks for s, r in sent.cuts.items()}
    assert [(seq, entry) for seq, entry in back.forward] == sent.forward
    assert back.forward[0][0] == 0  # genesis is signed
    with pytest.raises(verify_worker.WorkerFailed, match="inside a frame"):
        verify_worker.read_scan(io.BytesIO(frame[:-5]))
    assert verify_worker.read_scan(io.BytesIO(b"")) is None


def test_workers_must_be_positive(ws: Workspace) -> None:
    r = ws.cli("audit", "verify", "--workers", "0")
    assert r.code == 2 and "--workers" in r.err


@pytest.mark.usefixtures("small_chunks")
def test_never_more_workers_than_chunks(ws: Workspace) -> None:
    ctx = ws.ctx()
    build(ctx, 4)
    report = verify_mod.verify(ctx, workers=500)
    chunks = -(-report.entries // verify_mod.CHUNK)
    assert report.ok and report.notes == [] and report.workers == chunks < 500


@pytest.mark.usefixtures("small_chunks")
def test_workers_never_import_from_the_working_directory(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # an auditor may run verify anywhere, e.g. in an unpacked bundle someone sent
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    (hostile / "orjson.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('ran').write_text('x')\n"
    )
    ctx = ws.ctx()
    build(ctx, 3)
    monkeypatch.chdir(hostile)
    report = verify_mod.verify(ctx, workers=2)
    assert report.ok and report.workers == 2, report.notes
    assert not (hostile / "ran").exists()


def test_verify_pauses_the_collector_and_restores_it(ws: Workspace) -> None:
    # a million replayed rows made every allocation pay for full collections
    import gc

    from cmi_console.services.verify import verify

    during: list[bool] = []
    report = verify(ws.ctx(), lambda done, total: during.append(gc.isenabled()))
    assert report.ok and during and not any(during)
    assert gc.isenabled()
    gc.disable()
    try:
        verify(ws.ctx())
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()
