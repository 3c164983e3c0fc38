"""Time travel over the log: the registry as it was at an instant, and what
changed between two instants. Both are rebuilt from the audit log alone,
never from the current tables, so they show what the log proves."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from cmi_console.core import gates
from cmi_console.core.deployments import shares_text
from cmi_console.core.errors import BadInput, IntegrityError, NotFound
from cmi_console.core.replay import RegistryState
from cmi_console.services.context import Context
from cmi_console.store.driver import stream_rows
from cmi_console.store.tables import REGISTRY_TABLES, AuditEntry, table

ENTRIES = table(AuditEntry)
_NO_END = 2**62  # past any seq: "to the log's end" as a bound
# the tables an answer of as_of reads: the only ones its replay rebuilds
_AS_OF_TABLES = ("models", "model_versions", "aliases", "deployment_events")
# An entry whose body has none of these changes none of those tables: a body is
# canonical JSON (RFC 8785: no whitespace, no needless escapes), and `verify`
# names any that is not. A match elsewhere in a body (a tag named "t") only
# costs that entry's parse. Most entries of a big log (tag changes, validations,
# monitoring windows, alerts) are then skipped unparsed; a registration, which
# inserts its version, is read.
_CHANGES_AS_OF_TABLES = re.compile(
    b'"t":"(?:' + b"|".join(t.encode() for t in _AS_OF_TABLES) + b')"'
)


@dataclass
class Replayed:
    """The registry rebuilt from a prefix of the log."""

    state: RegistryState
    applied: int = 0  # entries in the prefix
    last: str | None = None  # the time of its last entry
    later: int = 0  # entries stamped by the instant that come after it (see state_at)
    whole: bool = False  # no entry is stamped after the instant: the prefix is the log
    # the log's first entry's time when the instant is before it: an empty
    # answer then says "too early", not "nothing was registered"
    starts: str | None = None
    # per version row: the entry that last set its stage (who, when, seq) and
    # what it rested on (see _decided_on)
    staged_by: dict[int, dict[str, Any]] = field(default_factory=dict)
    # per deployment event row: the entry that set that traffic (who, when, seq)
    traffic_by: dict[int, dict[str, Any]] = field(default_factory=dict)


class Cancelled(Exception):
    """The caller gave up on a replay (the console moved on to another row)."""


# entries between two looks at `cancelled`: a look costs nothing at this rate,
# and the replay of a million entries stops within a few milliseconds
_CANCEL_EVERY = 1024


def state_at(ctx: Context, when: str, cancelled: Callable[[], bool] | None = None) -> Replayed:
    """Replay the log's prefix stamped at or before `when`, in log order.

    `later` counts the entries stamped at or before `when` that come after
    that prefix. (Entries are stamped after their transaction takes the log's
    lock and never before the entry ahead of them, so time order is log order
    and that count is 0; a log written before that rule may hold entries
    whose writer's clock was behind. Applying them without the entries ahead
    of them built registry states that never existed.)

    Only the tables an answer reads are rebuilt, from the entries that change
    them (see _CHANGES_AS_OF_TABLES): on a log of a million entries, most of
    them tags, that is a third of the time and of the memory.

    `cancelled`, looked at every _CANCEL_EVERY entries, stops the replay
    (raising Cancelled): in the console each highlighted row of a timeline
    starts one, and a thread cannot be stopped from outside. On a million
    entries one takes seconds and hundreds of MB; scrolling had run them
    side by side.
    """
    out = Replayed(RegistryState(REGISTRY_TABLES, keep=_AS_OF_TABLES))
    with ctx.read() as conn:
        end = _first_after(conn, when)
        out.whole = end is None
        if end is not None:
            out.later = conn.execute(
                select(func.count()).where(ENTRIES.c.time <= when, ENTRIES.c.seq > end)
            ).scalar_one()
        # seq and body only: a million rows' other columns cost a third of the
        # reading, and the entries applied carry them in their bodies
        for part in stream_rows(
            conn,
            "SELECT seq, body FROM audit_entries WHERE seq < ? ORDER BY seq",
            (_NO_END if end is None else end,),
        ):
            for seq, body in part:
                if cancelled is not None and out.applied % _CANCEL_EVERY == 0 and cancelled():
                    raise Cancelled
                out.applied += 1
                if _CHANGES_AS_OF_TABLES.search(body) is None:
                    continue
                entry, changes = _parsed(seq, body)
                problems = out.state.apply(changes)
                if problems:
                    raise _not_well_formed(seq, problems[0])
                for c in changes:
                    # "who put it there": the investigator's next question
                    if c["t"] == "model_versions" and "stage" in c.get("row", ()):
                        out.staged_by[c["id"]] = {**_who(seq, entry), **_decided_on(entry)}
                    elif c["t"] == "deployment_events" and c["op"] == "insert":
                        out.traffic_by[c["id"]] = _who(seq, entry)
        if out.applied:  # `seq` is the prefix's last
            out.last = conn.execute(select(ENTRIES.c.time).where(ENTRIES.c.seq == seq)).scalar_one()
        elif end is not None:  # nothing before `end`: it is the log's first entry
            out.starts = conn.execute(
                select(ENTRIES.c.time).where(ENTRIES.c.seq == end)
            ).scalar_one()
    return out


def _who(seq: int, entry: dict[str, Any]) -> dict[str, Any]:
    """The entry that did something, as a line names it (see staged_by_text)."""
    return {
        "seq": seq,
        "time": entry.get("time"),
        "actor": entry.get("actor"),
        "action": entry.get("action"),
    }


def _decided_on(entry: dict[str, Any]) -> dict[str, Any]:
    """What a stage-setting entry rested on, as it recorded it: the gate's
    conditions (a promotion's request, validation and approvals, by name;
    under break-glass, the ones it bypassed, unmet) and its signed comment
    (a retirement's reason, a break-glass justification). Read from an entry
    that may be forged, so only a list of strings is taken."""
    data = entry.get("data")
    listed = data.get("conditions") if isinstance(data, dict) else None
    conditions = [
        {k: c[k] for k in ("condition", "detail", "state")}
        for c in (listed if isinstance(listed, list) else [])
        if isinstance(c, dict)
        and all(isinstance(c.get(k), str) for k in ("condition", "detail", "state"))
    ]
    statement = data.get("statement") if isinstance(data, dict) else None
    comment = statement.get("comment") if isinstance(statement, dict) else None
    decision = statement.get("decision") if isinstance(statement, dict) else None
    return {
        "conditions": conditions,
        "comment": comment if isinstance(comment, str) else "",
        "break_glass": decision == "break-glass",
    }


def _first_after(conn: Connection, when: str) -> int | None:
    """The seq of the log's first entry stamped after `when` (None: there is none)."""
    seq = conn.execute(select(func.min(ENTRIES.c.seq)).where(ENTRIES.c.time > when)).scalar()
    return None if seq is None else int(seq)


def _parsed(seq: int, body: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An entry and its changes, checked: the answer is built from the log
    alone, so a malformed (forged) entry must stop it with a finding, not
    crash it."""
    try:
        entry = orjson.loads(bytes(body))
    except orjson.JSONDecodeError:
        entry = None
    changes = entry.get("changes", []) if isinstance(entry, dict) else None
    if not isinstance(changes, list) or not all(
        isinstance(c, dict) and {"t", "op", "id"} <= c.keys() for c in changes
    ):
        raise _not_well_formed(seq, "its changes are not a list of changes")
    return entry, changes  # type: ignore[return-value]


def _not_well_formed(seq: int, why: str) -> IntegrityError:
    return IntegrityError(f"entry {seq}: {why}; the log is not well-formed: run `cmi audit verify`")


def as_of(
    ctx: Context,
    when: str,
    model: str | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Which version was in which stage (and environment) at `when`
    (`cancelled`: see state_at)."""
    replayed = state_at(ctx, when, cancelled)
    try:
        return _as_of(replayed, when, model)
    except (KeyError, TypeError, AttributeError):  # a logged row without its columns
        raise IntegrityError(
            f"the rows the log built by {when} are not well-formed: run `cmi audit verify`"
        ) from None


def staged_by_text(by: dict[str, Any] | None) -> str:
    """Who put a version in its stage, as a line names it: `sam #125 gate.promote`."""
    return f"{by['actor']} #{by['seq']} {by['action']}" if by else ""


def traffic_text(traffic: dict[str, Any]) -> str:
    """Who took an environment's traffic, and whose step set it, in a line:
    `v1 75%, v2 25% since 2026-11-28T08:45:00Z, set by dora #127
    deploy.rollback: error rate`. The stage slot says which version a gate
    let in; during a rollout the traffic is what was actually serving."""
    # in `cmi deploy`'s words for the same traffic
    served = shares_text(traffic["shares"]) or "nothing"
    if traffic["mirror"]:
        served += f"; mirroring to {shares_text(traffic['mirror'])}"
    by = staged_by_text(traffic["set_by"])
    return (
        f"{served} since {traffic['since']}"
        + (f", set by {by}" if by else "")
        + (f": {traffic['reason']}" if traffic["reason"] else "")
    )


def evidence_text(by: dict[str, Any] | None) -> str:
    """What put a version in its stage rested on, in a line: `request #4 by
    alice · validation run #4 passed · approvals:reviewer 2/2 (bob, nina)`.
    Not "; ": a detail as recorded may hold one, and read as two conditions.

    A break-glass promotion leads with it, and the conditions it went past
    read "bypassed", not "unmet": they were unmet and overridden by two
    admins' signatures, which is the investigator's point. The hint a
    detail was recorded with for whoever ran the gate then (`; run `cmi
    request``) is dropped: it is advice for that moment, not history."""
    if not by:
        return ""
    glass = bool(by.get("break_glass"))
    parts = ["break-glass"] if glass else []
    for c in by.get("conditions", []):
        if c["condition"] == "transition":  # the stage column says it
            continue
        state = c["state"]
        shown = "bypassed" if glass and state == "unmet" else state
        detail = c["detail"].split(gates.HINT, 1)[0]
        parts.append(f"{c['condition']} {detail}" + ("" if state == "met" else f" ({shown})"))
    if by.get("comment"):
        parts.append(f"comment: {by['comment']}")
    return " · ".join(parts)


def later_note(report: dict[str, Any]) -> str | None:
    """What an answer of `as_of` left out, in a sentence; None when nothing."""
    n = report["later_in_log"]
    if not n:
        return None
    return (
        f"{n} log entr{'y' if n == 1 else 'ies'} stamped by {report['at']} come after one "
        "stamped later (a writer's clock was behind) and are not applied: this is the log "
        "up to its first entry stamped after that instant"
    )


def _as_of(replayed: Replayed, when: str, model: str | None) -> dict[str, Any]:
    t = replayed.state.tables
    models = {m["id"]: m for m in t["models"].values()}
    if model is not None and model not in {m["name"] for m in models.values()}:
        raise NotFound(f"model '{model}' did not exist at {when}")
    aliases: dict[int, dict[str, int]] = defaultdict(dict)
    numbers = {v["id"]: v["version"] for v in t["model_versions"].values()}
    for a in t["aliases"].values():
        aliases[a["model_id"]][a["alias"]] = numbers.get(a["version_id"])
    # each environment's traffic: its latest deployment event at `when`
    traffic: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for ev in sorted(t["deployment_events"].values(), key=lambda e: e["id"]):
        traffic[ev["model_id"]][ev["environment"]] = {
            "shares": ev["shares"],
            "mirror": ev["mirror"],
            "deployment": ev["deployment_id"],
            "status": ev["status"],
            "since": ev["created_at"],
            "set_by": replayed.traffic_by.get(ev["id"]),
            "reason": ev.get("reason") or "",
        }
    out = []
    for mid, m in sorted(models.items(), key=lambda kv: kv[1]["name"]):
        if model is not None and m["name"] != model:
            continue
        versions = sorted(
            (v for v in t["model_versions"].values() if v["model_id"] == mid),
            key=lambda v: v["version"],
        )
        serving = {
            v["slot"]: v["version"] for v in versions if v.get("slot")
        }  # "production@eu" -> version
        out.append(
            {
                "model": m["name"],
                "tier": m.get("risk_tier"),
                "serving": dict(sorted(serving.items())),
                "traffic": dict(sorted(traffic[mid].items())),
                "aliases": dict(sorted(aliases[mid].items())),
                "versions": [
                    {
                        "version": v["version"],
                        "stage": v["stage"],
                        "status": v["status"],
                        "environment": v.get("environment"),
                        "break_glass": bool(v.get("break_glass")),
                        "author": v["author"],
                        "artifact_sha256": v["artifact_sha256"],
                        "staged_by": replayed.staged_by.get(v["id"]),
                    }
                    for v in versions
                ],
            }
        )
    return {
        "at": when,
        "entries": replayed.applied,
        "last_entry_time": replayed.last,
        "later_in_log": replayed.later,
        "whole_log": replayed.whole,
        "log_starts": replayed.starts,
        "models": out,
    }


def diff(ctx: Context, start: str, end: str) -> dict[str, Any]:
    """Entries stamped in (start, end], grouped by subject, with the rows each changed."""
    if end <= start:
        raise BadInput(f"audit diff: the second instant ({end}) must be after the first ({start})")
    subjects: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with ctx.read() as conn:
        for part in stream_rows(
            conn,
            "SELECT seq, time, actor, action, subject, body FROM audit_entries "
            "WHERE time > ? AND time <= ? ORDER BY seq",
            (start, end),
        ):
            for seq, time_, actor, action, subject, body in part:
                _, changes = _parsed(seq, body)
                subjects[subject].append(
                    {
                        "seq": seq,
                        "time": time_,
                        "actor": actor,
                        "action": action,
                        "rows": [f"{c['op']} {c['t']}#{c['id']}" for c in changes],
                    }
                )
    return {
        "from": start,
        "to": end,
        "entries": sum(len(v) for v in subjects.values()),
        "subjects": [{"subject": s, "entries": e} for s, e in sorted(subjects.items())],
    }
