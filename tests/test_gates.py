"""Stage gates through the CLI: requests, signed decisions, gate status,
promotion, exclusivity, retirement, break-glass, queue and races."""

from __future__ import annotations

import pytest
from conftest import Workspace
from gate_helpers import add_staff, ok, race, ready_for_production, stage_of, to_production

from cmi_console.core import clock, keys, statements
from cmi_console.services import gates


@pytest.fixture
def governed(populated: Workspace) -> Workspace:
    return add_staff(populated)


def test_full_path_to_production_is_signed_and_verifies(governed: Workspace) -> None:
    ws = governed
    ready_for_production(ws, 1)
    status = ws.cli("gate", "status", "cancer:1", "--to", "production", "--json")
    assert status.code == 1
    states = {c["condition"]: c["state"] for c in status.json()["conditions"]}
    assert states == {
        "transition": "met",
        "request": "met",
        "validation": "met",
        "approvals:reviewer": "unmet",
    }
    approval = ok(
        ws.cli(
            "approve", "cancer:1", "--to", "production", "--comment", "lgtm", "--json", as_="bob"
        )
    ).json()
    assert approval["gate"] == {"passed": True, "blocking": []}  # the gate now, in the answer
    st = approval["statement"]
    version = ok(ws.cli("version", "show", "cancer:1", "--json")).json()
    assert st["artifact_sha256"] == version["artifact_sha256"]
    assert st["decision"] == "approve" and st["to_stage"] == "production"
    assert st["roles"] == ["reviewer"] and st["comment"] == "lgtm"
    policy = ok(ws.cli("policy", "show", "cancer", "--json")).json()
    assert st["policy_sha256"] == policy["sha256"]
    runs = ok(ws.cli("validation", "list", "cancer:1", "--json")).json()
    assert st["validation_sha256"] == runs[-1]["result_sha256"]
    # the statement verifies on its own, with nothing but bob's public key
    bob_key = (ws.home / "keys" / "bob.pub").read_text().strip()
    assert statements.verify(keys.unb64(bob_key, "k"), st, approval["signature"])
    assert not statements.verify(
        keys.unb64(bob_key, "k"), {**st, "comment": "x"}, approval["signature"]
    )

    assert ok(ws.cli("gate", "status", "cancer:1", "--to", "production", "--json")).json()["passed"]
    promoted = ok(ws.cli("promote", "cancer:1", "--to", "production", "--json", as_="dora"))
    assert promoted.json()["stage"] == "production"
    assert stage_of(ws, "cancer:1") == "production"
    entry = ok(ws.cli("audit", "log", "-n", "1", "--json")).json()[0]
    assert entry["action"] == "gate.promote" and entry["sig"]["alg"] == "ed25519"
    assert ok(ws.cli("audit", "verify")).code == 0


def test_an_approval_says_what_the_gate_needs_now(governed: Workspace) -> None:
    """`cmi approve` printed the signed statement and nothing of the gate:
    the reviewer's next question (does it pass now? what is still missing?)
    needed another command."""
    ws = governed
    ready_for_production(ws, 1, validate=False)
    r = ok(ws.cli("approve", "cancer:1", "--to", "production", "--comment", "ok", as_="bob"))
    assert r.out.strip().splitlines()[-1] == (
        "gate cancer:1 -> production: still blocked by validation (missing: suite "
        "'production' has not run on it)"
    )
    ok(ws.cli("validate", "cancer:1", "--suite", "production", as_="alice"))
    # the same approval again (a retry) is answered, with the gate as it is now
    r = ok(ws.cli("approve", "cancer:1", "--to", "production", "--comment", "ok", as_="bob"))
    assert r.out.strip().splitlines()[-1] == (
        "gate cancer:1 -> production: passes; a promoter may run "
        "`cmi promote cancer:1 --to production`"
    )
    # a rejection closes the request: no gate to speak of
    ok(ws.cli("request", "cancer:2", "--to", "staging", as_="alice"))
    r = ok(
        ws.cli("reject", "cancer:2", "--to", "staging", "--comment", "no", "--json", as_="victor")
    )
    assert "gate" not in r.json()


