"""Incidents, and the investigation view: the timeline around one incident
and the registry as of the moment selected in it."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from cmi_console.core.clock import shown
from cmi_console.core.errors import CmiError
from cmi_console.core.printable import printable
from cmi_console.tui.base import DataScreen, EmptyNote, fill, worker


class IncidentsScreen(DataScreen):
    AUTO_FOCUS = "#incidents"

    def body(self) -> ComposeResult:
        yield Static("Incidents (enter investigates)", classes="title", markup=False)
        yield DataTable(id="incidents", cursor_type="row")
        yield EmptyNote(
            "No incidents. `cmi incident open MODEL --title TEXT` reports one; "
            "a break-glass promotion opens one itself.",
            id="empty",
        )

    def on_mount(self) -> None:
        self.query_one("#incidents", DataTable).add_columns(
            "id", "model", "severity", "status", "kind", "happened", "title"
        )
        super().on_mount()

    def fetch(self) -> Any:
        from cmi_console.services import incidents

        return incidents.list_incidents(self.session.ctx)

    def show(self, data: Any) -> None:
        fill(
            self.query_one("#incidents", DataTable),
            [
                (
                    str(i["incident"]),
                    [
                        i["incident"],
                        i["model"],
                        i["severity"],
                        i["status"],
                        i["kind"],
                        shown(i["occurred_at"], minute=True),
                        i["title"],
                    ],
                )
                for i in data
            ],
        )
        self.query_one("#empty", EmptyNote).follow(len(data))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.push_screen(InvestigationScreen(int(event.row_key.value)))


class InvestigationScreen(DataScreen):
    """Move through the timeline: the right-hand panel shows which version
    held which stage at that moment, rebuilt from the log."""

    AUTO_FOCUS = "#timeline"

    def __init__(self, incident_id: int) -> None:
        super().__init__()
        self.incident_id = incident_id
        self.events: list[dict[str, Any]] = []
        self.model = ""
        self.opened = False  # the cursor starts on the moment it happened, once

    def body(self) -> ComposeResult:
        yield Static("", id="summary", classes="title", markup=False)
        with Horizontal():
            yield DataTable(id="timeline", cursor_type="row")
            yield Static("", id="as-of", markup=False)

    def on_mount(self) -> None:
        self.query_one("#timeline", DataTable).add_columns(
            "time", "seq", "kind", "actor", "subject", "what"
        )
        super().on_mount()

    def fetch(self) -> Any:
        from cmi_console.services import incidents

        return incidents.timeline(self.session.ctx, self.incident_id)

    def show(self, data: Any) -> None:
        i = data["incident"]
        self.model, self.events = i["model"], data["events"]
        closed = f" · closed by {i['closed_by']}: {i['root_cause']}" if i["closed_at"] else ""
        summary = (
            f"incident {i['incident']} · {i['model']} · {i['severity']} · {i['status']} · "
            f"{i['title']} · happened {shown(i['occurred_at'])}{closed} · "
            f"{len(i['notes'])} note(s), {len(i['links'])} link(s)"
        )
        self.query_one("#summary", Static).update(printable(summary, one_line=True))
        fill(
            self.query_one("#timeline", DataTable),
            [
                (
                    str(n),
                    [
                        shown(e["time"]),
                        "" if e["seq"] is None else e["seq"],
                        e["kind"],
                        e["actor"],
                        e["subject"],
                        e["summary"],
                    ],
                )
                for n, e in enumerate(self.events)
            ],
        )
        if not self.opened:
            # what was serving when it happened is the first question; the
            # timeline's first row is 72 hours before it
            self.opened = True
            happened = [e["action"] for e in self.events].index("incident.happened")
            self.query_one("#timeline", DataTable).move_cursor(row=happened)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None and self.events:
            self._as_of(self.events[int(event.row_key.value)]["time"])

    @worker(exclusive=True, group="as-of")
    def _as_of(self, when: str) -> None:
        from cmi_console.services import history

        this = get_current_worker()  # a later row's replay cancels this one
        try:
            state = history.as_of(
                self.session.ctx, when, self.model, cancelled=lambda: this.is_cancelled
            )
        except history.Cancelled:
            return
        except CmiError as exc:
            text = exc.message
        else:
            note = history.later_note(state)
            lines = [f"registry as of {shown(when)}", *([f"note: {note}"] if note else []), ""]
            for m in state["models"]:
                serving = {v: slot for slot, v in m["serving"].items()}
                for v in m["versions"]:
                    slot = f"  serving {serving[v['version']]}" if v["version"] in serving else ""
                    by = history.staged_by_text(v["staged_by"])
                    lines.append(
                        f"{m['model']}:{v['version']}  {v['stage']}{slot}"
                        + (f"  (by {by})" if by else "")
                    )
                    if slot and (evidence := history.evidence_text(v["staged_by"])):
                        lines.append(f"    rested on: {evidence}")
                for env, traffic in m["traffic"].items():
                    lines.append(f"{m['model']} traffic in {env}: {history.traffic_text(traffic)}")
            text = "\n".join(lines)
        if not this.is_cancelled:  # a later row's answer must not be overwritten by this one
            self.app.call_from_thread(self.query_one("#as-of", Static).update, text)
