"""Run code at the worst moment: just before a file is opened for the nth
time, by whatever opens it (PEP 578's `open` audit event: builtins.open,
io, os.open), or just before a directory is made (`os.mkdir`, which
Path.mkdir calls too). A test plays a concurrent process this way,
deterministically, with real files and real database connections.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# (event, path) -> [events seen, the one to act before, the action]
_WATCHED: dict[tuple[str, str], list[Any]] = {}
_HOOKED: list[bool] = []


def _on_audit_event(event: str, args: tuple[Any, ...]) -> None:
    if event not in ("open", "os.mkdir") or not _WATCHED or isinstance(args[0], int):
        return
    opened = os.fsdecode(os.fspath(args[0]))
    # a file, or a directory ending in "/": any file made or opened in it
    key = (event, opened)
    if key not in _WATCHED:
        key = (event, os.path.dirname(opened) + "/")
    seen = _WATCHED.get(key)
    if seen is None:
        return
    seen[0] += 1
    if seen[0] == seen[1]:
        del _WATCHED[key]  # first: the action may open the file too
        seen[2]()


@contextmanager
def before_open(path: Path, action: Callable[[], object], nth: int = 1) -> Iterator[None]:
    """Run `action` just before `path` is opened for the `nth` time."""
    with _watching(("open", str(path)), action, nth):
        yield


@contextmanager
def before_mkdir(path: Path, action: Callable[[], object]) -> Iterator[None]:
    """Run `action` just before the directory `path` is first made."""
    with _watching(("os.mkdir", str(path)), action, 1):
        yield


@contextmanager
def before_open_in(directory: Path, action: Callable[[], object]) -> Iterator[None]:
    """Run `action` just before a file in `directory` is first opened (or
    made: the artifact store's temporary files have names no test knows)."""
    with _watching(("open", f"{directory}/"), action, 1):
        yield


@contextmanager
def _watching(key: tuple[str, str], action: Callable[[], object], nth: int) -> Iterator[None]:
    if not _HOOKED:  # an audit hook cannot be removed: one, idle when nothing is watched
        sys.addaudithook(_on_audit_event)
        _HOOKED.append(True)
    _WATCHED[key] = [0, nth, action]
    try:
        yield
    finally:
        _WATCHED.pop(key, None)
