"""What an attacker with write access to the database can do: bypass the
append-only triggers, edit, and put the triggers back."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import text

from cmi_console.core import entries
from cmi_console.core.canonical import canonical_bytes
from cmi_console.core.merkle import leaf_hash
from cmi_console.store.triggers import create_append_only, drop_append_only


def raw(ws: Any, *statements: tuple[str, dict[str, Any]]) -> None:
    ctx = ws.ctx()
    with ctx.engine.begin() as conn:
        drop_append_only(conn)
        for sql, params in statements:
            conn.execute(text(sql), params)
        create_append_only(conn)
    ctx.engine.dispose()


def rows(ws: Any) -> list[Any]:
    ctx = ws.ctx()
    with ctx.engine.connect() as conn:
        out = conn.execute(
            text("SELECT seq, prev, hash, body FROM audit_entries ORDER BY seq")
        ).all()
    ctx.engine.dispose()
    return out


def body(ws: Any, seq: int) -> dict[str, Any]:
    return orjson.loads(bytes(next(r for r in rows(ws) if r.seq == seq).body))


def rewrite_from(ws: Any, seq: int, edit: Any) -> None:
    """Edit entry `seq` and recompute every later hash and prev, as a careful attacker would."""
    statements = []
    prev = None
    for r in rows(ws):
        if r.seq < seq:
            prev = r.hash
            continue
        obj = orjson.loads(bytes(r.body))
        if r.seq == seq:
            edit(obj)
        obj["prev"] = prev if prev is not None else entries.GENESIS_PREV
        data = canonical_bytes(obj)
        h = leaf_hash(data).hex()
        statements.append(
            (
                "UPDATE audit_entries SET body = :b, hash = :h, prev = :p WHERE seq = :s",
                {"b": data, "h": h, "p": obj["prev"], "s": r.seq},
            )
        )
        prev = h
    # prev and hash are unique: move rows out of the way first
    tmp = [
        (
            "UPDATE audit_entries SET prev = 't' || seq, hash = 'u' || seq WHERE seq >= :s",
            {"s": seq},
        )
    ]
    raw(ws, *tmp, *statements)


def append_forged(
    ws: Any, action: str, changes: list[dict[str, Any]], sig: dict[str, Any] | None = None
) -> int:
    last = rows(ws)[-1]
    entry = entries.build(
        seq=last.seq + 1,
        prev=last.hash,
        time="2030-01-01T00:00:00.000000Z",
        actor="root",
        action=action,
        subject="forged",
        data={},
        changes=changes,
    )
    if sig is not None:
        entry["sig"] = sig
    data, h = entries.encode(entry)
    raw(
        ws,
        (
            "INSERT INTO audit_entries (seq, prev, hash, time, actor, action, subject, body) "
            "VALUES (:s, :p, :h, :t, 'root', :a, 'forged', :b)",
            {
                "s": entry["seq"],
                "p": last.hash,
                "h": h.hex(),
                "t": entry["time"],
                "a": action,
                "b": data,
            },
        ),
    )
    return int(entry["seq"])
