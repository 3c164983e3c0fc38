"""`cmi train` and `cmi reproduce`: versions with full lineage, from recipes."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy import select

from cmi_console.core import environment
from cmi_console.core import recipe as rcp
from cmi_console.core.errors import BadInput, NotFound
from cmi_console.services import registry
from cmi_console.services.context import Context
from cmi_console.store import data_files

# Metrics are recomputed from the same bytes on the same data; anything beyond
# float noise is a real difference.
METRIC_TOLERANCE = 1e-9


def git_info(where: Path) -> dict[str, Any]:
    """Commit and dirty flag of the repository holding `where`, if any."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=where, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    root = git("rev-parse", "--show-toplevel")
    if root is None:
        return {}
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain")
    # a status git could not give (a corrupt index, a status slower than the
    # timeout on a huge tree) is unknown, not clean: it was recorded as clean
    return {"repo_root": root, "commit": commit, "dirty": None if status is None else bool(status)}


def train(
    ctx: Context,
    path: Path,
    root: Path | None = None,
    *,
    again: bool = False,
    change_author: str | None = None,
) -> dict[str, Any]:
    """`root` bounds the recipe's data paths (default: its git repository, or
    its directory). A recipe already trained on the same data (the same run:
    recipe, data and model bytes) is refused, or with `again` answered with
    the version it registered then, writing nothing (`already_registered`).
    `change_author`: the principal whose change (commit) this trains, kept
    with the code reference; they may not decide on the version."""
    recipe, raw = rcp.load(path)
    code = git_info(path.parent)
    if change_author is not None:
        with ctx.read() as conn:  # before the training, which takes a while
            registry.require_change_author(conn, change_author, "--change-author")
        code[registry.CHANGE_AUTHOR] = change_author
    root = root or (Path(code["repo_root"]) if code else path.parent)
    data_path = rcp.resolve(path.parent, recipe.data.file, root, f"{path}: data.file")
    holdout_path = None
    if recipe.split.file is not None:
        holdout_path = rcp.resolve(path.parent, recipe.split.file, root, f"{path}: split.file")
    # read once: the datasets registered are the very bytes trained on; and
    # checked to be inside the root as opened, not only as resolved above
    data = data_files.load(data_path, f"{path}: data.file", within=root)
    held = (
        data_files.load(holdout_path, f"{path}: split.file", within=root) if holdout_path else None
    )
    if held is not None and held.sha256 == data.sha256:
        # its metrics, registered with the version, were the training rows' own
        raise BadInput(
            f"{path}: split.file: the same data as data.file; "
            "a holdout must be rows the model was not trained on"
        )
    return _register(ctx, _fit(recipe, raw, data, held, str(path)), code, str(path), again)


def fit_retrain(ctx: Context, ref: str, data: data_files.DataFile) -> Fitted:
    """Train `ref`'s recorded recipe again on new data (same features, seed
    and estimator), writing nothing yet: a file it cannot train on is refused
    before the caller writes anything. Data it was trained on already gives
    the same run: `registered` then names the version that run registered,
    which the caller judges (monitoring._refit); a run that registered
    none is refused."""
    recipe, raw, blobs = recipe_of(ctx, ref)
    with ctx.read() as conn:
        v = registry.version_row(conn, ref)
        run = conn.execute(select(registry.RUNS).where(registry.RUNS.c.id == v.run_id)).one()
    features = (run.params or {}).get("features")
    spec = dict(raw["data"], file=data.name, name=recipe.data.name or Path(recipe.data.file).stem)
    if features:  # the new file may carry more columns; parse() checks what a run recorded
        spec["features"] = features
    raw = {**raw, "data": spec}
    recipe = rcp.parse(raw, f"recipe of {ref}")
    held = None
    if recipe.split.file is not None and "holdout" in blobs:
        blob, fmt = blobs["holdout"]
        held = data_files.of_bytes(
            blob, fmt, Path(recipe.split.file).name, "the recipe's holdout dataset"
        )
    fitted = _fit(recipe, raw, data, held, f"recipe of {ref}")
    number = _registered_by(ctx, fitted.run_key)
    if number is not None and number < 0:
        already_trained(fitted, ref, f"run {fitted.run_key}")
    return fitted if number is None else replace(fitted, registered=number)


def already_trained(fitted: Fitted, ref: str, detail: str) -> NoReturn:
    raise BadInput(
        f"{fitted.data.where}: the recipe of {ref} was already trained on this data "
        f"({detail}); give newer data"
    )


