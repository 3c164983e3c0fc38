"""Deployments: which version serves which share of an environment's
requests, changed only by signed decisions (deploy, advance, pause, resume,
complete, rollback). Serving itself is the user's serving layer, which reads
`manifest`. The state machines are in core.deployments."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from cmi_console.core import deployments as dm
from cmi_console.core import names, roles, statements
from cmi_console.core.errors import BadInput, Denied, NotFound
from cmi_console.core.policy import Effective
from cmi_console.core.refs import parse_pairs, parse_version_ref
from cmi_console.services import ledger, lineage, validations
from cmi_console.services.context import Context, Tx
from cmi_console.services.identity import active_roles, require_role
from cmi_console.services.policies import effective_for
from cmi_console.services.registry import MODELS, RETIRED, VERSIONS, model_row, version_row
from cmi_console.store.tables import Deployment, DeploymentEvent, table

DEPLOYMENTS, EVENTS = table(Deployment), table(DeploymentEvent)
MANIFEST_FORMATS = ("json", "kserve")


def version_numbers(conn: Connection, *ids: int | None) -> dict[int, int]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    stmt = select(VERSIONS.c.id, VERSIONS.c.version).where(VERSIONS.c.id.in_(wanted))
    return {r.id: r.version for r in conn.execute(stmt)}


def open_deployment(conn: Connection, model_id: int, env: str) -> Any:
    return conn.execute(
        select(DEPLOYMENTS).where(
            DEPLOYMENTS.c.model_id == model_id,
            DEPLOYMENTS.c.environment == env,
            DEPLOYMENTS.c.status.in_(sorted(dm.OPEN)),
        )
    ).first()


def stable_deployment(conn: Connection, model_id: int, env: str) -> Any:
    """The last deployment that completed and was neither rolled back nor
    ended: its version is what the environment serves outside a rollout."""
    return conn.execute(
        select(DEPLOYMENTS)
        .where(
            DEPLOYMENTS.c.model_id == model_id,
            DEPLOYMENTS.c.environment == env,
            DEPLOYMENTS.c.status == dm.COMPLETED,
        )
        .order_by(DEPLOYMENTS.c.id.desc())
        .limit(1)
    ).first()


def _state(m: Any) -> dm.State:
    """The state of a deployment row (a mapping)."""
    return dm.State(m["strategy"], m["status"], m["traffic"], m["mirror"])


def _segments(values: list[str]) -> list[str]:
    """KEY=VALUE routing rules, as every KEY=VALUE option reads them; a value
    is as long as a tag's may be (it went unbounded into the statement)."""
    pairs = parse_pairs(values, "--segments")
    for key, value in pairs.items():
        if not value:
            raise BadInput(f"--segments: '{key}=' has no value")
        names.free_text(value, f"--segments: {key}", limit=500)
    return sorted(f"{key}={value}" for key, value in pairs.items())


def _statement(
    tx: Tx,
    policy: Effective,
    model: str,
    v: Any,
    decision: str,
    env: str,
    comment: str,
) -> tuple[dict[str, Any], str, str]:
    """What the deployer signs: the version, its artifact, the policy and the
    validation that let it into its stage, and the environment."""
    suite = policy.stage(v.stage).suite if v.stage in policy.policy.stages else None
    run = validations.latest_run(tx.conn, v.id, suite) if suite else None
    actor = tx.ctx.require_actor()
    statement = statements.build(
        decision=decision,
        principal=actor,
        roles=sorted(roles.DECISION_ROLES["deploy.start"] & active_roles(tx.conn, actor)),
        model=model,
        version=v.version,
        artifact_sha256=v.artifact_sha256,
        from_stage=v.stage,
        to_stage=v.stage,
        environment=env,
        policy_sha256=policy.sha256,
        validation_sha256=run.result_sha256 if run is not None else None,
        request=None,
        comment=comment,
        time=tx.time,
    )
    kid, private = tx.signer(actor)
    return statement, statements.sign(private, statement), kid


