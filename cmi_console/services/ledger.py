"""Appending to the log and sealing it with a signed checkpoint.

Both run inside the caller's write transaction, so a state change, its entry
and the checkpoint that covers it commit together or not at all. The write
path is the hot path of every command, so its statements are built once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from cmi_console.core import checkpoint, entries, keys
from cmi_console.core.merkle import CompactRange
from cmi_console.store import driver
from cmi_console.store.tables import AuditEntry, CheckpointRow, table

ENTRIES = table(AuditEntry)
CHECKPOINTS = table(CheckpointRow)

_HEAD = driver.Prepared(
    select(ENTRIES.c.seq, ENTRIES.c.hash).order_by(ENTRIES.c.seq.desc()).limit(1)
)
_LATEST = driver.Prepared(select(CHECKPOINTS).order_by(CHECKPOINTS.c.id.desc()).limit(1))
_HASHES = driver.Prepared(
    select(ENTRIES.c.hash)
    .where(ENTRIES.c.seq >= bindparam("lo"), ENTRIES.c.seq < bindparam("hi"))
    .order_by(ENTRIES.c.seq)
)


def head(conn: Connection) -> tuple[int, str]:
    """(next seq, hash of the last entry)."""
    row = driver.first(conn, _HEAD)
    return (row[0] + 1, row[1]) if row else (0, entries.GENESIS_PREV)


@dataclass
class Tail:
    """The log's end as one write transaction sees it after taking the lock:
    read once, then advanced in memory by each append."""

    start: int
    prev: str
    leaves: list[bytes] = field(default_factory=list)

    @classmethod
    def read(cls, conn: Connection) -> Tail:
        seq, prev = head(conn)
        return cls(seq, prev)

    @property
    def next_seq(self) -> int:
        return self.start + len(self.leaves)


def append(
    conn: Connection,
    tail: Tail,
    *,
    time: str,
    actor: str,
    action: str,
    subject: str,
    data: dict[str, Any],
    changes: list[dict[str, Any]],
    signer: tuple[str, Ed25519PrivateKey] | None,
) -> dict[str, Any]:
    seq, prev = tail.next_seq, tail.prev
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
    driver.insert_row(
        conn,
        ENTRIES,
        {
            "seq": seq,
            "prev": prev,
            "hash": leaf.hex(),
            "time": time,
            "actor": actor,
            "action": action,
            "subject": subject,
            "body": body,
        },
    )
    tail.leaves.append(leaf)
    tail.prev = leaf.hex()
    return entry


def latest_checkpoint(conn: Connection) -> Any:
    return driver.first(conn, _LATEST)


def seal(
    conn: Connection,
    origin: str,
    log_key: Ed25519PrivateKey,
    time: str,
    tail: Tail | None = None,
) -> tuple[str, int] | None:
    """Write a signed checkpoint for the whole log, unless the last one covers it.

    The last checkpoint's peaks (its compact range) plus the leaf hashes this
    transaction appended (`tail`, kept in memory) make this O(new entries +
    log n) without reading entries back, so a write's cost does not grow with
    the log.
    """
    tail = tail or Tail.read(conn)
    size = tail.next_seq
    last = latest_checkpoint(conn)
    if last is not None and last.size == size:
        return None
    if last is not None and last.size <= tail.start:
        rng = CompactRange(last.size, [bytes.fromhex(p) for p in last.peaks])
    else:
        rng = CompactRange()
    if rng.size < tail.start:  # entries no checkpoint covers yet: read them once
        rows = driver.all_rows(conn, _HASHES, {"lo": rng.size, "hi": tail.start})
        rng.extend([bytes.fromhex(r[0]) for r in rows])
    rng.extend(tail.leaves)
    cp = checkpoint.Checkpoint(origin, rng.size, rng.root())
    note = checkpoint.sign(cp, origin, log_key)
    driver.insert_row(
        conn,
        CHECKPOINTS,
        {
            "size": cp.size,
            "root": cp.root.hex(),
            "note": note,
            "peaks": [p.hex() for p in rng.peaks],
            "created_at": time,
        },
    )
    return note, cp.size
