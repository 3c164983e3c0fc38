"""Activated policies, effective policies per model, and risk tiers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection

from cmi_console.core import names, roles
from cmi_console.core import policy as pol
from cmi_console.core.errors import BadInput, NotFound
from cmi_console.services.context import Context, Tx
from cmi_console.services.identity import require_role
from cmi_console.store import driver
from cmi_console.store.tables import Model, PolicyRow, table

POLICIES = table(PolicyRow)
MODELS = table(Model)
DEFAULT_SCOPE = "default"
BUNDLED = Path(__file__).resolve().parents[1] / "bundled_policies"


def bundled_default() -> Path:
    return BUNDLED / "default.toml"


def active_rows(conn: Connection) -> dict[str, Any]:
    rows = conn.execute(select(POLICIES).where(POLICIES.c.active.is_(True))).all()
    return {r.scope: r for r in rows}


def _active(conn: Connection, scope: str) -> Any:
    return conn.execute(
        select(POLICIES).where(POLICIES.c.scope == scope, POLICIES.c.active.is_(True))
    ).first()


def _default_content(conn: Connection) -> dict[str, Any]:
    row = _active(conn, DEFAULT_SCOPE)
    if row is None:
        raise BadInput("no active default policy; run `cmi policy activate policies/default.toml`")
    return dict(row.content)


_ACTIVE_HASHES = driver.Prepared(
    select(POLICIES.c.scope, POLICIES.c.sha256).where(
        POLICIES.c.active.is_(True),
        (POLICIES.c.scope == DEFAULT_SCOPE) | (POLICIES.c.scope == bindparam("scope")),
    )
)
# Effective policies by (default sha256, override sha256, tier): content-addressed,
# so an entry can never go stale; parsing a policy costs more than a write.
_EFFECTIVE: dict[tuple[str, str | None, str | None], pol.Effective] = {}


def effective_for(conn: Connection, model: Any) -> pol.Effective:
    """The policy governing `model` (a models row) right now."""
    hashes = dict(driver.all_rows(conn, _ACTIVE_HASHES, {"scope": model.name}))
    return _effective(conn, model, hashes)


def effective_for_many(conn: Connection, models: list[Any]) -> dict[int, pol.Effective]:
    """effective_for of many models (by id) with one query for the active policies."""
    # scopes and hashes only: the documents are read on a cache miss, not here
    active = select(POLICIES.c.scope, POLICIES.c.sha256).where(POLICIES.c.active.is_(True))
    hashes = dict(conn.execute(active).all())
    return {m.id: _effective(conn, m, hashes) for m in models}


def tiers_of(conn: Connection, models: list[Any]) -> dict[int, str | None]:
    """Each model's tier (by id) as its gates apply it: its own, else its model
    policy's `tier`, else the default tier. The column alone is only the first."""
    try:
        return {mid: e.tier for mid, e in effective_for_many(conn, models).items()}
    except BadInput:  # no active default policy (a workspace mid-upgrade): no tier applies
        return {m.id: m.risk_tier for m in models}


def tier_counts(conn: Connection) -> dict[str, int]:
    """Models per tier as `tiers_of` sees them, at the cost of a count: of the
    models without a tier of their own, only those with a policy of their own
    can differ from the rest, so only they (and one of the rest) are read."""
    counts: dict[str, int] = {}
    untiered = 0
    by_column = select(MODELS.c.risk_tier, func.count()).group_by(MODELS.c.risk_tier)
    for tier, n in conn.execute(by_column):
        if tier is None:
            untiered = n
        else:
            counts[tier] = n
    if untiered:
        scoped = [s for s in active_rows(conn) if s != DEFAULT_SCOPE]
        untiered_rows = select(MODELS).where(MODELS.c.risk_tier.is_(None))
        own = conn.execute(untiered_rows.where(MODELS.c.name.in_(scoped))).all()
        rest = conn.execute(untiered_rows.where(MODELS.c.name.not_in(scoped)).limit(1)).all()
        tiers = tiers_of(conn, own + rest)
        for m, n in [(m, 1) for m in own] + [(m, untiered - len(own)) for m in rest]:
            tier = tiers[m.id] or "-"
            counts[tier] = counts.get(tier, 0) + n
    return dict(sorted(counts.items()))


