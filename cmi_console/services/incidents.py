"""Incidents: open, note, link, close (a signed decision), and investigate.

The timeline merges, in time order, what the log recorded around the
incident for its model: decisions, promotions, validation results, the
incident's own notes and links, and any entry linked to it. Deployments and
monitoring alerts join it when they exist (their entries are log entries of
the same model, so they appear here without change).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select, text

from cmi_console.core import clock, documents, entry_text, names, roles
from cmi_console.core.errors import BadInput, NotFound
from cmi_console.core.printable import printable
from cmi_console.core.refs import model_subjects
from cmi_console.services import history, lineage, registry
from cmi_console.services.context import Context
from cmi_console.services.identity import active_roles, require_enabled, require_role
from cmi_console.store.artifacts import require_writable
from cmi_console.store.driver import stream_rows
from cmi_console.store.tables import (
    Deployment,
    Incident,
    IncidentLink,
    IncidentNote,
    MonitoringWindow,
    ValidationRun,
    table,
)

INCIDENTS, NOTES, LINKS = table(Incident), table(IncidentNote), table(IncidentLink)
SEVERITIES = ("low", "medium", "high", "critical")
STATUSES = ("open", "closed")
LINK_KINDS = ("version", "entry", "validation", "deployment", "window")
_LINKED = {"validation": ValidationRun, "deployment": Deployment, "window": MonitoringWindow}
WINDOW_HOURS = 72.0  # the timeline starts this long before the incident happened
MAX_HOURS_BEFORE = 24 * 366 * 100  # a century: past it the start is no date
_ENTRY = text("SELECT seq, time, actor, action, subject, body FROM audit_entries WHERE seq = :seq")


def _reporter(ctx: Context, conn: Any) -> str:
    """Anyone who holds a role may report and annotate an incident."""
    actor = ctx.require_actor()
    require_enabled(conn, actor, "report incidents")
    if not active_roles(conn, actor):
        raise BadInput(f"{actor}: holds no role; cannot report incidents")
    return actor


def _row(conn: Any, incident_id: int) -> Any:
    row = conn.execute(select(INCIDENTS).where(INCIDENTS.c.id == incident_id)).first()
    if row is None:
        raise NotFound(f"incident {incident_id} does not exist")
    return row


def open_incident(
    ctx: Context, model: str, title: str, *, at: str | None = None, severity: str = "medium"
) -> dict[str, Any]:
    names.entity(model, "MODEL")
    if not title.strip() or len(title) > 300:
        raise BadInput("--title: must be 1 to 300 characters")
    if printable(title, one_line=True) != title:
        # a line break ran on into the lineage graphs and the tables a title heads
        raise BadInput(f"--title: must be one line of text: {printable(title, one_line=True)}")
    names.one_of(severity, SEVERITIES, "--severity")
    with ctx.write() as tx:
        actor = _reporter(ctx, tx.conn)
        m = registry.model_row(tx.conn, model)
        occurred = at or tx.time
        if occurred > tx.time:
            raise BadInput(f"--at: {occurred} is in the future")
        same = _open_already(tx.conn, m.id, title.strip(), severity, actor, at)
        if same is not None:
            return {**show_in(tx.conn, same), "created": False}
        incident_id = tx.insert(
            INCIDENTS,
            {
                "model_id": m.id,
                "title": title.strip(),
                "severity": severity,
                "kind": "incident",
                "status": "open",
                "details": {},
                "opened_at": tx.time,
                "opened_by": actor,
                "occurred_at": occurred,
            },
        )
        tx.record(
            "incident.open",
            f"incident:{incident_id}",
            {"incident": incident_id, "kind": "incident", "model": model, "at": occurred},
        )
    return {**show(ctx, incident_id), "created": True}


def _open_already(
    conn: Any, model_id: int, title: str, severity: str, actor: str, at: str | None
) -> int | None:
    """The open incident this report repeats (a retry, the same report typed
    twice): same model, title, severity and reporter, and the same moment if
    one was given (a report without `--at` matches one that had none)."""
    rows = conn.execute(
        select(INCIDENTS.c.id, INCIDENTS.c.occurred_at, INCIDENTS.c.opened_at).where(
            INCIDENTS.c.status == "open",
            INCIDENTS.c.model_id == model_id,
            INCIDENTS.c.kind == "incident",
            INCIDENTS.c.title == title,
            INCIDENTS.c.severity == severity,
            INCIDENTS.c.opened_by == actor,
        )
    ).all()
    for r in rows:
        if (r.occurred_at or r.opened_at) == (at or r.opened_at):
            return int(r.id)
    return None


def note(ctx: Context, incident_id: int, text: str) -> dict[str, Any]:
    if not text.strip() or len(text) > 4000:
        raise BadInput("TEXT: must be 1 to 4000 characters")
    with ctx.write() as tx:
        actor = _reporter(ctx, tx.conn)
        _row(tx.conn, incident_id)
        last = tx.conn.execute(
            select(NOTES.c.text, NOTES.c.created_by)
            .where(NOTES.c.incident_id == incident_id)
            .order_by(NOTES.c.id.desc())
            .limit(1)
        ).first()
        if last is not None and (last.text, last.created_by) == (text, actor):
            # the note its writer just added, again (a retry): not a second copy
            return {**show_in(tx.conn, incident_id), "created": False}
        note_id = tx.insert(
            NOTES,
            {"incident_id": incident_id, "text": text, "created_at": tx.time, "created_by": actor},
        )
        tx.record("incident.note", f"incident:{incident_id}", {"note": note_id})
    return {**show(ctx, incident_id), "created": True}


def link(ctx: Context, incident_id: int, kind: str, ref: str) -> dict[str, Any]:
    """Point the incident at a version (MODEL:VERSION), a log entry (SEQ), a
    validation run, a deployment or a monitoring window (ID); the target must
    exist."""
    names.one_of(kind, LINK_KINDS, "link kind")
    with ctx.write() as tx:
        actor = _reporter(ctx, tx.conn)
        _row(tx.conn, incident_id)
        ref, node = _check_target(tx.conn, kind, ref)
        exists = tx.conn.execute(
            select(LINKS.c.created_by).where(
                LINKS.c.incident_id == incident_id, LINKS.c.kind == kind, LINKS.c.ref == ref
            )
        ).first()
        if exists:
            # the link holds (a retry, or a second investigator found the same
            # evidence): answered, with who made it, rather than refused
            return {**show_in(tx.conn, incident_id), "created": False, "linked_by": exists[0]}
        tx.insert(
            LINKS,
            {
                "incident_id": incident_id,
                "kind": kind,
                "ref": ref,
                "created_at": tx.time,
                "created_by": actor,
            },
        )
        if kind != "entry":  # a log entry is evidence, not a lineage node
            lineage.connect(tx, [((kind, node), ("incident", incident_id), "incident")])
        tx.record("incident.link", f"incident:{incident_id}", {"kind": kind, "ref": ref})
    return {**show(ctx, incident_id), "created": True}


def _check_target(conn: Any, kind: str, ref: str) -> tuple[str, int]:
    """The target's canonical ref and its id (the lineage node); NotFound if absent."""
    if kind == "version":
        v = registry.version_row(conn, ref)
        return f"{registry.model_name(conn, v.model_id)}:{v.version}", int(v.id)
    try:
        number = int(ref)
    except ValueError:
        raise BadInput(f"--{kind}: '{ref}' is not a number") from None
    if kind == "entry":
        found = conn.execute(_ENTRY, {"seq": number}).first()
    else:
        rows = table(_LINKED[kind])
        found = conn.execute(select(rows.c.id).where(rows.c.id == number)).first()
    if found is None:
        raise NotFound(f"--{kind}: {number} does not exist")
    return str(number), number


