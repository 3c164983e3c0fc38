"""Time travel from the log: `cmi registry as-of` and `cmi audit diff`."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Workspace
from gate_helpers import add_staff, ok, to_production

from cmi_console.core import clock


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

    # at the head of the log, the replay equals what the registry shows now
    for number, (stage, status) in _versions(late).items():
        now = ok(ws.cli("version", "show", f"cancer:{number}", "--json")).json()
        assert (now["stage"], now["status"]) == (stage, status)


def test_as_of_before_a_model_existed_says_so(populated: Workspace) -> None:
    r = populated.cli("registry", "as-of", "2001-01-01", "--model", "cancer")
    assert r.code == 2 and "did not exist" in r.err
    assert _as_of(populated, "2001-01-01")["models"] == []


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


@pytest.mark.parametrize(
    "forge",
    [
        lambda obj: obj.update(changes="nope"),
        lambda obj: obj.update(changes=[{"t": ["models"], "op": "insert", "id": 9, "row": {}}]),
        lambda obj: obj.update(changes=[5]),
        # a well-formed change whose row lacks the version's columns
        lambda obj: obj["changes"][0].update(row={"model_id": 1}),
    ],
)
def test_time_travel_over_a_forged_entry_says_so(populated: Workspace, forge: Any) -> None:
    # both answers are rebuilt from the log alone: a malformed entry must stop
    # them with a pointer to `audit verify` (exit 4), not crash them
    import tamper

    tamper.rewrite_from(populated, 6, forge)
    as_of = ["registry", "as-of", "2099-01-01"]
    for args in (as_of, ["audit", "diff", "2000-01-01", "2099-01-01"]):
        r = populated.cli(*args)
        if r.code == 0:  # a well-formed change: diff lists it, as-of must not
            assert args[0] == "audit", r.out
            continue
        assert r.code == 4 and "run `cmi audit verify`" in r.err, (args, r.code, r.err)
        assert len(r.err.strip().splitlines()) == 1
