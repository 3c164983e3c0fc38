"""The statements of every write, run straight on the DB-API driver.

A registration is a dozen statements. Through SQLAlchemy's execution
machinery each one costs ~40 us of Python before the driver sees it: more
than SQLite takes to run it, and together more than the commit's fsync. The
statements on that path are `Prepared` here: SQLAlchemy Core compiles each
once per dialect, and every run after that goes to a cursor of the caller's
own connection (so inside its transaction), with SQLAlchemy's own bind and
result processors for the columns' types, so a value is written and read
back exactly as through SQLAlchemy. Statements off the hot path keep going
through SQLAlchemy; parameters are always passed separately, never formatted
into the text. Scans of a million rows (`stream_rows`) come here too.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, update
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.base import Executable

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positional: bool  # qmark (SQLite): a tuple in `names` order; else a dict
    names: tuple[str, ...]
    defaults: dict[str, Any]  # literal binds SQLAlchemy put in the text, e.g. LIMIT
    binds: tuple[tuple[str, Processor], ...]  # per-type conversions (JSON, booleans)
    row: Any  # a namedtuple class for a statement that returns rows, else None
    results: tuple[tuple[int, Processor], ...]


class Prepared:
    """A Core statement, compiled once per dialect and run on the driver."""

    def __init__(self, stmt: Executable) -> None:
        self.stmt = stmt
        self._compiled: dict[str, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        key = f"{dialect.name}+{dialect.driver}"
        found = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = _compile(self.stmt, dialect)
        return found


def _compile(stmt: Executable, dialect: Dialect) -> _Compiled:
    compiled = stmt.compile(dialect=dialect)  # type: ignore[attr-defined]
    positional = bool(compiled.positional)
    defaults: dict[str, Any] = {}
    binds = []
    for param, name in compiled.bind_names.items():
        if not param.required:
            defaults[name] = param.effective_value
        process = param.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            binds.append((name, process))
    names = tuple(compiled.positiontup or ()) if positional else ()
    row, results = None, []
    returned = getattr(stmt, "selected_columns", None)
    if returned is None and getattr(stmt, "_returning", ()):
        returned = stmt.exported_columns  # type: ignore[attr-defined]
    if returned is not None:
        row = _row_class(list(returned.keys()))
        for i, col in enumerate(returned):
            process = col.type.dialect_impl(dialect).result_processor(dialect, None)
            if process is not None:
                results.append((i, process))
    return _Compiled(
        compiled.string, positional, names, defaults, tuple(binds), row, tuple(results)
    )


def _row_class(names: list[str]) -> Any:
    """A tuple with attribute access and `_mapping`, as SQLAlchemy's Row has."""
    base = namedtuple("Row", names, rename=True)  # type: ignore[misc]
    return type("Row", (base,), {"__slots__": (), "_mapping": property(base._asdict)})


def _params(c: _Compiled, params: dict[str, Any]) -> Any:
    values = {**c.defaults, **params} if c.defaults else dict(params)
    for name, process in c.binds:
        if name in values:
            values[name] = process(values[name])
    if c.positional:
        return tuple([values[n] for n in c.names])
    return values


def _cursor(conn: Connection, **kwargs: Any) -> Any:
    raw = conn.connection.dbapi_connection
    assert raw is not None  # an open Connection always has one
    return raw.cursor(**kwargs)


def _row(c: _Compiled, raw: Any) -> Any:
    if c.results:
        raw = list(raw)
        for i, process in c.results:
            raw[i] = process(raw[i])
    return c.row._make(raw)


def execute(conn: Connection, prepared: Prepared, params: dict[str, Any]) -> Any:
    """Run a statement; returns the cursor (for DML, `lastrowid` on SQLite)."""
    c = prepared.compiled(conn.dialect)
    cursor = _cursor(conn)
    cursor.execute(c.sql, _params(c, params))
    return cursor


def all_rows(
    conn: Connection, prepared: Prepared, params: dict[str, Any] | None = None
) -> list[Any]:
    c = prepared.compiled(conn.dialect)
    return [_row(c, raw) for raw in execute(conn, prepared, params or {}).fetchall()]


def first(conn: Connection, prepared: Prepared, params: dict[str, Any] | None = None) -> Any:
    """The first row, or None."""
    raw = execute(conn, prepared, params or {}).fetchone()
    return None if raw is None else _row(prepared.compiled(conn.dialect), raw)


def scalar(conn: Connection, prepared: Prepared, params: dict[str, Any] | None = None) -> Any:
    """The first column of the first row, or None."""
    row = first(conn, prepared, params)
    return None if row is None else row[0]