def close(ctx: Context, incident_id: int, root_cause: str) -> dict[str, Any]:
    """Closing is a decision: signed by the closer, who must hold a closing role."""
    if not root_cause.strip() or len(root_cause) > 4000:
        raise BadInput("--root-cause: must be 1 to 4000 characters")
    with ctx.write() as tx:
        actor = ctx.require_actor()
        require_role(tx.conn, actor, roles.DECISION_ROLES["incident.close"], "close incidents")
        row = _row(tx.conn, incident_id)
        if row.status == "closed":
            if (row.closed_by, row.root_cause) == (actor, root_cause):
                return {**show_in(tx.conn, incident_id), "created": False}  # a retry
            raise BadInput(f"incident {incident_id} is already closed (by {row.closed_by})")
        tx.update(
            INCIDENTS,
            incident_id,
            {
                "status": "closed",
                "closed_at": tx.time,
                "closed_by": actor,
                "root_cause": root_cause,
            },
        )
        tx.record(
            "incident.close",
            f"incident:{incident_id}",
            {"incident": incident_id, "root_cause": root_cause},
        )
    return {**show(ctx, incident_id), "created": True}


def _view(conn: Any, row: Any) -> dict[str, Any]:
    return {
        "incident": row.id,
        "model": registry.model_name(conn, row.model_id),
        "title": row.title,
        "severity": row.severity,
        "kind": row.kind,
        "status": row.status,
        "occurred_at": row.occurred_at or row.opened_at,
        "opened_at": row.opened_at,
        "opened_by": row.opened_by,
        "closed_at": row.closed_at,
        "closed_by": row.closed_by,
        "root_cause": row.root_cause,
        "details": row.details,
    }


