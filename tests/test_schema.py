"""Migrations: the head constant, refusing old schemas, upgrading."""

from __future__ import annotations

from conftest import Workspace
from sqlalchemy import text
from sqlalchemy.engine import Engine

from cmi_console.store import schema


def test_head_constant_matches_alembic() -> None:
    assert schema.alembic_head() == schema.HEAD_REVISION


def _behind_cmis_back(ws: Workspace, sql: str) -> Engine:
    """Run `sql` on the workspace's database; its engine, disposed."""
    engine = ws.ctx().engine
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()
    return engine


def test_an_older_schema_is_refused_with_the_fix(ws: Workspace) -> None:
    _behind_cmis_back(ws, "UPDATE alembic_version SET version_num = '0000'")
    r = ws.cli("audit", "log")
    assert r.code == 2 and "run `cmi db upgrade`" in r.err
    r = ws.cli("model", "create", "x")
    assert r.code == 2


def test_a_newer_schema_is_refused_by_every_command_and_by_upgrade(ws: Workspace) -> None:
    _behind_cmis_back(ws, "UPDATE alembic_version SET version_num = '9999'")
    r = ws.cli("audit", "log")
    assert r.code == 2 and "schema revision 9999 is newer than this cmi" in r.err
    # Alembic's "Can't locate revision" had been an internal error
    r = ws.cli("db", "upgrade")
    assert r.code == 2 and "9999 is not one this cmi knows" in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1


def test_tables_without_their_revision_are_refused_not_created_again(ws: Workspace) -> None:
    engine = _behind_cmis_back(ws, "DROP TABLE alembic_version")
    for args in (("audit", "log"), ("db", "upgrade")):
        # upgrade had tried to create the tables again: an internal error
        r = ws.cli(*args)
        assert r.code == 2 and "cmi's tables but no schema revision" in r.err, (args, r.err)
    with engine.connect() as conn:  # the log is still there, untouched
        assert conn.execute(text("SELECT count(*) FROM audit_entries")).scalar() > 0
    engine.dispose()


def test_db_status_and_upgrade(ws: Workspace) -> None:
    r = ws.cli("db", "status")
    assert r.code == 0 and "current" in r.out
    r = ws.cli("db", "upgrade")
    assert r.code == 0 and "already at" in r.out


def test_downgrade_and_upgrade_round_trip(tmp_path, db_url) -> None:  # type: ignore[no-untyped-def]
    from alembic import command
    from alembic.config import Config

    from cmi_console.store.engine import make_engine

    url = db_url or f"sqlite:///{tmp_path / 'x.db'}"
    engine = make_engine(url)
    schema.upgrade(engine)
    cfg = Config()
    cfg.set_main_option("script_location", str(schema.MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert schema.current_revision(engine) is None
    schema.upgrade(engine)
    assert schema.current_revision(engine) == schema.HEAD_REVISION
    engine.dispose()


def test_the_light_log_table_names_real_columns() -> None:
    from cmi_console.services import audit
    from cmi_console.store.tables import AuditEntry, table

    real = table(AuditEntry).c
    assert {c.name for c in audit.E.c} == {c.name for c in real}


def test_a_read_only_command_does_not_build_the_table_classes(ws: Workspace) -> None:
    """`cmi audit log` starts fast because it never imports store.tables."""
    import subprocess
    import sys

    code = (
        "import sys; from cmi_console.cli.app import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print('tables' if 'cmi_console.store.tables' in sys.modules else 'light')"
    )
    argv = ["--home", str(ws.home), *(["--db", ws.db] if ws.db else []), "audit", "log", "-n", "3"]
    out = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().endswith("light"), out


def test_two_upgrades_at_once_both_end_well(ws: Workspace) -> None:
    """A second `cmi db upgrade` started while the first migrated failed
    half-way on SQLite (`database is locked`, an internal error, exit 70).
    Both take the writers' lock: one migrates, the other then finds the
    schema current."""
    import os
    import subprocess
    import sys

    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(schema.MIGRATIONS))
    engine = ws.ctx().engine
    for _ in range(3):
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0002")
        engine.dispose()
        env = {**os.environ, "CMI_HOME": str(ws.home)}
        if ws.db:
            env["CMI_DATABASE_URL"] = ws.db
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "cmi_console", "db", "upgrade"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        said = sorted((p.wait(timeout=120), *p.communicate()) for p in runs)
        assert [code for code, _, _ in said] == [0, 0], said
        outs = sorted(out.strip() for _, out, _ in said)
        assert outs == [
            f"schema already at {schema.HEAD_REVISION}",
            f"schema upgraded from 0002 to {schema.HEAD_REVISION}",
        ], said
    assert schema.current_revision(engine) == schema.HEAD_REVISION
