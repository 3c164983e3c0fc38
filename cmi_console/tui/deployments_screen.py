"""Deployments: each environment's traffic now (live: the screen reloads
when the log grows), the traffic history of the selected one, and rollback
or advance as signed decisions."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Input, Label, Static

from cmi_console.core.clock import shown
from cmi_console.core.deployments import shares_text
from cmi_console.core.errors import CmiError
from cmi_console.tui.base import DataScreen, EmptyNote, fill, worker
from cmi_console.tui.reviews import ActionDialog

BAR = 20  # characters for 100% of the traffic


def share_bar(shares: dict[str, int]) -> str:
    """v1 ███████████████░░░░░ 75% · v2 25%: the biggest share drawn, all listed."""
    if not shares:
        return "nothing serves"
    filled = round(max(shares.values()) / 100 * BAR)
    listed = shares_text(shares, " · ", by_share=True)
    return f"{'█' * filled}{'░' * (BAR - filled)} {listed}"


class DeploymentsScreen(DataScreen):
    AUTO_FOCUS = "#serving"
    BINDINGS = [
        ("b", "rollback", "Roll back"),
        ("a", "advance", "Advance"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, Any]] = {}

    def body(self) -> ComposeResult:
        yield Static(
            "Traffic now (b rolls back, a advances: signed decisions)",
            classes="title",
            markup=False,
        )
        yield DataTable(id="serving", cursor_type="row")
        yield EmptyNote(
            "Nothing is deployed. `cmi deploy MODEL:VERSION --env ENV --strategy direct` "
            "gives a version its first traffic.",
            id="empty",
        )
        yield Static("History of the selected environment", classes="title", markup=False)
        yield DataTable(id="history", cursor_type="row")

    def on_mount(self) -> None:
        self.query_one("#serving", DataTable).add_columns(
            "model", "env", "traffic", "shadow", "rollout", "since"
        )
        self.query_one("#history", DataTable).add_columns(
            "at", "#", "action", "status", "serving", "by", "reason"
        )
        super().on_mount()

    def fetch(self) -> Any:
        from cmi_console.services import deployments, registry

        ctx = self.session.ctx
        rows: dict[str, dict[str, Any]] = {}
        open_by_key = {
            f"{d['model']}@{d['environment']}": d
            for d in deployments.list_deployments(ctx, open_only=True)
        }
        for m in registry.list_models(ctx):
            for s in deployments.serving(ctx, m["name"]):
                key = f"{m['name']}@{s['environment']}"
                rows[key] = {**s, "model": m["name"], "open": open_by_key.get(key)}
        return {"rows": rows}

    def _selected_key(self) -> str | None:
        table = self.query_one("#serving", DataTable)
        if not table.row_count:
            return None
        try:
            return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        except Exception:  # no cursor yet
            return None

    def show(self, data: Any) -> None:
        self.rows = data["rows"]
        fill(
            self.query_one("#serving", DataTable),
            [
                (
                    key,
                    [
                        r["model"],
                        r["environment"],
                        share_bar(r["shares"]),
                        shares_text(r["mirror"]) or "-",
                        (
                            f"#{r['open']['deployment']} {r['open']['strategy']} of "
                            f"v{r['open']['version']} ({r['open']['status']})"
                        )
                        if r["open"]
                        else "-",
                        shown(r["since"], minute=True),
                    ],
                )
                for key, r in sorted(self.rows.items())
            ],
        )
        self.query_one("#empty", EmptyNote).follow(len(self.rows))
        self._history(self._selected_key())

    @worker(exclusive=True, group="history")
    def _history(self, key: str | None) -> None:
        from cmi_console.services import deployments

        row = self.rows.get(key) if key else None
        if row is None:
            return
        try:
            events = deployments.history(self.session.ctx, row["model"], row["environment"])
        except CmiError as exc:
            self.app.call_from_thread(self.notify, exc.message, severity="error")
            return
        self.app.call_from_thread(self._show_history, events)

    def _show_history(self, events: list[dict[str, Any]]) -> None:
        fill(
            self.query_one("#history", DataTable),
            [
                (
                    str(h["event"]),
                    [
                        shown(h["at"], minute=True),
                        h["deployment"],
                        h["action"],
                        h["status"],
                        shares_text(h["shares"]),
                        h["by"],
                        h["reason"],
                    ],
                )
                for h in reversed(events)
            ],
        )

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "serving" and event.row_key.value is not None:
            self._history(str(event.row_key.value))

    def _current(self) -> dict[str, Any] | None:
        key = self._selected_key()
        return self.rows.get(key) if key else None

    def action_rollback(self) -> None:
        row = self._current()
        if row is None:
            return
        self.app.push_screen(
            DeploymentDialog(row["model"], row["environment"], "rollback", row),
            lambda _ok: self.reload(),
        )

    def action_advance(self) -> None:
        row = self._current()
        if row is None or row["open"] is None:
            self.notify("no rollout in progress here", severity="warning")
            return
        self.app.push_screen(
            DeploymentDialog(row["model"], row["environment"], "advance", row),
            lambda _ok: self.reload(),
        )


class DeploymentDialog(ActionDialog):
    """Roll back or advance: what changes, a reason, and a signature. The
    service checks the role and the state machine; a refusal stays on screen."""

    def __init__(self, model: str, env: str, action: str, row: dict[str, Any]) -> None:
        super().__init__()
        self.model, self.env, self.action, self.row = model, env, action, row

    def compose(self) -> ComposeResult:
        what = (
            f"end rollout #{self.row['open']['deployment']}: the stable version takes all traffic"
            if self.action == "rollback" and self.row["open"]
            else "undo the last completed deployment: the version before it serves again"
            if self.action == "rollback"
            else "move the rollout one step on"
        )
        with Vertical(id="dialog"):
            yield Label(f"{self.action.title()} {self.model} in {self.env}: you are about to sign")
            yield Static(f"now: {share_bar(self.row['shares'])}\n{what}", markup=False)
            yield Input(placeholder="reason", id="reason")
            with Horizontal():
                yield Button(f"Sign and {self.action}", id="sign", variant="warning")
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(False)
            return
        from cmi_console.services import deployments

        reason = self.query_one("#reason", Input).value
        self.submit(
            lambda: deployments.act(self.ctx, self.model, self.env, self.action, reason=reason),
            lambda out: f"{self.model} in {self.env}: {share_bar(out['shares'])} (signed)",
        )
