"""`cmi monitor ...`: production feedback windows, late labels, triggers,
alerts, retraining and zombie models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cmi_console.cli import common
from cmi_console.cli.common import ModelArg
from cmi_console.core.clock import shown
from cmi_console.core.deployments import shares_text
from cmi_console.core.printable import printable

app = typer.Typer(help="Monitoring windows, alerts and retraining triggers.", no_args_is_help=True)
JsonOpt = common.JsonOpt


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _window_line(w: dict[str, Any]) -> None:
    c = common.console()
    c.print(
        f"window #{w['window']} {w['name']} ({w['rows']} rows, versions "
        f"{', '.join(map(str, w['versions']))}) result {w['result_sha256'][:12]}",
        markup=False,
        highlight=False,
    )
    for v, summ in sorted(w["summary"].items()):
        if v == "comparison":
            cmp_ = summ
            c.print(
                f"  v{cmp_['challenger']} vs v{cmp_['champion']} ({cmp_['mode']}): "
                f"agreement {_fmt(cmp_.get('agreement'))}, difference "
                f"{_fmt(cmp_.get('difference'))}, p {_fmt(cmp_.get('p_value'))}, "
                f"{cmp_['status']}, still needed {_fmt(cmp_.get('still_needed'))}",
                markup=False,
                highlight=False,
            )
            continue
        facts = ", ".join(f"{k} {_fmt(val)}" for k, val in sorted(summ.items()))
        c.print(f"  v{v}: {facts}", markup=False, highlight=False)


def _window_out(window: dict[str, Any], as_json: bool) -> None:
    if as_json:
        common.print_json(window)
        return
    _window_line(window)
    if window.get("unmeasured"):  # a KPI given as text would vanish without a word
        shown_values = ", ".join(
            f"{printable(c, one_line=True)} ('{printable(v, one_line=True)}')"
            for c, v in window["unmeasured"].items()
        )
        common.console().print(
            f"  columns not measured (no KPI: not numbers): {shown_values}",
            markup=False,
            highlight=False,
        )
    join = window.get("join")
    if join:  # late labels: say what the file labelled, so a bad join shows
        unknown = join["unknown_keys"]
        common.console().print(
            f"  labels: {join['given']} in the file, {join['from_file']} row(s) labelled "
            f"from it{'' if unknown is None else f', {unknown} key(s) not in the window'}; "
            f"{join['unlabelled']} of {window['rows']} row(s) still without a label",
            markup=False,
            highlight=False,
        )


@app.command("ingest")
def ingest(
    model: ModelArg,
    env: Annotated[str, typer.Option("--env", help="Where the feedback comes from.")],
    window: Annotated[Path, typer.Option("--window", help="A CSV or Parquet window.")],
    predict: Annotated[
        bool,
        typer.Option("--predict", help="No prediction column: score with the deployed versions."),
    ] = False,
    name: Annotated[str | None, typer.Option(help="Window name (default: file name).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure a window (quality, drift, performance, fairness, comparison, KPIs).

    The same data ingested again is answered with its window; nothing is written.
    """
    from cmi_console.services import monitoring

    out = monitoring.ingest(common.context(), model, env, window, predict=predict, name=name)
    if not out["created"]:
        common.answered(
            f"this data was ingested already, as window {out['window']} "
            f"('{printable(out['name'], one_line=True)}', {shown(out['created_at'])})"
        )
    _window_out(out, as_json)


