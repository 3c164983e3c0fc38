"""Full validation suite on a 100,000-row holdout (issue 4): every check kind
that needs no second version or retraining (artifact, schema, quality,
performance with bootstrap intervals, drift, fairness, calibration, slices,
robustness and latency), run by `validate --data` on the credit-risk model.

    python benchmarks/validation_suite.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import fresh_workspace, peak_rss_mb

from cmi_console.services import identity, policies, registry, training, validations

REPO = Path(__file__).resolve().parents[1]
SUITE = """
format = 1
model = "credit-risk"
tier = "high"

[stages.production]
approvals = [{ role = "reviewer", count = 2 }, { role = "risk-officer", count = 1 }]
suite = "full"

[suites.full]
description = "every check that runs on one version and its holdout"

[[suites.full.checks]]
kind = "artifact"

[[suites.full.checks]]
kind = "schema"
[suites.full.checks.columns.age]
dtype = "int"
min = 18
max = 100
[suites.full.checks.columns.sex]
allowed = ["F", "M"]

[[suites.full.checks]]
kind = "quality"

[[suites.full.checks]]
kind = "performance"
min = { roc_auc = 0.6 }

[[suites.full.checks]]
kind = "drift"

[[suites.full.checks]]
kind = "fairness"
blocking = false

[[suites.full.checks]]
kind = "calibration"

[[suites.full.checks]]
kind = "slices"
column = "region"

[[suites.full.checks]]
kind = "robustness"

[[suites.full.checks]]
kind = "latency"
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "data"))
    from generate import credit

    ctx = fresh_workspace(f"suite-{args.rows}")
    identity.add_user(ctx, "val", ["validator"])
    folder = Path(tempfile.mkdtemp())
    policy = folder / "credit-full.toml"
    policy.write_text(SUITE)
    ctx.actor = "dev"
    registry.create_model(ctx, "credit-risk")
    training.train(ctx, REPO / "data/recipes/credit-gbm.toml", root=REPO)
    ctx.actor = "root"
    policies.activate(ctx, policy)
    holdout = folder / "holdout.csv"
    credit(args.rows, seed=11).to_csv(holdout, index=False)
    ctx.actor = "val"
    seen: list[tuple[str, float, str]] = []
    last = [time.perf_counter()]

    def progress(done: int, total: int, result: object) -> None:
        if result is not None:
            now = time.perf_counter()
            seen.append(
                (getattr(result, "label", "?"), now - last[0], getattr(result, "status", ""))
            )
            last[0] = now

    t0 = time.perf_counter()
    out = validations.validate(ctx, "credit-risk:1", suite="full", data=holdout, progress=progress)
    took = time.perf_counter() - t0
    print(
        f"suite 'full' on {args.rows} holdout rows: {took:.2f} s, status {out['status']}, "
        f"peak RSS {peak_rss_mb():.0f} MB"
    )
    for label, secs, status in seen:
        print(f"  {label:12s} {secs:6.2f} s  {status}")


if __name__ == "__main__":
    main()
