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
from collections.abc import Callable
from pathlib import Path

from cmi_console.services.context import Context
from cmi_console.tui.app import CmiApp
from cmi_console.tui.audit_view import AuditLogView
from cmi_console.tui.version import VersionScreen


async def settle(pilot) -> None:  # type: ignore[no-untyped-def]
    """Wait for the data workers and then for idle: the tests' way, kept for
    the set-up steps. Pilot's idle detection sleeps in steps and adds a
    floor of ~90 ms here (a bare one-widget screen measures 90-100 ms), so the
    figures below are taken with `until` instead."""
    from textual.worker import WorkerCancelled

    for _ in range(10):
        try:
            await pilot.app.workers.wait_for_complete()
            break
        except WorkerCancelled:
            continue
    await pilot.pause()


async def until(ready: Callable[[], bool], limit: float = 30.0) -> None:
    """Poll every millisecond until the UI shows what was asked for."""
    deadline = time.perf_counter() + limit
    while not ready():
        if time.perf_counter() > deadline:
            raise TimeoutError("the console did not get there")
        await asyncio.sleep(0.001)


async def run(home: Path, ref: str, verify: bool = False) -> None:
    from textual.widgets import DataTable, Static

    t0 = time.perf_counter()
    app = CmiApp(Context.open(home, None, "rev"), verify=verify)
    async with app.run_test(size=(140, 45)) as pilot:
        await until(
            lambda: (
                app.screen.query("#models")
                and app.screen.query_one("#models", DataTable).row_count > 0
            )
        )
        first = time.perf_counter() - t0
        print(f"first screen painted with its data  {first * 1000:8.0f} ms")
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        view = app.screen.query_one(AuditLogView)
        times = []
        for _ in range(30):
            if view.cursor + 20 >= view.total:  # a small log: start again at the top
                view.action_jump(0)
                await settle(pilot)
            before = view.cursor
            t = time.perf_counter()
            # Pilot's press, timed to the moment the view is ready rather than
            # to the end of its idle wait
            press = asyncio.create_task(pilot.press("pagedown"))
            # moved, and every visible line has its entry (a page read when needed)
            await until(
                lambda before=before: (
                    view.cursor != before
                    and all(
                        view.entry_at(view.scroll_offset.y + y) is not None
                        for y in range(min(view.size.height, view.total))
                    )
                )
            )
            times.append((time.perf_counter() - t) * 1000)
            await press
        print(
            f"audit log page-down ({view.total} entries)  "
            f"median {statistics.median(times):6.1f} ms, max {max(times):6.1f} ms; "
            f"{len(view.pages)} pages read"
        )
        opens = []
        for _ in range(5):
            t = time.perf_counter()
            screen = VersionScreen(ref)
            app.push_screen(screen)
            # the title changes from the bare ref to the version's facts when its data is shown
            await until(
                lambda screen=screen: (
                    bool(screen.query("#title"))
                    and "·" in str(screen.query_one("#title", Static).render())
                )
            )
            opens.append((time.perf_counter() - t) * 1000)
            await settle(pilot)
            app.pop_screen()
            await settle(pilot)
        print(
            f"open version {ref}  median {statistics.median(opens):6.1f} ms, max {max(opens):6.1f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--version", default=None, help="MODEL:VERSION to open")
    ap.add_argument(
        "--verify", action="store_true", help="also run the start-up log verification meanwhile"
    )
    args = ap.parse_args()
    ctx = Context.open(args.home)
    with ctx.read() as conn:
        models = conn.exec_driver_sql("SELECT count(*) FROM models").scalar_one()
    ref = args.version or f"m{models * 43 // 100:05d}:5"
    asyncio.run(run(args.home, ref, args.verify))


if __name__ == "__main__":
    main()
