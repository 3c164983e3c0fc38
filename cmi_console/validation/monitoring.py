"""What is measured on a window of production feedback, vectorized with
pandas and numpy: data quality, data drift against the training reference
(the same drift engine as validation), prediction drift, performance once
labels exist, fairness across groups, business KPIs per version, and for a
shadow or an A/B test, champion against challenger with a significance test
and the sample size still needed.

The window frame has the version's feature columns, `version` (int, the
version that predicted the row), `prediction`, and optionally `score` (the
positive class's probability), the target column (labels), `id`, `timestamp`
and extra numeric columns (KPIs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from cmi_console.validation.conformance import as_text
from cmi_console.validation.drift import DISTANCES, column_drift, dataset_drift
from cmi_console.validation.fairness_check import group_rates, parity
from cmi_console.validation.training import all_metrics

RESERVED = ("version", "prediction", "score", "id", "timestamp")


@dataclass
class WindowSpec:
    features: list[str]
    target: str
    task: str  # classification | regression
    sensitive: list[str]
    reference: Any  # the training split (DataFrame)
    # version -> its predictions on the reference (scores for a binary classifier)
    reference_predictions: dict[int, Any]
    primary: int  # the stable version: its rows define the window's inputs
    classes: list[Any] = field(default_factory=list)
    champion: int | None = None
    challenger: int | None = None
    mode: str | None = None  # shadow (paired rows) | ab (independent rows)
    significance: float = 0.05
    power: float = 0.8
    comparison_metric: str = "accuracy"

    @property
    def binary(self) -> bool:
        return self.task == "classification" and len(self.classes) == 2

    @property
    def positive(self) -> Any:
        return self.classes[1] if self.binary else None


def _r(x: float | None) -> float | None:
    # not measured, or not a number the result's canonical JSON can hold (a
    # mean of finite values can still overflow to inf)
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), 10)


def _others(frame: Any, spec: WindowSpec) -> list[Any]:
    """The window's columns that are neither the model's nor reserved."""
    known = {*spec.features, spec.target, *spec.sensitive, *RESERVED}
    return [c for c in frame.columns if c not in known]


def kpi_columns(frame: Any, spec: WindowSpec) -> list[str]:
    from pandas.api.types import is_numeric_dtype

    return [c for c in _others(frame, spec) if is_numeric_dtype(frame[c])]


def unmeasured(frame: Any, spec: WindowSpec) -> dict[str, str]:
    """The other columns that nothing measures, not being numbers (a KPI must
    be), each with its first value: a KPI written as text (`1,204.50`, a
    spreadsheet's thousands separator) was dropped without a word."""
    from pandas.api.types import is_numeric_dtype

    out = {}
    for column in _others(frame, spec):
        if not is_numeric_dtype(frame[column]):
            values = frame[column].dropna()
            out[str(column)] = str(values.iloc[0])[:40] if len(values) else ""
    return out


def quality(frame: Any, spec: WindowSpec) -> dict[str, Any]:
    from pandas.api.types import is_numeric_dtype

    feats = frame[spec.features]
    missing = feats.isna().mean()
    unseen: dict[str, float] = {}
    for c in spec.features:
        ref = spec.reference[c]
        # a category column, as check_features tells one (pandas 3 reads text
        # as its string dtype: `dtype == object` had matched none)
        if not is_numeric_dtype(ref):
            share = float((~feats[c].isin(ref.unique()) & feats[c].notna()).mean())
            if share:
                unseen[c] = _r(share)  # type: ignore[assignment]
    return {
        "rows": len(frame),
        "missing_share": _r(float(missing.max()) if len(missing) else 0.0),
        "missing_by_column": {c: _r(v) for c, v in missing.items() if v > 0},
        "duplicate_share": _r(float(feats.duplicated().mean()) if len(feats) else 0.0),
        "unseen_categories": unseen,
    }


def _proba(sub: Any, spec: WindowSpec) -> Any | None:
    import numpy as np

    if not spec.binary or "score" not in sub:
        return None
    s = sub["score"].to_numpy(dtype=float)
    return np.column_stack([1 - s, s])


def _signal(sub: Any, spec: WindowSpec) -> Any:
    """What prediction drift compares: the score of a binary classifier, else
    the prediction itself."""
    return sub["score"] if spec.binary and "score" in sub else sub["prediction"]


def _performance(sub: Any, spec: WindowSpec) -> dict[str, Any] | None:
    if spec.target not in sub:
        return None
    labelled = sub[sub[spec.target].notna()]
    if labelled.empty:
        return None
    y, pred = labelled[spec.target], labelled["prediction"]
    if spec.task == "classification":
        y = y.astype(type(spec.classes[0])) if spec.classes else y
    proba = _proba(labelled, spec)
    try:
        scores = all_metrics(spec.task, y, pred, proba)
    except ValueError:
        scores = {}
    if spec.task == "classification" and "accuracy" in scores:
        scores["error_rate"] = _r(1 - scores["accuracy"])  # type: ignore[assignment]
    return {"labelled": len(labelled), **scores}


def _fairness(sub: Any, spec: WindowSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not spec.binary:
        return out
    labelled = spec.target in sub and sub[spec.target].notna().all()
    for attr in spec.sensitive:
        if attr not in sub:
            continue
        y = sub[spec.target] if labelled else sub["prediction"]
        rates = group_rates(y, sub["prediction"], sub[attr], spec.positive)
        gaps = parity(rates)
        if not labelled:  # without labels only the selection rates mean anything
            gaps = {k: v for k, v in gaps.items() if k.startswith("demographic")}
        out[attr] = {k: _r(v) for k, v in gaps.items()}
    return out


def analyse(frame: Any, spec: WindowSpec) -> dict[str, Any]:
    """Everything measured on one window, as plain JSON (stable floats, so the
    result hashes the same on every run)."""
    import numpy as np

    versions = sorted(int(v) for v in frame["version"].unique())
    primary_rows = frame[frame["version"] == spec.primary]
    inputs = primary_rows if len(primary_rows) else frame
    drift = dataset_drift(spec.reference, inputs, spec.features)
    drift_share = sum(d.drifted for d in drift) / max(len(drift), 1)
    q = quality(inputs, spec)
    kpis = kpi_columns(frame, spec)
    out: dict[str, Any] = {
        "rows": len(frame),
        "quality": q,
        "drift": {"share": _r(drift_share), "columns": [d.as_json() for d in drift]},
        "versions": {},
    }
    for v in versions:
        sub = frame[frame["version"] == v]
        entry: dict[str, Any] = {"rows": len(sub)}
        ref = spec.reference_predictions.get(v)
        signal = _signal(sub, spec)
        if ref is not None and len(sub):
            pd_ = column_drift("prediction", ref, signal)
            # the window metric is a distance at every size: below LARGE
            # training rows the verdict's score is a p-value, which falls as
            # the drift grows, and one metric name held both
            far = (
                pd_
                if pd_.method in DISTANCES
                else column_drift("prediction", ref, signal, "distance")
            )
            entry["prediction_drift"] = {
                "method": pd_.method,
                "score": pd_.score,
                "drifted": pd_.drifted,
                "distance_method": far.method,
                "distance": far.score,
            }
        if spec.task == "classification" and spec.binary:
            entry["positive_rate"] = _r(float((sub["prediction"] == spec.positive).mean()))
        else:
            entry["mean_prediction"] = _r(float(sub["prediction"].astype(float).mean()))
        perf = _performance(sub, spec)
        if perf is not None:
            entry["performance"] = perf
        fair = _fairness(sub, spec)
        if fair:
            entry["fairness"] = fair
        if kpis:
            with np.errstate(over="ignore"):  # an overflowing mean is recorded as None
                entry["kpis"] = {c: _r(float(sub[c].mean())) for c in kpis}
        entry["summary"] = _summary(entry, drift_share, q)
        out["versions"][str(v)] = entry
    if spec.mode and spec.champion in versions and spec.challenger in versions:
        out["comparison"] = compare(frame, spec)
    return out


def _summary(entry: dict[str, Any], drift_share: float, q: dict[str, Any]) -> dict[str, float]:
    """The flat metrics that policy criteria and triggers read."""
    flat: dict[str, float] = {"drift_share": _r(drift_share), "missing_share": q["missing_share"]}  # type: ignore[dict-item]
    if "prediction_drift" in entry:
        flat["prediction_drift"] = entry["prediction_drift"]["distance"]
    for k, v in (entry.get("performance") or {}).items():
        if k != "labelled" and v is not None:
            flat[k] = v
    gaps = [a.get("demographic_parity_difference") for a in entry.get("fairness", {}).values()]
    gaps = [g for g in gaps if g is not None]
    if gaps:
        flat["demographic_parity_difference"] = max(gaps)
    return flat


def _loss(sub: Any, spec: WindowSpec) -> Any:
    """Per-row loss for the comparison metric: 0/1 error, or absolute or
    squared error for a regression."""
    import numpy as np

    y = sub[spec.target]
    if spec.task == "classification":
        # as classes, not as text: labels with an empty cell are read as
        # floats, and "1.0" against a prediction of "1" was an error on every row
        return (as_text(sub["prediction"]) != as_text(y)).to_numpy(dtype=float)
    err = sub["prediction"].to_numpy(dtype=float) - y.to_numpy(dtype=float)
    return np.abs(err) if spec.comparison_metric == "mae" else err**2


def _z(p: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(p))


def compare(frame: Any, spec: WindowSpec) -> dict[str, Any]:
    """Champion vs challenger. A shadow pairs rows (by `id`, else by order);
    an A/B test compares independent groups. The metric difference is the
    challenger's minus the champion's (accuracy: higher is better)."""
    import numpy as np
    from scipy import stats

    champ = frame[frame["version"] == spec.champion]
    chall = frame[frame["version"] == spec.challenger]
    out: dict[str, Any] = {
        "mode": spec.mode,
        "champion": spec.champion,
        "challenger": spec.challenger,
        "metric": spec.comparison_metric,
    }
    if spec.mode == "shadow":
        if "id" in frame:
            both = champ.merge(chall, on="id", suffixes=("_c", "_h"))
            pc, ph = both["prediction_c"], both["prediction_h"]
            champ = both.rename(columns={"prediction_c": "prediction"})
            chall = both.rename(columns={"prediction_h": "prediction"})
            target = f"{spec.target}_c"
            if target in both:
                champ = champ.rename(columns={target: spec.target})
                chall = chall.rename(columns={target: spec.target})
        else:
            n = min(len(champ), len(chall))
            champ, chall = champ.iloc[:n], chall.iloc[:n].set_index(champ.index[:n])
            pc, ph = champ["prediction"], chall["prediction"]
            if spec.target in champ:
                chall = chall.assign(**{spec.target: champ[spec.target]})
        out["pairs"] = len(pc)
        if spec.task == "classification":
            out["agreement"] = _r(float((as_text(pc) == as_text(ph)).mean()))
        else:
            out["mean_abs_difference"] = _r(float(np.mean(np.abs(pc - ph))))
    if spec.target not in champ or spec.target not in chall:
        out["status"] = "needs labels"
        return out
    champ = champ[champ[spec.target].notna()]
    chall = chall[chall[spec.target].notna()]
    if not len(champ) or not len(chall):
        out["status"] = "needs labels"
        return out
    lc, lh = _loss(champ, spec), _loss(chall, spec)
    # difference in the metric's own terms (accuracy = 1 - mean 0/1 loss)
    mc, mh = float(lc.mean()), float(lh.mean())
    if spec.comparison_metric == "accuracy":
        mc, mh = 1 - mc, 1 - mh
    if spec.comparison_metric == "rmse":
        mc, mh = math.sqrt(mc), math.sqrt(mh)
    out["champion_value"], out["challenger_value"] = _r(mc), _r(mh)
    out["difference"] = _r(mh - mc)
    za, zb = _z(1 - spec.significance / 2), _z(spec.power)
    paired = spec.mode == "shadow" and len(lc) == len(lh)
    if paired:
        d = lh - lc
        if spec.task == "classification":
            b, c = int((d < 0).sum()), int((d > 0).sum())  # challenger right only / wrong only
            p = float(stats.binomtest(min(b, c), b + c, 0.5).pvalue) if b + c else 1.0
            out["test"] = "mcnemar-exact"
        else:
            p = float(stats.ttest_rel(lh, lc).pvalue) if np.std(d) > 0 else 1.0
            out["test"] = "paired-t"
        mean_d, sd_d, n_have = float(d.mean()), float(d.std(ddof=1)) if len(d) > 1 else 0.0, len(d)
        need = ((za + zb) * sd_d / mean_d) ** 2 if mean_d else None
    else:
        if spec.task == "classification":
            n1, n2 = len(lc), len(lh)
            pooled = (lc.sum() + lh.sum()) / (n1 + n2)
            se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2)) if 0 < pooled < 1 else 0.0
            z = (lh.mean() - lc.mean()) / se if se else 0.0
            p = float(2 * stats.norm.sf(abs(z)))
            out["test"] = "two-proportion-z"
        else:
            p = float(stats.ttest_ind(lh, lc, equal_var=False).pvalue)
            out["test"] = "welch-t"
        mean_d = float(lh.mean() - lc.mean())
        var = float(lc.var(ddof=1) + lh.var(ddof=1)) if min(len(lc), len(lh)) > 1 else 0.0
        n_have = min(len(lc), len(lh))
        need = (za + zb) ** 2 * var / mean_d**2 if mean_d else None
    if math.isnan(p):
        p = 1.0
    out["p_value"] = _r(p)
    out["significant"] = p < spec.significance
    # every loss is lower-is-better, accuracy's 0/1 loss included
    out["better"] = None if not out["significant"] else ("challenger" if mean_d < 0 else "champion")
    out["sample_size"] = n_have
    # rows (pairs, or rows per arm) a test of this power needs to detect the
    # observed difference; None when there is no difference to detect
    out["needed"] = None if need is None else int(math.ceil(need))
    out["still_needed"] = None if need is None else max(0, int(math.ceil(need)) - n_have)
    out["status"] = "decided" if out["significant"] else "undecided"
    return out
