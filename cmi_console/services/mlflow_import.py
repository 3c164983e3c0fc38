"""Importing an MLflow tracking and registry store, through MLflow's own
client (the optional extra `cmi-console[mlflow]`).

Registered models become models; their versions become versions, in
MLflow's order, with their tags, their run (params, metrics, dataset inputs)
and their artifact when it is a local file; aliases follow. Every write is an
ordinary audited entry, and provenance is kept as tags (`mlflow.model`,
`mlflow.version`, `mlflow.run_id`, `mlflow.source`, and `mlflow.stage` for a
legacy stage: recorded, never turned into one of our governed stages).
A version already imported (same `mlflow.model` and `mlflow.version` tags)
is skipped, so importing twice changes nothing.

The importer's principal registers every version. Who trained a run in
MLflow (its `mlflow.user`) is kept in the run's code reference; a user map
names the principal that user is here, kept as the change's author, so
segregation of duties forbids them to approve the model they trained.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from sqlalchemy import select

from cmi_console.core import names
from cmi_console.core.credentials import scrubbed
from cmi_console.core.errors import BadInput, NotFound, Unavailable, first_line
from cmi_console.core.small_files import kind_of
from cmi_console.services import registry
from cmi_console.services.context import Context
from cmi_console.store.engine import redacted, with_connect_timeout

# the model file inside an MLflow model directory, in order of preference
MODEL_FILES = ("*.skops", "model.pkl", "*.pkl", "*.joblib", "*.onnx")
_BAD_KEY = re.compile(r"[^A-Za-z0-9._:/-]")
TAG_MAX = 500  # a version tag's value column


# tracking URIs MLflow opens with SQLAlchemy: it creates a missing database's
# tables (a SQLite file too), where an import must only read what exists
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
# tracking URIs without a scheme that MLflow reads as a service, not a folder
REMOTE_NAMES = ("databricks", "databricks-uc", "uc")


def _client(tracking_uri: str) -> Any:
    # MLflow 3 sends usage telemetry from a background thread, set up when it
    # is first imported; reading a store for an audited import must not call
    # out (a user who set the variable keeps their choice)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise BadInput(
            "cmi import mlflow needs MLflow's client: pip install 'cmi-console[mlflow]'"
        ) from None
    if not tracking_uri.strip():  # MLflow's default store would be made here
        raise BadInput("--tracking-uri: empty; give the MLflow store to import")
    if tracking_uri.split(":", 1)[0].split("+", 1)[0] in DATABASE_SCHEMES:
        _require_registry(tracking_uri)
    elif tracking_uri not in REMOTE_NAMES and (folder := _local_path(tracking_uri)) is not None:
        _require_file_store(folder, tracking_uri)
        # MLflow 3 opens its file store (./mlruns, MLflow 2's default) only
        # when told to, having moved on to databases; an import only reads it
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    except MlflowException as exc:  # e.g. a file store this MLflow no longer opens
        raise _unusable(tracking_uri, exc) from None


def _require_registry(tracking_uri: str) -> None:
    """A database URI must name an MLflow store that exists, tables and all:
    MLflow's client creates and migrates every table of its schema it does
    not find (a store made by an older MLflow is upgraded in place), and an
    import must only read the store it is given."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import (
        ArgumentError,
        DatabaseError,
        InterfaceError,
        NoSuchModuleError,
        OperationalError,
    )

    shown = redacted(tracking_uri)
    try:
        url = make_url(tracking_uri)
        if url.get_backend_name() == "sqlite" and not (
            url.database and kind_of(Path(url.database), "--tracking-uri") == "file"
        ):
            raise BadInput(f"--tracking-uri: {url.database or shown}: no such MLflow database")
        if url.get_backend_name() == "postgresql":  # a silent server: no waiting for ever
            url = with_connect_timeout(url.render_as_string(hide_password=False))
        engine = create_engine(url)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise BadInput(f"--tracking-uri {shown}: {first_line(exc)}") from None
    except ModuleNotFoundError as exc:
        raise BadInput(f"--tracking-uri {shown}: driver {exc.name} is not installed") from None
    try:
        with engine.connect() as conn:
            found = set(inspect(conn).get_table_names())
    except (OperationalError, InterfaceError) as exc:
        raise Unavailable(
            f"--tracking-uri {shown}: cannot reach it ({first_line(exc.orig or exc)})"
        ) from None
    except DatabaseError as exc:  # a junk file, or a server that refuses the read
        raise BadInput(
            f"--tracking-uri {shown}: cannot read it as a database ({first_line(exc.orig or exc)})"
        ) from None
    finally:
        engine.dispose()
    if "registered_models" not in found:
        raise BadInput(
            f"--tracking-uri {shown}: no MLflow registry there (no registered_models table)"
        )
    if missing := sorted(_mlflow_tables() - found):
        raise BadInput(
            f"--tracking-uri {shown}: this MLflow would add {len(missing)} table(s) to the "
            f"store ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}), and an "
            "import only reads: upgrade it with `mlflow db upgrade` first, or import with "
            "the MLflow version that wrote it"
        )


