"""CLI start (issue 2): wall time of `cmi audit log -n 10`, median of 15 runs.

python benchmarks/cli_start.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from _common import fresh_workspace


def main() -> None:
    ctx = fresh_workspace("cli-start")
    home = str(ctx.workspace.home)
    cmd = [sys.executable, "-m", "cmi_console", "--home", home, "audit", "log", "-n", "10"]
    subprocess.run(cmd, check=True, capture_output=True)  # warm the page cache
    times = []
    for _ in range(15):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    print(f"cmi audit log -n 10: median {statistics.median(times):.3f} s, max {max(times):.3f} s")


if __name__ == "__main__":
    main()
