"""Our drift verdicts per column match Evidently's on the same data.

Evidently 0.7 needs pandas < 3, so it runs in its own environment: its
verdicts are recorded in tests/data/evidently_drift.json by
benchmarks/peers/evidently_drift.py (which says how to run it again). Here
our engine runs on the same rows (checked by fingerprint) and must agree on
every column's method, verdict and score."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import REPO

from cmi_console.validation.drift import dataset_drift

sys.path.insert(0, str(REPO / "benchmarks"))
from drift_data import cases, fingerprint  # noqa: E402

RECORDED = json.loads((REPO / "tests" / "data" / "evidently_drift.json").read_text())
# our method names -> Evidently's
METHODS = {
    "wasserstein_distance_norm": "Wasserstein distance (normed)",
    "jensenshannon": "Jensen-Shannon distance",
    "ks": "K-S p_value",
    "chisquare": "chi-square p_value",
}


@pytest.mark.parametrize("name", sorted(RECORDED["cases"]))
def test_column_verdicts_match_evidently(name: str) -> None:
    recorded = RECORDED["cases"][name]
    reference, current, columns = cases()[name]
    # the very rows Evidently saw
    assert fingerprint(reference, columns) == recorded["reference"]
    assert fingerprint(current, columns) == recorded["current"]
    ours = {d.column: d for d in dataset_drift(reference, current, columns)}
    theirs = recorded["columns"]
    assert set(ours) == set(theirs)
    for column, expected in theirs.items():
        mine = ours[column]
        assert METHODS[mine.method] == expected["method"], column
        assert mine.threshold == expected["threshold"], column
        assert mine.drifted == expected["drifted"], column
        assert mine.score == pytest.approx(expected["score"], rel=1e-6, abs=1e-9), column


def test_the_recording_flags_the_known_shifts() -> None:
    """The recording is not vacuous: Evidently found exactly the planted shifts."""
    synthetic = next(c for n, c in RECORDED["cases"].items() if n.startswith("synthetic"))
    flagged = sorted(c for c, v in synthetic["columns"].items() if v["drifted"])
    assert flagged == ["c0", "n0", "n1", "n2", "n3"]
