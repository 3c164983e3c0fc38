"""Gate evaluation and segregation of duties, as pure functions over facts.

The services gather the facts inside a transaction (so the answer is the
one that commits) and call `evaluate`; the CLI and TUI only show its report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cmi_console.core import clock
from cmi_console.core.policy import Effective

MET, UNMET, STALE = "met", "unmet", "stale"

# Segregation-of-duties rules, named in every refusal (docs/policies.md).
RULE_AUTHOR = "sod.author-cannot-approve"
RULE_TRAINER = "sod.trainer-cannot-approve"
RULE_CHANGE_AUTHOR = "sod.change-author-cannot-approve"
RULE_VALIDATOR = "sod.validator-cannot-approve"
RULE_ONCE = "sod.one-decision-per-principal"
RULE_ROLE = "sod.role-required"
RULE_SELF_GRANT = "sod.no-self-grant"
RULE_TWO_ADMINS = "break-glass.two-distinct-admins"


@dataclass(frozen=True)
class VersionFacts:
    model: str
    version: int
    artifact_sha256: str
    stage: str
    status: str
    author: str
    trainer: str | None = None
    environment: str | None = None
    # whose change a CI job trained it from (`--change-author`): the job's
    # principal registers and trains, so without this the commit's author
    # could approve their own model
    change_author: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"


@dataclass(frozen=True)
class ValidationFacts:
    id: int
    suite: str
    sha256: str
    status: str  # pass | fail | error
    run_by: str
    policy_sha256: str
    failed: tuple[str, ...] = ()  # labels of failed blocking checks
    passed_kinds: frozenset[str] = frozenset()  # kinds with a pass or warn


@dataclass(frozen=True)
class RequestFacts:
    id: int
    to_stage: str
    environment: str | None
    requested_by: str
    status: str


@dataclass(frozen=True)
class DecisionFacts:
    id: int
    principal: str
    decision: str
    statement: dict[str, Any]
    signature_valid: bool
    signature_problem: str = ""


@dataclass
class Condition:
    name: str
    state: str
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"condition": self.name, "state": self.state, "detail": self.detail}


@dataclass
class ApprovalState:
    principal: str
    decision: str
    state: str  # counted | not-needed | stale | invalid
    detail: str
    role: str | None = None
    id: int | None = None
    roles: list[str] = field(default_factory=list)  # the roles its statement claims

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class GateReport:
    version: str
    to_stage: str
    environment: str | None
    policy_sha256: str
    validation_sha256: str | None
    request: int | None
    conditions: list[Condition] = field(default_factory=list)
    approvals: list[ApprovalState] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.state == MET for c in self.conditions)

    def blocking(self, *, skip_approvals: bool = False) -> list[Condition]:
        return [
            c
            for c in self.conditions
            if c.state != MET
            and not (skip_approvals and (c.name.startswith("approvals") or c.name == "request"))
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "to_stage": self.to_stage,
            "environment": self.environment,
            "passed": self.passed,
            "policy_sha256": self.policy_sha256,
            "validation_sha256": self.validation_sha256,
            "request": self.request,
            "conditions": [c.as_json() for c in self.conditions],
            "approvals": [a.as_json() for a in self.approvals],
        }


def sod_conflict(
    principal: str, version: VersionFacts, validation: ValidationFacts | None
) -> str | None:
    """The SoD rule that forbids `principal` to decide on this version, if any."""
    if principal == version.author:
        return f"{RULE_AUTHOR}: {principal} is the author of {version.ref}"
    if version.trainer is not None and principal == version.trainer:
        return f"{RULE_TRAINER}: {principal} trained {version.ref}"
    if version.change_author is not None and principal == version.change_author:
        return f"{RULE_CHANGE_AUTHOR}: {principal} authored the change behind {version.ref}"
    if validation is not None and principal == validation.run_by:
        return f"{RULE_VALIDATOR}: {principal} ran validation #{validation.id} of {version.ref}"
    return None


def transition_problem(policy: Effective, version: VersionFacts, to_stage: str) -> str | None:
    stage = policy.stage(to_stage)
    if version.status == "retired":
        return f"{version.ref} is retired; a retired version is never promoted or deployed again"
    if version.stage == to_stage:
        return f"{version.ref} is already in {to_stage}"
    if version.stage not in stage.from_:
        allowed = ", ".join(stage.from_) or "nowhere (initial stage)"
        return f"{version.stage} -> {to_stage} is not allowed (to {to_stage} from: {allowed})"
    return None


def staleness(
    statement: dict[str, Any],
    policy: Effective,
    version: VersionFacts,
    validation: ValidationFacts | None,
    now: str,
    expiry_days: int | None,
) -> str | None:
    """Why a decision no longer counts, or None while it still binds the present."""
    if statement.get("artifact_sha256") != version.artifact_sha256:
        return "the artifact changed since it was signed"
    if statement.get("policy_sha256") != policy.sha256:
        return (
            f"signed under policy {str(statement.get('policy_sha256'))[:12]}, "
            f"the effective policy is now {policy.sha256[:12]}"
        )
    current = validation.sha256 if validation else None
    if statement.get("validation_sha256") != current:
        return "the validation result changed since it was signed"
    if expiry_days is not None:
        signed = clock.parse_time(str(statement.get("time")), "statement.time")
        if clock.add(signed, days=expiry_days) < now:
            return f"expired: approvals last {expiry_days} day(s)"
    return None


def _match(candidates: list[tuple[str, set[str]]], need: dict[str, int]) -> dict[str, str]:
    """Assign each principal to at most one required role slot (maximum
    bipartite matching), so a principal holding two roles counts once."""
    slots = [role for role, n in need.items() for _ in range(n)]
    slot_owner: dict[int, str] = {}
    roles_of = dict(candidates)

    def augment(who: str, seen: set[int]) -> bool:
        for i, role in enumerate(slots):
            if role in roles_of[who] and i not in seen:
                seen.add(i)
                if i not in slot_owner or augment(slot_owner[i], seen):
                    slot_owner[i] = who
                    return True
        return False

    for who, _roles in candidates:
        augment(who, set())
    return {who: slots[i] for i, who in slot_owner.items()}


# how a condition's detail hands whoever runs the gate the command to run:
# advice for that moment, which a reader of history leaves out
HINT = "; run `"


def evaluate(
    *,
    policy: Effective,
    version: VersionFacts,
    to_stage: str,
    environment: str | None,
    request: RequestFacts | None,
    validation: ValidationFacts | None,
    decisions: list[DecisionFacts],
    now: str,
) -> GateReport:
    stage = policy.stage(to_stage)
    report = GateReport(
        version=version.ref,
        to_stage=to_stage,
        environment=environment,
        policy_sha256=policy.sha256,
        validation_sha256=validation.sha256 if validation else None,
        request=request.id if request else None,
    )
    add = report.conditions.append

    problem = transition_problem(policy, version, to_stage)
    add(
        Condition(
            "transition", UNMET if problem else MET, problem or f"{version.stage} -> {to_stage}"
        )
    )

    if request is None:
        add(Condition("request", UNMET, f"no open request to {to_stage}{HINT}cmi request`"))
    else:
        add(Condition("request", MET, f"#{request.id} by {request.requested_by}"))

    add(_validation_condition(policy, stage.suite, to_stage, validation))

    need = policy.required_approvals(to_stage)
    candidates: list[tuple[str, set[str]]] = []
    seen: set[str] = set()
    for d in sorted(decisions, key=lambda d: d.id):
        st = d.statement
        claimed = [str(r) for r in st.get("roles") or ()]
        state = _decision_state(d, policy, version, to_stage, request, validation, now, stage)
        if state is not None:
            report.approvals.append(
                ApprovalState(d.principal, d.decision, *state, id=d.id, roles=claimed)
            )
            continue
        if d.principal in seen:
            report.approvals.append(
                ApprovalState(d.principal, d.decision, "invalid", f"{RULE_ONCE}", id=d.id)
            )
            continue
        seen.add(d.principal)
        if d.decision == "reject":
            report.approvals.append(
                ApprovalState(d.principal, "reject", "counted", str(st.get("comment")), id=d.id)
            )
            add(Condition("rejection", UNMET, f"rejected by {d.principal}: {st.get('comment')}"))
            continue
        held = set(st.get("roles") or ()) & set(need)
        candidates.append((d.principal, held))
        report.approvals.append(ApprovalState(d.principal, "approve", "not-needed", "", id=d.id))

    assigned = _match(candidates, need)
    for a in report.approvals:
        if a.state == "not-needed" and a.principal in assigned:
            a.state, a.role = "counted", assigned[a.principal]
            a.detail = f"counts as {a.role}"
        elif a.state == "not-needed":
            a.detail = "holds no role that is still needed"
    for role, n in need.items():
        who = sorted(p for p, r in assigned.items() if r == role)
        have = len(who)
        detail = f"{have}/{n}" + (f" ({', '.join(who)})" if who else "")
        stale = [a.principal for a in report.approvals if a.state == STALE and role in a.roles]
        state = MET if have >= n else (STALE if stale and have < n else UNMET)
        if state == STALE:
            detail += f"; stale: {', '.join(stale)}"
        add(Condition(f"approvals:{role}", state, detail))
    return report


def _decision_state(
    d: DecisionFacts,
    policy: Effective,
    version: VersionFacts,
    to_stage: str,
    request: RequestFacts | None,
    validation: ValidationFacts | None,
    now: str,
    stage: Any,
) -> tuple[str, str] | None:
    """(state, why) for a decision that does not count; None if it may count."""
    st = d.statement
    if not d.signature_valid:
        return "invalid", f"signature: {d.signature_problem or 'does not verify'}"
    if (
        st.get("principal") != d.principal
        or st.get("model") != version.model
        or st.get("version") != version.version
        or st.get("to_stage") != to_stage
        or st.get("decision") != d.decision
    ):
        return "invalid", "the signed statement is about another decision"
    if request is None or st.get("request") != request.id:
        return "invalid", "given for another request"
    conflict = sod_conflict(d.principal, version, validation)
    if conflict:
        return "invalid", conflict
    why = staleness(st, policy, version, validation, now, stage.approval_expiry_days)
    if why:
        return STALE, why
    return None


def _validation_condition(
    policy: Effective, suite: str | None, to_stage: str, validation: ValidationFacts | None
) -> Condition:
    if suite is None:
        return Condition("validation", MET, "no suite required")
    if validation is None:
        return Condition("validation", UNMET, f"missing: suite '{suite}' has not run on it")
    if validation.policy_sha256 != policy.sha256:
        return Condition(
            "validation",
            STALE,
            f"run #{validation.id} used policy {validation.policy_sha256[:12]}, the effective "
            f"policy is {policy.sha256[:12]}; validate again",
        )
    if validation.status != "pass":
        failed = ", ".join(validation.failed) or validation.status
        return Condition("validation", UNMET, f"run #{validation.id} {validation.status}: {failed}")
    missing = [k for k in policy.required_checks(to_stage) if k not in validation.passed_kinds]
    if missing:
        return Condition(
            "validation",
            UNMET,
            f"tier '{policy.tier}' requires passing {', '.join(missing)} check(s)",
        )
    return Condition("validation", MET, f"run #{validation.id} passed ({suite})")
