"""The console driven by Textual's Pilot on a real demo workspace: who am I,
navigation, the review queue with signed decisions, SoD shown instead of a
button, the virtual audit log, validation runs, and seeing others' writes."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from textual.widgets import Button, DataTable, Input, OptionList, Select, Static, TabbedContent

from cmi_console.core.clock import shown
from cmi_console.services import audit, demo, gates
from cmi_console.services.context import Context
from cmi_console.tui import base
from cmi_console.tui.app import CmiApp
from cmi_console.tui.audit_view import AuditLogView
from cmi_console.tui.dashboard import DECISIONS
from cmi_console.tui.models import ModelScreen, ModelsScreen
from cmi_console.tui.reviews import DecisionDialog, ReviewQueueScreen
from cmi_console.tui.signin import ChoosePrincipal, Passphrase
from cmi_console.tui.version import VersionScreen

START = date(2026, 9, 1)
SIZE = (140, 45)


@pytest.fixture(scope="module")
def demo_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("demo") / "ws"
    demo.ensure_demo(home, start=START)
    return home


@pytest.fixture
def home(demo_master: Path, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "ws"
    shutil.copytree(demo_master, copy)
    yield copy


def app_for(home: Path, actor: str | None, passphrase: bytes | None = b"demo") -> CmiApp:
    return CmiApp(Context.open(home, None, actor), passphrase=passphrase)


async def settle(pilot) -> None:  # type: ignore[no-untyped-def]
    """Wait for the data workers, and for those their results start (a
    screen's data, then the selected row's report): until a pause starts no
    new one. An exclusive worker replaced by a newer one reports itself
    cancelled, which is expected here. (Waiting once let a snapshot catch the
    review queue's report half drawn on a loaded machine.)"""
    from textual.worker import WorkerCancelled

    for _ in range(20):
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerCancelled:
            continue
        await pilot.pause()
        if not any(w.is_running for w in pilot.app.workers):
            break


async def audit_view(pilot) -> AuditLogView:  # type: ignore[no-untyped-def]
    """Open the audit screen once the app has loaded; its log view."""
    await settle(pilot)
    await pilot.press("l")
    await settle(pilot)
    return pilot.app.screen.query_one(AuditLogView)


async def open_request(pilot, app: CmiApp, version: str) -> ReviewQueueScreen:  # type: ignore[no-untyped-def]
    """The review queue, with the open request for `version` selected."""
    await pilot.press("r")
    await settle(pilot)
    screen = app.screen
    assert isinstance(screen, ReviewQueueScreen)
    row = next(i for i, k in enumerate(screen.rows) if screen.rows[k]["version"] == version)
    screen.query_one("#requests", DataTable).move_cursor(row=row)
    await settle(pilot)
    return screen


def tamper_with_entry_40(home: Path) -> None:
    """Entry 40's actor rewritten behind the log's back (the triggers lifted)."""
    from sqlalchemy import text

    from cmi_console.store.triggers import create_append_only, drop_append_only

    ctx = Context.open(home, None, None)
    with ctx.engine.begin() as conn:
        drop_append_only(conn)
        conn.execute(text("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 40"))
        create_append_only(conn)
    ctx.engine.dispose()


async def test_header_shows_who_and_whether_the_log_verifies(home: Path) -> None:
    app = app_for(home, "bob")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.session.can_sign and app.session.roles == ["reviewer"]
        assert app.sub_title.startswith("bob (reviewer)")
        assert "log verifies" in app.sub_title
        assert "stamped out of order" not in app.sub_title
        health = app.screen.query_one("#health", Static)
        assert "· log verifies (" in str(health.render()) and not health.has_class("error")


async def test_the_dashboard_shows_a_log_that_does_not_verify(home: Path) -> None:
    """The log check ends after the dashboard's first load: its health line
    said "log not verified yet" until something reloaded it, while a
    tampered log was told only in the header."""
    tamper_with_entry_40(home)
    app = app_for(home, "audrey")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        health = app.screen.query_one("#health", Static)
        assert "· LOG DOES NOT VERIFY: " in str(health.render())
        assert health.has_class("error")


async def test_header_counts_entries_stamped_out_of_order(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a log written before entries were stamped in log order: a writer whose
    # clock was behind stamped its note before the entry ahead of it
    from cmi_console.services import ledger

    ctx = Context.open(home, None, "ada")
    with monkeypatch.context() as m:
        m.setattr(ledger.Tail, "stamp", lambda self, now: now)
        ctx.clock = lambda: "2001-01-01T00:00:00.000000Z"
        with ctx.write() as tx:
            tx.record("model.note", "model:credit-risk", {"note": "from a host an age behind"})
    app = app_for(home, "bob")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "log verifies (" in app.sub_title, app.sub_title
        assert app.sub_title.endswith("; 1 stamped out of order)"), app.sub_title


async def test_choosing_a_principal_and_unlocking_the_key(home: Path) -> None:
    app = app_for(home, None, passphrase=None)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ChoosePrincipal)
        names = app.screen.names
        assert "nina" in names and "ada" in names
        app.screen.query_one(OptionList).highlighted = names.index("nina")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, Passphrase)
        app.screen.query_one(Input).value = "wrong"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, Passphrase) and "wrong passphrase" in app.screen.error
        app.screen.query_one(Input).value = "demo"
        await pilot.press("enter")
        await settle(pilot)
        assert app.session.actor == "nina" and app.session.can_sign


