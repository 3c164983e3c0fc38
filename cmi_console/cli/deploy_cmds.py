"""`cmi deploy ...` and `cmi rollback`: rollouts as signed decisions, and
the manifest a serving layer reads."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cmi_console.cli import common
from cmi_console.cli.common import ModelArg
from cmi_console.core.clock import shown
from cmi_console.core.deployments import shares_text


class _DefaultStart(TyperGroup):
    """`cmi deploy MODEL:VERSION ...` means `cmi deploy start MODEL:VERSION ...`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            if not _a_rollout(args):
                # `cmi deploy status` had been read as a rollout of a model
                # "status" and answered "deploy start: Missing option '--env'"
                import click

                raise click.UsageError(
                    f"no command '{args[0]}' (commands: {', '.join(self.commands)}); "
                    "a rollout is `cmi deploy MODEL:VERSION --env ENV`",
                    ctx,
                )
            args = ["start", *args]
        return super().parse_args(ctx, args)


def _a_rollout(args: list[str]) -> bool:
    """Whether words that name no command are a rollout's: a version
    (`credit-risk:3`, `credit-risk@champion`) or a model with its `--env`."""
    return ":" in args[0] or "@" in args[0] or any(a.split("=")[0] == "--env" for a in args)


app = typer.Typer(
    cls=_DefaultStart,
    help=(
        "Roll a version out: `cmi deploy MODEL:VERSION --env ENV --strategy S`, then "
        "advance, pause, resume, complete (or `cmi rollback`)."
    ),
    no_args_is_help=True,
)
JsonOpt = common.JsonOpt
EnvOpt = Annotated[str, typer.Option("--env", help="The environment (from the policy).")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why; kept in the signed statement.")]


def _traffic(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        common.print_json(data)
        return
    shares = shares_text(data["shares"]) or "nothing"
    mirror = shares_text(data.get("mirror", {}))
    line = f"deployment #{data['deployment']} {data['strategy']} in {data['environment']}: "
    line += f"{data['status']}; serving {shares}"
    if mirror:
        line += f"; mirroring to {mirror}"
    common.console().print(line, markup=False, highlight=False)


@app.command("start")
def start(
    version: Annotated[str, typer.Argument(help="MODEL:VERSION to roll out.")],
    env: EnvOpt,
    strategy: Annotated[
        str, typer.Option(help="direct, canary, blue-green, ab or shadow.")
    ] = "canary",
    traffic: Annotated[
        int | None,
        typer.Option(help="canary: first share; ab: the candidate's share; shadow: mirrored."),
    ] = None,
    segments: Annotated[
        list[str] | None, typer.Option("--segments", help="KEY=VALUE routing (ab, canary).")
    ] = None,
    comment: Annotated[str, typer.Option(help="Why; kept in the signed statement.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Start a rollout (a signed decision).

    Exit 3 if the version's stage may not serve there, or a rollout is
    already in progress. The same start again by its deployer, while nothing
    has happened to the rollout since (a retry), is answered with the
    decision signed then; nothing is written."""
    from cmi_console.services import deployments

    out = deployments.deploy(
        common.context(),
        version,
        env,
        strategy,
        traffic=traffic,
        segments=segments,
        comment=comment,
    )
    if not out["created"]:
        common.answered(
            f"you started deployment #{out['deployment']} already "
            f"({shown(out['time'])}, entry #{out['seq']})"
        )
    _traffic(out, as_json)


def _act(
    action: str, model: str, env: str, reason: str, as_json: bool, to: int | None = None
) -> None:
    from cmi_console.services import deployments

    data = deployments.act(common.context(), model, env, action, to=to, reason=reason)
    if not data["created"]:
        further = "; give another --reason to roll back further" if action == "rollback" else ""
        common.answered(
            f"you made this {action} of deployment #{data['deployment']} already "
            f"(entry #{data['seq']}){further}"
        )
    _traffic(data, as_json)


@app.command("advance")
def advance(
    model: ModelArg,
    env: EnvOpt,
    traffic: Annotated[
        int | None, typer.Option(help="Go to this share (default: the next canary step).")
    ] = None,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Canary: the next step; blue-green: switch. Exit 3 for other strategies."""
    _act("advance", model, env, reason, as_json, traffic)


@app.command("pause")
def pause(model: ModelArg, env: EnvOpt, reason: ReasonOpt = "", as_json: JsonOpt = False) -> None:
    """Hold the rollout at its current share."""
    _act("pause", model, env, reason, as_json)


@app.command("resume")
def resume(model: ModelArg, env: EnvOpt, reason: ReasonOpt = "", as_json: JsonOpt = False) -> None:
    """Resume a paused rollout."""
    _act("resume", model, env, reason, as_json)


@app.command("complete")
def complete(
    model: ModelArg, env: EnvOpt, reason: ReasonOpt = "", as_json: JsonOpt = False
) -> None:
    """The candidate takes all traffic and becomes the stable version."""
    _act("complete", model, env, reason, as_json)


@app.command("list")
def list_(
    model: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    env: Annotated[str | None, typer.Option("--env", help="Only this environment.")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only rollouts in progress.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Deployments, newest first."""
    from cmi_console.services import deployments

    rows = deployments.list_deployments(common.context(), model, env, open_only=open_only)
    if as_json:
        common.print_json(rows)
        return
    common.table(
        None,
        ["#", "model", "env", "version", "strategy", "status", "shares", "by", "since"],
        [
            [
                r["deployment"],
                r["model"],
                r["environment"],
                r["version"],
                r["strategy"],
                r["status"],
                shares_text(r["shares"])
                + (f"; v{r['version']} mirrored {r['mirror']}%" if r["mirror"] else ""),
                r["created_by"],
                shown(r["created_at"]),
            ]
            for r in rows
        ],
    )


@app.command("history")
def history(
    model: ModelArg,
    env: Annotated[str | None, typer.Option("--env", help="Only this environment.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every traffic change: which version took which share, and when."""
    from cmi_console.services import deployments

    rows = deployments.history(common.context(), model, env)
    if as_json:
        common.print_json(rows)
        return
    common.table(
        None,
        ["at", "env", "#", "action", "status", "serving", "mirror", "by", "reason"],
        [
            [
                r["at"],
                r["environment"],
                r["deployment"],
                r["action"],
                r["status"],
                shares_text(r["shares"]),
                shares_text(r["mirror"]),
                r["by"],
                r["reason"],
            ]
            for r in rows
        ],
    )


@app.command("manifest")
def manifest(
    model: ModelArg,
    env: EnvOpt,
    fmt: Annotated[str, typer.Option("--format", help="json or kserve.")] = "json",
) -> None:
    """What the serving layer needs now, as JSON.

    `kserve` is a KServe v1beta1 InferenceService (JSON, which kubectl
    accepts) with canaryTrafficPercent."""
    from cmi_console.services import deployments

    common.print_json(deployments.manifest(common.context(), model, env, fmt))


def rollback(
    model: ModelArg,
    env: EnvOpt,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Back to the previous serving version at once (a signed decision).

    Ends the rollout in progress, or undoes the last completed one."""
    _act("rollback", model, env, reason, as_json)