def _mlflow_tables() -> set[str]:
    """Every table of the installed MLflow's schema: what its client creates
    when one is missing. MLflow's schema module lists them once its table
    modules are imported, which its database utilities do."""
    from mlflow.store.db import utils  # noqa: F401 - fills Base.metadata
    from mlflow.store.db.base_sql_model import Base

    return set(Base.metadata.tables)


def _require_file_store(folder: Path, tracking_uri: str) -> None:
    """A local path must name a file store's folder that holds a registry:
    MLflow's client makes the folder, and its registry, where there is none."""
    shown = redacted(tracking_uri)
    kind = kind_of(folder, "--tracking-uri")
    if kind != "directory":
        what = "no such MLflow store" if kind == "missing" else "not a folder"
        raise BadInput(f"--tracking-uri: {folder}: {what}")
    if kind_of(folder / "models", "--tracking-uri") != "directory":
        raise BadInput(f"--tracking-uri {shown}: no MLflow registry there (no models folder)")


@contextlib.contextmanager
def _default_store(tracking_uri: str) -> Iterator[None]:
    """While the import runs, MLflow's default store is the one imported.

    MLflow's file store reads each version's logged model through a client
    made without a URI, that is, from the default store: in MLflow 3 a new
    `mlflow.db` it created in the working directory, which holds nothing of
    the store being imported. The environment variables are MLflow's own,
    documented way to name the default; a URI set with `mlflow.set_tracking_uri`
    outranks them, so when one is set, that is routed too. The caller's values
    come back after."""
    import mlflow

    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved = {n: os.environ.get(n) for n in names}
    # set in this process or in the environment (set_tracking_uri writes both);
    # put back, it is the same URI either way
    pinned = mlflow.is_tracking_uri_set()
    current = mlflow.get_tracking_uri()
    os.environ.update(dict.fromkeys(names, tracking_uri))
    if pinned:
        mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        if pinned:
            mlflow.set_tracking_uri(current)
        for n, value in saved.items():
            if value is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = value


def _unusable(tracking_uri: str, exc: Any) -> BadInput:
    """MLflow's own reason, its first sentence: one line (the URI's password never)."""
    first = str(exc.message).strip().split(". ")[0].rstrip(".")
    return BadInput(f"--tracking-uri {redacted(tracking_uri)}: {first}")


def _key(raw: str) -> str | None:
    """A tag key as we allow it, or None (reported) when it cannot be one."""
    k = _BAD_KEY.sub("_", raw)[:100]
    try:
        return names.key(k, "tag")
    except BadInput:
        return None


