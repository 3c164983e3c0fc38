"""The data the drift benchmark and the Evidently comparison share. Only
numpy and pandas, so it also runs in a peer tool's own virtual environment.

A case is (reference, current, columns):

- `synthetic-N`: 20 numeric and 5 categorical columns; in current, 4 numeric
  columns are shifted by half a standard deviation and 1 categorical column
  is re-weighted (issue 4's drift benchmark);
- `credit-q3`: the credit training file against the drifted 2026 Q3 file
  (over 1,000 reference rows: Wasserstein and Jensen-Shannon distances);
- `credit-small`: the first 800 and 600 rows of each (KS and chi-square tests).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

SHIFTED = ["n0", "n1", "n2", "n3"]
REWEIGHTED = ["c0"]
DATA = Path(__file__).resolve().parents[1] / "data"


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


def cases(synthetic_rows: int = 20_000) -> dict[str, tuple[pd.DataFrame, pd.DataFrame, list[str]]]:
    ref, cur = frames(synthetic_rows)
    credit = pd.read_csv(DATA / "credit.csv")
    q3 = pd.read_csv(DATA / "credit-2026q3.csv")
    features = [c for c in credit.columns if c not in ("default", "sex")]
    return {
        f"synthetic-{synthetic_rows}": (ref, cur, list(ref.columns)),
        "credit-q3": (credit, q3, features),
        "credit-small": (credit.head(800), q3.head(600), features),
    }


def fingerprint(frame: pd.DataFrame, columns: list[str]) -> str:
    """The same rows in both environments (numpy's streams and pandas' text
    are stable, but a test should know rather than assume)."""
    text = frame[columns].to_csv(index=False, float_format="%.10g")
    return hashlib.sha256(text.encode()).hexdigest()
