"""A workspace on a read-only file system: an investigator's evidence copy,
an auditor's read-only media. Every read works there, every write is refused
in one line, and nothing changes. SQLite opens a WAL database only where it
can make the -shm file beside it, so every command had failed with "cannot
reach it (unable to open database file)", exit 75.

The workspace is bind-mounted read-only in a mount namespace of its own
(`unshare -m`, which needs root, as CI has) and the commands run inside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Workspace

from cmi_console.services import audit

# runs inside the namespace: each command as a user types it, and what it said
_DRIVER = """
import json, os, subprocess, sys
home, db, commands = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
env = {**os.environ, "CMI_HOME": home}
if db:
    env["CMI_DATABASE_URL"] = db
out = []
for argv in commands:
    r = subprocess.run([sys.executable, "-m", "cmi_console", *argv], env=env,
                       capture_output=True, text=True)
    out.append([r.returncode, r.stdout, r.stderr])
print(json.dumps(out))
"""


def _can_mount() -> bool:
    try:
        return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0
    except OSError:
        return False


needs_mount = pytest.mark.skipif(
    not _can_mount(), reason="needs a mount namespace (unshare -m: root)"
)


def on_read_only_mount(home: Path, db: str | None, commands: list[list[str]]) -> list[Any]:
    """(exit code, stdout, stderr) of each command, run with `home` mounted read-only."""
    mount = (
        f'mount --bind "{home}" "{home}" && mount -o remount,bind,ro "{home}" "{home}" '
        '&& exec "$0" -c "$1" "$2" "$3" "$4"'
    )
    args = [sys.executable, _DRIVER, str(home), db or "", json.dumps(commands)]
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", mount, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


def _files(home: Path) -> dict[str, str]:
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file()
    }


READS = [
    ["audit", "verify"],
    ["audit", "log", "-n", "2"],
    ["version", "list", "cancer"],
    ["registry", "as-of", "2100-01-01"],
    ["db", "status"],
]


@needs_mount
def test_a_workspace_on_read_only_media_is_read_and_never_written(
    populated: Workspace,
) -> None:
    ws = populated
    if ws.db is None:  # the state a copy taken after the console closed has
        with sqlite3.connect(ws.sqlite_path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
    size = audit.count(ws.ctx())
    before = _files(ws.home)
    writes = [["--as", "root", "model", "create", "another"], ["audit", "checkpoint"]]
    results = on_read_only_mount(ws.home, ws.db, [*READS, *writes])
    for argv, (code, _out, err) in zip(READS, results, strict=False):
        assert code == 0, (argv, err)
    assert results[0][1].startswith("ok: ")  # the log verifies there
    assert "cancer" in results[2][1]
    for code, _out, err in results[len(READS) :]:
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "nothing was written" in err or "nothing is written" in err, err
    assert audit.count(ws.ctx()) == size
    assert _files(ws.home) == before


@needs_mount
def test_a_read_only_copy_whose_log_is_still_in_its_wal_file_says_what_to_do(
    populated: Workspace, tmp_path: Path
) -> None:
    """Committed changes still in the -wal file need the -shm file to be
    read; a copy without it cannot show them, so none is shown."""
    ws = populated
    if ws.db is not None:
        pytest.skip("a SQLite file's WAL; PostgreSQL keeps its own")
    reader = sqlite3.connect(ws.sqlite_path)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM audit_entries").fetchall()  # no checkpoint passes it
    assert ws.cli("model", "create", "another").code == 0
    copy = tmp_path / "copy"
    shutil.copytree(ws.home, copy)
    reader.close()
    os.unlink(copy / "cmi.db-shm")
    assert (copy / "cmi.db-wal").stat().st_size > 0
    before = _files(copy)
    ((code, _out, err),) = on_read_only_mount(copy, None, [["audit", "log", "-n", "2"]])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "cmi.db-shm beside it; copy the workspace to writable storage" in err
    assert _files(copy) == before
