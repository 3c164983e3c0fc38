"""Shared set-up for the benchmark scripts: a fresh workspace with a developer."""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cmi_console.services import identity
from cmi_console.services.context import Context
from cmi_console.services.setup import init_workspace


def bench_home(name: str, db: str | None = None) -> Path:
    """Where a benchmark keeps its workspace: one per backend, so a PostgreSQL
    run never removes the SQLite workspace of the same name."""
    backend = "sqlite" if db is None else db.split(":", 1)[0].split("+", 1)[0]
    root = Path(os.environ.get("CMI_BENCH_DIR", tempfile.gettempdir()))
    return root / f"cmi-bench-{name}" if db is None else root / f"cmi-bench-{name}-{backend}"


def fresh_workspace(name: str, db: str | None = None) -> Context:
    home = bench_home(name, db)
    shutil.rmtree(home, ignore_errors=True)
    ctx = init_workspace(home, admin="root", db=db)
    identity.add_user(ctx, "dev", ["developer"])
    identity.add_user(ctx, "rev", ["reviewer"])
    return ctx


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def end_to_end(home: Path, db: str | None, *args: str) -> tuple[float, float]:
    """`cmi ARGS` as a user types it (interpreter start, imports and output
    included): the median wall of 3 runs, in seconds, and the peak RSS of the
    largest child this process has waited for, in MB."""
    cmd = [str(Path(sys.executable).with_name("cmi")), *args, "--home", str(home)]
    if db:
        cmd += ["--db", db]
    walls = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def end_to_end_verify(home: Path, db: str | None, entries: int) -> None:
    """Time `cmi audit verify` as an auditor types it (median of 3)."""
    wall, _ = end_to_end(home, db, "audit", "verify", "-q")
    print(f"cmi audit verify {entries / wall:9.0f} entries/s end to end (median {wall:.2f} s of 3)")
