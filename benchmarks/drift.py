"""Drift check speed and correctness (issue 4 budget: <= 0.5 s at 100,000 rows,
<= 5 s and <= 2 GB at 1,000,000 rows; exactly the 5 changed columns flagged).

Reference and current have 20 numeric and 5 categorical columns; in current,
4 numeric columns are shifted and 1 categorical column is re-weighted.

    python benchmarks/drift.py [ROWS ...]
"""

from __future__ import annotations

import sys
import time

from _common import peak_rss_mb
from drift_data import REWEIGHTED, SHIFTED, frames

from cmi_console.validation.drift import dataset_drift


def main(sizes: list[int]) -> None:
    warm_ref, warm_cur = frames(100)
    dataset_drift(warm_ref, warm_cur, list(warm_ref.columns))  # imports scipy: a one-off
    for rows in sizes:
        ref, cur = frames(rows)
        columns = list(ref.columns)
        start = time.perf_counter()
        result = dataset_drift(ref, cur, columns)
        elapsed = time.perf_counter() - start
        flagged = sorted(d.column for d in result if d.drifted)
        exact = flagged == sorted(SHIFTED + REWEIGHTED)
        print(
            f"drift rows={rows:>9,} columns=25 time={elapsed:.3f}s flagged={flagged} "
            f"exact={'yes' if exact else 'NO'} peak_rss={peak_rss_mb():.0f}MB"
        )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100_000, 1_000_000])
