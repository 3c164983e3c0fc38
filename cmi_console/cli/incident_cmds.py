"""`cmi incident ...`: report, annotate, link, close and investigate incidents."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cmi_console.cli import common
from cmi_console.cli.common import IncidentArg
from cmi_console.core.clock import shown

app = typer.Typer(help="Incidents and their investigation.", no_args_is_help=True)
JsonOpt = common.JsonOpt


def _show(view: dict, as_json: bool) -> None:  # type: ignore[type-arg]
    common.show(f"incident {view['incident']}", view, as_json)


@app.command("open")
def open_(
    model: Annotated[str, typer.Argument(help="The model concerned.")],
    title: Annotated[str, typer.Option(help="What happened, in one line.")],
    at: Annotated[
        str | None, typer.Option(help="When it happened (ISO 8601); default now.")
    ] = None,
    severity: Annotated[str, typer.Option(help="low, medium, high or critical.")] = "medium",
    as_json: JsonOpt = False,
) -> None:
    """Report an incident on a model.

    The same report again by its reporter while the incident is open (same
    title, severity and --at) is answered with it; nothing is written.
    """
    from cmi_console.core.clock import parse_time
    from cmi_console.services import incidents

    when = parse_time(at, "--at") if at is not None else None
    view = incidents.open_incident(common.context(), model, title, at=when, severity=severity)
    if not view["created"]:
        common.answered(
            f"you reported this as incident {view['incident']} already ({shown(view['opened_at'])})"
        )
    _show(view, as_json)


@app.command("note")
def note(
    incident: IncidentArg,
    text: Annotated[str, typer.Argument(help="The note.")],
    as_json: JsonOpt = False,
) -> None:
    """Add a note to an incident.

    The incident's last note again by its writer (a retry) is answered with
    the incident; nothing is written.
    """
    from cmi_console.services import incidents

    view = incidents.note(common.context(), incident, text)
    if not view["created"]:
        common.answered(f"incident {incident}'s last note is this one, by you")
    _show(view, as_json)


@app.command("link")
def link(
    incident: IncidentArg,
    version: Annotated[str | None, typer.Option(help="A version, MODEL:VERSION.")] = None,
    entry: Annotated[int | None, typer.Option(help="A log entry (seq).")] = None,
    validation: Annotated[int | None, typer.Option(help="A validation run id.")] = None,
    deployment: Annotated[int | None, typer.Option(help="A deployment id.")] = None,
    window: Annotated[int | None, typer.Option(help="A monitoring window id.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Link an incident to a version, entry, validation, deployment or window.

    The target is a version, a log entry, a validation run, a deployment or a
    monitoring window. A link the incident has already is answered with it,
    naming who made it; nothing is written."""
    from cmi_console.core.errors import BadInput
    from cmi_console.services import incidents

    options = {
        "version": version,
        "entry": entry,
        "validation": validation,
        "deployment": deployment,
        "window": window,
    }
    given = [(k, v) for k, v in options.items() if v is not None]
    if len(given) != 1:
        raise BadInput("incident link: give exactly one of " + ", ".join(f"--{k}" for k in options))
    kind, ref = given[0]
    view = incidents.link(common.context(), incident, kind, str(ref))
    if not view["created"]:
        common.answered(f"incident {incident} links {kind} {ref} already (by {view['linked_by']})")
    _show(view, as_json)


@app.command("close")
def close(
    incident: IncidentArg,
    root_cause: Annotated[str, typer.Option(help="What caused it.")],
    as_json: JsonOpt = False,
) -> None:
    """Close an incident with its root cause (a signed decision).

    The same closing again by its closer (a retry) is answered with the
    incident; nothing is written.
    """
    from cmi_console.services import incidents

    view = incidents.close(common.context(), incident, root_cause)
    if not view["created"]:
        common.answered(f"you closed incident {incident} already ({shown(view['closed_at'])})")
    _show(view, as_json)


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="open or closed.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Incidents, newest first."""
    from cmi_console.services import incidents

    rows = incidents.list_incidents(common.context(), status=status, model=model)
    if as_json:
        common.print_json(rows)
        return
    common.table(
        None,
        ["id", "model", "severity", "status", "kind", "happened", "title"],
        [
            [
                r["incident"],
                r["model"],
                r["severity"],
                r["status"],
                r["kind"],
                shown(r["occurred_at"]),
                r["title"],
            ]
            for r in rows
        ],
    )


@app.command("show")
def show(incident: IncidentArg, as_json: JsonOpt = False) -> None:
    """One incident with its notes and links."""
    from cmi_console.services import incidents

    _show(incidents.show(common.context(), incident), as_json)


@app.command("timeline")
def timeline(
    incident: IncidentArg,
    hours_before: Annotated[
        float, typer.Option(help="Start this many hours before it happened.")
    ] = 72.0,
    as_json: JsonOpt = False,
) -> None:
    """What the log recorded around the incident, in time order."""
    from cmi_console.services import incidents

    t = incidents.timeline(common.context(), incident, hours_before)
    if as_json:
        common.print_json(t)
        return
    common.table(
        f"incident {incident}: {t['incident']['title']} ({shown(t['from'])} to {shown(t['to'])})",
        ["time", "seq", "kind", "actor", "subject", "what"],
        [
            [shown(e["time"]), e["seq"], e["kind"], e["actor"], e["subject"], e["summary"]]
            for e in t["events"]
        ],
    )


@app.command("report")
def report(
    incident: IncidentArg,
    out: Annotated[Path, typer.Option("--out", help="FILE.md or FILE.html")],
    as_json: JsonOpt = False,
) -> None:
    """Write the investigation report: summary, serving state, links, notes, timeline."""
    from cmi_console.services import incidents

    common.show("report", incidents.report(common.context(), incident, out), as_json)
