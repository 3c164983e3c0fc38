"""Evidently's per-column drift verdicts and its speed, on the data our drift
check is tested and benchmarked on. Runs in Evidently's own virtual
environment (Evidently 0.7 needs pandas < 3; we use pandas 3):

    python3 -m venv .venv-evidently
    .venv-evidently/bin/pip install evidently "pandas<3"
    .venv-evidently/bin/python benchmarks/peers/evidently_drift.py [--rows 100000]

It writes tests/data/evidently_drift.json (Evidently's version, and per case
the data's fingerprint and each column's method, score, threshold and
verdict), which tests/test_evidently_parity.py compares with our verdicts,
and prints DataDriftPreset's time at --rows for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from drift_data import cases, fingerprint, frames  # noqa: E402

OUT = HERE.parents[1] / "tests" / "data" / "evidently_drift.json"


def verdicts(reference, current, columns) -> dict:  # type: ignore[no-untyped-def]
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snap = Report([DataDriftPreset()]).run(
        current_data=current[columns], reference_data=reference[columns]
    )
    out = {}
    for m in snap.dict()["metrics"]:
        config = m["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        score = float(m["value"])
        # a distance drifts at or above its threshold, a p-value below it
        p_value = "p_value" in config["method"] or config["method"].endswith("test")
        drifted = score < config["threshold"] if p_value else score >= config["threshold"]
        out[config["column"]] = {
            "method": config["method"],
            "score": score,
            "threshold": config["threshold"],
            "drifted": drifted,
        }
    return out


def main() -> None:
    import evidently
    import numpy
    import pandas

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    args = ap.parse_args()
    doc = {
        "evidently": evidently.__version__,
        "pandas": pandas.__version__,
        "numpy": numpy.__version__,
        "cases": {},
    }
    for name, (ref, cur, columns) in cases().items():
        doc["cases"][name] = {
            "reference": fingerprint(ref, columns),
            "current": fingerprint(cur, columns),
            "columns": verdicts(ref, cur, columns),
        }
        drifted = sorted(c for c, v in doc["cases"][name]["columns"].items() if v["drifted"])
        print(f"{name}: drifted {drifted}")
    OUT.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")
    ref, cur = frames(args.rows)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        verdicts(ref, cur, list(ref.columns))
        times.append(time.perf_counter() - t0)
    print(
        f"Evidently {evidently.__version__} DataDriftPreset, {args.rows:,} rows x 25 columns: "
        f"median {statistics.median(times):.2f} s"
    )


if __name__ == "__main__":
    main()
