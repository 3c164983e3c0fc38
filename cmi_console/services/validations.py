"""Running a policy's validation suite on a version, and the recorded runs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from cmi_console.core import environment, roles
from cmi_console.core.errors import BadInput, NotFound
from cmi_console.core.gates import ValidationFacts
from cmi_console.core.policy import Effective
from cmi_console.core.refs import parse_version_ref
from cmi_console.core.seeds import seed_problem
from cmi_console.services import lineage
from cmi_console.services.context import Context
from cmi_console.services.identity import require_role
from cmi_console.services.policies import effective_for
from cmi_console.services.registry import (
    DATASETS,
    MODELS,
    VERSION_DATASETS,
    VERSIONS,
    model_row,
    version_row,
)
from cmi_console.store.tables import ValidationRun, table

RUNS = table(ValidationRun)
DEFAULT_SEED = 0


def next_gate(policy: Effective, stage: str) -> tuple[str, str | None] | None:
    """The first non-terminal stage that `stage` leads to, and its suite."""
    for target, spec in policy.policy.stages.items():
        if stage in spec.from_ and not spec.terminal and target != stage:
            return target, spec.suite
    return None


def suite_for(policy: Effective, stage: str) -> str | None:
    """The suite of the gate that leads on from `stage`."""
    gate = next_gate(policy, stage)
    return gate[1] if gate else None


def latest_run(conn: Connection, version_id: int, suite: str) -> Any:
    return conn.execute(
        select(RUNS)
        .where(RUNS.c.version_id == version_id, RUNS.c.suite == suite)
        .order_by(RUNS.c.id.desc())
        .limit(1)
    ).first()


def facts(row: Any) -> ValidationFacts:
    results = row.results or []
    return ValidationFacts(
        id=row.id,
        suite=row.suite,
        sha256=row.result_sha256,
        status=row.status,
        run_by=row.run_by,
        policy_sha256=row.policy_sha256,
        failed=tuple(
            r["label"] for r in results if r.get("blocking") and r["status"] in ("fail", "error")
        ),
        passed_kinds=frozenset(r["kind"] for r in results if r["status"] in ("pass", "warn")),
    )


def validate(
    ctx: Context,
    ref: str,
    *,
    suite: str | None = None,
    seed: int = DEFAULT_SEED,
    data: Path | None = None,
    progress: Callable[[int, int, Any], None] | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """Run a suite. The checks run outside any write transaction (they can take
    a while); the run and its audit entry are then written in one."""
    from cmi_console.validation.results import digest, overall
    from cmi_console.validation.runner import run_suite
    from cmi_console.validation.subject import Subject

    actor = ctx.require_actor()
    problem = seed_problem(seed)
    if problem:
        raise BadInput(f"--seed: {problem}")
    with ctx.read() as conn:
        require_role(conn, actor, roles.VALIDATION_RUNNERS, "run a validation suite")
        parsed = parse_version_ref(ref)
        v = version_row(conn, parsed)
        model = model_row(conn, parsed.model)
        policy = effective_for(conn, model)
        name = suite or suite_for(policy, v.stage)
        if name is None:
            raise BadInput(f"{ref}: no gate leads on from {v.stage} with a suite; pass --suite")
        if name not in policy.policy.suites:
            raise NotFound(f"--suite: the policy has no suite '{name}'")
        specs = policy.policy.suites[name].specs()
        links = conn.execute(
            select(
                VERSION_DATASETS.c.role,
                DATASETS.c.name,
                DATASETS.c.version,
                DATASETS.c.content_sha256,
            )
            .join(DATASETS, DATASETS.c.id == VERSION_DATASETS.c.dataset_id)
            .where(VERSION_DATASETS.c.version_id == v.id)
        ).all()
    inputs: dict[str, Any] = {}
    current = None
    if data is not None:
        from cmi_console.store import data_files

        read = data_files.load(data, "--data")  # the hash recorded is of the rows checked
        inputs["current"] = {"file": read.name, "sha256": read.sha256}
        current = read.frame
    store = ctx.workspace.artifacts
    subject = Subject(
        model=model.name,
        version=v.version,
        artifact_sha256=v.artifact_sha256,
        artifact_format=v.artifact_format,
        read_artifact=lambda: store.read(v.artifact_sha256),
        allow_pickle=policy.policy.allow_pickle,
        seed=seed,
        datasets={
            r.role: {"name": r.name, "version": r.version, "sha256": r.content_sha256}
            for r in links
        },
        evaluation_source=_evaluation_source(ctx, ref, current),
        champion=lambda stage: _champion(ctx, model, v.id, stage, policy.policy.allow_pickle),
        reproduce=lambda: _reproduce(ctx, ref),
    )
    inputs = {"datasets": subject.datasets, **inputs}
    if data is not None:
        # a file that does not fit the model is bad input, not a run of errors
        from cmi_console.validation.conformance import check_current

        try:
            evaluation = subject.evaluation()
        except NotFound:
            raise BadInput(
                f"--data: {ref} was not trained from a recipe (cmi train): there is no "
                "training data to compare it with"
            ) from None
        check_current(evaluation, f"--data: {data}")
    started = ctx.clock()
    results = run_suite(specs, subject, progress, cancel)
    document = {
        "model": model.name,
        "version": v.version,
        "artifact_sha256": v.artifact_sha256,
        "suite": name,
        "policy_sha256": policy.sha256,
        "seed": seed,
        "inputs": inputs,
        "results": [r.as_json() for r in results],
    }
    result_sha = digest(document)
    status = overall(results)
    with ctx.write() as tx:
        require_role(tx.conn, actor, roles.VALIDATION_RUNNERS, "run a validation suite")
        run_id = tx.insert(
            RUNS,
            {
                "version_id": v.id,
                "suite": name,
                "policy_sha256": policy.sha256,
                "result_sha256": result_sha,
                "status": status,
                "results": document["results"],
                "inputs": document["inputs"],
                "seed": seed,
                "environment": environment.describe(),
                "run_by": actor,
                "started_at": started,
                "finished_at": tx.time,
            },
        )
        lineage.connect(tx, [(("version", v.id), ("validation", run_id), "validated")])
        tx.record(
            "validation.run",
            f"version:{model.name}:{v.version}",
            {
                "run": run_id,
                "suite": name,
                "status": status,
                "policy_sha256": policy.sha256,
                "result_sha256": result_sha,
            },
        )
    return {"run": run_id, "status": status, "result_sha256": result_sha, **document}


def _evaluation_source(ctx: Context, ref: str, current: Any | None) -> Callable[[], Any]:
    """Builds, on first use, the data the checks compare: the recipe's training
    split as reference and its holdout (or the given `current`) as current."""

    def build() -> Any:
        from cmi_console.services.training import frames, recipe_of
        from cmi_console.validation.subject import Evaluation
        from cmi_console.validation.training import feature_columns, split

        recipe, _raw, blobs = recipe_of(ctx, ref)
        train, holdout = frames(blobs)
        parts = split(recipe, train, holdout)
        return Evaluation(
            reference=parts.train,
            current=parts.holdout if current is None else current,
            target=recipe.data.target,
            features=feature_columns(recipe, train),
            sensitive=list(recipe.data.sensitive),
            task=recipe.task,
        )

    return build


def _champion(
    ctx: Context, model: Any, candidate_id: int, stage: str, allow_pickle: bool
) -> tuple[str, Any] | None:
    """The newest other version of the model in `stage`, loaded safely."""
    from cmi_console.store.model_files import loads

    with ctx.read() as conn:
        row = conn.execute(
            select(VERSIONS)
            .where(
                VERSIONS.c.model_id == model.id,
                VERSIONS.c.stage == stage,
                VERSIONS.c.id != candidate_id,
            )
            .order_by(VERSIONS.c.version.desc())
            .limit(1)
        ).first()
    if row is None:
        return None
    ref = f"{model.name}:{row.version}"
    data = ctx.workspace.artifacts.read(row.artifact_sha256)
    return ref, loads(data, row.artifact_format, allow_pickle=allow_pickle, where=ref)


def _reproduce(ctx: Context, ref: str) -> dict[str, Any]:
    from cmi_console.services.training import reproduce

    return reproduce(ctx, ref)


def run_view(row: Any) -> dict[str, Any]:
    return {
        "run": row.id,
        "suite": row.suite,
        "status": row.status,
        "result_sha256": row.result_sha256,
        "policy_sha256": row.policy_sha256,
        "seed": row.seed,
        "run_by": row.run_by,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "results": row.results,
        "inputs": row.inputs,
        "environment": row.environment,
    }


def recorded(ctx: Context, ref: str, suite: str) -> dict[str, Any] | None:
    """The latest run of `suite` on `ref` as `validate` returned it, or None."""
    with ctx.read() as conn:
        v = version_row(conn, ref)
        row = latest_run(conn, v.id, suite)
        if row is None:
            return None
        model = conn.execute(select(MODELS.c.name).where(MODELS.c.id == v.model_id)).scalar_one()
    view = run_view(row)
    return {**view, "model": model, "version": v.version, "artifact_sha256": v.artifact_sha256}


def list_runs(ctx: Context, ref: str) -> list[dict[str, Any]]:
    with ctx.read() as conn:
        v = version_row(conn, ref)
        rows = conn.execute(select(RUNS).where(RUNS.c.version_id == v.id).order_by(RUNS.c.id)).all()
    return [run_view(r) for r in rows]


def show_run(ctx: Context, run_id: int) -> dict[str, Any]:
    with ctx.read() as conn:
        row = conn.execute(select(RUNS).where(RUNS.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"validation run {run_id} does not exist")
        v = conn.execute(select(VERSIONS).where(VERSIONS.c.id == row.version_id)).first()
    return {"version": v.version, **run_view(row)}


def recent_failures(ctx: Context, limit: int = 10) -> list[dict[str, Any]]:
    """The latest runs that did not pass, newest first."""
    from cmi_console.services.registry import MODELS

    with ctx.read() as conn:
        rows = conn.execute(
            select(RUNS, MODELS.c.name.label("model"), VERSIONS.c.version)
            .join(VERSIONS, VERSIONS.c.id == RUNS.c.version_id)
            .join(MODELS, MODELS.c.id == VERSIONS.c.model_id)
            .where(RUNS.c.status != "pass")
            .order_by(RUNS.c.id.desc())
            .limit(limit)
        ).all()
    return [
        {
            "run": r.id,
            "version": f"{r.model}:{r.version}",
            "suite": r.suite,
            "status": r.status,
            "failed": facts(r).failed,
            "finished_at": r.finished_at,
        }
        for r in rows
    ]
