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

from cmi_console.services import registry
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
