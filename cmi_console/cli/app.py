"""The `cmi` command. Every failure is one line on stderr and a documented exit code:
0 ok, 1 check failed, 2 bad input, 3 denied, 4 integrity violation.

`main` builds only what a call needs: Typer makes every command's parameters
before it runs one (~0.1 s of a 1 s start on this VM, and the imports of
every command module), so `cmi audit log` builds the `audit` group alone.
`app`, the whole tree, is made on first use (docs, `cmi --help`, root commands).
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from typing import Annotated, Any

import typer

from cmi_console.cli import common

INTERNAL_ERROR = 70

# the groups, in the order `cmi --help` lists them: name -> (module in
# cmi_console.cli, attribute holding its Typer)
GROUPS: dict[str, tuple[str, str]] = {
    "audit": ("audit_cmds", "app"),
    "user": ("identity_cmds", "users"),
    "role": ("identity_cmds", "role_app"),
    "key": ("identity_cmds", "key_app"),
    "dataset": ("registry_cmds", "datasets"),
    "run": ("registry_cmds", "runs"),
    "model": ("registry_cmds", "models"),
    "version": ("registry_cmds", "versions"),
    "alias": ("registry_cmds", "aliases"),
    "policy": ("policy_cmds", "app"),
    "db": ("workspace_cmds", "db_app"),
    "registry": ("history_cmds", "app"),
    "incident": ("incident_cmds", "app"),
    "deploy": ("deploy_cmds", "app"),
    "monitor": ("monitor_cmds", "app"),
    "hooks": ("hook_cmds", "app"),
    "import": ("import_cmds", "app"),
    "gate": ("gate_cmds", "gate_app"),
    "validation": ("gate_cmds", "validation_app"),
}


def _print_version(wanted: bool) -> None:
    if wanted:
        from cmi_console import __version__

        typer.echo(f"cmi-console {__version__}")
        raise typer.Exit()


def _root_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    pass


def _root() -> typer.Typer:
    root = typer.Typer(
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
    root.callback()(_root_options)
    return root


def _group(name: str) -> typer.Typer:
    module, attribute = GROUPS[name]
    return getattr(importlib.import_module(f"cmi_console.cli.{module}"), attribute)


def _with_group(name: str) -> typer.Typer:
    """The root with one group: what `cmi NAME ...` needs."""
    root = _root()
    root.add_typer(_group(name), name=name)
    return root


@functools.cache
def _whole() -> typer.Typer:
    from cmi_console.cli import (
        deploy_cmds,
        gate_cmds,
        lineage_cmds,
        training_cmds,
        workspace_cmds,
    )

    root = _root()
    for name in GROUPS:
        root.add_typer(_group(name), name=name)
    root.command("rollback")(deploy_cmds.rollback)
    gate_cmds.register(root)
    training_cmds.register(root)
    lineage_cmds.register(root)
    workspace_cmds.register(root)
    return root


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole command tree, built on first use
        return _whole()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _fail(message: str, code: int) -> None:
    # control characters from the input (a name with a newline, an escape
    # sequence in a file) are shown escaped: one line, and no terminal tricks
    from cmi_console.core.printable import printable

    sys.stderr.write(f"cmi: {printable(message, one_line=True)}\n")
    sys.exit(code)


def _bounded(command: Any) -> Any:
    """Every integer typed on the line must fit the databases' 64-bit
    integers: a larger one is bad input, named on its option, not a driver's
    overflow deep inside (an internal error before)."""
    from cmi_console.core.names import MAX_INTEGER

    def within(then: Any) -> Any:
        def check(ctx: Any, param: Any, value: Any) -> Any:
            for number in value if isinstance(value, list | tuple) else (value,):
                if isinstance(number, int) and abs(number) > MAX_INTEGER:
                    param.type.fail(f"{number} is too large (at most {MAX_INTEGER})", param, ctx)
            return value if then is None else then(ctx, param, value)

        return check

    commands = [command]
    while commands:
        cmd = commands.pop()
        commands.extend(getattr(cmd, "commands", {}).values())
        for param in cmd.params:
            # IntParamType or its IntRange, of whichever click Typer carries
            if any(k.__name__ == "IntParamType" for k in type(param.type).__mro__):
                param.callback = within(param.callback)
    return command


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
    app = _with_group(args[0]) if args[0] in GROUPS else _whole()
    try:
        try:
            command = _bounded(typer.main.get_command(app))
            result = command.main(args=args, prog_name="cmi", standalone_mode=False)
        finally:
            # before a failure's line, which stays the last: a change committed
            # before the failure still has its notices
            common.say_notices()
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