def list_incidents(
    ctx: Context, *, status: str | None = None, model: str | None = None
) -> list[dict[str, Any]]:
    stmt = select(INCIDENTS).order_by(INCIDENTS.c.id.desc())
    if status is not None:  # an unknown status had quietly listed nothing
        stmt = stmt.where(INCIDENTS.c.status == names.one_of(status, STATUSES, "--status"))
    with ctx.read() as conn:
        if model is not None:
            stmt = stmt.where(INCIDENTS.c.model_id == registry.model_row(conn, model).id)
        return [_view(conn, r) for r in conn.execute(stmt)]


def show(ctx: Context, incident_id: int) -> dict[str, Any]:
    with ctx.read() as conn:
        return show_in(conn, incident_id)


def show_in(conn: Any, incident_id: int) -> dict[str, Any]:
    row = _row(conn, incident_id)
    notes = conn.execute(
        select(NOTES).where(NOTES.c.incident_id == incident_id).order_by(NOTES.c.id)
    ).all()
    links = conn.execute(
        select(LINKS).where(LINKS.c.incident_id == incident_id).order_by(LINKS.c.id)
    ).all()
    return {
        **_view(conn, row),
        "notes": [{"time": n.created_at, "by": n.created_by, "text": n.text} for n in notes],
        "links": [{"kind": lk.kind, "ref": lk.ref, "by": lk.created_by} for lk in links],
    }


def timeline(ctx: Context, incident_id: int, hours_before: float = WINDOW_HOURS) -> dict[str, Any]:
    """What happened around the incident, in time order (then log order)."""
    if not 0 <= hours_before <= MAX_HOURS_BEFORE:  # also false for nan
        raise BadInput(f"--hours-before: must be 0 to {MAX_HOURS_BEFORE} hours, not {hours_before}")
    incident = show(ctx, incident_id)
    model = incident["model"]
    start = clock.add(incident["occurred_at"], hours=-hours_before)
    end = incident["closed_at"] or ctx.clock()
    linked = {int(lk["ref"]) for lk in incident["links"] if lk["kind"] == "entry"}
    versions = {f"version:{lk['ref']}" for lk in incident["links"] if lk["kind"] == "version"}
    exact, prefix = model_subjects(model)
    mine = exact | {f"incident:{incident_id}"}
    events = []
    with ctx.read() as conn:
        for part in stream_rows(
            conn,
            "SELECT seq, time, actor, action, subject, body FROM audit_entries "
            "WHERE time >= ? AND time <= ? ORDER BY seq",
            (start, end),
        ):
            for seq, time_, actor, action, subject, body in part:
                if not (
                    subject in mine
                    or subject in versions
                    or subject.startswith(prefix)
                    or seq in linked
                ):
                    continue
                events.append(_event(seq, time_, actor, action, subject, body))
        for seq in sorted(linked):  # linked entries outside the window still belong
            if not any(e["seq"] == seq for e in events):
                events.append(_event(*conn.execute(_ENTRY, {"seq": seq}).one()))
    events.append(
        {
            "time": incident["occurred_at"],
            "seq": None,
            "kind": "incident",
            "action": "incident.happened",
            "actor": "",
            "subject": f"incident:{incident_id}",
            "summary": "the incident happened",
        }
    )
    events.sort(key=lambda e: (e["time"], -1 if e["seq"] is None else e["seq"]))
    return {"incident": incident, "from": start, "to": end, "events": events}


