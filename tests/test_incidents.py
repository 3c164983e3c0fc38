"""Incidents: report, note, link, close (signed), timeline and report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import Workspace
from gate_helpers import add_staff, ok, to_production
from markdown_shown import rendered, shown


@pytest.fixture
def governed(populated: Workspace) -> Workspace:
    return add_staff(populated)


def _log(ws: Workspace) -> list[dict[str, Any]]:
    return ok(ws.cli("audit", "log", "-n", "1000", "--reverse", "--json")).json()


def test_an_incident_is_opened_annotated_linked_and_closed(
    governed: Workspace, tmp_path: Path
) -> None:
    ws = governed
    opened = ok(
        ws.cli(
            "incident",
            "open",
            "cancer",
            "--title",
            "false negatives up",
            "--severity",
            "high",
            "--at",
            "2026-01-02T03:04:05Z",
            "--json",
            as_="bob",
        )
    ).json()
    n = str(opened["incident"])
    assert opened["occurred_at"] == "2026-01-02T03:04:05.000000Z" and opened["status"] == "open"
    # it happened before the model came into the registry (as for a model
    # imported from MLflow): its report says so (it failed: "did not exist")
    ok(ws.cli("incident", "report", n, "--out", str(tmp_path / "early.md")))
    assert "cancer was not in the registry yet" in (tmp_path / "early.md").read_text()
    # once it was serving, the report names who put it there, by its entry
    to_production(ws, 1)
    promote = [e for e in _log(ws) if e["action"] == "gate.promote"][-1]
    at = ok(ws.cli("incident", "open", "cancer", "--title", "now", "--json", as_="bob")).json()
    ok(ws.cli("incident", "report", str(at["incident"]), "--out", str(tmp_path / "now.md")))
    row = f"| production@production | 1 | {promote['actor']} #{promote['seq']} gate.promote |"
    assert row in (tmp_path / "now.md").read_text()
    ok(ws.cli("incident", "note", n, "paged the on-call", as_="bob"))
    ok(ws.cli("incident", "link", n, "--version", "cancer:2", as_="bob"))
    ok(ws.cli("incident", "link", n, "--entry", "3", as_="bob"))
    again = ok(ws.cli("incident", "link", n, "--entry", "3", as_="carl"))
    said = f"note: incident {n} links entry 3 already (by bob); nothing written"
    assert again.err.strip() == said
    shown = ok(ws.cli("incident", "show", n, "--json")).json()
    assert [x["text"] for x in shown["notes"]] == ["paged the on-call"]
    assert [(x["kind"], x["ref"]) for x in shown["links"]] == [
        ("version", "cancer:2"),
        ("entry", "3"),
    ]
    # closing is a decision: a developer may not, a reviewer may, and it is signed
    denied = ws.cli("incident", "close", n, "--root-cause", "x", as_="alice")
    assert denied.code == 3 and "close incidents" in denied.err
    closed = ok(
        ws.cli("incident", "close", n, "--root-cause", "stale feature", "--json", as_="bob")
    )
    assert closed.json()["status"] == "closed" and closed.json()["root_cause"] == "stale feature"
    last = _log(ws)[-1]
    assert last["action"] == "incident.close" and "sig" in last and last["actor"] == "bob"
    twice = ws.cli("incident", "close", n, "--root-cause", "y", as_="bob")
    assert (twice.code, twice.err.strip()) == (2, f"cmi: incident {n} is already closed (by bob)")
    retry = ok(ws.cli("incident", "close", n, "--root-cause", "stale feature", as_="bob"))
    assert retry.err.startswith(f"note: you closed incident {n} already (")
    assert [e["action"] for e in _log(ws)].count("incident.close") == 1
    assert [
        i["incident"] for i in ok(ws.cli("incident", "list", "--status", "closed", "--json")).json()
    ] == [int(n)]
    assert ok(ws.cli("audit", "verify")).code == 0


def test_a_report_or_note_sent_twice_is_kept_once(governed: Workspace) -> None:
    """An on-call's `cmi incident open` retried (a flaky VPN, a script run
    twice) opened a second incident for one event, each to be closed with a
    signed decision; a note retried was kept twice. The same report by its
    reporter while the incident is open, and a writer's last note again,
    are answered, nothing written; a report that differs is another
    incident."""
    ws = governed
    report = ["incident", "open", "cancer", "--title", "false negatives up", "--json"]
    first = ok(ws.cli(*report, as_="bob")).json()
    entries = len(_log(ws))
    again = ok(ws.cli(*report, as_="bob"))
    assert again.json() == {**first, "created": False}
    n = first["incident"]
    assert again.err.startswith(f"note: you reported this as incident {n} already (")
    # said on stderr, not as a row "created False" under the incident
    plain = ok(ws.cli(*report[:-1], as_="bob"))
    assert f"incident {n}" in plain.out and "created" not in plain.out
    ok(ws.cli("incident", "note", str(n), "paged the on-call", as_="bob"))
    noted = ok(ws.cli("incident", "note", str(n), "paged the on-call", "--json", as_="bob"))
    assert noted.json()["created"] is False and len(noted.json()["notes"]) == 1
    assert "last note is this one, by you; nothing written" in noted.err
    assert len(_log(ws)) == entries + 1
    # the same words by someone else, or after another note, are notes of their own
    ok(ws.cli("incident", "note", str(n), "paged the on-call", as_="carl"))
    ok(ws.cli("incident", "note", str(n), "paged the on-call", as_="bob"))
    assert len(ok(ws.cli("incident", "show", str(n), "--json")).json()["notes"]) == 3
    # a report that differs in anything is another incident
    others = [
        (["--severity", "high"], "bob"),
        (["--at", "2026-01-02T03:04:05Z"], "bob"),
        ([], "carl"),
    ]
    opened = {ok(ws.cli(*report, *extra, as_=as_)).json()["incident"] for extra, as_ in others}
    assert len(opened) == 3 and n not in opened
    # ...and so is the same report once the first is closed
    ok(ws.cli("incident", "close", str(n), "--root-cause", "stale feature", as_="bob"))
    assert ok(ws.cli(*report, as_="bob")).json()["incident"] not in {n, *opened}
    assert ok(ws.cli("audit", "verify")).code == 0


def test_a_report_shows_control_characters_escaped(governed: Workspace, tmp_path: Path) -> None:
    """An incident's notes are free text: an escape sequence in one was written
    raw into the report, where it acts on the terminal of whoever reads the
    file with `cat` (here: clear the screen, then overwrite the line)."""
    ws = governed
    opened = ok(ws.cli("incident", "open", "cancer", "--title", "slow", "--json", as_="bob"))
    n = str(opened.json()["incident"])
    ok(ws.cli("incident", "note", n, "latency\x1b[2J spike", as_="bob"))
    ok(ws.cli("incident", "note", n, "all clear\rroot cause: none | fixed", as_="bob"))
    for suffix in (".md", ".html"):
        out = tmp_path / f"report{suffix}"
        ok(ws.cli("incident", "report", n, "--out", str(out)))
        text = out.read_text()
        assert "\x1b" not in text and "\r" not in text
        seen = shown(text) if suffix == ".md" else text
        assert "latency\\x1b[2J spike" in seen and "all clear\\rroot cause" in seen


def test_a_markdown_report_shows_notes_as_written(governed: Workspace, tmp_path: Path) -> None:
    """Notes were written into the Markdown report as Markdown: rendered, a
    note's `<!--` hid every later line of the report, raw HTML and images
    ran in the reader's viewer, and a link showed other text than its
    address. Rendered with CommonMark (markdown-it, which rich uses), every
    note reads as it was written, and nothing after it is lost."""
    ws = governed
    opened = ok(ws.cli("incident", "open", "cancer", "--title", "# *slow*", "--json", as_="bob"))
    n = str(opened.json()["incident"])
    notes = [
        "<!-- everything after this is hidden",
        "<img src=http://evil.example/pixel> [status page](http://evil.example) **ok**",
        "- not a list & not &lt;markup&gt; \\ `code` _x_ ~~y~~ ![i](j) 1. k",
        "last note",
    ]
    for note in notes:
        ok(ws.cli("incident", "note", n, "--", note, as_="bob"))
    out = tmp_path / "report.md"
    ok(ws.cli("incident", "report", n, "--out", str(out)))
    text = out.read_text()
    for tag in ("<img", "<a ", "<!--", "<strong", "<em", "<code", "<del", "<li"):
        assert tag not in rendered(text), tag
    for note in notes:
        assert note in shown(text), note
    assert "# *slow*" in shown(text)  # the title as written, in the report's heading


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["open", "nope", "--title", "t"], "does not exist"),
        (["open", "cancer", "--title", "t", "--severity", "dire"], "--severity"),
        (["open", "cancer", "--title", "t", "--at", "3000-01-01"], "in the future"),
        (["open", "cancer", "--title", "t", "--at", "yesterday"], "ISO 8601"),
        (["open", "cancer", "--title", "t", "--at", "0001-01-01T00:00+01:00"], "years 1 to 9999"),
        (["note", "99", "x"], "incident 99 does not exist"),
        (["link", "1", "--entry", "1", "--version", "cancer:1"], "exactly one"),
        # "in one line": a line break ran on into tables and lineage graphs
        (["open", "cancer", "--title", "two\nlines"], "--title: must be one line of text"),
        (["open", "cancer", "--title", "esc\x1b[2J"], "--title: must be one line of text"),
    ],
)
def test_bad_incident_input_is_one_line_and_writes_nothing(
    governed: Workspace, args: list[str], message: str
) -> None:
    ws = governed
    ok(ws.cli("incident", "open", "cancer", "--title", "base", as_="bob"))
    before = len(_log(ws))
    r = ws.cli("incident", *args, as_="bob")
    assert r.code == 2 and message in r.err and "\n" not in r.err.strip()
    assert len(_log(ws)) == before


def test_links_must_point_at_something_real(governed: Workspace) -> None:
    ws = governed
    ok(ws.cli("incident", "open", "cancer", "--title", "t", as_="bob"))
    for flag, ref in (("--version", "cancer:9"), ("--entry", "100000"), ("--validation", "77")):
        r = ws.cli("incident", "link", "1", flag, ref, as_="bob")
        assert r.code == 2 and ("does not exist" in r.err or "no such version" in r.err), r.err


def test_the_timeline_merges_the_models_history_in_time_order(
    governed: Workspace, tmp_path: Path
) -> None:
    ws = governed
    ok(ws.cli("model", "create", "unrelated", as_="alice"))
    to_production(ws, 1)
    happened = _log(ws)[-1]["time"]
    opened = ok(
        ws.cli(
            "incident", "open", "cancer", "--title", "drop", "--at", happened, "--json", as_="bob"
        )
    ).json()
    n = str(opened["incident"])
    ok(ws.cli("incident", "link", n, "--entry", "0", as_="bob"))  # far outside the window
    t = ok(ws.cli("incident", "timeline", n, "--json")).json()
    events = t["events"]
    keys = [(e["time"], -1 if e["seq"] is None else e["seq"]) for e in events]
    assert keys == sorted(keys)
    log = {e["seq"]: e for e in _log(ws)}
    subjects = {e["subject"] for e in events}
    assert "model:unrelated" not in subjects
    kinds = {e["kind"] for e in events}
    assert {"validation", "decision", "promotion", "incident"} <= kinds
    seqs = [e["seq"] for e in events if e["seq"] is not None]
    assert 0 in seqs  # the linked entry, although outside the window
    # every entry about the model in the window is there, and nothing else
    expected = {
        s
        for s, e in log.items()
        if t["from"] <= e["time"] <= t["to"]
        and (
            e["subject"].startswith("version:cancer:")
            or e["subject"] in ("model:cancer", "policy:cancer", f"incident:{n}")
        )
    } | {0}
    assert set(seqs) == expected
    happened_marker = [e for e in events if e["seq"] is None]
    assert [e["summary"] for e in happened_marker] == ["the incident happened"]
    # each entry reads as a line, the stage's environment named only where
    # it differs from the stage ("promote to production (production)" before)
    said = {e["action"]: e["summary"] for e in events}
    assert said["gate.promote"] == "promote to production"
    assert said["gate.request"].startswith("requested to production (request #")
    assert said["validation.run"].startswith("validation production: pass (run #")
    assert said["version.register"] in (
        "registered cancer:1 (skops)",
        "registered cancer:2 (skops)",
    )
    # `audit show` says the same line under the entry's bytes and hash
    promote = next(e for e in events if e["action"] == "gate.promote")
    shown = ok(ws.cli("audit", "show", str(promote["seq"])))
    assert promote["summary"].startswith("promote to ")
    assert shown.out.splitlines()[-1] == f"what {promote['summary']}", shown.out
    as_json = ok(ws.cli("audit", "show", str(promote["seq"]), "--json")).json()
    assert as_json["what"] == promote["summary"]
    for suffix in (".md", ".html"):
        out = tmp_path / f"report{suffix}"
        ok(ws.cli("incident", "report", n, "--out", str(out)))
        text = out.read_text()
        assert "drop" in text and "production@production" in text and "Timeline" in text
    bad = ws.cli("incident", "report", n, "--out", str(tmp_path / "r.pdf"))
    assert bad.code == 2 and ".md or .html" in bad.err