def _record(
    tx: Tx,
    row: dict[str, Any],
    numbers: dict[int, int],
    action: str,
    reason: str,
    signed: tuple[dict[str, Any], str, str],
    model: str,
) -> dict[str, Any]:
    """The event row (the traffic from now on) and the signed log entry."""
    state = _state(row)
    stable = numbers.get(row["stable_version_id"]) if row["stable_version_id"] else None
    candidate = numbers[row["version_id"]]
    shares = dm.shares(stable, candidate, state)
    mirror = {str(candidate): state.mirror} if state.mirror and state.open else {}
    event_id = tx.insert(
        EVENTS,
        {
            "deployment_id": row["id"],
            "model_id": row["model_id"],
            "environment": row["environment"],
            "action": action,
            "status": state.status,
            "shares": shares,
            "mirror": mirror,
            "reason": reason,
            "created_at": tx.time,
            "created_by": tx.ctx.require_actor(),
        },
    )
    statement, signature, kid = signed
    data = {
        "deployment": row["id"],
        "event": event_id,
        "environment": row["environment"],
        "strategy": row["strategy"],
        "status": state.status,
        "shares": shares,
        "mirror": mirror,
        "statement": statement,
        "signature": signature,
        "key": kid,
    }
    tx.record(f"deploy.{action}", f"version:{model}:{candidate}", data)
    return data


def deploy(
    ctx: Context,
    ref: str,
    env: str,
    strategy: str,
    *,
    traffic: int | None = None,
    segments: list[str] | None = None,
    comment: str = "",
) -> dict[str, Any]:
    names.one_of(strategy, dm.STRATEGIES, "--strategy")
    names.free_text(comment, "--comment")
    problem = dm.traffic_problem(strategy, traffic)
    if problem:
        raise BadInput(f"--traffic: {problem}")
    segs = _segments(segments or [])
    if segs and strategy not in ("ab", "canary"):
        raise BadInput("--segments: only an A/B test or a canary routes by segment")
    with ctx.write() as tx:
        actor = ctx.require_actor()
        require_role(tx.conn, actor, roles.DECISION_ROLES["deploy.start"], "deploy")
        parsed = parse_version_ref(ref)
        model = model_row(tx.conn, parsed.model)
        v = version_row(tx.conn, parsed)
        policy = effective_for(tx.conn, model)
        rules = policy.environment(env)
        busy = open_deployment(tx.conn, model.id, env)
        stable = stable_deployment(tx.conn, model.id, env)
        state = dm.start(strategy, traffic, rules.canary_steps, stable is not None)
        earlier = _started_already(
            tx.conn,
            busy if busy is not None else stable,
            f"version:{model.name}:{v.version}",
            {
                "version_id": v.id,
                "strategy": strategy,
                "status": state.status,
                "traffic": state.traffic,
                "mirror": state.mirror,
                "segments": segs,
                "created_by": actor,
            },
            comment,
        )
        if earlier is not None:
            return earlier
        allowed = rules.stages + (rules.shadow_stages if strategy == "shadow" else [])
        if v.status == RETIRED:
            raise Denied(f"{model.name}:{v.version} is retired; it cannot serve")
        if v.stage not in allowed:
            raise Denied(
                f"{model.name}:{v.version} is in {v.stage}; {env} takes "
                f"{'a shadow from ' if strategy == 'shadow' else ''}{' or '.join(allowed)} versions"
            )
        if busy is not None:
            n = version_numbers(tx.conn, busy.version_id)[busy.version_id]
            raise dm.Illegal(
                f"deploy: deployment #{busy.id} ({busy.strategy} of {model.name}:{n}) is "
                f"{busy.status} in {env}; complete it or roll it back first"
            )
        if stable is not None and stable.version_id == v.id:
            raise BadInput(f"{model.name}:{v.version} already serves {env}")
        if stable is None and strategy != "direct":
            raise BadInput(
                f"--strategy: nothing serves {env} yet, so there is nothing to compare "
                "with; the first deployment is --strategy direct"
            )
        if stable is not None and strategy == "direct" and policy.progressive:
            raise Denied(
                f"{model.name} is {policy.tier} tier: its policy requires a progressive "
                "rollout (canary, blue-green, ab or shadow) to replace a serving version"
            )
        signed = _statement(
            tx, policy, model.name, v, "deploy", env, _describe(strategy, state, comment)
        )
        row = {
            "model_id": model.id,
            "environment": env,
            "version_id": v.id,
            "stable_version_id": stable.version_id if stable is not None else None,
            "strategy": strategy,
            "status": state.status,
            "traffic": state.traffic,
            "mirror": state.mirror,
            "segments": segs,
            "created_at": tx.time,
            "created_by": actor,
            "updated_at": tx.time,
            "ended_at": tx.time if state.status == dm.COMPLETED else None,
        }
        row["id"] = tx.insert(DEPLOYMENTS, row)
        lineage.connect(tx, [(("version", v.id), ("deployment", row["id"]), "deployed")])
        numbers = version_numbers(tx.conn, v.id, row["stable_version_id"])
        return {**_record(tx, row, numbers, "start", comment, signed, model.name), "created": True}


