"""Forged approvals: rows written around the service, with no signature or
one from the wrong key, never count, and `cmi audit verify` names them."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Workspace
from gate_helpers import add_staff, log_head, ok, ready_for_production
from sqlalchemy import insert, select

from cmi_console.core import keys, statements
from cmi_console.services.registry import VERSIONS
from cmi_console.store.tables import Decision, table

DECISIONS = table(Decision)


@pytest.fixture
def pending(populated: Workspace) -> Workspace:
    ws = add_staff(populated)
    ready_for_production(ws, 1)
    return ws


def forge(ws: Workspace, principal: str, key_id: str, signature: str, **edit: Any) -> None:
    """What someone with write access to the database, but not bob's key, can do."""
    statement = ok(
        ws.cli("gate", "statement", "cancer:1", "--to", "production", "--json", as_="bob")
    ).json()
    statement.update(edit)
    ctx = ws.ctx()
    with ctx.engine.begin() as conn:
        vid = conn.execute(select(VERSIONS.c.id).where(VERSIONS.c.version == 1)).scalar_one()
        conn.execute(
            insert(DECISIONS).values(
                request_id=statement["request"],
                version_id=vid,
                principal=principal,
                decision="approve",
                statement=statement,
                key_id=key_id,
                signature=signature if signature != "SIGN" else _sign_as(ws, "carl", statement),
                created_at=statement["time"],
            )
        )
    ctx.engine.dispose()


def _sign_as(ws: Workspace, who: str, statement: dict[str, Any]) -> str:
    private = keys.load_private((ws.home / "keys" / f"{who}.key").read_bytes(), None, who)
    return statements.sign(private, statement)


def _key_id(ws: Workspace, who: str) -> str:
    return ok(ws.cli("user", "show", who, "--json")).json()["key_ids"][0]


def assert_not_counted(ws: Workspace, why: str) -> None:
    status = ws.cli("gate", "status", "cancer:1", "--to", "production", "--json")
    assert status.code == 1
    body = status.json()
    assert body["approvals"][0]["state"] == "invalid"
    assert why in body["approvals"][0]["detail"]
    conds = {c["condition"]: c["state"] for c in body["conditions"]}
    assert conds["approvals:reviewer"] == "unmet"
    before = log_head(ws)
    r = ws.cli("promote", "cancer:1", "--to", "production", as_="dora")
    assert r.code == 3 and log_head(ws) == before
    verify = ws.cli("audit", "verify", "--json")
    assert verify.code == 4
    kinds = {(f["kind"], f.get("table")) for f in verify.json()["findings"]}
    assert ("row-not-in-log", "decisions") in kinds


def test_an_unsigned_approval_row_does_not_count(pending: Workspace) -> None:
    forge(pending, "bob", _key_id(pending, "bob"), "")
    assert_not_counted(pending, "does not verify")


def test_an_approval_signed_with_another_key_does_not_count(pending: Workspace) -> None:
    forge(pending, "bob", _key_id(pending, "carl"), "SIGN")
    assert_not_counted(pending, "signed with carl's key, not bob's")


def test_an_approval_claiming_bobs_key_but_signed_by_carl_does_not_count(
    pending: Workspace,
) -> None:
    forge(pending, "bob", _key_id(pending, "bob"), "SIGN")
    assert_not_counted(pending, "does not verify")


def test_a_genuine_approval_whose_statement_is_edited_does_not_count(
    pending: Workspace,
) -> None:
    ws = pending
    ok(ws.cli("approve", "cancer:1", "--to", "production", "--comment", "ok", as_="bob"))
    from sqlalchemy import update

    ctx = ws.ctx()
    with ctx.engine.begin() as conn:
        row = conn.execute(select(DECISIONS).where(DECISIONS.c.principal == "bob")).one()
        edited = {**row.statement, "comment": "ok, and approved for every version"}
        conn.execute(update(DECISIONS).where(DECISIONS.c.id == row.id).values(statement=edited))
    ctx.engine.dispose()
    assert_edited = ws.cli("gate", "status", "cancer:1", "--to", "production", "--json").json()
    assert assert_edited["approvals"][0]["state"] == "invalid"
    verify = ws.cli("audit", "verify", "--json").json()
    assert ("row-modified", "decisions") in {
        (f["kind"], f.get("table")) for f in verify["findings"]
    }
