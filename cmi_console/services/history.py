"""Time travel over the log: the registry as it was at an instant, and what
changed between two instants. Both are rebuilt from the audit log alone,
never from the current tables, so they show what the log proves."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from cmi_console.core.errors import BadInput, IntegrityError, NotFound
from cmi_console.core.replay import RegistryState
from cmi_console.services.context import Context
from cmi_console.store.driver import stream_rows
from cmi_console.store.tables import REGISTRY_TABLES


def state_at(ctx: Context, when: str) -> tuple[RegistryState, int, str | None]:
    """Replay every entry stamped at or before `when`, in log order.

    Returns the state, the number of entries applied, and the time of the
    last one. (Entries are stamped when their transaction starts; the log's
    order is the order of commit, so an instant falls between two entries.)
    """
    state = RegistryState(REGISTRY_TABLES)
    applied, last = 0, None
    with ctx.read() as conn:
        for part in stream_rows(
            conn, "SELECT seq, time, body FROM audit_entries WHERE time <= ? ORDER BY seq", (when,)
        ):
            for seq, time_, body in part:
                problems = state.apply(_changes(seq, body))
                if problems:
                    raise _not_well_formed(seq, problems[0])
                applied, last = applied + 1, time_
    return state, applied, last


def _changes(seq: int, body: bytes) -> list[dict[str, Any]]:
    """An entry's changes, checked: the answer is built from the log alone, so
    a malformed (forged) entry must stop it with a finding, not crash it."""
    try:
        entry = orjson.loads(bytes(body))
    except orjson.JSONDecodeError:
        entry = None
    changes = entry.get("changes", []) if isinstance(entry, dict) else None
    if not isinstance(changes, list) or not all(
        isinstance(c, dict) and {"t", "op", "id"} <= c.keys() for c in changes
    ):
        raise _not_well_formed(seq, "its changes are not a list of changes")
    return changes


def _not_well_formed(seq: int, why: str) -> IntegrityError:
    return IntegrityError(f"entry {seq}: {why}; the log is not well-formed: run `cmi audit verify`")


def as_of(ctx: Context, when: str, model: str | None = None) -> dict[str, Any]:
    """Which version was in which stage (and environment) at `when`."""
    state, applied, last = state_at(ctx, when)
    try:
        return _as_of(state.tables, when, model, applied, last)
    except (KeyError, TypeError, AttributeError):  # a logged row without its columns
        raise IntegrityError(
            f"the rows the log built by {when} are not well-formed: run `cmi audit verify`"
        ) from None


def _as_of(
    t: dict[str, dict[int, dict[str, Any]]],
    when: str,
    model: str | None,
    applied: int,
    last: str | None,
) -> dict[str, Any]:
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
                    }
                    for v in versions
                ],
            }
        )
    return {"at": when, "entries": applied, "last_entry_time": last, "models": out}


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
                changes = _changes(seq, body)
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
