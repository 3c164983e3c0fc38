"""What this machine's disk allows one durable registration per transaction
(issue 2's registry workload at --batch 1), with no SQL and no Python logic:
the I/O alone.

    python benchmarks/registration_floor.py [--n 1000]

A registration through the service layer writes a number of WAL pages
(its rows and every index they touch, the entry, the checkpoint), copies the
artifact into the store and makes it durable, then commits with fsync. This
script counts the pages a real registration writes, then times transactions
that write exactly that many pages of a scratch table in the same file system
(synchronous=FULL, as the workspace runs), alone and after an artifact copy
and sync through the real ArtifactStore. Whatever the service layer does on
top of that is the figure registry_workload.py prints.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from _common import fresh_workspace

from cmi_console.services import registry
from cmi_console.services.context import Context

PAGE = 4096


def wal_frames_per_registration(ctx: Context, folder: Path, k: int = 200) -> float:
    """WAL frames written per registration, read from SQLite itself."""
    db = str(ctx.engine.url.database)
    with sqlite3.connect(db) as probe:
        probe.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with ctx.engine.connect() as conn:  # the pooled connection the writes will use
        conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
    for i in range(k):
        artifact = folder / f"probe-{i}.bin"
        artifact.write_bytes(f"probe {i}".encode())
        tags = {"team": "risk", "batch": str(i % 10), "algo": "gbm", "owner": "dev", "run": str(i)}
        registry.register_version(ctx, "bench", artifact, tags=tags, metrics={"auc": 0.5})
    with sqlite3.connect(db) as probe:
        _busy, frames, _done = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    with ctx.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_autocheckpoint=1000")
    return frames / k


def floor(home: Path, folder: Path, frames: int, n: int, *, artifacts: bool) -> float:
    """Transactions per second that each write `frames` pages (and, with
    `artifacts`, first store one new file durably)."""
    from cmi_console.store.artifacts import ArtifactStore

    store = ArtifactStore(home / "floor-artifacts")
    path = home / "floor.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    # one row per page, so a transaction that updates `frames` rows writes
    # `frames` pages
    conn.execute("CREATE TABLE IF NOT EXISTS pages (id INTEGER PRIMARY KEY, body BLOB)")
    rows = 20_000
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT OR REPLACE INTO pages VALUES (?, zeroblob(?))",
        ((i, PAGE // 2) for i in range(rows)),
    )
    conn.execute("COMMIT")
    sources = [folder / f"floor-{artifacts}-{i}.bin" for i in range(n)]
    for i, source in enumerate(sources):
        source.write_bytes(f"floor {artifacts} {i}".encode())
    t0 = time.perf_counter()
    for i in range(n):
        if artifacts:
            digest = store.put_file(sources[i], sync=False).digest
            store.sync([digest])
        conn.execute("BEGIN IMMEDIATE")
        base = (i * frames) % (rows - frames)
        conn.executemany(
            "UPDATE pages SET body = zeroblob(?) WHERE id = ?",
            ((PAGE // 2 - (i % 7), base + j) for j in range(frames)),
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    ctx = fresh_workspace("registration-floor")
    ctx.actor = "dev"
    registry.create_model(ctx, "bench")
    folder = Path(tempfile.mkdtemp())
    per_call = wal_frames_per_registration(ctx, folder)
    frames = round(per_call)
    home = ctx.workspace.home
    bare = floor(home, folder, frames, args.n, artifacts=False)
    with_artifact = floor(home, folder, frames, args.n, artifacts=True)
    print(f"WAL pages per registration      {per_call:6.1f}")
    print(f"commit of {frames} pages alone        {bare:6.0f}/s")
    print(f"artifact copy+sync, then commit {with_artifact:6.0f}/s")


if __name__ == "__main__":
    main()
