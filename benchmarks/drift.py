"""Drift check speed and correctness (issue 4 budget: <= 0.5 s at 100,000 rows,
<= 5 s and <= 2 GB at 1,000,000 rows; exactly the 5 changed columns flagged).

Reference and current have 20 numeric and 5 categorical columns; in current,
4 numeric columns are shifted and 1 categorical column is re-weighted.

    python benchmarks/drift.py [ROWS ...]
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
from _common import peak_rss_mb

from cmi_console.validation.drift import dataset_drift

SHIFTED = ["n0", "n1", "n2", "n3"]
REWEIGHTED = ["c0"]


def frames(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def make(shift: bool) -> pd.DataFrame:
        cols: dict[str, object] = {}
        for i in range(20):
            scale = 1.0 + i / 10
            x = rng.normal(0, scale, rows)
            if shift and f"n{i}" in SHIFTED:
                x = x + 0.5 * scale  # half a standard deviation
            cols[f"n{i}"] = x
        for j in range(5):
            p = [0.5, 0.3, 0.15, 0.05]
            if shift and f"c{j}" in REWEIGHTED:
                p = [0.2, 0.3, 0.3, 0.2]
            cols[f"c{j}"] = rng.choice(np.array(["a", "b", "c", "d"], dtype=object), rows, p=p)
        return pd.DataFrame(cols)

    return make(False), make(True)


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
