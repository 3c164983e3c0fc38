"""`cmi audit verify`: the log, its checkpoints and witness, decision
signatures, and the registry state rebuilt from the log against the tables.

One streaming pass over the log; memory is the replayed registry state plus
O(log n) for the tree.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import JSON, Table

from cmi_console.core import checkpoint, entries, keys, log_scan, roles, statements
from cmi_console.core.errors import BadInput, IntegrityError
from cmi_console.core.gc_pause import gc_paused
from cmi_console.core.log_scan import ChunkScan
from cmi_console.core.merkle import CompactRange
from cmi_console.core.replay import RegistryState
from cmi_console.core.signature_checks import SignatureChecks
from cmi_console.services.context import Context
from cmi_console.store import verify_worker
from cmi_console.store.driver import stream_rows
from cmi_console.store.engine import is_sqlite, sqlite_file
from cmi_console.store.triggers import missing_triggers

MAX_FINDINGS = log_scan.MAX_FINDINGS
# rows per chunk: a power of two, so every chunk is a Merkle subtree
CHUNK = 1 << 14
# below this, starting worker processes (~0.1 s) costs more than it saves
PARALLEL_FROM = 1 << 16
# registry rows compared with the log per batch
STATE_BATCH = 20_000


@dataclass
class Finding:
    kind: str
    message: str
    seq: int | None = None
    table: str | None = None
    row_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def __str__(self) -> str:
        where = f"entry {self.seq}" if self.seq is not None else ""
        if self.table is not None:
            where = f"{self.table} row {self.row_id}"
        return f"{self.kind}: {where + ': ' if where else ''}{self.message}"


@dataclass
class VerifyReport:
    entries: int = 0
    signatures: int = 0
    checkpoints: int = 0
    rows: int = 0
    root: str = ""
    covered: int = 0
    witness_size: int | None = None
    workers: int = 1  # processes that scanned the log
    artifacts: int | None = None  # distinct artifacts re-hashed (--artifacts)
    # entries stamped before the entry ahead of them (log_scan.ChunkScan.earlier)
    stamped_out_of_order: int = 0
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "findings"}
        out["ok"] = self.ok
        out["findings"] = [f.as_json() for f in self.findings]
        return out


class _State(RegistryState):
    """The registry as the log says it is, plus the key and role indexes."""

    def __init__(self, tables: Iterable[str]) -> None:
        super().__init__(tables)
        # principal id -> its grant rows (the same dicts as in tables, so an
        # update is seen at once): a decision's role check costs O(its grants)
        self.grants: dict[int, dict[int, dict[str, Any]]] = {}
        self._keys: dict[str, tuple[str, bytes, str | None] | None] = {}
        self._pids: dict[str, int | None] = {}

    def changed(self, table: str, op: str, rid: int, row: dict[str, Any]) -> None:
        """Keep the indexes in step with a replayed change."""
        if table in ("principals", "public_keys"):
            self._keys.clear()
            self._pids.clear()
        elif table == "role_grants":
            for held in self.grants.values():  # an update may move it (few principals)
                held.pop(rid, None)
            if op != "delete":
                self.grants.setdefault(row.get("principal_id"), {})[rid] = row  # type: ignore[arg-type]

    def key(self, key_id: str) -> tuple[str, bytes, str | None] | None:
        if key_id not in self._keys:
            self._keys[key_id] = self._key(key_id)
        return self._keys[key_id]

    def _key(self, key_id: str) -> tuple[str, bytes, str | None] | None:
        for row in self.tables["public_keys"].values():
            if row["key_id"] == key_id:
                owner = self.tables["principals"].get(row["principal_id"])
                name = owner["name"] if owner else ""
                return name, keys.unb64(row["public_key"], "public key"), row["revoked_at"]
        return None

    def roles(self, name: str) -> set[str]:
        if name not in self._pids:
            self._pids[name] = next(
                (i for i, r in self.tables["principals"].items() if r["name"] == name), None
            )
        held = self.grants.get(self._pids[name], {})  # type: ignore[arg-type]
        return {g["role"] for g in held.values() if g["revoked_at"] is None}


def _registry_tables() -> dict[str, Table]:
    from cmi_console.store.tables import REGISTRY_TABLES

    return REGISTRY_TABLES


def _preload_tables() -> None:
    """Build the SQLModel table classes (~0.2 s) on a thread while the worker
    processes read their first chunks and this thread only waits for them;
    started any earlier, the import holds the GIL against verify's own
    queries (measured: 20 ms of them took up to 0.7 s)."""
    threading.Thread(target=_registry_tables, name="cmi-verify-tables", daemon=True).start()


def _dense(conn: Any, total: int) -> bool:
    """True when the seqs are exactly 0..total-1, so a chunk is a seq range."""
    # two subqueries: SQLite answers a lone min() or max() from the index but
    # scans the whole table for both in one SELECT (75 ms at a million entries)
    low, high = conn.exec_driver_sql(
        "SELECT (SELECT min(seq) FROM audit_entries), (SELECT max(seq) FROM audit_entries)"
    ).one()
    return bool(low == 0 and high == total - 1)


def _worker_db(conn: Any) -> dict[str, str]:
    url = conn.engine.url
    if is_sqlite(conn.engine):
        path, how = sqlite_file(conn.engine)
        return {"sqlite": path, "open": how}
    return {"postgresql": url.set(drivername="postgresql").render_as_string(hide_password=False)}


class _Verifier:
    def __init__(
        self,
        ctx: Context,
        progress: Callable[[int, int], None] | None,
        workers: int | None = None,
    ) -> None:
        self.ctx = ctx
        self.progress = progress
        self.workers = workers
        self.report = VerifyReport()

    @functools.cached_property
    def state(self) -> _State:
        return _State(_registry_tables())

    def find(self, kind: str, message: str, **where: Any) -> None:
        if len(self.report.findings) < MAX_FINDINGS:
            self.report.findings.append(Finding(kind, message, **where))

    def run(self) -> VerifyReport:
        ws = self.ctx.workspace
        origin, log_public = ws.origin, ws.log_public()
        # the witness first, then the snapshot: a writer witnesses a size only
        # after its commit, so a witness read before the snapshot never claims
        # more than the snapshot holds. Read after it, a write committed in
        # between made a healthy, growing log look cut short (exit 4).
        witnessed = self._witnesses(origin, log_public)
        with self.ctx.read() as conn:
            for name in missing_triggers(conn):
                self.find("trigger-missing", f"append-only trigger {name} is gone")
            total = conn.exec_driver_sql("SELECT count(*) FROM audit_entries").scalar_one()
            cps = conn.exec_driver_sql(
                "SELECT id, size, root, note FROM checkpoints ORDER BY size, id"
            ).all()
            expected: dict[int, list[Any]] = {}
            for cp in cps:
                expected.setdefault(cp.size, []).append(cp)
            for witness in witnessed:
                expected.setdefault(witness.size, []).append(witness)
            rng = self._entries(conn, total, expected, origin, log_public)
            self._coverage(cps, rng.size, origin, log_public)
            self._state(conn)
        self.report.entries = rng.size
        self.report.root = rng.root().hex()
        self.report.checkpoints = len(cps)
        return self.report

    def _witnesses(self, origin: str, public: bytes) -> list[checkpoint.Checkpoint]:
        """Every valid witnessed checkpoint; a torn slot is tolerated while another
        slot still verifies, but with none valid the witness was tampered with."""
        valid = []
        notes, errors = self.ctx.workspace.witness.read_checked()
        for note in notes:
            try:
                valid.append(checkpoint.verify(note, origin, public, where="witness checkpoint"))
            except (BadInput, IntegrityError) as exc:
                errors.append(exc.message)
        if errors and not valid:
            self.find("witness-invalid", errors[0])
        if valid:
            self.report.witness_size = max(cp.size for cp in valid)
        return valid

    def _entries(
        self,
        conn: Any,
        total: int,
        expected: dict[int, list[Any]],
        origin: str,
        public: bytes,
    ) -> CompactRange:
        rng = CompactRange()
        mark = len(self.report.findings)
        self.signatures = SignatureChecks()
        first_earlier = None
        try:
            for part in self._scans(conn, total, set(expected)):
                if part.start != rng.size:  # chunks must arrive in log order
                    raise verify_worker.WorkerFailed(f"chunk at {part.start}, expected {rng.size}")
                if part.earlier:
                    self.report.stamped_out_of_order += part.earlier
                    if first_earlier is None:
                        first_earlier = part.first_earlier
                for kind, message, seq in part.findings:
                    self.find(kind, message, seq=seq)
                for seq, obj in part.forward:
                    if entries.claims_decision(obj):
                        self._signature(seq, obj, genesis=seq == 0)
                    else:
                        self._apply(seq, obj)
                for size, cut in part.cuts.items():
                    upto = rng.copy()
                    upto.append_range(cut)
                    self._compare(upto.root(), expected.pop(size), origin, public)
                rng.append_range(part.rng)
                if self.progress:
                    self.progress(rng.size, total)
        finally:
            bad = self.signatures.failures()
        for seq in bad:
            self.find("signature-invalid", "signature does not verify", seq=seq)
        if n := self.report.stamped_out_of_order:
            self.report.notes.append(
                f"{n} entr{'y is' if n == 1 else 'ies are'} stamped before the entry ahead "
                f"(first: entry {first_earlier}): a writer's clock was behind, before "
                "cmi-console stamped entries in log order. Not a fault; `registry as-of` "
                "answers for an instant among them with the log up to the first entry "
                "stamped after it"
            )
        # worker and signature results arrive by chunk: keep the findings in log order
        found = self.report.findings
        found[mark:] = sorted(found[mark:], key=lambda f: -1 if f.seq is None else f.seq)
        for size, cps in expected.items():
            kind = "witness" if isinstance(cps[0], checkpoint.Checkpoint) else "checkpoint"
            self.find(
                "log-truncated",
                f"a signed {kind} covers {size} entries but the log has {rng.size}: "
                "entries were removed or the database was restored from an older copy",
                seq=rng.size,
            )
        return rng

    def _scans(self, conn: Any, total: int, sizes: set[int]) -> Iterator[ChunkScan]:
        """The log in chunks, scanned by worker processes when that pays and the
        seqs are exactly 0..total-1; otherwise here, by position, which also
        finds entries missing from the middle."""
        workers = self.workers if self.workers is not None else min(os.cpu_count() or 1, 8)
        # one process per chunk at most: `--workers 1000` on a log of 62 chunks
        # had started 1,000 interpreters, most of them with nothing to do
        workers = min(workers, -(-total // CHUNK))
        if workers > 1 and total >= PARALLEL_FROM and _dense(conn, total):
            self.report.workers = workers
            yield from verify_worker.scan_in_workers(
                _worker_db(conn), total, sizes, workers, CHUNK, started=_preload_tables
            )
            return
        carry = log_scan.Carry()
        for rows in stream_rows(conn, verify_worker.ALL_ROWS, size=CHUNK):
            yield log_scan.scan(rows, carry, sizes)

    def _signature(self, seq: int, obj: dict[str, Any], genesis: bool) -> None:
        # genesis introduces the first admin's key in the entry it signs
        if genesis:
            self._apply(seq, obj)
        sig = obj.get("sig")
        actor = obj.get("actor")
        if not isinstance(sig, dict) or sig.get("alg") != "ed25519":
            self.find("signature-missing", f"decision {obj.get('action')} is not signed", seq=seq)
        else:
            key = self.state.key(str(sig.get("key")))
            if key is None:
                self.find(
                    "signature-invalid", "signed with a key the log never registered", seq=seq
                )
            elif key[0] != actor:
                self.find("signature-invalid", f"key belongs to {key[0]}, not {actor}", seq=seq)
            elif key[2] is not None:
                self.find("signature-invalid", f"key was revoked at {key[2]}", seq=seq)
            else:
                try:
                    raw = keys.unb64(str(sig.get("value")), "signature")
                except BadInput:
                    raw = b""
                self.report.signatures += 1
                message = entries.verifiable_message(obj)
                if message is not None:
                    self.signatures.check(seq, key[1], raw, message)
                else:  # a number beyond 2**53 has no canonical form: nothing signed it
                    self.find("signature-invalid", "the entry has no canonical form", seq=seq)
            need = roles.DECISION_ROLES.get(str(obj.get("action")))
            if not genesis and need and not need & self.state.roles(str(actor)):
                held = " or ".join(sorted(need))
                self.find("unauthorized", f"{actor} did not hold {held} at the time", seq=seq)
        data = obj.get("data")
        if isinstance(data, dict) and "statement" in data:
            self._statement(seq, obj, data)
        if not genesis:
            self._apply(seq, obj)

    def _statement(self, seq: int, obj: dict[str, Any], data: dict[str, Any]) -> None:
        """A gate decision also carries the statement its decider signed: it must
        verify with the decider's key, name the decider, and claim only roles the
        decider held at that point of the log."""
        st, actor = data.get("statement"), obj.get("actor")
        if not isinstance(st, dict) or st.get("principal") != actor:
            self.find("statement-invalid", "the statement does not name the entry's actor", seq=seq)
            return
        key = self.state.key(str(data.get("key")))
        if key is None or key[0] != actor:
            self.find("statement-invalid", "statement signed with a key not the actor's", seq=seq)
        elif not statements.verify(key[1], st, str(data.get("signature"))):
            self.find("statement-invalid", "statement signature does not verify", seq=seq)
        listed = st.get("roles") or []
        if not isinstance(listed, list) or not all(isinstance(r, str) for r in listed):
            self.find("statement-invalid", "the statement's roles are not a list of names", seq=seq)
            return
        claimed = set(listed)
        if claimed - self.state.roles(str(actor)):
            extra = ", ".join(sorted(claimed - self.state.roles(str(actor))))
            self.find("unauthorized", f"{actor} claimed role(s) {extra} not held then", seq=seq)

    def _apply(self, seq: int, obj: dict[str, Any]) -> None:
        for problem in self.state.apply(obj.get("changes", ())):
            self.find("bad-change", problem, seq=seq)

    def _compare(self, root: bytes, cps: list[Any], origin: str, public: bytes) -> None:
        for cp in cps:
            if isinstance(cp, checkpoint.Checkpoint):
                if cp.root != root:
                    self.find(
                        "witness-mismatch",
                        f"the witnessed checkpoint at size {cp.size} has another root: "
                        "history was rewritten or the database was replaced",
                        seq=cp.size - 1,
                    )
                continue
            if cp.root == root.hex():
                continue
            try:
                checkpoint.verify(cp.note, origin, public, where=f"checkpoint {cp.id}")
            except (BadInput, IntegrityError):
                self.find("checkpoint-forged", f"checkpoint {cp.id} is not signed by the log key")
                continue
            self.find(
                "checkpoint-mismatch",
                f"signed checkpoint {cp.id} at size {cp.size} does not match the log: "
                f"an entry before {cp.size} was rewritten",
                seq=cp.size - 1,
            )

    def _coverage(self, cps: list[Any], size: int, origin: str, public: bytes) -> None:
        covered = 0
        for cp in sorted(cps, key=lambda c: (c.size, c.id), reverse=True):
            try:
                checkpoint.verify(cp.note, origin, public, where=f"checkpoint {cp.id}")
            except (BadInput, IntegrityError) as exc:
                self.find("checkpoint-forged", exc.message)
                continue
            covered = cp.size
            break
        self.report.covered = covered
        if covered < size:
            self.find(
                "unsealed-entries",
                f"entries {covered}..{size - 1} are not covered by a signed checkpoint "
                "(appended outside cmi?)",
                seq=covered,
            )

    def _state(self, conn: Any) -> None:
        quote = conn.dialect.identifier_preparer.quote
        sqlite = is_sqlite(conn.engine)
        for name, tbl in _registry_tables().items():
            cols = [c.name for c in tbl.columns]
            # SQLite hands JSON over as text; psycopg decodes it
            texts = [i for i, c in enumerate(tbl.columns) if sqlite and isinstance(c.type, JSON)]
            # straight from the driver: a SQLAlchemy row costs more than the
            # comparison. Only names from our own metadata go into the text.
            columns = ", ".join(map(quote, cols))
            sql = f"SELECT {columns} FROM {quote(name)} ORDER BY {quote('id')}"  # noqa: S608
            batches = stream_rows(conn, sql, size=STATE_BATCH)
            if texts:
                batches = ([_decode_json(row, texts) for row in rows] for rows in batches)
            self._table(name, cols, batches)

    def _table(self, name: str, cols: list[str], batches: Iterator[list[Any]]) -> None:
        """Compare a table's rows, in id order, with the rows the log built."""
        expected = self.state.tables[name]
        ids = sorted(expected)  # linear: the log inserts rows in id order
        # the log's row in the table's column order; a row the log left
        # without some column raises KeyError and takes the row-by-row path
        wanted = operator.itemgetter(*cols)
        at = cols.index("id")
        done = 0  # rows that matched ids[:done] a whole batch at a time
        seen: set[int] | None = None  # built once a batch does not match
        for rows in batches:
            if seen is None:
                # the common case, compared in C: the batch is exactly the
                # log's next rows
                with contextlib.suppress(KeyError):
                    if [wanted(expected[i]) for i in ids[done : done + len(rows)]] == rows:
                        done += len(rows)
                        continue
                seen = set(ids[:done])
            self.report.rows += len(rows)
            for row in rows:
                rid = row[at]
                seen.add(rid)
                want = expected.get(rid)
                if want is None:
                    self.find(
                        "row-not-in-log",
                        "row exists but no entry created it",
                        table=name,
                        row_id=rid,
                    )
                    continue
                diff = [c for c, v in zip(cols, row, strict=True) if v != want.get(c)]
                if diff:
                    self.find(
                        "row-modified",
                        f"column(s) {', '.join(sorted(diff))} differ from the log",
                        table=name,
                        row_id=rid,
                    )
        self.report.rows += done
        missing = ids[done:] if seen is None else sorted(set(expected) - seen)
        for rid in missing:
            self.find("row-missing", "the log created this row; it is gone", table=name, row_id=rid)