def test_only_promoters_promote(governed: Workspace) -> None:
    ws = governed
    ready_for_production(ws, 1)
    ok(ws.cli("approve", "cancer:1", "--to", "production", as_="bob"))
    r = ws.cli("promote", "cancer:1", "--to", "production", as_="alice")
    assert r.code == 3 and "deployer" in r.err


def test_one_production_version_the_previous_is_archived(governed: Workspace) -> None:
    ws = governed
    to_production(ws, 1)
    to_production(ws, 2)
    assert stage_of(ws, "cancer:1") == "archived"
    assert stage_of(ws, "cancer:2") == "production"
    listed = ok(ws.cli("version", "list", "cancer", "--stage", "production", "--json")).json()
    assert [v["version"] for v in listed] == [2]
    log = ok(ws.cli("audit", "log", "-n", "2", "--json")).json()
    assert [e["action"] for e in log] == ["gate.promote", "version.archive"]
    assert log[1]["data"]["superseded_by"] == 2
    assert ok(ws.cli("audit", "verify")).code == 0


def test_a_transition_the_policy_does_not_allow_is_refused(governed: Workspace) -> None:
    r = governed.cli("request", "cancer:1", "--to", "production", as_="alice")
    assert r.code == 3 and "development -> production is not allowed" in r.err


def test_reject_needs_a_comment_and_closes_the_request(governed: Workspace) -> None:
    ws = governed
    ready_for_production(ws, 1)
    r = ws.cli("reject", "cancer:1", "--to", "production", "--comment", " ", as_="bob")
    assert r.code == 2 and "comment" in r.err
    ok(ws.cli("reject", "cancer:1", "--to", "production", "--comment", "AUC too low", as_="bob"))
    assert ok(ws.cli("queue", "--json")).json() == []
    status = ws.cli("gate", "status", "cancer:1", "--to", "production", "--json").json()
    assert {c["condition"]: c["state"] for c in status["conditions"]}["request"] == "unmet"
    r = ws.cli("approve", "cancer:1", "--to", "production", as_="carl")
    assert r.code == 2 and "no open request" in r.err
    entry = ok(ws.cli("audit", "log", "-n", "1", "--json")).json()[0]
    assert entry["action"] == "gate.reject"
    assert entry["data"]["statement"]["comment"] == "AUC too low"


def test_queue_shows_what_each_reviewer_may_decide(governed: Workspace) -> None:
    ws = governed
    ready_for_production(ws, 1)
    everyone = ok(ws.cli("queue", "--json", as_="dora")).json()
    assert [(q["version"], q["to_stage"], q["approvals"]) for q in everyone] == [
        ("cancer:1", "production", "0/1")
    ]
    assert everyone[0]["you_can_decide"] is False
    author = ok(ws.cli("queue", "--mine", "--json", as_="alice"))
    assert author.json() == []  # the author may not decide
    # "nothing for you" is not "nothing open": said on stderr, the JSON alone on stdout
    assert author.err.strip() == (
        "note: 1 open request, none you may decide now; `cmi queue` says why for each"
    )
    mine = ok(ws.cli("queue", "--mine", "--json", as_="bob"))
    assert [q["request"] for q in mine.json()] == [everyone[0]["request"]] and mine.err == ""
    ok(ws.cli("approve", "cancer:1", "--to", "production", as_="bob"))
    assert ok(ws.cli("queue", "--mine", "--json", as_="bob")).json() == []
    assert ok(ws.cli("queue", "--json")).json()[0]["ready"] is True
    ok(ws.cli("promote", "cancer:1", "--to", "production", as_="dora"))
    nothing = ok(ws.cli("queue", "--mine", as_="alice"))  # nothing open: nothing to say
    assert nothing.err == ""


def test_approvals_expire(governed: Workspace) -> None:
    ws = governed
    ready_for_production(ws, 1)
    ok(ws.cli("approve", "cancer:1", "--to", "production", as_="bob"))
    ctx = ws.ctx("dora")
    assert gates.status(ctx, "cancer:1", "production").passed
    ctx.clock = lambda: clock.add(clock.utc_now(), days=31)
    report = gates.status(ctx, "cancer:1", "production")
    assert not report.passed
    assert report.approvals[0].state == "stale" and "expired" in report.approvals[0].detail


