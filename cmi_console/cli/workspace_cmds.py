"""Workspace commands: `cmi init`, `cmi demo`, `cmi tui` and `cmi db ...`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cmi_console.cli import common

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    for fn in (init, demo, tui):
        app.command(fn.__name__)(fn)


def init(
    admin: Annotated[str, typer.Option(help="Name of the first admin principal.")] = "admin",
    display_name: Annotated[str, typer.Option(help="The admin's full name.")] = "",
) -> None:
    """Create a workspace: database, artifact store, witness dir, log key, first admin.

    The admin's key is encrypted with CMI_KEY_PASSPHRASE when it is set.
    """
    from cmi_console.services.setup import init_workspace
    from cmi_console.store.engine import redacted
    from cmi_console.store.workspace import default_home

    home = common.settings.home or default_home()
    secret = os.environ.get("CMI_KEY_PASSPHRASE")
    ctx = init_workspace(
        home,
        admin=admin,
        db=common.settings.db,
        passphrase=secret.encode() if secret else None,
        display_name=display_name,
    )
    common.echo(f"workspace created at {home}")
    common.echo(f"  database  {redacted(ctx.workspace.database_url).split('@')[-1]}")
    common.echo(f"  admin     {admin} (key {ctx.workspace.principal_key_path(admin)})")
    if not secret:
        common.echo(
            "  note: the admin key is not encrypted; set CMI_KEY_PASSPHRASE to encrypt keys"
        )


def demo(
    reset: Annotated[bool, typer.Option("--reset", help="Rebuild the demo from scratch.")] = False,
    no_open: Annotated[
        bool, typer.Option("--no-open", help="Only build and summarize; do not open the console.")
    ] = False,
) -> None:
    """Build (once) and open a populated demo workspace (default ./cmi-demo).

    On a terminal it opens the console; piped, it prints the summary only.
    """
    from cmi_console.services import demo as demo_service

    home = common.settings.home or Path("cmi-demo")
    summary = demo_service.ensure_demo(home, reset=reset)
    demo_service.print_summary(summary)
    if sys.stdout.isatty() and sys.stdin.isatty() and not no_open:
        from cmi_console.services.context import Context
        from cmi_console.tui.app import run

        os.environ.setdefault("CMI_KEY_PASSPHRASE", demo_service.DEMO_PASSPHRASE)
        run(Context.open(home, None, common.settings.actor))


def tui() -> None:
    """Open the reviewer console (also: `cmi` with no command).

    It needs a terminal: with stdin or stdout not one (a CI job, a pipe) it
    is bad input (exit 2), not a console drawn into a file that waits for
    keys forever.
    """
    from cmi_console.core.errors import BadInput
    from cmi_console.tui.app import run

    for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout)):
        if not stream.isatty():
            raise BadInput(
                f"the console needs a terminal, and {name} is not one; "
                "in a script use the commands (`cmi --help`)"
            )
    run(common.context())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations."""
    from cmi_console.store.schema import upgrade

    ctx = common.context(check_schema=False)
    before, after = upgrade(ctx.engine)
    if before == after:
        common.echo(f"schema already at {after}")
    else:
        common.echo(f"schema upgraded from {before or 'empty'} to {after}")


@db_app.command("status")
def db_status() -> None:
    """Show the schema revision and whether it is current."""
    from cmi_console.store.schema import HEAD_REVISION, current_revision

    ctx = common.context(check_schema=False)
    rev = current_revision(ctx.engine)
    state = "current" if rev == HEAD_REVISION else "needs `cmi db upgrade`"
    common.echo(f"schema {rev or 'empty'} (this cmi: {HEAD_REVISION}) - {state}")
