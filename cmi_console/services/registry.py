"""Models, versions, datasets, training runs, tags and aliases."""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.engine import Connection

from cmi_console.core import artifact_format, names, roles
from cmi_console.core.errors import BadInput, NotFound
from cmi_console.core.printable import printable
from cmi_console.core.refs import VersionRef, parse_dataset_ref, parse_version_ref
from cmi_console.core.seeds import seed_problem
from cmi_console.core.small_files import require_file
from cmi_console.services import ledger, lineage
from cmi_console.services.context import Context, Tx, complete_row
from cmi_console.services.identity import principal_row, require_role
from cmi_console.services.policies import tier_counts, tiers_of
from cmi_console.store import data_files, driver
from cmi_console.store.engine import check_page
from cmi_console.store.tables import (
    Alias,
    Dataset,
    Model,
    ModelVersion,
    RunDataset,
    TrainingRun,
    VersionDataset,
    VersionMetric,
    VersionTag,
    table,
)

MODELS = table(Model)
VERSIONS = table(ModelVersion)
DATASETS = table(Dataset)
RUNS = table(TrainingRun)
RUN_DATASETS = table(RunDataset)
VERSION_DATASETS = table(VersionDataset)
METRICS = table(VersionMetric)
TAGS = table(VersionTag)
ALIASES = table(Alias)

RETIRED = "retired"  # the status (and stage) of a retired version
METRIC_OPS = {">": "__gt__", ">=": "__ge__", "<": "__lt__", "<=": "__le__", "=": "__eq__"}


def _writer(tx: Tx) -> str:
    actor = tx.ctx.require_actor()
    require_role(tx.conn, actor, roles.REGISTRY_WRITERS, "change the registry")
    return actor


