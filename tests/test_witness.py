"""The witness slots stay open between writes (store/witness.py): a slot that
is removed or replaced meanwhile must still get the next checkpoint, and no
writer may move the witness back to a smaller tree."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from conftest import Workspace
from gate_helpers import ok
from open_hook import before_open

from cmi_console.services import registry
from cmi_console.services.verify import verify
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