def _effective(conn: Connection, model: Any, hashes: dict[str, str]) -> pol.Effective:
    if DEFAULT_SCOPE not in hashes:
        raise BadInput("no active default policy; run `cmi policy activate policies/default.toml`")
    key = (hashes[DEFAULT_SCOPE], hashes.get(model.name), model.risk_tier)
    if key not in _EFFECTIVE:
        default = _active(conn, DEFAULT_SCOPE)
        override = _active(conn, model.name)
        sources = {DEFAULT_SCOPE: default.sha256}
        if override is not None:
            sources[model.name] = override.sha256
        if len(_EFFECTIVE) > 256:
            _EFFECTIVE.clear()
        _EFFECTIVE[key] = pol.effective(
            default.content, override.content if override else None, model.risk_tier, sources
        )
    return _EFFECTIVE[key]


def _tier_for(conn: Connection | None, raw: dict[str, Any], policy: pol.Policy) -> str:
    name = raw.get("model")
    if conn is not None and isinstance(name, str):
        row = conn.execute(select(MODELS.c.risk_tier).where(MODELS.c.name == name)).first()
        if row is not None and row.risk_tier:
            return str(row.risk_tier)
    return policy.tier or policy.default_tier


def check_document(
    conn: Connection | None, raw: dict[str, Any], label: str
) -> tuple[pol.Policy, str]:
    """Validate a policy document as it would be activated; return it and its tier."""
    default: dict[str, Any] | None = None
    default_label = "active default policy"
    if "model" in raw:
        if conn is not None and _active(conn, DEFAULT_SCOPE) is not None:
            default = _default_content(conn)
        else:
            default = pol.read_toml(bundled_default())
            default_label = str(bundled_default())
    policy = pol.check_document(raw, label, default, default_label)
    tier = _tier_for(conn, raw, policy)
    if tier not in policy.tiers:
        raise BadInput(f"{label}: the model's tier '{tier}' is not defined in tiers")
    shortfalls = pol.tier_shortfalls(policy, tier)
    if shortfalls:
        raise BadInput(f"{label}: {shortfalls[0]}")
    return policy, tier


def check_file(ctx: Context | None, path: Path) -> dict[str, Any]:
    raw = pol.read_toml(path)
    if ctx is None:
        policy, tier = check_document(None, raw, str(path))
    else:
        with ctx.read() as conn:
            policy, tier = check_document(conn, raw, str(path))
    return {
        "file": str(path),
        "sha256": pol.sha256_of(raw),
        "scope": raw.get("model", DEFAULT_SCOPE),
        "tier": tier,
        "stages": list(policy.stages),
        "suites": list(policy.suites),
        "ok": True,
    }


def activate(ctx: Context, path: Path) -> dict[str, Any]:
    raw = pol.read_toml(path)
    with ctx.write() as tx:
        result = activate_document(tx, raw, path.name, str(path))
    return result


def activate_document(
    tx: Tx, raw: dict[str, Any], source: str, label: str | None = None
) -> dict[str, Any]:
    """Activate a policy inside a write transaction: a signed decision that
    records the old and the new SHA-256. `label` names the file in errors."""
    actor = tx.ctx.require_actor()
    require_role(tx.conn, actor, roles.DECISION_ROLES["policy.activate"], "activate a policy")
    label = label or source
    check_document(tx.conn, raw, label)
    scope = str(raw.get("model", DEFAULT_SCOPE))
    if scope != DEFAULT_SCOPE:
        from cmi_console.services import registry  # it reads policies: imported here

        try:
            registry.model_row(tx.conn, scope)
        except NotFound as exc:  # with the model it meant, if only the case differs
            raise NotFound(f"{label}: model: {exc.message}") from None
    else:
        _check_overrides_against(tx.conn, raw)
    _check_nothing_stranded(tx.conn, raw, scope, label)
    new_sha = pol.sha256_of(raw)
    old = _active(tx.conn, scope)
    if old is not None and old.sha256 == new_sha:
        # a pipeline that applies the policy files on every merge: the state
        # it asks for holds, whoever made it, so nothing is written
        return {
            "scope": scope,
            "source": old.source,
            "new_sha256": new_sha,
            "activated_at": old.activated_at,
            "activated_by": old.activated_by,
            "created": False,
        }
    if old is not None:
        tx.update(POLICIES, old.id, {"active": False})
    tx.insert(
        POLICIES,
        {
            "scope": scope,
            "sha256": new_sha,
            "source": source,
            "content": raw,
            "active": True,
            "activated_at": tx.time,
            "activated_by": actor,
        },
    )
    data = {
        "scope": scope,
        "source": source,
        "old_sha256": old.sha256 if old is not None else None,
        "new_sha256": new_sha,
    }
    tx.record("policy.activate", f"policy:{scope}", data)
    return {**data, "created": True}


