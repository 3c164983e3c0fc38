"""`cmi policy ...`: check, show, activate and list policies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cmi_console.cli import common
from cmi_console.cli.common import ModelArg
from cmi_console.core.clock import shown

app = typer.Typer(help="Policies as code: stages, gates, tiers, suites.", no_args_is_help=True)
JsonOpt = common.JsonOpt


@app.command("check")
def check(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Files (default: policies/*.toml).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate policy files; exit 2 with the file and key path of the first error.

    A model policy is checked merged over the active default policy (or the
    bundled one without a workspace) and against the model's risk tier.
    """
    from cmi_console.core.errors import BadInput
    from cmi_console.services import policies

    paths = files or sorted(Path("policies").glob("*.toml"))
    if not paths:
        raise BadInput("policy check: no files given and no policies/*.toml here")
    ctx = _optional_context()
    results = [policies.check_file(ctx, p) for p in paths]
    if as_json:
        common.print_json(results)
        return
    for r in results:
        common.echo(f"ok  {r['file']}  {r['scope']}  tier {r['tier']}  sha256 {r['sha256'][:16]}")


def _optional_context():  # type: ignore[no-untyped-def]
    """The workspace if there is one: checking a file needs none."""
    from cmi_console.core.errors import BadInput

    try:
        return common.context()
    except BadInput:
        return None


@app.command("show")
def show(model: ModelArg, as_json: JsonOpt = False) -> None:
    """The effective policy of MODEL: default, its override, and its tier."""
    from cmi_console.services import policies

    view = policies.show(common.context(), model)
    if as_json:
        common.print_json(view)
        return
    common.kv(
        f"policy of {model}",
        {
            "tier": view["tier"],
            "sha256": view["sha256"],
            "sources": view["sources"],
        },
    )
    pol = view["policy"]
    common.table(
        "stages",
        ["stage", "from", "suite", "approvals (with tier)", "expiry", "exclusive", "promoters"],
        [
            [
                name,
                ", ".join(s["from"]) or "-",
                s["suite"] or "-",
                ", ".join(f"{r} x{n}" for r, n in view["required_approvals"][name].items()) or "-",
                f"{s['approval_expiry_days']}d" if s["approval_expiry_days"] else "-",
                "yes" if s["exclusive"] else "",
                ", ".join(s["promoters"]),
            ]
            for name, s in pol["stages"].items()
        ],
    )


@app.command("activate")
def activate(
    path: Annotated[Path, typer.Argument(help="The policy file (TOML).")], as_json: JsonOpt = False
) -> None:
    """Make a policy file active for its scope (signed; old and new hash audited).

    A policy active already for its scope (a pipeline that applies the
    policy files on every merge) is answered; nothing is written.
    """
    from cmi_console.services import policies

    data = policies.activate(common.context(), path)
    if not data["created"]:
        common.answered(
            f"{data['source']} ({data['new_sha256'][:16]}) is active for {data['scope']} "
            f"already (activated by {data['activated_by']}, {shown(data['activated_at'])})"
        )
    if as_json:
        common.print_json(data)
        return
    if not data["created"]:
        return
    old = (data["old_sha256"] or "none")[:16]
    common.echo(
        f"activated {data['source']} for {data['scope']}: {old} -> {data['new_sha256'][:16]}"
    )


@app.command("history")
def history(
    scope: Annotated[str | None, typer.Option(help="default or a model name.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every activation, oldest first."""
    from cmi_console.services import policies

    rows = policies.history(common.context(), scope)
    if as_json:
        common.print_json(rows)
        return
    common.table(
        None,
        ["scope", "sha256", "source", "active", "activated", "by"],
        [
            [
                r["scope"],
                r["sha256"][:16],
                r["source"],
                "yes" if r["active"] else "",
                shown(r["activated_at"]),
                r["activated_by"],
            ]
            for r in rows
        ],
    )