async def test_an_empty_workspace_says_what_is_empty(tmp_path: Path) -> None:
    """A new workspace showed `Models by stage (tiers: )` and a Models screen
    that was a header and nothing: no word of why, nor of what to do."""
    from cmi_console.services import registry
    from cmi_console.services.setup import init_workspace

    home = tmp_path / "ws"
    init_workspace(home, admin="root").engine.dispose()
    app = app_for(home, "root", passphrase=None)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        title = str(app.screen.query_one("#models-title", Static).render())
        assert title == "Models by stage"
        await pilot.press("m")
        await settle(pilot)
        empty = str(app.screen.query_one("#empty", Static).render())
        assert empty.startswith("No models yet: create one with `cmi model create NAME`")
        registry.create_model(app.session.ctx, "cancer")
        app.screen.reload()
        await settle(pilot)
        assert str(app.screen.query_one("#empty", Static).render()) == ""
        app.screen.query_one("#filter", Input).value = "wine"
        await settle(pilot)
        assert str(app.screen.query_one("#empty", Static).render()) == "No model matches 'wine'."
        # the incidents and the deployments screens say the same of theirs
        for key, opening in (("i", "No incidents. "), ("e", "Nothing is deployed. ")):
            await pilot.press(key)
            await settle(pilot)
            note = app.screen.query_one("#empty", Static)
            assert note.display and str(note.render()).startswith(opening)


@pytest.mark.parametrize("key", ["open to others", "a FIFO"])
async def test_a_key_no_passphrase_can_unlock_signs_in_read_only(tmp_path: Path, key: str) -> None:
    """An unencrypted key that others may read is refused (Denied), and the
    console asked again, with no passphrase to ask for: it recursed until it
    died. A key file that is a FIFO froze it. Now: the error, and that
    principal (or nobody) read-only."""
    import os

    from cmi_console.services.setup import init_workspace

    home = tmp_path / "ws"
    init_workspace(home, admin="root").engine.dispose()
    path = home / "keys" / "root.key"
    if key == "a FIFO":
        path.unlink()
        os.mkfifo(path, 0o600)
    else:
        path.chmod(0o644)
    done, waited = threading.Event(), []

    def rescue() -> None:  # should a read wait on the FIFO, the test fails, not hangs
        while not done.wait(0.2):
            with contextlib.suppress(OSError):  # opens only if a reader waits there
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
                waited.append(path)

    if key == "a FIFO":
        threading.Thread(target=rescue, daemon=True).start()
    app = CmiApp(Context.open(home, None, None), passphrase=None)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert isinstance(app.screen, ChoosePrincipal)
            app.screen.query_one(OptionList).highlighted = app.screen.names.index("root")
            await pilot.press("enter")
            await settle(pilot)
            asked = isinstance(app.screen, Passphrase)
    finally:
        done.set()
    assert waited == []
    assert app.session.read_only and not asked
    said = [n.message for n in app._notifications]
    if key == "a FIFO":
        assert app.session.actor is None and said == [f"{path}: not a regular file"]
    else:
        assert app.session.actor == "root" and len(said) == 1
        assert said[0].startswith(f"{path}: private key is open to others (mode 0644)")


async def test_escape_at_sign_in_is_read_only(home: Path) -> None:
    app = app_for(home, None, passphrase=None)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert app.session.actor is None and app.session.read_only
        assert "read-only" in app.sub_title


