"""Segregation of duties: every forbidden attempt is refused through the CLI
with exit 3 and a reason that names the rule, and changes nothing."""

from __future__ import annotations

import pytest
from conftest import Result, Workspace
from gate_helpers import add_staff, log_head, ok, ready_for_production, stage_of, to_production


@pytest.fixture
def governed(populated: Workspace) -> Workspace:
    return add_staff(populated)


def refused(ws: Workspace, r: Result, rule: str, before: tuple[int, str]) -> None:
    assert r.code == 3, (r.code, r.out, r.err)
    assert rule in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert log_head(ws) == before, "a refused attempt wrote to the log"


def test_the_author_cannot_approve_their_own_version(governed: Workspace) -> None:
    ws = governed
    ok(ws.cli("role", "grant", "alice", "reviewer"))  # even holding the role
    ready_for_production(ws, 1)
    before = log_head(ws)
    r = ws.cli("approve", "cancer:1", "--to", "production", as_="alice")
    refused(ws, r, "sod.author-cannot-approve", before)


def test_the_trainer_cannot_approve(governed: Workspace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ws = governed
    ok(ws.cli("role", "grant", "carl", "developer"))
    ok(ws.cli("run", "record", "--key", "carl-run", "--params", '{"C": 1}', as_="carl"))
    art = tmp_path / "a.skops"
    art.write_bytes((ws.home / "artifacts").joinpath(*_artifact_path(ws, "cancer:1")).read_bytes())
    ok(
        ws.cli(
            "version",
            "register",
            "cancer",
            "--artifact",
            str(art),
            "--run",
            "carl-run",
            as_="alice",
        )
    )
    ok(ws.cli("validate", "cancer:3", "--suite", "staging", as_="alice"))
    ok(ws.cli("request", "cancer:3", "--to", "staging", as_="alice"))
    ok(ws.cli("role", "grant", "carl", "validator"))
    before = log_head(ws)
    r = ws.cli("approve", "cancer:3", "--to", "staging", as_="carl")
    refused(ws, r, "sod.trainer-cannot-approve", before)


def _artifact_path(ws: Workspace, ref: str) -> list[str]:
    sha = ok(ws.cli("version", "show", ref, "--json")).json()["artifact_sha256"]
    return ["sha256", sha[:2], sha]


def test_whoever_ran_the_validation_cannot_approve(governed: Workspace) -> None:
    ws = governed
    ok(ws.cli("role", "grant", "victor", "reviewer"))
    ready_for_production(ws, 1, validate=False)
    ok(ws.cli("validate", "cancer:1", "--suite", "production", as_="victor"))
    before = log_head(ws)
    r = ws.cli("approve", "cancer:1", "--to", "production", as_="victor")
    refused(ws, r, "sod.validator-cannot-approve", before)


def test_the_same_principal_cannot_approve_twice(governed: Workspace) -> None:
    ws = governed
    ready_for_production(ws, 1)
    ok(ws.cli("approve", "cancer:1", "--to", "production", as_="bob"))
    before = log_head(ws)
    r = ws.cli("approve", "cancer:1", "--to", "production", "--comment", "again", as_="bob")
    refused(ws, r, "sod.one-decision-per-principal", before)
    # the same approval again (a retry) is answered with the one made; it
    # counts once still, and nothing is written
    again = ok(ws.cli("approve", "cancer:1", "--to", "production", as_="bob"))
    assert again.err.startswith("note: you approved cancer:1 to production already")
    assert log_head(ws) == before
    status = ok(ws.cli("gate", "status", "cancer:1", "--to", "production", "--json")).json()
    approvals = [c for c in status["conditions"] if c["condition"] == "approvals:reviewer"]
    assert [c["detail"] for c in approvals] == ["1/1 (bob)"], approvals


def test_one_principal_with_two_roles_counts_once(governed: Workspace) -> None:
    """rita holds reviewer and risk-officer: on a gate needing one of each she
    fills one slot only."""
    ws = governed
    ok(ws.cli("role", "grant", "rita", "reviewer"))
    ok(ws.cli("model", "tier", "cancer", "high", "--reason", "decides about patients", as_="rita"))
    ready_for_production(ws, 1)
    ok(ws.cli("approve", "cancer:1", "--to", "production", as_="rita"))
    status = ws.cli("gate", "status", "cancer:1", "--to", "production", "--json")
    assert status.code == 1
    conds = {c["condition"]: c for c in status.json()["conditions"]}
    met = [
        n for n in ("approvals:reviewer", "approvals:risk-officer") if conds[n]["state"] == "met"
    ]
    assert len(met) == 1
    ok(ws.cli("approve", "cancer:1", "--to", "production", as_="bob"))
    status = ok(ws.cli("gate", "status", "cancer:1", "--to", "production", "--json")).json()
    assert status["passed"]  # bob as reviewer, rita as risk-officer


def test_someone_without_the_required_role_cannot_approve(governed: Workspace) -> None:
    ws = governed
    ready_for_production(ws, 1)
    before = log_head(ws)
    r = ws.cli("approve", "cancer:1", "--to", "production", as_="dora")
    refused(ws, r, "sod.role-required", before)


def test_nobody_grants_a_role_to_themselves(governed: Workspace) -> None:
    ws = governed
    before = log_head(ws)
    r = ws.cli("role", "grant", "sam", "reviewer", as_="sam")
    refused(ws, r, "sod.no-self-grant", before)


def test_a_role_revoked_before_the_decision_does_not_decide(governed: Workspace) -> None:
    ws = governed
    ready_for_production(ws, 1)
    ok(ws.cli("role", "revoke", "bob", "reviewer"))
    before = log_head(ws)
    r = ws.cli("approve", "cancer:1", "--to", "production", as_="bob")
    refused(ws, r, "sod.role-required", before)


def test_an_approval_given_stands_and_an_admins_withdrawal_voids_it(governed: Workspace) -> None:
    """As docs/policies.md says: an approval counts with the roles it was signed
    with, whatever happens to its approver later; withdrawing the request is
    how an admin voids it (a compromised account), and a new request starts
    with no approvals."""
    ws = governed
    ready_for_production(ws, 1)
    ok(ws.cli("approve", "cancer:1", "--to", "production", as_="bob"))
    ok(ws.cli("role", "revoke", "bob", "reviewer"))
    ok(ws.cli("user", "disable", "bob", "--reason", "account compromised", as_="sam"))

    def approvals() -> dict[str, str]:
        r = ws.cli("gate", "status", "cancer:1", "--to", "production", "--json")
        assert r.code in (0, 1), r.err  # 1: the gate does not pass
        g = r.json()
        return {
            c["condition"]: c["state"] for c in g["conditions"] if c["condition"].startswith("appr")
        }

    assert approvals() == {"approvals:reviewer": "met"}
    queue = ok(ws.cli("queue", "--json")).json()
    (request,) = [q["request"] for q in queue if q["version"] == "cancer:1"]
    ok(ws.cli("withdraw", str(request), as_="sam"))  # not the requester: an admin
    # the same withdrawal again (a retry) is answered; another is refused
    head = log_head(ws)
    again = ok(ws.cli("withdraw", str(request), as_="sam"))
    assert again.err == f"note: you withdrew request #{request} already; nothing written\n"
    for args, as_ in ((["--comment", "other"], "sam"), ([], "alice")):
        r = ws.cli("withdraw", str(request), *args, as_=as_)
        assert r.code == 2, r.err
        assert r.err == f"cmi: request {request} is withdrawn by sam, not open\n", r.err
    assert log_head(ws) == head
    ok(ws.cli("request", "cancer:1", "--to", "production", as_="alice"))
    assert approvals() == {"approvals:reviewer": "unmet"}
    assert stage_of(ws, "cancer:1") == "staging"


def test_an_approval_bound_to_an_old_policy_or_artifact_is_refused(governed: Workspace) -> None:
    ws = governed
    ready_for_production(ws, 1)
    before_policy = ok(
        ws.cli("gate", "statement", "cancer:1", "--to", "production", "--json", as_="bob")
    ).json()
    ok(ws.cli("model", "tier", "cancer", "low", "--reason", "internal only", as_="rita"))
    ok(ws.cli("validate", "cancer:1", "--suite", "production", as_="alice"))
    before = log_head(ws)
    r = ws.cli(
        "approve",
        "cancer:1",
        "--to",
        "production",
        "--policy",
        before_policy["policy_sha256"],
        as_="bob",
    )
    refused(ws, r, "stale", before)
    r = ws.cli("approve", "cancer:1", "--to", "production", "--artifact", "ab" * 32, as_="bob")
    refused(ws, r, "stale", before)
    # the short form `gate status` shows was refused as "stale" with two equal
    # values in the message ("you reviewed 3e1c9b2f8217, it is now 3e1c9b2f8217")
    now = ok(ws.cli("gate", "statement", "cancer:1", "--to", "production", "--json", as_="bob"))
    short = now.json()["policy_sha256"][:16]
    r = ws.cli("approve", "cancer:1", "--to", "production", "--policy", short, as_="bob")
    assert r.code == 2 and f"--policy: '{short}' is not a SHA-256 hex digest" in r.err, r.err
    assert log_head(ws) == before


def test_an_approval_goes_stale_when_the_policy_changes(governed: Workspace) -> None:
    ws = governed
    ready_for_production(ws, 1)
    ok(ws.cli("approve", "cancer:1", "--to", "production", as_="bob"))
    ok(ws.cli("model", "tier", "cancer", "low", "--reason", "internal only", as_="rita"))
    ok(ws.cli("validate", "cancer:1", "--suite", "production", as_="alice"))
    status = ws.cli("gate", "status", "cancer:1", "--to", "production", "--json")
    assert status.code == 1
    body = status.json()
    assert body["approvals"][0]["state"] == "stale"
    assert "policy" in body["approvals"][0]["detail"]
    before = log_head(ws)
    r = ws.cli("promote", "cancer:1", "--to", "production", as_="dora")
    refused(ws, r, "approvals:reviewer stale", before)


def test_a_promotion_without_its_validation_is_refused(governed: Workspace) -> None:
    ws = governed
    ready_for_production(ws, 1, validate=False)
    ok(ws.cli("approve", "cancer:1", "--to", "production", as_="bob"))
    before = log_head(ws)
    r = ws.cli("promote", "cancer:1", "--to", "production", as_="dora")
    refused(ws, r, "validation unmet: missing", before)
    assert "validation" in r.out and "missing" in r.out  # the whole list is shown too
    assert stage_of(ws, "cancer:1") == "staging"


def test_a_retired_version_is_never_promoted_again(governed: Workspace) -> None:
    ws = governed
    to_production(ws, 1)
    ok(ws.cli("request", "cancer:1", "--to", "retired", as_="alice"))
    ok(ws.cli("approve", "cancer:1", "--to", "retired", as_="rita"))
    ok(ws.cli("retire", "cancer:1", "--reason", "superseded", as_="dora"))
    before = log_head(ws)
    r = ws.cli("request", "cancer:1", "--to", "staging", as_="alice")
    refused(ws, r, "retired", before)
    r = ws.cli("promote", "cancer:1", "--to", "production", as_="dora")
    refused(ws, r, "retired", before)
    r = ws.cli("break-glass", "cancer:1", "--to", "production", "--reason", "x", as_="root")
    refused(ws, r, "retired", before)


BREAK = ("break-glass", "cancer:1", "--to", "production", "--reason")


def test_a_break_glass_with_one_admin_does_nothing(governed: Workspace) -> None:
    ws = governed
    ready_for_production(ws, 1)
    first = ok(
        ws.cli(
            "break-glass",
            "cancer:1",
            "--to",
            "production",
            "--reason",
            "outage",
            "--json",
            as_="root",
        )
    ).json()
    assert first["status"] == "pending" and first["created"] is True
    before = log_head(ws)
    # the same admin again, other words: a second signature by one admin
    r = ws.cli("break-glass", "cancer:1", "--to", "production", "--reason", "down", as_="root")
    refused(ws, r, "break-glass.two-distinct-admins", before)
    # the same words: a retry, answered with the signature given (it had been
    # refused, exit 3, in the middle of an outage)
    again = ok(ws.cli(*BREAK, "outage", "--json", as_="root"))
    assert again.err.strip() == (
        f"note: break-glass #{first['break_glass']} was signed by you already "
        f"(entry #{before[0]}); nothing written"
    )
    answer = again.json()
    assert answer["created"] is False and answer["status"] == "pending"
    assert answer["signed_by"] == ["root"] and answer["statement"]["comment"] == "outage"
    assert log_head(ws) == before
    assert stage_of(ws, "cancer:1") == "staging"
    r = ws.cli("break-glass", "cancer:1", "--to", "production", "--reason", "outage", as_="bob")
    refused(ws, r, "admin", before)


def test_a_break_glass_retried_after_it_executed_is_answered(governed: Workspace) -> None:
    """An executed break-glass run again by an admin who signed it, with the
    words they signed, was refused (exit 3, "already in production"): the
    retry of a command whose first try had committed."""
    ws = governed
    ready_for_production(ws, 1)
    ok(ws.cli(*BREAK, "outage", as_="root"))
    done = ok(ws.cli(*BREAK, "outage", "--json", as_="sam")).json()
    assert done["status"] == "executed" and done["created"] is True
    before = log_head(ws)
    for admin in ("sam", "root"):  # the executor, and the first signer
        r = ok(ws.cli(*BREAK, "outage", as_=admin))
        assert r.err.strip() == (
            f"note: break-glass #{done['break_glass']} was executed already "
            f"(entry #{before[0] - 1}); nothing written"
        ), r.err
        assert r.out.strip() == (
            f"break-glass #{done['break_glass']} executed by root, sam: cancer:1 is in "
            f"production; incident #{done['incident']} opened"
        )
    assert log_head(ws) == before
    # other words, or another admin, are not a retry: the gate refuses them
    r = ws.cli(*BREAK, "another outage", as_="sam")
    refused(ws, r, "already in production", before)
    r = ws.cli(*BREAK, "outage", as_="carl")
    assert r.code == 3 and log_head(ws) == before
