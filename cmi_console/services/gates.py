"""Stage gates: requests, signed approvals and rejections, promotion,
retirement and break-glass. Each public call is one transaction; the gate is
evaluated inside it, so what it decides is what commits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, select
from sqlalchemy.engine import Connection

from cmi_console.core import clock, entry_text, names, roles, statements
from cmi_console.core.canonical import canonical_bytes
from cmi_console.core.errors import BadInput, Denied, NotFound
from cmi_console.core.gates import (
    RULE_ONCE,
    RULE_ROLE,
    RULE_TWO_ADMINS,
    DecisionFacts,
    GateReport,
    RequestFacts,
    ValidationFacts,
    VersionFacts,
    evaluate,
    sod_conflict,
    transition_problem,
)
from cmi_console.core.policy import ARCHIVED, Effective, Stage
from cmi_console.core.refs import parse_version_ref
from cmi_console.services import deployments, ledger, lineage, validations
from cmi_console.services.context import Context, Tx
from cmi_console.services.identity import (
    KEYS,
    PRINCIPALS,
    active_roles,
    require_enabled,
    require_role,
)
from cmi_console.services.policies import effective_for
from cmi_console.services.registry import (
    MODELS,
    RETIRED,
    RUNS,
    VERSIONS,
    change_author_of,
    drop_aliases_of,
    model_name,
    model_row,
    version_row,
)
from cmi_console.store.tables import (
    BreakGlass,
    Decision,
    Incident,
    ModelConsumer,
    PromotionRequest,
    Retirement,
    table,
)

REQUESTS = table(PromotionRequest)
DECISIONS = table(Decision)
RETIREMENTS = table(Retirement)
BREAK_GLASS = table(BreakGlass)
INCIDENTS = table(Incident)
CONSUMERS = table(ModelConsumer)
BREAK_GLASS_HOURS = 24  # a pending break-glass lapses if no second admin signs


class GateRefused(Denied):
    """A promotion the gate does not allow (exit 3); carries the whole report."""

    def __init__(self, report: GateReport, skip_approvals: bool = False) -> None:
        unmet = report.blocking(skip_approvals=skip_approvals)
        listed = "; ".join(f"{c.name} {c.state}: {c.detail}" for c in unmet)
        super().__init__(f"{report.version} -> {report.to_stage} refused: {listed}")
        self.report = report


@dataclass
class Gathered:
    """Everything a gate decision reads, read in the caller's transaction."""

    model: Any
    row: Any
    policy: Effective
    stage: Stage
    to_stage: str
    environment: str
    version: VersionFacts
    request: Any
    validation_row: Any
    validation: ValidationFacts | None
    decisions: list[DecisionFacts]

    def evaluate(self, now: str) -> GateReport:
        req = self.request
        return evaluate(
            policy=self.policy,
            version=self.version,
            to_stage=self.to_stage,
            environment=self.environment,
            request=RequestFacts(
                req.id, req.to_stage, req.environment, req.requested_by, req.status
            )
            if req is not None
            else None,
            validation=self.validation,
            decisions=self.decisions,
            now=now,
        )


def _environment(stage_name: str, stage: Stage, env: str | None) -> str:
    if env is None:
        if len(stage.environments) > 1:
            raise BadInput(
                f"--env: {stage_name} has environments {', '.join(stage.environments)}; choose one"
            )
        return stage.environments[0]
    if env not in stage.environments:
        raise BadInput(
            f"--env: '{env}' is not an environment of {stage_name} "
            f"({', '.join(stage.environments)})"
        )
    return env


def _gather(conn: Connection, ref: str, to_stage: str, env: str | None) -> Gathered:
    parsed = parse_version_ref(ref)
    model = model_row(conn, parsed.model)
    row = version_row(conn, parsed)
    policy = effective_for(conn, model)
    stage = policy.stage(to_stage)
    environment = _environment(to_stage, stage, env)
    trainer = change_author = None
    if row.run_id is not None:
        run = conn.execute(
            select(RUNS.c.created_by, RUNS.c.code_ref).where(RUNS.c.id == row.run_id)
        ).one()
        trainer, change_author = run.created_by, change_author_of(run.code_ref)
    facts = VersionFacts(
        model=model.name,
        version=row.version,
        artifact_sha256=row.artifact_sha256,
        stage=row.stage,
        status=row.status,
        author=row.author,
        trainer=trainer,
        change_author=change_author,
        environment=row.environment,
    )
    request = conn.execute(
        select(REQUESTS).where(
            REQUESTS.c.version_id == row.id,
            REQUESTS.c.to_stage == to_stage,
            REQUESTS.c.environment == environment,
            REQUESTS.c.status == "open",
        )
    ).first()
    vrow = validations.latest_run(conn, row.id, stage.suite) if stage.suite else None
    decisions = _decision_facts(conn, request.id) if request is not None else []
    return Gathered(
        model=model,
        row=row,
        policy=policy,
        stage=stage,
        to_stage=to_stage,
        environment=environment,
        version=facts,
        request=request,
        validation_row=vrow,
        validation=validations.facts(vrow) if vrow is not None else None,
        decisions=decisions,
    )


