"""docs/deploy-team.md on a real PostgreSQL server: the documented roles let
cmi work as the console role, while the log refuses UPDATE and DELETE."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from conftest import PG_URL, REPO

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
