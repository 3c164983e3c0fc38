"""Write docs/cli.md from the Typer app, so the reference cannot drift from
the code (tests/test_docs.py fails when it is stale).

    python docs/gen_cli.py > docs/cli.md
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

HEADER = """# Command reference

`cmi [--home DIR] [--db URL] [--as NAME] COMMAND ...` — the three global options may
stand anywhere on the line (environment: `CMI_HOME`, `CMI_DATABASE_URL`, `CMI_USER`).
`cmi --version` prints `cmi-console X.Y.Z`.

Exit codes for every command: **0** ok · **1** a check or gate failed · **2** bad input
or usage (one line on stderr, nothing written) · **3** denied (role, segregation of
duties, missing key or signature, a gate that does not pass) · **4** integrity violation
(tampered log, artifact hash mismatch, unsafe artifact) · **70** internal error (a bug;
`CMI_DEBUG=1` shows the traceback) · **75** the database did not answer (it is down or
unreachable, the connection dropped, or a lock outlasted the wait; or this host's clock is
more than 5 minutes off the team database server's, see deploy-team.md; nothing was written:
try again). Numbers on the line (ids, seqs, versions) go up
to 9223372036854775807, the databases' 64-bit integers; a larger one is bad input.
Text from users and files (descriptions, comments, reasons, a file's column names) is
printed with its control characters escaped (`\\x1b`, `\\u202e`), so it cannot recolour,
hide or reorder what you read; an error message also escapes line breaks (`\\n`), so it
stays one line. `--json` keeps such text exactly as stored.
Free text has limits, the same on SQLite and PostgreSQL: a description, comment or
reason 2,000 characters, an incident note or root cause 4,000, a title 300, a tag value
500; longer is bad input naming the field (`models.description: at most 2000
characters (5000 given)`). A file named for a small document (`@FILE` for JSON, a
checkpoint, a key, a policy, a recipe) must be a regular file of at most 16 MiB; a
path that cannot be looked up (a name too long, no permission on the way) is bad input.
A JSON option holds only numbers canonical JSON records exactly: no NaN or
infinity, no integer beyond 2**53 (the path is named: `--params: a.b[1]: inf has no
JSON form`). A seed (`--seed`, a recipe's `seed`) is 0..4294967295, what numpy and
scikit-learn take. `--limit` is 1..100000 and `--offset` at least 0.
"""


def _walk(cmd: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    subs = getattr(cmd, "commands", None)
    if subs:
        for name in sorted(subs):
            yield from _walk(subs[name], [*path, name])
    else:
        yield path, cmd


def render() -> str:
    import typer

    from cmi_console.cli.app import app

    root = typer.main.get_command(app)
    out = [HEADER]
    for path, cmd in _walk(root, ["cmi"]):
        args = [p for p in cmd.params if p.param_type_name == "argument"]
        opts = [p for p in cmd.params if p.param_type_name == "option" and p.name != "help"]
        usage = " ".join([*path, *(a.name.upper() for a in args)])
        out.append(f"## {usage}\n")
        if cmd.help:
            out.append(inspect.cleandoc(cmd.help) + "\n")
        if args:
            out.append("| argument | meaning |\n| --- | --- |")
            for a in args:
                text = (getattr(a, "help", None) or "").replace("|", "\\|")
                out.append(f"| `{a.name.upper()}` | {text.strip()} |")
            out.append("")
        if opts:
            out.append("| option | meaning |\n| --- | --- |")
            for o in opts:
                names = ", ".join(f"`{n}`" for n in [*o.opts, *o.secondary_opts])
                text = (o.help or "").replace("|", "\\|")
                if o.required:
                    text += " (required)"
                elif o.default not in (None, False, "", ()) and not o.is_flag:
                    text += f" (default {o.default})"
                out.append(f"| {names} | {text.strip()} |")
            out.append("")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