def test_validation_is_deterministic_and_recorded(governed: Workspace) -> None:
    ws = governed
    a = ok(ws.cli("validate", "cancer:1", "--suite", "staging", "--json", as_="alice")).json()
    b = ok(ws.cli("validate", "cancer:1", "--suite", "staging", "--json", as_="victor")).json()
    assert a["result_sha256"] == b["result_sha256"] and a["run"] != b["run"]
    assert a["status"] == "pass" and a["results"][0]["kind"] == "artifact"
    runs = ok(ws.cli("validation", "list", "cancer:1", "--json")).json()
    assert [r["run_by"] for r in runs] == ["alice", "victor"]
    assert runs[0]["environment"]["scikit-learn"]


def test_retirement_archives_by_hash_and_names_consumers(governed: Workspace) -> None:
    ws = governed
    ok(
        ws.cli(
            "model", "consumers", "add", "cancer", "billing", "--contact", "#billing", as_="alice"
        )
    )
    ok(ws.cli("model", "consumers", "add", "cancer", "triage-ui", as_="alice"))
    # a set-up script run twice is answered; another contact is refused
    again = ok(ws.cli("model", "consumers", "add", "cancer", "triage-ui", as_="alice"))
    assert again.err == "note: model 'cancer' lists consumer 'triage-ui' already; nothing written\n"
    r = ws.cli("model", "consumers", "add", "cancer", "billing", "--contact", "#bill", as_="alice")
    assert r.code == 2 and r.err == (
        "cmi: model 'cancer' already lists consumer 'billing' (contact '#billing')\n"
    ), r.err
    to_production(ws, 1)
    for alias, version in (("champion", "1"), ("stable", "1"), ("challenger", "2")):
        ok(ws.cli("alias", "set", "cancer", alias, version, as_="alice"))
    r = ws.cli("retire", "cancer:1", "--reason", "old", as_="dora")
    assert r.code == 3 and "request" in r.err  # the policy wants approvals for `retired`
    ok(ws.cli("request", "cancer:1", "--to", "retired", as_="alice"))
    r = ws.cli("retire", "cancer:1", "--reason", "old", as_="dora")
    assert r.code == 3 and "approvals:risk-officer unmet" in r.err
    ok(ws.cli("approve", "cancer:1", "--to", "retired", "--comment", "fine", as_="rita"))
    out = ok(
        ws.cli(
            "retire",
            "cancer:1",
            "--reason",
            "replaced by v2",
            "--successor",
            "cancer:2",
            "--json",
            as_="dora",
        )
    ).json()
    assert out["successor"] == "cancer:2" and out["notify"] == ["billing", "triage-ui"]
    # cancer@champion resolved to a version retired for good: its aliases go with it
    assert out["aliases_removed"] == ["champion", "stable"]
    assert ok(ws.cli("model", "show", "cancer", "--json")).json()["aliases"] == {"challenger": 2}
    r = ws.cli("alias", "set", "cancer", "champion", "1", as_="alice")
    assert (r.code, r.err.strip()) == (2, "cmi: cancer:1 is retired; an alias cannot name it")
    archive = out["archive"]
    assert (
        archive["artifact_sha256"]
        == ok(ws.cli("version", "show", "cancer:1", "--json")).json()["artifact_sha256"]
    )
    assert {d["kind"] for d in archive["decisions"]} == {"approve"}
    assert len(archive["decisions"]) == 3  # staging, production, retired
    assert all(len(d["statement_sha256"]) == 64 for d in archive["decisions"])
    assert [r["suite"] for r in archive["validation_runs"]] == ["staging", "production"]
    v = ok(ws.cli("version", "show", "cancer:1", "--json")).json()
    assert (v["stage"], v["status"]) == ("retired", "retired")
    # a decommissioning script run twice: its retirement is answered with the
    # one made (the archive, the signed statement); any other meets the gate
    retired = ok(ws.cli("audit", "log", "-n", "1", "--json")).json()[0]
    args = ("retire", "cancer:1", "--reason", "replaced by v2", "--successor", "cancer:2")
    again = ok(ws.cli(*args, "--json", as_="dora"))
    body = again.json()
    assert body["created"] is False and body["seq"] == retired["seq"]
    assert body["archive"] == archive and body["statement"] == out["statement"]
    assert again.err == (
        f"note: you retired cancer:1 already (entry #{retired['seq']}); nothing written\n"
    )
    for other, as_ in (
        (("retire", "cancer:1", "--reason", "replaced by v2"), "dora"),  # no successor
        (("retire", "cancer:1", "--reason", "other", "--successor", "cancer:2"), "dora"),
        (args, "sam"),
    ):
        r = ws.cli(*other, as_=as_)
        assert r.code == 3 and "cancer:1 is retired; a retired version is never" in r.err, r.err
    assert ok(ws.cli("audit", "log", "-n", "1", "--json")).json()[0] == retired
    assert ok(ws.cli("audit", "verify")).code == 0


