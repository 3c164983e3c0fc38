"""Decision statements: what a reviewer, promoter or admin signs.

A statement is a JSON object; the signature is Ed25519 over
`cmi-console/statement/v1\\n` followed by its RFC 8785 canonical bytes. It
binds the model version, the artifact's SHA-256, the stages, the effective
policy's SHA-256 and the validation result's SHA-256, so a decision stops
counting as soon as any of them changes, and it can be checked on its own,
without the database (docs/audit-log-format.md, "Decision statements").
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cmi_console.core import keys
from cmi_console.core.canonical import canonical_bytes
from cmi_console.core.errors import BadInput

DOMAIN = b"cmi-console/statement/v1\n"
TYPE = "cmi-console/decision"
DECISIONS = (
    "approve",
    "reject",
    "promote",
    "retire",
    "break-glass",
    "deploy",
    "advance",
    "pause",
    "resume",
    "complete",
    "rollback",
)
# the fields a statement binds, in documentation order
FIELDS = (
    "type",
    "decision",
    "principal",
    "roles",
    "model",
    "version",
    "artifact_sha256",
    "from_stage",
    "to_stage",
    "environment",
    "policy_sha256",
    "validation_sha256",
    "request",
    "comment",
    "time",
)


def build(
    *,
    decision: str,
    principal: str,
    roles: list[str],
    model: str,
    version: int,
    artifact_sha256: str,
    from_stage: str,
    to_stage: str,
    environment: str | None,
    policy_sha256: str,
    validation_sha256: str | None,
    request: int | None,
    comment: str,
    time: str,
) -> dict[str, Any]:
    if decision not in DECISIONS:
        raise ValueError(f"unknown decision {decision!r}")
    return {
        "type": TYPE,
        "decision": decision,
        "principal": principal,
        "roles": sorted(roles),
        "model": model,
        "version": version,
        "artifact_sha256": artifact_sha256,
        "from_stage": from_stage,
        "to_stage": to_stage,
        "environment": environment,
        "policy_sha256": policy_sha256,
        "validation_sha256": validation_sha256,
        "request": request,
        "comment": comment,
        "time": time,
    }


def message(statement: dict[str, Any]) -> bytes:
    return DOMAIN + canonical_bytes(statement)


def digest(statement: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(statement)).hexdigest()


def sign(private: Ed25519PrivateKey, statement: dict[str, Any]) -> str:
    return keys.b64(keys.sign(private, message(statement)))


def verify(public: bytes, statement: Any, signature: str) -> bool:
    try:
        raw = keys.unb64(signature, "signature")
        signed = message(statement)
    # a malformed signature is simply not valid; nor is a statement canonical
    # JSON cannot write (a forger's number beyond 2**53)
    except (BadInput, ValueError):
        return False
    return keys.verify(public, raw, signed)


def render(statement: dict[str, Any]) -> str:
    """The statement as a reviewer reads it before signing."""
    width = max(len(f) for f in FIELDS)
    lines = []
    for f in FIELDS:
        value = statement.get(f)
        shown = ", ".join(value) if isinstance(value, list) else ("-" if value is None else value)
        lines.append(f"{f:<{width}}  {shown}")
    return "\n".join(lines)
