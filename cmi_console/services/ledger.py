"""Appending to the log and sealing it with a signed checkpoint.

Both run inside the caller's write transaction, so a state change, its entry
and the checkpoint that covers it commit together or not at all. The write
path is the hot path of every command, so its statements are built once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
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
    select(ENTRIES.c.seq, ENTRIES.c.hash, ENTRIES.c.time).order_by(ENTRIES.c.seq.desc()).limit(1)
)
_LATEST = driver.Prepared(select(CHECKPOINTS).order_by(CHECKPOINTS.c.id.desc()).limit(1))
_LATEST_SIZE = driver.Prepared(
    select(CHECKPOINTS.c.id, CHECKPOINTS.c.size).order_by(CHECKPOINTS.c.id.desc()).limit(1)
)
_PEAKS = driver.Prepared(select(CHECKPOINTS.c.peaks).where(CHECKPOINTS.c.id == bindparam("id")))
_HASHES = driver.Prepared(
    select(ENTRIES.c.hash)
    .where(ENTRIES.c.seq >= bindparam("lo"), ENTRIES.c.seq < bindparam("hi"))
    .order_by(ENTRIES.c.seq)
)


def head(conn: Connection) -> tuple[int, str]:
    """(next seq, hash of the last entry)."""
    tail = Tail.read(conn)
    return tail.start, tail.prev


@dataclass
class Tail:
    """The log's end as one write transaction sees it after taking the lock:
    read once, then advanced in memory by each append."""

    start: int
    prev: str
    time: str = ""  # the last entry's time ("" before the first)
    leaves: list[bytes] = field(default_factory=list)

    @classmethod
    def read(cls, conn: Connection) -> Tail:
        row = driver.first(conn, _HEAD)
        if row is None:
            return cls(0, entries.GENESIS_PREV)
        return cls(row[0] + 1, row[1], row[2])

    def stamp(self, now: str) -> str:
        """The time for the next entry: `now`, or the last entry's time if that
        is later. Writers' clocks differ (a team's hosts on one PostgreSQL, a
        clock stepped back): without this, time order and log order disagreed,
        and "the registry as of T" was not a prefix of the log: it applied an
        entry without the ones before it (a rollback before the deployment
        it rolled back). Times are text in one format, so text order is time
        order."""
        if now < self.time:
            return self.time
        self.time = now
        return now

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


def entries_about(
    conn: Connection, subject: str, actions: tuple[str, ...]
) -> Iterator[dict[str, Any]]:
    """The entries on `subject` with one of `actions`, newest first, as
    written: a retry is answered with the decision its first try signed, read
    back from the log rather than rebuilt (the subject index finds them)."""
    rows = conn.execute(
        select(ENTRIES.c.body)
        .where(ENTRIES.c.subject == subject, ENTRIES.c.action.in_(actions))
        .order_by(ENTRIES.c.seq.desc())
    ).all()  # read whole: a cursor left open would outlive a caller that stops early
    for (body,) in rows:
        yield orjson.loads(bytes(body))


def newest(
    conn: Connection,
    subject: str,
    actions: tuple[str, ...],
    where: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any] | None:
    """The newest entry on `subject` with one of `actions` (and, given
    `where`, of which it is true), or None: what last happened to the thing
    a retry asks about."""
    return next(
        (e for e in entries_about(conn, subject, actions) if where is None or where(e)), None
    )


def answer(entry: dict[str, Any], **first: Any) -> dict[str, Any]:
    """A retry's answer: what `entry` (its first try) recorded, after the
    fields in `first`, with `created` false and where it stands in the log."""
    return {**first, **entry["data"], "created": False, "seq": entry["seq"], "time": entry["time"]}


def latest_checkpoint(conn: Connection) -> Any:
    return driver.first(conn, _LATEST)


@dataclass(frozen=True)
class Seal:
    """A checkpoint as written: its note, size, row id and compact range."""

    note: str
    size: int
    checkpoint_id: int
    rng: CompactRange


def seal(
    conn: Connection,
    signer: checkpoint.NoteSigner,
    time: str,
    tail: Tail | None = None,
    last: Seal | None = None,
) -> Seal | None:
    """Write a signed checkpoint for the whole log, unless the last one covers it.

    The last checkpoint's peaks (its compact range) plus the leaf hashes this
    transaction appended (`tail`, kept in memory) make this O(new entries +
    log n) without reading entries back, so a write's cost does not grow with
    the log. `last`, this process's previous seal, saves decoding the peaks
    while its row is still the latest checkpoint.
    """
    tail = tail or Tail.read(conn)
    size = tail.next_seq
    latest = driver.first(conn, _LATEST_SIZE)
    if latest is not None and latest.size == size:
        return None
    rng = CompactRange()
    if latest is not None and latest.size <= tail.start:
        if last is not None and (last.checkpoint_id, last.size) == (latest.id, latest.size):
            rng = last.rng.copy()
        else:
            peaks = driver.scalar(conn, _PEAKS, {"id": latest.id})
            rng = CompactRange(latest.size, [bytes.fromhex(p) for p in peaks])
    if rng.size < tail.start:  # entries no checkpoint covers yet: read them once
        rows = driver.all_rows(conn, _HASHES, {"lo": rng.size, "hi": tail.start})
        rng.extend([bytes.fromhex(r[0]) for r in rows])
    rng.extend(tail.leaves)
    cp = checkpoint.Checkpoint(signer.name, rng.size, rng.root())
    note = signer.sign(cp)
    new_id = driver.insert_row(
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
    return Seal(note, cp.size, int(new_id), rng)  # type: ignore[arg-type]
