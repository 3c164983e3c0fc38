"""`cmi dataset|run|model|version|alias ...`: the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cmi_console.cli import common
from cmi_console.cli.common import AliasArg, ModelArg, RefArg
from cmi_console.core.clock import shown

datasets = typer.Typer(help="Datasets: content-hashed, profiled, versioned.", no_args_is_help=True)
runs = typer.Typer(help="Training runs: params, metrics, environment, data.", no_args_is_help=True)
models = typer.Typer(help="Models.", no_args_is_help=True)
versions = typer.Typer(help="Model versions.", no_args_is_help=True)
aliases = typer.Typer(help="Aliases that point at versions.", no_args_is_help=True)
consumers = typer.Typer(
    help="Downstream consumers, told when a version retires.", no_args_is_help=True
)
models.add_typer(consumers, name="consumers")
JsonOpt = common.JsonOpt


def _pairs(items: list[str] | None, where: str) -> dict[str, str]:
    from cmi_console.core.refs import parse_pairs

    return parse_pairs(items or [], where)


def _dataset_roles(items: list[str] | None) -> dict[str, str]:
    """`--dataset NAME[:V]` (role train) or `--dataset ROLE=NAME[:V]`; one
    dataset a role."""
    return _pairs([i if "=" in i else f"train={i}" for i in items or []], "--dataset")


@datasets.command("register")
def dataset_register(
    path: Annotated[Path, typer.Argument(help="The data file (CSV or Parquet).")],
    name: Annotated[str, typer.Option("--name", help="Dataset name.")],
    as_json: JsonOpt = False,
) -> None:
    """Hash and profile a CSV or Parquet file; a new version if its content changed.

    A new name that differs from a registered dataset's only by case is
    refused, as for models: the two would read as one in the lineage.
    """
    from cmi_console.services import registry

    view = registry.register_dataset(common.context(), path, name)
    common.show(f"dataset {view['name']}:{view['version']}", view, as_json)


@datasets.command("list")
def dataset_list(as_json: JsonOpt = False) -> None:
    """Every registered dataset version: rows, columns and content hash."""
    from cmi_console.services import registry

    rows = registry.list_datasets(common.context())
    if as_json:
        common.print_json(rows)
        return
    common.table(
        None,
        ["name", "version", "rows", "columns", "sha256", "created"],
        [
            [
                r["name"],
                r["version"],
                r["row_count"],
                len(r["columns"]),
                r["content_sha256"][:12],
                shown(r["created_at"]),
            ]
            for r in rows
        ],
    )


@datasets.command("show")
def dataset_show(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION, or NAME for its latest version.")],
    as_json: JsonOpt = False,
) -> None:
    """One dataset version: its content hash, file, rows and column profile."""
    from cmi_console.services import registry

    view = registry.show_dataset(common.context(), ref)
    common.show(f"dataset {view['name']}:{view['version']}", view, as_json)


@runs.command("record")
def run_record(
    params: Annotated[str | None, typer.Option(help="JSON object or @FILE.")] = None,
    metrics: Annotated[str | None, typer.Option(help="JSON object or @FILE.")] = None,
    environment: Annotated[str | None, typer.Option(help="JSON object or @FILE.")] = None,
    code: Annotated[str | None, typer.Option(help="Code reference, JSON object or @FILE.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    dataset: Annotated[list[str] | None, typer.Option(help="[ROLE=]NAME[:V] (repeatable).")] = None,
    key: Annotated[str | None, typer.Option(help="Run key; generated if absent.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a training run.

    The same run recorded again under its --key (a retry) is answered with the
    run; nothing is written. The key with other contents is refused.
    """
    from cmi_console.services import registry

    view = registry.record_run(
        common.context(),
        params=common.load_json_arg(params, "--params"),
        metrics=common.load_json_arg(metrics, "--metrics"),
        environment=common.load_json_arg(environment, "--environment"),
        code_ref=common.load_json_arg(code, "--code"),
        seed=seed,
        datasets=_dataset_roles(dataset),
        run_key=key,
    )
    if not view["created"]:
        common.answered(f"run '{view['run']}' was recorded already ({shown(view['created_at'])})")
    common.show(f"run {view['run']}", view, as_json)


@runs.command("show")
def run_show(
    key: Annotated[str, typer.Argument(help="The run's key.")], as_json: JsonOpt = False
) -> None:
    """One training run: params, metrics, environment, code and datasets."""
    from cmi_console.services import registry

    view = registry.show_run(common.context(), key)
    common.show(f"run {view['run']}", view, as_json)


