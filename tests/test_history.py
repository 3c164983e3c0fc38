"""Time travel from the log: `cmi registry as-of` and `cmi audit diff`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Workspace
from gate_helpers import add_staff, ok, to_production

from cmi_console.core import clock
from cmi_console.services import history, ledger, registry
from cmi_console.services.context import Context


@pytest.fixture
def governed(populated: Workspace) -> Workspace:
    return add_staff(populated)


def _head_time(ws: Workspace) -> str:
    return ok(ws.cli("audit", "log", "-n", "1", "--json")).json()[0]["time"]


def _as_of(ws: Workspace, when: str, *extra: str) -> dict[str, Any]:
    return ok(ws.cli("registry", "as-of", when, *extra, "--json")).json()


def _versions(report: dict[str, Any]) -> dict[int, tuple[str, str]]:
    [m] = report["models"]
    return {v["version"]: (v["stage"], v["status"]) for v in m["versions"]}


def test_as_of_replays_a_scripted_history(governed: Workspace) -> None:
    ws = governed
    before_anything = _head_time(ws)  # two versions registered, nothing promoted
    to_production(ws, 1)
    v1_serving = _head_time(ws)
    ok(ws.cli("alias", "set", "cancer", "champion", "1", as_="alice"))
    to_production(ws, 2)  # replaces version 1, which is archived
    v2_serving = _head_time(ws)

    early = _as_of(ws, before_anything, "--model", "cancer")
    assert _versions(early) == {1: ("development", "active"), 2: ("development", "active")}
    assert early["models"][0]["serving"] == {}

    mid = _as_of(ws, v1_serving, "--model", "cancer")
    assert _versions(mid)[1] == ("production", "active")
    assert mid["models"][0]["serving"] == {"production@production": 1}
    assert mid["models"][0]["aliases"] == {}

    # one microsecond before version 2's promotion: still version 1 serving
    log = ok(ws.cli("audit", "log", "--action", "gate.promote", "--json")).json()
    promote_v2 = next(e for e in log if e["subject"] == "version:cancer:2")  # newest first
    just_before = clock.add(promote_v2["time"], hours=-1 / 3_600_000_000)
    assert _as_of(ws, just_before)["models"][0]["serving"] == {"production@production": 1}

    late = _as_of(ws, v2_serving, "--model", "cancer")
    assert _versions(late) == {1: ("archived", "active"), 2: ("production", "active")}
    assert late["models"][0]["serving"] == {"production@production": 2}
    assert late["models"][0]["aliases"] == {"champion": 1}
    # who put each version in its stage, by the entry that did
    by = {v["version"]: v["staged_by"] for v in late["models"][0]["versions"]}
    fields = ("seq", "time", "actor", "action")
    assert {k: by[2][k] for k in fields} == {k: promote_v2[k] for k in fields}
    # and on what evidence, as the promotion recorded it: its request, its
    # validation, who approved
    conditions = {c["condition"]: c for c in by[2]["conditions"]}
    assert {c["state"] for c in conditions.values()} == {"met"}
    assert conditions["approvals:reviewer"]["detail"] == "1/1 (bob)"
    assert conditions["validation"]["detail"].startswith("run #")
    assert conditions["request"]["detail"].endswith("by alice")
    archive = ok(ws.cli("audit", "log", "--action", "version.archive", "--json")).json()
    assert [a["subject"] for a in archive] == ["version:cancer:1"]
    assert {k: by[1][k] for k in fields} == {k: archive[0][k] for k in fields}
    assert by[1]["conditions"] == [] and by[1]["comment"] == ""
    registered = [v["staged_by"] for v in early["models"][0]["versions"]]
    assert [b["action"] for b in registered] == ["version.register"] * 2
    assert [b["actor"] for b in registered] == ["alice", "alice"]
    table = ok(ws.cli("registry", "as-of", v2_serving, "--model", "cancer")).out
    assert f"{promote_v2['actor']} #{promote_v2['seq']} gate.promote" in " ".join(table.split())
    rested = [line for line in table.splitlines() if " rested on: " in line]
    assert rested == [
        "cancer:2 in production@production rested on: " + history.evidence_text(by[2])
    ]
    assert "approvals:reviewer 1/1 (bob)" in rested[0] and "transition" not in rested[0]

    # at the head of the log, the replay equals what the registry shows now
    for number, (stage, status) in _versions(late).items():
        now = ok(ws.cli("version", "show", f"cancer:{number}", "--json")).json()
        assert (now["stage"], now["status"]) == (stage, status)


def test_as_of_before_a_model_existed_says_so(populated: Workspace) -> None:
    r = populated.cli("registry", "as-of", "2001-01-01", "--model", "cancer")
    assert r.code == 2 and "did not exist" in r.err
    assert _as_of(populated, "2001-01-01")["models"] == []


def test_as_of_after_now_says_it_answers_with_now(populated: Workspace) -> None:
    """`2062-11-10` for `2026-11-10` answered as the registry "as of 2062":
    an investigator read today's state as an answer about that day."""
    r = ok(populated.cli("registry", "as-of", "2062-11-10", "--json"))
    assert r.err.startswith("note: WHEN is after now (20")
    assert r.err.strip().endswith("): this is the registry as it is now")
    assert r.json()["models"][0]["model"] == "cancer" and r.json()["whole_log"] is True
    past = ok(populated.cli("registry", "as-of", "2001-01-01", "--json"))
    assert past.json()["whole_log"] is False


