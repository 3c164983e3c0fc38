"""Checks on the model's behaviour: calibration, slices, robustness,
champion comparison and reproducibility."""

from __future__ import annotations

import math
from typing import Any

from cmi_console.core.policy import (
    CalibrationCheck,
    ChampionCheck,
    LatencyCheck,
    ReproducibilityCheck,
    RobustnessCheck,
    SlicesCheck,
)
from cmi_console.validation.conformance import as_text
from cmi_console.validation.results import FAIL, PASS, CheckResult
from cmi_console.validation.subject import Evaluation, Subject
from cmi_console.validation.training import metric, predictions

LOWER_IS_BETTER = {"log_loss", "brier", "rmse", "mae"}


def default_metric(task: str, configured: str | None) -> str:
    return configured or ("accuracy" if task == "classification" else "r2")


def _score(model: Any, ev: Evaluation, frame: Any, name: str) -> float:
    pred, proba = predictions(model, frame[ev.features], ev.task)
    return metric(name, ev.labels(frame), pred, proba)


def _result(spec: Any, ok: bool, text: str, value: Any, threshold: Any) -> CheckResult:
    return CheckResult(
        spec.label, spec.kind, PASS if ok else FAIL, text, spec.blocking, value, threshold
    )


def expected_calibration_error(y_true: Any, p_positive: Any, bins: int) -> float:
    import numpy as np

    y, p = np.asarray(y_true, float), np.asarray(p_positive, float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += abs(y[m].mean() - p[m].mean()) * m.sum() / len(p)
    return float(ece)


def run_calibration(spec: CalibrationCheck, subject: Subject) -> CheckResult:
    ev = subject.evaluation()
    model = subject.load_model()
    y = ev.labels()
    classes = sorted(set(y.tolist()))
    if ev.task != "classification" or len(classes) != 2:
        raise ValueError("calibration needs a binary classifier")
    _pred, proba = predictions(model, ev.current[ev.features], ev.task)
    positive = (y == classes[1]).astype(int)
    ece = round(expected_calibration_error(positive, proba[:, 1], spec.bins), 10)
    brier = round(metric("brier", y, _pred, proba), 10)
    problems = [f"ECE {ece:.4f} > {spec.max_ece}"] if ece > spec.max_ece else []
    if spec.max_brier is not None and brier > spec.max_brier:
        problems.append(f"Brier {brier:.4f} > {spec.max_brier}")
    return _result(
        spec,
        not problems,
        "; ".join(problems) or f"ECE {ece:.4f}, Brier {brier:.4f}",
        {"ece": ece, "brier": brier},
        {"max_ece": spec.max_ece, "max_brier": spec.max_brier, "bins": spec.bins},
    )


MISSING = "(missing)"  # the slice of rows without a value


def run_slices(spec: SlicesCheck, subject: Subject) -> CheckResult:
    import pandas as pd
    from pandas.api.types import is_numeric_dtype

    ev = subject.evaluation()
    if spec.column not in ev.current:
        raise ValueError(f"column '{spec.column}' is not in the data")
    name = default_metric(ev.task, spec.metric)
    model = subject.load_model()
    data = ev.current
    col = data[spec.column]
    keys = (
        pd.qcut(col, spec.bins, duplicates="drop").astype(str)
        if is_numeric_dtype(col) and col.nunique() > spec.bins
        else as_text(col)
    )
    # rows without a value are a slice of their own (pandas 3 keeps them
    # missing through astype(str), and sorting a float with text failed)
    keys = keys.astype(object).where(col.notna(), MISSING)
    overall = _score(model, ev, data, name)
    slices = {}
    # each slice's rows from one pass: a mask per distinct value was a pass
    # per value (a column of 50,000 distinct values, 5e9 comparisons)
    for key, rows in sorted(data.groupby(keys.to_numpy(), sort=False).indices.items()):
        if len(rows) >= spec.min_rows:
            try:
                slices[key] = round(_score(model, ev, data.iloc[rows], name), 10)
            except ValueError:
                continue
    if not slices:
        raise ValueError(f"no slice of '{spec.column}' has {spec.min_rows} rows")
    lower = name in LOWER_IS_BETTER
    worst = max(slices, key=slices.get) if lower else min(slices, key=slices.get)  # type: ignore[arg-type]
    gap = round(abs(slices[worst] - overall), 10)
    return _result(
        spec,
        gap <= spec.max_gap,
        f"worst slice {spec.column}={worst}: {name} {slices[worst]:.4f} vs {overall:.4f} overall "
        f"(gap {gap:.4f}, max {spec.max_gap})",
        {"overall": round(overall, 10), "slices": slices, "worst": worst, "gap": gap},
        {"max_gap": spec.max_gap, "metric": name},
    )


def run_robustness(spec: RobustnessCheck, subject: Subject) -> CheckResult:
    import numpy as np
    from pandas.api.types import is_numeric_dtype

    ev = subject.evaluation()
    name = default_metric(ev.task, spec.metric)
    model = subject.load_model()
    rng = np.random.default_rng(subject.seed)
    base = ev.current.reset_index(drop=True)
    clean = _score(model, ev, base, name)
    nums = [c for c in ev.features if is_numeric_dtype(base[c])]
    cats = [c for c in ev.features if c not in nums]
    noisy = base.copy()
    for c in nums:
        noisy[c] = noisy[c] + rng.normal(
            0, spec.noise_std * float(ev.reference[c].std()), len(base)
        )
    holes = base.copy()
    for c in nums:
        holes[c] = holes[c].astype(float)  # an int column cannot hold the mean (pandas 3 refuses)
        mask = rng.random(len(base)) < spec.missing_rate
        # a missing value is filled as a pipeline without an imputer would see it: the mean
        holes.loc[mask, c] = float(ev.reference[c].mean())
    swapped = base.copy()
    for c in cats:
        values = ev.reference[c].dropna().unique()
        mask = rng.random(len(base)) < spec.swap_rate
        swapped.loc[mask, c] = rng.choice(values, int(mask.sum()))
    lower = name in LOWER_IS_BETTER
    drops = {}
    for label, frame in (("noise", noisy), ("missing", holes), ("swap", swapped)):
        if label == "swap" and not cats:
            continue
        score = _score(model, ev, frame, name)
        drops[label] = round((score - clean) if lower else (clean - score), 10)
    worst = max(drops, key=drops.get)  # type: ignore[arg-type]
    return _result(
        spec,
        drops[worst] <= spec.max_drop,
        f"largest {name} drop {drops[worst]:.4f} under {worst} (max {spec.max_drop})",
        {"clean": round(clean, 10), "drops": drops},
        spec.model_dump(exclude={"kind", "name", "blocking"}),
    )


def relative_change(change: float, base: float) -> float:
    """`change` as a share of `base`; from 0, a gain is infinitely large and
    so is a loss (a loss from 0 had counted as an infinite gain)."""
    if base:
        return change / abs(base)
    return math.copysign(math.inf, change) if change else 0.0


def run_champion(spec: ChampionCheck, subject: Subject) -> CheckResult:
    import numpy as np

    ev = subject.evaluation()
    found = subject.champion(spec.stage) if subject.champion else None
    threshold = spec.model_dump(exclude={"kind", "name", "blocking"})
    if found is None:
        ok = spec.missing_champion == "pass"
        return _result(spec, ok, f"no version in {spec.stage} to compare with", None, threshold)
    ref, champion = found
    X, y = ev.current[ev.features], np.asarray(ev.labels())
    cand_pred, cand_proba = predictions(subject.load_model(), X, ev.task)
    champ_pred, champ_proba = predictions(champion, X, ev.task)
    cand = metric(spec.metric, y, cand_pred, cand_proba)
    champ = metric(spec.metric, y, champ_pred, champ_proba)
    sign = 1.0 if spec.higher_is_better else -1.0
    change = sign * (cand - champ)
    relative = relative_change(change, champ)
    problems = []
    if spec.min_absolute_change is not None and change < spec.min_absolute_change:
        problems.append(f"change {change:+.4f} < {spec.min_absolute_change}")
    if spec.min_relative_change is not None and relative < spec.min_relative_change:
        problems.append(f"relative change {relative:+.2%} < {spec.min_relative_change:.2%}")
    p_value = None
    if spec.require_significant:
        rng = np.random.default_rng(subject.seed)
        wins = 0
        for _ in range(spec.bootstrap):  # paired: the same resampled rows for both
            idx = rng.integers(0, len(y), len(y))
            try:
                a = metric(
                    spec.metric,
                    y[idx],
                    cand_pred[idx],
                    None if cand_proba is None else cand_proba[idx],
                )
                b = metric(
                    spec.metric,
                    y[idx],
                    champ_pred[idx],
                    None if champ_proba is None else champ_proba[idx],
                )
            except ValueError:
                continue
            wins += sign * (a - b) > 0
        p_value = round(1 - wins / spec.bootstrap, 6)
        if p_value >= 0.05:
            problems.append(f"not significant (bootstrap p={p_value})")
    return _result(
        spec,
        not problems,
        "; ".join(problems)
        or f"{spec.metric} {cand:.4f} vs champion {ref} {champ:.4f} ({change:+.4f})",
        {
            "candidate": round(cand, 10),
            "champion": round(champ, 10),
            "champion_version": ref,
            "change": round(change, 10),
            "p_value": p_value,
        },
        threshold,
    )


def run_latency(spec: LatencyCheck, subject: Subject) -> CheckResult:
    """One row at a time, as an online service would predict; the row is cut
    from the frame before the clock starts."""
    import time

    import numpy as np

    ev = subject.evaluation()
    model = subject.load_model()
    rows = ev.current[ev.features]
    n = min(spec.sample, len(rows))
    if n == 0:
        raise ValueError("no rows to time")
    sample = rows.sample(n, random_state=subject.seed) if len(rows) > n else rows
    singles = [sample.iloc[i : i + 1] for i in range(n)]
    model.predict(singles[0])  # the first call pays for lazy set-up
    timings = []
    for row in singles:
        start = time.perf_counter()
        model.predict(row)
        timings.append((time.perf_counter() - start) * 1000)
    p50, p95 = (round(float(x), 4) for x in np.percentile(timings, [50, 95]))
    problems = [f"p95 {p95:.3f} ms > {spec.max_p95_ms} ms"] if p95 > spec.max_p95_ms else []
    if spec.max_p50_ms is not None and p50 > spec.max_p50_ms:
        problems.append(f"p50 {p50:.3f} ms > {spec.max_p50_ms} ms")
    result = _result(
        spec,
        not problems,
        "; ".join(problems) or f"p50 {p50:.3f} ms, p95 {p95:.3f} ms over {n} rows",
        {"p50_ms": p50, "p95_ms": p95, "rows": n},
        {"max_p50_ms": spec.max_p50_ms, "max_p95_ms": spec.max_p95_ms, "sample": spec.sample},
    )
    result.volatile = True
    return result


def run_reproducibility(spec: ReproducibilityCheck, subject: Subject) -> CheckResult:
    if subject.reproduce is None:
        raise ValueError("reproducing needs the version's recipe")
    out = subject.reproduce()
    ok = out["metrics_match"] and (out["artifact_match"] or not spec.require_identical_artifact)
    result = _result(
        spec,
        ok,
        f"artifact {'identical' if out['artifact_match'] else 'differs'}, metrics "
        f"{'match' if out['metrics_match'] else 'differ'}",
        {
            "artifact_match": out["artifact_match"],
            "metrics_match": out["metrics_match"],
            "reproduced_sha256": out["reproduced_sha256"],
        },
        {"require_identical_artifact": spec.require_identical_artifact},
    )
    result.warnings = out["warnings"]  # the retraining's own, which it kept
    return result