def test_a_model_with_every_version_retired_shows_retired(governed: Workspace) -> None:
    ws = governed
    for v in (1, 2):
        ok(ws.cli("request", f"cancer:{v}", "--to", "retired", as_="alice"))
        ok(ws.cli("approve", f"cancer:{v}", "--to", "retired", as_="rita"))
        assert ok(ws.cli("model", "show", "cancer", "--json")).json()["status"] == "active"
        ok(ws.cli("retire", f"cancer:{v}", "--reason", "project closed", as_="rita"))
    assert ok(ws.cli("model", "show", "cancer", "--json")).json()["status"] == "retired"
    models = ok(ws.cli("model", "list", "--json")).json()
    assert models[0]["status"] == "retired"


def test_break_glass_needs_two_admins_opens_an_incident_and_is_flagged(
    governed: Workspace,
) -> None:
    ws = governed
    ready_for_production(ws, 1)
    pending = ok(
        ws.cli(
            "break-glass",
            "cancer:1",
            "--to",
            "production",
            "--reason",
            "fraud spike",
            "--json",
            as_="root",
        )
    ).json()
    assert pending["status"] == "pending"
    assert [c["condition"] for c in pending["bypassed"]] == ["approvals:reviewer"]
    assert stage_of(ws, "cancer:1") == "staging"
    done = ok(
        ws.cli(
            "break-glass",
            "cancer:1",
            "--to",
            "production",
            "--reason",
            "fraud spike",
            "--json",
            as_="sam",
        )
    ).json()
    assert done["status"] == "executed" and done["signed_by"] == ["root", "sam"]
    assert done["incident"] >= 1
    v = ok(ws.cli("version", "show", "cancer:1", "--json")).json()
    assert v["stage"] == "production" and v["break_glass"] is True
    listed = ok(ws.cli("version", "list", "cancer", "--json")).json()
    assert {x["version"]: x["break_glass"] for x in listed} == {1: True, 2: False}
    table = ok(ws.cli("version", "list", "cancer")).out
    assert "BREAK-GLASS" in table
    actions = [e["action"] for e in ok(ws.cli("audit", "log", "-n", "4", "--json")).json()]
    assert actions == ["gate.promote", "break-glass.execute", "incident.open", "break-glass.sign"]
    assert ok(ws.cli("audit", "verify")).code == 0
    [incident] = ok(ws.cli("incident", "list", "--json")).json()
    assert (incident["incident"], incident["kind"]) == (done["incident"], "break-glass")
    assert incident["severity"] == "high" and incident["status"] == "open"
    # the environment is named only where it is not the stage's name
    assert incident["title"] == "break-glass: cancer:1 to production", incident["title"]
    events = ok(ws.cli("incident", "timeline", str(done["incident"]), "--json")).json()["events"]
    [executed] = [e for e in events if e["action"] == "break-glass.execute"]
    assert executed["kind"] == "promotion" and executed["summary"] == (
        f"break-glass #{done['break_glass']} to production signed by root, sam; "
        f"bypassed approvals:reviewer; incident #{done['incident']}"
    ), executed