async def test_models_filter_model_and_version_screens(home: Path) -> None:
    app = app_for(home, "bob")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        assert isinstance(app.screen, ModelsScreen)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 3
        await pilot.press("slash", *"wine")
        await settle(pilot)
        assert table.row_count == 1
        table.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ModelScreen) and app.screen.model == "wine-cultivar"
        versions = app.screen.query_one("#versions", DataTable)
        assert versions.row_count == 3
        assert "BREAK-GLASS" in " ".join(str(c) for c in versions.get_row("wine-cultivar:2"))
        versions.move_cursor(row=1)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, VersionScreen) and app.screen.ref == "wine-cultivar:2"
        overview = str(app.screen.query_one("#overview-text", Static).render())
        assert "BREAK-GLASS" in overview
        # ci-bot trained it from alice's change (she may not decide on it)
        assert "change by alice" in overview
        assert app.screen.query_one("#entries", DataTable).row_count >= 5
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, ModelScreen)


async def test_a_version_whose_run_was_recorded_by_hand_still_opens(home: Path) -> None:
    """`cmi run record` takes any JSON object as params: a run whose `recipe`
    was a string stopped the version screen ('str' object has no attribute
    'get'), on the UI thread, which ended the console."""
    from cmi_console.services import registry

    ctx = Context.open(home, None, "alice")
    ctx.passphrase = lambda _w: b"demo"
    registry.record_run(
        ctx,
        params={"recipe": "by hand", "recipe_sha256": 5},
        metrics={},
        environment={"python": {"nested": 3}},
        code_ref={"commit": {"not": "a sha"}, "change_author": "carol"},
        run_key="by-hand",
    )
    art = home / "by-hand.bin"
    art.write_bytes(b"an artifact registered with a hand-made run")
    ref = "wine-cultivar:{version}".format(
        **registry.register_version(ctx, "wine-cultivar", art, run="by-hand")
    )
    app = app_for(home, "bob")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(VersionScreen(ref))
        await settle(pilot)
        overview = str(app.screen.query_one("#overview-text", Static).render())
        assert "? ?, seed None" in overview and "python {'nested': 3}" in overview
        assert "code         change by carol\n" in overview  # no commit: not a string
        assert [n.message for n in app._notifications] == []


async def test_text_from_users_reaches_the_screen_without_control_sequences(home: Path) -> None:
    # Textual strips only BEL, BS, VT, FF and CR: an ESC in a description went
    # to the terminal as a live escape sequence
    from cmi_console.services import registry

    ctx = Context.open(home, None, "alice")
    registry.create_model(ctx, "hostile", "x\x1b[2J\x1b[31mred \u202eevil")
    app = app_for(home, "bob")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        cells = " ".join(str(c) for c in table.get_row("hostile"))
        assert "\x1b" not in cells and "\\x1b[2J" in cells and "\\u202eevil" in cells
        table.move_cursor(row=[str(k.value) for k in table.rows].index("hostile"))
        table.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ModelScreen) and app.screen.model == "hostile"
        title = str(app.screen.query_one("#title", Static).render())
        assert "\x1b" not in title and "\u202e" not in title and "\\x1b[31mred" in title


@pytest.mark.parametrize(
    "text",
    [
        "closes[/]nothing",  # Rich's MarkupError stopped the console
        "[link=https://e.x]a[/link]",  # a live link
        "a[bold]list[/bold]",
    ],
)
async def test_text_from_users_is_shown_as_written_never_as_markup(home: Path, text: str) -> None:
    """A DataTable cell, a Tree label and a notification each read a str as
    Rich markup: a description, an incident title and a name in an error."""
    from textual.widgets import Tree

    from cmi_console.services import incidents, registry

    registry.create_model(Context.open(home, None, "alice"), "marked", text)
    ctx = Context.open(home, None, "ada")
    incident = incidents.open_incident(ctx, "credit-risk", text)["incident"]
    incidents.link(ctx, incident, "version", "credit-risk:2")
    app = app_for(home, "bob")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        assert text in app.export_screenshot()
        app.notify(f"no such model '{text}'")
        await pilot.pause()
        assert text in app.export_screenshot()
        app.push_screen(VersionScreen("credit-risk:2"))
        await settle(pilot)
        app.screen.query_one(TabbedContent).active = "lineage"
        await settle(pilot)
        led_to = app.screen.query_one("#tree", Tree).root.children[1]
        led_to.expand()
        await settle(pilot)
        assert any(text in c.label.plain for c in led_to.children), led_to.children
        assert text in app.export_screenshot()