def register_retrain(ctx: Context, ref: str, fitted: Fitted) -> dict[str, Any]:
    """Register what `fit_retrain` trained: the new dataset is a new version
    of the recipe's dataset, the model a new version, in development. The
    version this very run registered before is answered instead, writing
    nothing (`already_registered`): a retraining stopped half way resumes."""
    return {**_register(ctx, fitted, None, fitted.data.where, again=True), "retrained_from": ref}


class _Trained(Exception):
    """The run was recorded before: its version's number (-1: none)."""

    def __init__(self, number: int) -> None:
        self.number = number


def _registered_by(ctx: Context, run_key: str) -> int | None:
    """The number of the version the run `run_key` registered, -1 for a run
    without one, or None when there is no such run."""
    runs, versions = registry.RUNS, registry.VERSIONS
    with ctx.read() as conn:
        found = conn.execute(
            select(runs.c.id, versions.c.version)
            .outerjoin(versions, versions.c.run_id == runs.c.id)
            .where(runs.c.run_key == run_key)
            .order_by(versions.c.version)  # the one it registered, not a later reuse
        ).first()
    if found is None:
        return None
    return -1 if found.version is None else int(found.version)


@dataclass(frozen=True)
class Fitted:
    """A recipe trained on data read once, not registered yet."""

    recipe: rcp.Recipe
    raw: dict[str, Any]
    data: data_files.DataFile
    held: data_files.DataFile | None
    result: Any  # validation.training.Trained
    registered: int | None = None  # the version this same run registered before, if any

    @property
    def recipe_sha(self) -> str:
        return rcp.sha256_of(self.raw)

    @property
    def run_key(self) -> str:
        """The recipe, the data and the model's bytes, which the same recipe
        and data reproduce."""
        return (
            f"{self.recipe.model}-{self.recipe_sha[:12]}-{self.data.sha256[:8]}-"
            f"{self.result.artifact_hash[:8]}"
        )


def _fit(
    recipe: rcp.Recipe,
    raw: dict[str, Any],
    data: data_files.DataFile,
    held: data_files.DataFile | None,
    source: str,
) -> Fitted:
    from cmi_console.validation.conformance import check_classes, require_labels
    from cmi_console.validation.training import feature_columns, fit

    target = recipe.data.target
    for read in (data, held):
        if read is not None and target in read.frame:  # else fit names the missing column
            # an empty label had failed the split as an internal error
            require_labels(read.frame[target], read.where)
    if held is not None and target in data.frame:
        # the holdout is measured as the training data is: a column it lacks
        # was an internal error, and labels of another kind ("yes" where the
        # model learnt 1) dropped accuracy, precision, recall and f1 without
        # a word while ROC AUC matched classes by their order
        wanted = [*feature_columns(recipe, data.frame, data.where), target]
        missing = [c for c in wanted if c not in held.frame.columns]
        if missing:
            raise BadInput(
                f"{held.where}: column(s) {', '.join(missing)} missing: the training data has them"
            )
        if recipe.task == "classification":
            check_classes(
                held.frame[target], list(data.frame[target].dropna().unique()), held.where
            )
    trained = fit(recipe, data.frame, held.frame if held else None, data.where, source)
    return Fitted(recipe, raw, data, held, trained)


