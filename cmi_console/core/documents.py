"""Reports as titled sections of paragraphs and tables, rendered to Markdown
or HTML from the same structure (model cards, incident reports).

Their text comes from users and data files (an incident's notes, a model's
description, column names), so control characters are shown escaped
(core.printable): written raw, an escape sequence acts on the terminal of
whoever runs `cat` on the report.
"""

from __future__ import annotations

import html
import re
from typing import Any

from cmi_console.core.printable import printable

# Markdown reads these anywhere in a line (emphasis, code, links and images,
# raw HTML and comments, entities, strikethrough, a table's next cell; `_`
# only next to a non-word character: inside a word it is no emphasis) ...
_INLINE = re.compile(r"([\\`*\[\]<>|~&]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
# ... and these at a paragraph line's start (a heading, a list item, a
# setext underline)
_LEADING = re.compile(r"^(\s*)([#+=-]|\d+(?=[.)]))")


def _text(value: Any, *, one_line: bool = False) -> str:
    return printable(str(value), one_line=one_line)


def md_inline(value: Any) -> str:
    """Text from users and data files as one line of Markdown that renders as
    itself (a table cell, a heading): a note's `<!--` had hidden the rest of
    a report, its raw HTML had run in the reader's viewer, and a link had
    shown other text than its address. The escapes are CommonMark's
    backslash escapes; `|` would also have started another table cell."""
    return _escaped(_text(value, one_line=True))


def md_paragraph(value: Any) -> str:
    """The same for a paragraph's lines, where a line's start can also make
    a heading or a list item."""
    lines = _escaped(_text(value)).split("\n")
    return "\n".join(_LEADING.sub(_escape_leading, line) for line in lines)


def _escaped(text: str) -> str:
    return _INLINE.sub(r"\\\1", text)


def _escape_leading(m: re.Match[str]) -> str:
    mark = m.group(2)
    return m.group(1) + (mark + "\\" if mark[0].isdigit() else "\\" + mark)


# a block is ("p", [line, ...]) or ("table", [header, row, ...])
Block = tuple[str, list[Any]]
Section = tuple[str, list[Block]]


def markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {md_inline(title)}", ""]
    for heading, blocks in sections:
        lines += [f"## {md_inline(heading)}", ""]
        for kind, body in blocks:
            if kind == "p":
                lines += [md_paragraph(x) for x in body] + [""]
                continue
            rows = [[md_inline(c) for c in r] for r in body]
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
