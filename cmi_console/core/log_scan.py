"""The checks on a run of log entries that need no registry state.

Each stored row is hashed, parsed and checked for canonical bytes, its place in
the chain and its columns; the leaves go into a Merkle range of their own, with
the peaks kept at every size a checkpoint or the witness names. Entries stamped
before the entry ahead of them are counted (not a fault: see `earlier`). What needs the
state the log has built so far (signatures, roles, replayed changes) is handed
on in order to the caller as `forward`.

Pure and independent of every other chunk except for the `Carry` it starts
from, so `audit verify` can scan chunks in several processes and join them
(merkle.CompactRange.append_range).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

import orjson

from cmi_console.core.canonical import is_canonical_of
from cmi_console.core.entries import GENESIS_PREV, claims_decision
from cmi_console.core.merkle import CompactRange, levels, range_at

# a chunk keeps at most this many findings: past it the log is plainly broken
MAX_FINDINGS = 200
COLUMNS = ("time", "actor", "action", "subject")


@dataclass
class Carry:
    """Where a chunk starts: its first leaf's position, the hash of the entry
    before it, and the seq expected next."""

    position: int = 0
    prev: str = GENESIS_PREV
    want_seq: int = 0
    time: Any = ""  # the time of the entry before ("" sorts first)


@dataclass
class ChunkScan:
    start: int
    rng: CompactRange = field(default_factory=CompactRange)  # the chunk's own leaves
    # size -> the chunk's peaks after the leaf that brings the log to that size
    cuts: dict[int, CompactRange] = field(default_factory=dict)
    findings: list[tuple[str, str, int]] = field(default_factory=list)
    # (seq, entry) of the entries that change state, or are or claim to be
    # decisions, in log order; an entry that is no decision is cut down to its
    # `changes`, all the replay reads (a third of the bytes to pass on)
    forward: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    # entries stamped before the entry ahead of them, and the first such seq. A
    # writer does not do that since 2026-11-30 (ledger.Tail.stamp); a log
    # written before may hold some, from a writer whose clock was behind. Not
    # a fault (the chain fixes the order), but `registry as-of` answers for an
    # instant among them with the log's prefix, so the auditor is told.
    earlier: int = 0
    first_earlier: int | None = None

    def find(self, kind: str, message: str, seq: int) -> None:
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append((kind, message, seq))


def scan(rows: Iterable[Sequence[Any]], carry: Carry, sizes: Set[int]) -> ChunkScan:
    """Check rows (seq, prev, hash, time, actor, action, subject, body) in log
    order; `carry` is advanced to where the next chunk starts."""
    out = ChunkScan(carry.position)
    find, leaves, forward = out.find, [], out.forward
    sha256, loads = hashlib.sha256, orjson.loads
    prev, want_seq, last_time = carry.prev, carry.want_seq, carry.time
    for seq, prev_col, hash_col, time_, actor, action, subject, body in rows:
        try:
            if time_ < last_time:
                out.earlier += 1
                if out.first_earlier is None:
                    out.first_earlier = seq
        except TypeError:  # a column that is not text: column-mismatch names it
            pass
        last_time = time_
        leaf = sha256(b"\x00" + body).digest()
        leaf_hex = leaf.hex()
        if seq != want_seq:
            find("entry-missing", f"expected entry {want_seq}, found {seq}", want_seq)
            want_seq = seq
        if hash_col != leaf_hex:
            find("hash-mismatch", "stored hash does not match the entry bytes", seq)
        try:
            obj = loads(body)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            find("unparseable", "entry bytes are not a JSON object", seq)
        else:
            if not is_canonical_of(body, obj):
                find("not-canonical", "entry bytes are not RFC 8785 canonical JSON", seq)
            if obj.get("seq") != seq:
                find("chain-broken", f"entry stored at {seq} says it is {obj.get('seq')}", seq)
            elif obj.get("prev") != prev:
                find("chain-broken", "prev does not match the hash of the entry before", seq)
            if prev_col != obj.get("prev"):
                find("column-mismatch", "column prev differs from the entry", seq)
            cols = (time_, actor, action, subject)
            if (obj.get("time"), obj.get("actor"), obj.get("action"), obj.get("subject")) != cols:
                for col, value in zip(COLUMNS, cols, strict=True):
                    if obj.get(col) != value:
                        find("column-mismatch", f"column {col} differs from the entry", seq)
            if claims_decision(obj):
                forward.append((seq, obj))
            elif obj.get("changes", []) != []:  # anything else is replayed, so a forgery is seen
                forward.append((seq, {"changes": obj["changes"]}))
        prev = leaf_hex
        leaves.append(leaf)
        want_seq += 1
    tree = levels(leaves)
    start = carry.position
    out.rng = range_at(tree, len(leaves))
    out.cuts = {
        s: range_at(tree, s - start) for s in sorted(sizes) if start < s <= start + len(leaves)
    }
    carry.prev, carry.want_seq, carry.position = prev, want_seq, start + len(leaves)
    carry.time = last_time
    return out
