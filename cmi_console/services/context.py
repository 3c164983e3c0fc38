"""The service context: who acts, on which workspace and database, and the
write transaction that records every change in the audit log."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from cmi_console.core import clock, entries
from cmi_console.core.credentials import credential_in, credential_url, holds_credential
from cmi_console.core.errors import BadInput, CmiError, Denied, Unavailable, first_line
from cmi_console.core.hooks import event_for
from cmi_console.store import driver, schema
from cmi_console.store.artifacts import Stored
from cmi_console.store.engine import (
    make_engine,
    read_transaction,
    refresh_statistics,
    server_time,
    write_transaction,
)
from cmi_console.store.workspace import Workspace, default_home

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from cmi_console.core.checkpoint import NoteSigner
    from cmi_console.services import ledger

# ledger and the table classes are imported where a write needs them: a
# read-only command then starts without building the SQLModel classes.
PassphraseSource = Callable[[str], bytes | None]
STATISTICS_AFTER = 1000  # entries in one batch after which the planner's statistics are refreshed
# fsyncs release the GIL: one thread overlaps an artifact's with the work of its commit
_SYNCER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cmi-fsync")
# the console's hook deliveries, one at a time in commit order; not daemon
# threads, so a console that quits still sends what it has committed
_DELIVERER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cmi-hooks")


def env_passphrase(_what: str) -> bytes | None:
    value = os.environ.get("CMI_KEY_PASSPHRASE")
    return value.encode() if value else None


@dataclass
class Context:
    workspace: Workspace
    engine: Engine
    actor: str | None = None
    clock: Callable[[], str] = clock.utc_now
    passphrase: PassphraseSource = env_passphrase
    _signers: dict[str, Ed25519PrivateKey] = field(default_factory=dict, repr=False)
    _log_key: Ed25519PrivateKey | None = field(default=None, repr=False)
    _note_signer: NoteSigner | None = field(default=None, repr=False)
    _last_seal: ledger.Seal | None = field(default=None, repr=False)  # this process's last
    # the write transaction this thread has open: the console shares one
    # Context between worker threads, and a connection must stay in its thread
    _local: threading.local = field(default_factory=threading.local, repr=False)
    # what a committed write could not finish (the witness not updated, a
    # hook's delivery that failed): not a failure of the call, so not
    # raised; the CLI prints them on stderr when the command ends, the
    # console shows them as notifications
    notices: list[str] = field(default_factory=list, repr=False)
    # the console's: hooks are sent on a thread of their own after the commit,
    # so a slow receiver (16 s with the default retries) never holds a
    # reviewer's decision on screen. The CLI sends them before it exits: a CI
    # job's step ends when its events are out.
    deliver_in_background: bool = False

    @classmethod
    def open(
        cls,
        home: Path | None = None,
        db: str | None = None,
        actor: str | None = None,
        *,
        check_schema: bool = True,
        **kwargs: Any,
    ) -> Context:
        ws = Workspace.open(home or default_home(), db)
        engine = make_engine(ws.database_url)
        if check_schema:
            schema.require_current(engine)
        return cls(workspace=ws, engine=engine, actor=actor, **kwargs)

    def require_actor(self) -> str:
        if not self.actor:
            raise BadInput("no acting principal: pass --as NAME or set CMI_USER")
        return self.actor

    def log_key(self) -> Ed25519PrivateKey:
        if self._log_key is None:
            self._log_key = self.workspace.log_key()
        return self._log_key

    def note_signer(self) -> NoteSigner:
        """The log key, as it signs checkpoints for this workspace's origin."""
        if self._note_signer is None:
            from cmi_console.core.checkpoint import NoteSigner

            self._note_signer = NoteSigner.of(self.workspace.origin, self.log_key())
        return self._note_signer

    def private_key(self, name: str) -> Ed25519PrivateKey:
        from cmi_console.core import keys
        from cmi_console.store.workspace import read_private

        if name not in self._signers:
            path = self.workspace.principal_key_path(name)
            try:
                pem = read_private(path)
            except OSError:
                raise Denied(f"{name}: no private key at {path}; cannot sign") from None
            secret = self.passphrase(str(path)) if keys.pem_is_encrypted(pem) else None
            self._signers[name] = keys.load_private(pem, secret, str(path))
        return self._signers[name]

    def key_is_encrypted(self, name: str) -> bool:
        """Whether `name`'s key on this machine asks for a passphrase; False
        when it cannot be read (missing, open to others, not a regular file):
        `private_key` then says why. Read as a key is: a FIFO there had frozen
        the console's sign-in."""
        from cmi_console.core import keys
        from cmi_console.store.workspace import read_private

        try:
            return keys.pem_is_encrypted(read_private(self.workspace.principal_key_path(name)))
        except (CmiError, OSError):
            return False

    def witness(self, note: str, size: int) -> None:
        """Write a committed checkpoint to the witness; a write that could
        not be made is a notice (the change stands)."""
        if (problem := self.workspace.witness.write(note, size)) is not None:
            self.notices.append(problem)

    def take_notices(self) -> list[str]:
        """The notices since the last call (worker threads may add more meanwhile)."""
        taken = []
        while self.notices:
            taken.append(self.notices.pop(0))
        return taken

    def forget_keys(self) -> None:
        """Drop unlocked private keys (the acting principal changed)."""
        self._signers.clear()

    @property
    def _open(self) -> _Open | None:
        return getattr(self._local, "open", None)

    @_open.setter
    def _open(self, value: _Open | None) -> None:
        self._local.open = value

    @property
    def _syncing(self) -> list[Future[None]]:
        """This thread's artifact fsyncs that its next commit must wait for."""
        if not hasattr(self._local, "syncing"):
            self._local.syncing = []
        return self._local.syncing  # type: ignore[no-any-return]

    @property
    def _stored(self) -> list[tuple[Stored, Path | bytes]]:
        """This thread's artifacts stored since its last transaction ended: a
        failed write removes the ones it put there and no row names."""
        if not hasattr(self._local, "stored"):
            self._local.stored = []
        return self._local.stored  # type: ignore[no-any-return]

    def put_artifact(self, source: Path | bytes) -> tuple[str, int]:
        """Copy a file (or bytes already read, as a data file's are) into the
        artifact store: durable before any commit names it.

        Inside `batch()` the fsync waits for the batch's commit, which syncs all
        of the batch's files at once."""
        store = self.workspace.artifacts
        stored = store.put_file(source, sync=False)
        digest, size = stored.digest, stored.size
        self._stored.append((stored, source))
        if self._open is None:
            # one call: the file's fsync runs while the transaction that names it
            # is built, and that transaction waits for it before it commits. Only
            # the fsync: the copy's many short system calls would pass the GIL to
            # and fro with the transaction's statements, slowing both
            self._syncing.append(_SYNCER.submit(store.sync, [digest]))
        else:
            self._open.unsynced.append(digest)
        return digest, size

    def read(self) -> Any:
        """A read snapshot; inside `batch()` the batch's own transaction, so a
        call sees what the calls before it wrote."""
        if self._open is not None:
            return nullcontext(self._open.conn)
        return reachable(read_transaction(self.engine))

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """One public service call: state, entry and checkpoint in one commit.

        Inside `batch()` the call joins the batch's transaction instead.
        """
        if self._open is not None:
            batch = self._open
            try:
                tx = Tx(self, batch)
                yield tx
                tx.finish()
            except BaseException:
                batch.failed = True  # its rows may be half written: the batch can't commit
                raise
            return
        with self._transaction() as opened:
            tx = Tx(self, opened)
            yield tx
            tx.finish()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Many service calls in one transaction: each still records its own
        entry, one checkpoint seals them all, and one commit (one fsync) makes
        them durable together. All or nothing: if any call fails, none lands."""
        if self._open is not None:
            yield
            return
        with self._transaction():
            yield

    @contextmanager
    def _transaction(self) -> Iterator[_Open]:
        from cmi_console.services import ledger

        sealed: ledger.Seal | None = None
        stored = self._stored
        try:
            with reachable(write_transaction(self.engine)) as conn:
                self._check_clock(conn)  # before _open is set: a refusal leaves none
                opened = _Open(conn, ledger.Tail.read(conn))
                self._open = opened
                try:
                    self._restore(opened, stored)
                    yield opened
                    if opened.failed:
                        raise RuntimeError("a call in this batch failed; the batch is rolled back")
                    pending = self._syncing
                    while pending:
                        pending.pop(0).result()  # an fsync error stops the commit
                    self.workspace.artifacts.sync(opened.unsynced)
                    if opened.tail.leaves:
                        self.workspace.witness.prepare()  # written after the commit
                        sealed = ledger.seal(
                            conn,
                            self.note_signer(),
                            opened.tail.stamp(self.clock()),
                            opened.tail,
                            self._last_seal,
                        )
                finally:
                    self._open = None
        except BaseException:
            self._discard_unnamed([s.digest for s, _ in stored if s.created])
            raise
        finally:
            stored.clear()
        if sealed is not None:
            self._last_seal = sealed
            # after commit: the witness must never be ahead of the database
            self.witness(sealed.note, sealed.size)
            if len(opened.tail.leaves) >= STATISTICS_AFTER:
                refresh_statistics(self.engine)  # a big batch changes the tables' shape
        if opened.outbox:  # after commit, never inside it
            if self.deliver_in_background:
                _DELIVERER.submit(self._deliver, opened.outbox)
            else:
                self._deliver(opened.outbox)

    def _deliver(self, ids: list[int]) -> None:
        """Send committed events to their hooks; a failure is said, not raised."""
        from cmi_console.services import hooks

        for sent in hooks.deliver(self, ids):
            if sent["status"] == "failed":
                self.notices.append(hooks.failed_notice(sent))

    def _check_clock(self, conn: Connection) -> None:
        """On a team's database, refuse to stamp the log from a host whose
        clock is far off the server's. Entries are never stamped before the
        one ahead of them (ledger.Tail.stamp), so one host an hour ahead had
        stamped everyone's entries for the next hour with its time. A clock
        given to the Context (the demo's history, tests) is not checked."""
        if self.clock is not clock.utc_now:
            return
        reference = server_time(conn)
        if reference is not None and (
            problem := clock.skew_problem(self.clock(), reference, "the database server's")
        ):
            raise Unavailable(problem)

    def _restore(self, opened: _Open, stored: list[tuple[Stored, Path | bytes]]) -> None:
        """Files stored before this transaction held the write lock may have
        been removed since by a failed write's clean-up (same bytes, so the
        same name): store them again before any row names them. A clean-up
        removes files only under the write lock, so once it is held here,
        what is in the store stays until the commit."""
        store = self.workspace.artifacts
        for i, (s, path) in enumerate(stored):
            if not store.has(s.digest):
                again = store.put_file(path, sync=False)
                if again.digest != s.digest:
                    raise BadInput(f"{path}: changed while it was being stored; try again")
                opened.unsynced.append(again.digest)
                stored[i] = (again, path)

    def _discard_unnamed(self, digests: list[str]) -> None:
        """After a failed write: remove the files it put in the store that no
        committed row names (a registration refused after its artifact was
        copied left the file behind). Under the write lock, so no other write
        can name one meanwhile; one stored before it took the lock is stored
        again by its `_restore`. Best effort: if this fails, the files stay,
        as they did before, and the error being raised is the one to report."""
        if not digests:
            return
        from cmi_console.store.tables import ARTIFACT_COLUMNS

        wanted = sorted(set(digests))
        try:
            with write_transaction(self.engine) as conn:
                named: set[str] = set()
                for tbl, column in ARTIFACT_COLUMNS:
                    col = tbl.c[column]
                    named.update(conn.execute(select(col).where(col.in_(wanted))).scalars())
                for digest in wanted:
                    if digest not in named:
                        self.workspace.artifacts.discard(digest)
        except Exception:  # noqa: S110 (see the docstring)
            pass


@contextmanager
def reachable(transaction: Any) -> Iterator[Connection]:
    """A transaction whose database errors (it is down, the connection
    dropped, a lock outlasted the wait) are `Unavailable`, one line and exit
    75, instead of an internal error; and, in the console, a notice instead
    of its end (a team's PostgreSQL restarting ended every reviewer's)."""
    try:
        with transaction as conn:
            yield conn
    except (OperationalError, InterfaceError) as exc:
        raise Unavailable(f"database: {first_line(exc.orig or exc)}") from None


@dataclass
class _Open:
    """The write transaction in progress and the log's tail as it sees it."""

    conn: Connection
    tail: ledger.Tail
    failed: bool = False
    unsynced: list[str] = field(default_factory=list)  # artifacts stored without fsync
    outbox: list[int] = field(default_factory=list)  # hook deliveries to send after commit


class Tx:
    """One service call's writes: records every row it touches for the log."""

    def __init__(self, ctx: Context, opened: _Open) -> None:
        self.ctx = ctx
        self.conn = opened.conn
        self._opened = opened
        self._tail = opened.tail
        self.changes: list[dict[str, Any]] = []
        self.entries: list[dict[str, Any]] = []
        self.time = opened.tail.stamp(ctx.clock())
        # model name -> its effective policy, as this call has read it (see effective_for)
        self._policies: dict[str, Any] = {}

    def finish(self) -> None:
        if self.changes:
            raise RuntimeError("changes recorded without an audit entry")

    def effective_for(self, model: Any) -> Any:
        """policies.effective_for of a models row, read once per call: the
        call's entry queues its hook deliveries by the same policy
        (`remembered_policy`), which was a second model and policy lookup on
        every registration. Forgotten when the call writes a policy or a model
        (its tier); no one else can write either while the call holds the
        write lock."""
        found = self._policies.get(model.name)
        if found is None:
            from cmi_console.services.policies import effective_for

            found = self._policies[model.name] = effective_for(self.conn, model)
        return found

    def remembered_policy(self, model: str) -> Any:
        """The effective policy this call read for `model`, if it read one."""
        return self._policies.get(model)

    def _writes(self, tbl: Table) -> None:
        if tbl.name in _POLICY_INPUTS:
            self._policies.clear()

    def insert(self, tbl: Table, values: dict[str, Any]) -> int:
        self._writes(tbl)
        row = complete_row(tbl, values)
        new_id = driver.insert_row(self.conn, tbl, row)
        self.changes.append({"t": tbl.name, "op": "insert", "id": new_id, "row": row})
        return int(new_id)  # type: ignore[arg-type]

    def insert_many(self, tbl: Table, values: list[dict[str, Any]]) -> list[int]:
        """Several rows (ids in the order given)."""
        if not values:
            return []
        self._writes(tbl)
        rows = [complete_row(tbl, v) for v in values]
        ids = driver.insert_rows(self.conn, tbl, rows)
        for new_id, row in zip(ids, rows, strict=True):
            self.changes.append({"t": tbl.name, "op": "insert", "id": new_id, "row": row})
        return ids

    def update(self, tbl: Table, row_id: int, values: dict[str, Any]) -> None:
        self._writes(tbl)
        _check_text(tbl, values)
        driver.update_row(self.conn, tbl, row_id, values)
        self.changes.append({"t": tbl.name, "op": "update", "id": row_id, "row": values})

    def delete(self, tbl: Table, row_id: int) -> None:
        self._writes(tbl)
        driver.delete_row(self.conn, tbl, row_id)
        self.changes.append({"t": tbl.name, "op": "delete", "id": row_id})

    def record(
        self, action: str, subject: str, data: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Append the entry for the changes so far; decisions are signed by the actor."""
        from cmi_console.services import ledger

        actor = self.ctx.require_actor()
        problem = credential_in(data or {})
        if problem:  # a comment or a reason the entry carries beside its rows
            raise BadInput(f"{action}: {problem}")
        signer = self.signer(actor) if action in entries.DECISION_ACTIONS else None
        entry = ledger.append(
            self.conn,
            self._tail,
            time=self.time,
            actor=actor,
            action=action,
            subject=subject,
            data=data or {},
            changes=self.changes,
            signer=signer,
        )
        self.changes = []
        self.entries.append(entry)
        event = event_for(action, entry["data"])
        if event is not None:
            from cmi_console.services import hooks

            self._opened.outbox += hooks.enqueue(self, entry, event)
        return entry

    def signer(self, actor: str) -> tuple[str, Ed25519PrivateKey]:
        from cmi_console.core import keys

        private = self.ctx.private_key(actor)
        kid = keys.key_id(keys.public_raw(private))
        from cmi_console.store.tables import Principal, PublicKey, table

        p, k = table(Principal), table(PublicKey)
        row = self.conn.execute(
            select(k.c.revoked_at)
            .join(p, p.c.id == k.c.principal_id)
            .where(k.c.key_id == kid, p.c.name == actor)
        ).first()
        if row is None:
            raise Denied(f"{actor}: the private key on this machine is not registered to {actor}")
        if row.revoked_at is not None:
            raise Denied(f"{actor}: signing key {kid[:16]} was revoked at {row.revoked_at}")
        return kid, private


# the tables an effective policy is read from (Tx.effective_for)
_POLICY_INPUTS = frozenset({"policies", "models"})
_REQUIRED = object()  # a column with no default that may not be null
_COLUMNS: dict[str, tuple[tuple[str, Any], ...]] = {}


def _columns(tbl: Table) -> tuple[tuple[str, Any], ...]:
    """(name, value when not given) of every column but the id; once per table."""
    found = _COLUMNS.get(tbl.name)
    if found is None:
        cols = []
        for col in tbl.columns:
            if col.primary_key and col.autoincrement is not False and col.name == "id":
                continue
            if col.default is not None and col.default.is_scalar:
                cols.append((col.name, col.default.arg))
            else:
                cols.append((col.name, None if col.nullable else _REQUIRED))
        found = _COLUMNS[tbl.name] = tuple(cols)
    return found


def complete_row(tbl: Table, values: dict[str, Any]) -> dict[str, Any]:
    """Every column but the id, with Python-side defaults, so the log has the whole row."""
    row = {name: values.get(name, absent) for name, absent in _columns(tbl)}
    if not values.keys() <= row.keys():
        raise TypeError(f"{tbl.name}: unknown columns {sorted(values.keys() - row.keys())}")
    for name, value in row.items():
        if value is _REQUIRED:
            raise TypeError(f"{tbl.name}.{name} needs a value")
    _check_text(tbl, row)
    return row


_LIMITS: dict[str, tuple[tuple[str, int], ...]] = {}


def _check_text(tbl: Table, values: dict[str, Any]) -> None:
    """Text longer than its column (VARCHAR(n)), or holding a NUL character,
    is bad input on every backend: PostgreSQL refused both (an internal
    error) while SQLite kept them, so the same call worked on one and failed
    on the other (an MLflow store's tags and descriptions reach columns).
    So is text holding a URL with a credential: the row goes into the log,
    which keeps it for good (a tag `data=https://user:token@host/...`, a
    description quoting a signed link)."""
    limits = _LIMITS.get(tbl.name)
    if limits is None:
        limits = _LIMITS[tbl.name] = tuple(
            (c.name, c.type.length)
            for c in tbl.columns
            if isinstance(getattr(c.type, "length", None), int)
        )
    for name, limit in limits:
        value = values.get(name)
        if isinstance(value, str):
            if len(value) > limit:
                raise BadInput(
                    f"{tbl.name}.{name}: at most {limit} characters ({len(value)} given)"
                )
            if "\x00" in value:
                raise BadInput(f"{tbl.name}.{name}: holds a NUL character")
            if url := credential_url(value):
                raise BadInput(holds_credential(f"{tbl.name}.{name}", url))
