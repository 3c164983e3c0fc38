"""Registry workload (issue 2): N versions with 5 tags each, then 2N alias
moves, then a search by tag. Every write goes through the service layer: its
own transaction, audit entry and signed checkpoint, committed with fsync.

    python benchmarks/registry_workload.py [--n 1000] [--db URL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import fresh_workspace

from cmi_console.services import registry


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--db", default=None)
    args = ap.parse_args()
    ctx = fresh_workspace(f"registry-{args.n}", args.db)
    ctx.actor = "dev"
    registry.create_model(ctx, "bench")
    artifact = Path(tempfile.mkdtemp()) / "model.bin"
    t0 = time.perf_counter()
    for i in range(args.n):
        artifact.write_bytes(f"model {i}".encode())
        registry.register_version(
            ctx,
            "bench",
            artifact,
            tags={
                "team": "risk",
                "batch": str(i % 10),
                "algo": "gbm",
                "owner": "dev",
                "run": str(i),
            },
            metrics={"auc": 0.5 + (i % 500) / 1000},
        )
    t1 = time.perf_counter()
    for i in range(2 * args.n):
        registry.set_alias(ctx, "bench", "champion", (i % args.n) + 1)
    t2 = time.perf_counter()
    found = registry.search_versions(ctx, model="bench", tags=[("batch", "3")], limit=100_000)
    t3 = time.perf_counter()
    print(f"N={args.n} backend={ctx.engine.dialect.name}")
    print(f"versions/s      {args.n / (t1 - t0):10.0f}")
    print(f"alias moves/s   {2 * args.n / (t2 - t1):10.0f}")
    print(f"search by tag   {(t3 - t2) * 1000:10.1f} ms ({len(found)} hits)")


if __name__ == "__main__":
    main()
