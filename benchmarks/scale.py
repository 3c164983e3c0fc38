"""Team scale (issue 8): a workspace with 10,000 models, 100,000 versions and
1,000,000 audit entries, built through the real write path in batches, then
the hot read paths timed on it, with their query plans, `registry as-of`
over the whole log (end to end, with its peak memory), and `audit verify`
(the service call, then the command end to end).

    python benchmarks/scale.py [--models 10000] [--versions 100000]
                               [--entries 1000000] [--db URL] [--home DIR]

--home reuses a workspace built earlier (the build takes minutes). Every
version has 3 tags and 2 metrics; the entries beyond models and versions are
real tag changes on random versions, each its own audited entry.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import end_to_end, end_to_end_verify, fresh_workspace, peak_rss_mb

from cmi_console.services import gates, registry
from cmi_console.services.context import Context
from cmi_console.services.verify import verify

BATCH = 1000


def build(ctx: Context, models: int, versions: int, entries: int) -> None:
    ctx.actor = "dev"
    t0 = time.perf_counter()
    for lo in range(0, models, BATCH):
        with ctx.batch():
            for i in range(lo, min(models, lo + BATCH)):
                registry.create_model(ctx, f"m{i:05d}")
    folder = Path(tempfile.mkdtemp())
    artifacts = []
    for i in range(20):
        path = folder / f"model-{i}.bin"
        path.write_bytes(f"artifact {i}".encode() * 50)
        artifacts.append(path)
    rng = random.Random(1)
    per = versions // models
    t1 = time.perf_counter()
    for lo in range(0, versions, BATCH):
        with ctx.batch():
            for n in range(lo, min(versions, lo + BATCH)):
                registry.register_version(
                    ctx,
                    f"m{n // per:05d}",
                    artifacts[n % 20],
                    tags={"team": f"t{n % 50}", "batch": str(n % 10), "owner": f"o{n % 7}"},
                    metrics={"auc": round(rng.uniform(0.5, 1.0), 4), "f1": rng.random()},
                )
        if (lo // BATCH) % 10 == 0:
            print(f"  versions {lo + BATCH}", flush=True)
    t2 = time.perf_counter()
    with ctx.read() as conn:
        made = conn.exec_driver_sql("SELECT count(*) FROM audit_entries").scalar_one()
        ids = conn.exec_driver_sql(
            "SELECT v.id, m.name, v.version FROM model_versions v "
            "JOIN models m ON m.id = v.model_id"
        ).all()
    # the rest: real tag changes, one audited entry each
    tags = registry.TAGS
    seq = 0
    while made < entries:
        with ctx.write() as tx:
            for _ in range(min(BATCH, entries - made)):
                vid, name, number = ids[rng.randrange(len(ids))]
                seq += 1
                tx.insert(tags, {"version_id": vid, "key": f"note{seq}", "value": "reviewed"})
                tx.record(
                    "version.tag",
                    f"version:{name}:{number}",
                    {"set": {f"note{seq}": "reviewed"}, "removed": []},
                )
                made += 1
        if seq % 100_000 < BATCH:
            print(f"  entries {made}", flush=True)
    t3 = time.perf_counter()
    print(
        f"built: models {models / (t1 - t0):.0f}/s, versions {versions / (t2 - t1):.0f}/s, "
        f"tag entries {seq / max(t3 - t2, 1e-9):.0f}/s; total {t3 - t0:.0f} s"
    )


def timed(label: str, call: Callable[[], Any], runs: int = 20) -> None:
    call()  # warm the cache, as a console that has been open does
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        out = call()
        times.append((time.perf_counter() - t) * 1000)
    size = len(out) if hasattr(out, "__len__") else "-"
    print(
        f"  {label:44s} median {statistics.median(times):7.1f} ms, max {max(times):7.1f} ms "
        f"({size} rows)"
    )


def plans(ctx: Context) -> None:
    """The query plans of the search statements, as the database reports them."""
    from sqlalchemy import and_, select
    from sqlalchemy.dialects import postgresql, sqlite

    from cmi_console.services.registry import MODELS, TAGS, VERSIONS

    t = TAGS.alias("t0")
    stmt = (
        select(VERSIONS.c.id)
        .join(MODELS, MODELS.c.id == VERSIONS.c.model_id)
        .join(t, and_(t.c.version_id == VERSIONS.c.id, t.c.key == "team", t.c.value == "t7"))
        .order_by(VERSIONS.c.id.desc())
        .limit(100)
    )
    dialect = sqlite.dialect() if ctx.engine.dialect.name == "sqlite" else postgresql.dialect()
    sql = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN QUERY PLAN " if ctx.engine.dialect.name == "sqlite" else "EXPLAIN "
    with ctx.read() as conn:
        rows = conn.exec_driver_sql(explain + sql).all()
    print("  plan of search by tag:")
    for r in rows:
        print("    " + " | ".join(str(x) for x in r))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=10_000)
    ap.add_argument("--versions", type=int, default=100_000)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--db", default=None)
    ap.add_argument("--home", type=Path, default=None)
    args = ap.parse_args()
    if args.home:
        ctx = Context.open(args.home, actor="dev")
    else:
        ctx = fresh_workspace(f"scale-{args.versions}", args.db)
        build(ctx, args.models, args.versions, args.entries)
    with ctx.read() as conn:
        counts = {
            t: conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one()  # noqa: S608
            for t in ("models", "model_versions", "version_tags", "audit_entries")
        }
    print(f"workspace {ctx.workspace.home} ({ctx.engine.dialect.name}): {counts}")
    model = f"m{counts['models'] * 43 // 100:05d}"  # one in the middle
    timed(
        "search versions by tag team=t7",
        lambda: registry.search_versions(ctx, tags=[("team", "t7")], limit=100),
    )
    timed(
        "search by metric auc >= 0.99",
        lambda: registry.search_versions(ctx, metrics=[("auc", ">=", 0.99)], limit=100),
    )
    timed(
        "search by tag and metric",
        lambda: registry.search_versions(
            ctx, tags=[("team", "t7")], metrics=[("auc", ">=", 0.9)], limit=100
        ),
    )
    timed("list one model's versions", lambda: registry.list_versions(ctx, model))
    timed(
        "gate status MODEL:5 -> staging",
        lambda: gates.status(ctx, f"{model}:5", "staging").conditions,
    )
    timed("show one version", lambda: registry.show_version(ctx, f"{model}:5"))
    plans(ctx)
    print(f"  peak RSS {peak_rss_mb():.0f} MB")
    # the investigator's question, answered from the whole log (before verify's
    # children: the peak RSS read is that of the largest child so far)
    wall, rss = end_to_end(
        ctx.workspace.home, args.db, "registry", "as-of", "2100-01-01", "--model", model
    )
    print(
        f"cmi registry as-of --model {model}: {wall:.2f} s end to end (median of 3), "
        f"peak RSS {rss:.0f} MB"
    )
    t0 = time.perf_counter()
    report = verify(ctx)
    took = time.perf_counter() - t0
    assert report.ok, report.findings[:3]
    print(
        f"verify {report.entries / took:.0f} entries/s ({took:.1f} s, {report.rows} registry "
        f"rows, {report.workers} scanning process(es))"
    )
    end_to_end_verify(ctx.workspace.home, args.db, report.entries)


if __name__ == "__main__":
    main()
