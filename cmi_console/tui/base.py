"""What every console screen shares: the header and footer, and loading its
data from the services in a thread worker, again whenever it comes back into
view and whenever the log grows, so writes by others show up within 2 s."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from cmi_console.core.errors import CmiError, first_line
from cmi_console.core.printable import printable

F = TypeVar("F", bound=Callable[..., Any])


def as_written(text: str) -> Text:
    """A user's or a file's text for a table cell or a tree label: never a
    control sequence, and never Rich markup, which both widgets read a str
    as ("[/]" in a description raised MarkupError and stopped the console;
    "[link=...]" put a live link on the screen)."""
    return Text(printable(text, one_line=True), end="")


def worker(*, exclusive: bool = False, group: str = "default") -> Callable[[F], F]:
    """The console's thread worker: data access never runs on the UI thread.

    Textual ends the whole app when a worker raises. Here a CmiError (a
    refusal, or the database out of reach for a moment: a team's PostgreSQL
    restarting ended every reviewer's console) is a notification and the
    console goes on; so is any other exception, as an internal error, unless
    CMI_DEBUG is set. Workers that react to an error in their own way still
    catch it themselves."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def guarded(node: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(node, *args, **kwargs)
            except CmiError as exc:
                _tell(node, exc.message)
            except Exception as exc:
                if os.environ.get("CMI_DEBUG"):
                    raise
                _tell(node, f"internal error: {type(exc).__name__}: {first_line(exc)}")
            return None

        return work(thread=True, exclusive=exclusive, group=group)(guarded)  # type: ignore[return-value]

    return decorate


def _tell(node: Any, message: str) -> None:
    with contextlib.suppress(RuntimeError):  # the app is closing: nobody to tell
        node.app.call_from_thread(node.app.notify, message, severity="error", timeout=10)


POLL_SECONDS = 1.0  # the log head is polled; a change anywhere reloads the screen


class DataScreen(Screen[None]):
    def compose(self) -> ComposeResult:
        yield Header()
        yield from self.body()
        yield Footer()

    def body(self) -> ComposeResult:
        yield from ()

    @property
    def session(self) -> Any:
        return self.app.session  # type: ignore[attr-defined]

    _ready = False
    _seen_size = -1

    def on_mount(self) -> None:
        self._ready = True
        self.reload()
        self.set_interval(POLL_SECONDS, self._poll)

    @worker(exclusive=True, group="poll")
    def _poll(self) -> None:
        from cmi_console.services import audit

        session = self.session
        try:
            size = audit.count(session.ctx)
        except CmiError as exc:
            if session.unreachable is None:  # said once an outage, not every second
                session.unreachable = exc.message
                _tell(self, f"{exc.message} (trying again every {POLL_SECONDS:g} s)")
            return
        if session.unreachable is not None:
            session.unreachable = None
            self.app.call_from_thread(self.notify, "the database answers again")
            self.app.call_from_thread(self.reload)
        if size != self._seen_size:
            first = self._seen_size < 0
            self._seen_size = size
            if not first:
                self.app.call_from_thread(self.reload)

    def on_screen_resume(self) -> None:
        self.reload()

    def reload(self) -> None:
        """Load again, unless the screen's widgets are not mounted yet (a screen
        is resumed, and the app may sign in, before the first mount): on_mount
        loads then."""
        if self._ready:
            self._load()

    @worker(exclusive=True, group="load")
    def _load(self) -> None:
        data = self.fetch()
        self.app.call_from_thread(self.show, data)

    def fetch(self) -> Any:
        """Runs in a worker thread: read through the services only."""
        return None

    def show(self, data: Any) -> None:
        """Runs on the UI thread with what fetch returned."""


class EmptyNote(Static):
    """Under a table: why it is empty and what would fill it; takes no line
    while the table has rows (an empty table is otherwise a row of headers
    that says nothing)."""

    def __init__(self, text: str, **kwargs: Any) -> None:
        super().__init__("", markup=False, **kwargs)
        self.text = text
        self.display = False  # until the data says the table is empty

    def say(self, text: str | None) -> None:
        """Show `text` (None: the note given at construction), or hide with ""."""
        shown = self.text if text is None else text
        self.update(shown)
        self.display = bool(shown)

    def follow(self, rows: int) -> None:
        """Show the note when there are no rows, hide it otherwise."""
        self.say(None if rows == 0 else "")


def fill(table: DataTable[Any], rows: list[tuple[str, list[Any]]]) -> None:
    """Replace a table's rows, keeping the cursor on the same row key."""
    keep = None
    if table.row_count and table.cursor_row < table.row_count:
        keep = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    table.clear()
    for key, cells in rows:
        table.add_row(*(as_written("" if c is None else str(c)) for c in cells), key=key)
    keys = [k for k, _ in rows]
    if keep in keys:
        table.move_cursor(row=keys.index(keep))
