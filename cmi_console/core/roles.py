"""Roles a principal can hold, and what each may do in the registry core."""

from __future__ import annotations

from cmi_console.core.errors import BadInput

ROLES: dict[str, str] = {
    "admin": "manages principals, roles and keys; break-glass",
    "developer": "registers datasets, runs, models and versions; tags and aliases",
    "validator": "runs validation suites",
    "reviewer": "approves or rejects stage gates",
    "risk-officer": "approves high-risk gates and retirements",
    "deployer": "deploys and rolls back",
    "auditor": "reads and exports the log",
}

# Registry writes (not decisions) need one of these.
REGISTRY_WRITERS = frozenset({"admin", "developer"})


def check(role: str, where: str = "role") -> str:
    if role not in ROLES:
        raise BadInput(f"{where}: unknown role '{role}' (known: {', '.join(sorted(ROLES))})")
    return role


# Opening a promotion or retirement request.
REQUESTERS = frozenset({"admin", "developer", "deployer", "risk-officer"})

# Running a validation suite.
VALIDATION_RUNNERS = frozenset({"admin", "developer", "validator"})

# Decisions reserved to roles, checked by the services at decision time and
# again by `cmi audit verify` against the roles replayed from the log.
DECISION_ROLES: dict[str, frozenset[str]] = {
    "user.add": frozenset({"admin"}),
    "user.disable": frozenset({"admin"}),
    "role.grant": frozenset({"admin"}),
    "role.revoke": frozenset({"admin"}),
    "key.add": frozenset({"admin"}),
    "key.revoke": frozenset({"admin"}),
    "policy.activate": frozenset({"admin", "risk-officer"}),
    "model.tier": frozenset({"admin", "risk-officer"}),
    "break-glass.sign": frozenset({"admin"}),
    "break-glass.execute": frozenset({"admin"}),
    "incident.close": frozenset({"admin", "risk-officer", "reviewer", "deployer"}),
    **{
        f"deploy.{step}": frozenset({"admin", "deployer"})
        for step in ("start", "advance", "pause", "resume", "complete", "rollback")
    },
}

# Ingesting monitoring windows and labels, evaluating triggers.
MONITORS = frozenset({"admin", "developer", "deployer", "validator"})

# `monitor evaluate --retrain`: it registers the retrained version, validates
# it and requests its next gate, so it needs all three rights (checked before
# the evaluation writes: a deployer's run had recorded the alerts and
# requests, then been refused at the registration).
RETRAINERS = MONITORS & REGISTRY_WRITERS & VALIDATION_RUNNERS & REQUESTERS
