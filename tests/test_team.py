"""docs/deploy-team.md on a real PostgreSQL server: the documented roles let
cmi work as the console role, while the log refuses UPDATE and DELETE."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import PG_URL, REPO, Workspace
from pg_outage import Outage

from cmi_console.services import registry
from cmi_console.services.context import Context
from cmi_console.services.setup import init_workspace
from cmi_console.services.verify import verify

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not PG_URL, reason="PostgreSQL tests need CMI_TEST_DATABASE_URL (see README)"
    ),
]


def _documented_sql() -> list[str]:
    doc = (REPO / "docs" / "deploy-team.md").read_text()
    block = re.search(r"```sql\n(.*?)```", doc, re.S)
    assert block, "docs/deploy-team.md lost its SQL block"
    lines = [ln for ln in block.group(1).splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def test_the_documented_roles_make_the_log_insert_only(fresh_pg_url: str, tmp_path: Path) -> None:
    import psycopg

    suffix = uuid.uuid4().hex[:8]
    owner, console = f"cmi_owner_{suffix}", f"cmi_console_{suffix}"
    database = fresh_pg_url.rsplit("/", 1)[1]
    admin_url = fresh_pg_url.replace("postgresql+psycopg://", "postgresql://")
    home = tmp_path / "ws"
    init_workspace(home, admin="root", db=fresh_pg_url).engine.dispose()
    statements = [
        s.replace("cmi_console", console)
        .replace("cmi_owner", owner)
        .replace("DATABASE cmi ", f'DATABASE "{database}" ')
        for s in _documented_sql()
    ]
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for sql in statements:
                conn.execute(sql)
        console_url = fresh_pg_url.replace("//postgres@", f"//{console}@")
        ctx = Context.open(home, console_url, "root")
        registry.create_model(ctx, "team-model")  # cmi works as the console role
        assert verify(ctx).ok
        raw = console_url.replace("postgresql+psycopg://", "postgresql://")
        for sql in ("UPDATE audit_entries SET actor = 'eve'", "DELETE FROM checkpoints"):
            with psycopg.connect(raw) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
        ctx.engine.dispose()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for role in (console, owner):
                conn.execute(f'DROP OWNED BY "{role}"')
        base = PG_URL.replace("postgresql+psycopg://", "postgresql://") if PG_URL else admin_url
        with psycopg.connect(base, autocommit=True) as conn:
            for role in (console, owner):
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_a_database_that_stops_answering_is_exit_75_and_nothing_half_written(
    fresh_pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An outage was an internal error (exit 70, "OperationalError") on the
    line, or bad input (exit 2) when it came before the first query."""
    from conftest import Workspace

    from cmi_console.core.errors import Unavailable

    home = tmp_path / "ws"
    init_workspace(home, admin="root", db=fresh_pg_url).engine.dispose()
    ctx = Context.open(home, fresh_pg_url, "root")
    registry.create_model(ctx, "before")
    ws = Workspace(home, fresh_pg_url, capsys)
    with Outage(fresh_pg_url):
        with pytest.raises(Unavailable, match=r"^database: "):
            registry.list_models(ctx)
        with pytest.raises(Unavailable):
            registry.create_model(ctx, "during")
        r = ws.cli("model", "list")
        assert r.code == 75 and r.err.startswith("cmi: database: cannot reach it (")
        assert len(r.err.strip().splitlines()) == 1
    assert [m["name"] for m in registry.list_models(ctx)] == ["before"]  # the pool reconnects
    registry.create_model(ctx, "after")
    assert verify(ctx).ok


