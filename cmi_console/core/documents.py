"""Reports as titled sections of paragraphs and tables, rendered to Markdown
or HTML from the same structure (model cards, incident reports).

Their text comes from users and data files (an incident's notes, a model's
description, column names), so control characters are shown escaped
(core.printable): written raw, an escape sequence acts on the terminal of
whoever runs `cat` on the report.
"""

from __future__ import annotations

import html
from typing import Any

from cmi_console.core.printable import printable


def _text(value: Any) -> str:
    return printable(str(value))


def table_cell(value: Any) -> str:
    """A Markdown table cell: one line, and `|` would start another cell."""
    return printable(str(value), one_line=True).replace("|", "\\|")


# a block is ("p", [line, ...]) or ("table", [header, row, ...])
Block = tuple[str, list[Any]]
Section = tuple[str, list[Block]]


def markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {printable(title, one_line=True)}", ""]
    for heading, blocks in sections:
        lines += [f"## {printable(heading, one_line=True)}", ""]
        for kind, body in blocks:
            if kind == "p":
                lines += [_text(x) for x in body] + [""]
                continue
            rows = [[table_cell(c) for c in r] for r in body]
            lines.append("| " + " | ".join(rows[0]) + " |")
            lines.append("|" + " --- |" * len(rows[0]))
            lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
            lines.append("")
    return "\n".join(lines)


def to_html(title: str, sections: list[Section]) -> str:
    def e(value: Any) -> str:
        return html.escape(_text(value))

    parts = [
        "<!doctype html>",
        f"<html><head><meta charset='utf-8'><title>{e(title)}</title></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    for heading, blocks in sections:
        parts.append(f"<h2>{e(heading)}</h2>")
        for kind, body in blocks:
            if kind == "p":
                parts += [f"<p>{e(x)}</p>" for x in body]
                continue
            parts.append("<table border='1'>")
            parts.append("<tr>" + "".join(f"<th>{e(c)}</th>" for c in body[0]) + "</tr>")
            for r in body[1:]:
                parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>")
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def table_or(rows: list[list[Any]], empty: str) -> list[Block]:
    """A table when there are rows beyond the header, else one sentence."""
    return [("table", rows)] if len(rows) > 1 else [("p", [empty])]
