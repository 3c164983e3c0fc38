"""Lineage queries on a graph of 100,000 nodes (issue 6): the recursive SQL
walk up and down from versions, depth 10.

    python benchmarks/lineage_graph.py [--nodes 100000] [--db URL]

The graph is written through the real write path (logged edges, in batches):
per model, 10 versions in a succession chain; each version has a training run
(with a recipe and 2 input datasets from a shared pool), 2 validation runs
and a decision resting on one of them.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from _common import fresh_workspace

from cmi_console.services import lineage

PER_VERSION = 5  # run, version, 2 validations, decision (datasets/recipes are shared)


def build(ctx, nodes: int) -> list[int]:  # type: ignore[no-untyped-def]
    versions = nodes // PER_VERSION
    pool = max(10, versions // 50)  # shared datasets and recipes
    ids = list(range(1, versions + 1))
    ctx.actor = "root"
    for lo in range(0, versions, 2000):
        with ctx.write() as tx:
            edges = []
            for v in ids[lo : lo + 2000]:
                run, val1, val2, dec = v, 2 * v, 2 * v + 1, v
                edges += [
                    (("dataset", v % pool), ("run", run), "input:train"),
                    (("dataset", (v * 7) % pool), ("run", run), "input:holdout"),
                    (("recipe", f"r{v % pool}"), ("run", run), "recipe"),
                    (("run", run), ("version", v), "produced"),
                    (("dataset", v % pool), ("version", v), "train"),
                    (("version", v), ("validation", val1), "validated"),
                    (("version", v), ("validation", val2), "validated"),
                    (("version", v), ("decision", dec), "approve"),
                    (("validation", val2), ("decision", dec), "evidence"),
                ]
                if v % 10:  # a model's next version succeeds this one
                    edges.append((("version", v), ("version", v + 1), "succeeded-by"))
            lineage.connect(tx, edges)
            tx.record("lineage.bench", "bench", {"versions": len(ids[lo : lo + 2000])})
    return ids


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--db", default=None)
    args = ap.parse_args()
    ctx = fresh_workspace(f"lineage-{args.nodes}", args.db)
    t0 = time.perf_counter()
    ids = build(ctx, args.nodes)
    built = time.perf_counter() - t0
    with ctx.read() as conn:
        edges = conn.exec_driver_sql("SELECT count(*) FROM lineage_edges").scalar_one()
    rng = random.Random(7)
    sample = rng.sample(ids, 200)
    for direction in ("up", "down"):
        times, sizes = [], []
        with ctx.read() as conn:
            for v in sample:
                t = time.perf_counter()
                found = lineage.walk(conn, ("version", str(v)), direction, 10)
                times.append((time.perf_counter() - t) * 1000)
                sizes.append(len(found))
        times.sort()
        print(
            f"{direction:4s} depth 10: median {statistics.median(times):6.2f} ms, "
            f"p95 {times[int(len(times) * 0.95)]:6.2f} ms, max {times[-1]:6.2f} ms; "
            f"{statistics.mean(sizes):.0f} edges per answer"
        )
    print(
        f"graph: ~{args.nodes} nodes, {edges} edges ({ctx.engine.dialect.name}), built in "
        f"{built:.1f} s"
    )


if __name__ == "__main__":
    main()
