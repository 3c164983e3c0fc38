"""The demo workspace: real models from data/, deterministic, governed, and it verifies."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event

from cmi_console.services import audit, demo, gates, registry
from cmi_console.services.context import Context


@pytest.mark.slow
def test_demo_builds_verifies_and_is_deterministic(tmp_path: Path) -> None:
    start = date(2026, 9, 1)
    a = demo.ensure_demo(tmp_path / "a", start=start)
    b = demo.ensure_demo(tmp_path / "b", start=start)
    assert a.built and b.built and a.verified
    assert len(a.models) >= 3 and all(m["versions"] >= 2 for m in a.models)
    assert a.users >= 8
    heads = [audit.head(Context.open(tmp_path / h)) for h in ("a", "b")]
    assert heads[0] == heads[1]  # the same log, byte for byte
    again = demo.ensure_demo(tmp_path / "a")
    assert not again.built and again.entries == a.entries


@pytest.mark.slow
def test_demo_shows_every_part_of_governance(tmp_path: Path) -> None:
    demo.ensure_demo(tmp_path / "d")
    ctx = Context.open(tmp_path / "d", actor="nina")
    versions = registry.search_versions(ctx, limit=1000)
    assert {v["stage"] for v in versions} >= {
        "development",
        "staging",
        "production",
        "archived",
        "retired",
    }
    assert [v["version"] for v in versions if v["break_glass"]] == [2]
    queue = gates.queue(ctx)
    assert len(queue) >= 3
    states = set()
    for q in queue:
        report = gates.status(ctx, q["version"], q["to_stage"], q["environment"])
        states |= {a.state for a in report.approvals}
    assert {"counted", "stale"} <= states  # pending approvals, one of them stale
    log = audit.query(ctx, action="gate.reject", limit=10)
    assert log and log[0]["data"]["statement"]["comment"].startswith("no fairness")
    retired = audit.query(ctx, action="version.retire", limit=10)
    assert retired and retired[0]["data"]["successor"] == "credit-risk:2"
    assert audit.query(ctx, action="break-glass.execute", limit=10)
    assert gates.queue(ctx, mine=True)  # nina has something to review today
    _production_story(ctx)
    _every_entry_reads_as_a_line(ctx)


def _every_entry_reads_as_a_line(ctx: Context) -> None:
    """An incident timeline (and its report) showed `monitor.evaluate`,
    `gate.request`, `version.archive`, `break-glass.execute`, ... as their
    bare action names. Every entry of the demo's history reads as a line of
    its own (the timeline, `audit show`, the console's audit view)."""
    from cmi_console.core import entry_text

    entries = audit.query(ctx, limit=100_000)
    bare = {
        e["action"]
        for e in entries
        if entry_text.summary(e["action"], e["data"], e["time"]) == e["action"]
    }
    assert bare == set(), bare
    assert len({e["action"] for e in entries}) >= 30  # the demo's history is that varied


def _production_story(ctx: Context) -> None:
    """Deployment, drifting windows with late labels, a drift and a
    performance alert, the retrained candidate waiting for review, a canary
    in progress, a shadow, a rollback and a zombie."""
    from cmi_console.services import deployments, monitoring

    rollouts = {
        (d["model"], d["strategy"]): d for d in deployments.list_deployments(ctx, open_only=True)
    }
    assert rollouts[("wine-cultivar", "canary")]["shares"] == {"1": 75, "2": 25}
    assert rollouts[("credit-risk", "shadow")]["mirror"] == 100
    assert [h["action"] for h in deployments.history(ctx, "wine-cultivar")].count("rollback") == 1
    status = monitoring.status(ctx, "credit-risk", "production")
    assert len(status["windows"]) == 7
    assert [w["labelled_at"] is not None for w in status["windows"]][-2:] == [True, True]
    kinds = {a["kind"]: a for a in status["alerts"]}
    assert kinds["drift"]["windows"] == [3, 4]  # fired at week 4, not 3
    assert kinds["performance"]["windows"] == [6, 7]
    (candidate,) = {r["candidate"] for r in status["retrain_requests"]}
    v = registry.show_version(ctx, f"credit-risk:{candidate}")
    assert v["stage"] == "development"
    assert any(q["version"] == f"credit-risk:{candidate}" for q in gates.queue(ctx))
    zombies = monitoring.zombies(ctx)
    assert [(z["model"], z["environment"]) for z in zombies] == [("credit-risk", "staging")]
    # the dashboard asks for zombies: its queries must not grow with the
    # number of deployed models (two here)
    statements: list[str] = []
    listen = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(ctx.engine, "before_cursor_execute", listen)
    try:
        assert monitoring.zombies(ctx) == zombies
    finally:
        event.remove(ctx.engine, "before_cursor_execute", listen)
    deployed = {d["model"] for d in deployments.list_deployments(ctx)}
    assert len(deployed) == 2 and len(statements) <= 7, statements  # with BEGIN


def test_default_history_ends_about_today() -> None:
    assert demo.default_start() == date.today() - timedelta(days=demo.HISTORY_DAYS)


def test_demo_reset_refuses_a_real_workspace(tmp_path: Path) -> None:
    from cmi_console.core.errors import BadInput
    from cmi_console.services.setup import init_workspace

    init_workspace(tmp_path / "real", admin="root").engine.dispose()
    with pytest.raises(BadInput, match="not a demo workspace"):
        demo.ensure_demo(tmp_path / "real", reset=True)
    assert (tmp_path / "real" / "cmi.db").exists()


def test_a_demo_refused_by_another_init_removes_nothing(tmp_path: Path) -> None:
    """`cmi demo` twice at once: the second found no directory, then its init
    found the first's workspace there and refused; it then deleted the
    directory (a half-built demo of its own, it thought), the first's
    workspace with it. The other init runs just before this one makes the
    directory."""
    from open_hook import before_mkdir

    from cmi_console.core.errors import BadInput
    from cmi_console.services.setup import init_workspace
    from cmi_console.services.verify import verify

    home = tmp_path / "demo"
    other = before_mkdir(home, lambda: init_workspace(home, admin="ada").engine.dispose())
    with other, pytest.raises(BadInput, match="already a cmi workspace"):
        demo.ensure_demo(home)
    assert verify(Context.open(home, None, "ada")).ok


@pytest.mark.parametrize("existed", [False, True])
def test_a_demo_that_fails_half_way_leaves_nothing(tmp_path: Path, existed: bool) -> None:
    """A recipe the demo cannot train on (its data here, a copy with one
    recipe broken): what the demo had made is removed, the directory too
    unless it was there before."""
    import shutil

    from cmi_console.core.errors import BadInput

    data = tmp_path / "data"
    shutil.copytree(demo.data_dir(), data)
    (data / "recipes" / "wine-rf.toml").write_text("this is not TOML [")
    home = tmp_path / "demo"
    if existed:
        home.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CMI_DEMO_DATA", str(data))
        with pytest.raises(BadInput, match="wine-rf.toml"):
            demo.ensure_demo(home)
    assert (list(home.iterdir()) == []) if existed else not home.exists()


@pytest.mark.slow
def test_as_of_reads_only_what_it_needs_and_answers_as_a_full_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `registry as-of` replays only the entries that change the four tables it
    # answers from: at every instant of the demo's log (promotions, deployments,
    # rollbacks, retirements, break-glass) it must answer as a replay of every
    # entry into every table does
    import re

    from cmi_console.services import history
    from cmi_console.store.tables import REGISTRY_TABLES

    demo.ensure_demo(tmp_path / "d")
    ctx = Context.open(tmp_path / "d", actor="audrey")
    with ctx.read() as conn:
        log = conn.exec_driver_sql("SELECT time, body FROM audit_entries").all()
    unread = [b for _, b in log if not history._CHANGES_AS_OF_TABLES.search(b)]
    assert 0 < len(unread) < len(log)  # both paths are taken
    times = sorted({t for t, _ in log})
    for when in times:
        fast = history.as_of(ctx, when)
        with monkeypatch.context() as m:
            m.setattr(history, "_AS_OF_TABLES", tuple(REGISTRY_TABLES))
            m.setattr(history, "_CHANGES_AS_OF_TABLES", re.compile(b""))
            full = history.as_of(ctx, when)
        assert fast == full, when
    assert fast["entries"] == len(log) and fast["last_entry_time"] == times[-1]
    # the break-glass promotion rested on bypassed conditions and a justification
    wine = next(m for m in fast["models"] if m["model"] == "wine-cultivar")
    number = wine["serving"]["production@production"]
    by = next(v for v in wine["versions"] if v["version"] == number)["staged_by"]
    text = history.evidence_text(by)
    assert text.startswith("break-glass · "), text
    assert "approvals:reviewer 0/1 (bypassed)" in text and "comment: " in text, text
    assert "run `" not in text and "unmet" not in text, text
