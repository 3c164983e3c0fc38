"""The witness slots stay open between writes (store/witness.py): a slot that
is removed or replaced meanwhile must still get the next checkpoint, and no
writer may move the witness back to a smaller tree."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import Workspace
from gate_helpers import ok
from held_lock import lock_held_elsewhere
from open_hook import before_open

from cmi_console.services import registry
from cmi_console.services.verify import verify
from cmi_console.store import witness
from cmi_console.store.witness import Witness


def _note(size: int) -> str:
    return f"origin\n{size}\nroot{size}=\n\n— origin sig{size}\n"


def _claimed(directory: Path) -> list[int]:
    slots = sorted(directory.glob("checkpoint.*"))
    return sorted(int(p.read_text().split("\n")[1]) for p in slots)


def test_writes_alternate_between_the_two_slots(tmp_path: Path) -> None:
    w = Witness(tmp_path / "witness")
    for size in (1, 2, 3):
        w.write(_note(size), size)
    assert _claimed(tmp_path / "witness") == [2, 3]  # the older slot is overwritten
    assert sorted(w.read()) == [_note(2), _note(3)]


def test_a_removed_directory_is_made_again_by_the_same_writer(tmp_path: Path) -> None:
    w = Witness(tmp_path / "witness")
    w.write(_note(1), 1)
    w.write(_note(2), 2)
    shutil.rmtree(tmp_path / "witness")  # the open slots now point at unlinked files
    w.write(_note(3), 3)
    assert _claimed(tmp_path / "witness") == [3]
    assert w.read() == [_note(3)]


def _replace(slot: Path, note: str) -> None:
    """A new file under the slot's name, as a restore or another tool leaves it."""
    tmp = slot.with_name("new")
    tmp.write_text(note)
    os.replace(tmp, slot)


def test_a_replaced_slot_is_opened_anew(tmp_path: Path) -> None:
    directory = tmp_path / "witness"
    w = Witness(directory)
    w.write(_note(1), 1)
    w.write(_note(2), 2)
    _replace(directory / "checkpoint.0", _note(0))
    w.write(_note(3), 3)  # into the file now there, not the one replaced
    assert _claimed(directory) == [2, 3]
    _replace(directory / "checkpoint.0", _note(9))  # another writer got further
    w.write(_note(5), 5)
    assert _claimed(directory) == [2, 9]


def test_a_slower_writer_never_regresses_the_witness(tmp_path: Path) -> None:
    fast, slow = Witness(tmp_path / "w"), Witness(tmp_path / "w")
    slow.write(_note(3), 3)
    fast.write(_note(7), 7)
    fast.write(_note(8), 8)
    slow.write(_note(4), 4)  # behind both slots: nothing written
    assert _claimed(tmp_path / "w") == [7, 8]