def _started_already(
    conn: Connection, dep: Any, subject: str, asked: dict[str, Any], comment: str
) -> dict[str, Any] | None:
    """The same rollout started again by its deployer (a CI job's retry)
    while nothing has happened to it since: the answer is the decision signed
    then, read back from the log. `asked` holds the deployment's columns as
    this start would write them. Anything else is refused as before (a
    rollout in progress, a version that serves already)."""
    if dep is None or any(dep._mapping[k] != value for k, value in asked.items()):
        return None
    events = conn.execute(
        select(EVENTS.c.action, EVENTS.c.reason).where(EVENTS.c.deployment_id == dep.id).limit(2)
    ).all()
    if [tuple(e) for e in events] != [("start", comment)]:
        return None
    for entry in ledger.entries_about(conn, subject, ("deploy.start",)):
        if entry["data"]["deployment"] == dep.id:
            return ledger.answer(entry)
    return None


def _describe(strategy: str, state: dm.State, comment: str) -> str:
    what = f"{strategy}: serves {state.traffic}%"
    if state.mirror:
        what += f", mirrors {state.mirror}%"
    return f"{what}. {comment}".strip() if comment else what


def act(
    ctx: Context,
    model_name: str,
    env: str,
    action: str,
    *,
    to: int | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """advance | pause | resume | complete | rollback, as one signed decision."""
    names.one_of(action, dm.ACTIONS, "action")
    if to is not None and action != "advance":
        raise BadInput("--traffic: only advance takes a share")
    names.free_text(reason, "--reason")
    problem = dm.traffic_problem("canary", to)  # only a canary advances to a share
    if problem:
        raise BadInput(f"--traffic: {problem}")
    with ctx.write() as tx:
        return act_in(tx, model_name, env, action, to=to, reason=reason)


def act_in(
    tx: Tx, model_name: str, env: str, action: str, *, to: int | None = None, reason: str = ""
) -> dict[str, Any]:
    """`act` inside the caller's transaction (monitoring's automatic rollback)."""
    actor = tx.ctx.require_actor()
    require_role(tx.conn, actor, roles.DECISION_ROLES[f"deploy.{action}"], f"{action} deployments")
    model = model_row(tx.conn, model_name)
    earlier = _acted_already(tx.conn, model, env, action, to, reason, actor)
    if earlier is not None:
        return earlier
    policy = effective_for(tx.conn, model)
    rules = policy.environment(env)
    dep = open_deployment(tx.conn, model.id, env)
    if dep is None and action == "rollback":
        return {**_roll_back_completed(tx, model, policy, env, reason), "created": True}
    if dep is None:
        raise dm.Illegal(f"{action}: no deployment is in progress for {model.name} in {env}")
    if action == "rollback" and dep.stable_version_id is not None:
        back = tx.conn.execute(
            select(VERSIONS.c.status).where(VERSIONS.c.id == dep.stable_version_id)
        ).scalar()
        if back == RETIRED:
            raise dm.Illegal(
                f"rollback: the version {model.name} would go back to was retired; "
                "complete the rollout or deploy another version"
            )
    state = dm.apply(_state(dep._mapping), action, rules.canary_steps, to)
    row = dict(dep._mapping)
    values = {
        "status": state.status,
        "traffic": state.traffic,
        "mirror": state.mirror,
        "updated_at": tx.time,
    }
    if not state.open:
        values["ended_at"] = tx.time
    tx.update(DEPLOYMENTS, dep.id, values)
    row.update(values)
    v = tx.conn.execute(select(VERSIONS).where(VERSIONS.c.id == dep.version_id)).one()
    comment = reason or _describe(dep.strategy, state, "")
    signed = _statement(tx, policy, model.name, v, action, env, comment)
    numbers = version_numbers(tx.conn, dep.version_id, dep.stable_version_id)
    return {**_record(tx, row, numbers, action, reason, signed, model.name), "created": True}


def _acted_already(
    conn: Connection,
    model: Any,
    env: str,
    action: str,
    to: int | None,
    reason: str,
    actor: str,
) -> dict[str, Any] | None:
    """The same step again by its deployer (a pipeline's retry after a
    commit whose answer was lost) while it is still the last thing that
    happened to the model's traffic in `env`: the decision signed then,
    read back from the log. A retried rollback had gone back one version
    further. An advance to the next step (no --traffic) is a new step each
    time, never a retry."""
    if action == "advance" and to is None:
        return None
    last = conn.execute(
        select(EVENTS)
        .where(EVENTS.c.model_id == model.id, EVENTS.c.environment == env)
        .order_by(EVENTS.c.id.desc())
        .limit(1)
    ).first()
    if last is None or (last.action, last.created_by, last.reason) != (action, actor, reason):
        return None
    dep = conn.execute(select(DEPLOYMENTS).where(DEPLOYMENTS.c.id == last.deployment_id)).one()
    if to is not None and dep.traffic != to:
        return None
    candidate = version_numbers(conn, dep.version_id)[dep.version_id]
    subject = f"version:{model.name}:{candidate}"
    for entry in ledger.entries_about(conn, subject, (f"deploy.{action}",)):
        if entry["data"].get("event") == last.id:
            return ledger.answer(entry)
    return None


def _roll_back_completed(
    tx: Tx, model: Any, policy: Effective, env: str, reason: str
) -> dict[str, Any]:
    """No rollout in progress: the serving version's deployment is rolled back,
    and the one before it serves again."""
    current = stable_deployment(tx.conn, model.id, env)
    if current is None:
        raise dm.Illegal(f"rollback: nothing serves {model.name} in {env}")
    previous = tx.conn.execute(
        select(DEPLOYMENTS)
        .where(
            DEPLOYMENTS.c.model_id == model.id,
            DEPLOYMENTS.c.environment == env,
            DEPLOYMENTS.c.status == dm.COMPLETED,
            DEPLOYMENTS.c.id < current.id,
        )
        .order_by(DEPLOYMENTS.c.id.desc())
        .limit(1)
    ).first()
    if previous is None:
        raise dm.Illegal(
            f"rollback: {model.name} has no earlier version that served {env} and still may"
        )
    dm.apply(_state(current._mapping), "rollback", [])
    values = {"status": dm.ROLLED_BACK, "updated_at": tx.time, "ended_at": tx.time}
    tx.update(DEPLOYMENTS, current.id, values)
    row = dict(current._mapping)
    # the event shows the restored version serving everything
    row.update(values, stable_version_id=previous.version_id)
    v = tx.conn.execute(select(VERSIONS).where(VERSIONS.c.id == current.version_id)).one()
    signed = _statement(tx, policy, model.name, v, "rollback", env, reason or "rollback")
    numbers = version_numbers(tx.conn, current.version_id, previous.version_id)
    return _record(tx, row, numbers, "rollback", reason, signed, model.name)


def end_for_version(tx: Tx, version_id: int, reason: str) -> list[int]:
    """A retired version stops serving: its deployments end, so no rollback
    can bring it back. Called inside the retirement's transaction, so the
    signed retire entry carries the change."""
    holding = tx.conn.execute(
        select(DEPLOYMENTS).where(
            DEPLOYMENTS.c.stable_version_id == version_id,
            DEPLOYMENTS.c.status.in_(sorted(dm.OPEN)),
        )
    ).first()
    if holding is not None:
        raise dm.Illegal(
            f"retire: the version is the stable side of rollout #{holding.id} in "
            f"{holding.environment}; complete or roll back that rollout first"
        )
    rows = tx.conn.execute(
        select(DEPLOYMENTS).where(
            (DEPLOYMENTS.c.version_id == version_id)
            & DEPLOYMENTS.c.status.in_([dm.ACTIVE, dm.PAUSED, dm.COMPLETED])
        )
    ).all()
    ended = []
    for dep in rows:
        # only what serves now changes the traffic; an older completed
        # deployment just can no longer be rolled back to
        serving = dep.status in dm.OPEN or (
            stable_deployment(tx.conn, dep.model_id, dep.environment).id == dep.id
        )
        values = {"status": dm.ENDED, "updated_at": tx.time, "ended_at": tx.time}
        tx.update(DEPLOYMENTS, dep.id, values)
        if serving:
            numbers = version_numbers(tx.conn, dep.version_id, dep.stable_version_id)
            stable = numbers.get(dep.stable_version_id) if dep.stable_version_id else None
            if dep.status == dm.COMPLETED:
                stable = None  # it was the stable version itself
            row = {**dep._mapping, **values}
            tx.insert(
                EVENTS,
                {
                    "deployment_id": dep.id,
                    "model_id": dep.model_id,
                    "environment": dep.environment,
                    "action": "end",
                    "status": dm.ENDED,
                    "shares": dm.shares(stable, numbers[dep.version_id], _state(row)),
                    "mirror": {},
                    "reason": reason,
                    "created_at": tx.time,
                    "created_by": tx.ctx.require_actor(),
                },
            )
        ended.append(dep.id)
    return ended


# --- reading ----------------------------------------------------------------


def view(conn: Connection, row: Any, model: str | None = None) -> dict[str, Any]:
    numbers = version_numbers(conn, row.version_id, row.stable_version_id)
    name = model or conn.execute(select(MODELS.c.name).where(MODELS.c.id == row.model_id)).scalar()
    stable = numbers.get(row.stable_version_id) if row.stable_version_id else None
    state = _state(row._mapping)
    return {
        "deployment": row.id,
        "model": name,
        "environment": row.environment,
        "version": numbers[row.version_id],
        "stable_version": stable,
        "strategy": row.strategy,
        "status": row.status,
        "traffic": row.traffic,
        "mirror": row.mirror,
        "shares": dm.shares(stable, numbers[row.version_id], state),
        "segments": row.segments,
        "created_at": row.created_at,
        "created_by": row.created_by,
        "updated_at": row.updated_at,
        "ended_at": row.ended_at,
    }


def serving(ctx: Context, model_name: str, env: str | None = None) -> list[dict[str, Any]]:
    """Each environment's traffic now: the latest event per environment."""
    with ctx.read() as conn:
        model = model_row(conn, model_name)
        return serving_events(conn, model, env)


def serving_events(
    conn: Connection, model: Any, env: str | None, at: str | None = None
) -> list[Any]:
    stmt = select(EVENTS).where(EVENTS.c.model_id == model.id).order_by(EVENTS.c.id)
    if env is not None:
        stmt = stmt.where(EVENTS.c.environment == env)
    if at is not None:
        stmt = stmt.where(EVENTS.c.created_at <= at)
    return serving_by_model(conn.execute(stmt)).get(model.id, [])


def serving_by_model(events: Any) -> dict[int, list[dict[str, Any]]]:
    """What serves where, per model: the latest of `events` (rows in id order)
    in each environment. One scan for any number of models."""
    latest: dict[int, dict[str, Any]] = {}
    for ev in events:
        latest.setdefault(ev.model_id, {})[ev.environment] = ev
    return {
        model_id: [
            {
                "environment": e,
                "shares": ev.shares,
                "mirror": ev.mirror,
                "deployment": ev.deployment_id,
                "status": ev.status,
                "since": ev.created_at,
                "action": ev.action,
            }
            for e, ev in sorted(envs.items())
        ]
        for model_id, envs in latest.items()
    }


def serving_at(ctx: Context, model_name: str, at: str) -> list[dict[str, Any]]:
    with ctx.read() as conn:
        return serving_events(conn, model_row(conn, model_name), None, at)


def list_deployments(
    ctx: Context, model_name: str | None = None, env: str | None = None, *, open_only: bool = False
) -> list[dict[str, Any]]:
    stmt = (
        select(DEPLOYMENTS, MODELS.c.name.label("model"))
        .join(MODELS, MODELS.c.id == DEPLOYMENTS.c.model_id)
        .order_by(DEPLOYMENTS.c.id.desc())
    )
    if env is not None:
        stmt = stmt.where(DEPLOYMENTS.c.environment == env)
    if open_only:
        stmt = stmt.where(DEPLOYMENTS.c.status.in_(sorted(dm.OPEN)))
    with ctx.read() as conn:
        if model_name is not None:
            stmt = stmt.where(DEPLOYMENTS.c.model_id == model_row(conn, model_name).id)
        return [view(conn, r, r.model) for r in conn.execute(stmt)]


def history(ctx: Context, model_name: str, env: str | None = None) -> list[dict[str, Any]]:
    """Every traffic change, oldest first."""
    with ctx.read() as conn:
        model = model_row(conn, model_name)
        stmt = select(EVENTS).where(EVENTS.c.model_id == model.id).order_by(EVENTS.c.id)
        if env is not None:
            stmt = stmt.where(EVENTS.c.environment == env)
        return [
            {
                "event": e.id,
                "deployment": e.deployment_id,
                "environment": e.environment,
                "action": e.action,
                "status": e.status,
                "shares": e.shares,
                "mirror": e.mirror,
                "reason": e.reason,
                "at": e.created_at,
                "by": e.created_by,
            }
            for e in conn.execute(stmt)
        ]


def manifest(ctx: Context, model_name: str, env: str, fmt: str = "json") -> dict[str, Any]:
    """What a serving layer needs to route `env` now."""
    names.one_of(fmt, MANIFEST_FORMATS, "--format")
    with ctx.read() as conn:
        model = model_row(conn, model_name)
        rules = effective_for(conn, model).environment(env)
        now = serving_events(conn, model, env)
        if not now or not (now[0]["shares"] or now[0]["mirror"]):
            raise NotFound(f"nothing serves {model.name} in {env}")
        current = now[0]
        dep = conn.execute(
            select(DEPLOYMENTS).where(DEPLOYMENTS.c.id == current["deployment"])
        ).one()
        numbers = sorted({int(n) for n in [*current["shares"], *current["mirror"]]})
        rows = {
            r.version: r
            for r in conn.execute(
                select(VERSIONS).where(
                    VERSIONS.c.model_id == model.id, VERSIONS.c.version.in_(numbers)
                )
            )
        }
        seq = conn.execute(select(_max_seq())).scalar()
    versions = []
    for n in numbers:
        r = rows[n]
        versions.append(
            {
                "version": n,
                "artifact_sha256": r.artifact_sha256,
                "format": r.artifact_format,
                "storage_uri": rules.storage_uri.format(
                    sha256=r.artifact_sha256, model=model.name, version=n
                ),
                "traffic": current["shares"].get(str(n), 0),
                "mirror": current["mirror"].get(str(n), 0),
            }
        )
    doc = {
        "model": model.name,
        "environment": env,
        "deployment": current["deployment"],
        # after a rollout ends, the environment just serves its stable version
        "strategy": dep.strategy if current["status"] in dm.OPEN else "stable",
        "status": current["status"],
        "segments": dep.segments,
        "candidate": _numbers_of(rows, dep.version_id),
        "since": current["since"],
        "log_size": (seq or 0) + 1,
        "versions": versions,
    }
    return _kserve(doc) if fmt == "kserve" else doc


def _max_seq() -> Any:
    from sqlalchemy import func

    from cmi_console.store.tables import AuditEntry

    return func.max(table(AuditEntry).c.seq)


def _kserve(doc: dict[str, Any]) -> dict[str, Any]:
    """A KServe v1beta1 InferenceService. KServe's canary keeps the previous
    ready revision for the rest of the traffic, so the spec names the version
    that takes `canaryTrafficPercent`; the others are in annotations."""
    serving = sorted(doc["versions"], key=lambda v: (-v["traffic"], v["version"]))
    main = serving[0]
    for v in doc["versions"]:
        if v["version"] == doc["candidate"] and 0 < v["traffic"] < 100:
            main = v  # KServe's canary: the spec's model takes canaryTrafficPercent
    predictor: dict[str, Any] = {
        "model": {
            "modelFormat": {"name": "sklearn"},
            "storageUri": main["storage_uri"],
        }
    }
    if 0 < main["traffic"] < 100:
        predictor["canaryTrafficPercent"] = main["traffic"]
    annotations = {
        "cmi-console/model": doc["model"],
        "cmi-console/environment": doc["environment"],
        "cmi-console/deployment": str(doc["deployment"]),
        "cmi-console/strategy": doc["strategy"],
        "cmi-console/version": str(main["version"]),
        "cmi-console/artifact-sha256": main["artifact_sha256"],
        "cmi-console/log-size": str(doc["log_size"]),
        "cmi-console/traffic": ",".join(f"v{v['version']}={v['traffic']}" for v in serving),
    }
    mirrored = [v for v in doc["versions"] if v["mirror"]]
    if mirrored:
        annotations["cmi-console/shadow"] = ",".join(
            f"v{v['version']}={v['mirror']}:{v['storage_uri']}" for v in mirrored
        )
    if doc["segments"]:
        annotations["cmi-console/segments"] = ",".join(doc["segments"])
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": dm.k8s_name(doc["model"], doc["environment"]),
            "annotations": annotations,
        },
        "spec": {"predictor": predictor},
    }


def _numbers_of(rows: dict[int, Any], version_id: int) -> int | None:
    return next((n for n, r in rows.items() if r.id == version_id), None)