async def test_approving_from_the_queue_signs_the_statement_shown(home: Path) -> None:
    app = app_for(home, "nina")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_request(pilot, app, "credit-risk:3")
        assert "a: approve" in str(screen.query_one("#can", Static).render())
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, DecisionDialog)
        shown = str(app.screen.query_one("#statement", Static).render())
        assert "principal" in shown and "nina" in shown and "artifact_sha256" in shown
        app.screen.query_one("#comment", Input).value = "fairness report read"
        await settle(pilot)
        await pilot.click("#sign")
        await settle(pilot)
        assert isinstance(app.screen, ReviewQueueScreen)
    ctx = Context.open(home, None, "dora")
    report = gates.status(ctx, "credit-risk:3", "production")
    nina = [a for a in report.approvals if a.principal == "nina"]
    assert nina and nina[0].state == "counted"
    entry = audit.query(ctx, limit=1)[0]
    assert entry["action"] == "gate.approve"
    assert entry["data"]["statement"]["comment"] == "fairness report read"


async def test_sod_shows_the_rule_instead_of_a_button(home: Path) -> None:
    app = app_for(home, "alice")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_request(pilot, app, "credit-risk:3")
        text = str(screen.query_one("#can", Static).render())
        # ci-bot trained it from alice's change (the demo's --change-author)
        assert "You cannot decide" in text and "sod.change-author-cannot-approve" in text
        # the queue's own row says so too (it said "-", the rule only below)
        table = screen.query_one("#requests", DataTable)
        [request] = [q["request"] for q in screen.rows.values() if q["version"] == "credit-risk:3"]
        assert str(table.get_row(str(request))[-1]).startswith("sod.change-author-cannot-approve")
        size = audit.count(app.session.ctx)
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, ReviewQueueScreen)  # no dialog opened
        assert audit.count(app.session.ctx) == size


async def test_audit_view_is_virtual_and_sees_new_entries(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "POLL_SECONDS", 0.3)
    app = app_for(home, "audrey")
    async with app.run_test(size=SIZE) as pilot:
        view = await audit_view(pilot)
        size = audit.count(app.session.ctx)
        assert view.total == size > 100
        assert len(view.pages) == 1  # only what is on screen was read
        await pilot.press("end")
        await settle(pilot)
        assert view.cursor == size - 1
        await pilot.press("enter")
        await settle(pilot)
        detail = str(app.screen.query_one("#entry", Static).render())
        assert detail.startswith("entry 0  hash ") and '"seq":0' in detail
        # what the entry says, in the timeline's words
        assert "\nwhat workspace created; first admin ada\n" in detail, detail
        assert "proof of" in detail and "signed by ada" in detail
        # another principal writes; the open console shows it
        other = Context.open(home, None, "alice")
        gates.add_consumer(other, "wine-cultivar", "lab-dashboard")
        await pilot.pause(1.0)
        await settle(pilot)
        assert view.total == size + 1
        app.screen.query_one("#f-action", Input).value = "break-glass.*"
        await pilot.pause(0.5)
        await settle(pilot)
        assert view.total == 2
        # nothing by "Ada": principals are lower case, and the screen says so
        app.screen.query_one("#f-action", Input).value = ""
        app.screen.query_one("#f-actor", Input).value = "Ada"
        await pilot.pause(0.5)
        await settle(pilot)
        assert view.total == 0
        assert app.screen.sub_title == (
            "0 entries (no principal is named 'Ada'; did you mean 'ada'?)"
        )
        # nor an action typed wrong: it says which, not just "0 entries"
        app.screen.query_one("#f-actor", Input).value = ""
        app.screen.query_one("#f-action", Input).value = "break-glas.execute"
        await pilot.pause(0.5)
        await settle(pilot)
        assert app.screen.sub_title == (
            "0 entries (no entry has the action 'break-glas.execute'; "
            "did you mean 'break-glass.execute'?)"
        )


async def test_audit_view_keeps_focus_and_keys_while_pages_load(home: Path) -> None:
    # the view once kept its pages in flight in `loading`, Textual's own
    # reactive: while any page was being read the log was neither focusable
    # nor enabled, so focus missed it and keys were dropped at random
    app = app_for(home, "audrey")
    async with app.run_test(size=SIZE) as pilot:
        view = await audit_view(pilot)
        assert app.focused is view
        view.reset(view.total)  # every page dropped: the next draw reads again
        view.entry_at(0)  # a page in flight
        assert not view.loading and view.focusable and not view._check_disabled()
        await pilot.press("down")
        assert view.cursor == 1
        await settle(pilot)


async def test_validation_runs_from_the_version_screen(home: Path) -> None:
    app = app_for(home, "victor")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = len(
            __import__("cmi_console.services.validations", fromlist=["x"]).list_runs(
                app.session.ctx, "wine-cultivar:3"
            )
        )
        app.push_screen(VersionScreen("wine-cultivar:3"))
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot)
        from cmi_console.services import validations

        runs = validations.list_runs(app.session.ctx, "wine-cultivar:3")
        assert len(runs) == before + 1 and runs[-1]["run_by"] == "victor"
        checks = app.screen.query_one("#checks", DataTable)
        assert checks.row_count == 1


