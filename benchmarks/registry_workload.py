"""Registry workload (issue 2): N versions with 5 tags each, then 2N alias
moves, then a search by tag. Every write goes through the service layer and
records its own audit entry; a transaction ends with a signed checkpoint and
a commit with fsync.

    python benchmarks/registry_workload.py [--n 1000] [--batch 1] [--db URL]

--batch 1 (the default) commits every call on its own, as `cmi version
register` from a shell loop does. --batch K groups K calls per transaction
with `Context.batch()` (group commit), as a CI job or an import does.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import fresh_workspace

from cmi_console.services import registry
from cmi_console.services.context import Context


def run(ctx: Context, n: int, batch: int, call: Callable[[int], object]) -> float:
    """Seconds to make n calls, `batch` per transaction."""
    t0 = time.perf_counter()
    for lo in range(0, n, batch):
        with ctx.batch():
            for i in range(lo, min(n, lo + batch)):
                call(i)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--db", default=None)
    args = ap.parse_args()
    n = args.n
    ctx = fresh_workspace(f"registry-{n}", args.db)
    ctx.actor = "dev"
    registry.create_model(ctx, "bench")
    folder = Path(tempfile.mkdtemp())
    artifacts = [folder / f"model-{i}.bin" for i in range(n)]
    for i, artifact in enumerate(artifacts):  # the files exist before anyone registers them
        artifact.write_bytes(f"model {i}".encode())

    def register(i: int) -> None:
        tags = {"team": "risk", "batch": str(i % 10), "algo": "gbm", "owner": "dev", "run": str(i)}
        registry.register_version(
            ctx, "bench", artifacts[i], tags=tags, metrics={"auc": 0.5 + (i % 500) / 1000}
        )

    def move(i: int) -> None:
        registry.set_alias(ctx, "bench", "champion", (i % n) + 1)

    registering = run(ctx, n, args.batch, register)
    moving = run(ctx, 2 * n, args.batch, move)
    t0 = time.perf_counter()
    found = registry.search_versions(ctx, model="bench", tags=[("batch", "3")], limit=n)
    searching = time.perf_counter() - t0
    print(f"N={n} backend={ctx.engine.dialect.name} calls per transaction={args.batch}")
    print(f"versions/s      {n / registering:10.0f}")
    print(f"alias moves/s   {2 * n / moving:10.0f}")
    print(f"search by tag   {searching * 1000:10.1f} ms ({len(found)} hits)")


if __name__ == "__main__":
    main()
