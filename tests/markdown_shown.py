"""What a reader of a Markdown report sees: the file rendered as CommonMark
(with tables) by markdown-it, the parser rich uses, and stripped to text."""

from __future__ import annotations

import html
import re


def rendered(markdown: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table").render(markdown)


def shown(markdown: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", rendered(markdown)))