async def test_reject_without_a_comment_is_refused(home: Path) -> None:
    app = app_for(home, "nina")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_request(pilot, app, "credit-risk:3")
        size = audit.count(app.session.ctx)
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, DecisionDialog)
        await pilot.click("#sign")
        await settle(pilot)
        assert isinstance(app.screen, DecisionDialog)  # still open: nothing signed
        assert audit.count(app.session.ctx) == size


async def test_read_only_offers_no_decision(home: Path) -> None:
    app = app_for(home, "nina", passphrase=None)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, Passphrase)
        await pilot.press("escape")  # no passphrase: nina, read-only
        await settle(pilot)
        assert app.session.actor == "nina" and app.session.read_only
        await pilot.press("r")
        await settle(pilot)
        assert "Read-only" in str(app.screen.query_one("#can", Static).render())
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, ReviewQueueScreen)


async def test_verify_finds_a_tampered_entry_and_jumps_to_it(home: Path) -> None:
    tamper_with_entry_40(home)
    app = CmiApp(Context.open(home, None, "audrey"), passphrase=b"demo", verify=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot)
        await settle(pilot)
        view = app.screen.query_one(AuditLogView)
        assert view.total - 1 - view.cursor == 40
        assert str(app.screen.query_one("#entry", Static).render()).startswith("entry 40 ")


async def test_policies_screen_shows_effective_policy_and_history(home: Path) -> None:
    from cmi_console.tui.policies_screen import PoliciesScreen

    app = app_for(home, "audrey")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("o")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, PoliciesScreen)
        screen.query_one("#model", Select).value = "credit-risk"
        await settle(pilot)
        summary = str(screen.query_one("#summary", Static).render())
        assert "credit-risk: tier high" in summary
        prod = screen.query_one("#stages", DataTable).get_row("production")
        assert "reviewer x2" in prod[3] and "risk-officer x1" in prod[3]
        assert screen.query_one("#history", DataTable).row_count == 2


async def test_retire_dialog_shows_who_must_approve_then_retires(home: Path) -> None:
    from cmi_console.services import registry
    from cmi_console.tui.reviews import RetireDialog

    app = app_for(home, "dora")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(VersionScreen("wine-cultivar:3"))
        await settle(pilot)
        await pilot.press("R")
        await settle(pilot)
        assert isinstance(app.screen, RetireDialog)
        needed = str(app.screen.query_one("#gate", Static).render())
        assert "request" in needed and "approvals:risk-officer" in needed
        await pilot.press("escape")
        await settle(pilot)
        other = Context.open(home, None, "alice")
        gates.request(other, "wine-cultivar:3", "retired")
        other.actor = "rita"
        other.passphrase = lambda _w: b"demo"
        gates.decide(other, "wine-cultivar:3", "retired", "approve", "ok")
        other.actor = "alice"
        registry.set_alias(other, "wine-cultivar", "candidate", 3)
        await pilot.press("R")
        await settle(pilot)
        assert "passes" in str(app.screen.query_one("#gate", Static).render())
        app.screen.query_one("#reason", Input).value = "replaced after the sensor swap"
        app.screen.query_one("#successor", Input).value = "wine-cultivar:2"
        await pilot.click("#retire")
        await settle(pilot)
        assert isinstance(app.screen, VersionScreen)
        said = [n.message for n in app._notifications]
        assert any("aliases removed: candidate" in m for m in said), said
    v = registry.show_version(Context.open(home, None, None), "wine-cultivar:3")
    assert v["status"] == "retired" and v["aliases"] == []


@pytest.mark.parametrize(
    ("actor", "usable"),
    [
        ("nina", set()),  # a reviewer: decides in the queue, nothing here
        ("alice", {"v", "g"}),  # a developer validates and requests
        ("dora", {"g", "R"}),  # a deployer requests and retires
        ("victor", {"v"}),
    ],
)
async def test_the_version_screen_offers_only_what_its_principal_may_do(
    home: Path, actor: str, usable: set[str]
) -> None:
    """The footer offered a reviewer "Request next stage" and "Retire": each
    dialog took a reason and then ended in a refusal. Keys the principal may
    not use are shown disabled, and pressing one opens nothing."""
    from cmi_console.tui.reviews import RequestDialog, RetireDialog

    app = app_for(home, actor)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(VersionScreen("wine-cultivar:3"))
        await settle(pilot)
        screen = app.screen
        enabled = {k for k, b in screen.active_bindings.items() if b.enabled}
        keys = {"v", "c", "g", "R"}
        assert enabled & keys == usable  # "c" only while a run goes
        for key, dialog in (("g", RequestDialog), ("R", RetireDialog)):
            await pilot.press(key)
            await settle(pilot)
            assert isinstance(app.screen, dialog) == (key in usable), key
            if app.screen is not screen:
                await pilot.press("escape")
                await settle(pilot)