def test_break_glass_still_needs_the_validation(governed: Workspace) -> None:
    ws = governed
    ready_for_production(ws, 1, validate=False)
    r = ws.cli("break-glass", "cancer:1", "--to", "production", "--reason", "x", as_="root")
    assert r.code == 3 and "validation unmet" in r.err


def test_two_promotes_racing_give_one_production_version(governed: Workspace) -> None:
    ws = governed
    ready_for_production(ws, 1)
    ok(ws.cli("approve", "cancer:1", "--to", "production", as_="bob"))
    ok(ws.cli("role", "grant", "sam", "deployer"))
    ctxs = [ws.ctx("dora"), ws.ctx("sam")]
    results = race([lambda c=c: gates.promote(c, "cancer:1", "production") for c in ctxs])
    wins = [r for r in results if isinstance(r, dict)]
    losses = [r for r in results if isinstance(r, gates.GateRefused)]
    assert len(wins) == 1 and len(losses) == 1, results
    log = ok(ws.cli("audit", "log", "--action", "gate.promote", "-n", "100", "--json")).json()
    assert len([e for e in log if e["data"]["statement"]["to_stage"] == "production"]) == 1
    assert ok(ws.cli("audit", "verify")).code == 0


def test_two_versions_racing_for_production_leave_exactly_one(governed: Workspace) -> None:
    ws = governed
    for v in (1, 2):
        ready_for_production(ws, v)
        ok(ws.cli("approve", f"cancer:{v}", "--to", "production", as_="bob"))
    results = race(
        [lambda v=v: gates.promote(ws.ctx("dora"), f"cancer:{v}", "production") for v in (1, 2)]
    )
    assert all(isinstance(r, dict) for r in results), results  # serialized: both may win in turn
    stages = {stage_of(ws, "cancer:1"), stage_of(ws, "cancer:2")}
    assert stages == {"production", "archived"}
    assert ok(ws.cli("audit", "verify")).code == 0


def test_two_reviewers_approving_at_once_keep_the_log_linear(governed: Workspace) -> None:
    ws = governed
    ok(ws.cli("model", "tier", "cancer", "high", "--reason", "patients", as_="rita"))
    ok(ws.cli("role", "grant", "carl", "risk-officer"))
    ready_for_production(ws, 1)
    results = race(
        [
            lambda: gates.decide(ws.ctx("bob"), "cancer:1", "production", "approve"),
            lambda: gates.decide(ws.ctx("carl"), "cancer:1", "production", "approve"),
        ]
    )
    assert all(isinstance(r, dict) for r in results), results
    report = gates.status(ws.ctx("dora"), "cancer:1", "production")
    assert report.passed, report.as_json()
    assert ok(ws.cli("audit", "verify")).code == 0


def test_a_reviewer_whose_approval_went_stale_may_approve_again(governed: Workspace) -> None:
    ws = governed
    ready_for_production(ws, 1)
    ok(ws.cli("approve", "cancer:1", "--to", "production", as_="bob"))
    ok(ws.cli("model", "tier", "cancer", "low", "--reason", "internal only", as_="rita"))
    ok(ws.cli("validate", "cancer:1", "--suite", "production", as_="alice"))
    assert [q["request"] for q in ok(ws.cli("queue", "--mine", "--json", as_="bob")).json()]
    ok(ws.cli("approve", "cancer:1", "--to", "production", "--comment", "re-reviewed", as_="bob"))
    body = ok(ws.cli("gate", "status", "cancer:1", "--to", "production", "--json")).json()
    assert [a["state"] for a in body["approvals"]] == ["stale", "counted"]
    assert body["passed"]
    r = ws.cli("approve", "cancer:1", "--to", "production", as_="bob")
    assert r.code == 3 and "sod.one-decision-per-principal" in r.err


def test_the_database_itself_refuses_two_versions_in_one_exclusive_slot(
    governed: Workspace,
) -> None:
    """Even a writer that skipped the gate cannot put two versions in one slot."""
    import sqlalchemy

    ws = governed
    to_production(ws, 1)
    ctx = ws.ctx()
    with pytest.raises(sqlalchemy.exc.IntegrityError), ctx.engine.begin() as conn:
        conn.execute(
            sqlalchemy.text(
                "UPDATE model_versions SET slot = 'production@production' WHERE version = 2"
            )
        )
    ctx.engine.dispose()
    assert stage_of(ws, "cancer:2") == "development"