def _decision_facts(conn: Connection, request_id: int) -> list[DecisionFacts]:
    """Every decision row, with its signature checked against the signer's
    registered key: a row written around the service does not count."""
    rows = conn.execute(
        select(DECISIONS).where(DECISIONS.c.request_id == request_id).order_by(DECISIONS.c.id)
    ).all()
    out = []
    for r in rows:
        problem = _signature_problem(conn, r.principal, r.key_id, r.statement, r.signature)
        out.append(
            DecisionFacts(
                id=r.id,
                principal=r.principal,
                decision=r.decision,
                statement=dict(r.statement),
                signature_valid=problem is None,
                signature_problem=problem or "",
            )
        )
    return out


def _signature_problem(
    conn: Connection, principal: str, key_id: str, statement: dict[str, Any], signature: str
) -> str | None:
    from cmi_console.core import keys

    key = conn.execute(
        select(KEYS.c.public_key, KEYS.c.revoked_at, PRINCIPALS.c.name)
        .join(PRINCIPALS, PRINCIPALS.c.id == KEYS.c.principal_id)
        .where(KEYS.c.key_id == key_id)
    ).first()
    if key is None:
        return "signed with an unregistered key"
    if key.name != principal:
        return f"signed with {key.name}'s key, not {principal}'s"
    if key.revoked_at is not None and key.revoked_at <= str(statement.get("time")):
        return f"the key was revoked at {key.revoked_at}, before the decision"
    if not statements.verify(keys.unb64(key.public_key, "public key"), statement, signature):
        return "does not verify"
    return None


def _build(
    g: Gathered, decision: str, actor: str, held: list[str], comment: str, time: str
) -> dict[str, Any]:
    return statements.build(
        decision=decision,
        principal=actor,
        roles=held,
        model=g.model.name,
        version=g.row.version,
        artifact_sha256=g.row.artifact_sha256,
        from_stage=g.row.stage,
        to_stage=g.to_stage,
        environment=g.environment,
        policy_sha256=g.policy.sha256,
        validation_sha256=g.validation.sha256 if g.validation else None,
        request=g.request.id if g.request is not None else None,
        comment=comment,
        time=time,
    )


def _statement(
    tx: Tx, g: Gathered, decision: str, actor: str, held: list[str], comment: str
) -> tuple[dict[str, Any], str, str]:
    """Build and sign a statement; returns (statement, signature, key id)."""
    statement = _build(g, decision, actor, held, comment, tx.time)
    kid, private = tx.signer(actor)
    return statement, statements.sign(private, statement), kid


def _of_gate(table: Table, g: Gathered) -> tuple[ColumnElement[bool], ...]:
    """The rows of `table` (requests, break-glasses) about this gate: its
    version, target stage and environment."""
    return (
        table.c.version_id == g.row.id,
        table.c.to_stage == g.to_stage,
        table.c.environment == g.environment,
    )


def _subject(g: Gathered) -> str:
    return f"version:{g.model.name}:{g.row.version}"


# --- requests -------------------------------------------------------------


def request(
    ctx: Context, ref: str, to_stage: str, env: str | None = None, comment: str = ""
) -> dict[str, Any]:
    names.free_text(comment, "--comment")
    with ctx.write() as tx:
        actor = ctx.require_actor()
        require_role(tx.conn, actor, roles.REQUESTERS, "request a stage change")
        g = _gather(tx.conn, ref, to_stage, env)
        problem = transition_problem(g.policy, g.version, to_stage)
        if problem:
            raise Denied(f"{g.version.ref}: {problem}")
        if g.request is not None:
            r = g.request
            if (r.requested_by, r.environment, r.comment) == (actor, g.environment, comment):
                # the same request again (a CI job's retry): answered with it
                return {**_request_view(g, r.id, comment), "created": False}
            raise BadInput(
                f"{g.version.ref}: request #{r.id} to {to_stage} is already open "
                f"(by {r.requested_by})"
            )
        rid = tx.insert(
            REQUESTS,
            {
                "version_id": g.row.id,
                "to_stage": to_stage,
                "environment": g.environment,
                "requested_by": actor,
                "comment": comment,
                "created_at": tx.time,
                "status": "open",
            },
        )
        data = _request_view(g, rid, comment)
        tx.record("gate.request", _subject(g), data)
    return {**data, "created": True}


def _request_view(g: Gathered, rid: int, comment: str) -> dict[str, Any]:
    """A request as `gate.request` records it (and `cmi request` prints it)."""
    return {
        "request": rid,
        "model": g.model.name,
        "version": g.row.version,
        "from_stage": g.row.stage,
        "to_stage": g.to_stage,
        "environment": g.environment,
        "comment": comment,
    }


