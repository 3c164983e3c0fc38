"""Reading the log: listing, inclusion and consistency proofs, checkpoints."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import LargeBinary, and_, column, select, text
from sqlalchemy import table as light_table

from cmi_console.core import merkle
from cmi_console.core.clock import check_window
from cmi_console.core.errors import BadInput, IntegrityError, NotFound
from cmi_console.core.names import did_you_mean
from cmi_console.services.context import Context
from cmi_console.store.artifacts import require_writable
from cmi_console.store.engine import check_page, escape_like, is_sqlite, write_transaction
from cmi_console.store.workspace import write_atomic

if TYPE_CHECKING:  # checkpoint pulls in cryptography: loaded by the commands that verify
    from cmi_console.core import checkpoint

# The columns of audit_entries that reads use, as a light table clause:
# building the SQLModel classes costs ~100 ms, a third of a short command's
# start (`cmi audit log`), and reads need none of them. test_schema checks
# these names against the real table.
E = light_table(
    "audit_entries",
    *(column(name) for name in ("seq", "prev", "hash", "time", "actor", "action", "subject")),
    column("body", LargeBinary),
)

# the one column of principals that a note about an empty listing reads
_PRINCIPALS = light_table("principals", column("name"))


# Every action the log holds, one index seek each (a loose index scan): a
# DISTINCT read all of a million-entry log's index. No parameters.
_ACTIONS = text(
    "WITH RECURSIVE a(x) AS (SELECT min(action) FROM audit_entries UNION ALL "
    "SELECT (SELECT min(action) FROM audit_entries WHERE action > a.x) FROM a "
    "WHERE a.x IS NOT NULL) SELECT x FROM a WHERE x IS NOT NULL"
)
_MODELS = light_table("models", column("name"))


def filter_notes(
    ctx: Context,
    *,
    actor: str | None = None,
    action: str | None = None,
    subject: str | None = None,
) -> list[str]:
    """Why a listing can be empty, filter by filter: one naming what no entry
    has (a principal, an action, a subject typed in another case or
    spelling). An investigator must not read "no entries" as "did nothing"
    when `--action gate.aprove` or `--subject version:Credit-Risk:2` was
    typed. A filter naming what exists says nothing."""
    notes = []
    with ctx.read() as conn:
        if actor is not None:
            names = [r[0] for r in conn.execute(select(_PRINCIPALS.c.name))]
            if actor not in names:
                near = [n for n in names if n.lower() == actor.lower()]
                notes.append(
                    f"no principal is named '{actor}'" + did_you_mean(next(iter(near), None))
                )
        if action is not None:
            actions = [r[0] for r in conn.execute(_ACTIONS)]
            stem = action.rstrip("*")
            if action.endswith("*") and not any(a.startswith(stem) for a in actions):
                notes.append(f"no entry's action starts with '{stem}'")
            elif not action.endswith("*") and action not in actions:
                near = difflib.get_close_matches(action.lower(), actions, n=1, cutoff=0.75)
                notes.append(
                    f"no entry has the action '{action}'" + did_you_mean(next(iter(near), None))
                )
        if subject is not None:
            sqlite = is_sqlite(ctx.engine)
            found = select(E.c.seq).where(_like_prefix(E.c.subject, subject, sqlite))
            if conn.execute(found.limit(1)).first() is None:
                models = [r[0] for r in conn.execute(select(_MODELS.c.name))]
                said = (
                    f"no entry's subject starts with '{subject.rstrip('*')}'"
                    if subject.endswith("*")
                    else f"no entry has the subject '{subject}'"
                )
                notes.append(said + did_you_mean(_subject_in_case(subject, models)))
    return notes


def _subject_in_case(subject: str, models: list[str]) -> str | None:
    """`subject` with a model's name written as the model has it
    (`version:Credit-Risk:2` -> `version:credit-risk:2`), if that changes it."""
    by_lower = {m.lower(): m for m in models}
    stem = subject.rstrip("*")
    parts = stem.split(":")
    fixed = [by_lower.get(p.lower(), p) for p in parts]
    return ":".join(fixed) + subject[len(stem) :] if fixed != parts else None


def _ledger() -> Any:
    from cmi_console.services import ledger

    return ledger


def _like_prefix(column: Any, pattern: str, sqlite: bool) -> Any:
    """`foo.*` or `foo*` filters by prefix (escaped, parametrized); else exact.

    On SQLite the prefix is also given as a range (`>= 'foo.'` and `< 'foo/'`,
    exact under its binary collation), which the column's index can serve:
    LIKE with ESCAPE cannot, and the planner then read all of a million-entry
    log (48 s cold) to find a rare action. PostgreSQL keeps LIKE alone: under
    a locale collation such a range would not be the same set.
    """
    if not pattern.endswith("*"):
        return column == pattern
    stem = pattern.rstrip("*")
    cond = column.like(escape_like(stem) + "%", escape="\\")
    if sqlite and stem:
        cond = and_(cond, column >= stem, column < stem[:-1] + chr(ord(stem[-1]) + 1))
    return cond


def _filtered(
    stmt: Any,
    sqlite: bool,
    *,
    actor: str | None = None,
    action: str | None = None,
    subject: str | None = None,
    since: str | None = None,
    until: str | None = None,
    before: int | None = None,
    after: int | None = None,
) -> Any:
    for name, value in (("actor", actor), ("action", action), ("subject", subject)):
        if value == "":  # an unset variable on the line listed every entry instead
            raise BadInput(f"--{name}: empty; leave the option out to list every {name}")
    if actor is not None:
        stmt = stmt.where(E.c.actor == actor)
    if action is not None:
        stmt = stmt.where(_like_prefix(E.c.action, action, sqlite))
    if subject is not None:
        stmt = stmt.where(_like_prefix(E.c.subject, subject, sqlite))
    check_window(since, until)
    if since:
        stmt = stmt.where(E.c.time >= since)
    if until:
        stmt = stmt.where(E.c.time < until)
    if before is not None:
        stmt = stmt.where(E.c.seq < before)
    if after is not None:
        stmt = stmt.where(E.c.seq > after)
    return stmt


def query(
    ctx: Context,
    *,
    limit: int = 50,
    offset: int = 0,
    oldest_first: bool = False,
    **filters: Any,
) -> list[dict[str, Any]]:
    """Entries matching the filters (actor, action, subject, since, until,
    before, after), newest first unless `oldest_first`."""
    check_page(limit, offset)
    stmt = _filtered(select(E.c.seq, E.c.hash, E.c.body), is_sqlite(ctx.engine), **filters)
    stmt = stmt.order_by(E.c.seq if oldest_first else E.c.seq.desc()).limit(limit).offset(offset)
    with ctx.read() as conn:
        rows = conn.execute(stmt).all()
    out = []
    for seq, h, body in rows:
        entry = orjson.loads(bytes(body))
        entry["hash"] = h
        entry["seq"] = seq
        out.append(entry)
    return out


def count(ctx: Context, **filters: Any) -> int:
    """How many entries match; with no filter, the log's size."""
    from sqlalchemy import func

    with ctx.read() as conn:
        if all(v is None for v in filters.values()):
            size = conn.execute(select(func.max(E.c.seq))).scalar()
            return 0 if size is None else int(size) + 1
        stmt = _filtered(select(func.count()).select_from(E), is_sqlite(ctx.engine), **filters)
        return int(conn.execute(stmt).scalar_one())