def _decode_json(row: tuple[Any, ...], texts: list[int]) -> tuple[Any, ...]:
    out = list(row)
    for i in texts:
        # a cell that is not JSON stays as stored: it differs from the log's value
        with contextlib.suppress(orjson.JSONDecodeError, TypeError):
            out[i] = orjson.loads(out[i])
    return tuple(out)


def check_artifacts(ctx: Context, report: VerifyReport) -> None:
    """Re-hash every artifact a registry row names (versions' models,
    datasets, monitoring windows and their labels), each once; a file missing
    from the store or changed in it is a finding naming the row. The log
    cannot see the store: this is the check that can."""
    from sqlalchemy import select

    from cmi_console.store.tables import ARTIFACT_COLUMNS

    store = ctx.workspace.artifacts
    faults: dict[str, str | None] = {}
    with ctx.read() as conn:
        for tbl, column in ARTIFACT_COLUMNS:
            stmt = select(tbl.c.id, tbl.c[column]).where(tbl.c[column].is_not(None))
            for row_id, digest in conn.execute(stmt.order_by(tbl.c.id)):
                if digest not in faults:
                    faults[digest] = store.fault(digest)
                if faults[digest] is not None:
                    report.findings.append(
                        Finding(
                            f"artifact-{faults[digest]}",
                            f"{column} {digest}: {faults[digest]} in the artifact store",
                            table=tbl.name,
                            row_id=row_id,
                        )
                    )
    report.artifacts = len(faults)


def verify(
    ctx: Context,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> VerifyReport:
    """Verify everything; `workers` processes scan the log (default: one per
    core; 1 scans in this process)."""
    with gc_paused():
        try:
            return _Verifier(ctx, progress, workers).run()
        except verify_worker.WorkerFailed as exc:
            # e.g. a read-only copy SQLite will not open a second time: the answer
            # must not depend on the worker processes, so scan here instead
            report = _Verifier(ctx, progress, 1).run()
            report.notes.append(f"{exc}; scanned in this process instead")
            return report
