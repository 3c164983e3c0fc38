"""`audit verify` on several cores: worker processes scan chunks of the log.

The stateless checks (hash, parse, canonical bytes, chain, columns, Merkle
peaks: core.log_scan) are most of the work and need no state, so each worker
scans every K-th chunk on its own connection and streams the results back in
chunk order; the parent joins the Merkle ranges and replays the entries that
need state. A worker is `python -m cmi_console.store.verify_worker`: a fresh
interpreter that imports only this module's few dependencies (no SQLAlchemy),
safe to start from a threaded parent such as the TUI. The job, including a
PostgreSQL password, travels on stdin, never on the command line.

Frames on stdout, one per chunk: a 4-byte length and one JSON document
(findings, peaks, cuts and the forwarded entries, parsed again in one call
however many there are). The pipe's buffer bounds how far a worker runs ahead.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import IO, Any

import orjson

from cmi_console.core.entries import GENESIS_PREV
from cmi_console.core.log_scan import Carry, ChunkScan, scan
from cmi_console.core.merkle import CompactRange

# values always travel as parameters; `?` becomes the driver's marker
_COLUMNS = "SELECT seq, prev, hash, time, actor, action, subject, body FROM audit_entries "
ALL_ROWS = _COLUMNS + "ORDER BY seq"
ROWS = _COLUMNS + "WHERE seq >= ? AND seq < ? ORDER BY seq"
BEFORE = "SELECT body, time FROM audit_entries WHERE seq = ?"  # the entry before a chunk
_HEAD = struct.Struct(">I")


class WorkerFailed(RuntimeError):
    pass


# --- the parent's side ----------------------------------------------------------


def scan_in_workers(
    db: dict[str, str],
    total: int,
    sizes: set[int],
    workers: int,
    chunk: int,
    started: Callable[[], None] = lambda: None,
) -> Iterator[ChunkScan]:
    """Scans of [0, total) in chunks of `chunk` rows, in log order. The log's
    seqs must be exactly 0..total-1 (the caller checks), so a chunk is a seq
    range and starts where a Merkle subtree of its size does. `started` runs
    once every worker has its job, while the first chunks are being read."""
    bounds = [(lo, min(lo + chunk, total)) for lo in range(0, total, chunk)]
    procs: list[subprocess.Popen[bytes]] = []
    with ExitStack() as files:
        # stderr to a file, not a pipe: nobody reads it until the worker ends
        errs = [files.enter_context(tempfile.TemporaryFile()) for _ in range(workers)]
        try:
            for w in range(workers):
                job = {
                    "db": db,
                    "chunks": bounds[w::workers],
                    "sizes": sorted(s for s in sizes if s <= total),
                }
                proc = subprocess.Popen(
                    # -P: never import from the working directory, which an
                    # auditor may run this in and which may hold anything
                    [sys.executable, "-P", "-m", __name__],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=errs[w],
                )
                procs.append(proc)
                assert proc.stdin is not None
                try:
                    proc.stdin.write(orjson.dumps(job))
                    proc.stdin.close()
                except BrokenPipeError:  # it died starting: its stderr says why
                    pass
            started()
            for k in range(len(bounds)):
                w = k % workers
                assert procs[w].stdout is not None
                got = read_scan(procs[w].stdout)
                if got is None:
                    procs[w].wait()
                    errs[w].seek(0)
                    why = errs[w].read().decode(errors="replace").strip().splitlines()
                    raise WorkerFailed(
                        f"verify worker {w} stopped (exit {procs[w].returncode}): "
                        + (why[-1] if why else "no message")
                    )
                yield got
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                if proc.stdout is not None:
                    proc.stdout.close()


def read_scan(stream: IO[bytes]) -> ChunkScan | None:
    raw = stream.read(_HEAD.size)
    if len(raw) < _HEAD.size:
        return None
    head = orjson.loads(_exact(stream, _HEAD.unpack(raw)[0]))
    out = ChunkScan(head["start"], _range(head["rng"]))
    out.cuts = {int(size): _range(r) for size, r in head["cuts"].items()}
    out.findings = [(kind, message, seq) for kind, message, seq in head["findings"]]
    out.forward = head["forward"]  # [seq, entry] pairs: unpacked like the tuples
    out.earlier, out.first_earlier = head["earlier"]
    return out


def _exact(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise WorkerFailed("verify worker output ended inside a frame")
    return data


def _range(encoded: list[Any]) -> CompactRange:
    size, peaks = encoded
    return CompactRange(size, [bytes.fromhex(p) for p in peaks])


# --- the worker's side ----------------------------------------------------------


def write_scan(stream: IO[bytes], result: ChunkScan) -> None:
    def rng(r: CompactRange) -> list[Any]:
        return [r.size, [p.hex() for p in r.peaks]]

    # entries were parsed from JSON, so they encode again (orjson gives back
    # the same values: the verifier checks signatures over canonical_bytes of
    # the parsed entry, never over these bytes)
    frame = orjson.dumps(
        {
            "start": result.start,
            "rng": rng(result.rng),
            "cuts": {str(size): rng(r) for size, r in result.cuts.items()},
            "findings": result.findings,
            "forward": result.forward,
            "earlier": [result.earlier, result.first_earlier],
        }
    )
    stream.write(_HEAD.pack(len(frame)) + frame)
    stream.flush()


def _connect(db: dict[str, str]) -> tuple[Any, str]:
    """A DB-API connection and its parameter marker."""
    if "sqlite" in db:
        import sqlite3
        from urllib.parse import quote

        uri = f"file:{quote(os.path.abspath(db['sqlite']))}?{db.get('open', 'mode=ro')}"
        return sqlite3.connect(uri, uri=True, timeout=60), "?"
    import psycopg

    return psycopg.connect(db["postgresql"]), "%s"


def _work(job: dict[str, Any], out: IO[bytes]) -> None:
    conn, mark = _connect(job["db"])
    sizes = frozenset(job["sizes"])
    try:
        cur = conn.cursor()
        for lo, hi in job["chunks"]:
            carry = Carry(position=lo, want_seq=lo)
            if lo:
                cur.execute(BEFORE.replace("?", mark), (lo - 1,))
                before = cur.fetchone()
                carry.prev = (
                    hashlib.sha256(b"\x00" + bytes(before[0])).hexdigest()
                    if before
                    else GENESIS_PREV
                )
                carry.time = before[1] if before else ""
            cur.execute(ROWS.replace("?", mark), (lo, hi))
            write_scan(out, scan(cur.fetchall(), carry, sizes))
    finally:
        conn.close()


if __name__ == "__main__":
    import gc

    gc.disable()
    _work(orjson.loads(sys.stdin.buffer.read()), sys.stdout.buffer)