def _register(
    ctx: Context,
    fitted: Fitted,
    code: dict[str, Any] | None,
    where: str,
    again: bool = False,
) -> dict[str, Any]:
    recipe, result, run_key = fitted.recipe, fitted.result, fitted.run_key
    recipe_sha = fitted.recipe_sha
    try:
        # datasets, run and version land together or not at all (one
        # transaction), and the look-up for an earlier run is in it: two CI
        # jobs on one commit train at once, and the second had failed on the
        # first's run ("already exists"). A run found rolls it all back.
        with ctx.batch():
            number = _registered_by(ctx, run_key)
            if number is not None:
                raise _Trained(number)
            name = recipe.data.name or fitted.data.stem
            # the data trained on, as it was read then: registered from the
            # same bytes, whatever the file holds now
            ds = registry.register_dataset(ctx, fitted.data, name)
            datasets = {"train": f"{ds['name']}:{ds['version']}"}
            if fitted.held is not None:
                hd = registry.register_dataset(ctx, fitted.held, f"{name}-holdout")
                datasets["holdout"] = f"{hd['name']}:{hd['version']}"
            params: dict[str, Any] = {
                "recipe": fitted.raw,
                "recipe_sha256": recipe_sha,
                "features": result.features,
            }
            if result.warnings:  # only when there are: a run without any reads as before
                params["training_warnings"] = result.warnings
            registry.record_run(
                ctx,
                params=params,
                metrics=result.metrics,
                environment=environment.describe(),
                code_ref=code,
                seed=recipe.seed,
                datasets=datasets,
                run_key=run_key,
            )
            with tempfile.TemporaryDirectory() as tmp:
                artifact = Path(tmp) / f"{recipe.model}.skops"
                artifact.write_bytes(result.artifact)
                version = registry.register_version(
                    ctx,
                    recipe.model,
                    artifact,
                    datasets=datasets,
                    run=run_key,
                    metrics=result.metrics,
                    tags={
                        "recipe": recipe_sha[:16],
                        "estimator": recipe.estimator.class_.rsplit(".", 1)[1],
                    },
                    description=recipe.description,
                )
                # a new run's version is new; `already_registered` says the rest
                del version["created"]
        already = False
    except _Trained as done:
        if not again or done.number < 0:
            raise BadInput(
                f"{where}: this recipe on this data was already trained (run {run_key})"
            ) from None
        version, already = registry.show_version(ctx, f"{recipe.model}:{done.number}"), True
    return {
        **version,
        "run": run_key,
        "recipe_sha256": recipe_sha,
        "code": code,
        "warnings": result.warnings,
        "already_registered": already,
    }


def recipe_of(
    ctx: Context, ref: str
) -> tuple[rcp.Recipe, dict[str, Any], dict[str, tuple[bytes, str]]]:
    """The recipe a version was trained from, and its datasets' bytes by role,
    each read from the artifact store (hash-checked)."""
    with ctx.read() as conn:
        v = registry.version_row(conn, ref)
        if v.run_id is None:
            raise NotFound(f"{ref}: has no training run, so no recipe")
        run = conn.execute(select(registry.RUNS).where(registry.RUNS.c.id == v.run_id)).first()
        links = conn.execute(
            select(
                registry.VERSION_DATASETS.c.role,
                registry.DATASETS.c.content_sha256,
                registry.DATASETS.c.file_format,
            )
            .join(
                registry.DATASETS, registry.DATASETS.c.id == registry.VERSION_DATASETS.c.dataset_id
            )
            .where(registry.VERSION_DATASETS.c.version_id == v.id)
        ).all()
    raw = (run.params or {}).get("recipe")
    if not isinstance(raw, dict):
        raise NotFound(f"{ref}: its training run {run.run_key} did not record a recipe")
    recipe = rcp.parse(raw, f"recipe of {ref}")
    store = ctx.workspace.artifacts
    return recipe, raw, {role: (store.read(sha), fmt) for role, sha, fmt in links}


def frames(data: dict[str, tuple[bytes, str]]) -> tuple[Any, Any | None]:
    def load(role: str) -> Any:
        blob, fmt = data[role]
        return data_files.read(blob, fmt, f"the recipe's {role} dataset")

    return load("train"), load("holdout") if "holdout" in data else None


def reproduce(ctx: Context, ref: str) -> dict[str, Any]:
    """Retrain from the recorded recipe and data; compare artifact and metrics."""
    from cmi_console.validation.training import fit

    recipe, _raw, data = recipe_of(ctx, ref)
    train, holdout = frames(data)
    result = fit(recipe, train, holdout, source=f"recipe of {ref}")
    view = registry.show_version(ctx, ref)
    recorded = view["metrics"]
    diffs = {
        k: {"recorded": recorded.get(k), "now": v}
        for k, v in result.metrics.items()
        if k not in recorded or abs(recorded[k] - v) > METRIC_TOLERANCE
    }
    return {
        "version": f"{view['model']}:{view['version']}",
        "artifact_sha256": view["artifact_sha256"],
        "reproduced_sha256": result.artifact_hash,
        "artifact_match": result.artifact_hash == view["artifact_sha256"],
        "metrics_match": not diffs,
        "metric_differences": diffs,
        "tolerance": METRIC_TOLERANCE,
        "environment_then": _run_environment(ctx, ref),
        "environment_now": environment.describe(),
        "warnings": result.warnings,
    }


def _run_environment(ctx: Context, ref: str) -> dict[str, Any]:
    with ctx.read() as conn:
        v = registry.version_row(conn, ref)
        return dict(
            conn.execute(
                select(registry.RUNS.c.environment).where(registry.RUNS.c.id == v.run_id)
            ).scalar_one()
        )