def get_entry(ctx: Context, seq: int) -> tuple[dict[str, Any], bytes]:
    with ctx.read() as conn:
        row = conn.execute(select(E.c.body).where(E.c.seq == seq)).first()
    if row is None:
        raise NotFound(f"entry {seq}: no such entry in the log")
    body = bytes(row[0])
    return orjson.loads(body), body


def _leaves(conn: Any, size: int) -> list[bytes]:
    rows = conn.execute(select(E.c.hash).where(E.c.seq < size).order_by(E.c.seq))
    return [bytes.fromhex(r[0]) for r in rows]


def _signed_head(conn: Any, ctx: Context) -> tuple[checkpoint.Checkpoint, str]:
    from cmi_console.core import checkpoint

    row = _ledger().latest_checkpoint(conn)
    if row is None:
        raise IntegrityError("the log has no checkpoint")
    ws = ctx.workspace
    cp = checkpoint.verify(row.note, ws.origin, ws.log_public(), where=f"checkpoint {row.id}")
    return cp, row.note


def prove(ctx: Context, seq: int) -> dict[str, Any]:
    """An RFC 9162 inclusion proof of entry `seq` in the latest signed checkpoint."""
    with ctx.read() as conn:
        cp, note = _signed_head(conn, ctx)
        if not 0 <= seq < cp.size:
            raise NotFound(f"entry {seq}: not in the signed log of size {cp.size}")
        leaves = _leaves(conn, cp.size)
        body = bytes(conn.execute(select(E.c.body).where(E.c.seq == seq)).scalar_one())
    leaf = merkle.leaf_hash(body)
    proof = merkle.inclusion_proof(seq, leaves)
    if not merkle.verify_inclusion(seq, cp.size, leaf, proof, cp.root):
        raise IntegrityError(f"entry {seq}: does not prove into the signed checkpoint")
    return {
        "seq": seq,
        "tree_size": cp.size,
        "leaf_hash": leaf.hex(),
        "proof": [p.hex() for p in proof],
        "root": cp.root.hex(),
        "checkpoint": note,
        "entry": body.decode(),
    }


