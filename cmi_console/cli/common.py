"""Settings shared by every command, the service context, and output."""

from __future__ import annotations

import functools
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cmi_console.core.printable import printable
from cmi_console.core.roles import ROLES

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

# arguments many commands take, each with its help text once
RefArg = Annotated[str, typer.Argument(help="The version: MODEL:VERSION or MODEL@ALIAS.")]
ModelArg = Annotated[str, typer.Argument(help="The model's name.")]
PrincipalArg = Annotated[str, typer.Argument(help="The principal's name.")]
RoleArg = Annotated[str, typer.Argument(help=f"The role: {', '.join(ROLES)}.")]
IncidentArg = Annotated[int, typer.Argument(help="The incident's number (cmi incident list).")]
RecipeArg = Annotated[Path, typer.Argument(help="The training recipe (TOML).")]
ChangeAuthorOpt = Annotated[
    str | None,
    typer.Option(
        "--change-author",
        envvar="CMI_CHANGE_AUTHOR",
        help="The principal whose change (commit) this trains; they may not "
        "approve or reject the version.",
    ),
]
SeqArg = Annotated[int, typer.Argument(help="The entry's sequence number (cmi audit log).")]
AliasArg = Annotated[str, typer.Argument(help="The alias, e.g. champion.")]

if TYPE_CHECKING:
    from cmi_console.services.context import Context

GLOBAL_OPTIONS = {"--home": "home", "--db": "db", "--as": "actor"}


@dataclass
class Settings:
    home: Path | None = None
    db: str | None = None
    actor: str | None = None


settings = Settings()


def extract_globals(argv: list[str]) -> list[str]:
    """Take --home/--db/--as from anywhere on the line, so they work after the command too."""
    settings.home = settings.db = settings.actor = None  # main() may run many times in-process
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in GLOBAL_OPTIONS and (eq or i + 1 < len(argv)):
            if not eq:
                value = argv[i + 1]
                i += 1
            setattr(settings, GLOBAL_OPTIONS[name], value)
        elif arg == "--":
            rest.extend(argv[i:])
            break
        else:
            rest.append(arg)
        i += 1
    if isinstance(settings.home, str):
        settings.home = Path(settings.home).expanduser()
    settings.actor = settings.actor or os.environ.get("CMI_USER") or None
    return rest


def prompt_passphrase(what: str) -> bytes | None:
    env = os.environ.get("CMI_KEY_PASSPHRASE")
    if env:
        return env.encode()
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(f"Passphrase for {what}: ").encode() or None
    return None


# the contexts this command opened: what their writes could not finish (the
# witness not updated, a hook delivery that failed) is said on stderr when
# the command ends
_opened: list[Context] = []


def context(check_schema: bool = True) -> Context:
    from cmi_console.services.context import Context

    ctx = Context.open(
        settings.home,
        settings.db,
        settings.actor,
        check_schema=check_schema,
        passphrase=prompt_passphrase,
    )
    _opened.append(ctx)
    return ctx


def say_notices() -> None:
    """Print, on stderr, the notices of the contexts this command opened, and
    let the contexts go, closing their database connections (tests run many
    commands in one process; a pool left to the garbage collector closes
    its connections unannounced). An engine disposed still works: a late
    hook delivery gets a fresh pool."""
    while _opened:
        ctx = _opened.pop(0)
        for notice in ctx.take_notices():
            echo(f"warning: {notice}", err=True)
        ctx.engine.dispose()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def echo(text: str, err: bool = False, nl: bool = True) -> None:
    """Text for people, its control characters shown escaped (core.printable)."""
    typer.echo(printable(text), err=err, nl=nl)


@functools.cache
def _console_class() -> Any:
    from rich.console import Console  # imported late: most commands print no table

    class PrintableConsole(Console):
        """Strings printed show their control characters escaped; tables get
        their cells from `table` and `kv`, which do the same (before layout,
        so the columns fit what is shown)."""

        def print(self, *objects: Any, **kwargs: Any) -> None:
            shown = [printable(o) if isinstance(o, str) else o for o in objects]
            super().print(*shown, **kwargs)

    return PrintableConsole


def console() -> Any:
    # emoji off: subjects like "version:cancer:1" must not turn into pictures
    # piped output is read by people in CI logs: do not squeeze it into 80 columns
    width = None if sys.stdout.isatty() else 160
    return _console_class()(emoji=False, highlight=False, width=width)


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*[Text("" if v is None else printable(str(v))) for v in r])
    console().print(t)


def kv(title: str, data: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, title_justify="left", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value", overflow="fold")
    for k, v in data.items():
        if isinstance(v, dict | list):
            v = json.dumps(v, sort_keys=True) if v else "-"
        t.add_row(k, Text("" if v is None else printable(str(v))))
    console().print(t)


def answered(what: str) -> None:
    """Say on stderr that a retry was answered with what its first try did
    (`what`), and that nothing was written: stdout stays the record."""
    echo(f"note: {what}; nothing written", err=True)


def show(title: str, data: dict[str, Any], as_json: bool) -> None:
    """One record: JSON for machines, a key/value table for people."""
    if as_json:
        print_json(data)
    elif isinstance(data.get("created"), bool):
        # whether a retry was answered: said on stderr, and a row "created
        # True" under the record read like a date that was never filled in
        kv(title, {k: v for k, v in data.items() if k != "created"})
    else:
        kv(title, data)


def read_text_arg(path: Path, where: str) -> str:
    """The text of a file named on the command line; one clear line if unreadable."""
    from cmi_console.core.small_files import read_document

    return read_document(path, where)


def load_json_arg(text: str | None, where: str) -> dict[str, Any]:
    """A JSON object given inline or as @FILE."""
    from cmi_console.core.canonical import RepeatedName, unique_names, unrepresentable
    from cmi_console.core.credentials import credential_in
    from cmi_console.core.errors import BadInput

    if text is None:
        return {}
    source = where
    if text.startswith("@"):
        path = Path(text[1:])
        text = read_text_arg(path, where)
        source = str(path)
    try:
        value = json.loads(text, object_pairs_hook=unique_names)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{source}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except RepeatedName as exc:
        raise BadInput(f"{source}: invalid JSON: {exc}") from None
    except RecursionError:
        raise BadInput(f"{source}: invalid JSON: nested too deeply") from None
    if not isinstance(value, dict):
        raise BadInput(f"{source}: must be a JSON object")
    problem = unrepresentable(value)
    if problem:  # it would be recorded in canonical JSON, which has no form for it
        raise BadInput(f"{source}: {problem}")
    problem = credential_in(value)
    if problem:  # the log keeps it for good (a CI's repository URL holds its token)
        raise BadInput(f"{source}: {problem}")
    return value


def with_progress(label: str, quiet: bool, run: Any) -> Any:
    """Call `run(update)` under a transient Rich progress bar on stderr, where
    `update(done, total, description=None)` moves it. `update` is None when quiet
    or when stderr is no terminal: a CI log gets no bar's remains, and stdout
    holds the result alone."""
    from rich.console import Console

    err = Console(stderr=True)
    if quiet or not err.is_terminal:
        return run(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None, description: str | None = None) -> None:
            bar.update(task, completed=done, total=total, description=description or label)

        return run(update)
