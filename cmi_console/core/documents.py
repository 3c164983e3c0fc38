"""Reports as titled sections of paragraphs and tables, rendered to Markdown
or HTML from the same structure (model cards, incident reports)."""

from __future__ import annotations

import html
from typing import Any

# a block is ("p", [line, ...]) or ("table", [header, row, ...])
Block = tuple[str, list[Any]]
Section = tuple[str, list[Block]]


def markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for heading, blocks in sections:
        lines += [f"## {heading}", ""]
        for kind, body in blocks:
            if kind == "p":
                lines += [str(x) for x in body] + [""]
                continue
            rows = [[str(c).replace("|", "\\|").replace("\n", " ") for c in r] for r in body]
            lines.append("| " + " | ".join(rows[0]) + " |")
            lines.append("|" + " --- |" * len(rows[0]))
            lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
            lines.append("")
    return "\n".join(lines)


def to_html(title: str, sections: list[Section]) -> str:
    e = html.escape
    parts = [
        "<!doctype html>",
        f"<html><head><meta charset='utf-8'><title>{e(title)}</title></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    for heading, blocks in sections:
        parts.append(f"<h2>{e(heading)}</h2>")
        for kind, body in blocks:
            if kind == "p":
                parts += [f"<p>{e(str(x))}</p>" for x in body]
                continue
            parts.append("<table border='1'>")
            parts.append("<tr>" + "".join(f"<th>{e(str(c))}</th>" for c in body[0]) + "</tr>")
            for r in body[1:]:
                parts.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>")
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def table_or(rows: list[list[Any]], empty: str) -> list[Block]:
    """A table when there are rows beyond the header, else one sentence."""
    return [("table", rows)] if len(rows) > 1 else [("p", [empty])]
