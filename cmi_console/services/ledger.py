"""Appending to the log and sealing it with a signed checkpoint.

Both run inside the caller's write transaction, so a state change, its entry
and the checkpoint that covers it commit together or not at all.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from cmi_console.core import checkpoint, entries, keys
from cmi_console.core.merkle import CompactRange
from cmi_console.store.tables import AuditEntry, CheckpointRow, table

ENTRIES = table(AuditEntry)
CHECKPOINTS = table(CheckpointRow)


def head(conn: Connection) -> tuple[int, str]:
    """(next seq, hash of the last entry)."""
    row = conn.execute(
        select(ENTRIES.c.seq, ENTRIES.c.hash).order_by(ENTRIES.c.seq.desc()).limit(1)
    ).first()
    return (row[0] + 1, row[1]) if row else (0, entries.GENESIS_PREV)


def append(
    conn: Connection,
    *,
    time: str,
    actor: str,
    action: str,
    subject: str,
    data: dict[str, Any],
    changes: list[dict[str, Any]],
    signer: tuple[str, Ed25519PrivateKey] | None,
) -> dict[str, Any]:
    seq, prev = head(conn)
    entry = entries.build(
        seq=seq,
        prev=prev,
        time=time,
        actor=actor,
        action=action,
        subject=subject,
        data=data,
        changes=changes,
    )
    if signer is not None:
        key_id, private = signer
        signature = private.sign(entries.signed_message(entry))
        entry["sig"] = {"alg": "ed25519", "key": key_id, "value": keys.b64(signature)}
    body, leaf = entries.encode(entry)
    conn.execute(
        insert(ENTRIES).values(
            seq=seq,
            prev=prev,
            hash=leaf.hex(),
            time=time,
            actor=actor,
            action=action,
            subject=subject,
            body=body,
        )
    )
    return entry


def latest_checkpoint(conn: Connection) -> Any:
    return conn.execute(select(CHECKPOINTS).order_by(CHECKPOINTS.c.id.desc()).limit(1)).first()


def seal(
    conn: Connection, origin: str, log_key: Ed25519PrivateKey, time: str
) -> tuple[str, int] | None:
    """Write a signed checkpoint for the whole log, unless the last one covers it.

    The last checkpoint's peaks (its compact range) make this O(new entries +
    log n), so the cost of a write does not grow with the log.
    """
    size, _ = head(conn)
    last = latest_checkpoint(conn)
    if last is not None and last.size == size:
        return None
    if last is not None and last.size < size:
        rng = CompactRange(last.size, [bytes.fromhex(p) for p in last.peaks])
    else:
        rng = CompactRange()
    rows = conn.execute(
        select(ENTRIES.c.hash).where(ENTRIES.c.seq >= rng.size).order_by(ENTRIES.c.seq)
    )
    rng.extend([bytes.fromhex(r[0]) for r in rows])
    cp = checkpoint.Checkpoint(origin, rng.size, rng.root())
    note = checkpoint.sign(cp, origin, log_key)
    conn.execute(
        insert(CHECKPOINTS).values(
            size=cp.size,
            root=cp.root.hex(),
            note=note,
            peaks=[p.hex() for p in rng.peaks],
            created_at=time,
        )
    )
    return note, cp.size