def latest_request(ctx: Context, ref: str, to_stage: str) -> dict[str, Any] | None:
    """The newest request for `ref` to `to_stage`, whatever its status (open,
    rejected, withdrawn, done), or None."""
    with ctx.read() as conn:
        v = version_row(conn, ref)
        row = conn.execute(
            select(REQUESTS)
            .where(REQUESTS.c.version_id == v.id, REQUESTS.c.to_stage == to_stage)
            .order_by(REQUESTS.c.id.desc())
            .limit(1)
        ).first()
    if row is None:
        return None
    return {
        "request": row.id,
        "version": v.version,
        "to_stage": row.to_stage,
        "environment": row.environment,
        "status": row.status,
        "requested_by": row.requested_by,
        "comment": row.comment,
    }


def withdraw(ctx: Context, request_id: int, comment: str = "") -> dict[str, Any]:
    """Withdraw an open request (its author, or an admin). The same
    withdrawal again by whoever made it (a retry) is answered, nothing
    written."""
    names.free_text(comment, "--comment")
    with ctx.write() as tx:
        actor = ctx.require_actor()
        row = tx.conn.execute(select(REQUESTS).where(REQUESTS.c.id == request_id)).first()
        if row is None:
            raise NotFound(f"request {request_id} does not exist")
        if row.status == "withdrawn" and row.closed_by == actor:
            said = next(ledger.entries_about(tx.conn, f"request:{row.id}", ("gate.withdraw",)))
            if said["data"].get("comment") == comment:
                return {"request": request_id, "status": "withdrawn", "created": False}
        if row.status != "open":
            by = f" by {row.closed_by}" if row.closed_by else ""
            raise BadInput(f"request {request_id} is {row.status}{by}, not open")
        if actor != row.requested_by:
            require_role(tx.conn, actor, frozenset({"admin"}), "withdraw another's request")
        tx.update(
            REQUESTS,
            row.id,
            {"status": "withdrawn", "closed_at": tx.time, "closed_by": actor},
        )
        tx.record("gate.withdraw", f"request:{row.id}", {"request": row.id, "comment": comment})
    return {"request": request_id, "status": "withdrawn", "created": True}


# --- decisions ------------------------------------------------------------


# what a decision may be bound to, and the option that names it
BINDABLE = {
    "artifact_sha256": "--artifact",
    "policy_sha256": "--policy",
    "validation_sha256": "--validation",
}


