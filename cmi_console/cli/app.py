"""The `cmi` command. Every failure is one line on stderr and a documented exit code:
0 ok, 1 check failed, 2 bad input, 3 denied, 4 integrity violation."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cmi_console.cli import (
    audit_cmds,
    common,
    deploy_cmds,
    gate_cmds,
    history_cmds,
    hook_cmds,
    identity_cmds,
    import_cmds,
    incident_cmds,
    lineage_cmds,
    monitor_cmds,
    policy_cmds,
    registry_cmds,
    training_cmds,
)

INTERNAL_ERROR = 70

app = typer.Typer(
    name="cmi",
    help=(
        "Governance and audit console for continuous model integration.\n\n"
        "Global options (anywhere on the line): --home DIR (CMI_HOME), "
        "--db URL (CMI_DATABASE_URL), --as NAME (CMI_USER)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(audit_cmds.app, name="audit")
app.add_typer(identity_cmds.users, name="user")
app.add_typer(identity_cmds.role_app, name="role")
app.add_typer(identity_cmds.key_app, name="key")
app.add_typer(registry_cmds.datasets, name="dataset")
app.add_typer(registry_cmds.runs, name="run")
app.add_typer(registry_cmds.models, name="model")
app.add_typer(registry_cmds.versions, name="version")
app.add_typer(registry_cmds.aliases, name="alias")
app.add_typer(policy_cmds.app, name="policy")
app.add_typer(db_app, name="db")
app.add_typer(history_cmds.app, name="registry")
app.add_typer(incident_cmds.app, name="incident")
app.add_typer(deploy_cmds.app, name="deploy")
app.add_typer(monitor_cmds.app, name="monitor")
app.add_typer(hook_cmds.app, name="hooks")
app.add_typer(import_cmds.app, name="import")
app.command("rollback")(deploy_cmds.rollback)


def _print_version(wanted: bool) -> None:
    if wanted:
        from cmi_console import __version__

        typer.echo(f"cmi-console {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    pass


gate_cmds.register(app)
training_cmds.register(app)
lineage_cmds.register(app)


@app.command()
def init(
    admin: Annotated[str, typer.Option(help="Name of the first admin principal.")] = "admin",
    display_name: Annotated[str, typer.Option(help="The admin's full name.")] = "",
) -> None:
    """Create a workspace: database, artifact store, witness dir, log key, first admin.

    The admin's key is encrypted with CMI_KEY_PASSPHRASE when it is set.
    """
    from cmi_console.services.setup import init_workspace
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
    typer.echo(f"workspace created at {home}")
    typer.echo(f"  database  {ctx.workspace.database_url.split('@')[-1]}")
    typer.echo(f"  admin     {admin} (key {ctx.workspace.principal_key_path(admin)})")
    if not secret:
        typer.echo("  note: the admin key is not encrypted; set CMI_KEY_PASSPHRASE to encrypt keys")


@app.command()
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


@app.command()
def tui() -> None:
    """Open the reviewer console (also: `cmi` with no command)."""
    from cmi_console.tui.app import run

    run(common.context())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations."""
    from cmi_console.store.schema import upgrade

    ctx = common.context(check_schema=False)
    before, after = upgrade(ctx.engine)
    if before == after:
        typer.echo(f"schema already at {after}")
    else:
        typer.echo(f"schema upgraded from {before or 'empty'} to {after}")


@db_app.command("status")
def db_status() -> None:
    """Show the schema revision and whether it is current."""
    from cmi_console.store.schema import HEAD_REVISION, current_revision

    ctx = common.context(check_schema=False)
    rev = current_revision(ctx.engine)
    state = "current" if rev == HEAD_REVISION else "needs `cmi db upgrade`"
    typer.echo(f"schema {rev or 'empty'} (this cmi: {HEAD_REVISION}) - {state}")


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"cmi: {message}\n")
    sys.exit(code)


def _usage_error(exc: Any) -> None:
    """Typer's (vendored) click errors: a bad option or argument is one line, like
    every other bad input; a group called without a command shows its help."""
    message = exc.format_message().strip()
    if "\n" in message:
        exc.show()
        sys.exit(exc.exit_code)
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        _fail(message.rstrip("."), exc.exit_code)
    # "cmi: version register: Missing argument 'model' (see 'cmi version register --help')"
    path = ctx.command_path
    where = path.partition(" ")[2]
    _fail(
        f"{where + ': ' if where else ''}{message.rstrip('.')} (see '{path} --help')", exc.exit_code
    )


def main(argv: list[str] | None = None) -> None:
    from cmi_console.core.errors import CmiError

    args = common.extract_globals(list(sys.argv[1:] if argv is None else argv))
    if not args:  # `cmi` alone opens the console
        args = ["tui"]
    try:
        result = app(args=args, prog_name="cmi", standalone_mode=False)
    except CmiError as exc:
        _fail(exc.message, exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _fail("aborted", 2)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:
        if hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int):
            _usage_error(exc)
        if os.environ.get("CMI_DEBUG"):  # a bug, not bad input: one line unless debugging
            raise
        _fail(
            f"internal error: {type(exc).__name__}: {exc} (set CMI_DEBUG=1 for a traceback)",
            INTERNAL_ERROR,
        )
    if isinstance(result, int) and result:
        sys.exit(result)
