"""`cmi import ...`: bring in what teams already have."""

from __future__ import annotations

from typing import Annotated

import typer

from cmi_console.cli import common

app = typer.Typer(help="Import from other registries.", no_args_is_help=True)


@app.command("mlflow")
def mlflow(
    tracking_uri: Annotated[
        str,
        typer.Option(
            help="MLflow store: a database URI (sqlite:///mlflow.db) or a folder (./mlruns)."
        ),
    ],
    model: Annotated[str | None, typer.Option(help="Only this registered model.")] = None,
    user_map: Annotated[
        list[str] | None,
        typer.Option(
            "--user-map",
            metavar="MLFLOW_USER=PRINCIPAL",
            help="Who an MLflow user is here (repeat for each): kept as the change's author "
            "of the runs they ran, who may then not approve those versions.",
        ),
    ] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Import an MLflow registry and its runs; importing twice changes nothing.

    Registered models, versions (tags, aliases, legacy stages as tags), their
    runs and local artifacts, read through MLflow's client (pip install
    'cmi-console[mlflow]'). Audited."""
    from cmi_console.services import mlflow_import

    users = mlflow_import.user_map(user_map or [])
    report = mlflow_import.import_mlflow(common.context(), tracking_uri, model, users)
    if as_json:
        common.print_json(report)
        return
    for m in report["models"]:
        common.console().print(
            f"{m['model']}: {m['imported']} version(s) imported, {m['already']} already "
            f"here, {m.get('aliases', 0)} alias(es) set",
            markup=False,
        )
    for line in report["skipped"]:
        common.console().print(f"skipped: {line}", markup=False)
