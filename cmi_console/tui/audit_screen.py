"""The audit log: a virtual view over every entry, filters, and one entry's bytes."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, ProgressBar, Static

from cmi_console.core.clock import parse_time
from cmi_console.core.errors import BadInput, CmiError
from cmi_console.core.printable import printable
from cmi_console.tui.audit_view import AuditLogView
from cmi_console.tui.base import DataScreen, worker
from cmi_console.tui.reviews import ActionDialog

FILTERS = ("actor", "action", "subject", "since", "until")


class AuditScreen(DataScreen):
    AUTO_FOCUS = "#log"  # not the first filter: keys scroll the log
    BINDINGS = [
        ("slash", "focus_filters", "Filter"),
        ("escape", "focus_log", "Log"),
        ("v", "verify", "Verify log"),
        ("x", "export", "Export bundle"),
    ]

    def body(self) -> ComposeResult:
        with Horizontal(id="filters"):
            for name in FILTERS:
                hint = "prefix*" if name in ("action", "subject") else ""
                yield Input(placeholder=f"{name} {hint}".strip(), id=f"f-{name}")
        yield AuditLogView(self._fetch_page, id="log")
        yield Static("", id="entry", markup=False)

    def filters(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in FILTERS:
            value = self.query_one(f"#f-{name}", Input).value.strip()
            if value and name in ("since", "until"):
                try:
                    value = parse_time(value, name)
                except BadInput:
                    continue  # half-typed: ignore until it parses
            out[name] = value or None
        return out

    def _fetch_page(self, offset: int, limit: int) -> list[dict[str, Any]]:
        from cmi_console.services import audit

        if not any(self.current.values()):
            # the whole log: line i is entry total-1-i, so a page is a range of
            # seq (an index range), where OFFSET would step over every line above
            return audit.query(self.session.ctx, before=self.total - offset, limit=limit)
        return audit.query(self.session.ctx, offset=offset, limit=limit, **self.current)

    def on_mount(self) -> None:
        self.current: dict[str, Any] = {}
        self.total = -1
        super().on_mount()

    def fetch(self) -> Any:
        from cmi_console.services import audit

        filters = self.filters()
        total = audit.count(self.session.ctx, **filters)
        note = None  # nothing listed because a filter names nothing: say so
        if total == 0:
            named = {k: filters[k] for k in ("actor", "action", "subject")}
            note = "; ".join(audit.filter_notes(self.session.ctx, **named)) or None
        return filters, total, note

    def show(self, data: Any) -> None:
        filters, total, note = data
        view = self.query_one(AuditLogView)
        if filters != self.current or total != self.total:
            self.current, self.total = filters, total
            view.reset(total)  # new entries or new filters: newest first again
        if self.jump_to_seq is not None and not any(filters.values()):
            view.cursor = max(0, total - 1 - self.jump_to_seq)  # newest first
            self._detail(self.jump_to_seq)
            self.jump_to_seq = None
        # the note quotes what was typed: shown as the rest of the screen shows text
        said = f" ({printable(note, one_line=True)})" if note else ""
        self.sub_title = f"{total} entries{said}"

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self.focused is None or not isinstance(self.focused, Input):
            self.query_one(AuditLogView).focus()

    def on_input_changed(self, _event: Input.Changed) -> None:
        self.reload()

    def on_audit_log_view_opened(self, event: AuditLogView.Opened) -> None:
        self._detail(int(event.entry["seq"]))

    @worker(exclusive=True, group="detail")
    def _detail(self, seq: int) -> None:
        """What the entry says in a line, its hash, signature, inclusion
        proof and canonical bytes."""
        from cmi_console.core import entry_text, merkle
        from cmi_console.services import audit

        ctx = self.session.ctx
        entry, body = audit.get_entry(ctx, seq)
        lines = [
            f"entry {seq}  hash {merkle.leaf_hash(body).hex()}",
            "signed by "
            + (
                f"{entry['actor']} key {entry['sig']['key'][:16]}"
                if "sig" in entry
                else "- (not a decision)"
            ),
            f"what {entry_text.summary(entry['action'], entry.get('data') or {}, entry['time'])}",
        ]
        try:
            proof = audit.prove(ctx, seq)
            lines.append(
                f"included in checkpoint of size {proof['tree_size']} (root {proof['root'][:16]}), "
                f"proof of {len(proof['proof'])} hashes verified"
            )
        except CmiError as exc:
            lines.append(f"inclusion: {exc.message}")
        lines.append(body.decode()[:3000])
        shown = printable("\n".join(lines))
        self.app.call_from_thread(self.query_one("#entry", Static).update, shown)

    def action_export(self) -> None:
        self.app.push_screen(ExportDialog())

    def action_verify(self) -> None:
        self.notify("verifying the log…")
        self._verify()

    @worker(exclusive=True, group="verify")
    def _verify(self) -> None:
        from cmi_console.services.verify import verify

        def progress(done: int, total: int) -> None:
            self.app.call_from_thread(setattr, self, "sub_title", f"verified {done}/{total}")

        report = verify(self.session.ctx, progress)
        self.app.call_from_thread(self._verified, report)

    def _verified(self, report: Any) -> None:
        if report.ok:
            self.notify(f"the log verifies: {report.entries} entries")
            return
        first = report.findings[0]
        self.notify(
            f"{len(report.findings)} finding(s); first: {first}", severity="error", timeout=15
        )
        if first.seq is not None:
            for name in FILTERS:  # the whole log, so the bad entry has a place in it
                self.query_one(f"#f-{name}", Input).value = ""
            self.jump_to_seq = first.seq
            self.reload()

    jump_to_seq: int | None = None

    def action_focus_filters(self) -> None:
        self.query_one("#f-actor", Input).focus()

    def action_focus_log(self) -> None:
        self.query_one(AuditLogView).focus()


class ExportDialog(ActionDialog):
    """Write a compliance bundle, with a progress bar; the whole log or one model."""

    def compose(self) -> ComposeResult:
        default = Path.home() / f"cmi-bundle-{date.today().isoformat()}.zip"
        with Vertical(id="dialog"):
            yield Label("Export a compliance bundle (verify it with `cmi audit verify-bundle`)")
            yield Input(value=str(default), placeholder="bundle file (.zip)", id="out")
            yield Input(placeholder="model (empty: the whole log)", id="model")
            yield ProgressBar(id="progress", show_eta=False)
            with Horizontal():
                yield Button("Export", id="export", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(False)
            return
        from cmi_console.services import export

        text = self.query_one("#out", Input).value.strip()
        if not text:
            self.notify("give the bundle a file name", severity="error")
            return
        # the console's working directory is no place the reviewer chose: say where
        out = Path(text).expanduser().absolute()
        model = self.query_one("#model", Input).value.strip() or None
        bar = self.query_one("#progress", ProgressBar)

        def progress(done: int, total: int) -> None:
            self.app.call_from_thread(bar.update, total=total, progress=done)

        self.submit(
            lambda: export.export(self.ctx, out, model=model, progress=progress),
            lambda s: f"exported {s['entries']} entries to {s['bundle']}",
        )
