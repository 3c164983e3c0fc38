"""The registry rebuilt from the log: each entry's `changes`, applied in order.

`audit verify` compares the result with the tables; `registry as-of` stops at
an instant and shows what was true then. Pure: no database.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class RegistryState:
    """Tables as dicts of id -> row, built only from logged changes."""

    def __init__(self, table_names: Iterable[str]) -> None:
        self.tables: dict[str, dict[int, dict[str, Any]]] = {t: {} for t in table_names}

    def apply(self, changes: Iterable[dict[str, Any]]) -> list[str]:
        """Apply one entry's changes; return what was wrong with them (if anything).

        `changes` comes from an entry that may have been forged, so its shape is
        checked, not assumed."""
        if not isinstance(changes, list | tuple):
            return ["changes is not a list"]
        problems = []
        for change in changes:
            if (
                not isinstance(change, dict)
                or not isinstance(change.get("row", {}), dict)
                or not isinstance(change.get("id"), int)
            ):
                problems.append("a change is not an object with an integer id and an object row")
                continue
            name = change.get("t")
            rows = self.tables.get(name)  # type: ignore[arg-type]
            if rows is None:
                problems.append(f"unknown table {name!r}")
                continue
            op, rid = change.get("op"), change.get("id")
            if op == "insert":
                if rid in rows:
                    problems.append(f"{name} row {rid} inserted twice")
                rows[rid] = {"id": rid, **change.get("row", {})}  # type: ignore[index]
            elif op in ("update", "delete") and rid not in rows:
                problems.append(f"{name} row {rid} changed before insert")
                continue
            elif op == "update":
                rows[rid].update(change.get("row", {}))  # type: ignore[index]
            elif op == "delete":
                self.changed(name, op, rid, rows.pop(rid))  # type: ignore[arg-type]
                continue
            else:
                problems.append(f"unknown operation {op!r}")
                continue
            self.changed(name, op, rid, rows[rid])  # type: ignore[arg-type,index]
        return problems

    def changed(self, table: str, op: str, rid: int, row: dict[str, Any]) -> None:
        """Hook for subclasses that keep indexes over the tables."""