def test_two_writers_choosing_a_slot_at_once_never_regress_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes (here two Witness objects, each with its own descriptors,
    as two processes have) witness sizes 13 and 14 at the same instant: both
    read the slots, both choose the older one. Without a lock between them
    the later write of the smaller size landed last, and the witness claimed
    13 with 14 committed. The second writer is started just after the first
    has read the slots, and given half a second to finish."""
    directory = tmp_path / "w"
    first, second = Witness(directory), Witness(directory)
    first.write(_note(11), 11)
    first.write(_note(12), 12)
    reads = 0
    others: list[threading.Thread] = []
    claimed = witness._claimed

    def claimed_then_race(fd: int | None) -> int:
        nonlocal reads
        found = claimed(fd)
        reads += 1
        if reads == 2:  # the first writer has read both slots and will choose one
            other = threading.Thread(target=second.write, args=(_note(14), 14))
            other.start()
            other.join(0.5)  # it finishes unless a lock holds it back
            others.append(other)
        return found

    monkeypatch.setattr(witness, "_claimed", claimed_then_race)
    first.write(_note(13), 13)
    others[0].join(10)
    assert not others[0].is_alive()
    assert _claimed(directory) == [13, 14]


def test_a_write_committed_while_verify_starts_is_no_truncation(ws: Workspace) -> None:
    """A team's log grows while an auditor verifies it. A writer that
    commits after verify's snapshot began, and then witnesses the new size,
    must not read as a log cut short (exit 4 on a healthy log): the witness
    is read before the snapshot, and a witness never runs ahead of the
    commits it follows."""
    ok(ws.cli("model", "create", "before"))
    ctx = ws.ctx()
    first_slot = ctx.workspace.witness.paths[0]

    def another_writer() -> None:
        registry.create_model(ws.ctx("root"), "during")

    with before_open(first_slot, another_writer):
        report = verify(ctx)
    assert report.ok, [f.message for f in report.findings]
    assert report.witness_size is not None and report.witness_size <= report.entries
    assert verify(ws.ctx()).ok


@contextmanager
def _unwritable(path: Path) -> Iterator[None]:
    """`path` made unwritable, for root too (the immutable flag), else by mode."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        yield
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("as root, only chattr +i makes a file unwritable, and it failed here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize("command", [("model", "create", "m"), ("audit", "checkpoint")])
@pytest.mark.parametrize("name", [*witness.SLOTS, witness.LOCK])
def test_a_witness_that_cannot_be_written_refuses_the_write(
    ws: Workspace, name: str, command: tuple[str, ...]
) -> None:
    """It was found after the commit: the command failed as an internal error
    (exit 70) with its change committed, and a CI job that retried it failed
    again on its own change. `cmi audit checkpoint` wrote the witness after
    its own commit too. The lock only needs to be readable."""
    path = ws.home / "witness" / name
    before = ok(ws.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"]
    with _unwritable(path):
        r = ws.cli(*command)
    if name == witness.LOCK:
        ok(r)
        return
    assert r.code == 2 and r.out == ""
    assert r.err.startswith(f"cmi: witness {path}: cannot write (") and r.err.endswith(
        "); nothing was written\n"
    ), r.err
    assert ok(ws.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] == before
    ok(ws.cli("model", "create", "m"))  # writable again: the same command goes through
    assert verify(ws.ctx()).ok


@pytest.mark.parametrize("swapped", [1, 2])
def test_a_witness_slot_that_is_a_fifo_is_reported_not_waited_on(
    ws: Workspace, swapped: int
) -> None:
    """`cmi audit verify` read the slots with a blocking read: a slot made a
    FIFO held it for good, a tampering that silenced the check meant to find
    it. One such slot is tolerated as a torn one is (the other verifies);
    both, and the witness is invalid (exit 4), naming the file."""
    slots = [ws.home / "witness" / name for name in witness.SLOTS][:swapped]
    for slot in slots:
        slot.unlink()
        os.mkfifo(slot)

    waited: list[Path] = []

    def unblock() -> None:  # should the read wait after all, the test fails, not hangs
        for slot in slots:  # each open returns once verify has opened the slot to read it
            with contextlib.suppress(OSError), open(slot, "wb"):
                waited.append(slot)

    rescue = threading.Timer(10, unblock)
    rescue.start()
    try:
        r = ws.cli("audit", "verify", "--json")
    finally:
        rescue.cancel()
    assert waited == []
    if swapped == 1:
        ok(r)
        return
    assert r.code == 4, r.err
    assert r.json()["findings"] == [
        {"kind": "witness-invalid", "message": f"witness: {slots[0]}: not a regular file"}
    ]


def test_a_writers_lock_held_elsewhere_delays_no_write_for_good(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The witness is written after the commit, under a lock other
    processes take too. One that held it for good had hung every writer with
    its change committed (a CI job killed on its timeout, then retried on a
    change it had made). The wait is bounded: the command ends, exit 0, and
    says on stderr that the change is committed but not witnessed; the
    witness stays behind (never ahead), and the next write catches it up."""
    monkeypatch.setattr(witness, "LOCK_WAIT", 0.3)
    ok(ws.cli("model", "create", "before"))
    lock = ws.home / "witness" / witness.LOCK
    said = (
        f"warning: committed, not witnessed: {lock} was held by another process for "
        "0.3 s; the next write brings the witness up to date\n"
    )
    with lock_held_elsewhere(lock):
        witnessed = max(_claimed(ws.home / "witness"))
        r = ok(ws.cli("model", "create", "during", "--json"))
        assert r.json()["name"] == "during" and r.err == said, r.err
        c = ok(ws.cli("audit", "checkpoint"))
        assert c.err == said and max(_claimed(ws.home / "witness")) == witnessed
        size = ok(ws.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] + 1
        assert witnessed < size
        report = verify(ws.ctx())
        assert report.ok and report.witness_size == witnessed, report.findings
    ok(ws.cli("model", "create", "after"))
    size = ok(ws.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] + 1
    assert max(_claimed(ws.home / "witness")) == size
    assert verify(ws.ctx()).ok
