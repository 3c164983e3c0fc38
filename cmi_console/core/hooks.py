"""Event hooks: which log actions are events, what a hook receives, and how
a webhook body is signed. Pure: the services deliver (services/hooks.py).

An event is named for what happened (`gate.approved`), not for the log
action that recorded it (`gate.approve`), so the names can stay put while
actions are added.
"""

from __future__ import annotations

import hashlib
import hmac
from fnmatch import fnmatchcase
from typing import Any

from cmi_console.core.canonical import canonical_bytes

# log action -> event; validation runs are split by their outcome below
ACTION_EVENTS: dict[str, str] = {
    "version.register": "version.registered",
    "gate.approve": "gate.approved",
    "gate.reject": "gate.rejected",
    "gate.promote": "stage.promoted",
    "version.retire": "model.retired",
    "deploy.start": "deployment.started",
    "deploy.advance": "deployment.advanced",
    "deploy.pause": "deployment.paused",
    "deploy.resume": "deployment.resumed",
    "deploy.complete": "deployment.completed",
    "deploy.rollback": "deployment.rolled-back",
    "alert.raise": "alert.raised",
    "incident.open": "incident.opened",
}
EVENTS = tuple(sorted({*ACTION_EVENTS.values(), "validation.passed", "validation.failed"}))
SIGNATURE_HEADER = "X-CMI-Signature"


def event_for(action: str, data: dict[str, Any]) -> str | None:
    if action == "validation.run":
        return (
            "validation.passed" if data.get("status") in ("pass", "warn") else "validation.failed"
        )
    return ACTION_EVENTS.get(action)


def matches(patterns: list[str], event: str) -> bool:
    return any(fnmatchcase(event, p) for p in patterns)


def known_pattern(pattern: str) -> bool:
    """A pattern that names no event is a typo, refused when the policy is checked."""
    return any(fnmatchcase(e, pattern) for e in EVENTS)


def model_of(subject: str) -> str | None:
    """The model an entry is about: `version:M:N`, `model:M`, `policy:M`."""
    kind, _, rest = subject.partition(":")
    if kind in ("version", "model"):
        return rest.split(":", 1)[0] or None
    return None


def payload(event: str, entry: dict[str, Any], delivery: int) -> bytes:
    """What a hook receives: the event, the delivery id, and the log entry as
    recorded (its seq, hash and data), as RFC 8785 canonical JSON."""
    return canonical_bytes(
        {
            "event": event,
            "delivery": delivery,
            "model": model_of(entry["subject"]),
            "entry": {k: entry[k] for k in ("seq", "hash", "time", "actor", "action", "subject")},
            "data": entry.get("data", {}),
        }
    )


def signature(secret: bytes, body: bytes) -> str:
    """`X-CMI-Signature`: sha256=HMAC-SHA256(secret, body), hex (GitHub's scheme)."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str) -> bool:
    return hmac.compare_digest(signature(secret, body), header)