def _event(
    seq: int, time_: str, actor: str, action: str, subject: str, body: Any
) -> dict[str, Any]:
    data = orjson.loads(bytes(body)).get("data") or {}
    return {
        "time": time_,
        "seq": seq,
        "kind": entry_text.kind(action),
        "action": action,
        "actor": actor,
        "subject": subject,
        "summary": entry_text.summary(action, data, time_),
    }


def report(ctx: Context, incident_id: int, out: Path) -> dict[str, Any]:
    """Write the investigation report as Markdown (.md) or HTML (.html)."""
    if out.suffix not in (".md", ".html"):
        raise BadInput(f"--out: {out.name} must end in .md or .html")
    require_writable(out, "--out")
    t = timeline(ctx, incident_id)
    i = t["incident"]
    nothing = "No version held an exclusive stage at that instant."
    late, staged_by, evidence, traffic = None, {}, {}, {}
    try:
        state = history.as_of(ctx, i["occurred_at"], i["model"])
        serving = state["models"][0]["serving"] if state["models"] else {}
        traffic = state["models"][0]["traffic"] if state["models"] else {}
        versions = [v for m in state["models"] for v in m["versions"]]
        staged_by = {v["version"]: history.staged_by_text(v["staged_by"]) for v in versions}
        evidence = {v["version"]: history.evidence_text(v["staged_by"]) for v in versions}
        late = history.later_note(state)
    except NotFound:  # it happened before the model came into the registry (an import)
        serving, nothing = {}, f"{i['model']} was not in the registry yet at that instant."
    summary = [
        f"Model {i['model']}; severity {i['severity']}; status {i['status']}.",
        f"Happened {i['occurred_at']}; reported {i['opened_at']} by {i['opened_by']}.",
    ]
    if i["closed_at"]:
        summary.append(f"Closed {i['closed_at']} by {i['closed_by']}: {i['root_cause']}")
    sections: list[documents.Section] = [
        ("Summary", [("p", summary)]),
        (
            "Serving when it happened",
            documents.table_or(
                [["slot", "version", "put there by (entry)", "on what evidence"]]
                + [
                    [k, str(v), staged_by.get(v, ""), evidence.get(v, "")]
                    for k, v in serving.items()
                ],
                nothing,
            )
            + ([("p", [f"Note: {late}."])] if late else []),
        ),
        (
            "Traffic when it happened",
            documents.table_or(
                [["environment", "traffic, set by (entry)"]]
                + [[env, history.traffic_text(t)] for env, t in traffic.items()],
                "No deployment had sent it traffic.",
            ),
        ),
        (
            "Links",
            documents.table_or(
                [["kind", "ref", "by"]] + [[lk["kind"], lk["ref"], lk["by"]] for lk in i["links"]],
                "None.",
            ),
        ),
        (
            "Notes",
            documents.table_or(
                [["time", "by", "note"]] + [[n["time"], n["by"], n["text"]] for n in i["notes"]],
                "None.",
            ),
        ),
        (
            f"Timeline ({t['from']} to {t['to']})",
            documents.table_or(
                [["time", "seq", "kind", "actor", "subject", "what"]]
                + [
                    [
                        e["time"],
                        "" if e["seq"] is None else str(e["seq"]),
                        e["kind"],
                        e["actor"],
                        e["subject"],
                        e["summary"],
                    ]
                    for e in t["events"]
                ],
                "Nothing was logged in this window.",
            ),
        ),
    ]
    title = f"Incident {incident_id}: {i['title']}"
    render = documents.markdown if out.suffix == ".md" else documents.to_html
    try:
        out.write_text(render(title, sections))
    except OSError as exc:
        raise BadInput(f"--out: cannot write {out} ({exc.strerror})") from None
    return {"incident": incident_id, "report": str(out), "events": len(t["events"])}
