"""Engines for SQLite and PostgreSQL, and the write transaction discipline.

SQLite: WAL, synchronous=FULL, and BEGIN IMMEDIATE for writes, so two writers
never read the same log head. PostgreSQL: every write transaction first takes
one transaction-scoped advisory lock, which serializes appends; the unique
constraints on seq and prev stop a fork even if the lock is bypassed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from cmi_console.core.credentials import query_scrubbed
from cmi_console.core.errors import BadInput, Unavailable

# Fixed key for pg_advisory_xact_lock: "cmi-log" as an integer.
LOG_LOCK_KEY = 0x636D692D6C6F67
# how long a writer waits for another to let go of the log, on either backend
# (SQLite's busy timeout, PostgreSQL's lock_timeout for the log's lock)
LOCK_WAIT_SECONDS = 60


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            engine = create_engine(
                _readable_where_it_is(url), connect_args={"timeout": LOCK_WAIT_SECONDS}
            )
            _sqlite_discipline(engine)
        elif url.startswith("postgresql"):
            engine = create_engine(with_connect_timeout(url), pool_pre_ping=True)
        else:
            raise BadInput(f"database url: unsupported scheme in '{redacted(url)}'")
    except (ArgumentError, NoSuchModuleError) as exc:
        raise BadInput(f"database url '{redacted(url)}': {exc}") from None
    except ModuleNotFoundError as exc:
        raise BadInput(
            f"database url '{redacted(url)}': driver {exc.name} is not installed "
            "(pip install 'cmi-console[postgres]')"
        ) from None
    return engine


# seconds to wait for a PostgreSQL server to accept and answer a connection:
# libpq waits for ever by default, so a server that accepted the connection
# and then said nothing (hung, or behind a firewall that swallows its
# packets) held every command, and every CI job, until someone killed it
CONNECT_TIMEOUT = 10


def with_connect_timeout(url: str) -> URL:
    """`url` with libpq's connect_timeout, unless it names one: carried in the
    URL, so every connection made from it (verify's workers too) has it."""
    parsed = make_url(url)
    if "connect_timeout" in parsed.query:
        return parsed
    return parsed.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT)})


def _readable_where_it_is(url: str) -> str:
    """`url`; for a database file on a read-only file system (an evidence
    copy, read-only media), the URL that reads it there. SQLite opens a WAL
    database only where it can make the -shm file beside it, unless told
    the file cannot change (`immutable`); with changes still in the -wal
    file it must also read those, which needs the -shm file (SQLite's
    "read-only WAL databases"). Either is opened read-only: `write_transaction`
    refuses to write to it."""
    parsed = make_url(url)
    path = parsed.database
    if not path or path == ":memory:" or path.startswith("file:") or parsed.query:
        return url  # an in-memory database, or a URI the caller composed
    path = os.path.abspath(path)
    try:
        if not os.statvfs(os.path.dirname(path)).f_flag & os.ST_RDONLY:
            return url
    except OSError:  # no such directory: the open says so
        return url
    wal, shm = f"{path}-wal", f"{path}-shm"
    pending = os.path.exists(wal) and os.path.getsize(wal) > 0
    if pending and not os.path.exists(shm):
        raise BadInput(
            f"{path}: on a read-only file system, with changes in {wal} that SQLite "
            f"reads only with {shm} beside it; copy the workspace to writable storage"
        )
    how = "mode=ro" if pending else "mode=ro&immutable=1"
    return f"sqlite:///file:{quote(path)}?{how}&uri=true"


def sqlite_file(engine: Engine) -> tuple[str, str]:
    """A SQLite engine's database file and how a reader opens it ("mode=ro",
    or with `immutable` on a read-only file system)."""
    database = str(engine.url.database)
    if not database.startswith("file:"):
        return os.path.abspath(database), "mode=ro"
    query = "&".join(f"{k}={v}" for k, v in engine.url.query.items() if k != "uri")
    return unquote(database.removeprefix("file:")), query or "mode=ro"


def refuse_read_only(engine: Engine) -> None:
    """BadInput for a database opened read-only, before anything is tried."""
    if is_sqlite(engine) and engine.url.query.get("mode") == "ro":
        raise BadInput(
            f"database {sqlite_file(engine)[0]}: opened read-only (a read-only file "
            "system, or a URI that asks for it): it can be read, not written; nothing "
            "was written"
        )