def test_a_cancelled_run_records_nothing(home: Path) -> None:
    import threading

    from cmi_console.services import validations
    from cmi_console.validation.runner import Cancelled

    ctx = Context.open(home, None, "victor")
    before = audit.count(ctx)
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        validations.validate(ctx, "wine-cultivar:3", cancel=stop)
    assert audit.count(ctx) == before


@pytest.mark.parametrize(
    "keys",
    ["d", "m", "r", "i", "l"],
    ids=["dashboard", "models", "reviews", "incidents", "audit"],
)
def test_main_screens_snapshot(home: Path, snap_compare, keys: str) -> None:  # type: ignore[no-untyped-def]
    app = CmiApp(Context.open(home, None, "nina"), passphrase=b"demo", verify=False)

    async def ready(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot)
        await pilot.press(*keys)
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_version_screen_snapshot(home: Path, snap_compare) -> None:  # type: ignore[no-untyped-def]
    app = CmiApp(Context.open(home, None, "nina"), passphrase=b"demo", verify=False)

    async def ready(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot)
        app.push_screen(VersionScreen("credit-risk:3"))
        await settle(pilot)
        app.screen.query_one(TabbedContent).active = "gates"
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


async def test_incidents_and_the_investigation_view(home: Path) -> None:
    from cmi_console.tui.incidents_screen import IncidentsScreen, InvestigationScreen

    app = app_for(home, "bob")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        alerts = app.screen.query_one("#alerts", DataTable)
        assert "i2" in [r.value for r in alerts.rows]  # the open credit-risk incident
        await pilot.press("i")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, IncidentsScreen)
        table = screen.query_one("#incidents", DataTable)
        assert table.row_count == 3
        table.move_cursor(row=[r.value for r in table.rows].index("2"))
        await pilot.press("enter")
        await settle(pilot)
        view = app.screen
        assert isinstance(view, InvestigationScreen)
        summary = str(view.query_one("#summary", Static).render())
        assert "credit-risk" in summary and "2 note(s), 2 link(s)" in summary
        timeline = view.query_one("#timeline", DataTable)
        times = [view.events[int(k.value)]["time"] for k in timeline.rows]
        assert times == sorted(times) and timeline.row_count == len(view.events)
        # select the moment the incident happened: the panel shows who was serving
        happened = next(i for i, e in enumerate(view.events) if e["seq"] is None)
        for row in range(timeline.row_count):  # scrolling: each row starts a replay
            timeline.move_cursor(row=row)
        timeline.move_cursor(row=happened)
        await settle(pilot)
        panel = str(view.query_one("#as-of", Static).render())
        assert f"registry as of {shown(view.events[happened]['time'])}" in panel
        # who put it there, by the entry that did
        serving = r"credit-risk:2  production  serving \S+  \(by dora #\d+ gate\.promote\)"
        assert re.search(serving, panel), panel
        # and on what evidence: the request, the validation, who approved
        rested = serving + r"\n    rested on: request #\d+ by alice · validation run #\d+ passed"
        assert re.search(rested, panel), panel
        assert re.search(r"approvals:reviewer 2/2 \(bob, nina\)", panel), panel
        # and what took the traffic, by whose step
        took = r"credit-risk traffic in production: v2 100% since \S+, set by dora #\d+ deploy\."
        assert re.search(took, panel), panel
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, IncidentsScreen)
        # incident 3's timeline starts 72 hours before it, with the log's
        # entries then: the view opens on the moment it happened, not there
        table.move_cursor(row=[r.value for r in table.rows].index("3"))
        await pilot.press("enter")
        await settle(pilot)
        view = app.screen
        assert isinstance(view, InvestigationScreen)
        happened = next(i for i, e in enumerate(view.events) if e["seq"] is None)
        assert happened > 0 and view.query_one("#timeline", DataTable).cursor_row == happened
        panel = str(view.query_one("#as-of", Static).render())
        assert f"registry as of {shown(view.events[happened]['time'])}" in panel