def _clean(value: Any, what: str, skipped: list[str]) -> str:
    """MLflow text without the credentials of the URLs in it (core.credentials):
    MLflow records a run's git remote as CI cloned it, token and all, and an
    artifact or a dataset location with its signature; our log keeps what it
    is given for good. Said when it happens, never with the secret."""
    text = str(value)
    clean = scrubbed(text)
    if clean != text:
        skipped.append(f"{what}: a credential in it was replaced by ***")
    return clean


def _text(value: Any, limit: int, what: str, skipped: list[str]) -> str | None:
    """MLflow text as we keep it, or None. MLflow stores a NUL character and
    longer text than our columns take; one such value used to stop the whole
    import, so it is left out (with a NUL) or cut to `limit`, and said."""
    text = _clean(value, what, skipped)
    if "\x00" in text:
        skipped.append(f"{what}: holds a NUL character; not imported")
        return None
    if len(text) > limit:
        skipped.append(f"{what}: cut to {limit} characters ({len(text)} given)")
        return text[:limit]
    return text


def _imported(ctx: Context, model: str) -> dict[str, int]:
    """MLflow version -> our version, for what an earlier import brought in."""
    with ctx.read() as conn:
        try:
            m = registry.model_row(conn, model)
        except NotFound:
            return {}
        tags = registry.TAGS
        versions = registry.VERSIONS
        rows = conn.execute(
            select(tags.c.value, versions.c.version)
            .join(versions, versions.c.id == tags.c.version_id)
            .where(versions.c.model_id == m.id, tags.c.key == "mlflow.version")
        ).all()
    return {value: number for value, number in rows}


class _Skipped(Exception):
    """Why a version's artifact is not imported (the version is skipped)."""


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path(uri) if parsed.scheme == "" else None


def _artifact_roots(client: Any) -> list[Path]:
    """Where the store keeps artifacts: its experiments' local locations."""
    from mlflow.entities import ViewType

    roots, token = [], None
    while True:
        page = client.search_experiments(view_type=ViewType.ALL, page_token=token)
        roots += [p.resolve() for e in page if (p := _local_path(e.artifact_location))]
        token = page.token
        if not token:
            return roots


def _inside(path: Path, roots: list[Path]) -> Path:
    # resolved: a symbolic link inside a root may point anywhere
    resolved = path.resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise _Skipped(f"artifact {resolved} is outside the store's artifact locations")
    return resolved


def _artifact_file(client: Any, source: str, tmp: Path, roots: list[Path]) -> Path:
    """A local copy of the version's model file. Its source must lie inside
    the store's artifact locations: anyone who may register a model version
    in MLflow chooses its source, and a path such as /etc/shadow would have
    been copied into our store (0444)."""
    from mlflow.artifacts import download_artifacts

    uri = source
    if source.startswith("models:/m-"):  # MLflow 3: a logged model
        uri = client.get_logged_model(source.removeprefix("models:/")).artifact_location
    elif source.startswith("runs:/"):
        run_id, _, path = source.removeprefix("runs:/").partition("/")
        uri = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{path}"
    local = _local_path(uri)
    if local is None:
        raise _Skipped(f"artifact is not a local file ({source})")
    origin = _inside(local, roots)  # before the copy: it could be all of /etc
    folder = Path(download_artifacts(artifact_uri=uri, dst_path=str(tmp)))
    if not folder.is_dir():
        return folder
    artifact = _model_file(folder)
    if artifact is None:
        raise _Skipped(f"no model file in {source}")
    _inside(origin / artifact.relative_to(folder), roots)  # the copy followed links
    return artifact


def _model_file(folder: Path) -> Path | None:
    for pattern in MODEL_FILES:
        found = sorted(folder.rglob(pattern))
        if found:
            return found[0]
    return None


def user_map(pairs: Iterable[str]) -> dict[str, str]:
    """`--user-map MLFLOW_USER=PRINCIPAL` options as a dict (spaces around
    either name are not part of it)."""
    out: dict[str, str] = {}
    for pair in pairs:
        user, sep, principal = (part.strip() for part in pair.partition("="))
        if not sep or not user or not principal:
            raise BadInput(f"--user-map {pair!r}: expected MLFLOW_USER=PRINCIPAL")
        if out.setdefault(user, principal) != principal:
            raise BadInput(f"--user-map: {user!r} is mapped twice ({out[user]}, {principal})")
    return out


