"""Monitoring budgets (issue 7): ingesting and evaluating a window of
100,000 rows x 25 columns <= 1 s; `cmi monitor status` over 1,000 windows
<= 300 ms.

The model is a real logistic regression on scikit-learn's breast-cancer data
(its first 19 features). The window resamples those rows with a little noise,
and carries what a serving layer logs: prediction, score, label, timestamp,
version and a KPI (25 columns). It is given as CSV and as Parquet.

    python benchmarks/monitor_window.py [--rows N] [--windows N] [--db URL]

(--db: an empty PostgreSQL database, e.g. postgresql+psycopg://postgres@127.0.0.1/bench)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import fresh_workspace, peak_rss_mb

from cmi_console.services import deployments, gates, identity, monitoring, training, validations
from cmi_console.services.context import Context

FEATURES = 19


def setup(tmp: Path, db: str | None) -> tuple[Context, pd.DataFrame, object]:
    from sklearn.datasets import load_breast_cancer

    ctx = fresh_workspace("monitor", db)
    for name, role in (("val", "validator"), ("val2", "validator"), ("dep", "deployer")):
        identity.add_user(ctx, name, [role])
    frame = load_breast_cancer(as_frame=True).frame
    cols = [c for c in frame.columns if c != "target"][:FEATURES]
    data = frame[[*cols, "target"]].rename(columns=lambda c: c.replace(" ", "_"))
    features = [c.replace(" ", "_") for c in cols]
    (tmp / "cancer.csv").write_text(data.to_csv(index=False))
    recipe = tmp / "cancer.toml"
    recipe.write_text(
        'model = "cancer"\nseed = 0\n[data]\nfile = "cancer.csv"\ntarget = "target"\n'
        '[estimator]\nclass = "sklearn.linear_model.LogisticRegression"\n'
        "params = { max_iter = 2000 }\n"
    )
    ctx.actor = "dev"
    from cmi_console.services import registry

    registry.create_model(ctx, "cancer", "benchmark", "dev")
    training.train(ctx, recipe, root=tmp)
    ctx.actor = "val"
    validations.validate(ctx, "cancer:1", suite="staging")
    # whoever validated may not approve (segregation of duties)
    for stage, approver in (("staging", "val2"), ("production", "rev")):
        ctx.actor = "dev"
        if stage == "production":
            validations.validate(ctx, "cancer:1", suite="production")
        gates.request(ctx, "cancer:1", stage)
        ctx.actor = approver
        gates.decide(ctx, "cancer:1", stage, "approve")
        ctx.actor = "dep"
        gates.promote(ctx, "cancer:1", stage)
    deployments.deploy(ctx, "cancer:1", "production", "direct")
    from cmi_console.store.model_files import loads

    v = registry.show_version(ctx, "cancer:1")
    model = loads(ctx.workspace.artifacts.read(v["artifact_sha256"]), v["artifact_format"])
    return ctx, data[features + ["target"]], (model, features)


def window(data: pd.DataFrame, model_features: object, rows: int, seed: int) -> pd.DataFrame:
    model, features = model_features  # type: ignore[misc]
    rng = np.random.default_rng(seed)
    sample = data.iloc[rng.integers(0, len(data), rows)].reset_index(drop=True)
    X = sample[features] * rng.normal(1.0, 0.02, (rows, len(features)))
    out = X.copy()
    out["prediction"] = model.predict(X)
    out["score"] = np.round(model.predict_proba(X)[:, 1], 6)
    out["target"] = sample["target"].to_numpy()
    start = np.datetime64("2026-11-01T00:00:00")
    out["timestamp"] = np.datetime_as_string(
        start + np.sort(rng.integers(0, 7 * 86400, rows)).astype("timedelta64[s]"), unit="s"
    )
    out["version"] = 1
    out["approved_amount"] = np.round(rng.gamma(2.0, 5000.0, rows), 2)
    assert out.shape[1] == 25
    return out


def main(rows: int, count: int, db: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        ctx, data, mf = setup(tmp, db)
        ctx.actor = "dev"
        big = window(data, mf, rows, seed=1)
        csv, parquet = tmp / "window.csv", tmp / "window.parquet"
        big.to_csv(csv, index=False)
        big.to_parquet(parquet, index=False)
        monitoring.ingest(ctx, "cancer", "production", csv)  # warm imports and caches
        print(
            f"window: {rows:,} rows x {big.shape[1]} columns, CSV {csv.stat().st_size / 1e6:.1f} MB"
        )
        for path in (csv, parquet):
            times = []
            for run in range(3):
                # new rows each run: the same data again is answered with its
                # window and writes nothing
                again = window(data, mf, rows, seed=2 + run)
                if path is csv:
                    again.to_csv(path, index=False)
                else:
                    again.to_parquet(path, index=False)
                t0 = time.perf_counter()
                monitoring.ingest(ctx, "cancer", "production", path)
                t1 = time.perf_counter()
                monitoring.evaluate(ctx, "cancer", "production")
                times.append((t1 - t0, time.perf_counter() - t1))
            ingest_s = statistics.median(t[0] for t in times)
            evaluate_s = statistics.median(t[1] for t in times)
            print(
                f"  {path.suffix[1:]:<8} ingest {ingest_s * 1000:6.0f} ms + evaluate "
                f"{evaluate_s * 1000:4.0f} ms = {(ingest_s + evaluate_s) * 1000:6.0f} ms "
                "(budget 1000 ms)"
            )
        small = tmp / "small.csv"
        have = len(monitoring.status(ctx, "cancer")["windows"])
        t0 = time.perf_counter()
        for i in range(count - have):
            window(data, mf, 200, seed=100 + i).to_csv(small, index=False)
            monitoring.ingest(ctx, "cancer", "production", small, name=f"w{i}")
        build = time.perf_counter() - t0
        runs = []
        for _ in range(7):
            t0 = time.perf_counter()
            status = monitoring.status(ctx, "cancer")
            runs.append(time.perf_counter() - t0)
        assert len(status["windows"]) == count
        print(
            f"monitor status over {count:,} windows: median "
            f"{statistics.median(runs) * 1000:.0f} ms, max {max(runs) * 1000:.0f} ms "
            f"(budget 300 ms; built in {build:.0f} s)"
        )
        import subprocess

        cli = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "cmi_console",
                    "--home",
                    str(ctx.workspace.home),
                    "monitor",
                    "status",
                    "cancer",
                    "--json",
                ],
                check=True,
                capture_output=True,
            )
            cli.append(time.perf_counter() - t0)
        print(
            "  `cmi monitor status --json` end to end: median "
            f"{statistics.median(cli) * 1000:.0f} ms"
        )
        print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--windows", type=int, default=1_000)
    parser.add_argument("--db")
    args = parser.parse_args()
    main(args.rows, args.windows, args.db)