def decide(
    ctx: Context,
    ref: str,
    to_stage: str,
    decision: str,
    comment: str = "",
    *,
    env: str | None = None,
    bind: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Approve or reject the open request; SoD and roles are checked here,
    at decision time, whatever surface called."""
    if decision not in ("approve", "reject"):
        raise BadInput(f"decision: must be approve or reject, not {decision!r}")
    if decision == "reject" and not comment.strip():
        raise BadInput("--comment: a rejection needs a comment")
    names.free_text(comment, "--comment")
    for key, digest in (bind or {}).items():
        if key not in BINDABLE:
            raise BadInput(f"bind: unknown field {key!r} (one of {', '.join(BINDABLE)})")
        names.sha256(digest, BINDABLE[key])
    with ctx.write() as tx:
        actor = ctx.require_actor()
        g = _gather(tx.conn, ref, to_stage, env)
        earlier = _decided_already(tx.conn, g, actor, decision, comment, tx.time)
        if earlier is not None:
            return earlier
        statement = preview_in(tx.conn, g, actor, decision, comment, tx.time, bind)
        sig_kid, private = tx.signer(actor)
        signature = statements.sign(private, statement)
        assert g.request is not None  # preview_in refuses otherwise
        did = tx.insert(
            DECISIONS,
            {
                "request_id": g.request.id,
                "version_id": g.row.id,
                "principal": actor,
                "decision": decision,
                "statement": statement,
                "key_id": sig_kid,
                "signature": signature,
                "created_at": tx.time,
            },
        )
        edges = [(("version", g.row.id), ("decision", did), decision)]
        evidence = _evidence(tx.conn, g.row.id, statement.get("validation_sha256"))
        if evidence is not None:
            edges.append((("validation", evidence), ("decision", did), "evidence"))
        lineage.connect(tx, edges)
        if decision == "reject":
            tx.update(
                REQUESTS,
                g.request.id,
                {"status": "rejected", "closed_at": tx.time, "closed_by": actor},
            )
        tx.record(
            f"gate.{decision}",
            _subject(g),
            {"decision": did, "statement": statement, "signature": signature, "key": sig_kid},
        )
    return {
        "decision": did,
        "statement": statement,
        "signature": signature,
        "key": sig_kid,
        "created": True,
    }


def _decided_already(
    conn: Connection, g: Gathered, actor: str, decision: str, comment: str, now: str
) -> dict[str, Any] | None:
    """The same decision again by its reviewer (a retry after a commit whose
    answer was lost): the decision signed then, read back from the log,
    while it still stands. An approval still counts on the open request it
    was made on; a rejection closed the request it was made on, and no
    request has been opened since. Anything else goes on to the gate's
    rules, which refuse a second decision by one principal. A reviewer who
    may no longer decide (disabled, the role revoked) is refused as before."""
    mine = ledger.newest(
        conn, _subject(g), ("gate.approve", "gate.reject"), lambda e: e["actor"] == actor
    )
    if mine is None:
        return None
    said = mine["data"].get("statement") or {}  # entries are read as written
    asked = (decision, g.to_stage, g.environment, comment)
    fields = ("decision", "to_stage", "environment", "comment")
    if tuple(said.get(k) for k in fields) != asked:
        return None
    if decision == "approve":
        if g.request is None or said.get("request") != g.request.id:
            return None
        if _standing_decision(g.evaluate(now), actor) != mine["data"]["decision"]:
            return None  # stale since: a new approval is what the gate needs
    else:
        last = conn.execute(
            select(REQUESTS.c.id, REQUESTS.c.status)
            .where(*_of_gate(REQUESTS, g))
            .order_by(REQUESTS.c.id.desc())
            .limit(1)
        ).first()
        if last is None or (last.id, last.status) != (said.get("request"), "rejected"):
            return None
    _may_decide(conn, g, actor, decision)
    return ledger.answer(mine)


def _may_decide(conn: Connection, g: Gathered, actor: str, decision: str) -> list[str]:
    """The roles by which `actor` decides on this gate, or the rule that
    forbids them to (Denied): enabled, no conflict of duties, a role the
    gate needs held now."""
    require_enabled(conn, actor, f"{decision} a gate")
    conflict = sod_conflict(actor, g.version, g.validation)
    if conflict:
        raise Denied(conflict)
    need = g.policy.required_approvals(g.to_stage)
    held = sorted(active_roles(conn, actor) & set(need))
    if not held:
        raise Denied(
            f"{RULE_ROLE}: {actor} holds none of the roles this gate needs "
            f"({', '.join(need) or 'none: the gate needs no approvals'})"
        )
    return held


def preview_in(
    conn: Connection,
    g: Gathered,
    actor: str,
    decision: str,
    comment: str,
    time: str,
    bind: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The statement `actor` would sign, or the rule that forbids it (Denied)."""
    if g.request is None:
        raise BadInput(
            f"{g.version.ref}: no open request to {g.to_stage}; "
            f"the author opens one with `cmi request {g.version.ref} --to {g.to_stage}`"
        )
    held = _may_decide(conn, g, actor, decision)
    earlier = _standing_decision(g.evaluate(time), actor)
    if earlier is not None:
        raise Denied(
            f"{RULE_ONCE}: {actor} already decided on request #{g.request.id} "
            f"(decision #{earlier}); each principal counts once"
        )
    current = {
        "artifact_sha256": g.row.artifact_sha256,
        "policy_sha256": g.policy.sha256,
        "validation_sha256": g.validation.sha256 if g.validation else None,
    }
    for key, expected in (bind or {}).items():
        if expected != current[key]:  # whole digests: a shortened one looked the same
            raise Denied(
                f"stale: you reviewed {key} {expected}, it is now {current[key] or 'none'}; "
                "nothing was signed, review the version again"
            )
    return _build(g, decision, actor, held, comment, time)


def preview(
    ctx: Context, ref: str, to_stage: str, decision: str, comment: str = "", env: str | None = None
) -> dict[str, Any]:
    """What the acting principal would sign now (the TUI shows it before signing)."""
    actor = ctx.require_actor()
    with ctx.read() as conn:
        g = _gather(conn, ref, to_stage, env)
        return preview_in(conn, g, actor, decision, comment, ctx.clock())


# --- gate status and promotion -------------------------------------------


def status(ctx: Context, ref: str, to_stage: str, env: str | None = None) -> GateReport:
    with ctx.read() as conn:
        g = _gather(conn, ref, to_stage, env)
        return g.evaluate(ctx.clock())


def promote(
    ctx: Context, ref: str, to_stage: str, env: str | None = None, comment: str = ""
) -> dict[str, Any]:
    names.free_text(comment, "--comment")
    with ctx.write() as tx:
        actor = ctx.require_actor()
        g = _gather(tx.conn, ref, to_stage, env)
        if g.stage.terminal:
            raise BadInput(f"--to {to_stage}: a terminal stage; use `cmi retire`")
        require_role(tx.conn, actor, frozenset(g.stage.promoters), f"promote to {to_stage}")
        earlier = _promoted_already(tx.conn, g, actor, comment)
        if earlier is not None:
            return earlier
        report = g.evaluate(tx.time)
        if not report.passed:
            raise GateRefused(report)
        return {**_execute(tx, g, actor, report, "promote", comment), "created": True}


# the entries that move a version out of one stage into another
_MOVES = ("gate.promote", "version.archive", "version.retire")


def _promoted_already(
    conn: Connection, g: Gathered, actor: str, comment: str
) -> dict[str, Any] | None:
    """The same promotion again by its promoter (a CI job's retry): the answer
    is the decision it signed then, read back from the log, while the version
    is still where that decision put it. Anything else (another promoter,
    another comment, a version moved since) goes through the gate, which
    refuses a version already in the stage."""
    if g.row.stage != g.to_stage:
        return None
    last = ledger.newest(conn, _subject(g), _MOVES)
    if last is None or last["action"] != "gate.promote" or last["actor"] != actor:
        return None
    data = last["data"]
    said = data["statement"]
    if (said["decision"], said["to_stage"], said["environment"], said["comment"]) != (
        "promote",
        g.to_stage,
        g.environment,
        comment,
    ):
        return None
    return ledger.answer(last, version=g.version.ref, stage=g.to_stage, environment=g.environment)


def _execute(
    tx: Tx, g: Gathered, actor: str, report: GateReport, decision: str, comment: str
) -> dict[str, Any]:
    """Move the version; an exclusive stage first archives its holder, in the
    same transaction and checkpoint."""
    slot = f"{g.to_stage}@{g.environment}" if g.stage.exclusive else None
    archived = None
    if slot is not None:
        holder = tx.conn.execute(
            select(VERSIONS).where(VERSIONS.c.model_id == g.model.id, VERSIONS.c.slot == slot)
        ).first()
        if holder is not None:
            tx.update(VERSIONS, holder.id, {"stage": ARCHIVED, "slot": None, "environment": None})
            tx.record(
                "version.archive",
                f"version:{g.model.name}:{holder.version}",
                {
                    "model": g.model.name,
                    "version": holder.version,
                    "from_stage": g.to_stage,
                    "environment": g.environment,
                    "superseded_by": g.row.version,
                },
            )
            archived = holder.version
    statement, signature, kid = _statement(tx, g, decision, actor, [], comment)
    values: dict[str, Any] = {
        "stage": g.to_stage,
        "slot": slot,
        "environment": g.environment if g.stage.exclusive else None,
    }
    if decision == "break-glass":
        values["break_glass"] = True
    tx.update(VERSIONS, g.row.id, values)
    if g.request is not None:
        tx.update(
            REQUESTS, g.request.id, {"status": "done", "closed_at": tx.time, "closed_by": actor}
        )
    data = {
        "statement": statement,
        "signature": signature,
        "key": kid,
        "conditions": [c.as_json() for c in report.conditions],
        "archived": archived,
    }
    tx.record("gate.promote", _subject(g), data)
    return {"version": g.version.ref, "stage": g.to_stage, "environment": g.environment, **data}


# --- retirement -----------------------------------------------------------


def retire(ctx: Context, ref: str, reason: str, successor: str | None = None) -> dict[str, Any]:
    if not reason.strip():
        raise BadInput("--reason: a retirement needs a reason")
    names.free_text(reason, "--reason")
    with ctx.write() as tx:
        actor = ctx.require_actor()
        g = _gather(tx.conn, ref, RETIRED, None)
        if not g.stage.terminal:
            raise BadInput(f"the policy's stage '{RETIRED}' must be terminal")
        require_role(tx.conn, actor, frozenset(g.stage.promoters), "retire a version")
        succ = None if successor is None else version_row(tx.conn, successor)
        succ_ref = None if succ is None else f"{model_name(tx.conn, succ.model_id)}:{succ.version}"
        earlier = _retired_already(tx.conn, g, actor, reason, succ_ref)
        if earlier is not None:
            return earlier
        if succ is not None:
            if succ.id == g.row.id:
                raise BadInput("--successor: a version cannot succeed itself")
            if succ.status == RETIRED:
                raise BadInput(f"--successor: {successor} is itself retired")
        report = g.evaluate(tx.time)
        if not report.passed:
            raise GateRefused(report)
        archive = _archive(tx.conn, g)
        archive_sha = hashlib.sha256(canonical_bytes(archive)).hexdigest()
        consumers = [
            {"name": c.name, "contact": c.contact}
            for c in tx.conn.execute(
                select(CONSUMERS)
                .where(CONSUMERS.c.model_id == g.model.id)
                .order_by(CONSUMERS.c.name)
            )
        ]
        statement, signature, kid = _statement(tx, g, "retire", actor, [], reason)
        tx.update(
            VERSIONS,
            g.row.id,
            {"stage": RETIRED, "status": RETIRED, "slot": None, "environment": None},
        )
        tx.update(
            REQUESTS, g.request.id, {"status": "done", "closed_at": tx.time, "closed_by": actor}
        )
        if succ is not None:
            lineage.connect(tx, [(("version", g.row.id), ("version", succ.id), "succeeded-by")])
        ended = deployments.end_for_version(tx, g.row.id, reason)
        aliases = drop_aliases_of(tx, g.row.id)
        tx.insert(
            RETIREMENTS,
            {
                "version_id": g.row.id,
                "reason": reason,
                "successor_id": succ.id if succ is not None else None,
                "archive": archive,
                "archive_sha256": archive_sha,
                "consumers": consumers,
                "retired_at": tx.time,
                "retired_by": actor,
            },
        )
        data = {
            "statement": statement,
            "signature": signature,
            "key": kid,
            "reason": reason,
            "successor": succ_ref,
            "archive_sha256": archive_sha,
            "notify": [c["name"] for c in consumers],
            "deployments_ended": ended,
            "aliases_removed": aliases,
        }
        tx.record("version.retire", _subject(g), data)
    return {"version": g.version.ref, "archive": archive, **data, "created": True}


def _retired_already(
    conn: Connection, g: Gathered, actor: str, reason: str, successor: str | None
) -> dict[str, Any] | None:
    """The same retirement again by the one who made it (a decommissioning
    script run twice): the decision signed then, read back from the log,
    with the archive kept. Anything else meets the gate, which refuses a
    retired version."""
    if g.row.status != RETIRED:
        return None
    last = ledger.newest(conn, _subject(g), ("version.retire",))
    if last is None or last["actor"] != actor:
        return None
    data = last["data"]
    if (data.get("reason"), data.get("successor")) != (reason, successor):
        return None
    archive = conn.execute(
        select(RETIREMENTS.c.archive).where(RETIREMENTS.c.version_id == g.row.id)
    ).scalar_one()
    return ledger.answer(last, version=g.version.ref, archive=archive)


def _archive(conn: Connection, g: Gathered) -> dict[str, Any]:
    """The version's records, by hash, kept when it is retired."""
    vid = g.row.id
    runs = conn.execute(
        select(validations.RUNS)
        .where(validations.RUNS.c.version_id == vid)
        .order_by(validations.RUNS.c.id)
    ).all()
    decisions = conn.execute(
        select(DECISIONS).where(DECISIONS.c.version_id == vid).order_by(DECISIONS.c.id)
    ).all()
    requests = conn.execute(
        select(REQUESTS).where(REQUESTS.c.version_id == vid).order_by(REQUESTS.c.id)
    ).all()
    return {
        "model": g.model.name,
        "version": g.row.version,
        "artifact_sha256": g.row.artifact_sha256,
        "artifact_size": g.row.artifact_size,
        "final_stage": g.row.stage,
        "validation_runs": [
            {"run": r.id, "suite": r.suite, "status": r.status, "result_sha256": r.result_sha256}
            for r in runs
        ],
        "decisions": [
            {
                "decision": d.id,
                "principal": d.principal,
                "kind": d.decision,
                "statement_sha256": statements.digest(dict(d.statement)),
            }
            for d in decisions
        ],
        "requests": [
            {"request": r.id, "to_stage": r.to_stage, "status": r.status} for r in requests
        ],
        # deployment history joins here once deployments exist (monitoring issue)
        "deployments": [],
    }


# --- break-glass ----------------------------------------------------------


def break_glass(
    ctx: Context, ref: str, to_stage: str, reason: str, env: str | None = None
) -> dict[str, Any]:
    """Emergency promotion past unmet approvals: the first admin signs, a
    second, different admin signs and it executes; an incident is opened."""
    if not reason.strip():
        raise BadInput("--reason: a break-glass needs a reason")
    names.free_text(reason, "--reason")
    with ctx.write() as tx:
        actor = ctx.require_actor()
        require_role(tx.conn, actor, roles.DECISION_ROLES["break-glass.sign"], "break glass")
        g = _gather(tx.conn, ref, to_stage, env)
        if to_stage not in g.policy.policy.break_glass_stages:
            allowed = ", ".join(g.policy.policy.break_glass_stages) or "none"
            raise Denied(f"break-glass into {to_stage} is not allowed (policy allows: {allowed})")
        if g.stage.terminal:
            raise BadInput(f"--to {to_stage}: a terminal stage; use `cmi retire`")
        since = clock.add(tx.time, hours=-BREAK_GLASS_HOURS)
        earlier = _broken_already(tx.conn, g, actor, reason, since)
        if earlier is not None:
            return earlier
        report = g.evaluate(tx.time)
        if report.blocking(skip_approvals=True):
            raise GateRefused(report, skip_approvals=True)
        pending = tx.conn.execute(
            select(BREAK_GLASS)
            .where(
                *_of_gate(BREAK_GLASS, g),
                BREAK_GLASS.c.status == "pending",
                BREAK_GLASS.c.created_at > since,
            )
            .order_by(BREAK_GLASS.c.id.desc())
        ).first()
        statement, signature, kid = _statement(tx, g, "break-glass", actor, ["admin"], reason)
        signed = {"principal": actor, "key": kid, "signature": signature, "statement": statement}
        unmet = [c.as_json() for c in report.blocking()]
        if pending is None:
            bid = tx.insert(
                BREAK_GLASS,
                {
                    "version_id": g.row.id,
                    "to_stage": to_stage,
                    "environment": g.environment,
                    "reason": reason,
                    "signatures": [signed],
                    "status": "pending",
                    "created_at": tx.time,
                },
            )
            tx.record(
                "break-glass.sign",
                _subject(g),
                {"break_glass": bid, "statement": statement, "signature": signature, "key": kid},
            )
            return {
                "break_glass": bid,
                "status": "pending",
                "signed_by": [actor],
                "needs": _BREAK_GLASS_NEEDS,
                "bypassed": unmet,
                "created": True,
            }
        first = [s["principal"] for s in pending.signatures]
        if actor in first:
            raise Denied(
                f"{RULE_TWO_ADMINS}: {actor} already signed break-glass #{pending.id}; "
                "a second, different admin must sign"
            )
        incident_id = tx.insert(
            INCIDENTS,
            {
                "model_id": g.model.id,
                "title": (
                    f"break-glass: {g.version.ref} {entry_text.to_stage(to_stage, g.environment)}"
                ),
                "severity": "high",
                "kind": "break-glass",
                "status": "open",
                "details": {
                    "break_glass": pending.id,
                    "version": g.version.ref,
                    "reason": pending.reason,
                    "admins": [*first, actor],
                    "bypassed": unmet,
                },
                "opened_at": tx.time,
                "opened_by": actor,
                "occurred_at": tx.time,
            },
        )
        tx.record(
            "incident.open",
            f"incident:{incident_id}",
            {"incident": incident_id, "kind": "break-glass", "model": g.model.name},
        )
        tx.update(
            BREAK_GLASS,
            pending.id,
            {
                "signatures": [*pending.signatures, signed],
                "status": "executed",
                "incident_id": incident_id,
                "executed_at": tx.time,
            },
        )
        tx.record(
            "break-glass.execute",
            _subject(g),
            {
                "break_glass": pending.id,
                "statement": statement,
                "signature": signature,
                "key": kid,
                "admins": [*first, actor],
                "incident": incident_id,
                "bypassed": unmet,
            },
        )
        result = _execute(tx, g, actor, report, "break-glass", pending.reason)
    return {
        "break_glass": pending.id,
        "status": "executed",
        "signed_by": [*first, actor],
        "incident": incident_id,
        "bypassed": unmet,
        **result,
        "created": True,
    }


_BREAK_GLASS_NEEDS = (
    f"a second, different admin runs the same command within {BREAK_GLASS_HOURS} hours"
)


def _broken_already(
    conn: Connection, g: Gathered, actor: str, reason: str, since: str
) -> dict[str, Any] | None:
    """The same break-glass again by an admin who signed it, with the words
    they signed (a retry after a commit whose answer was lost, in the
    middle of an outage): while it waits for a second admin, the signature
    given; once executed, while the version is still in that stage, the
    execution. Read back from the log. Anything else goes on to the rules:
    a second signature by one admin is refused, and a version in the stage
    already does not pass the transition."""
    last = conn.execute(
        select(BREAK_GLASS)
        .where(*_of_gate(BREAK_GLASS, g))
        .order_by(BREAK_GLASS.c.id.desc())
        .limit(1)
    ).first()
    if last is None:
        return None
    mine = [s for s in last.signatures if s.get("principal") == actor]
    if not mine or (mine[0].get("statement") or {}).get("comment") != reason:
        return None
    signers = [s.get("principal") for s in last.signatures]
    if last.status == "pending" and last.created_at > since:
        action, first = "break-glass.sign", {"status": "pending", "needs": _BREAK_GLASS_NEEDS}
    elif last.status == "executed" and (g.row.stage, g.row.environment) == (
        g.to_stage,
        g.environment,
    ):
        action = "break-glass.execute"
        first = {"status": "executed", "version": g.version.ref, "stage": g.to_stage}
    else:
        return None
    entry = ledger.newest(
        conn, _subject(g), (action,), lambda e: e["data"].get("break_glass") == last.id
    )
    if entry is None:  # a row the log does not hold: the rules, and verify, say so
        return None
    return ledger.answer(entry, **first, signed_by=signers)


def _evidence(conn: Any, version_id: int, result_sha256: Any) -> int | None:
    """The validation run whose result a decision's statement binds."""
    if not isinstance(result_sha256, str):
        return None
    row = conn.execute(
        select(validations.RUNS.c.id)
        .where(
            validations.RUNS.c.version_id == version_id,
            validations.RUNS.c.result_sha256 == result_sha256,
        )
        .order_by(validations.RUNS.c.id.desc())
        .limit(1)
    ).first()
    return int(row[0]) if row else None


# --- queue ----------------------------------------------------------------


def queue(ctx: Context, mine: bool = False) -> list[dict[str, Any]]:
    """Open requests with their gate state; `mine`: those the actor may decide now."""
    actor = ctx.actor
    if mine and not actor:
        raise BadInput("--mine: no acting principal: pass --as NAME or set CMI_USER")
    now = ctx.clock()
    out = []
    with ctx.read() as conn:
        rows = conn.execute(
            select(REQUESTS, MODELS.c.name.label("model"), VERSIONS.c.version)
            .join(VERSIONS, VERSIONS.c.id == REQUESTS.c.version_id)
            .join(MODELS, MODELS.c.id == VERSIONS.c.model_id)
            .where(REQUESTS.c.status == "open")
            .order_by(REQUESTS.c.created_at, REQUESTS.c.id)
        ).all()
        held = active_roles(conn, actor) if actor else set()
        for r in rows:
            ref = f"{r.model}:{r.version}"
            g = _gather(conn, ref, r.to_stage, r.environment)
            report = g.evaluate(now)
            can, why = _can_decide(g, actor, held, report)
            if mine and not can:
                continue
            need = g.policy.required_approvals(r.to_stage)
            counted = sum(1 for a in report.approvals if a.state == "counted")
            out.append(
                {
                    "request": r.id,
                    "version": ref,
                    "to_stage": r.to_stage,
                    "environment": r.environment,
                    "requested_by": r.requested_by,
                    "created_at": r.created_at,
                    "comment": r.comment,
                    "approvals": f"{counted}/{sum(need.values())}",
                    "ready": report.passed,
                    "unmet": [c.name for c in report.conditions if c.state != "met"],
                    "you_can_decide": can,
                    "why_not": why,
                }
            )
    return out


def _standing_decision(report: GateReport, actor: str) -> int | None:
    """The id of the actor's decision that still counts on this request; a
    stale or invalid one does not stop them deciding again."""
    for a in report.approvals:
        if a.principal == actor and a.state in ("counted", "not-needed"):
            return a.id
    return None


def _can_decide(
    g: Gathered, actor: str | None, held: set[str], report: GateReport
) -> tuple[bool, str]:
    if not actor:
        return False, "no acting principal"
    conflict = sod_conflict(actor, g.version, g.validation)
    if conflict:
        return False, conflict
    need = set(g.policy.required_approvals(g.to_stage))
    if not held & need:
        return False, f"{RULE_ROLE}: needs {', '.join(sorted(need)) or 'no approvals'}"
    if _standing_decision(report, actor) is not None:
        return False, f"{RULE_ONCE}: you already decided"
    return True, ""


# --- consumers ------------------------------------------------------------


def add_consumer(ctx: Context, model: str, name: str, contact: str = "") -> dict[str, Any]:
    """List a consumer of the model. One listed already with that contact
    (a set-up script run twice) is answered, nothing written; with another
    contact it is refused, naming it."""
    names.key(name, "consumer")
    with ctx.write() as tx:
        actor = ctx.require_actor()
        require_role(tx.conn, actor, roles.REGISTRY_WRITERS, "add a consumer")
        m = model_row(tx.conn, model)
        exists = tx.conn.execute(
            select(CONSUMERS.c.contact).where(
                CONSUMERS.c.model_id == m.id, CONSUMERS.c.name == name
            )
        ).first()
        if exists is not None and exists.contact == contact:
            return {"model": model, "consumer": name, "contact": contact, "created": False}
        if exists is not None:
            raise BadInput(
                f"model '{model}' already lists consumer '{name}' (contact {exists.contact!r})"
            )
        tx.insert(
            CONSUMERS,
            {
                "model_id": m.id,
                "name": name,
                "contact": contact,
                "added_at": tx.time,
                "added_by": actor,
            },
        )
        tx.record(
            "model.consumer.add",
            f"model:{model}",
            {"model": model, "consumer": name, "contact": contact},
        )
    return {"model": model, "consumer": name, "contact": contact, "created": True}


def list_consumers(ctx: Context, model: str) -> list[dict[str, Any]]:
    with ctx.read() as conn:
        m = model_row(conn, model)
        rows = conn.execute(
            select(CONSUMERS).where(CONSUMERS.c.model_id == m.id).order_by(CONSUMERS.c.name)
        ).all()
    return [
        {"name": r.name, "contact": r.contact, "added_at": r.added_at, "added_by": r.added_by}
        for r in rows
    ]
