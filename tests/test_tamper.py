"""The tamper suite: each attack on the database is caught by `cmi audit verify`
with exit 4, and the finding names the entry or row (DESIGN.md invariants 2-6)."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
import tamper
from conftest import Workspace
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError


@pytest.fixture(params=["one-process", "workers"])
def scan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The attacks on entries, caught both ways the log is scanned: in one
    process, and by worker processes over 4-entry chunks (when the seqs are
    dense; otherwise verify falls back to the one-process scan by itself)."""
    if request.param == "workers":
        from cmi_console.services import verify

        monkeypatch.setattr(verify, "CHUNK", 4)
        monkeypatch.setattr(verify, "PARALLEL_FROM", 0)
    monkeypatch.setenv("CMI_VERIFY_WORKERS", "2" if request.param == "workers" else "1")
    return str(request.param)


@pytest.fixture(params=[20_000, 2])
def state_batch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Registry rows are compared with the log a batch at a time: all in one
    batch, and in batches of two (a bad row among clean batches)."""
    from cmi_console.services import verify

    monkeypatch.setattr(verify, "STATE_BATCH", request.param)
    return int(request.param)


def findings(ws: Workspace) -> list[dict[str, Any]]:
    r = ws.cli("audit", "verify", "--json")
    assert r.code == 4, r.out + r.err
    report = r.json()
    assert not report["ok"]
    return report["findings"]


def first(ws: Workspace) -> dict[str, Any]:
    return findings(ws)[0]


def test_clean_log_verifies(populated: Workspace, scan: str) -> None:
    r = populated.cli("audit", "verify", "--json")
    assert r.code == 0, r.err
    report = r.json()
    assert report["workers"] == (2 if scan == "workers" else 1)
    assert report["ok"] and report["entries"] >= 7 and report["signatures"] >= 3
    assert report["covered"] == report["entries"] == report["witness_size"]


def test_update_and_delete_on_the_log_are_refused_by_the_database(populated: Workspace) -> None:
    ctx = populated.ctx()
    for sql in (
        "UPDATE audit_entries SET actor = 'eve' WHERE seq = 1",
        "DELETE FROM audit_entries WHERE seq = 1",
        "UPDATE checkpoints SET size = 0",
        "DELETE FROM checkpoints",
    ):
        with pytest.raises(DBAPIError, match="append-only"), ctx.engine.begin() as conn:
            conn.execute(text(sql))
    ctx.engine.dispose()
    assert populated.cli("audit", "verify").code == 0


@pytest.mark.usefixtures("scan")
def test_edited_payload(populated: Workspace) -> None:
    b = tamper.rows(populated)[4].body
    assert b'"cancer"' in bytes(b)
    forged = bytes(b).replace(b'"cancer"', b'"cancer2"', 1)
    tamper.raw(populated, ("UPDATE audit_entries SET body = :b WHERE seq = 4", {"b": forged}))
    f = first(populated)
    assert (f["kind"], f["seq"]) == ("hash-mismatch", 4)


@pytest.mark.usefixtures("scan")
def test_edited_actor_column(populated: Workspace) -> None:
    tamper.raw(populated, ("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 4", {}))
    f = first(populated)
    assert (f["kind"], f["seq"]) == ("column-mismatch", 4) and "actor" in f["message"]


@pytest.mark.usefixtures("scan")
def test_edited_actor_inside_the_entry(populated: Workspace) -> None:
    b = tamper.rows(populated)[5].body
    tamper.raw(
        populated,
        (
            "UPDATE audit_entries SET body = :b WHERE seq = 5",
            {"b": bytes(b).replace(b'"actor":"alice"', b'"actor":"bob"')},
        ),
    )
    f = first(populated)
    assert f["seq"] == 5 and f["kind"] in {"hash-mismatch", "column-mismatch"}


@pytest.mark.usefixtures("scan")
def test_deleted_middle_entry(populated: Workspace) -> None:
    tamper.raw(populated, ("DELETE FROM audit_entries WHERE seq = 3", {}))
    f = first(populated)
    assert (f["kind"], f["seq"]) == ("entry-missing", 3)


@pytest.mark.usefixtures("scan")
def test_deleted_tail_is_caught_by_the_checkpoint(populated: Workspace) -> None:
    n = len(tamper.rows(populated))
    tamper.raw(populated, ("DELETE FROM audit_entries WHERE seq >= :s", {"s": n - 2}))
    kinds = {(f["kind"], f.get("seq")) for f in findings(populated)}
    assert ("log-truncated", n - 2) in kinds


@pytest.mark.usefixtures("scan")
def test_deleted_tail_and_checkpoints_is_caught_by_the_witness(populated: Workspace) -> None:
    n = len(tamper.rows(populated))
    tamper.raw(
        populated,
        ("DELETE FROM audit_entries WHERE seq >= :s", {"s": n - 2}),
        ("DELETE FROM checkpoints WHERE size > :s", {"s": n - 2}),
    )
    f = first(populated)
    assert (f["kind"], f["seq"]) == ("log-truncated", n - 2) and "witness" in f["message"]


@pytest.mark.usefixtures("scan")
def test_forged_entry_appended_with_a_valid_chain(populated: Workspace) -> None:
    seq = tamper.append_forged(populated, "model.create", [])
    kinds = {(f["kind"], f.get("seq")) for f in findings(populated)}
    assert ("unsealed-entries", seq) in kinds


@pytest.mark.usefixtures("scan")
def test_forged_decision_with_a_wrong_key(populated: Workspace) -> None:
    from cmi_console.core import keys

    seq = tamper.append_forged(
        populated,
        "role.grant",
        [],
        sig={
            "alg": "ed25519",
            "key": keys.key_id(keys.public_raw(keys.generate())),
            "value": "AAAA",
        },
    )
    kinds = {(f["kind"], f.get("seq")) for f in findings(populated)}
    assert ("signature-invalid", seq) in kinds


@pytest.mark.usefixtures("scan")
def test_forged_decision_without_signature(populated: Workspace) -> None:
    seq = tamper.append_forged(populated, "role.grant", [])
    kinds = {(f["kind"], f.get("seq")) for f in findings(populated)}
    assert ("signature-missing", seq) in kinds


@pytest.mark.usefixtures("scan")
def test_reordered_entries(populated: Workspace) -> None:
    r = tamper.rows(populated)
    a, b = r[3], r[4]
    tamper.raw(
        populated,
        ("UPDATE audit_entries SET prev = 'x3', hash = 'y3' WHERE seq = 3", {}),
        (
            "UPDATE audit_entries SET body = :b, hash = :h, prev = :p WHERE seq = 4",
            {"b": bytes(a.body), "h": a.hash, "p": a.prev},
        ),
        (
            "UPDATE audit_entries SET body = :b, hash = :h, prev = :p WHERE seq = 3",
            {"b": bytes(b.body), "h": b.hash, "p": b.prev},
        ),
    )
    f = first(populated)
    assert (f["kind"], f["seq"]) == ("chain-broken", 3)


@pytest.mark.usefixtures("scan")
def test_rewritten_history_with_recomputed_hashes(populated: Workspace) -> None:
    def edit(obj: dict[str, Any]) -> None:
        obj["data"]["rows"] = 1

    tamper.rewrite_from(populated, 4, edit)
    kinds = [(f["kind"], f.get("seq")) for f in findings(populated)]
    # the chain is consistent again; the signed checkpoint that covered entry 4 is not
    assert not any(k == "chain-broken" for k, _ in kinds)
    assert ("checkpoint-mismatch", 4) in kinds
    assert any(k == "witness-mismatch" for k, _ in kinds)


@pytest.mark.usefixtures("scan")
def test_database_restored_from_an_older_copy(populated: Workspace, tmp_path: Any) -> None:
    if populated.db:
        pytest.skip(
            "file copy is the SQLite form of this attack; see the tail tests for PostgreSQL"
        )
    import sqlite3

    old = tmp_path / "old.db"
    src = sqlite3.connect(populated.sqlite_path)
    src.execute("VACUUM INTO ?", (str(old),))
    src.close()
    assert populated.cli("alias", "set", "cancer", "champion", "2", as_="alice").code == 0
    for suffix in ("", "-wal", "-shm"):
        populated.sqlite_path.with_name("cmi.db" + suffix).unlink(missing_ok=True)
    shutil.copy(old, populated.sqlite_path)
    f = first(populated)
    assert f["kind"] == "log-truncated" and "witness" in f["message"]


@pytest.mark.usefixtures("state_batch")
def test_registry_row_edited_directly(populated: Workspace) -> None:
    tamper.raw(populated, ("UPDATE model_versions SET stage = 'production' WHERE version = 2", {}))
    f = first(populated)
    assert (f["kind"], f["table"]) == ("row-modified", "model_versions") and "stage" in f["message"]


@pytest.mark.usefixtures("state_batch")
def test_metric_edited_directly(populated: Workspace) -> None:
    tamper.raw(populated, ("UPDATE version_metrics SET value = 0.999", {}))
    f = first(populated)
    assert (f["kind"], f["table"]) == ("row-modified", "version_metrics")


@pytest.mark.usefixtures("state_batch")
def test_decision_row_inserted_without_signature(populated: Workspace) -> None:
    tamper.raw(
        populated,
        (
            "INSERT INTO role_grants (principal_id, role, granted_by, granted_at) "
            "SELECT id, 'admin', 'root', '2030-01-01T00:00:00.000000Z' "
            "FROM principals WHERE name = 'alice'",
            {},
        ),
    )
    f = first(populated)
    assert (f["kind"], f["table"]) == ("row-not-in-log", "role_grants")


@pytest.mark.usefixtures("state_batch")
def test_clean_registry_counts_every_row(populated: Workspace) -> None:
    from cmi_console.store.tables import REGISTRY_TABLES

    r = populated.cli("audit", "verify", "--json")
    assert r.code == 0, r.err
    ctx = populated.ctx()
    with ctx.read() as conn:
        total = sum(
            conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one()  # noqa: S608
            for name in REGISTRY_TABLES
        )
    assert r.json()["rows"] == total > 10


@pytest.mark.usefixtures("state_batch")
def test_middle_row_deleted_is_the_only_finding(populated: Workspace) -> None:
    # every row after it shifts by one: none of them may be reported
    ctx = populated.ctx()
    with ctx.read() as conn:
        ids = [r[0] for r in conn.exec_driver_sql("SELECT id FROM version_tags ORDER BY id")]
    assert len(ids) >= 4
    gone = ids[-2]  # after at least one clean batch of two
    tamper.raw(populated, ("DELETE FROM version_tags WHERE id = :id", {"id": gone}))
    found = findings(populated)
    assert [(f["kind"], f["table"], f["row_id"]) for f in found] == [
        ("row-missing", "version_tags", gone)
    ]


@pytest.mark.usefixtures("state_batch")
def test_json_column_edited_directly(populated: Workspace) -> None:
    # SQLite stores JSON as text, PostgreSQL as json: both are read back as values
    tamper.raw(populated, ("UPDATE datasets SET columns = '[]'", {}))
    f = first(populated)
    assert (f["kind"], f["table"]) == ("row-modified", "datasets") and "columns" in f["message"]


def test_a_boolean_column_holding_another_integer_is_named(populated: Workspace) -> None:
    # SQLite stores any integer in a BOOLEAN column; 2 reads as true through an
    # ORM, but it is not what the log wrote
    if populated.db:
        pytest.skip("PostgreSQL's boolean holds only true and false")
    tamper.raw(populated, ("UPDATE policies SET active = 2 WHERE active = 1", {}))
    f = first(populated)
    assert (f["kind"], f["table"]) == ("row-modified", "policies") and "active" in f["message"]


@pytest.mark.usefixtures("state_batch")
def test_registry_row_deleted(populated: Workspace) -> None:
    tamper.raw(populated, ("DELETE FROM version_tags WHERE key = 'team'", {}))
    f = first(populated)
    assert (f["kind"], f["table"]) == ("row-missing", "version_tags")


def test_dropped_trigger_is_reported(populated: Workspace) -> None:
    ctx = populated.ctx()
    with ctx.engine.begin() as conn:
        if populated.db:
            conn.exec_driver_sql("DROP TRIGGER audit_entries_no_delete ON audit_entries")
        else:
            conn.exec_driver_sql("DROP TRIGGER audit_entries_no_delete")
    ctx.engine.dispose()
    f = first(populated)
    assert f["kind"] == "trigger-missing" and "audit_entries_no_delete" in f["message"]


def test_human_report_names_the_first_fault(populated: Workspace) -> None:
    tamper.raw(populated, ("DELETE FROM audit_entries WHERE seq = 3", {}))
    r = populated.cli("audit", "verify")
    assert r.code == 4
    assert (
        r.err.splitlines()[0]
        == "integrity violation: entry-missing: entry 3: expected entry 3, found 4"
    )


def test_a_torn_witness_slot_is_tolerated_while_the_other_verifies(
    populated: Workspace,
) -> None:
    slots = sorted((populated.home / "witness").glob("checkpoint.*"))
    newest = max(slots, key=lambda p: int(p.read_text().split("\n")[1]))
    newest.write_bytes(newest.read_bytes()[:40])  # a crash tore the last write
    r = populated.cli("audit", "verify", "--json")
    assert r.code == 0, r.out
    assert r.json()["witness_size"] == r.json()["entries"] - 1


def test_a_witness_with_no_valid_slot_is_reported(populated: Workspace) -> None:
    for slot in (populated.home / "witness").glob("checkpoint.*"):
        slot.write_text("cmi/forged\n999\nAAAA\n\n— forged sig\n")
    f = first(populated)
    assert f["kind"] == "witness-invalid"


@pytest.mark.usefixtures("scan")
def test_hostile_changes_are_findings_not_a_crash(populated: Workspace) -> None:
    # an attacker who recomputes the hashes can put anything in `changes`
    tamper.rewrite_from(populated, 7, lambda obj: obj.update(changes={}))
    tamper.rewrite_from(populated, 6, lambda obj: obj.update(changes=[[1], {"t": "models"}]))
    tamper.rewrite_from(populated, 5, lambda obj: obj.update(changes="nope"))
    kinds = {(f["kind"], f.get("seq")) for f in findings(populated)}
    bad = {("bad-change", 5), ("bad-change", 6), ("bad-change", 7)}
    assert bad | {("checkpoint-mismatch", 5)} <= kinds


@pytest.mark.usefixtures("scan")
@pytest.mark.parametrize(
    "field, value",
    [
        ("action", ["role.grant"]),  # unhashable: a set lookup raised
        ("action", {"a": 1}),
        ("actor", ["root"]),
        ("sig", "x"),
        ("sig", {"alg": "ed25519", "key": ["k"], "value": 5}),
        ("data", [1, 2]),
        ("seq", "seven"),
        ("time", 5),
        ("subject", None),
    ],
)
def test_hostile_entry_fields_are_findings_not_a_crash(
    populated: Workspace, field: str, value: Any
) -> None:
    # an attacker who recomputes the hashes can put any JSON in any field
    tamper.rewrite_from(populated, 5, lambda obj: obj.update({field: value}))
    r = populated.cli("audit", "verify", "--json")
    assert r.code == 4, r.out + r.err
    assert any(f.get("seq") == 5 for f in r.json()["findings"])


@pytest.mark.usefixtures("scan")
def test_a_forged_decision_no_signer_could_have_made_is_a_finding(populated: Workspace) -> None:
    # canonical JSON writes 2**60 as an integer that has no canonical form once
    # read back: the signed message could not be built, and verify crashed
    tamper.rewrite_from(populated, 2, lambda obj: obj["data"].update(big=float(2**60)))
    kinds = {(f["kind"], f.get("seq")) for f in findings(populated)}
    assert ("signature-invalid", 2) in kinds


@pytest.mark.parametrize("roles", [[["reviewer"]], 5, {"reviewer": 1}])
def test_a_statement_whose_roles_are_not_names_is_a_finding(
    populated: Workspace, roles: Any
) -> None:
    from gate_helpers import add_staff, to_staging

    to_staging(add_staff(populated), 1)
    seq = next(
        r.seq
        for r in tamper.rows(populated)
        if "statement" in (tamper.body(populated, r.seq).get("data") or {})
    )
    tamper.rewrite_from(populated, seq, lambda obj: obj["data"]["statement"].update(roles=roles))
    kinds = {(f["kind"], f.get("seq")) for f in findings(populated)}
    assert ("statement-invalid", seq) in kinds


# any JSON a forger may put where verify expects another kind of value
# (canonical JSON writes 2**60 as an integer that cannot be written back)
FORGED_SHAPES: list[Any] = [None, [], {}, "x", -1, float(2**60), 1.5, [[]], {"a": {}}, True]


def _forgeries(entry: dict[str, Any]) -> list[tuple[str, Any]]:
    """(label, edit) for every field of the entry, and one level down, replaced
    by every shape."""
    out = []
    for k, value in sorted(entry.items()):
        if k == "prev":  # rewrite_from sets it, as the careful attacker does
            continue
        out += [(k, (k, None, s)) for s in FORGED_SHAPES if s != value]
        inner = value[0] if isinstance(value, list) and value else value
        if isinstance(inner, dict):
            out += [
                (f"{k}.{j}", (k, j, s))
                for j in sorted(inner)
                for s in FORGED_SHAPES
                if s != inner[j]
            ]
    return out


def _forge(obj: dict[str, Any], edit: tuple[str, str | None, Any]) -> None:
    key, sub, shape = edit
    if sub is None:
        obj[key] = shape
    elif isinstance(obj[key], list):
        obj[key][0] = {**obj[key][0], sub: shape}
    else:
        obj[key] = {**obj[key], sub: shape}


def test_any_forged_field_is_a_finding_never_a_crash(
    populated: Workspace, tmp_path: Any, db_url: str | None
) -> None:
    if db_url is not None:
        pytest.skip("the SQLite file is copied back between forgeries; the checks are the same")
    import sqlite3

    from cmi_console.services.verify import verify

    def copy(source: Any, target: Any) -> None:
        # through SQLite's backup API: other connections of this process stay valid
        with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
            src.backup(dst)

    db = populated.sqlite_path
    pristine = tmp_path / "pristine.db"
    copy(db, pristine)
    # a signed decision (a user added, with its key) and a registration's changes
    cases = [(seq, *f) for seq in (2, 6) for f in _forgeries(tamper.body(populated, seq))]
    assert len(cases) > 150
    crashed = []
    for seq, label, edit in cases:
        copy(pristine, db)
        tamper.rewrite_from(populated, seq, lambda obj, edit=edit: _forge(obj, edit))
        ctx = populated.ctx()
        try:
            report = verify(ctx, workers=1)
        except Exception as exc:  # noqa: BLE001 - the point is that nothing escapes
            crashed.append(f"entry {seq} {label}: {type(exc).__name__}: {exc}")
            continue
        finally:
            ctx.engine.dispose()
        assert not report.ok, (seq, label)
    assert crashed == [], "\n".join(crashed)