def test_as_of_before_the_log_began_says_so(populated: Workspace) -> None:
    """An instant before the workspace existed was answered with an empty
    table, "(0 log entries)", and nothing else: read as "nothing was
    registered then" by an investigator who had the date, or the
    workspace, wrong."""
    first = populated.cli("audit", "show", "0", "--json").json()["entry"]["time"]
    r = ok(populated.cli("registry", "as-of", "2001-01-01", "--json"))
    assert r.err.strip() == (
        f"note: WHEN is before the log's first entry ({first}): nothing had been recorded yet"
    )
    assert r.json()["log_starts"] == first and r.json()["models"] == []
    # at the first entry's own instant the log has begun: no note
    r = ok(populated.cli("registry", "as-of", first, "--json"))
    assert r.err == "" and r.json()["log_starts"] is None and r.json()["entries"] == 1


def test_as_of_refuses_a_bad_time(populated: Workspace) -> None:
    r = populated.cli("registry", "as-of", "last tuesday")
    assert r.code == 2 and "ISO 8601" in r.err and "\n" not in r.err.strip()
    assert r.err.startswith("cmi: WHEN: 'last tuesday'"), r.err  # as --help names it
    r = populated.cli("audit", "diff", "2026-01-01", "soon")
    assert r.code == 2 and r.err.startswith("cmi: END: 'soon'"), r.err


def test_audit_diff_groups_what_changed_by_subject(governed: Workspace) -> None:
    ws = governed
    start = _head_time(ws)
    to_production(ws, 1)
    end = _head_time(ws)
    report = ok(ws.cli("audit", "diff", start, end, "--json")).json()
    log = ok(ws.cli("audit", "log", "--since", start, "-n", "1000", "--json")).json()
    expected = [e for e in log if start < e["time"] <= end]
    assert report["entries"] == len(expected) > 0
    subjects = {s["subject"]: s for s in report["subjects"]}
    assert set(subjects) == {e["subject"] for e in expected}
    promote = [e for e in subjects["version:cancer:1"]["entries"] if e["action"] == "gate.promote"]
    assert len(promote) == 2  # staging, then production
    assert any(r.startswith("update model_versions#") for r in promote[-1]["rows"])
    seqs = [e["seq"] for s in report["subjects"] for e in s["entries"]]
    assert sorted(seqs) == sorted(e["seq"] for e in expected)


def test_audit_diff_needs_increasing_instants(populated: Workspace) -> None:
    r = populated.cli("audit", "diff", "2026-02-01", "2026-01-01")
    assert r.code == 2 and "must be after" in r.err


# (forgery of the entry that registers cancer:1, whether as-of reads it)
FORGED: list[tuple[Any, bool]] = [
    (lambda obj: obj.update(changes="nope"), False),
    (
        lambda obj: obj.update(changes=[{"t": ["models"], "op": "insert", "id": 9, "row": {}}]),
        False,
    ),
    (lambda obj: obj.update(changes=[5]), False),
    # a well-formed change whose row lacks the version's columns
    (lambda obj: obj["changes"][0].update(row={"model_id": 1}), True),
    (lambda obj: obj["changes"][0].update(op="merge"), True),
    (lambda obj: obj["changes"][0].update(id="1"), True),
    (lambda obj: obj["changes"].append({"t": "aliases", "op": "insert", "id": 1}), True),
]


