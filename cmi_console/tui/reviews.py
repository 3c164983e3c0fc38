"""The review queue: approve or reject with a comment after reading the exact
statement you sign; where SoD forbids it, the rule is shown instead."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from cmi_console.core.clock import shown
from cmi_console.core.errors import CmiError
from cmi_console.core.printable import printable
from cmi_console.tui.base import DataScreen, fill, worker


class ReviewQueueScreen(DataScreen):
    AUTO_FOCUS = "#requests"
    BINDINGS = [
        ("a", "decide('approve')", "Approve"),
        ("x", "decide('reject')", "Reject"),
        ("p", "promote", "Promote"),
    ]

    def body(self) -> ComposeResult:
        yield Static("Open requests", classes="title", markup=False)
        yield DataTable(id="requests", cursor_type="row")
        yield Static("", id="verdict", classes="title", markup=False)
        yield DataTable(id="conditions", cursor_type="row")
        yield Static("", id="can", markup=False)

    def on_mount(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.query_one("#requests", DataTable).add_columns(
            "#", "version", "to", "by", "opened", "approvals", "you"
        )
        self.query_one("#conditions", DataTable).add_columns("condition", "state", "detail")
        super().on_mount()

    def fetch(self) -> Any:
        from cmi_console.services import gates

        return gates.queue(self.session.ctx)

    def show(self, data: Any) -> None:
        self.rows = {str(q["request"]): q for q in data}
        fill(
            self.query_one("#requests", DataTable),
            [
                (
                    str(q["request"]),
                    [
                        q["request"],
                        q["version"],
                        q["to_stage"],
                        q["requested_by"],
                        shown(q["created_at"], minute=True),
                        q["approvals"],
                        "can decide" if q["you_can_decide"] else q["why_not"],
                    ],
                )
                for q in data
            ],
        )
        self._details()

    def selected(self) -> dict[str, Any] | None:
        table = self.query_one("#requests", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.rows.get(str(key))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "requests":
            self._details()

    def _details(self) -> None:
        q = self.selected()
        if q is None:
            self.query_one("#verdict", Static).update("Nothing waits for review.")
            self.query_one("#can", Static).update("")
            fill(self.query_one("#conditions", DataTable), [])
            return
        self._load_report(q["version"], q["to_stage"], q["environment"])
        if self.session.read_only:
            self.query_one("#can", Static).update("Read-only: no unlocked key, no decisions")
        elif q["you_can_decide"]:
            self.query_one("#can", Static).update("a: approve · x: reject (you sign a statement)")
        else:
            # the rule that forbids it, instead of a button that would fail
            self.query_one("#can", Static).update(f"You cannot decide: {q['why_not']}")

    @worker(exclusive=True, group="report")
    def _load_report(self, ref: str, to: str, env: str | None) -> None:
        from cmi_console.services import gates

        try:
            report = gates.status(self.session.ctx, ref, to, env)
        except CmiError as exc:
            self.app.call_from_thread(self.notify, exc.message, severity="error")
            return
        self.app.call_from_thread(self._show_report, report)

    def _show_report(self, report: Any) -> None:
        verdict = "ready to promote" if report.passed else "blocked"
        self.query_one("#verdict", Static).update(
            f"{report.version} -> {report.to_stage}: {verdict}"
        )
        fill(
            self.query_one("#conditions", DataTable),
            [(c.name, [c.name, c.state, c.detail]) for c in report.conditions],
        )

    def action_decide(self, decision: str) -> None:
        q = self.selected()
        if q is None:
            return
        if self.session.read_only:
            self.notify("read-only: sign in with a key to decide", severity="warning")
            return
        if not q["you_can_decide"]:
            self.notify(q["why_not"] or "you cannot decide this request", severity="warning")
            return
        self.app.push_screen(
            DecisionDialog(q["version"], q["to_stage"], q["environment"], decision),
            lambda _done: self.reload(),
        )

    def action_promote(self) -> None:
        q = self.selected()
        if q is not None:
            self._promote(q["version"], q["to_stage"], q["environment"])

    @worker(group="promote")
    def _promote(self, ref: str, to: str, env: str | None) -> None:
        from cmi_console.services import gates

        try:
            gates.promote(self.session.ctx, ref, to, env)
            self.app.call_from_thread(self.notify, f"{ref} promoted to {to}")
        except CmiError as exc:
            self.app.call_from_thread(self.notify, exc.message, severity="error", timeout=10)
        self.app.call_from_thread(self.reload)


class ActionDialog(ModalScreen[bool]):
    """A dialog that performs one service call: success closes it with a
    notification, a refusal is shown and the dialog stays open."""

    BINDINGS = [("escape", "dismiss(False)", "Cancel")]

    @property
    def ctx(self) -> Any:
        return self.app.session.ctx  # type: ignore[attr-defined]

    @worker(exclusive=True, group="submit")
    def submit(
        self, call: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], str]
    ) -> None:
        try:
            out = call()
        except CmiError as exc:
            self.app.call_from_thread(self.notify, exc.message, severity="error", timeout=10)
            return
        self.app.call_from_thread(self.notify, done(out))
        self.app.call_from_thread(self.dismiss, True)


class DecisionDialog(ActionDialog):
    """Shows the statement, takes a comment, signs on confirmation. What is
    signed is bound to the hashes shown: if they changed meanwhile, nothing is."""

    def __init__(self, ref: str, to: str, env: str | None, decision: str) -> None:
        super().__init__()
        self.ref, self.to, self.env, self.decision = ref, to, env, decision
        self.statement: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"{self.decision.title()} {self.ref} -> {self.to}: you are about to sign")
            yield Static("loading the statement…", id="statement", markup=False)
            yield Input(
                placeholder="comment" + (" (required)" if self.decision == "reject" else ""),
                id="comment",
            )
            with Horizontal():
                yield Button(
                    f"Sign and {self.decision}", id="sign", variant="primary", disabled=True
                )
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self._preview("")

    @worker(exclusive=True, group="preview")
    def _preview(self, comment: str) -> None:
        from cmi_console.core import statements
        from cmi_console.services import gates

        try:
            st = gates.preview(self.ctx, self.ref, self.to, self.decision, comment, self.env)  # type: ignore[attr-defined]
        except CmiError as exc:
            self.app.call_from_thread(self._show, None, f"You cannot sign: {exc.message}")
            return
        self.app.call_from_thread(self._show, st, statements.render(st))

    def _show(self, statement: dict[str, Any] | None, text: str) -> None:
        self.statement = statement
        self.query_one("#statement", Static).update(printable(text))
        self.query_one("#sign", Button).disabled = statement is None

    def on_input_changed(self, event: Input.Changed) -> None:
        self._preview(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(False)
        elif self.statement is not None:
            self._sign(self.query_one("#comment", Input).value, dict(self.statement))

    def _sign(self, comment: str, shown: dict[str, Any]) -> None:
        from cmi_console.services import gates

        bind = {k: shown[k] for k in gates.BINDABLE if shown.get(k)}
        self.submit(
            lambda: gates.decide(
                self.ctx, self.ref, self.to, self.decision, comment, env=self.env, bind=bind
            ),
            lambda out: f"{self.decision} #{out['decision']} signed",
        )


class RequestDialog(ActionDialog):
    """Open a request for the next stage of a version."""

    def __init__(self, ref: str) -> None:
        super().__init__()
        self.ref = ref

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Request a stage change for {self.ref}")
            yield Select[str]([], prompt="to stage", id="stage")
            yield Input(placeholder="comment", id="comment")
            with Horizontal():
                yield Button("Request", id="request", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self._stages()

    @worker()
    def _stages(self) -> None:
        from cmi_console.services import policies, registry

        ctx = self.ctx
        v = registry.show_version(ctx, self.ref)
        with ctx.read() as conn:
            eff = policies.effective_for(conn, registry.model_row(conn, v["model"]))
        options = [(s, s) for s, spec in eff.policy.stages.items() if v["stage"] in spec.from_]
        self.app.call_from_thread(self.query_one("#stage", Select).set_options, options)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        stage = self.query_one("#stage", Select).value
        if event.button.id == "cancel":
            self.dismiss(False)
        elif isinstance(stage, str):
            self._request(stage, self.query_one("#comment", Input).value)

    def _request(self, stage: str, comment: str) -> None:
        from cmi_console.services import gates

        self.submit(
            lambda: gates.request(self.ctx, self.ref, stage, None, comment),
            lambda out: (
                f"request #{out['request']} " + ("opened" if out["created"] else "was open already")
            ),
        )


class RetireDialog(ActionDialog):
    """Retire a version: reason, successor, and who must still approve."""

    def __init__(self, ref: str) -> None:
        super().__init__()
        self.ref = ref

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Retire {self.ref}: it can never be promoted or deployed again")
            yield Static("checking the retirement gate…", id="gate", markup=False)
            yield Input(placeholder="reason (required)", id="reason")
            yield Input(placeholder="successor MODEL:VERSION (optional)", id="successor")
            with Horizontal():
                yield Button("Retire", id="retire", variant="error")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self._gate()

    @worker()
    def _gate(self) -> None:
        from cmi_console.services import gates

        try:
            report = gates.status(self.ctx, self.ref, "retired")
        except CmiError as exc:
            self.app.call_from_thread(self.query_one("#gate", Static).update, exc.message)
            return
        if report.passed:
            text = "The retirement gate passes."
        else:
            text = "Still needed:\n" + "\n".join(
                f"  {c.name}: {c.detail}" for c in report.conditions if c.state != "met"
            )
        self.app.call_from_thread(self.query_one("#gate", Static).update, text)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(False)
            return
        reason = self.query_one("#reason", Input).value
        successor = self.query_one("#successor", Input).value.strip() or None
        self._retire(reason, successor)

    def _retire(self, reason: str, successor: str | None) -> None:
        from cmi_console.services import gates

        self.submit(
            lambda: gates.retire(self.ctx, self.ref, reason, successor),
            lambda out: (
                f"{self.ref} retired; notify: {', '.join(out['notify']) or 'no consumers listed'}"
                + (
                    f"; aliases removed: {', '.join(out['aliases_removed'])}"
                    if out["aliases_removed"]
                    else ""
                )
            ),
        )