def has_password(url: str) -> bool:
    """A password in the user information, or in the query (libpq takes
    `?password=`, which had been written to workspace.json and printed)."""
    return _userinfo_password(url) or query_scrubbed(url) != url


def _userinfo_password(url: str) -> bool:
    rest = url.partition("://")[2]
    return "@" in rest and ":" in rest.split("@", 1)[0]


def redacted(url: str) -> str:
    """Never print a password (DESIGN.md: secrets never go into logs)."""
    if _userinfo_password(url):
        scheme, sep, rest = url.partition("://")
        user = rest.split("@", 1)[0].split(":", 1)[0]
        url = f"{scheme}{sep}{user}:***@{rest.split('@', 1)[1]}"
    return query_scrubbed(url)


def _sqlite_discipline(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={LOCK_WAIT_SECONDS * 1000}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("cmi_write", False)
        # on the driver: every transaction pays this, and exec_driver_sql's
        # execution context costs ten times the statement
        conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
            "BEGIN IMMEDIATE" if write else "BEGIN"
        )


# The lock, then the server's clock as it stands once the lock is held (in
# that order: the CTE's row exists only once the lock is taken), in one round
# trip: a team's hosts stamp the log, and the server's clock is the one they
# share (see `server_time`).
# The wait is bounded as SQLite's is: PostgreSQL waits for a lock for ever by
# default, so one writer stopped inside its transaction (a ^Z, a hung host)
# held every other, and every CI job, for good. set_config(..., true) lasts
# to the transaction's end and comes first, in the same round trip.
_LOCK = text(
    "WITH waiting AS MATERIALIZED (SELECT set_config('lock_timeout', :wait, true)), "
    "locked AS MATERIALIZED (SELECT pg_advisory_xact_lock(:key) FROM waiting) "
    "SELECT clock_timestamp() FROM locked"
)
SERVER_TIME = "cmi_server_time"  # where the connection keeps it: conn.info


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One serialized write transaction: commit on success, roll back on error."""
    refuse_read_only(engine)
    with engine.connect() as conn:
        conn = conn.execution_options(cmi_write=True)
        with conn.begin():
            if not is_sqlite(engine):
                conn.info[SERVER_TIME] = _take_log_lock(conn)
            yield conn


def _take_log_lock(conn: Connection) -> Any:
    """PostgreSQL: the log's lock, then the server's clock."""
    from sqlalchemy.exc import OperationalError

    wait = {"key": LOG_LOCK_KEY, "wait": f"{LOCK_WAIT_SECONDS}s"}
    try:
        return conn.execute(_LOCK, wait).scalar_one()
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        raise Unavailable(
            f"database: another writer has held the log for {LOCK_WAIT_SECONDS} s; "
            "nothing was written, try again"
        ) from None


def server_time(conn: Connection) -> Any:
    """The database server's clock when this write transaction took the log's
    lock (an aware datetime); None on SQLite, whose clock is this host's."""
    return conn.info.get(SERVER_TIME) if not is_sqlite(conn.engine) else None


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A consistent snapshot for reads that span several statements."""
    with engine.connect() as conn:
        if not is_sqlite(engine):
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern with ESCAPE '\\'."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


MAX_PAGE = 100_000


def check_page(limit: int, offset: int = 0) -> None:
    """A listing's LIMIT and OFFSET, checked before the query: PostgreSQL
    refuses a negative OFFSET (an internal error), where SQLite ignored it."""
    if not 1 <= limit <= MAX_PAGE:
        raise BadInput(f"--limit: must be between 1 and {MAX_PAGE}")
    if offset < 0:
        raise BadInput("--offset: must not be negative")


def refresh_statistics(engine: Engine) -> None:
    """Let SQLite's planner know the tables' shapes (PostgreSQL's autovacuum
    does this by itself). Without statistics SQLite took a metric range as
    selective and a tag-and-metric search cost 160 ms at 100,000 versions;
    with them, 13 ms. Sampled (analysis_limit), so ~10 ms at that size."""
    if not is_sqlite(engine):
        return
    with write_transaction(engine) as conn:
        conn.exec_driver_sql("PRAGMA analysis_limit=1000")
        conn.exec_driver_sql("ANALYZE")
