"""`cmi lineage MODEL:VERSION`: where a version came from and what it led to."""

from __future__ import annotations

from typing import Annotated

import typer

from cmi_console.cli import common
from cmi_console.cli.common import RefArg
from cmi_console.core.printable import printable

FORMATS = ("tree", "json", "dot", "mermaid")


def register(app: typer.Typer) -> None:
    app.command("lineage")(lineage)


def lineage(
    ref: RefArg,
    up: Annotated[bool, typer.Option("--up", help="Only where it came from.")] = False,
    down: Annotated[bool, typer.Option("--down", help="Only what it led to.")] = False,
    both: Annotated[bool, typer.Option("--both", help="Both directions (the default).")] = False,
    depth: Annotated[int, typer.Option(help="How many steps to follow.")] = 10,
    fmt: Annotated[str, typer.Option("--format", help="tree, json, dot or mermaid.")] = "tree",
) -> None:
    """The lineage graph of a version.

    Its datasets, recipes, runs, validations, decisions, successors and
    incidents."""
    from cmi_console.core.errors import BadInput
    from cmi_console.services import lineage as lin

    if fmt not in FORMATS:
        raise BadInput(f"--format: must be one of {', '.join(FORMATS)}")
    if sum((up, down, both)) > 1:
        raise BadInput("give at most one of --up, --down, --both")
    direction = "up" if up else "down" if down else "both"
    graph = lin.lineage(common.context(), ref, direction, depth)
    if fmt == "json":
        common.print_json(graph)
    elif fmt == "dot":
        common.echo(lin.as_dot(graph), nl=False)
    elif fmt == "mermaid":
        common.echo(lin.as_mermaid(graph), nl=False)
    else:
        from rich.text import Text
        from rich.tree import Tree

        lines = lin.tree_lines(graph)
        root = Tree(Text(printable(lines[0][1])))
        stack = [root]
        for level, label in lines[1:]:
            del stack[level:]
            stack.append(stack[-1].add(Text(printable(label))))
        common.console().print(root)
