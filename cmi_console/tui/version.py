"""One version: overview, validation, gates, lineage and audit, plus running
a validation suite with live progress that can be cancelled."""

from __future__ import annotations

import json
import threading
from typing import Any

from textual.app import ComposeResult
from textual.widgets import (
    DataTable,
    ProgressBar,
    Static,
    TabbedContent,
    TabPane,
    Tree,
)

from cmi_console.core import recipe as rcp
from cmi_console.core.clock import shown
from cmi_console.core.errors import CmiError
from cmi_console.core.printable import printable
from cmi_console.core.roles import REQUESTERS, VALIDATION_RUNNERS
from cmi_console.services.registry import RETIRED, stage_label
from cmi_console.tui.base import DataScreen, as_written, fill, worker


def _recipe_facts(run: dict[str, Any] | None) -> dict[str, str]:
    """The recipe and the environment a version was trained in, when it was.
    A run recorded by hand (`cmi run record`) may hold anything under these
    keys: what is not shaped like `cmi train`'s is shown as '?', so the
    version still opens (a string there stopped the screen)."""
    if not run:
        return {"recipe": "- (registered, not trained here)", "code": "-", "environment": "-"}
    sha, estimator = rcp.recorded(run.get("params"))
    env = run.get("environment")
    env = env if isinstance(env, dict) else {}
    return {
        "recipe": f"{(sha or '?')[:16]} {estimator or '?'}, seed {run.get('seed')}",
        "code": _code_facts(run.get("code_ref")),
        "environment": ", ".join(f"{k} {v}" for k, v in sorted(env.items())),
    }


def _code_facts(code: Any) -> str:
    """The commit trained, and whose change it was (`--change-author`: they
    may not decide on this version)."""
    from cmi_console.services.registry import change_author_of

    code = code if isinstance(code, dict) else {}
    parts = []
    commit = code.get("commit")
    if isinstance(commit, str) and commit:
        dirty = code.get("dirty")
        state = " (dirty)" if dirty else " (uncommitted changes unknown)" if dirty is None else ""
        parts.append(f"commit {commit[:12]}{state}")
    if author := change_author_of(code):
        parts.append(f"change by {author}")
    return ", ".join(parts) or "-"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


