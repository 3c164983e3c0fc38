"""Column drift, with Evidently's defaults: above 1,000 reference rows,
Wasserstein distance normed by the reference std (numeric) and Jensen-Shannon
distance (categorical), threshold 0.1; otherwise the two-sample KS test
(numeric) and the chi-square test (categorical), p < 0.05. PSI on request.
Numeric columns with at most 5 distinct values are treated as categorical."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cmi_console.validation.conformance import as_text

LARGE = 1000
DISTANCE_THRESHOLD = 0.1
P_THRESHOLD = 0.05
PSI_THRESHOLD = 0.1
CATEGORICAL_MAX_UNIQUE = 5
NO_VALUES = "no-values"  # the method of a column empty on one side (score: 1.0)
DISTANCES = ("wasserstein_distance_norm", "jensenshannon", NO_VALUES)


@dataclass
class ColumnDrift:
    column: str
    kind: str  # numeric | categorical
    method: str
    score: float
    threshold: float
    drifted: bool

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _is_numeric(ref: Any) -> bool:
    from pandas.api.types import is_numeric_dtype

    return bool(is_numeric_dtype(ref)) and ref.nunique() > CATEGORICAL_MAX_UNIQUE


def _shares(ref: Any, cur: Any) -> tuple[Any, Any, list[Any]]:
    import numpy as np

    keys = sorted(set(ref.dropna().unique()) | set(cur.dropna().unique()), key=str)
    r = ref.value_counts(normalize=True).reindex(keys, fill_value=0).to_numpy()
    c = cur.value_counts(normalize=True).reindex(keys, fill_value=0).to_numpy()
    return np.asarray(r, float), np.asarray(c, float), keys


def wasserstein(ref: Any, cur: Any) -> float:
    """Earth mover's distance between two samples. With equal sizes it is the
    mean gap between the sorted samples (two sorts, no merge), several times
    faster than scipy's general form, which handles the other case."""
    import numpy as np
    from scipy import stats

    u, v = np.asarray(ref, dtype=float), np.asarray(cur, dtype=float)
    if len(u) == len(v):
        return float(np.mean(np.abs(np.sort(u) - np.sort(v))))
    return float(stats.wasserstein_distance(u, v))


def psi(ref: Any, cur: Any, numeric: bool) -> float:
    import numpy as np

    if numeric:
        edges = np.unique(np.quantile(ref.dropna(), np.linspace(0, 1, 11)))
        edges[0], edges[-1] = -np.inf, np.inf
        r = np.histogram(ref.dropna(), edges)[0] / max(ref.notna().sum(), 1)
        c = np.histogram(cur.dropna(), edges)[0] / max(cur.notna().sum(), 1)
    else:
        r, c, _ = _shares(ref, cur)
    r, c = np.clip(r, 1e-4, None), np.clip(c, 1e-4, None)
    return float(np.sum((c - r) * np.log(c / r)))


def column_drift(
    name: str, ref: Any, cur: Any, method: str = "auto", threshold: float | None = None
) -> ColumnDrift:
    """One column's drift. `auto` follows Evidently's defaults (a distance
    above LARGE reference rows, a test's p-value below); `distance` takes the
    distance at every size (a score that grows with the drift); `psi` PSI."""
    import numpy as np
    from scipy import stats
    from scipy.spatial import distance

    ref, cur = ref.dropna(), cur.dropna()
    numeric = _is_numeric(ref)
    kind = "numeric" if numeric else "categorical"
    if not numeric and ref.dtype != cur.dtype:
        # categories compared as the values they name: a yes/no column with
        # an empty cell is read as 1.0 and 0.0, against the training split's
        # True and False (no share in common: a NaN score), an integer code
        # as 7.0 against 7 (two columns of one type compare as they are)
        ref, cur = as_text(ref), as_text(cur)
    if len(ref) == 0 or len(cur) == 0:
        # no values on one side: no test applies (they raise, or answer NaN),
        # and a column that is empty in only one of them has changed
        return ColumnDrift(name, kind, NO_VALUES, 1.0, 1.0, len(ref) != len(cur))
    if method == "psi":
        t = threshold or PSI_THRESHOLD
        score = psi(ref, cur, numeric)
        return ColumnDrift(name, kind, "psi", round(score, 10), t, score >= t)
    if method == "distance" or len(ref) > LARGE:
        t = threshold or DISTANCE_THRESHOLD
        if numeric:
            std = float(np.std(ref))
            score = wasserstein(ref, cur) / (std if std > 0 else 1.0)
            return ColumnDrift(
                name, kind, "wasserstein_distance_norm", round(score, 10), t, score >= t
            )
        r, c, _ = _shares(ref, cur)
        score = float(distance.jensenshannon(r, c))
        return ColumnDrift(name, kind, "jensenshannon", round(score, 10), t, score >= t)
    t = threshold or P_THRESHOLD
    if numeric:
        p = float(stats.ks_2samp(ref, cur).pvalue)
        return ColumnDrift(name, kind, "ks", round(p, 10), t, p < t)
    r, c, keys = _shares(ref, cur)
    observed = cur.value_counts().reindex(keys, fill_value=0).to_numpy()
    expected = np.clip(r, 1e-12, None) * observed.sum()
    expected = expected * observed.sum() / expected.sum()
    p = float(stats.chisquare(observed, expected).pvalue)
    return ColumnDrift(name, kind, "chisquare", round(p, 10), t, p < t)


def dataset_drift(
    reference: Any,
    current: Any,
    columns: list[str],
    method: str = "auto",
    threshold: float | None = None,
) -> list[ColumnDrift]:
    return [column_drift(c, reference[c], current[c], method, threshold) for c in columns]