async def test_export_dialog_writes_a_bundle_that_verifies(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from textual.widgets import ProgressBar

    from cmi_console.core import bundle
    from cmi_console.tui.audit_screen import ExportDialog

    out = tmp_path / "from-the-console.zip"
    app = app_for(home, "audrey")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        await pilot.press("x")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ExportDialog)
        # a name alone lands in the console's working directory: the notice says where
        monkeypatch.chdir(tmp_path)
        for given, said in (("", "give the bundle a file name"), ("rel.zip", str(tmp_path))):
            dialog.query_one("#out", Input).value = given
            dialog.query_one("#export", Button).press()  # a toast may cover it from a click
            await settle(pilot)
            assert any(said in n.message for n in app._notifications), [
                n.message for n in app._notifications
            ]
        await pilot.press("x")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ExportDialog)
        dialog.query_one("#out", Input).value = str(out)
        dialog.query_one("#model", Input).value = "credit-risk"
        bar = dialog.query_one("#progress", ProgressBar)
        dialog.query_one("#export", Button).press()
        await settle(pilot)
        assert not isinstance(app.screen, ExportDialog)
        assert bar.total is not None and bar.progress == bar.total
    report = bundle.verify(out)
    assert report.ok and report.scope["model"] == "credit-risk", report.problems


async def test_lineage_tab_expands_lazily_and_opens_nodes(home: Path) -> None:
    from textual.widgets import Tree

    app = app_for(home, "audrey")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(VersionScreen("credit-risk:2"))
        await settle(pilot)
        screen = app.screen
        screen.query_one(TabbedContent).active = "lineage"
        await settle(pilot)
        tree = screen.query_one("#tree", Tree)
        came_from, led_to = tree.root.children
        assert not came_from.children and not led_to.children  # nothing loaded yet
        came_from.expand()
        await settle(pilot)
        labels = [str(c.label) for c in came_from.children]
        assert any(x.startswith("succeeded-by: version credit-risk:1") for x in labels)
        assert not led_to.children  # the other branch is still not loaded
        older = next(c for c in came_from.children if "credit-risk:1" in str(c.label))
        older.expand()
        await settle(pilot)
        assert any("produced: training run" in str(c.label) for c in older.children)
        tree.focus()
        tree.move_cursor(older)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, VersionScreen) and app.screen.ref == "credit-risk:1"


