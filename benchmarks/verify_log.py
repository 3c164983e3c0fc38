"""`cmi audit verify` on a large log (issue 2): 5% of entries are signed
decisions. The log is built through the real append path, in batches of
1,000 entries per transaction, each batch sealed by a signed checkpoint.

    python benchmarks/verify_log.py [--entries 1000000] [--workers N] [--reuse] [--db URL]

Verify runs twice: scanning in worker processes (one per core, or --workers)
and in one process, for comparison; then `cmi audit verify` is timed end to
end, as an auditor runs it (interpreter start and imports included).
--reuse keeps a log built by an earlier run (in $CMI_BENCH_DIR or the temp
directory) instead of building it again.
"""

from __future__ import annotations

import argparse
import resource
import time

from _common import bench_home, end_to_end_verify, fresh_workspace, peak_rss_mb

from cmi_console.services import identity, registry
from cmi_console.services.context import Context
from cmi_console.services.verify import verify


def build(ctx, entries: int, batch: int = 1000) -> None:  # type: ignore[no-untyped-def]
    ctx.actor = "dev"
    registry.create_model(ctx, "bench")
    grants = identity.GRANTS
    made = 0
    granted: int | None = None
    while made < entries:
        with ctx.write() as tx:
            for _ in range(min(batch, entries - made)):
                if made % 20 == 0:  # 5%: a signed decision that really changes a row
                    tx.ctx.actor = "root"
                    if granted is None:
                        pid = identity.principal_row(tx.conn, "rev").id
                        granted = tx.insert(
                            grants,
                            {
                                "principal_id": pid,
                                "role": "validator",
                                "granted_by": "root",
                                "granted_at": tx.time,
                                "revoked_by": None,
                                "revoked_at": None,
                            },
                        )
                        tx.record(
                            "role.grant", "principal:rev", {"user": "rev", "role": "validator"}
                        )
                    else:
                        tx.update(grants, granted, {"revoked_by": "root", "revoked_at": tx.time})
                        tx.record(
                            "role.revoke", "principal:rev", {"user": "rev", "role": "validator"}
                        )
                        granted = None
                    tx.ctx.actor = "dev"
                else:
                    tx.record("model.note", "model:bench", {"n": made, "note": "benchmark entry"})
                made += 1
        if made % 100_000 == 0:
            print(f"  built {made}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument(
        "--db", default=None, help="a database URL (an empty database) instead of SQLite"
    )
    args = ap.parse_args()
    name = f"verify-{args.entries}"
    home = bench_home(name, args.db)
    if args.reuse and (home / "workspace.json").exists():
        ctx = Context.open(home)
    else:
        ctx = fresh_workspace(name, args.db)
        t0 = time.perf_counter()
        build(ctx, args.entries)
        print(f"build           {args.entries / (time.perf_counter() - t0):10.0f} entries/s")
    for workers in (args.workers, 1):
        rss_before = peak_rss_mb()
        t1 = time.perf_counter()
        report = verify(ctx, workers=workers)
        t2 = time.perf_counter()
        assert report.ok, report.findings[:3]
        print(
            f"entries {report.entries}, signatures {report.signatures}, "
            f"checkpoints {report.checkpoints}"
        )
        print(
            f"verify          {report.entries / (t2 - t1):10.0f} entries/s ({t2 - t1:.1f} s, "
            f"{report.workers} scanning process(es))"
        )
        print(f"peak RSS        {peak_rss_mb():10.0f} MB (before verify {rss_before:.0f} MB)")
        if report.workers > 1:
            worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(f"  each worker   {worker:10.0f} MB peak RSS")
    end_to_end_verify(home, args.db, report.entries)


if __name__ == "__main__":
    main()
