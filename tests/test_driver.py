"""The hot statements run on the DB-API driver (store/driver.py) must read and
write exactly what SQLAlchemy would, inside the caller's transaction, on both
backends."""

from __future__ import annotations

import pytest
from conftest import Workspace
from gate_helpers import ok
from sqlalchemy import bindparam, select

from cmi_console.store import driver
from cmi_console.store.engine import read_transaction, write_transaction
from cmi_console.store.tables import AuditEntry, PolicyRow, Principal, VersionTag, table

POLICIES, PRINCIPALS, TAGS = table(PolicyRow), table(Principal), table(VersionTag)
ENTRIES = table(AuditEntry)
_POLICY = driver.Prepared(select(POLICIES).where(POLICIES.c.scope == bindparam("scope")))
_LAST_TWO = driver.Prepared(select(TAGS.c.id).order_by(TAGS.c.id.desc()).limit(2))
_PRINCIPAL = driver.Prepared(select(PRINCIPALS).where(PRINCIPALS.c.name == bindparam("name")))


def _policy_row(scope: str) -> dict[str, object]:
    return {
        "scope": scope,
        "sha256": "ab" * 32,
        "content": {"gates": {"staging": {"approvals": 2}}, "tiers": ["high", "low"], "x": 0.5},
        "source": "test.toml",
        "active": True,
        "activated_at": "2026-11-29T00:00:00Z",
        "activated_by": "root",
    }


def test_rows_read_back_as_sqlalchemy_reads_them(ws: Workspace) -> None:
    """JSON and boolean columns go through SQLAlchemy's own processors both ways."""
    ctx = ws.ctx()
    row = _policy_row("driver-test")
    with write_transaction(ctx.engine) as conn:
        new_id = driver.insert_row(conn, POLICIES, row)
    with read_transaction(ctx.engine) as conn:
        ours = driver.first(conn, _POLICY, {"scope": "driver-test"})
        theirs = conn.execute(select(POLICIES).where(POLICIES.c.id == new_id)).one()
        admin = driver.first(conn, _PRINCIPAL, {"name": "root"})
    assert ours.id == new_id
    assert ours._mapping == dict(theirs._mapping)
    assert ours.content == row["content"] and ours.active is True
    assert admin.disabled is False  # SQLite stores 0: the result processor makes it a bool


def test_ids_come_back_in_the_order_given_and_limits_apply(populated: Workspace) -> None:
    ctx = populated.ctx()
    rows = [{"version_id": 1, "key": f"k{i:02d}", "value": str(i)} for i in range(12)]
    with write_transaction(ctx.engine) as conn:
        ids = driver.insert_rows(conn, TAGS, rows)
        last_two = [r.id for r in driver.all_rows(conn, _LAST_TWO)]
    assert ids == sorted(ids) and len(set(ids)) == 12
    assert last_two == [ids[-1], ids[-2]]  # LIMIT's literal went in as a default
    with read_transaction(ctx.engine) as conn:
        stored = conn.execute(select(TAGS.c.id, TAGS.c.key).where(TAGS.c.id.in_(ids))).all()
    assert {i: k for i, k in stored} == {i: r["key"] for i, r in zip(ids, rows, strict=True)}


def test_update_and_delete_touch_one_row(populated: Workspace) -> None:
    ctx = populated.ctx()
    with write_transaction(ctx.engine) as conn:
        a, b = driver.insert_rows(
            conn, TAGS, [{"version_id": 1, "key": k, "value": "v"} for k in ("ua", "ub")]
        )
        driver.update_row(conn, TAGS, a, {"value": "changed"})
        driver.delete_row(conn, TAGS, b)
    with read_transaction(ctx.engine) as conn:
        left = dict(
            conn.execute(select(TAGS.c.key, TAGS.c.value).where(TAGS.c.id.in_([a, b]))).all()
        )
    assert left == {"ua": "changed"}


@pytest.mark.parametrize("op", ["update", "delete"])
def test_a_change_to_a_missing_row_fails_the_whole_transaction(
    populated: Workspace, op: str
) -> None:
    """The entry records every change a Tx makes: one that touched no row had
    been recorded all the same, and the log then disagreed with the tables
    (a repeated `--remove` did it: verify reported bad-change)."""
    from cmi_console.services.verify import verify

    ctx = populated.ctx("alice")
    head = ok(populated.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"]
    missing = f"{op} version_tags row 999999: no such row"
    with pytest.raises(driver.NoSuchRow, match=missing), ctx.write() as tx:
        tx.insert(TAGS, {"version_id": 1, "key": "kept", "value": "no"})
        if op == "update":
            tx.update(TAGS, 999_999, {"value": "x"})
        else:
            tx.delete(TAGS, 999_999)
        tx.record("version.tag", "version:cancer:1", {})
    assert ok(populated.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] == head
    assert "kept" not in ok(populated.cli("version", "show", "cancer:1", "--json")).json()["tags"]
    assert verify(populated.ctx()).ok


def test_statements_join_the_callers_transaction(ws: Workspace) -> None:
    """Run on the caller's own connection: a rollback takes them back too."""
    ctx = ws.ctx()
    with pytest.raises(RuntimeError), write_transaction(ctx.engine) as conn:
        driver.insert_row(conn, POLICIES, _policy_row("rolled-back"))
        assert driver.first(conn, _POLICY, {"scope": "rolled-back"}) is not None
        raise RuntimeError("abort")
    with read_transaction(ctx.engine) as conn:
        assert driver.first(conn, _POLICY, {"scope": "rolled-back"}) is None


def test_a_table_keyed_by_its_own_column_returns_no_id(ws: Workspace) -> None:
    """audit_entries is keyed by seq, which the caller gives: nothing to return."""
    ctx = ws.ctx()
    with read_transaction(ctx.engine) as conn:
        genesis = conn.execute(select(ENTRIES).where(ENTRIES.c.seq == 0)).one()
    row = {**genesis._mapping, "seq": 10**6, "prev": "f" * 64, "hash": "e" * 64}
    with write_transaction(ctx.engine) as conn:
        assert driver.insert_row(conn, ENTRIES, row) is None
        assert conn.execute(select(ENTRIES.c.seq).where(ENTRIES.c.seq == 10**6)).scalar() == 10**6
        conn.rollback()  # leave the log as init wrote it
