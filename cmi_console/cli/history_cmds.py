"""`cmi registry as-of`: the registry at an instant, rebuilt from the log."""

from __future__ import annotations

from typing import Annotated

import typer

from cmi_console.cli import common

app = typer.Typer(help="The registry as the audit log proves it was.", no_args_is_help=True)


@app.command("as-of")
def as_of(
    when: Annotated[str, typer.Argument(help="The instant (ISO 8601; a date means 00:00 UTC).")],
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Which version was in which stage, and took which share of traffic, at that instant."""
    from cmi_console.core.clock import parse_time, utc_now
    from cmi_console.services import history

    at = parse_time(when, "WHEN")
    report = history.as_of(common.context(), at, model)
    # a year mistyped, answered with today's registry headed with that instant
    # (unless a host's clock ahead stamped entries after it: then it is not now)
    if at > (now := utc_now()) and report["whole_log"]:
        common.echo(f"note: WHEN is after now ({now}): this is the registry as it is now", err=True)
    if report["log_starts"]:  # a date mistyped the other way, or the wrong workspace
        common.echo(
            f"note: WHEN is before the log's first entry ({report['log_starts']}): "
            "nothing had been recorded yet",
            err=True,
        )
    if note := history.later_note(report):
        common.echo(f"note: {note}", err=True)
    if as_json:
        common.print_json(report)
        return
    rows = []
    for m in report["models"]:
        serving = {v: slot for slot, v in m["serving"].items()}
        traffic: dict[int, list[str]] = {}
        for env, t in m["traffic"].items():
            for number, pct in t["shares"].items():
                traffic.setdefault(int(number), []).append(f"{env} {pct}%")
            for number, pct in t["mirror"].items():  # in `cmi deploy list`'s word
                traffic.setdefault(int(number), []).append(f"{env} mirrored {pct}%")
        aliases: dict[int, list[str]] = {}
        for alias, number in m["aliases"].items():
            aliases.setdefault(number, []).append(alias)
        for v in m["versions"]:
            rows.append(
                [
                    m["model"],
                    v["version"],
                    v["stage"],
                    v["status"],
                    serving.get(v["version"], ""),
                    ", ".join(traffic.get(v["version"], [])),
                    ", ".join(aliases.get(v["version"], [])),
                    "break-glass" if v["break_glass"] else "",
                    history.staged_by_text(v["staged_by"]),
                ]
            )
    common.table(
        f"registry as of {report['at']} ({report['entries']} log entries)",
        ["model", "version", "stage", "status", "slot", "traffic", "aliases", "flags", "staged by"],
        rows,
    )
    # "on what evidence", for what was serving: the decision's own record
    for m in report["models"]:
        for slot, number in m["serving"].items():
            by = next(v["staged_by"] for v in m["versions"] if v["version"] == number)
            if evidence := history.evidence_text(by):
                common.echo(f"{m['model']}:{number} in {slot} rested on: {evidence}")
    # and what took the traffic, by whose step: a canary's share is serving too
    for m in report["models"]:
        for env, traffic in m["traffic"].items():
            common.echo(f"{m['model']} traffic in {env}: {history.traffic_text(traffic)}")