async def test_a_console_open_during_concurrent_writers_sees_every_write(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Team scale (issue 8): writers in other processes, the console open."""
    import asyncio
    import os
    import subprocess
    import sys

    monkeypatch.setattr(base, "POLL_SECONDS", 0.3)
    writer = Path(__file__).with_name("writer.py")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    app = app_for(home, "audrey")
    async with app.run_test(size=SIZE) as pilot:
        view = await audit_view(pilot)
        before = view.total
        procs = [
            subprocess.Popen(
                [sys.executable, str(writer), str(home), "-", f"tui{i}", "40", "alice"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
            )
            for i in range(3)
        ]
        seen_during = set()
        while any(p.poll() is None for p in procs):
            await asyncio.sleep(0.2)
            seen_during.add(view.total)
        errors = [p.stderr.read().decode() for p in procs if p.returncode]  # type: ignore[union-attr]
        assert not errors, errors
        await pilot.pause(1.0)
        await settle(pilot)
        assert view.total == before + 120 == audit.count(app.session.ctx)
        assert len(seen_during) > 1  # it followed along, not only at the end


async def test_deployments_screen_shows_traffic_and_rolls_back_signed(home: Path) -> None:
    from cmi_console.services import deployments
    from cmi_console.tui.deployments_screen import DeploymentDialog, DeploymentsScreen

    app = app_for(home, "dora")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DeploymentsScreen)
        table = screen.query_one("#serving", DataTable)
        keys = [str(k.value) for k in table.rows]
        assert keys == ["credit-risk@production", "credit-risk@staging", "wine-cultivar@production"]
        wine = table.get_row_at(keys.index("wine-cultivar@production"))
        assert "v1 75% · v2 25%" in wine[2] and "canary of v2" in wine[4]
        table.move_cursor(row=keys.index("wine-cultivar@production"))
        await settle(pilot)
        history = screen.query_one("#history", DataTable)
        assert [str(history.get_row_at(r)[2]) for r in range(history.row_count)][:2] == [
            "advance",
            "start",
        ]
        await pilot.press("b")
        await settle(pilot)
        assert isinstance(app.screen, DeploymentDialog)
        app.screen.query_one("#reason", Input).value = "v2 mislabels the east lab"
        await pilot.click("#sign")
        await settle(pilot)
        assert isinstance(app.screen, DeploymentsScreen)
        await settle(pilot)
        wine = table.get_row_at(keys.index("wine-cultivar@production"))
        assert "v1 100%" in wine[2] and str(wine[4]) == "-"
    ctx = Context.open(home, None, None)
    assert deployments.serving(ctx, "wine-cultivar", "production")[0]["shares"] == {"1": 100}
    (entry,) = audit.query(
        ctx, action="deploy.rollback", subject="version:wine-cultivar:2", limit=5
    )[:1]
    assert entry["actor"] == "dora" and "sig" in entry


async def test_rollback_needs_a_deployer_and_writes_nothing_otherwise(home: Path) -> None:
    from cmi_console.tui.deployments_screen import DeploymentDialog

    before = audit.count(Context.open(home, None, None))
    app = app_for(home, "bob")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("b")
        await settle(pilot)
        assert isinstance(app.screen, DeploymentDialog)
        await pilot.click("#sign")
        await settle(pilot)
        assert isinstance(app.screen, DeploymentDialog)  # refused: the dialog stays
    assert audit.count(Context.open(home, None, None)) == before


async def test_monitoring_tab_and_dashboard_alerts(home: Path) -> None:
    app = app_for(home, "bob")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        alerts = app.screen.query_one("#alerts", DataTable)
        kinds = [str(alerts.get_row_at(r)[0]) for r in range(alerts.row_count)]
        assert "alert: performance" in kinds and "zombie" in kinds
        # recent decisions say what was decided, not the bare action name
        recent = app.screen.query_one("#recent", DataTable)
        whats = [str(recent.get_row_at(r)[3]) for r in range(recent.row_count)]
        assert recent.row_count == 8 and not set(whats) & set(DECISIONS), whats
        assert any(w.startswith("start shadow in production: ") for w in whats), whats
        assert any(w.startswith("break-glass #1 to production") for w in whats), whats
        app.push_screen(VersionScreen("credit-risk:2"))
        await settle(pilot)
        app.screen.query_one(TabbedContent).active = "monitoring"
        await settle(pilot)
        windows = app.screen.query_one("#windows", DataTable)
        assert windows.row_count == 7
        assert str(windows.get_row_at(6)[8]) == "v3 undecided"  # the shadow comparison
        trends = str(app.screen.query_one("#trends", Static).render())
        assert "roc_auc" in trends and "▁" in trends
        assert "ALERT" in str(app.screen.query_one("#serving", Static).render())


def test_deployments_screen_snapshot(home: Path, snap_compare) -> None:  # type: ignore[no-untyped-def]
    app = CmiApp(Context.open(home, None, "nina"), passphrase=b"demo", verify=False)

    async def ready(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


async def test_validation_tab_drills_into_drift_per_column(home: Path) -> None:
    app = app_for(home, "bob")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(VersionScreen("credit-risk:3"))  # its last run: the drifted Q3 data
        await settle(pilot)
        overview = str(app.screen.query_one("#overview-text", Static).render())
        assert "GradientBoostingClassifier, seed 42" in overview  # the recipe
        assert "python 3." in overview and "scikit-learn" in overview  # the environment
        app.screen.query_one(TabbedContent).active = "validation"
        await settle(pilot)
        checks = app.screen.query_one("#checks", DataTable)
        labels = [str(k.value) for k in checks.rows]
        checks.move_cursor(row=labels.index("drift"))
        await settle(pilot)
        detail = app.screen.query_one("#check-detail", DataTable)
        rows = [[str(c) for c in detail.get_row_at(r)] for r in range(detail.row_count)]
        drifted = {r[0] for r in rows if r[5] == "DRIFTED"}
        assert drifted and drifted <= {"income", "debt_ratio"}
        assert len(rows) == 8  # every feature, drifted first
        assert rows[0][5] == "DRIFTED"
        checks.move_cursor(row=labels.index("performance"))
        await settle(pilot)
        keys = [str(k.value) for k in detail.rows]
        assert keys[:2] == ["value", "threshold"]


async def test_a_write_the_witness_could_not_follow_is_shown(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write made from a worker while another process held the witness
    writers' lock: committed, not witnessed. The console says so (a warning
    notification) rather than hanging the worker or keeping quiet."""
    from held_lock import lock_held_elsewhere

    from cmi_console.services import registry
    from cmi_console.store import witness

    monkeypatch.setattr(witness, "LOCK_WAIT", 0.2)
    app = app_for(home, "alice")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        with lock_held_elsewhere(home / "witness" / witness.LOCK):
            await asyncio.to_thread(registry.create_model, app.session.ctx, "noted")
        await pilot.pause(1.5)  # the console looks for notices every second
        said = [n.message for n in app._notifications]
        assert any(m.startswith("committed, not witnessed: ") for m in said), said
    assert registry.show_model(Context.open(home, None, None), "noted")["name"] == "noted"
