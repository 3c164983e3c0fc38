"""The registry rebuilt from the log: each entry's `changes`, applied in order.

`audit verify` compares the result with the tables; `registry as-of` stops at
an instant and shows what was true then. Pure: no database.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# a change without a row (a delete) reads as this; never written to
_NO_ROW: dict[str, Any] = {}


class _Unkept(dict):  # type: ignore[type-arg]
    """The row of every id of a table outside `keep`: updates to it are dropped."""

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass


_UNKEPT = _Unkept()


class _Skipped(dict):  # type: ignore[type-arg]
    """A table outside `keep`: holds nothing, and every change to it applies."""

    def __contains__(self, rid: object) -> bool:
        return False

    def get(self, rid: object, default: object = None) -> Any:
        return _UNKEPT

    def __setitem__(self, rid: int, row: dict[str, Any]) -> None:
        pass

    def __delitem__(self, rid: int) -> None:
        pass


class RegistryState:
    """Tables as dicts of id -> row, built only from logged changes.

    `keep` (None: all) names the tables replayed; changes to the others are
    taken as they come, neither checked nor held. A replay that answers about
    a few tables (`registry as-of`) may then read only the entries that
    change those, and need not hold a million tag rows. Done with a dict
    subclass so that `apply`, the hot loop of `audit verify`, has no branch
    for it."""

    def __init__(self, table_names: Iterable[str], keep: Iterable[str] | None = None) -> None:
        kept = None if keep is None else set(keep)
        self.tables: dict[str, dict[int, dict[str, Any]]] = {
            t: {} if kept is None or t in kept else _Skipped() for t in table_names
        }

    def apply(self, changes: Iterable[dict[str, Any]]) -> list[str]:
        """Apply one entry's changes; return what was wrong with them (if anything).

        `changes` comes from an entry that may have been forged, so its shape is
        checked, not assumed. A million entries go through here in `audit
        verify`, hence the locals and the one lookup per row."""
        if not isinstance(changes, list | tuple):
            return ["changes is not a list"]
        problems = []
        tables, changed = self.tables, self.changed
        for change in changes:
            row = change.get("row", _NO_ROW) if isinstance(change, dict) else None
            rid = change.get("id") if row is not None else None  # type: ignore[union-attr]
            if not isinstance(row, dict) or not isinstance(rid, int):
                problems.append("a change is not an object with an integer id and an object row")
                continue
            name = change.get("t")
            # a forged name may be a list or an object: no dict lookup with it
            rows = tables.get(name) if isinstance(name, str) else None
            if rows is None:
                problems.append(f"unknown table {name!r}")
                continue
            op = change.get("op")
            if op == "insert":
                if rid in rows:
                    problems.append(f"{name} row {rid} inserted twice")
                rows[rid] = current = {"id": rid, **row}
            elif op != "update" and op != "delete":
                problems.append(f"unknown operation {op!r}")
                continue
            elif (current := rows.get(rid)) is None:  # type: ignore[assignment]
                problems.append(f"{name} row {rid} changed before insert")
                continue
            elif op == "update":
                current.update(row)
            else:
                del rows[rid]
            changed(name, op, rid, current)  # type: ignore[arg-type]
        return problems

    def changed(self, table: str, op: str, rid: int, row: dict[str, Any]) -> None:
        """Hook for subclasses that keep indexes over the tables."""
