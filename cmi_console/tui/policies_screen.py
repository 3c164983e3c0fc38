"""The effective policy of each model, and every activation."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import DataTable, Select, Static

from cmi_console.core.clock import shown
from cmi_console.tui.base import DataScreen, fill


class PoliciesScreen(DataScreen):
    def body(self) -> ComposeResult:
        yield Select[str]([], prompt="model", id="model")
        yield Static("", id="summary", classes="title", markup=False)
        yield DataTable(id="stages", cursor_type="row")
        yield Static("History", classes="title", markup=False)
        yield DataTable(id="history", cursor_type="row")

    def on_mount(self) -> None:
        self.model: str | None = None
        self.query_one("#stages", DataTable).add_columns(
            "stage", "from", "suite", "approvals (with tier)", "expiry", "exclusive", "promoters"
        )
        self.query_one("#history", DataTable).add_columns(
            "scope", "sha256", "source", "active", "activated", "by"
        )
        super().on_mount()

    def fetch(self) -> Any:
        from cmi_console.services import policies, registry

        ctx = self.session.ctx
        names = [m["name"] for m in registry.list_models(ctx)]
        model = self.model if self.model in names else (names[0] if names else None)
        effective = policies.show(ctx, model) if model else None
        return names, model, effective, policies.history(ctx)

    def show(self, data: Any) -> None:
        names, model, effective, history = data
        select = self.query_one("#model", Select)
        if model != self.model:
            self.model = model
            select.set_options([(n, n) for n in names])
            if model:
                select.value = model
        if effective:
            sources = ", ".join(f"{k} {v[:12]}" for k, v in effective["sources"].items())
            self.query_one("#summary", Static).update(
                f"{model}: tier {effective['tier']} · effective policy {effective['sha256'][:16]} "
                f"· from {sources}"
            )
            stages = effective["policy"]["stages"]
            fill(
                self.query_one("#stages", DataTable),
                [
                    (
                        name,
                        [
                            name,
                            ", ".join(s["from"]) or "-",
                            s["suite"] or "-",
                            ", ".join(
                                f"{r} x{n}"
                                for r, n in effective["required_approvals"][name].items()
                            )
                            or "-",
                            f"{s['approval_expiry_days']}d" if s["approval_expiry_days"] else "-",
                            "yes" if s["exclusive"] else "",
                            ", ".join(s["promoters"]),
                        ],
                    )
                    for name, s in stages.items()
                ],
            )
        fill(
            self.query_one("#history", DataTable),
            [
                (
                    f"{h['scope']}{h['sha256']}{i}",
                    [
                        h["scope"],
                        h["sha256"][:16],
                        h["source"],
                        "yes" if h["active"] else "",
                        shown(h["activated_at"], minute=True),
                        h["activated_by"],
                    ],
                )
                for i, h in enumerate(reversed(history))
            ],
        )

    def on_select_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.model:
            self.model = event.value
            self.reload()
