"""The service context: who acts, on which workspace and database, and the
write transaction that records every change in the audit log."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.engine import Connection, Engine

from cmi_console.core import clock, entries, keys
from cmi_console.core.errors import BadInput, Denied
from cmi_console.services import ledger
from cmi_console.store import schema
from cmi_console.store.engine import make_engine, read_transaction, write_transaction
from cmi_console.store.tables import Principal, PublicKey, table
from cmi_console.store.workspace import Workspace, default_home

PassphraseSource = Callable[[str], bytes | None]


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

    def private_key(self, name: str) -> Ed25519PrivateKey:
        if name not in self._signers:
            path = self.workspace.principal_key_path(name)
            try:
                pem = path.read_bytes()
            except OSError:
                raise Denied(f"{name}: no private key at {path}; cannot sign") from None
            secret = self.passphrase(str(path)) if keys.pem_is_encrypted(pem) else None
            self._signers[name] = keys.load_private(pem, secret, str(path))
        return self._signers[name]

    def forget_keys(self) -> None:
        """Drop unlocked private keys (the acting principal changed)."""
        self._signers.clear()

    def read(self) -> Any:
        return read_transaction(self.engine)

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """One public service call: state, entries and checkpoint in one commit."""
        sealed: tuple[str, int] | None = None
        with write_transaction(self.engine) as conn:
            tx = Tx(self, conn)
            yield tx
            if tx.changes:
                raise RuntimeError("changes recorded without an audit entry")
            if tx.entries:
                sealed = ledger.seal(conn, self.workspace.origin, self.log_key(), self.clock())
        if sealed is not None:
            # after commit: the witness must never be ahead of the database
            self.workspace.write_witness(*sealed)


class Tx:
    """A write transaction that records every row it touches for the log."""

    def __init__(self, ctx: Context, conn: Connection) -> None:
        self.ctx = ctx
        self.conn = conn
        self.changes: list[dict[str, Any]] = []
        self.entries: list[dict[str, Any]] = []
        self.time = ctx.clock()

    def insert(self, tbl: Table, values: dict[str, Any]) -> int:
        row = _complete(tbl, values)
        new_id = self.conn.execute(insert(tbl).values(row)).inserted_primary_key[0]
        self.changes.append({"t": tbl.name, "op": "insert", "id": new_id, "row": row})
        return int(new_id)

    def update(self, tbl: Table, row_id: int, values: dict[str, Any]) -> None:
        self.conn.execute(update(tbl).where(tbl.c.id == row_id).values(values))
        self.changes.append({"t": tbl.name, "op": "update", "id": row_id, "row": values})

    def delete(self, tbl: Table, row_id: int) -> None:
        self.conn.execute(delete(tbl).where(tbl.c.id == row_id))
        self.changes.append({"t": tbl.name, "op": "delete", "id": row_id})

    def record(
        self, action: str, subject: str, data: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Append the entry for the changes so far; decisions are signed by the actor."""
        actor = self.ctx.require_actor()
        signer = self.signer(actor) if action in entries.DECISION_ACTIONS else None
        entry = ledger.append(
            self.conn,
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
        return entry

    def signer(self, actor: str) -> tuple[str, Ed25519PrivateKey]:
        private = self.ctx.private_key(actor)
        kid = keys.key_id(keys.public_raw(private))
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


def _complete(tbl: Table, values: dict[str, Any]) -> dict[str, Any]:
    """Every column but the id, with Python-side defaults, so the log has the whole row."""
    row: dict[str, Any] = {}
    for col in tbl.columns:
        if col.primary_key and col.autoincrement is not False and col.name == "id":
            continue
        if col.name in values:
            row[col.name] = values[col.name]
        elif col.default is not None and col.default.is_scalar:
            row[col.name] = col.default.arg
        elif col.nullable:
            row[col.name] = None
        else:
            raise TypeError(f"{tbl.name}.{col.name} needs a value")
    unknown = set(values) - set(row)
    if unknown:
        raise TypeError(f"{tbl.name}: unknown columns {sorted(unknown)}")
    return row