def test_the_same_request_again_is_answered_with_it(governed: Workspace) -> None:
    """A CI job's `cmi request` retried after it had committed failed on
    "already open" (exit 2). Its requester asking the same again is answered
    with the open request, nothing written; anyone else, or another comment,
    is still refused, and told who opened it."""
    ws = governed
    ask = ["request", "cancer:1", "--to", "staging", "--comment", "suite passed", "--json"]
    first = ok(ws.cli(*ask, as_="alice")).json()
    assert first["created"] is True
    entries = len(ok(ws.cli("audit", "log", "-n", "1000", "--json")).json())
    again = ok(ws.cli(*ask, as_="alice"))
    assert again.json() == {**first, "created": False}
    assert (
        again.err.strip() == f"note: request #{first['request']} was open already; nothing written"
    )
    refused = f"cmi: cancer:1: request #{first['request']} to staging is already open (by alice)"
    other = ws.cli(*ask[:4], "--comment", "suite passed again", as_="alice")
    assert other.code == 2 and other.err.strip() == refused
    by_sam = ws.cli(*ask, as_="sam")
    assert by_sam.code == 2 and by_sam.err.strip() == refused
    assert len(ok(ws.cli("audit", "log", "-n", "1000", "--json")).json()) == entries
    assert [q["request"] for q in ok(ws.cli("queue", "--json")).json()] == [first["request"]]


def test_the_same_promotion_again_is_answered_with_its_signed_decision(
    governed: Workspace,
) -> None:
    """A CI job's `cmi promote` retried after its first try had committed
    failed the gate ("already in production", exit 3). Its promoter promoting
    the same again is answered with the decision signed then, read back from
    the log; another promoter, another comment or a version moved since still
    meet the gate. Two tries at once: one writes, the other is answered."""
    ws = governed
    ready_for_production(ws, 1)
    ok(ws.cli("approve", "cancer:1", "--to", "production", as_="bob"))
    tries = race([lambda: gates.promote(ws.ctx("dora"), "cancer:1", "production")] * 2)
    assert sorted(t["created"] for t in tries) == [False, True], tries
    signed = ok(ws.cli("audit", "log", "-n", "1", "--json")).json()[0]
    assert signed["action"] == "gate.promote"
    entries = signed["seq"] + 1
    again = ok(ws.cli("promote", "cancer:1", "--to", "production", "--json", as_="dora"))
    body = again.json()
    assert body["created"] is False and body["seq"] == signed["seq"]
    assert {k: body[k] for k in ("statement", "signature", "key")} == {
        k: signed["data"][k] for k in ("statement", "signature", "key")
    }
    assert (body["version"], body["stage"], body["archived"]) == ("cancer:1", "production", None)
    assert again.err.startswith("note: you promoted cancer:1 to production already (")
    assert again.err.strip().endswith(f"entry #{signed['seq']}); nothing written")
    plain = ok(ws.cli("promote", "cancer:1", "--to", "production", as_="dora"))
    assert plain.out.strip() == "cancer:1 is in production (production)"  # not "is now"
    for other, as_ in ((["--comment", "again"], "dora"), ([], "sam")):
        r = ws.cli("promote", "cancer:1", "--to", "production", *other, as_=as_)
        assert r.code == 3 and "already in production" in r.err, r.err
    to_production(ws, 2)  # archives 1: the decision no longer holds
    r = ws.cli("promote", "cancer:1", "--to", "production", as_="dora")
    assert r.code == 3 and "archived -> production is not allowed" in r.err, r.err
    log = ok(ws.cli("audit", "log", "-n", "1000", "--json")).json()
    about_1 = [e["action"] for e in log if e["subject"] == "version:cancer:1"]
    assert about_1.count("gate.promote") == 2  # staging and production, once each
    assert [e["action"] for e in log if e["seq"] >= entries].count("version.archive") == 1
    assert ok(ws.cli("audit", "verify")).code == 0


