"""A virtual view over the whole audit log: only the visible lines are read,
page by page, in a worker thread (after Toolong's line-API log view)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from cmi_console.core.clock import shown
from cmi_console.tui.base import worker

PAGE = 200
SIGNED = Style(color="green")
CURSOR = Style(reverse=True)


def format_entry(e: dict[str, Any]) -> str:
    mark = "✔" if "sig" in e else " "
    when = shown(e["time"])
    return f"{e['seq']:>8}  {when}  {mark} {e['actor']:<10} {e['action']:<20} {e['subject']}"


class AuditLogView(ScrollView, can_focus=True):
    """Line i is the i-th entry matching the filters, newest first."""

    BINDINGS = [
        ("up", "move(-1)", "Up"),
        ("down", "move(1)", "Down"),
        ("pageup", "move(-20)", "Page up"),
        ("pagedown", "move(20)", "Page down"),
        ("home", "jump(0)", "Newest"),
        ("end", "jump(-1)", "Oldest"),
        ("enter", "open", "Show entry"),
    ]
    cursor = reactive(0)

    class Opened(Message):
        def __init__(self, entry: dict[str, Any]) -> None:
            super().__init__()
            self.entry = entry

    def __init__(self, fetch: Callable[[int, int], list[dict[str, Any]]], **kw: Any) -> None:
        super().__init__(**kw)
        self.fetch = fetch  # (offset, limit) -> entries, newest first
        self.total = 0
        self.pages: dict[int, list[dict[str, Any]]] = {}
        # pages being read (not `loading`: that is Textual's own reactive, and a
        # widget with it set is neither focusable nor enabled)
        self.pending: set[int] = set()

    def reset(self, total: int) -> None:
        self.total = total
        self.pages.clear()
        self.pending.clear()
        self.cursor = 0
        self.virtual_size = Size(160, total)
        self.scroll_to(0, 0, animate=False)
        self.refresh()

    def entry_at(self, index: int) -> dict[str, Any] | None:
        page = self.pages.get(index // PAGE)
        if page is None:
            self._load(index // PAGE)
            return None
        off = index % PAGE
        return page[off] if off < len(page) else None

    @worker(group="audit-pages")
    def _load_page(self, page: int) -> None:
        rows = self.fetch(page * PAGE, PAGE)
        self.app.call_from_thread(self._loaded, page, rows)

    def _load(self, page: int) -> None:
        if page not in self.pending:
            self.pending.add(page)
            self._load_page(page)

    def _loaded(self, page: int, rows: list[dict[str, Any]]) -> None:
        self.pages[page] = rows
        self.pending.discard(page)
        if len(self.pages) > 50:  # bounded memory on a million entries
            for old in sorted(self.pages, key=lambda p: abs(p - page))[50:]:
                del self.pages[old]
        self.refresh()

    def _prefetch(self, top: int) -> None:
        """Read the page the user is heading into before they get there, so a
        page-down never waits for the database (Toolong reads ahead too)."""
        ahead = (top + self.size.height + PAGE // 2) // PAGE
        behind = max(0, (top - PAGE // 2) // PAGE)
        for page in (ahead, behind):
            if page * PAGE < self.total and page not in self.pages:
                self._load(page)

    def render_line(self, y: int) -> Strip:
        _x, top = self.scroll_offset
        if y == 0:
            self._prefetch(top)
        index = top + y
        width = self.size.width
        if index >= self.total:
            return Strip.blank(width)
        entry = self.entry_at(index)
        text = format_entry(entry) if entry else f"{'':>8}  loading…"
        style = (
            CURSOR if index == self.cursor else (SIGNED if entry and "sig" in entry else Style())
        )
        return Strip([Segment(text[:width].ljust(width), style)], width)

    def watch_cursor(self, old: int, new: int) -> None:
        _x, top = self.scroll_offset
        height = self.size.height or 1
        if new < top:
            self.scroll_to(y=new, animate=False)
        elif new >= top + height:
            self.scroll_to(y=new - height + 1, animate=False)
        self.refresh()

    def action_move(self, delta: int) -> None:
        if self.total:
            self.cursor = max(0, min(self.total - 1, self.cursor + delta))

    def action_jump(self, where: int) -> None:
        if self.total:
            self.cursor = where % self.total

    def action_open(self) -> None:
        entry = self.entry_at(self.cursor)
        if entry is not None:
            self.post_message(self.Opened(entry))
