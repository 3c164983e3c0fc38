"""Schema version checks and Alembic upgrades.

The head revision is a constant so that read commands can check the schema
without importing Alembic (a test keeps it equal to the migration head).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DatabaseError, InterfaceError, OperationalError, ProgrammingError

from cmi_console.core.errors import BadInput, SchemaOutdated, Unavailable, first_line

HEAD_REVISION = "0006"
MIGRATIONS = Path(__file__).with_name("migrations")


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return _revision(conn)


def _revision(conn: Connection) -> str | None:
    try:
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    except (OperationalError, ProgrammingError):
        return None
    return row[0] if row else None


def require_current(engine: Engine) -> None:
    """Refuse to run on a database whose schema is not this program's."""
    try:
        rev = current_revision(engine)
    except (OperationalError, InterfaceError) as exc:  # down, unreachable, locked: try again
        raise Unavailable(f"database: cannot reach it ({first_line(exc.orig or exc)})") from None
    except DatabaseError as exc:  # e.g. a file that is no SQLite database at all
        raise BadInput(f"database: cannot open ({exc.orig})") from None
    if rev == HEAD_REVISION:
        return
    if rev is None:
        _refuse_unrevisioned(engine)
        raise BadInput("database: no cmi schema here; run `cmi init` (or `cmi db upgrade`)")
    if rev < HEAD_REVISION:
        raise SchemaOutdated(
            f"database: schema is at revision {rev}, this cmi needs {HEAD_REVISION}; "
            "run `cmi db upgrade`"
        )
    raise BadInput(f"database: schema revision {rev} is newer than this cmi ({HEAD_REVISION})")


def upgrade(engine: Engine, target: str = "head") -> tuple[str | None, str | None]:
    """Run pending migrations in one transaction. Returns (before, after)."""
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from cmi_console.store.engine import refresh_statistics, refuse_read_only, write_transaction

    refuse_read_only(engine)
    before = current_revision(engine)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if before is None:
        _refuse_unrevisioned(engine)
    else:
        try:
            ScriptDirectory.from_config(cfg).get_revision(before)
        except CommandError:  # Alembic's "Can't locate revision": an internal error
            raise BadInput(
                f"database: schema revision {before} is not one this cmi knows (it knows up "
                f"to {HEAD_REVISION}); a newer cmi wrote it: use that one"
            ) from None
    # under the writers' lock (SQLite's BEGIN IMMEDIATE, PostgreSQL's log
    # lock), and the revision read again under it: two upgrades at once had
    # left one failed half-way ("database is locked", an internal error on
    # SQLite); the second now waits, then finds the schema current
    with write_transaction(engine) as conn:
        # asked of the catalog: a failed SELECT aborts a PostgreSQL transaction
        before = _revision(conn) if inspect(conn).has_table("alembic_version") else None
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, target)
    refresh_statistics(engine)
    return before, current_revision(engine)


def _refuse_unrevisioned(engine: Engine) -> None:
    """cmi's tables without Alembic's record of their revision: creating the
    schema again failed as an internal error, and nothing says which
    migrations the tables have had."""
    if "audit_entries" in inspect(engine).get_table_names():
        raise BadInput(
            "database: it holds cmi's tables but no schema revision (the alembic_version "
            "table is missing); restore it from a backup"
        )


def alembic_head() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


def has_tables(engine: Engine) -> bool:
    return bool(inspect(engine).get_table_names())