class VersionScreen(DataScreen):
    BINDINGS = [
        ("v", "validate", "Run validation"),
        ("c", "cancel", "Cancel run"),
        ("g", "request", "Request next stage"),
        ("R", "retire", "Retire"),
    ]

    def __init__(self, ref: str) -> None:
        super().__init__()
        self.ref = ref
        self.cancel_event: threading.Event | None = None
        self.check_results: dict[str, dict[str, Any]] = {}  # the last run's checks, by label
        self.refused: dict[str, bool] = {}  # action -> the principal may not (see _refusals)

    def body(self) -> ComposeResult:
        yield Static(self.ref, id="title", classes="title", markup=False)
        with TabbedContent(id="tabs"):
            with TabPane("Overview", id="overview"):
                yield Static("", id="overview-text", markup=False)
            with TabPane("Validation", id="validation"):
                yield Static("", id="run-status", markup=False)
                yield ProgressBar(id="run-progress", show_eta=False)
                yield DataTable(id="checks", cursor_type="row")
                yield Static("", id="check-title", markup=False)
                yield DataTable(id="check-detail", cursor_type="row")
            with TabPane("Approvals and gates", id="gates"):
                yield DataTable(id="conditions", cursor_type="row")
                yield DataTable(id="decisions", cursor_type="row")
            with TabPane("Monitoring", id="monitoring"):
                yield Static("", id="serving", markup=False)
                yield DataTable(id="windows", cursor_type="row")
                yield Static("", id="trends", markup=False)
            with TabPane("Lineage", id="lineage"):
                yield Tree[tuple[str, str]](self.ref, id="tree")
            with TabPane("Audit", id="audit"):
                yield DataTable(id="entries", cursor_type="row")

    def on_mount(self) -> None:
        self.query_one("#checks", DataTable).add_columns(
            "check", "status", "value", "threshold", "explanation"
        )
        self.query_one("#conditions", DataTable).add_columns("gate", "condition", "state", "detail")
        self.query_one("#decisions", DataTable).add_columns(
            "#", "who", "decision", "state", "detail"
        )
        self.query_one("#entries", DataTable).add_columns("seq", "time", "actor", "action")
        self.query_one("#windows", DataTable).add_columns(
            "#", "window", "env", "rows", "drift", "pred. drift", "performance", "labels", "vs"
        )
        self.query_one("#run-progress", ProgressBar).display = False
        super().on_mount()

    def fetch(self) -> Any:
        from cmi_console.services import (
            audit,
            gates,
            lineage,
            monitoring,
            policies,
            registry,
            validations,
        )

        ctx = self.session.ctx
        v = registry.show_version(ctx, self.ref)
        model, number = v["model"], v["version"]
        with ctx.read() as conn:
            eff = policies.effective_for(conn, registry.model_row(conn, model))
        targets = [s for s, spec in eff.policy.stages.items() if v["stage"] in spec.from_]
        reports = []
        for stage in targets:
            try:
                for env in eff.policy.stages[stage].environments:
                    reports.append(gates.status(ctx, self.ref, stage, env))
            except CmiError:
                continue
        return {
            "version": v,
            "runs": validations.list_runs(ctx, self.ref),
            "reports": reports,
            "entries": audit.query(ctx, subject=f"version:{model}:{number}", limit=200),
            "policy": eff.sha256,
            "lineage": lineage.root_key(ctx, self.ref),
            "run": registry.show_run(ctx, v["run"]) if v["run"] else None,
            "monitoring": monitoring.status(ctx, model, version=number),
            "targets": targets,
            "retirers": getattr(eff.policy.stages.get(RETIRED), "promoters", []),
        }

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Dim the keys the principal at the console may not use here (the
        dialog they open would end in a refusal); None shows them disabled."""
        if action == "cancel":
            return True if self.cancel_event is not None else None
        return None if self.refused.get(action) else True

    def _refusals(self, data: Any) -> dict[str, bool]:
        """What the principal may not do on this version: by role, as the
        services check it, and by the version's state."""
        held = set(self.session.roles)
        retired = data["version"]["status"] == RETIRED
        return {
            "validate": not held & VALIDATION_RUNNERS,
            "request": not held & REQUESTERS or not data["targets"],
            # a retirement is a signed decision: a read-only console cannot sign
            "retire": retired or self.session.read_only or not held & set(data["retirers"]),
        }

    def show(self, data: Any) -> None:
        v = data["version"]
        self.refused = self._refusals(data)
        self.refresh_bindings()
        self.query_one("#title", Static).update(
            f"{v['model']}:{v['version']} · {stage_label(v)} · {v['status']} · author {v['author']}"
        )
        overview = {
            "artifact": f"{v['artifact_sha256']} ({v['artifact_format']}, "
            f"{v['artifact_size']} bytes)",
            "author": v["author"],
            "created": shown(v["created_at"]),
            "run": v["run"] or "-",
            **_recipe_facts(data["run"]),
            "datasets": ", ".join(
                f"{d['role']}={d['dataset']} {d['sha256'][:12]}" for d in v["datasets"]
            ),
            "metrics": json.dumps(v["metrics"]),
            "tags": json.dumps(v["tags"]),
            "aliases": ", ".join(v["aliases"]) or "-",
            "policy": data["policy"],
        }
        if v["break_glass"]:
            overview["BREAK-GLASS"] = "promoted by an emergency break-glass; see its incident"
        self.query_one("#overview-text", Static).update(
            "\n".join(f"{k:<12} {printable(str(v), one_line=True)}" for k, v in overview.items())
        )
        runs = data["runs"]
        if runs:
            last = runs[-1]
            self.query_one("#run-status", Static).update(
                f"run #{last['run']} {last['suite']}: {last['status'].upper()} by {last['run_by']} "
                f"· result {last['result_sha256'][:16]}"
            )
            self.check_results = {r["label"]: r for r in last["results"]}
            fill(
                self.query_one("#checks", DataTable),
                [
                    (
                        r["label"],
                        [r["label"], r["status"], r["value"], r["threshold"], r["explanation"]],
                    )
                    for r in last["results"]
                ],
            )
        conds, decisions = [], []
        for rep in data["reports"]:
            for c in rep.conditions:
                key = f"{rep.to_stage}/{rep.environment}/{c.name}"
                conds.append((key, [f"-> {rep.to_stage}", c.name, c.state, c.detail]))
            for a in rep.approvals:
                decisions.append(
                    (f"{rep.to_stage}/{a.id}", [a.id, a.principal, a.decision, a.state, a.detail])
                )
        fill(self.query_one("#conditions", DataTable), conds)
        fill(self.query_one("#decisions", DataTable), decisions)
        fill(
            self.query_one("#entries", DataTable),
            [
                (str(e["seq"]), [e["seq"], shown(e["time"]), e["actor"], e["action"]])
                for e in data["entries"]
            ],
        )
        self._monitoring(v["version"], data["monitoring"])
        self._lineage(v, data["lineage"])

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The highlighted check in detail: drift per column, or its details."""
        if event.data_table.id != "checks" or event.row_key.value is None:
            return
        result = self.check_results.get(str(event.row_key.value))
        if result is None:
            return
        table = self.query_one("#check-detail", DataTable)
        table.clear(columns=True)
        columns = (result.get("details") or {}).get("columns")
        if result.get("kind") == "drift" and columns:
            self.query_one("#check-title", Static).update(
                f"{result['label']}: drift per column (enter on a check shows it here)"
            )
            table.add_columns("column", "kind", "method", "score", "threshold", "drifted")
            drift = sorted(columns, key=lambda c: (not c["drifted"], c["column"]))
            fill(  # a column's name is a header of the user's file
                table,
                [
                    (
                        c["column"],
                        [
                            c["column"],
                            c["kind"],
                            c["method"],
                            f"{c['score']:.4g}",
                            f"{c['threshold']:g}",
                            "DRIFTED" if c["drifted"] else "",
                        ],
                    )
                    for c in drift
                ],
            )
            return
        self.query_one("#check-title", Static).update(f"{result['label']}: details")
        table.add_columns("key", "value")
        facts = {"value": result.get("value"), "threshold": result.get("threshold")}
        facts.update(result.get("details") or {})
        if result.get("warnings"):
            facts["warnings"] = result["warnings"]
        rows = []
        for key, value in facts.items():
            text = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
            rows.append((key, [key, "-" if text is None else str(text)]))
        fill(table, rows)

    def _monitoring(self, number: int, status: dict[str, Any]) -> None:
        """One row per window of this version, and its metrics over them."""
        from cmi_console.core.sparkline import sparkline

        me = str(number)
        traffic = [
            f"{s['environment']} {s['shares'][me]}%" for s in status["serving"] if me in s["shares"]
        ] + [
            f"{s['environment']} shadow {s['mirror'][me]}%"
            for s in status["serving"]
            if me in s["mirror"]
        ]
        alerts = [a for a in status["alerts"] if a["version"] == number and a["status"] == "open"]
        lines = [f"serving: {', '.join(traffic) or 'nowhere'}"]
        lines += [f"ALERT #{a['alert']} {a['kind']}: {a['detail']}" for a in alerts]
        self.query_one("#serving", Static).update("\n".join(lines))
        rows = []
        for w in status["windows"]:
            summ = w["summary"].get(me, {})
            perf = next(
                (f"{m} {summ[m]:.3f}" for m in ("roc_auc", "accuracy", "rmse", "r2") if m in summ),
                "-",
            )
            comp = w["summary"].get("comparison")
            versus = (
                f"v{comp['challenger']} {comp['status']}"
                if comp and comp.get("champion") == number
                else f"v{comp['champion']} {comp['status']}"
                if comp
                else "-"
            )
            rows.append(
                (
                    str(w["window"]),
                    [
                        w["window"],
                        w["name"],
                        w["environment"],
                        w["rows"],
                        _num(summ.get("drift_share")),
                        _num(summ.get("prediction_drift")),
                        perf,
                        "yes" if w["labelled"] else "awaited",
                        versus,
                    ],
                )
            )
        fill(self.query_one("#windows", DataTable), rows)
        series = status["trends"].get(me, {})
        plots = []
        from cmi_console.services.monitoring import TREND_METRICS

        for metric in TREND_METRICS:
            values = series.get(metric)
            if values:
                last = next((x for x in reversed(values) if x is not None), None)
                plots.append(f"{metric:<17} {sparkline(values)}  {_num(last)}")
        self.query_one("#trends", Static).update(
            "\n".join(plots) if plots else "no monitoring windows for this version"
        )

    def _lineage(self, v: dict[str, Any], key: str) -> None:
        """Two branches, loaded one step at a time as they are expanded."""
        tree: Tree[tuple[str, str]] = self.query_one("#tree", Tree)
        label = f"version {v['model']}:{v['version']} ({v['stage']})"
        if tree.root.label.plain == label and tree.root.children:
            return  # already built: keep what the reviewer expanded
        tree.clear()
        tree.root.set_label(as_written(label))
        for direction, title in (("up", "came from"), ("down", "led to")):
            branch = tree.root.add(title, data=(key, direction))
            branch.allow_expand = True
        tree.root.expand()

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[tuple[str, str]]) -> None:
        node = event.node
        if node.data is not None and not node.children:
            self._expand(node)

    @worker(group="lineage")
    def _expand(self, node: Any) -> None:
        from cmi_console.services import lineage

        key, direction = node.data
        try:
            step = lineage.node_edges(self.session.ctx, key, direction)
        except CmiError as exc:
            self.app.call_from_thread(self.notify, exc.message, severity="error")
            return
        self.app.call_from_thread(self._add_children, node, step, direction)

    def _add_children(self, node: Any, step: dict[str, Any], direction: str) -> None:
        far = "src" if direction == "up" else "dst"
        for e in sorted(step["edges"], key=lambda e: e[far]):
            child = node.add(
                as_written(f"{e['relation']}: {step['nodes'][e[far]]['label']}"),
                data=(e[far], direction),
            )
            child.allow_expand = True
        if not step["edges"]:
            node.allow_expand = False
            node.set_label(as_written(f"{node.label.plain} (nothing further)"))

    def on_tree_node_selected(self, event: Tree.NodeSelected[tuple[str, str]]) -> None:
        """enter on a node opens it: a version or an incident in its own screen."""
        if event.node.data is None or event.node is self.query_one("#tree", Tree).root:
            return
        kind, _, ident = event.node.data[0].partition(":")
        if kind == "version" and event.node.parent is not None and event.node.parent.parent:
            self._open_version(int(ident))
        elif kind == "incident":
            from cmi_console.tui.incidents_screen import InvestigationScreen

            self.app.push_screen(InvestigationScreen(int(ident)))

    @worker(group="lineage")
    def _open_version(self, version_id: int) -> None:
        from cmi_console.services import registry

        ref = registry.ref_of(self.session.ctx, version_id)
        self.app.call_from_thread(self.app.push_screen, VersionScreen(ref))

    # --- validation run ------------------------------------------------------

    def action_validate(self) -> None:
        if self.cancel_event is not None:
            self.notify("a validation is already running")
            return
        self.query_one(TabbedContent).active = "validation"
        bar = self.query_one("#run-progress", ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)
        self.cancel_event = threading.Event()
        self.refresh_bindings()
        self._run_validation(self.cancel_event)

    def action_cancel(self) -> None:
        if self.cancel_event is not None:
            self.cancel_event.set()

    @worker(group="validation")
    def _run_validation(self, cancel: threading.Event) -> None:
        from cmi_console.services import validations
        from cmi_console.validation.runner import Cancelled

        def progress(done: int, total: int, result: Any) -> None:
            label = f"checked {result.label}: {result.status}" if result else "running…"
            self.app.call_from_thread(self._progress, done, total, label)

        try:
            out = validations.validate(self.session.ctx, self.ref, progress=progress, cancel=cancel)
            message, severity = f"validation {out['status']}: run #{out['run']}", "information"
        except Cancelled as exc:
            message, severity = str(exc), "warning"
        except CmiError as exc:
            message, severity = exc.message, "error"
        self.app.call_from_thread(self._finished, message, severity)

    def _progress(self, done: int, total: int, label: str) -> None:
        self.query_one("#run-progress", ProgressBar).update(total=total, progress=done)
        self.query_one("#run-status", Static).update(label)

    def _finished(self, message: str, severity: str) -> None:
        self.cancel_event = None
        self.refresh_bindings()
        self.query_one("#run-progress", ProgressBar).display = False
        self.notify(message, severity=severity)  # type: ignore[arg-type]
        self.reload()

    def action_retire(self) -> None:
        from cmi_console.tui.reviews import RetireDialog

        self.app.push_screen(RetireDialog(self.ref), lambda _ok: self.reload())

    def action_request(self) -> None:
        from cmi_console.tui.reviews import RequestDialog

        self.app.push_screen(RequestDialog(self.ref), lambda _ok: self.reload())