def test_the_same_decision_again_is_answered_with_it(governed: Workspace) -> None:
    """`cmi approve` retried after its first try had committed (the answer
    lost with a dropped connection) was refused, "already decided", exit 3;
    a rejection retried, "no open request", exit 2. The same decision again
    by its reviewer, same comment, while it stands, is answered with the
    decision signed then; any other is refused as before. Two tries at once:
    one signs, the other is answered."""
    ws = governed
    ready_for_production(ws, 1)
    approve = lambda: gates.decide(ws.ctx("bob"), "cancer:1", "production", "approve", "ok")  # noqa: E731
    tries = race([approve] * 2)
    assert sorted(t["created"] for t in tries) == [False, True], tries
    signed = ok(ws.cli("audit", "log", "-n", "1", "--json")).json()[0]
    assert signed["action"] == "gate.approve"
    args = ("approve", "cancer:1", "--to", "production", "--comment", "ok")
    again = ok(ws.cli(*args, "--json", as_="bob"))
    body = again.json()
    assert body["created"] is False and body["seq"] == signed["seq"]
    assert {k: body[k] for k in ("decision", "statement", "signature", "key")} == {
        k: signed["data"][k] for k in ("decision", "statement", "signature", "key")
    }
    assert again.err == (
        f"note: you approved cancer:1 to production already (decision #{body['decision']}, "
        f"entry #{signed['seq']}); nothing written\n"
    ), again.err
    for other in (
        ("approve", "cancer:1", "--to", "production", "--comment", "second look"),
        ("reject", "cancer:1", "--to", "production", "--comment", "ok"),
    ):
        r = ws.cli(*other, as_="bob")
        assert r.code == 3 and "already decided" in r.err, r.err
    # a rejection closes its request: the same rejection again is answered
    # while no request has been opened since
    ok(ws.cli("request", "cancer:2", "--to", "staging", as_="alice"))
    no = ("reject", "cancer:2", "--to", "staging", "--comment", "no validation")
    ok(ws.cli(*no, as_="victor"))
    head = ok(ws.cli("audit", "log", "-n", "1", "--json")).json()[0]
    again = ok(ws.cli(*no, as_="victor"))
    assert again.err.startswith("note: you rejected cancer:2 to staging already (decision #")
    r = ws.cli("reject", "cancer:2", "--to", "staging", "--comment", "other", as_="victor")
    assert r.code == 2 and "no open request" in r.err, r.err
    assert ok(ws.cli("audit", "log", "-n", "1", "--json")).json()[0] == head
    log = ok(ws.cli("audit", "log", "--action", "gate.approve", "-n", "1000", "--json")).json()
    assert [e["data"]["statement"]["to_stage"] for e in log].count("production") == 1
    assert ok(ws.cli("audit", "verify")).code == 0


def test_a_retry_racing_its_first_try_is_answered_not_doubled(governed: Workspace) -> None:
    """A CI job's retry can start while its first try still runs. Each
    answer-or-write decision is taken inside the write transaction, which
    holds the log's lock: of two identical calls at once, one writes and the
    other is answered with what it wrote, on both backends."""
    ws = governed
    from cmi_console.services import registry

    ok(ws.cli("validate", "cancer:1", "--suite", "staging", as_="alice"))
    asks = race([lambda: gates.request(ws.ctx("alice"), "cancer:1", "staging", comment="ci")] * 2)
    assert sorted(r["created"] for r in asks) == [False, True], asks
    assert asks[0]["request"] == asks[1]["request"]
    runs = race(
        [lambda: registry.record_run(ws.ctx("alice"), params={"C": 1}, metrics={}, run_key="j")] * 2
    )
    assert sorted(r["created"] for r in runs) == [False, True], runs
    log = ok(ws.cli("audit", "log", "-n", "1000", "--json")).json()
    assert [e["action"] for e in log].count("gate.request") == 1
    assert [e["action"] for e in log].count("run.record") == 1
    assert ok(ws.cli("audit", "verify")).code == 0
