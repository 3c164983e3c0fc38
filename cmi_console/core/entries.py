"""Audit log entries: their fields, their hash and what a decision signs.

An entry is a JSON object, stored as its RFC 8785 canonical bytes:

    v        format version (1)
    seq      position in the log, from 0
    prev     hex hash of the entry before (64 zeros for the first)
    time     UTC instant (clock.format_time)
    actor    the principal who acted
    action   what was done, e.g. "version.register"
    subject  what it was done to, e.g. "version:credit-risk:3"
    data     action details (for a decision: the statement that was decided)
    changes  the registry rows this entry created, updated or deleted
    sig      for decisions: {"alg": "ed25519", "key": <key id>, "value": <b64>}

The entry hash is the RFC 6962 leaf hash SHA-256(0x00 || bytes).
"""

from __future__ import annotations

from typing import Any

from cmi_console.core.canonical import canonical_bytes
from cmi_console.core.merkle import leaf_hash

FORMAT_VERSION = 1
GENESIS_PREV = "0" * 64
SIGNATURE_DOMAIN = b"cmi-console/decision/v1\n"
FIELDS = ("v", "seq", "prev", "time", "actor", "action", "subject", "data", "changes")

# Decisions must be signed by the deciding principal (DESIGN.md invariant 5).
DECISION_ACTIONS = frozenset(
    {
        "workspace.init",
        "user.add",
        "user.disable",
        "role.grant",
        "role.revoke",
        "key.add",
        "key.revoke",
        "policy.activate",
        "model.tier",
        "gate.approve",
        "gate.reject",
        "gate.promote",
        "version.archive",
        "version.retire",
        "break-glass.sign",
        "break-glass.execute",
        "incident.close",
        "deploy.start",
        "deploy.advance",
        "deploy.pause",
        "deploy.resume",
        "deploy.complete",
        "deploy.rollback",
    }
)


def claims_decision(entry: dict[str, Any]) -> bool:
    """A decision, or an entry that says it is signed: its signature is checked."""
    action = entry.get("action")
    # a forged entry's action may be a list: membership of a set would raise
    return (isinstance(action, str) and action in DECISION_ACTIONS) or "sig" in entry


def build(
    *,
    seq: int,
    prev: str,
    time: str,
    actor: str,
    action: str,
    subject: str,
    data: dict[str, Any],
    changes: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "v": FORMAT_VERSION,
        "seq": seq,
        "prev": prev,
        "time": time,
        "actor": actor,
        "action": action,
        "subject": subject,
        "data": data,
        "changes": changes,
    }


def signed_message(entry: dict[str, Any]) -> bytes:
    """What a decision's signature covers: the whole entry except `sig`.

    Binding seq and prev ties the decision to its place in the log, so a valid
    signature cannot be replayed into another entry.
    """
    unsigned = {k: v for k, v in entry.items() if k != "sig"}
    return SIGNATURE_DOMAIN + canonical_bytes(unsigned)


def verifiable_message(entry: dict[str, Any]) -> bytes | None:
    """signed_message for a checker: None when a forged entry holds a value
    canonical JSON cannot write (a number beyond 2**53), which no signer could
    have signed."""
    try:
        return signed_message(entry)
    except ValueError:
        return None


def encode(entry: dict[str, Any]) -> tuple[bytes, bytes]:
    """Return (canonical bytes, leaf hash)."""
    body = canonical_bytes(entry)
    return body, leaf_hash(body)