def _check_nothing_stranded(conn: Connection, raw: dict[str, Any], scope: str, label: str) -> None:
    """Every stage a version is in, or an open request asks for (with its
    environment), and every environment a deployment serves, must stay in the
    policy of its model: a version left in a dropped stage could be neither
    promoted nor retired, one open request to it stopped the review queue for
    everyone, and a rollout in a dropped environment could be neither
    completed nor rolled back (nor rolled back by monitoring)."""
    from sqlalchemy import func

    from cmi_console.core import deployments as dm
    from cmi_console.store.tables import Deployment, ModelVersion, PromotionRequest

    versions, requests = table(ModelVersion), table(PromotionRequest)
    deployments = table(Deployment)
    active = active_rows(conn)
    if scope != DEFAULT_SCOPE and DEFAULT_SCOPE not in active:
        return  # no model policy takes effect without a default
    default = raw if scope == DEFAULT_SCOPE else active[DEFAULT_SCOPE].content
    models = conn.execute(
        select(MODELS) if scope == DEFAULT_SCOPE else select(MODELS).where(MODELS.c.name == scope)
    ).all()
    by_id = {m.id: m for m in models}
    effective: dict[tuple[str | None, str | None], pol.Effective] = {}

    def effective_of(model: Any) -> pol.Effective:
        override = raw if scope == model.name else getattr(active.get(model.name), "content", None)
        key = (model.name if override is not None else None, model.risk_tier)
        if key not in effective:
            effective[key] = pol.effective(default, override, model.risk_tier, {})
        return effective[key]

    def stages_of(model: Any) -> Any:
        return effective_of(model).policy.stages

    def refuse_request(request_id: int, model: str, number: int, what: str) -> None:
        raise BadInput(
            f"{label}: {what} for {model}, which open request #{request_id} ({model}:{number}) "
            "asks for; withdraw it first, or keep it"
        )

    occupied = select(
        versions.c.model_id, versions.c.stage, func.count(), func.min(versions.c.version)
    ).group_by(versions.c.model_id, versions.c.stage)
    asked = (
        select(
            requests.c.id,
            requests.c.to_stage,
            requests.c.environment,
            versions.c.model_id,
            versions.c.version,
        )
        .join(versions, versions.c.id == requests.c.version_id)
        .where(requests.c.status == "open")
    )
    # an open rollout, or a completed deployment nobody rolled back or ended:
    # something serves the environment
    served = (
        select(
            deployments.c.model_id,
            deployments.c.environment,
            func.max(deployments.c.id),
        )
        .where(deployments.c.status.in_(sorted(dm.OPEN | {dm.COMPLETED})))
        .group_by(deployments.c.model_id, deployments.c.environment)
    )
    if scope != DEFAULT_SCOPE:
        occupied = occupied.where(versions.c.model_id.in_(list(by_id)))
        asked = asked.where(versions.c.model_id.in_(list(by_id)))
        served = served.where(deployments.c.model_id.in_(list(by_id)))
    for model_id, stage, count, first in conn.execute(occupied):
        name = by_id[model_id].name
        if stage not in stages_of(by_id[model_id]):
            raise BadInput(
                f"{label}: stages: no '{stage}' for {name}, where {count} version(s) are "
                f"(e.g. {name}:{first}); move them first, or keep the stage"
            )
    for request_id, stage, env, model_id, number in conn.execute(asked):
        name, known = by_id[model_id].name, stages_of(by_id[model_id])
        if stage not in known:
            refuse_request(request_id, name, number, f"stages: no '{stage}'")
        if env is not None and env not in known[stage].environments:
            refuse_request(request_id, name, number, f"stages.{stage}: no environment '{env}'")
    for model_id, env, deployment_id in conn.execute(served):
        name = by_id[model_id].name
        if env not in effective_of(by_id[model_id]).environments():
            raise BadInput(
                f"{label}: environments: no '{env}' for {name}, where deployment "
                f"#{deployment_id} serves; keep the environment while a version of {name} "
                "serves there (retiring a version ends its deployments)"
            )


