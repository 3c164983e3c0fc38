"""The console on a large workspace (issue 5), driven by Textual's Pilot:
first screen painted with its data, page-down in the audit log, and opening
a version.

    python benchmarks/tui_scale.py --home WORKSPACE   (from benchmarks/scale.py)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from cmi_console.services.context import Context
from cmi_console.tui.app import CmiApp
from cmi_console.tui.audit_view import AuditLogView
from cmi_console.tui.version import VersionScreen


async def settle(pilot) -> None:  # type: ignore[no-untyped-def]
    from textual.worker import WorkerCancelled

    for _ in range(10):
        try:
            await pilot.app.workers.wait_for_complete()
            break
        except WorkerCancelled:
            continue
    await pilot.pause()


async def run(home: Path, ref: str) -> None:
    t0 = time.perf_counter()
    app = CmiApp(Context.open(home, None, "rev"), verify=False)
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot)
        first = time.perf_counter() - t0
        print(f"first screen painted with its data  {first * 1000:8.0f} ms")
        await pilot.press("l")
        await settle(pilot)
        view = app.screen.query_one(AuditLogView)
        times = []
        for _ in range(30):
            t = time.perf_counter()
            await pilot.press("pagedown")
            await settle(pilot)
            times.append((time.perf_counter() - t) * 1000)
        print(
            f"audit log page-down ({view.total} entries)  "
            f"median {statistics.median(times):6.1f} ms, max {max(times):6.1f} ms; "
            f"{len(view.pages)} pages read"
        )
        opens = []
        for _ in range(5):
            t = time.perf_counter()
            app.push_screen(VersionScreen(ref))
            await settle(pilot)
            opens.append((time.perf_counter() - t) * 1000)
            app.pop_screen()
            await settle(pilot)
        print(
            f"open version {ref}  median {statistics.median(opens):6.1f} ms, max {max(opens):6.1f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--version", default=None, help="MODEL:VERSION to open")
    args = ap.parse_args()
    ctx = Context.open(args.home)
    with ctx.read() as conn:
        models = conn.exec_driver_sql("SELECT count(*) FROM models").scalar_one()
    ref = args.version or f"m{models * 43 // 100:05d}:5"
    asyncio.run(run(args.home, ref))


if __name__ == "__main__":
    main()