def consistency(ctx: Context, old_note: str, where: str) -> dict[str, Any]:
    """Prove the current log extends an earlier checkpoint (RFC 9162 2.1.4)."""
    from cmi_console.core import checkpoint

    ws = ctx.workspace
    old = checkpoint.verify(old_note, ws.origin, ws.log_public(), where=where)
    with ctx.read() as conn:
        new, note = _signed_head(conn, ctx)
        if old.size > new.size:
            raise IntegrityError(
                f"{where}: covers {old.size} entries but the log has {new.size}: truncated"
            )
        leaves = _leaves(conn, new.size)
    if old.size == 0:
        proof: list[bytes] = []
        ok = True
    else:
        proof = merkle.consistency_proof(old.size, leaves)
        ok = merkle.verify_consistency(old.size, new.size, old.root, new.root, proof)
    if not ok:
        raise IntegrityError(f"{where}: the log at size {new.size} does not extend this checkpoint")
    return {
        "old_size": old.size,
        "new_size": new.size,
        "old_root": old.root.hex(),
        "new_root": new.root.hex(),
        "proof": [p.hex() for p in proof],
        "checkpoint": note,
        "consistent": True,
    }


def checkpoint_now(ctx: Context, out: Path | None = None) -> str:
    """The signed checkpoint of the whole log, also written to the witness dir."""
    if out is not None:
        require_writable(out, "--out")
    with write_transaction(ctx.engine) as conn:
        # before the seal's commit: a witness this process cannot write (a
        # read-only file system, another user's slots) refuses the command,
        # where found after it, it was an internal error with the seal committed
        ctx.workspace.witness.prepare()
        sealed = _ledger().seal(conn, ctx.note_signer(), ctx.clock())
        if sealed is None:
            row = _ledger().latest_checkpoint(conn)
            if row is None:
                raise IntegrityError("the log is empty and has no checkpoint")
            note, size = row.note, row.size
        else:
            note, size = sealed.note, sealed.size
    ctx.witness(note, size)
    if out is not None:
        try:
            write_atomic(out, note.encode())
        except OSError as exc:
            raise BadInput(f"{out}: cannot write ({exc.strerror})") from None
    return str(note)


def head(ctx: Context) -> dict[str, Any]:
    with ctx.read() as conn:
        size, last = _ledger().head(conn)
        row = _ledger().latest_checkpoint(conn)
    return {
        "size": size,
        "last_hash": last,
        "checkpoint_size": row.size if row else 0,
        "checkpoint_time": row.created_at if row else None,
    }
