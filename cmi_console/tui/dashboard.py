"""Dashboard: models by stage, my reviews, recent decisions, incidents,
monitoring alerts, zombie models, failing validations and the log's health."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.widgets import DataTable, Static

from cmi_console.core import entry_text
from cmi_console.core.clock import shown
from cmi_console.tui.base import DataScreen, fill

# exact actions, not prefixes: an equality on the indexed action column comes
# back in log order from the index, where "version.*" would also sweep up
# every tag change of a large registry
DECISIONS = (
    "gate.approve",
    "gate.reject",
    "gate.promote",
    "version.retire",
    "version.archive",
    "break-glass.execute",
    "policy.activate",
    "model.tier",
    "incident.close",
    "deploy.start",
    "deploy.complete",
    "deploy.rollback",
)


class DashboardScreen(DataScreen):
    def body(self) -> ComposeResult:
        with Grid(id="dashboard"):
            with VerticalScroll(classes="panel"):
                yield Static("Models by stage", id="models-title", classes="title", markup=False)
                yield DataTable(id="models", cursor_type="row")
            with VerticalScroll(classes="panel"):
                yield Static("My pending reviews", classes="title", markup=False)
                yield DataTable(id="mine", cursor_type="row")
            with VerticalScroll(classes="panel"):
                yield Static("Recent decisions", classes="title", markup=False)
                yield DataTable(id="recent", cursor_type="row")
            with VerticalScroll(classes="panel"):
                yield Static("Alerts and failing validations", classes="title", markup=False)
                yield DataTable(id="alerts", cursor_type="row")
                yield Static("", id="health", markup=False)

    def on_mount(self) -> None:
        self.query_one("#models", DataTable).add_columns("stage", "models", "versions")
        self.query_one("#mine", DataTable).add_columns("#", "version", "to", "approvals")
        self.query_one("#recent", DataTable).add_columns("time", "who", "subject", "what")
        self.query_one("#alerts", DataTable).add_columns("kind", "subject", "detail")
        super().on_mount()
        # the log check usually ends after the first load: its outcome (a
        # tampered log above all) must not wait for the next reload to show
        self.watch(self.app, "verify_status", self._show_health, init=False)

    def fetch(self) -> Any:
        from cmi_console.services import (
            audit,
            gates,
            incidents,
            monitoring,
            registry,
            validations,
        )

        ctx = self.session.ctx
        recent: list[dict[str, Any]] = []
        for pattern in DECISIONS:
            recent += audit.query(ctx, action=pattern, limit=8)
        recent.sort(key=lambda e: e["seq"], reverse=True)
        return {
            "models": registry.stage_summary(ctx),
            "mine": gates.queue(ctx, mine=True) if self.session.actor else [],
            "recent": recent[:8],
            "failing": validations.recent_failures(ctx, limit=8),
            "break_glass": registry.break_glass_versions(ctx),
            "incidents": incidents.list_incidents(ctx, status="open"),
            "monitoring": monitoring.open_alerts(ctx, limit=8),
            "zombies": monitoring.zombies(ctx),
            "head": audit.head(ctx),
        }

    def show(self, data: Any) -> None:
        summary = data["models"]
        fill(
            self.query_one("#models", DataTable),
            [(s["stage"], [s["stage"], s["models"], s["versions"]]) for s in summary["stages"]]
            + [
                (
                    "total",
                    ["all", summary["models"], sum(s["versions"] for s in summary["stages"])],
                )
            ],
        )
        tiers = ", ".join(f"{t} {n}" for t, n in summary["tiers"].items())
        self.query_one("#models-title", Static).update(
            "Models by stage" + (f" (tiers: {tiers})" if tiers else "")
        )
        fill(
            self.query_one("#mine", DataTable),
            [
                (str(q["request"]), [q["request"], q["version"], q["to_stage"], q["approvals"]])
                for q in data["mine"]
            ],
        )
        fill(
            self.query_one("#recent", DataTable),
            [
                (
                    str(e["seq"]),
                    [
                        shown(e["time"], minute=True),
                        e["actor"],
                        e["subject"],
                        # what the decision was, as the timeline and `audit show` say it
                        entry_text.summary(e["action"], e.get("data") or {}, e["time"]),
                    ],
                )
                for e in data["recent"]
            ],
        )
        alerts = (
            [
                (
                    f"i{i['incident']}",
                    [f"incident ({i['severity']})", i["model"], f"#{i['incident']} {i['title']}"],
                )
                for i in data["incidents"]
            ]
            + [
                (
                    f"a{a['alert']}",
                    [
                        f"alert: {a['kind']}",
                        f"{a['model']}:{a['version']} ({a['environment']})",
                        a["detail"],
                    ],
                )
                for a in data["monitoring"]
            ]
            + [
                (
                    f"z{z['model']}{z['version']}{z['environment']}",
                    [
                        "zombie",
                        f"{z['model']}:{z['version']} ({z['environment']})",
                        ", ".join(z["flags"]),
                    ],
                )
                for z in data["zombies"]
            ]
            + [
                (
                    f"bg{v['model']}{v['version']}",
                    ["BREAK-GLASS", f"{v['model']}:{v['version']}", v["stage"]],
                )
                for v in data["break_glass"]
            ]
            + [
                (
                    f"v{r['run']}",
                    ["validation failed", r["version"], f"{r['suite']}: {', '.join(r['failed'])}"],
                )
                for r in data["failing"]
            ]
        )
        fill(self.query_one("#alerts", DataTable), alerts)
        self._head = data["head"]
        self._show_health()

    _head: dict[str, Any] | None = None

    def _show_health(self) -> None:
        head = self._head
        if head is None:  # not loaded yet: the load shows it
            return
        health = self.query_one("#health", Static)
        health.update(
            f"Log: {head['size']} entries · last checkpoint at {head['checkpoint_size']} "
            f"({shown(head['checkpoint_time'])}) · {self.app.verify_status}"  # type: ignore[attr-defined]
        )
        health.set_class(self.app.verify_failed, "error")  # type: ignore[attr-defined]