# --- scans too large for SQLAlchemy's rows -----------------------------------


def stream_rows(
    conn: Connection, sql: str, params: tuple[Any, ...] = (), size: int = 20_000
) -> Iterator[list[Any]]:
    """Rows of a query in lists of `size`, straight from the driver.

    `sql` marks each parameter with `?`; it is rewritten to the driver's
    style, and the values are always passed separately (never formatted in).

    For a million-row scan the per-row cost of a SQLAlchemy result is larger
    than the work done on the row. PostgreSQL gets a server-side cursor, so
    memory stays at one list whatever the table's size.
    """
    sqlite = conn.dialect.name == "sqlite"
    cursor = _cursor(conn) if sqlite else _cursor(conn, name="cmi_stream")
    try:
        cursor.execute(sql if sqlite else sql.replace("?", "%s"), params)
        while rows := cursor.fetchmany(size):
            yield rows
    finally:
        cursor.close()


# --- row writes, as the service layer's Tx makes them ------------------------

_WRITES: dict[tuple[Any, ...], Prepared] = {}


def _typed(tbl: Table, names: Any) -> dict[str, Any]:
    return {n: bindparam(n, type_=tbl.c[n].type) for n in names}


def _write(key: tuple[Any, ...], build: Callable[[], Executable]) -> Prepared:
    """Statements keyed by table and columns, built once per process."""
    found = _WRITES.get(key)
    if found is None:
        found = _WRITES[key] = Prepared(build())
    return found


def _insert(conn: Connection, tbl: Table, columns: tuple[str, ...]) -> Prepared:
    # SQLite hands the new id over as lastrowid; PostgreSQL returns it
    returning = conn.dialect.name != "sqlite" and "id" in tbl.c
    return _write(
        ("insert", tbl.name, columns, returning),
        lambda: (
            insert(tbl).values(_typed(tbl, columns)).returning(tbl.c.id)
            if returning
            else insert(tbl).values(_typed(tbl, columns))
        ),
    )


def insert_row(conn: Connection, tbl: Table, row: dict[str, Any]) -> int | None:
    """Insert one row; its new id (None for a table whose key is given)."""
    prepared = _insert(conn, tbl, tuple(row))
    cursor = execute(conn, prepared, row)
    if "id" not in tbl.c:
        return None
    return int(cursor.lastrowid if conn.dialect.name == "sqlite" else cursor.fetchone()[0])


def insert_rows(conn: Connection, tbl: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert rows with the same columns; their new ids, in the order given."""
    if not rows:
        return []
    prepared = _insert(conn, tbl, tuple(rows[0]))
    c = prepared.compiled(conn.dialect)
    cursor = _cursor(conn)
    if conn.dialect.name == "sqlite":
        ids = []
        for row in rows:  # each insert is a few microseconds in-process
            cursor.execute(c.sql, _params(c, row))
            ids.append(int(cursor.lastrowid))
        return ids
    # psycopg pipelines the rows in one round trip and keeps one result per row
    cursor.executemany(c.sql, [_params(c, row) for row in rows], returning=True)
    ids = [int(cursor.fetchone()[0])]
    while cursor.nextset():
        ids.append(int(cursor.fetchone()[0]))
    return ids


def update_row(conn: Connection, tbl: Table, row_id: int, values: dict[str, Any]) -> None:
    columns = tuple(values)
    prepared = _write(
        ("update", tbl.name, columns),
        lambda: (
            update(tbl)
            .where(tbl.c.id == bindparam("row_id_", type_=tbl.c.id.type))
            .values(_typed(tbl, columns))
        ),
    )
    _one_row(execute(conn, prepared, {**values, "row_id_": row_id}), "update", tbl, row_id)


def delete_row(conn: Connection, tbl: Table, row_id: int) -> None:
    prepared = _write(
        ("delete", tbl.name),
        lambda: delete(tbl).where(tbl.c.id == bindparam("row_id_", type_=tbl.c.id.type)),
    )
    _one_row(execute(conn, prepared, {"row_id_": row_id}), "delete", tbl, row_id)


class NoSuchRow(LookupError):
    """An update or delete found no row: a bug in the caller, never input."""


def _one_row(cursor: Any, op: str, tbl: Table, row_id: int) -> None:
    # the audit entry records this change: one that did not happen would make
    # the log disagree with the tables (a repeated delete had done so), so the
    # whole transaction fails instead
    if cursor.rowcount != 1:
        raise NoSuchRow(f"{op} {tbl.name} row {row_id}: no such row")