def _check_overrides_against(conn: Connection, default: dict[str, Any]) -> None:
    """A new default must still make every active model policy valid."""
    for scope, row in sorted(active_rows(conn).items()):
        if scope == DEFAULT_SCOPE:
            continue
        merged = pol.merge(default, row.content)
        policy = pol.validate(merged, [(f"active policy of {scope}", row.content)])
        model = conn.execute(select(MODELS).where(MODELS.c.name == scope)).first()
        tier = (model.risk_tier if model else None) or policy.tier or policy.default_tier
        short = pol.tier_shortfalls(policy, tier) if tier in policy.tiers else [f"tier {tier}"]
        if short:
            raise BadInput(f"with this default, the active policy of {scope} fails: {short[0]}")


def show(ctx: Context, model: str) -> dict[str, Any]:
    from cmi_console.services.registry import model_row

    with ctx.read() as conn:
        eff = effective_for(conn, model_row(conn, model))
    return {
        "model": model,
        "tier": eff.tier,
        "sha256": eff.sha256,
        "sources": eff.sources,
        "required_approvals": {s: eff.required_approvals(s) for s in eff.policy.stages},
        "policy": eff.document["policy"],
        # not part of the hashed document (they route notifications, not decisions)
        "hooks": {n: h.model_dump(mode="json") for n, h in eff.policy.hooks.items()},
    }


def history(ctx: Context, scope: str | None = None) -> list[dict[str, Any]]:
    stmt = select(POLICIES).order_by(POLICIES.c.id)
    if scope:
        stmt = stmt.where(POLICIES.c.scope == scope)
    with ctx.read() as conn:
        rows = conn.execute(stmt).all()
    return [
        {
            "scope": r.scope,
            "sha256": r.sha256,
            "source": r.source,
            "active": r.active,
            "activated_at": r.activated_at,
            "activated_by": r.activated_by,
        }
        for r in rows
    ]


def set_tier(ctx: Context, model: str, tier: str, reason: str) -> dict[str, Any]:
    """Changing a model's risk tier is a signed decision; it re-keys the
    effective policy, so earlier approvals for the model go stale."""
    from cmi_console.services.registry import model_row

    if not reason.strip():
        raise BadInput("--reason: a tier change needs a reason")
    names.free_text(reason, "--reason")
    with ctx.write() as tx:
        actor = tx.ctx.require_actor()
        require_role(tx.conn, actor, roles.DECISION_ROLES["model.tier"], "change a risk tier")
        row = model_row(tx.conn, model)
        before = effective_for(tx.conn, row)
        if tier not in before.policy.tiers:
            known = ", ".join(before.policy.tiers)
            raise BadInput(f"tier: unknown tier '{tier}' (known: {known})")
        if tier == before.tier:  # the state asked for holds: nothing to decide
            return {"model": model, "tier": tier, "created": False}
        tx.update(MODELS, row.id, {"risk_tier": tier})
        after = pol.Effective(before.policy, tier, before.sources)
        data = {
            "model": model,
            "old_tier": before.tier,
            "new_tier": tier,
            "reason": reason,
            "old_policy_sha256": before.sha256,
            "new_policy_sha256": after.sha256,
        }
        tx.record("model.tier", f"model:{model}", data)
    return {**data, "created": True}
