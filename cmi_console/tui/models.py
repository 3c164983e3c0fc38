"""Models (filterable) and one model: its versions and a metric's sparkline."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import DataTable, Input, Select, Sparkline, Static

from cmi_console.core.clock import shown
from cmi_console.core.printable import printable
from cmi_console.services.registry import stage_label
from cmi_console.tui.base import DataScreen, EmptyNote, fill


class ModelsScreen(DataScreen):
    AUTO_FOCUS = "#models"
    BINDINGS = [("slash", "focus_filter", "Filter")]

    def body(self) -> ComposeResult:
        yield Input(placeholder="filter: name, owner, stage, tier", id="filter")
        yield DataTable(id="models", cursor_type="row")
        yield EmptyNote(
            "No models yet: create one with `cmi model create NAME`, "
            "or train one with `cmi train RECIPE`.",
            id="empty",
        )

    def on_mount(self) -> None:
        self.rows: list[dict[str, Any]] = []
        table = self.query_one(DataTable)
        table.add_columns("model", "status", "tier", "owner", "versions", "stages", "description")
        super().on_mount()

    def fetch(self) -> Any:
        from cmi_console.services import registry

        return registry.list_models(self.session.ctx)

    def show(self, data: Any) -> None:
        self.rows = data
        self._refill()

    def _refill(self) -> None:
        needle = self.query_one("#filter", Input).value.strip().lower()
        rows = []
        for m in self.rows:
            stages = ", ".join(f"{k} {v}" for k, v in sorted(m["stages"].items()))
            cells = [
                m["name"],
                m["status"],
                m["risk_tier"] or "-",
                m["owner"],
                m["versions"],
                stages,
                m["description"][:50],
            ]
            if needle and needle not in " ".join(map(str, cells)).lower():
                continue
            rows.append((m["name"], cells))
        fill(self.query_one(DataTable), rows)
        note = self.query_one("#empty", EmptyNote)
        if self.rows and not rows:
            note.say(f"No model matches '{needle}'.")
        else:
            note.follow(len(rows))

    def on_input_changed(self, _event: Input.Changed) -> None:
        self._refill()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.app.push_screen(ModelScreen(str(event.row_key.value)))


class ModelScreen(DataScreen):
    AUTO_FOCUS = "#versions"

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model
        self.metric: str | None = None

    def body(self) -> ComposeResult:
        yield Static(f"Model {self.model}", id="title", classes="title", markup=False)
        yield Select[str]([], prompt="metric", id="metric")
        yield Sparkline([], id="spark")
        yield DataTable(id="versions", cursor_type="row")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            "version", "stage", "status", "author", "metrics", "created"
        )
        super().on_mount()

    def fetch(self) -> Any:
        from cmi_console.services import registry

        ctx = self.session.ctx
        return registry.show_model(ctx, self.model), registry.list_versions(
            ctx, self.model, limit=1000
        )

    def show(self, data: Any) -> None:
        model, versions = data
        self.versions = sorted(versions, key=lambda v: v["version"])
        self.query_one("#title", Static).update(
            f"Model {model['name']} · {model['status']} · tier {model['risk_tier']}"
            f" · owner {model['owner']} · {printable(model['description'], one_line=True)}"
        )
        metrics = sorted({k for v in self.versions for k in v["metrics"]})
        select = self.query_one("#metric", Select)
        if metrics and self.metric not in metrics:
            self.metric = metrics[0]
            select.set_options([(m, m) for m in metrics])
            select.value = self.metric
        self._spark()
        fill(
            self.query_one(DataTable),
            [
                (
                    f"{self.model}:{v['version']}",
                    [
                        v["version"],
                        stage_label(v),
                        v["status"],
                        v["author"],
                        " ".join(f"{k}={val:.4g}" for k, val in sorted(v["metrics"].items())),
                        shown(v["created_at"], minute=True),
                    ],
                )
                for v in reversed(self.versions)
            ],
        )

    def _spark(self) -> None:
        values = [v["metrics"].get(self.metric, 0.0) for v in getattr(self, "versions", [])]
        self.query_one(Sparkline).data = values

    def on_select_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.metric = event.value
            self._spark()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        from cmi_console.tui.version import VersionScreen

        self.app.push_screen(VersionScreen(str(event.row_key.value)))
