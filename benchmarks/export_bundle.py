"""Compliance export of a large log (issue 6): a full export, and the last
10% of the log by time (a subset: every entry carries an inclusion proof),
then the offline check of each bundle.

    python benchmarks/export_bundle.py [--entries 1000000] [--home EXISTING_WORKSPACE]

Without --home the log is built as in verify_log.py (5% signed decisions).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import fresh_workspace, peak_rss_mb
from verify_log import build

from cmi_console.core import bundle
from cmi_console.services.context import Context
from cmi_console.services.export import export


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--home", type=Path, default=None)
    args = ap.parse_args()
    if args.home:
        ctx = Context.open(args.home, actor="root")
    else:
        ctx = fresh_workspace(f"export-{args.entries}")
        build(ctx, args.entries)
    out_dir = Path(tempfile.mkdtemp())
    with ctx.read() as conn:
        size = conn.exec_driver_sql("SELECT count(*) FROM audit_entries").scalar_one()
        since = conn.exec_driver_sql(
            "SELECT time FROM audit_entries WHERE seq = ?", (size * 9 // 10,)
        ).scalar_one()
    for label, kwargs in (("full", {}), ("last 10%", {"since": since})):
        out = out_dir / f"{label.replace(' ', '-')}.zip"
        t0 = time.perf_counter()
        summary = export(ctx, out, **kwargs)
        t1 = time.perf_counter()
        report = bundle.verify(out)
        t2 = time.perf_counter()
        assert report.ok, report.problems[:3]
        print(
            f"{label:13s} {summary['entries']:>9} entries of {summary['log_size']}: "
            f"export {t1 - t0:6.1f} s, {out.stat().st_size / 1e6:7.1f} MB; "
            f"verify-bundle {t2 - t1:6.1f} s; peak RSS so far {peak_rss_mb():.0f} MB"
        )


if __name__ == "__main__":
    main()
