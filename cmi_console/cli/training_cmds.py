"""`cmi train` and `cmi reproduce`."""

from __future__ import annotations

import typer

from cmi_console.cli import common, gate_cmds
from cmi_console.cli.common import ChangeAuthorOpt, RecipeArg, RefArg

JsonOpt = common.JsonOpt


def _said(warnings: list[str]) -> None:
    """What the libraries warned of while training (kept whole with the run):
    one line each on stderr, so --json output and the summary stay clean."""
    for w in warnings:
        line = " ".join(w.split())
        common.echo(f"warning: {line if len(line) <= 200 else line[:199] + '…'}", err=True)


def train(
    recipe: RecipeArg, change_author: ChangeAuthorOpt = None, as_json: JsonOpt = False
) -> None:
    """Train from a TOML recipe and register the version with full lineage.

    Records dataset hashes, the recipe hash, the git commit and dirty flag,
    Python and package versions, and the holdout metrics as a training run.
    """
    from cmi_console.services import training

    view = training.train(common.context(), recipe, change_author=change_author)
    _said(view["warnings"])
    if as_json:
        common.print_json(view)
        return
    common.echo(
        f"{view['model']}:{view['version']} registered from {recipe} "
        f"(run {view['run']}, artifact {view['artifact_sha256'][:16]})"
    )
    common.echo("  " + "  ".join(f"{k}={v:.4f}" for k, v in sorted(view["metrics"].items())))


def reproduce(ref: RefArg, as_json: JsonOpt = False) -> None:
    """Retrain REF from its recorded recipe and data, and compare.

    Exit 1 unless the artifact hash and the metrics match (metrics within
    1e-9)."""
    from cmi_console.services import training

    out = training.reproduce(common.context(), ref)
    _said(out["warnings"])
    if as_json:
        common.print_json(out)
    else:
        common.echo(
            f"{out['version']}: artifact {'matches' if out['artifact_match'] else 'DIFFERS'} "
            f"({out['reproduced_sha256'][:16]}), metrics "
            f"{'match' if out['metrics_match'] else 'DIFFER'}"
        )
        for k, d in out["metric_differences"].items():
            common.echo(f"  {k}: recorded {d['recorded']}, now {d['now']}")
    if not (out["artifact_match"] and out["metrics_match"]):
        raise typer.Exit(1)


def ci(
    recipe: RecipeArg,
    junit: gate_cmds.JunitOpt = None,
    markdown: gate_cmds.MarkdownOpt = None,
    comment: gate_cmds.CommentOpt = "",
    change_author: ChangeAuthorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What CI runs on every commit: train, register, validate, request.

    It validates against the first gate's suite and, if that passes, opens the
    promotion request to that gate.

    Exit 0 when the request is open, 1 when validation failed, 2 on bad input,
    3 when denied. A recipe and data unchanged since the version they
    registered is answered with that version, and nothing is written once it
    has its request (exit 1 if that was rejected) or has moved on.
    """
    from cmi_console.services import ci as ci_service

    gate_cmds.check_report_paths(junit, markdown)
    out = ci_service.run(common.context(), recipe, comment, change_author)
    _said(out["training_warnings"])
    run, request = out["validation"], out["request"]
    if run is not None:
        gate_cmds.write_reports(run, junit, markdown)
    elif junit or markdown:
        note = f"note: {out['version']} has no {out['to_stage']} validation to report"
        common.echo(note, err=True)
    if as_json:
        common.print_json(out)
    else:
        if out["already_registered"]:
            common.echo(
                f"{out['version']}: already registered from this recipe and data "
                f"(run {out['run']}; stage {out['stage']})"
            )
        if run is not None:
            gate_cmds.show_run(run, out["version"])
        if request is not None:
            common.echo(
                f"request #{request['request']}: {out['version']} -> {out['to_stage']} "
                f"({request['status']})"
            )
        elif out["failed"]:
            common.echo(f"{out['version']}: validation failed; no request opened")
    if out["failed"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("reproduce")(reproduce)
    app.command("ci")(ci)