def test_a_writer_stopped_inside_its_write_holds_the_others_only_so_long(
    fresh_pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL waits for a lock for ever by default: one writer stopped
    holding the log's lock (a ^Z, a hung host) held every other writer and
    CI job for good, where SQLite gives up after its busy timeout. The wait
    is bounded the same way now (exit 75, try again)."""
    import threading

    import psycopg

    from cmi_console.core.errors import Unavailable
    from cmi_console.store import engine

    monkeypatch.setattr(engine, "LOCK_WAIT_SECONDS", 2)  # the 60 s, shorter
    home = tmp_path / "ws"
    init_workspace(home, admin="root", db=fresh_pg_url).engine.dispose()
    ctx = Context.open(home, fresh_pg_url, "root")
    holder = psycopg.connect(fresh_pg_url.replace("postgresql+psycopg://", "postgresql://"))
    holder.execute("SELECT pg_advisory_xact_lock(%s)", (engine.LOG_LOCK_KEY,))
    # should the wait be unbounded again, the holder lets go after 30 s: the
    # test then fails instead of holding the suite
    rescue = threading.Timer(30, holder.rollback)
    rescue.start()
    try:
        with pytest.raises(Unavailable, match="another writer has held the log for 2 s"):
            registry.create_model(ctx, "waited")
    finally:
        rescue.cancel()
        holder.rollback()  # the stopped writer goes on: the lock is let go
        holder.close()
    registry.create_model(ctx, "after")
    assert [m["name"] for m in registry.list_models(ctx)] == ["after"]
    assert verify(ctx).ok


async def test_the_console_survives_an_outage_and_says_so(
    fresh_pg_url: str, tmp_path: Path
) -> None:
    """Every worker of the console let the database's error through, and
    Textual ended the app: a server restart closed every reviewer's console."""
    from cmi_console.tui.app import CmiApp
    from cmi_console.tui.dashboard import DashboardScreen

    home = tmp_path / "ws"
    init_workspace(home, admin="root", db=fresh_pg_url).engine.dispose()
    app = CmiApp(Context.open(home, fresh_pg_url, "root"), passphrase=None)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause(1.5)
        with Outage(fresh_pg_url):
            await pilot.press("m")  # a screen that loads while nothing answers
            await pilot.pause(2.5)  # and the poll, every second
            assert app.is_running
            said = [n.message for n in app._notifications]
            assert sum("trying again" in m for m in said) == 1, said  # once, not every second
        await pilot.press("d")
        await pilot.pause(2.5)
        assert isinstance(app.screen, DashboardScreen)
        assert "the database answers again" in [n.message for n in app._notifications]
        registry.create_model(Context.open(home, fresh_pg_url, "root"), "later")
        await pilot.pause(2.5)  # the log grew: the dashboard reloads as before
        assert app.is_running


def test_a_database_lost_while_a_hook_runs_fails_neither_the_write_nor_the_command(
    fresh_pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Deliveries run after the commit; recording one needs the database. Lost
    right then, the command ended in an internal error although its write had
    committed. The write stands, the command succeeds, and the delivery stays
    claimed (`sending`) until its claim expires, then `cmi hooks redeliver
    --failed` sends it."""
    import json
    import sys

    from conftest import Workspace

    from cmi_console.services import hooks

    home = tmp_path / "ws"
    init_workspace(home, admin="root", db=fresh_pg_url).engine.dispose()
    ws = Workspace(home, fresh_pg_url, capsys)
    assert ws.cli("user", "add", "alice", "--role", "developer").code == 0
    assert ws.cli("model", "create", "m", as_="alice").code == 0
    outage = Outage(fresh_pg_url)
    # the hook itself takes the database away, right after the commit (a
    # module that imports psycopg alone, and a long timeout: a loaded machine)
    command = [sys.executable, str(Path(__file__).with_name("pg_outage.py")), fresh_pg_url]
    policy = tmp_path / "m.toml"
    policy.write_text(
        'model = "m"\n[hooks.cut]\nevents = ["version.registered"]\nretries = 1\n'
        f"timeout_seconds = 60\ncommand = {json.dumps(command)}\n"
    )
    assert ws.cli("policy", "activate", str(policy)).code == 0
    art = tmp_path / "m.bin"
    art.write_bytes(b"a model")
    try:
        r = ws.cli("version", "register", "m", "--artifact", str(art), as_="alice")
    finally:
        outage.__exit__()
    assert r.code == 0, r.err
    ctx = Context.open(home, fresh_pg_url, "root")
    assert [v["version"] for v in registry.list_versions(ctx, "m")] == [1]
    (delivery,) = hooks.list_deliveries(ctx)
    assert delivery["status"] == "sending"  # its outcome could not be recorded
    assert verify(ctx).ok


def test_a_host_whose_clock_is_far_off_the_servers_may_not_stamp_the_log(
    fresh_pg_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Entries are never stamped before the one ahead of them, so one host
    two hours ahead would have stamped every host's entries with its time
    for the next two hours. The server's clock is the one a team shares."""
    from conftest import Workspace

    from cmi_console.core import clock
    from cmi_console.core.errors import Unavailable

    home = tmp_path / "ws"
    init_workspace(home, admin="root", db=fresh_pg_url).engine.dispose()
    ws = Workspace(home, fresh_pg_url, capsys)
    before = ws.cli("audit", "log", "-n", "1", "--json").json()[0]

    for off in (timedelta(hours=2, minutes=3), timedelta(minutes=-7)):
        monkeypatch.setattr(clock, "datetime", _shifted(off))
        r = ws.cli("model", "create", "skewed")
        side = "ahead of" if off > timedelta(0) else "behind"
        assert r.code == 75, (r.code, r.err)
        assert r.err.startswith("cmi: this host's clock (") and side in r.err, r.err
        assert "the database server's" in r.err and "set the clock (NTP)" in r.err
        assert len(r.err.strip().splitlines()) == 1
    # the console keeps one Context: after a refusal, once the clock is
    # right, it writes again (the refusal had left it inside a transaction)
    ctx = Context.open(home, fresh_pg_url, "root")
    with pytest.raises(Unavailable, match="this host's clock"):
        registry.create_model(ctx, "skewed")
    monkeypatch.undo()
    assert ws.cli("audit", "log", "-n", "1", "--json").json()[0] == before  # nothing written
    registry.create_model(ctx, "on-time")
    # a few minutes off is a clock drifting, not a wrong one: written, and
    # stamped in order whichever way it is off
    for minutes in (4, -4):
        monkeypatch.setattr(clock, "datetime", _shifted(timedelta(minutes=minutes)))
        assert ws.cli("model", "create", f"drift{minutes + 4}").code == 0
    times = [e["time"] for e in ws.cli("audit", "log", "-n", "5", "--json").json()][::-1]
    assert times == sorted(times)


def _shifted(off: timedelta) -> type[datetime]:
    """datetime, as a host whose clock is `off` from the true time sees it."""

    class Shifted(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) + off

    return Shifted


def test_a_password_in_the_database_urls_query_is_never_written(
    fresh_pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """libpq takes `?password=`: such a URL had been written to
    workspace.json (mode 0644) as given, and `cmi init` printed it. The
    server here trusts local connections, so the password is carried, not
    checked."""
    home = tmp_path / "ws"
    r = Workspace(home, f"{fresh_pg_url}?password=s3cr3t-pw", capsys).cli(
        "init", "--admin", "root", as_=None
    )
    assert r.code == 0 and "s3cr3t-pw" not in r.out + r.err and "password=***" in r.out
    for path in home.rglob("*"):
        if path.is_file():
            assert b"s3cr3t-pw" not in path.read_bytes(), path
    assert "database_url" not in (home / "workspace.json").read_text()


def test_a_command_leaves_no_connection_open_when_it_ends(
    fresh_pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command let its contexts go with their pools' connections open: in
    a process that runs many commands they stayed on the server until the
    garbage collector closed them, unannounced (a ResourceWarning)."""
    import gc

    import psycopg

    home = tmp_path / "ws"
    init_workspace(home, admin="root", db=fresh_pg_url).engine.dispose()
    ws = Workspace(home, fresh_pg_url, capsys)
    database = fresh_pg_url.rsplit("/", 1)[1]
    admin = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    gc.disable()  # the collector must not close them for the command
    try:
        for args in (["model", "create", "m"], ["model", "list"], ["audit", "verify"]):
            r = ws.cli(*args)
            assert r.code == 0, r.err
            with psycopg.connect(admin, autocommit=True) as conn:
                left = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
                ).fetchone()
            assert left == (0,), args
    finally:
        gc.enable()