def import_mlflow(
    ctx: Context,
    tracking_uri: str,
    model: str | None = None,
    users: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`users` maps MLflow user names to principals (see user_map)."""
    client = _client(tracking_uri)  # first: it says when MLflow is not installed
    users = users or {}
    with ctx.read() as conn:  # before anything is written
        for user, principal in users.items():
            registry.require_change_author(conn, principal, f"--user-map {user}")
    with _default_store(tracking_uri):
        return _import_all(ctx, client, tracking_uri, model, users)


def _import_all(
    ctx: Context, client: Any, tracking_uri: str, model: str | None, users: dict[str, str]
) -> dict[str, Any]:
    from mlflow.exceptions import MlflowException

    try:
        if model is not None:
            found = [client.get_registered_model(model)]
        else:
            found = list(client.search_registered_models())
        roots = _artifact_roots(client)
    except MlflowException as exc:  # a store MLflow will not read, a model it lacks
        raise _unusable(tracking_uri, exc) from None
    report: dict[str, Any] = {"models": [], "skipped": []}
    for rm in sorted(found, key=lambda r: r.name):
        report["models"].append(_import_model(ctx, client, rm, report["skipped"], roots, users))
    return report


def _import_model(
    ctx: Context,
    client: Any,
    rm: Any,
    skipped: list[str],
    roots: list[Path],
    users: dict[str, str],
) -> dict[str, Any]:
    name = rm.name
    try:
        names.entity(name, "model")
    except BadInput:
        skipped.append(f"model '{name}': not a valid model name here")
        return {"model": name, "imported": 0, "already": 0}
    versions = sorted(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))
    done = _imported(ctx, name)
    out = {"model": name, "imported": 0, "already": len(done), "aliases": 0}
    with ctx.batch():
        with ctx.read() as conn:
            exists = conn.execute(
                select(registry.MODELS.c.id).where(registry.MODELS.c.name == name)
            ).first()
            try:
                if exists is None:
                    registry.refuse_case_twin(conn, "model", name, registry.MODELS.c.name)
            except BadInput as exc:  # skipped and reported, the other models imported
                skipped.append(exc.message)
                return {"model": name, "imported": 0, "already": 0}
        if exists is None:
            described = rm.description and _text(
                rm.description, names.TEXT_MAX, f"model '{name}': description", skipped
            )
            registry.create_model(ctx, name, described or f"imported from MLflow ({name})")
        for v in versions:
            if str(v.version) in done:
                continue
            number = _import_version(ctx, client, name, v, skipped, roots, users)
            if number is not None:
                done[str(v.version)] = number
                out["imported"] += 1
    for alias, mlflow_version in sorted((getattr(rm, "aliases", None) or {}).items()):
        number = done.get(str(mlflow_version))
        if number is None:
            continue
        view = registry.show_model(ctx, name)
        if view.get("aliases", {}).get(alias) == number:
            continue  # already there: importing twice changes nothing
        try:
            registry.set_alias(ctx, name, alias, number)
            out["aliases"] += 1
        except BadInput as exc:
            skipped.append(f"{name}@{alias}: {exc.message}")
    return out


def _import_version(
    ctx: Context,
    client: Any,
    name: str,
    v: Any,
    skipped: list[str],
    roots: list[Path],
    users: dict[str, str],
) -> int | None:
    where = f"{name} version {v.version}"
    run_key, metrics = None, {}
    if v.run_id:
        run_key, metrics = _import_run(ctx, client, v.run_id, skipped, users)
    tags = {"mlflow.model": name, "mlflow.version": str(v.version)}
    source = _text(v.source or "", TAG_MAX, f"{where}: source", skipped)
    if source is not None:
        tags["mlflow.source"] = source
    if v.run_id:
        tags["mlflow.run_id"] = v.run_id
    if getattr(v, "current_stage", None) not in (None, "None"):
        tags["mlflow.stage"] = v.current_stage  # recorded, not a governed stage
    for k, value in sorted((v.tags or {}).items()):
        key = _key(k)
        if key is None:
            skipped.append(f"{where}: tag '{k}' cannot be a key here")
            continue
        text = _text(value, TAG_MAX, f"{where}: tag '{k}'", skipped)
        if text is not None:
            tags.setdefault(key, text)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            artifact = _artifact_file(client, v.source or "", Path(tmp), roots)
        except _Skipped as exc:
            skipped.append(f"{where}: {exc}")
            return None
        except Exception as exc:  # MLflow raises many kinds for a missing artifact
            skipped.append(f"{where}: artifact not readable ({type(exc).__name__})")
            return None
        if artifact.stat().st_size == 0:  # registration refuses it, and the batch with it
            skipped.append(f"{where}: artifact is empty (0 bytes)")
            return None
        view = registry.register_version(
            ctx,
            name,
            artifact,
            run=run_key,
            metrics=metrics,
            tags=tags,
            description=_text(v.description or "", names.TEXT_MAX, f"{where}: description", skipped)
            or "",
        )
    return int(view["version"])


def _import_run(
    ctx: Context, client: Any, run_id: str, skipped: list[str], users: dict[str, str]
) -> tuple[str, dict[str, float]]:
    """The run once (several versions may share it): params, metrics, dataset
    inputs, where it came from and who ran it."""
    run_key = f"mlflow-{run_id}"
    run = client.get_run(run_id)
    metrics = {}
    for k, value in sorted(run.data.metrics.items()):
        if _key(k) != k or not isinstance(value, int | float):
            continue
        if not math.isfinite(value):  # MLflow logs a diverged loss as NaN
            skipped.append(f"run {run_id}: metric '{k}' is {value}, not a number we keep")
            continue
        metrics[k] = float(value)
    with ctx.read() as conn:
        exists = conn.execute(
            select(registry.RUNS.c.id).where(registry.RUNS.c.run_key == run_key)
        ).first()
    if exists is None:
        where = f"run {run_id}"
        inputs = getattr(run, "inputs", None)
        datasets = [
            {
                "name": d.dataset.name,
                "digest": d.dataset.digest,
                "source_type": d.dataset.source_type,
                "source": _clean(d.dataset.source, f"{where}: dataset source", skipped),
                "context": {t.key: t.value for t in (d.tags or [])},
            }
            for d in (getattr(inputs, "dataset_inputs", None) or [])
        ]
        params = {
            k: _clean(v, f"{where}: param '{k}'", skipped)
            for k, v in sorted(run.data.params.items())
        }
        code_ref = {
            k: _clean(v, f"{where}: tag '{k}'", skipped)
            for k, v in sorted(run.data.tags.items())
            if k.startswith("mlflow.source")
        }
        # who ran it, as MLflow knows them (an OS or workspace user name)
        user = run.data.tags.get("mlflow.user") or getattr(run.info, "user_id", None)
        if user:
            code_ref["mlflow.user"] = _clean(user, f"{where}: user", skipped)
            if user in users:
                code_ref[registry.CHANGE_AUTHOR] = users[user]
            elif users:
                skipped.append(
                    f"{where}: MLflow user {user!r} is not in --user-map; no change author kept"
                )
        registry.record_run(
            ctx,
            params={
                "mlflow": {
                    "run_id": run_id,
                    "experiment_id": run.info.experiment_id,
                    "run_name": run.info.run_name,
                    "artifact_uri": _clean(
                        run.info.artifact_uri, f"{where}: artifact URI", skipped
                    ),
                    "datasets": datasets,
                },
                "params": params,
            },
            metrics=metrics,
            code_ref=code_ref,
            run_key=run_key,
        )
    return run_key, metrics
