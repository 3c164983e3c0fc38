"""Kill -9 in the middle of audited writes; several writers at once.
Afterwards the log verifies, state matches the log, nothing is lost or forked."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Workspace
from open_hook import before_mkdir, before_open

from cmi_console.services import registry
from cmi_console.services.context import Context
from cmi_console.services.verify import verify

WRITER = Path(__file__).with_name("writer.py")


def spawn(ws: Workspace, prefix: str, count: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    return subprocess.Popen(
        [sys.executable, str(WRITER), str(ws.home), ws.db or "-", prefix, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.slow
def test_kill_9_mid_write_leaves_a_verifiable_log(ws: Workspace) -> None:
    rng = random.Random(1234)
    for round_ in range(6):
        proc = spawn(ws, f"crash{round_}", 10_000)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.2, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ctx = ws.ctx()
    report = verify(ctx)
    assert report.ok, [str(f) for f in report.findings[:5]]
    models = registry.list_models(ctx)
    # every committed model has exactly its entry: state == log
    created = [
        e
        for e in ws.cli("audit", "log", "-n", "100000", "--json").json()
        if e["action"] == "model.create"
    ]
    assert len(created) == len(models) > 6
    assert report.covered == report.entries


def _writers_at_once(ws: Workspace, writers: int, per: int) -> None:
    """`writers` processes each make `per` audited writes at once: nothing is
    lost, the log is one chain (no fork), and it verifies."""
    procs = [spawn(ws, f"w{i}", per) for i in range(writers)]
    for p in procs:
        _out, err = p.communicate(timeout=900)
        assert p.returncode == 0, err
    ctx = ws.ctx()
    report = verify(ctx)
    assert report.ok, [str(f) for f in report.findings[:5]]
    names = {m["name"] for m in registry.list_models(ctx)}
    assert names == {f"w{i}-{j}" for i in range(writers) for j in range(per)}
    log = ws.cli("audit", "log", "-n", "100000", "--json", "--reverse").json()
    assert [e["seq"] for e in log] == list(range(len(log))) and len(log) == 2 + writers * per
    # a linear chain: every prev is the hash of the entry before it
    assert all(b["prev"] == a["hash"] for a, b in zip(log, log[1:], strict=False))


@pytest.mark.slow
def test_four_writers_at_once_lose_nothing_and_never_fork(ws: Workspace) -> None:
    _writers_at_once(ws, 4, 25)


@pytest.mark.slow
def test_eight_writers_of_a_thousand_writes_each(ws: Workspace) -> None:
    """Team scale (issue 8): 8 processes x 1,000 audited writes, on both backends."""
    _writers_at_once(ws, 8, 1000)


def _init_or_refusal(home: Path, admin: str, said: list[str]) -> None:
    """Another `cmi init` of `home`, as a second process runs it."""
    from cmi_console.core.errors import BadInput
    from cmi_console.services.setup import init_workspace

    try:
        init_workspace(home, admin=admin).engine.dispose()
        said.append("made")
    except BadInput as exc:
        said.append(str(exc))


def test_two_inits_of_one_home_at_once_leave_one_workspace(tmp_path: Path) -> None:
    """Both had passed the checks (no workspace, an empty or missing
    directory): the one that went on second failed on the other's tables and
    deleted the home, the workspace the other had just reported made. Each
    interleaving: the other init runs to its end just before this one makes
    the directory, and just after this one has claimed it."""
    from cmi_console.core.errors import BadInput
    from cmi_console.services.identity import list_users
    from cmi_console.services.setup import MAKING, init_workspace

    home = tmp_path / "ws"
    said: list[str] = []
    refused = pytest.raises(BadInput, match="already a cmi workspace; nothing was changed")
    with before_mkdir(home, lambda: _init_or_refusal(home, "bea", said)), refused:
        init_workspace(home, admin="ada")
    assert said == ["made"]
    ctx = Context.open(home, None, "bea")
    assert verify(ctx).ok and [u.name for u in list_users(ctx)] == ["bea"]
    ctx.engine.dispose()

    home = tmp_path / "ws2"
    said = []
    with before_open(home / "keys" / "log.key", lambda: _init_or_refusal(home, "bea", said)):
        ctx = init_workspace(home, admin="ada")
    assert said == [
        f"{home}: another `cmi init` is making a workspace here (if none is running, one was "
        f"interrupted: remove {home / MAKING} and what it made); nothing was changed"
    ]
    assert not (home / MAKING).exists()
    assert verify(ctx).ok and [u.name for u in list_users(ctx)] == ["ada"]
