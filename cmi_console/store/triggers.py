"""Append-only triggers on the log tables, for SQLite and PostgreSQL.

`cmi audit verify` also checks that they are still in place.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

# the tables the triggers keep append-only (named here, so that checking them
# does not build the SQLModel table classes)
LOG_TABLES = ("audit_entries", "checkpoints")


def trigger_names(table: str) -> list[str]:
    return [f"{table}_no_update", f"{table}_no_delete"]


def create_append_only(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        for table in LOG_TABLES:
            for name, op in zip(trigger_names(table), ("UPDATE", "DELETE"), strict=True):
                conn.execute(
                    text(
                        f"CREATE TRIGGER {name} BEFORE {op} ON {table} "
                        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                    )
                )
        return
    conn.execute(
        text(
            "CREATE OR REPLACE FUNCTION cmi_append_only() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
        )
    )
    for table in LOG_TABLES:
        upd, dele = trigger_names(table)
        conn.execute(
            text(
                f"CREATE TRIGGER {upd} BEFORE UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION cmi_append_only()"
            )
        )
        conn.execute(
            text(
                f"CREATE TRIGGER {dele} BEFORE DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION cmi_append_only()"
            )
        )
        conn.execute(
            text(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION cmi_append_only()"
            )
        )


def drop_append_only(conn: Connection) -> None:
    for table in LOG_TABLES:
        names = trigger_names(table)
        if conn.dialect.name == "sqlite":
            for name in names:
                conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
        else:
            for name in [*names, f"{table}_no_truncate"]:
                conn.execute(text(f"DROP TRIGGER IF EXISTS {name} ON {table}"))


def missing_triggers(conn: Connection) -> list[str]:
    if conn.dialect.name == "sqlite":
        rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
    else:
        rows = conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
    present = {r[0] for r in rows}
    return [n for t in LOG_TABLES for n in trigger_names(t) if n not in present]