@pytest.mark.parametrize(("forge", "as_of_reads_it"), FORGED)
def test_time_travel_over_a_forged_entry_says_so(
    populated: Workspace, forge: Any, as_of_reads_it: bool
) -> None:
    # both answers are rebuilt from the log alone: a malformed entry they read
    # must stop them with a pointer to `audit verify` (exit 4), not crash them
    import tamper

    seq = ok(populated.cli("audit", "log", "--action", "version.register", "--json")).json()[-1]
    assert seq["subject"] == "version:cancer:1"
    tamper.rewrite_from(populated, seq["seq"], forge)
    r = populated.cli("registry", "as-of", "2099-01-01")
    if as_of_reads_it:
        assert r.code == 4 and "run `cmi audit verify`" in r.err, (r.code, r.err)
        assert len(r.err.strip().splitlines()) == 1
    else:
        # as-of reads only the entries that change the tables it answers
        # about, and this one no longer names any: it is not read (a later
        # entry's change to what it made stops the replay instead), and
        # `audit verify`, which reads every entry, names it
        assert r.code in (0, 4) and "Traceback" not in r.err, (r.code, r.err)
    # diff reads every entry in its window, whatever it changes
    r = populated.cli("audit", "diff", "2000-01-01", "2099-01-01")
    if r.code != 0:  # a change with its fields is listed, whatever they hold
        assert r.code == 4 and "run `cmi audit verify`" in r.err, (r.code, r.err)
        assert len(r.err.strip().splitlines()) == 1
    r = populated.cli("audit", "verify")
    assert r.code == 4 and f"entry {seq['seq']}" in r.out + r.err, (r.out, r.err)


def _skewed(ws: Workspace, tmp_path: Path) -> tuple[Context, Context]:
    """Two writers on one database whose clocks disagree by two seconds (a
    team's hosts on one PostgreSQL): `ahead` has made a model with two
    versions and pointed champion at version 1."""
    ok(ws.cli("user", "add", "alice", "--role", "developer"))
    ahead, behind = ws.ctx("alice"), ws.ctx("alice")
    ahead.clock = lambda: "2030-01-01T12:00:05.000000Z"
    behind.clock = lambda: "2030-01-01T12:00:03.000000Z"
    registry.create_model(ahead, "m")
    for i in (1, 2):
        art = tmp_path / f"m{i}.bin"
        art.write_bytes(f"model {i}".encode())
        registry.register_version(ahead, "m", art)
    registry.set_alias(ahead, "m", "champion", 1)
    return ahead, behind


def test_an_entry_is_never_stamped_before_the_entry_ahead_of_it(
    ws: Workspace, tmp_path: Path
) -> None:
    _, behind = _skewed(ws, tmp_path)
    registry.set_alias(behind, "m", "champion", 2)  # its clock says 12:00:03
    log = ok(ws.cli("audit", "log", "-n", "100", "--json")).json()[::-1]
    times = [e["time"] for e in log]
    assert times == sorted(times), times
    assert log[-1]["action"] == "alias.set" and log[-1]["time"] == "2030-01-01T12:00:05.000000Z"
    # the rows the entry wrote carry the same time as the entry
    move = ok(ws.cli("audit", "show", str(log[-1]["seq"]), "--json")).json()
    assert "2030-01-01T12:00:03" not in json.dumps(move)
    # so the registry "as of" an instant is the log up to it: nothing at
    # 12:00:04, everything (champion moved to 2) at 12:00:05
    early = _as_of(ws, "2030-01-01T12:00:04Z")
    assert early["models"] == [] and early["later_in_log"] == 0
    late = _as_of(ws, "2030-01-01T12:00:05Z", "--model", "m")
    assert late["models"][0]["aliases"] == {"champion": 2} and late["later_in_log"] == 0


