"""`cmi hooks ...`: the event hooks' deliveries, and sending them again."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cmi_console.cli import common
from cmi_console.core.clock import shown

app = typer.Typer(
    help="Event hook deliveries (hooks are declared in the policy).", no_args_is_help=True
)
JsonOpt = common.JsonOpt


def _table(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        common.print_json(rows)
        return
    common.table(
        None,
        ["#", "seq", "event", "hook", "model", "status", "attempts", "last error", "updated"],
        [
            [
                r["delivery"],
                r["seq"],
                r["event"],
                r["hook"],
                r["model"],
                r["status"],
                r["attempts"],
                r["last_error"],
                shown(r["updated_at"]),
            ]
            for r in rows
        ],
    )


@app.command("list")
def list_(
    status: Annotated[
        str | None, typer.Option(help="pending, sending, delivered or failed.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Deliveries, newest first: status, attempts and the last error."""
    from cmi_console.services import hooks

    _table(hooks.list_deliveries(common.context(), status=status, limit=limit), as_json)


@app.command("redeliver")
def redeliver(
    deliveries: Annotated[list[int] | None, typer.Argument(help="Delivery ids.")] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Every delivery not delivered yet.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Send deliveries again (admin or deployer). Exit 1 if any still fails."""
    from cmi_console.services import hooks

    out = hooks.redeliver(common.context(), deliveries, failed=failed)
    if as_json:
        common.print_json(out)
    elif not out:  # silence read as "done" or as "did nothing": say which
        common.console().print("no delivery to send: none is waiting", markup=False)
    else:
        for d in out:
            said = (
                "being sent by another process; not sent again"
                if d["status"] == "sending"
                else f"{d['status']} after {d.get('attempts', 0)} attempt(s)"
                + (f": {d['error']}" if d.get("error") else "")
            )
            common.console().print(f"delivery #{d['delivery']}: {said}", markup=False)
    if any(d["status"] != "delivered" for d in out):  # "sending": not known to be delivered yet
        raise typer.Exit(1)