@app.command("labels")
def labels(
    model: ModelArg,
    window: Annotated[int, typer.Option("--window", help="The window id.")],
    file: Annotated[Path, typer.Option("--file", help="CSV or Parquet with the target column.")],
    key: Annotated[
        str | None, typer.Option(help="Join on this column (default: row order).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Attach labels that arrived late; performance is measured again.

    The same labels again change nothing and are answered with the window.
    """
    from cmi_console.services import monitoring

    out = monitoring.labels(common.context(), model, window, file, key=key)
    if not out["created"]:
        common.answered(f"window {out['window']} has these labels already")
    _window_out(out, as_json)


@app.command("show")
def show(
    model: ModelArg,
    window: Annotated[int, typer.Argument(help="The window's number (cmi monitor status).")],
    as_json: JsonOpt = False,
) -> None:
    """One window with everything measured on it."""
    from cmi_console.services import monitoring

    out = monitoring.show_window(common.context(), model, window)
    if as_json:
        common.print_json(out)
        return
    _window_line(out)
    common.console().print(_quality_line(out["metrics"]["quality"]), markup=False, highlight=False)
    drift = out["metrics"]["drift"]
    common.table(
        f"data drift (share {_fmt(drift['share'])})",
        ["column", "method", "score", "threshold", "drifted"],
        [
            [d["column"], d["method"], _fmt(d["score"]), d["threshold"], d["drifted"]]
            for d in drift["columns"]
        ],
    )


def _quality_line(q: dict[str, Any]) -> str:
    def share(columns: dict[str, float]) -> str:
        return ", ".join(f"{c} {v:.1%}" for c, v in sorted(columns.items())) or "none"

    return (
        f"data quality: missing values {share(q['missing_by_column'])}; duplicate rows "
        f"{q['duplicate_share']:.1%}; categories never seen in training "
        f"{share(q['unseen_categories'])}"
    )


def _spark(values: list[float | None]) -> str:
    from cmi_console.core.sparkline import sparkline

    return sparkline(values)


@app.command("status")
def status(
    model: ModelArg,
    env: Annotated[
        str | None, typer.Option("--env", help="Only windows from this environment.")
    ] = None,
    version: Annotated[int | None, typer.Option(help="Only windows of this version.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The windows, their trends, open alerts and retraining requests."""
    from cmi_console.services import monitoring

    out = monitoring.status(common.context(), model, env, version=version)
    if as_json:
        common.print_json(out)
        return
    c = common.console()
    for s in out["serving"]:
        shares = shares_text(s["shares"]) or "nothing"
        c.print(f"{s['environment']}: serving {shares} since {shown(s['since'])}", markup=False)
    common.table(
        "windows",
        ["#", "name", "env", "rows", "versions", "drift", "roc_auc", "accuracy", "labels"],
        [
            [
                w["window"],
                w["name"],
                w["environment"],
                w["rows"],
                ",".join(map(str, w["versions"])),
                _fmt(w["summary"].get(str(w["versions"][0]), {}).get("drift_share")),
                _fmt(w["summary"].get(str(w["versions"][0]), {}).get("roc_auc")),
                _fmt(w["summary"].get(str(w["versions"][0]), {}).get("accuracy")),
                "yes" if w["labelled"] else "no",
            ]
            for w in out["windows"]
        ],
    )
    for v, series in sorted(out["trends"].items()):
        for metric, values in sorted(series.items()):
            if metric == "windows":
                continue
            last = next((x for x in reversed(values) if x is not None), None)
            c.print(f"  v{v} {metric:<17} {_spark(values)}  {_fmt(last)}", markup=False)
    for a in out["alerts"]:
        if a["status"] == "open":
            c.print(f"alert #{a['alert']} {a['kind']}: {a['message']}", markup=False)
    for r in out["retrain_requests"]:
        cand = f", candidate v{r['candidate']}" if r["candidate"] else ""
        c.print(f"retraining request #{r['request']} for v{r['version']}: {r['status']}{cand}")


@app.command("evaluate")
def evaluate(
    model: ModelArg,
    env: Annotated[str, typer.Option("--env", help="The environment whose windows are judged.")],
    retrain: Annotated[
        Path | None,
        typer.Option(
            "--retrain",
            help="Train the recipe on this data for each open retraining request, "
            "validate, and open its promotion request (never promotes; needs developer "
            "or admin).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply the policy's triggers and the canary's criteria.

    The triggers are age, performance and drift; a canary may roll back or
    advance on its own."""
    from cmi_console.services import monitoring

    out = monitoring.evaluate(common.context(), model, env, retrain=retrain)
    if as_json:
        common.print_json(out)
        return
    c = common.console()
    for a in out["alerts"]:
        c.print(f"alert #{a['alert']} {a['kind']}: {a['message']}", markup=False)
    for a in out["deployment_actions"]:
        c.print(f"deployment: {a['action']}: {a['reason']}", markup=False)
    for r in out.get("retrained", []):
        c.print(
            f"retraining request(s) {', '.join(f'#{n}' for n in r['requests'])}: "
            f"{'resumed' if r['resumed'] else 'trained'} {r['candidate']} "
            f"(validation {r['validation']}), waiting for approval to {r['requested']}",
            markup=False,
        )
    if not out["alerts"] and not out["deployment_actions"]:
        c.print(f"{model} in {env}: no trigger fired")
    if retrain is not None and not out["retrained"]:
        # said, so a scheduled job that passes new data knows none was used
        c.print(f"--retrain: no open retraining request; {retrain} was not trained on")


@app.command("alerts")
def alerts(as_json: JsonOpt = False) -> None:
    """Open alerts, newest first."""
    from cmi_console.services import monitoring

    rows = monitoring.open_alerts(common.context(), limit=1000)
    if as_json:
        common.print_json(rows)
        return
    common.table(
        None,
        ["#", "model", "version", "env", "kind", "message", "windows", "at"],
        [
            [
                a["alert"],
                a["model"],
                a["version"],
                a["environment"],
                a["kind"],
                a["detail"],
                ",".join(map(str, a["windows"])),
                shown(a["created_at"]),
            ]
            for a in rows
        ],
    )


@app.command("close-alert")
def close_alert(
    alert: Annotated[int, typer.Argument(help="The alert's number (cmi monitor status).")],
    comment: Annotated[str, typer.Option(help="Why it is closed.")],
    as_json: JsonOpt = False,
) -> None:
    """Close an alert (audited).

    The same closing again by its closer is answered; nothing is written.
    """
    from cmi_console.services import monitoring

    data = monitoring.close_alert(common.context(), alert, comment)
    if not data["created"]:
        common.answered(f"you closed alert {alert} already")
    common.show("alert", data, as_json)


@app.command("zombies")
def zombies(as_json: JsonOpt = False) -> None:
    """Deployed versions nobody watches; exit 1 if there are any.

    No monitoring for the policy's zombie_days, no owner, or only retired
    successors."""
    from cmi_console.services import monitoring

    rows = monitoring.zombies(common.context())
    if as_json:
        common.print_json(rows)
    else:
        common.table(
            None,
            ["model", "version", "env", "traffic", "why"],
            [
                [
                    z["model"],
                    z["version"],
                    z["environment"],
                    f"{z['traffic']}%",
                    "; ".join(z["reasons"]),
                ]
                for z in rows
            ],
        )
    if rows:
        raise typer.Exit(1)
