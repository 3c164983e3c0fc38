"""Pausing CPython's cyclic garbage collector around passes that build
millions of objects.

Each full collection walks every live container, and allocations trigger
them: a replay holding a million row dicts spent a third of its time in the
collector (it showed up as time in orjson.loads). Those objects hold no
cycles, so nothing is lost by collecting after the pass instead.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