def check_metrics(metrics: dict[str, Any], where: str = "--metrics") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        names.key(key, f"{where}.{key}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadInput(f"{where}.{key}: must be a number, not {type(value).__name__}")
        if not math.isfinite(value):
            raise BadInput(f"{where}.{key}: must be finite")
        out[key] = float(value)
    return out


# --- models ---------------------------------------------------------------


_MODEL = driver.Prepared(select(MODELS).where(MODELS.c.name == bindparam("name")))


def find_model(conn: Connection, name: str) -> Any:
    """The models row named `name`, or None."""
    return driver.first(conn, _MODEL, {"name": name})


def model_row(conn: Connection, name: str) -> Any:
    row = find_model(conn, name)
    if row is None:
        twin = case_twin(conn, name)
        raise NotFound(f"model '{name}' does not exist" + names.did_you_mean(twin))
    return row


def case_twin(conn: Connection, name: str, column: Any = MODELS.c.name, *within: Any) -> str | None:
    """Another name in `column` (a model's, by default; an alias's of one
    model, `within` it) that differs from `name` only by case, if any."""
    row = conn.execute(
        select(column).where(func.lower(column) == name.lower(), column != name, *within).limit(1)
    ).first()
    return row[0] if row is not None else None


def _no_alias(model: Any, alias: str, conn: Connection) -> str:
    twin = case_twin(conn, alias, ALIASES.c.alias, ALIASES.c.model_id == model.id)
    return f"model {model.name} has no alias '{alias}'" + names.did_you_mean(twin)


def create_model(
    ctx: Context, name: str, description: str = "", owner: str | None = None
) -> dict[str, Any]:
    """A new model. The same model created again by its creator (a CI job's
    retry, a set-up script run twice) is answered with it (`created` false);
    a model of that name that differs is refused."""
    names.entity(name, "model")
    with ctx.write() as tx:
        actor = _writer(tx)
        owner = owner or actor
        principal_row(tx.conn, owner)
        before = tx.conn.execute(select(MODELS).where(MODELS.c.name == name)).first()
        if before is not None:
            if (before.description, before.owner, before.created_by) != (description, owner, actor):
                raise BadInput(
                    f"model '{name}' already exists (created by {before.created_by}"
                    + ("" if before.owner == owner else f", owner {before.owner}")
                    + ("" if before.description == description else ", another description")
                    + ")"
                )
            return {**model_view(tx.conn, before), "created": False}
        # a reviewer reads one for the other, and the policy written for the
        # first (`model = "credit-risk"`) does not govern the second
        refuse_case_twin(tx.conn, "model", name, MODELS.c.name)
        tx.insert(
            MODELS,
            {
                "name": name,
                "description": description,
                "owner": owner,
                "created_at": tx.time,
                "created_by": actor,
            },
        )
        tx.record("model.create", f"model:{name}", {"model": name, "owner": owner})
    return {**show_model(ctx, name), "created": True}


def list_models(ctx: Context) -> list[dict[str, Any]]:
    with ctx.read() as conn:
        models = conn.execute(select(MODELS).order_by(MODELS.c.name)).all()
        by_model: dict[int, dict[str, int]] = {}  # model id -> stage -> versions
        for mid, stage, n in conn.execute(
            select(VERSIONS.c.model_id, VERSIONS.c.stage, func.count()).group_by(
                VERSIONS.c.model_id, VERSIONS.c.stage
            )
        ):
            by_model.setdefault(mid, {})[stage] = n
        latest = dict(
            conn.execute(
                select(VERSIONS.c.model_id, func.max(VERSIONS.c.version)).group_by(
                    VERSIONS.c.model_id
                )
            ).all()
        )
        tiers = tiers_of(conn, models)
    out = []
    for m in models:
        stages = by_model.get(m.id, {})
        out.append(
            {
                "name": m.name,
                "description": m.description,
                "owner": m.owner,
                "status": model_status(stages),
                "risk_tier": tiers[m.id],
                "versions": sum(stages.values()),
                "latest": latest.get(m.id),
                "stages": stages,
                "created_at": m.created_at,
            }
        )
    return out


def stage_summary(ctx: Context) -> dict[str, Any]:
    """How many models and versions each stage holds, and models per tier:
    aggregates, so the dashboard costs the same for 3 models or 10,000."""
    with ctx.read() as conn:
        stages = [
            {"stage": stage, "models": models, "versions": versions}
            for stage, models, versions in conn.execute(
                select(
                    VERSIONS.c.stage,
                    func.count(func.distinct(VERSIONS.c.model_id)),
                    func.count(),
                )
                .group_by(VERSIONS.c.stage)
                .order_by(VERSIONS.c.stage)
            )
        ]
        tiers = tier_counts(conn)  # sorted by tier
    return {"stages": stages, "tiers": tiers, "models": sum(tiers.values())}


def break_glass_versions(ctx: Context) -> list[dict[str, Any]]:
    """Versions a break-glass put where they are (they stay flagged)."""
    with ctx.read() as conn:
        rows = conn.execute(
            select(MODELS.c.name, VERSIONS.c.version, VERSIONS.c.stage)
            .join(MODELS, MODELS.c.id == VERSIONS.c.model_id)
            .where(VERSIONS.c.break_glass.is_(True))
            .order_by(MODELS.c.name, VERSIONS.c.version)
        ).all()
    return [{"model": r.name, "version": r.version, "stage": r.stage} for r in rows]


def stage_label(v: dict[str, Any]) -> str:
    """A version's stage as people read it: with its environment, and a
    break-glass promotion flagged wherever the version is shown."""
    env = v.get("environment")
    label = v["stage"] + (f"@{env}" if env and env != v["stage"] else "")
    return label + (" BREAK-GLASS" if v.get("break_glass") else "")


def model_status(stage_counts: dict[str, int]) -> str:
    """A model shows as retired once every one of its versions is."""
    return RETIRED if stage_counts and set(stage_counts) == {RETIRED} else "active"


def show_model(ctx: Context, name: str) -> dict[str, Any]:
    with ctx.read() as conn:
        return model_view(conn, model_row(conn, name))


def model_view(conn: Connection, m: Any) -> dict[str, Any]:
    """A model as every reader shows it (`m`: its models row)."""
    tier = tiers_of(conn, [m])[m.id]
    versions = conn.execute(
        select(VERSIONS).where(VERSIONS.c.model_id == m.id).order_by(VERSIONS.c.version)
    ).all()
    aliases = conn.execute(
        select(ALIASES.c.alias, VERSIONS.c.version)
        .join(VERSIONS, VERSIONS.c.id == ALIASES.c.version_id)
        .where(ALIASES.c.model_id == m.id)
        .order_by(ALIASES.c.alias)
    ).all()
    return {
        "name": m.name,
        "description": m.description,
        "owner": m.owner,
        "status": model_status({v.stage: 1 for v in versions}),
        "risk_tier": tier,
        "created_at": m.created_at,
        "created_by": m.created_by,
        "aliases": {a: v for a, v in aliases},
        "versions": [
            {
                "version": v.version,
                "stage": v.stage,
                "status": v.status,
                "environment": v.environment,
                "break_glass": v.break_glass,
                "author": v.author,
                "artifact_sha256": v.artifact_sha256,
                "created_at": v.created_at,
            }
            for v in versions
        ],
    }


# --- datasets -------------------------------------------------------------


def dataset_row(conn: Connection, ref: str) -> Any:
    name, version = parse_dataset_ref(ref)
    stmt = select(DATASETS).where(DATASETS.c.name == name)
    if version is None:
        stmt = stmt.order_by(DATASETS.c.version.desc()).limit(1)
    else:
        stmt = stmt.where(DATASETS.c.version == version)
    row = conn.execute(stmt).first()
    if row is None:
        twin = case_twin(conn, name, DATASETS.c.name)
        if twin is not None and version is not None:
            twin = f"{twin}:{version}"
        raise NotFound(f"dataset '{ref}' does not exist" + names.did_you_mean(twin))
    return row


def refuse_case_twin(conn: Connection, kind: str, name: str, column: Any) -> None:
    """Refuse a new `kind` name that differs from one in `column` only by
    case: the two read as one (in the lineage, in a reviewer's eyes, in a
    policy that names one of them)."""
    twin = case_twin(conn, name, column)
    if twin is not None:
        raise BadInput(f"{kind} '{name}': differs from the {kind} '{twin}' only by case")


def _dataset_view(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "version": row.version,
        "content_sha256": row.content_sha256,
        "file_name": row.file_name,
        "file_format": row.file_format,
        "row_count": row.row_count,
        "columns": row.columns,
        "created_at": row.created_at,
        "created_by": row.created_by,
    }


def _latest_dataset(conn: Connection, name: str) -> Any:
    return conn.execute(
        select(DATASETS).where(DATASETS.c.name == name).order_by(DATASETS.c.version.desc()).limit(1)
    ).first()


def register_dataset(ctx: Context, data: Path | data_files.DataFile, name: str) -> dict[str, Any]:
    """Hash, profile and store a data file (or one read already: the rows a
    run trained on). The same content twice is a no-op."""
    names.entity(name, "--name")
    if isinstance(data, Path):
        data = data_files.load(data)
    fmt, digest, frame = data.fmt, data.sha256, data.frame
    if len(frame) == 0:
        # a header alone (an export that failed part way): no command can
        # train, validate or monitor on it, and the lineage would name it
        raise BadInput(f"{data.where}: no rows")
    columns = [{"name": str(c), "dtype": str(t)} for c, t in frame.dtypes.items()]
    with ctx.read() as conn:
        latest = _latest_dataset(conn, name)
        if latest is None:
            # before the file is stored: nothing written
            refuse_case_twin(conn, "dataset", name, DATASETS.c.name)
    if latest is not None and latest.content_sha256 == digest:
        return {**_dataset_view(latest), "created": False}
    ctx.put_artifact(data.blob)
    with ctx.write() as tx:
        # again under the write lock: two registrations of the same file at
        # once both found no such version above, and both made one
        latest = _latest_dataset(tx.conn, name)
        if latest is not None and latest.content_sha256 == digest:
            return {**_dataset_view(latest), "created": False}
        if latest is None:
            refuse_case_twin(tx.conn, "dataset", name, DATASETS.c.name)
        actor = _writer(tx)
        version = (latest.version if latest is not None else 0) + 1
        tx.insert(
            DATASETS,
            {
                "name": name,
                "version": version,
                "content_sha256": digest,
                "file_name": data.name,
                "file_format": fmt,
                "row_count": len(frame),
                "columns": columns,
                "created_at": tx.time,
                "created_by": actor,
            },
        )
        tx.record(
            "dataset.register",
            f"dataset:{name}:{version}",
            {"dataset": name, "version": version, "sha256": digest, "rows": len(frame)},
        )
    with ctx.read() as conn:
        return {**_dataset_view(dataset_row(conn, f"{name}:{version}")), "created": True}


def list_datasets(ctx: Context) -> list[dict[str, Any]]:
    with ctx.read() as conn:
        rows = conn.execute(select(DATASETS).order_by(DATASETS.c.name, DATASETS.c.version)).all()
    return [_dataset_view(r) for r in rows]


def show_dataset(ctx: Context, ref: str) -> dict[str, Any]:
    with ctx.read() as conn:
        return _dataset_view(dataset_row(conn, ref))


# --- training runs --------------------------------------------------------


CHANGE_AUTHOR = "change_author"  # the code reference's key: whose change was trained


def change_author_of(code_ref: Any) -> str | None:
    """The principal a run's code reference names as the change's author."""
    name = code_ref.get(CHANGE_AUTHOR) if isinstance(code_ref, dict) else None
    return name if isinstance(name, str) else None


def require_change_author(conn: Connection, name: Any, where: str) -> None:
    """A change author must be a principal: a name nobody holds (a CI user
    name that is not the principal's) would quietly forbid nobody."""
    if not isinstance(name, str):
        raise BadInput(f"{where}: must be a principal's name")
    names.principal(name, where)
    try:
        principal_row(conn, name)
    except NotFound:
        raise BadInput(
            f"{where}: '{name}' is not a principal (name the change's author as "
            "`cmi user list` does)"
        ) from None


def record_run(
    ctx: Context,
    *,
    params: dict[str, Any],
    metrics: dict[str, Any],
    environment: dict[str, Any] | None = None,
    code_ref: dict[str, Any] | None = None,
    seed: int | None = None,
    datasets: dict[str, str] | None = None,
    run_key: str | None = None,
) -> dict[str, Any]:
    """A training run: params, metrics, environment, code and the data it read.

    `datasets` maps a role (train, holdout, ...) to a dataset reference. The
    same run recorded again under its key (a CI job's retry after a timeout
    that came after the commit) is answered with the run (`created` false);
    the key with anything else recorded is refused.
    """
    metrics = check_metrics(metrics)
    problem = seed_problem(seed) if seed is not None else None
    if problem:
        raise BadInput(f"--seed: {problem}")
    # an empty key (a CI variable that was not set) is refused, not replaced:
    # a generated key made every retry a new run
    run_key = names.key(run_key, "--key") if run_key is not None else f"run-{uuid.uuid4().hex[:12]}"
    environment, code_ref = environment or {}, code_ref or {}
    with ctx.write() as tx:
        actor = _writer(tx)
        if CHANGE_AUTHOR in code_ref:
            require_change_author(tx.conn, code_ref[CHANGE_AUTHOR], f"--code: {CHANGE_AUTHOR}")
        links = {role: dataset_row(tx.conn, ref) for role, ref in (datasets or {}).items()}
        before = tx.conn.execute(select(RUNS).where(RUNS.c.run_key == run_key)).first()
        if before is not None:
            recorded = _run_view(tx.conn, before)
            given = {
                "params": params,
                "metrics": metrics,
                "environment": environment,
                "code_ref": code_ref,
                "seed": seed,
                "datasets": _dataset_links(
                    (r, d.name, d.version, d.content_sha256) for r, d in sorted(links.items())
                ),
            }
            for field, option in _RUN_OPTIONS.items():
                if given[field] != recorded[field]:
                    raise BadInput(
                        f"--key: run '{run_key}' was recorded with another {option}; "
                        "a retry gives what it recorded, a new run a new key"
                    )
            return {**recorded, "created": False}
        rid = tx.insert(
            RUNS,
            {
                "run_key": run_key,
                "params": params,
                "metrics": metrics,
                "environment": environment,
                "code_ref": code_ref,
                "seed": seed,
                "created_at": tx.time,
                "created_by": actor,
            },
        )
        for role, ds in sorted(links.items()):
            tx.insert(RUN_DATASETS, {"run_id": rid, "dataset_id": ds.id, "role": role})
        edges = [
            (("dataset", ds.id), ("run", rid), f"input:{role}")
            for role, ds in sorted(links.items())
        ]
        if isinstance(params.get("recipe_sha256"), str):
            edges.append((("recipe", params["recipe_sha256"]), ("run", rid), "recipe"))
        lineage.connect(tx, edges)
        tx.record(
            "run.record",
            f"run:{run_key}",
            {
                "run": run_key,
                "datasets": {r: f"{d.name}:{d.version}" for r, d in sorted(links.items())},
            },
        )
        row = tx.conn.execute(select(RUNS).where(RUNS.c.id == rid)).one()
        return {**_run_view(tx.conn, row), "created": True}


# a run's view's fields as `cmi run record` takes them
_RUN_OPTIONS = {
    "params": "--params",
    "metrics": "--metrics",
    "environment": "--environment",
    "code_ref": "--code",
    "seed": "--seed",
    "datasets": "--dataset",
}


def show_run(ctx: Context, run_key: str) -> dict[str, Any]:
    with ctx.read() as conn:
        run = conn.execute(select(RUNS).where(RUNS.c.run_key == run_key)).first()
        if run is None:
            raise NotFound(f"run '{run_key}' does not exist")
        return _run_view(conn, run)


def _dataset_links(links: Any) -> list[dict[str, Any]]:
    """(role, name, version, sha256) rows as a run's or a version's view lists them."""
    return [{"role": r, "dataset": f"{n}:{v}", "sha256": h} for r, n, v, h in links]


def _run_view(conn: Connection, run: Any) -> dict[str, Any]:
    links = conn.execute(
        select(RUN_DATASETS.c.role, DATASETS.c.name, DATASETS.c.version, DATASETS.c.content_sha256)
        .join(DATASETS, DATASETS.c.id == RUN_DATASETS.c.dataset_id)
        .where(RUN_DATASETS.c.run_id == run.id)
        .order_by(RUN_DATASETS.c.role)
    ).all()
    return {
        "run": run.run_key,
        "params": run.params,
        "metrics": run.metrics,
        "environment": run.environment,
        "code_ref": run.code_ref,
        "seed": run.seed,
        "datasets": _dataset_links(links),
        "created_at": run.created_at,
        "created_by": run.created_by,
    }


# --- versions -------------------------------------------------------------


_BY_MODEL = VERSIONS.c.model_id == bindparam("model_id")
_VERSION_BY_NUMBER = driver.Prepared(
    select(VERSIONS).where(_BY_MODEL, VERSIONS.c.version == bindparam("number"))
)
_VERSION_LATEST = driver.Prepared(
    select(VERSIONS).where(_BY_MODEL).order_by(VERSIONS.c.version.desc()).limit(1)
)
_VERSION_BY_ALIAS = driver.Prepared(
    select(VERSIONS)
    .join(ALIASES, ALIASES.c.version_id == VERSIONS.c.id)
    .where(ALIASES.c.model_id == bindparam("model_id"), ALIASES.c.alias == bindparam("alias"))
)


def version_row(conn: Connection, ref: VersionRef | str, model: Any = None) -> Any:
    """The versions row `ref` names; `model` (its models row) saves a lookup."""
    if isinstance(ref, str):
        ref = parse_version_ref(ref)
    m = model if model is not None else model_row(conn, ref.model)
    if ref.alias is not None:
        row = driver.first(conn, _VERSION_BY_ALIAS, {"model_id": m.id, "alias": ref.alias})
        if row is None:
            raise NotFound(f"{ref}: {_no_alias(m, ref.alias, conn)}")
        return row
    if ref.version is not None:
        row = driver.first(conn, _VERSION_BY_NUMBER, {"model_id": m.id, "number": ref.version})
    else:
        row = driver.first(conn, _VERSION_LATEST, {"model_id": m.id})
    if row is None:
        raise NotFound(f"{ref}: no such version")
    return row


_LAST_NUMBER = driver.Prepared(select(func.max(VERSIONS.c.version)).where(_BY_MODEL))


def register_version(
    ctx: Context,
    model: str,
    artifact: Path,
    *,
    datasets: dict[str, str] | None = None,
    run: str | None = None,
    metrics: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    description: str = "",
) -> dict[str, Any]:
    """Copy the artifact into the store and register it as the next version.

    Registered again from the same `run` with everything the same (artifact,
    metrics, tags, datasets, description: a CI job's retry), it is answered
    with the version that registration made (`created` false); a run may
    still register other versions (another artifact, other tags)."""
    names.entity(model, "model")
    metric_values = check_metrics(metrics or {})
    tag_values = {names.key(k, "--tag"): v for k, v in (tags or {}).items()}
    require_file(artifact)
    digest, size = ctx.put_artifact(artifact)
    with ctx.write() as tx:
        if size == 0:  # a failed export: no model is 0 bytes (refused in here, so the
            # transaction's clean-up takes the stored copy away again)
            raise BadInput(f"--artifact: {artifact}: empty (0 bytes); it holds no model")
        # the format of the bytes stored, which the transaction holding the
        # write lock keeps in place: the file named may change after its copy
        fmt = artifact_format.detect(ctx.workspace.artifacts.path_for(digest))
        actor = _writer(tx)
        m = model_row(tx.conn, model)
        run_row = None
        if run is not None:
            run_row = tx.conn.execute(select(RUNS).where(RUNS.c.run_key == run)).first()
            if run_row is None:
                raise NotFound(f"--run: run '{run}' does not exist")
        links = {role: dataset_row(tx.conn, ref) for role, ref in (datasets or {}).items()}
        ordered = sorted(links.items())
        if run_row is not None:
            same = _registered_from(
                tx.conn,
                m,
                run_row.id,
                digest,
                {
                    "run": run_row.run_key,
                    "metrics": dict(sorted(metric_values.items())),
                    "tags": dict(sorted(tag_values.items())),
                    "datasets": _dataset_links(
                        (r, d.name, d.version, d.content_sha256) for r, d in ordered
                    ),
                    "description": description,
                },
            )
            if same is not None:
                return {**same, "created": False}
        number = (driver.scalar(tx.conn, _LAST_NUMBER, {"model_id": m.id}) or 0) + 1
        row = {
            "model_id": m.id,
            "version": number,
            "artifact_sha256": digest,
            "artifact_name": artifact.name,
            "artifact_format": fmt,
            "artifact_size": size,
            "author": actor,
            "run_id": run_row.id if run_row else None,
            "stage": tx.effective_for(m).policy.initial_stage,
            "status": "active",
            "description": description,
            "created_at": tx.time,
        }
        row = complete_row(VERSIONS, row)  # with the table's defaults, as the log has it
        vid = tx.insert(VERSIONS, row)
        tx.insert_many(
            VERSION_DATASETS,
            [{"version_id": vid, "dataset_id": ds.id, "role": role} for role, ds in ordered],
        )
        tx.insert_many(
            METRICS,
            [{"version_id": vid, "key": k, "value": v} for k, v in sorted(metric_values.items())],
        )
        tx.insert_many(
            TAGS, [{"version_id": vid, "key": k, "value": v} for k, v in sorted(tag_values.items())]
        )
        edges = [(("dataset", ds.id), ("version", vid), role) for role, ds in ordered]
        if run_row is not None:
            edges.append((("run", run_row.id), ("version", vid), "produced"))
        lineage.connect(tx, edges)
        tx.record(
            "version.register",
            f"version:{model}:{number}",
            {"model": model, "version": number, "artifact_sha256": digest, "format": fmt},
        )
    # built from what was written: a batch of registrations reads nothing back
    view = _view(
        model,
        row,
        run=run_row.run_key if run_row else None,
        metrics=dict(sorted(metric_values.items())),
        tags=dict(sorted(tag_values.items())),
        aliases=[],
        datasets=[(r, ds.name, ds.version, ds.content_sha256) for r, ds in ordered],
    )
    return {**view, "created": True}


def _registered_from(
    conn: Connection, m: Any, run_id: int, digest: str, given: dict[str, Any]
) -> dict[str, Any] | None:
    """The view of `m`'s version that run `run_id` registered with artifact
    `digest` and what `given` holds, if there is one."""
    rows = conn.execute(
        select(VERSIONS)
        .where(
            VERSIONS.c.artifact_sha256 == digest,
            VERSIONS.c.model_id == m.id,
            VERSIONS.c.run_id == run_id,
        )
        .order_by(VERSIONS.c.version)
    ).all()
    for v in rows:
        view = version_view(conn, m.name, v)
        if all(view[k] == value for k, value in given.items()):
            return view
    return None


_VIEW_METRICS = (
    select(METRICS.c.key, METRICS.c.value)
    .where(METRICS.c.version_id == bindparam("vid"))
    .order_by(METRICS.c.key)
)
_VIEW_TAGS = (
    select(TAGS.c.key, TAGS.c.value)
    .where(TAGS.c.version_id == bindparam("vid"))
    .order_by(TAGS.c.key)
)
_VIEW_ALIASES = (
    select(ALIASES.c.alias)
    .where(ALIASES.c.version_id == bindparam("vid"))
    .order_by(ALIASES.c.alias)
)
_VIEW_DATASETS = (
    select(VERSION_DATASETS.c.role, DATASETS.c.name, DATASETS.c.version, DATASETS.c.content_sha256)
    .join(DATASETS, DATASETS.c.id == VERSION_DATASETS.c.dataset_id)
    .where(VERSION_DATASETS.c.version_id == bindparam("vid"))
    .order_by(VERSION_DATASETS.c.role)
)
_VIEW_RUN = select(RUNS.c.run_key).where(RUNS.c.id == bindparam("run_id"))
_MODEL_NAME = select(MODELS.c.name).where(MODELS.c.id == bindparam("model_id"))


def model_name(conn: Connection, model_id: int) -> str:
    return str(conn.execute(_MODEL_NAME, {"model_id": model_id}).scalar_one())


def ref_of(ctx: Context, version_id: int) -> str:
    """MODEL:VERSION of a versions row id."""
    with ctx.read() as conn:
        v = conn.execute(select(VERSIONS).where(VERSIONS.c.id == version_id)).one()
        return f"{model_name(conn, v.model_id)}:{v.version}"


def show_version(ctx: Context, ref: str) -> dict[str, Any]:
    with ctx.read() as conn:
        v = version_row(conn, ref)
        return version_view(conn, model_name(conn, v.model_id), v)


def version_view(conn: Connection, model: str, v: Any) -> dict[str, Any]:
    """A version as every reader shows it (`v` is its versions row)."""
    vid = {"vid": v.id}
    metrics = dict(conn.execute(_VIEW_METRICS, vid).all())
    tags = dict(conn.execute(_VIEW_TAGS, vid).all())
    aliases = [r[0] for r in conn.execute(_VIEW_ALIASES, vid)]
    data = conn.execute(_VIEW_DATASETS, vid).all()
    run = None
    if v.run_id is not None:
        run = conn.execute(_VIEW_RUN, {"run_id": v.run_id}).scalar_one()
    return _view(
        model, v._mapping, run=run, metrics=metrics, tags=tags, aliases=aliases, datasets=data
    )


def _view(
    model: str,
    v: Any,
    *,
    run: str | None,
    metrics: dict[str, float],
    tags: dict[str, str],
    aliases: list[str],
    datasets: Any,
) -> dict[str, Any]:
    """The one shape of a version for every reader (`v`: its versions columns)."""
    return {
        "model": model,
        **{col: v[col] for col in _VIEW_COLUMNS},
        "run": run,
        "metrics": metrics,
        "tags": tags,
        "aliases": aliases,
        "datasets": _dataset_links(datasets),
    }


_VIEW_COLUMNS = (
    "version",
    "stage",
    "status",
    "environment",
    "break_glass",
    "artifact_sha256",
    "artifact_name",
    "artifact_format",
    "artifact_size",
    "author",
    "description",
    "created_at",
)


def list_versions(
    ctx: Context, model: str, *, stage: str | None = None, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    return search_versions(ctx, model=model, stage=stage, limit=limit, offset=offset)


def parse_metric_filter(text: str) -> tuple[str, str, float]:
    """'auc>=0.8' -> ('auc', '>=', 0.8)."""
    for op in (">=", "<=", ">", "<", "="):
        key, sep, value = text.partition(op)
        if sep:
            try:
                number = float(value)
            except ValueError:
                break
            if not math.isfinite(number):
                break
            return names.key(key.strip(), "--metric"), op, number
    raise BadInput(f"--metric: '{text[:80]}' is not KEY>=NUMBER (ops: >= <= > < =)")


def search_notes(
    ctx: Context,
    *,
    stage: str | None = None,
    tags: list[tuple[str, str]] = (),  # type: ignore[assignment]
    metrics: list[tuple[str, str, float]] = (),  # type: ignore[assignment]
) -> list[str]:
    """Why a search matched nothing, where a filter names what no version has:
    a stage no version is in, a tag or metric no version carries (`Team=onc`
    where tags are `team`), a tag value in another case. A filter naming what
    exists says nothing: the versions simply do not meet them all."""
    notes = []
    with ctx.read() as conn:
        if stage is not None:
            used = sorted(r[0] for r in conn.execute(select(VERSIONS.c.stage).distinct()))
            if stage not in used:
                notes.append(
                    f"no version is in stage '{stage}' (in use: {', '.join(used) or 'none'})"
                )
        for key, value in tags:
            if not _has(conn, TAGS, TAGS.c.key == key):
                notes.append(f"no version has a tag '{key}'" + _near(conn, key, TAGS.c.key))
            elif not _has(conn, TAGS, TAGS.c.key == key, TAGS.c.value == value):
                near = _near(conn, value, TAGS.c.value, TAGS.c.key == key)
                if near:  # another value is no news; the same in another case is
                    notes.append(f"no version has the tag {key}={printable(value)}" + near)
        for key, _op, _value in metrics:
            if not _has(conn, METRICS, METRICS.c.key == key):
                notes.append(f"no version has a metric '{key}'" + _near(conn, key, METRICS.c.key))
    return notes


def _has(conn: Connection, table: Any, *conditions: Any) -> bool:
    return (
        conn.execute(select(1).select_from(table).where(*conditions).limit(1)).first() is not None
    )


def _near(conn: Connection, text: str, column: Any, *within: Any) -> str:
    """`; did you mean 'X'?` for a value of `column` equal to `text` but for case."""
    twin = case_twin(conn, text, column, *within)
    return names.did_you_mean(printable(twin) if twin is not None else None)


def search_versions(
    ctx: Context,
    *,
    model: str | None = None,
    tags: list[tuple[str, str]] = (),  # type: ignore[assignment]
    metrics: list[tuple[str, str, float]] = (),  # type: ignore[assignment]
    stage: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Versions matching every tag and metric condition, newest first."""
    check_page(limit, offset)
    stmt = select(VERSIONS, MODELS.c.name.label("model_name")).join(
        MODELS, MODELS.c.id == VERSIONS.c.model_id
    )
    if model is not None:
        stmt = stmt.where(MODELS.c.name == model)
    if stage is not None:
        stmt = stmt.where(VERSIONS.c.stage == stage)
    for i, (key, value) in enumerate(tags):
        t = TAGS.alias(f"t{i}")
        stmt = stmt.join(
            t, and_(t.c.version_id == VERSIONS.c.id, t.c.key == key, t.c.value == value)
        )
    for i, (key, op, value) in enumerate(metrics):
        mt = METRICS.alias(f"m{i}")
        cond = getattr(mt.c.value, METRIC_OPS[op])(value)
        stmt = stmt.join(mt, and_(mt.c.version_id == VERSIONS.c.id, mt.c.key == key, cond))
    stmt = stmt.order_by(VERSIONS.c.id.desc()).limit(limit).offset(offset)
    with ctx.read() as conn:
        if model is not None:
            model_row(conn, model)
        rows = conn.execute(stmt).all()
        ids = [r.id for r in rows]
        metric_map: dict[int, dict[str, float]] = {}
        if ids:
            for vid, key, value in conn.execute(
                select(METRICS.c.version_id, METRICS.c.key, METRICS.c.value).where(
                    METRICS.c.version_id.in_(ids)
                )
            ):
                metric_map.setdefault(vid, {})[key] = value
    return [
        {
            "model": r.model_name,
            "version": r.version,
            "stage": r.stage,
            "status": r.status,
            "environment": r.environment,
            "break_glass": r.break_glass,
            "author": r.author,
            "artifact_sha256": r.artifact_sha256,
            "created_at": r.created_at,
            "metrics": metric_map.get(r.id, {}),
        }
        for r in rows
    ]


def tag_version(
    ctx: Context,
    ref: str,
    tags: dict[str, str],
    remove: list[str] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    if not tags and not remove:
        raise BadInput("version tag: give --tag KEY=VALUE or --remove KEY")
    twice = names.repeated(remove)
    if twice is not None:
        raise BadInput(f"--remove: '{twice[1]}' given twice")
    for key in remove:
        if key in tags:
            raise BadInput(f"--remove: '{key}' is also set by --tag")
    with ctx.write() as tx:
        _writer(tx)
        v = version_row(tx.conn, ref)
        model = tx.conn.execute(select(MODELS.c.name).where(MODELS.c.id == v.model_id)).scalar_one()
        existing = {
            r.key: r for r in tx.conn.execute(select(TAGS).where(TAGS.c.version_id == v.id))
        }
        subject = f"version:{model}:{v.version}"
        for key in remove:
            if key in existing:
                tx.delete(TAGS, existing[key].id)
            elif not _tag_removed(tx.conn, subject, key):  # a typo, not a retry
                raise BadInput(f"--remove: {model}:{v.version} has no tag '{key}'")
        for key, value in sorted(tags.items()):
            names.key(key, "--tag")
            if key in existing and key not in remove:
                if existing[key].value != value:
                    tx.update(TAGS, existing[key].id, {"value": value})
            else:
                tx.insert(TAGS, {"version_id": v.id, "key": key, "value": value})
        changed = bool(tx.changes)
        # tags already as given (a retry): nothing to record, and no entry
        # that changes nothing (verify would find the log and the tables at
        # odds); answered with the version, as every retry is
        if changed:
            tx.record(
                "version.tag",
                subject,
                # only what this call removed: a key gone already (a retry) is
                # not removed again, and the entry says what changed
                {"set": dict(sorted(tags.items())), "removed": sorted(set(remove) & set(existing))},
            )
    return {**show_version(ctx, f"{model}:{v.version}"), "created": changed}


def _tag_removed(conn: Connection, subject: str, key: str) -> bool:
    """Whether the last change to the tag `key` removed it (a retried `--remove`)."""
    last = ledger.newest(
        conn,
        subject,
        ("version.tag",),
        lambda e: key in (e["data"].get("removed") or ()) or key in (e["data"].get("set") or {}),
    )
    return last is not None and key in (last["data"].get("removed") or ())


_ALIAS = driver.Prepared(
    select(ALIASES.c.id, ALIASES.c.version_id, VERSIONS.c.version)
    .join(VERSIONS, VERSIONS.c.id == ALIASES.c.version_id)
    .where(ALIASES.c.model_id == bindparam("model_id"), ALIASES.c.alias == bindparam("alias"))
)


def set_alias(ctx: Context, model: str, alias: str, version: int) -> dict[str, Any]:
    names.entity(alias, "alias")
    with ctx.write() as tx:
        _writer(tx)
        m = model_row(tx.conn, model)
        v = version_row(tx.conn, VersionRef(model, version), m)
        if v.status == RETIRED:  # an alias names a version to use; this one never will be
            raise BadInput(f"{model}:{version} is retired; an alias cannot name it")
        current = driver.first(tx.conn, _ALIAS, {"model_id": m.id, "alias": alias})
        previous = None
        if current is None:
            twin = case_twin(tx.conn, alias, ALIASES.c.alias, ALIASES.c.model_id == m.id)
            if twin is not None:  # MODEL@Champion beside MODEL@champion: two versions
                raise BadInput(
                    f"alias '{alias}': differs from {model}'s alias '{twin}' only by case"
                )
            tx.insert(ALIASES, {"model_id": m.id, "alias": alias, "version_id": v.id})
        elif current.version_id == v.id:  # a retry: answered, nothing written
            return {"model": model, "alias": alias, "version": version, "created": False}
        else:
            previous = current.version
            tx.update(ALIASES, current.id, {"version_id": v.id})
        tx.record(
            "alias.set",
            f"model:{model}",
            {"alias": alias, "version": version, "previous": previous},
        )
    return {
        "model": model,
        "alias": alias,
        "version": version,
        "previous": previous,
        "created": True,
    }


def drop_aliases_of(tx: Tx, version_id: int) -> list[str]:
    """Delete the aliases naming a version that is being retired, so that
    `MODEL@ALIAS` never resolves to a version retired for good."""
    rows = tx.conn.execute(
        select(ALIASES.c.id, ALIASES.c.alias)
        .where(ALIASES.c.version_id == version_id)
        .order_by(ALIASES.c.alias)
    ).all()
    for r in rows:
        tx.delete(ALIASES, r.id)
    return [r.alias for r in rows]


def delete_alias(ctx: Context, model: str, alias: str) -> dict[str, Any]:
    with ctx.write() as tx:
        _writer(tx)
        m = model_row(tx.conn, model)
        current = tx.conn.execute(
            select(ALIASES).where(ALIASES.c.model_id == m.id, ALIASES.c.alias == alias)
        ).first()
        if current is None:
            # deleted already (a retry): answered with that deletion; an alias
            # never there (a typo) is refused
            last = ledger.newest(
                tx.conn,
                f"model:{model}",
                ("alias.set", "alias.delete"),
                lambda e: e["data"].get("alias") == alias,
            )
            if last is None or last["action"] != "alias.delete":
                raise NotFound(_no_alias(m, alias, tx.conn))
            return ledger.answer(last, model=model, deleted=True, by=last["actor"])
        tx.delete(ALIASES, current.id)
        tx.record("alias.delete", f"model:{model}", {"alias": alias})
    return {"model": model, "alias": alias, "deleted": True, "created": True}