def test_as_of_on_a_log_stamped_out_of_order_is_a_prefix_and_says_so(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a log written before entries were stamped in order: the behind writer's
    # alias move is stamped 12:00:03, after entries stamped 12:00:05
    _, behind = _skewed(ws, tmp_path)
    monkeypatch.setattr(ledger.Tail, "stamp", lambda self, now: now)
    registry.set_alias(behind, "m", "champion", 2)
    monkeypatch.undo()
    r = ok(ws.cli("audit", "verify"))
    assert r.out.startswith("ok:")  # not a fault, but the auditor is told
    assert r.err.startswith("note: 1 entry is stamped before the entry ahead (first: entry ")
    # replaying every entry stamped by 12:00:04 applied the move without the
    # alias it moves, the model or its versions: a false "not well-formed"
    r = ws.cli("registry", "as-of", "2030-01-01T12:00:04Z", "--json")
    assert r.code == 0, r.err
    early = r.json()
    assert early["models"] == [] and early["later_in_log"] == 1
    assert r.err.startswith("note: 1 log entry stamped by 2030-01-01T12:00:04.000000Z")
    assert len(r.err.strip().splitlines()) == 1
    late = _as_of(ws, "2030-01-01T12:00:05Z", "--model", "m")
    assert late["models"][0]["aliases"] == {"champion": 2} and late["later_in_log"] == 0


def test_a_replay_stops_once_its_caller_gives_up(populated: Workspace) -> None:
    # the console starts one replay per highlighted timeline row, in a thread
    # nothing can stop from outside: on a big log each took seconds and most
    # of a gigabyte, and scrolling ran them side by side
    ctx = populated.ctx("alice")
    with ctx.batch():
        for i in range(1500):
            registry.tag_version(ctx, "cancer:1", {"n": str(i)})
    looks: list[int] = []

    def gives_up_at_the_second_look() -> bool:
        looks.append(len(looks))
        return len(looks) > 1

    with pytest.raises(history.Cancelled):
        history.as_of(ctx, "2099-01-01", cancelled=gives_up_at_the_second_look)
    assert len(looks) == 2  # at the first entry, then 1,024 entries in
    looks.clear()
    report = history.as_of(ctx, "2099-01-01", cancelled=lambda: bool(looks.append(0)))
    assert report["entries"] > 1500 and len(looks) == -(-report["entries"] // 1024)
    assert report["models"][0]["versions"][0]["version"] == 1  # a whole answer


def test_what_a_decision_rested_on_takes_only_strings_from_a_forged_entry() -> None:
    good = {"condition": "request", "detail": "#4 by alice", "state": "met"}
    for data in [
        None,
        5,
        "x",
        [],
        {"conditions": "nope"},
        {"conditions": [5, None, []]},
        {"conditions": [{**good, "detail": 7}]},
        {"statement": {"comment": {}}},
        {"statement": "x"},
        {"conditions": 5},  # not a list: was iterated, a TypeError
        {"conditions": {"a": good}},
        {"conditions": [{**good, "state": None}]},
        {"bypassed": [good]},  # the break-glass entry's list: it sets no stage
    ]:
        assert history._decided_on({"data": data}) == {
            "conditions": [],
            "comment": "",
            "break_glass": False,
        }
    got = history._decided_on(
        {"data": {"conditions": [{**good, "extra": 1}, 3], "statement": {"comment": "why"}}}
    )
    assert got == {"conditions": [good], "comment": "why", "break_glass": False}
    assert history.evidence_text({**got, "conditions": [good, {**good, "state": "unmet"}]}) == (
        "request #4 by alice · request #4 by alice (unmet) · comment: why"
    )
    assert history.evidence_text(None) == ""
    # only the statement's own word makes a break-glass: not a truthy non-string
    for decision in [True, 1, ["break-glass"], "approve", "Break-Glass"]:
        forged = {"data": {"statement": {"decision": decision}}}
        assert history._decided_on(forged)["break_glass"] is False, decision


def test_a_break_glass_promotion_rested_on_bypassed_conditions_not_advice() -> None:
    """An investigator reading what a break-glass promotion rested on was
    told `request no open request to production; run `cmi request`
    (unmet)`: the gate's advice to whoever ran it then, read as history,
    and "unmet" where two admins had signed past it."""
    recorded = {
        "data": {
            "conditions": [
                {"condition": "transition", "detail": "staging -> production", "state": "met"},
                {
                    "condition": "request",
                    "detail": "no open request to production; run `cmi request`",
                    "state": "unmet",
                },
                {"condition": "validation", "detail": "run #15 passed", "state": "met"},
                {"condition": "approvals:reviewer", "detail": "0/1", "state": "unmet"},
            ],
            "statement": {"decision": "break-glass", "comment": "sensor swap"},
        }
    }
    assert history.evidence_text(history._decided_on(recorded)) == (
        "break-glass · request no open request to production (bypassed) · validation run "
        "#15 passed · approvals:reviewer 0/1 (bypassed) · comment: sensor swap"
    )
    # a gate's own unmet condition (a promotion cannot record one) keeps its word
    recorded["data"]["statement"]["decision"] = "approve"
    assert history.evidence_text(history._decided_on(recorded)) == (
        "request no open request to production (unmet) · validation run #15 passed · "
        "approvals:reviewer 0/1 (unmet) · comment: sensor swap"
    )
