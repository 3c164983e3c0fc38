"""Shared steps for the gate tests: a governed workspace and the usual path."""

from __future__ import annotations

import threading
from typing import Any

from conftest import Result, Workspace

from cmi_console.core.errors import CmiError

STAFF = (
    ("victor", "validator"),
    ("carl", "reviewer"),
    ("dora", "deployer"),
    ("rita", "risk-officer"),
    ("sam", "admin"),
)


def ok(r: Result) -> Result:
    assert r.code == 0, r.err or r.out
    return r


def add_staff(ws: Workspace) -> Workspace:
    for name, role in STAFF:
        ok(ws.cli("user", "add", name, "--role", role))
    return ws


def to_staging(ws: Workspace, v: int) -> None:
    ok(ws.cli("validate", f"cancer:{v}", "--suite", "staging", as_="alice"))
    ok(ws.cli("request", f"cancer:{v}", "--to", "staging", as_="alice"))
    ok(ws.cli("approve", f"cancer:{v}", "--to", "staging", as_="victor"))
    ok(ws.cli("promote", f"cancer:{v}", "--to", "staging", as_="dora"))


def ready_for_production(ws: Workspace, v: int, validate: bool = True) -> None:
    to_staging(ws, v)
    if validate:
        ok(ws.cli("validate", f"cancer:{v}", "--suite", "production", as_="alice"))
    ok(ws.cli("request", f"cancer:{v}", "--to", "production", as_="alice"))


def to_production(ws: Workspace, v: int) -> None:
    ready_for_production(ws, v)
    ok(ws.cli("approve", f"cancer:{v}", "--to", "production", as_="bob"))
    ok(ws.cli("promote", f"cancer:{v}", "--to", "production", as_="dora"))


def log_head(ws: Workspace) -> tuple[int, str]:
    log = ok(ws.cli("audit", "log", "-n", "1", "--json")).json()
    return log[0]["seq"], log[0]["hash"]


def stage_of(ws: Workspace, ref: str) -> Any:
    return ok(ws.cli("version", "show", ref, "--json")).json()["stage"]


def race(fns: list[Any]) -> list[Any]:
    """Call each of `fns` in its own thread, all released at once; their
    results, or the CmiError each raised."""
    barrier = threading.Barrier(len(fns))
    results: list[Any] = [None] * len(fns)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fns[i]()
        except CmiError as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results