@models.command("create")
def model_create(
    name: Annotated[str, typer.Argument(help="The new model's name.")],
    description: Annotated[str, typer.Option(help="What the model is for.")] = "",
    owner: Annotated[str | None, typer.Option(help="Owning principal (default: you).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a model.

    The same model again by its creator (a retry) is answered with it; nothing
    is written.
    """
    from cmi_console.services import registry

    view = registry.create_model(common.context(), name, description, owner)
    if not view["created"]:
        common.answered(f"model '{name}' was created already ({shown(view['created_at'])})")
    common.show(f"model {name}", view, as_json)


@models.command("tier")
def model_tier(
    model: ModelArg,
    tier: Annotated[str, typer.Argument(help="The risk tier, one its policy defines.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the tier changes.")],
    as_json: JsonOpt = False,
) -> None:
    """Change a model's risk tier (admin or risk-officer; signed; earlier approvals go stale).

    A model of that tier already is answered; nothing is written.
    """
    from cmi_console.services import policies

    data = policies.set_tier(common.context(), model, tier, reason)
    if not data["created"]:
        common.answered(f"model '{model}' is tier {tier} already")
    common.show(f"model {model}", data, as_json)


@consumers.command("add")
def consumer_add(
    model: ModelArg,
    name: Annotated[str, typer.Argument(help="The consumer's name.")],
    contact: Annotated[str, typer.Option(help="Who to tell (team, channel, address).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """List a downstream consumer of MODEL.

    One listed already with that contact is answered; nothing is written.
    """
    from cmi_console.services import gates

    data = gates.add_consumer(common.context(), model, name, contact)
    if not data["created"]:
        common.answered(f"model '{model}' lists consumer '{name}' already")
    common.show(f"model {model}", data, as_json)


@consumers.command("list")
def consumer_list(model: ModelArg, as_json: JsonOpt = False) -> None:
    """Who consumes MODEL: listed for notice when one of its versions retires."""
    from cmi_console.services import gates

    rows = gates.list_consumers(common.context(), model)
    if as_json:
        common.print_json(rows)
        return
    common.table(
        None,
        ["consumer", "contact", "added", "by"],
        [[r["name"], r["contact"], shown(r["added_at"]), r["added_by"]] for r in rows],
    )


@models.command("list")
def model_list(as_json: JsonOpt = False) -> None:
    """Every model: status, tier, owner, versions per stage."""
    from cmi_console.services import registry

    rows = registry.list_models(common.context())
    if as_json:
        common.print_json(rows)
        return
    common.table(
        None,
        ["name", "status", "tier", "owner", "versions", "latest", "stages", "description"],
        [
            [
                r["name"],
                r["status"],
                r["risk_tier"] or "-",
                r["owner"],
                r["versions"],
                r["latest"],
                ", ".join(f"{k}:{v}" for k, v in sorted(r["stages"].items())),
                r["description"][:40],
            ]
            for r in rows
        ],
    )


@models.command("show")
def model_show(name: ModelArg, as_json: JsonOpt = False) -> None:
    """One model: owner, tier, aliases and its versions."""
    from cmi_console.services import registry

    view = registry.show_model(common.context(), name)
    if as_json:
        common.print_json(view)
        return
    head = {k: v for k, v in view.items() if k != "versions"}
    common.kv(f"model {name}", head)
    common.table(
        "versions",
        ["version", "stage", "status", "author", "artifact", "created"],
        [
            [
                v["version"],
                registry.stage_label(v),
                v["status"],
                v["author"],
                v["artifact_sha256"][:12],
                shown(v["created_at"]),
            ]
            for v in view["versions"]
        ],
    )


@versions.command("register")
def version_register(
    model: ModelArg,
    artifact: Annotated[Path, typer.Option("--artifact", help="Model file (skops preferred).")],
    dataset: Annotated[list[str] | None, typer.Option(help="[ROLE=]NAME[:V] (repeatable).")] = None,
    run: Annotated[str | None, typer.Option(help="Training run key.")] = None,
    metrics: Annotated[str | None, typer.Option(help="JSON object or @FILE.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE (repeatable).")] = None,
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Register the next version of MODEL.

    The same registration again from the same --run (a retry) is answered with
    the version it made; nothing is written.
    """
    from cmi_console.services import registry

    view = registry.register_version(
        common.context(),
        model,
        artifact,
        datasets=_dataset_roles(dataset),
        run=run,
        metrics=common.load_json_arg(metrics, "--metrics"),
        tags=_pairs(tag, "--tag"),
        description=description,
    )
    if not view["created"]:
        common.answered(
            f"run '{view['run']}' registered this as {view['model']}:{view['version']} "
            f"already ({shown(view['created_at'])})"
        )
    common.show(f"version {view['model']}:{view['version']}", view, as_json)


def _version_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    from cmi_console.services import registry

    if as_json:
        common.print_json(rows)
        return
    common.table(
        None,
        ["model", "version", "stage", "status", "author", "metrics", "created"],
        [
            [
                r["model"],
                r["version"],
                registry.stage_label(r),
                r["status"],
                r["author"],
                " ".join(f"{k}={v:.4g}" for k, v in sorted(r["metrics"].items())),
                shown(r["created_at"]),
            ]
            for r in rows
        ],
    )


@versions.command("list")
def version_list(
    model: ModelArg,
    stage: Annotated[str | None, typer.Option(help="Only this stage.")] = None,
    limit: Annotated[int, typer.Option("-n", "--limit", help="At most this many versions.")] = 100,
    offset: Annotated[int, typer.Option(help="Skip this many versions (paging).")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Versions of MODEL, newest first."""
    from cmi_console.services import registry

    _version_rows(
        registry.list_versions(common.context(), model, stage=stage, limit=limit, offset=offset),
        as_json,
    )


@versions.command("show")
def version_show(ref: RefArg, as_json: JsonOpt = False) -> None:
    """MODEL, MODEL:VERSION or MODEL@ALIAS."""
    from cmi_console.services import registry

    view = registry.show_version(common.context(), ref)
    common.show(f"version {view['model']}:{view['version']}", view, as_json)


@versions.command("tag")
def version_tag(
    ref: RefArg,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE to set (repeatable).")] = None,
    remove: Annotated[list[str] | None, typer.Option(help="KEY to remove (repeatable).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Set or remove tags on a version.

    Tags already as given (a retry) are answered with the version; nothing
    is written. So is removing a tag whose last change removed it; removing
    a tag the version never had (a typo) is refused.
    """
    from cmi_console.services import registry

    view = registry.tag_version(common.context(), ref, _pairs(tag, "--tag"), remove or [])
    if not view["created"]:
        common.answered(f"{view['model']}:{view['version']}'s tags are as asked already")
    common.show(f"version {view['model']}:{view['version']}", view, as_json)


@versions.command("search")
def version_search(
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE (repeatable, all must match).")
    ] = None,
    metric: Annotated[list[str] | None, typer.Option(help="e.g. auc>=0.8 (repeatable).")] = None,
    stage: Annotated[str | None, typer.Option(help="Only this stage.")] = None,
    limit: Annotated[int, typer.Option("-n", "--limit", help="At most this many versions.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Find versions by tag, metric and stage."""
    from cmi_console.core.refs import parse_pairs
    from cmi_console.services import registry

    ctx = common.context()
    tags = list(parse_pairs(tag or [], "--tag").items())
    metrics = [registry.parse_metric_filter(m) for m in metric or []]
    rows = registry.search_versions(
        ctx, model=model, tags=tags, metrics=metrics, stage=stage, limit=limit
    )
    if not rows:
        for why in registry.search_notes(ctx, stage=stage, tags=tags, metrics=metrics):
            common.echo(f"note: {why}", err=True)
    _version_rows(rows, as_json)


@aliases.command("set")
def alias_set(
    model: ModelArg,
    alias: AliasArg,
    version: Annotated[int, typer.Argument(help="The version number it points at.")],
    as_json: JsonOpt = False,
) -> None:
    """Point MODEL@ALIAS at VERSION.

    An alias that points at VERSION already (a retry) is answered; nothing is
    written.
    """
    from cmi_console.services import registry

    view = registry.set_alias(common.context(), model, alias, version)
    if not view["created"]:
        common.answered(f"{model}@{alias} points at version {version} already")
    common.show(f"{model}@{alias}", view, as_json)


@aliases.command("delete")
def alias_delete(model: ModelArg, alias: AliasArg, as_json: JsonOpt = False) -> None:
    """Remove MODEL@ALIAS.

    An alias deleted already (a retry) is answered with that deletion;
    nothing is written. An alias never there is refused.
    """
    from cmi_console.services import registry

    data = registry.delete_alias(common.context(), model, alias)
    if not data["created"]:
        by, seq = data["by"], data["seq"]
        common.answered(f"{model}@{alias} was deleted already by {by} (entry #{seq})")
    common.show(f"{model}@{alias}", data, as_json)
