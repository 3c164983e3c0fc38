"""The `fairness` check: demographic parity (difference and ratio), equalized
odds difference, and the gap in a chosen metric between groups, per sensitive
attribute, for a binary classifier on the holdout (fairlearn's definitions)."""

from __future__ import annotations

from typing import Any

from cmi_console.core.policy import FairnessCheck
from cmi_console.validation.conformance import as_text
from cmi_console.validation.results import FAIL, PASS, CheckResult
from cmi_console.validation.subject import Subject
from cmi_console.validation.training import metric, predictions


def group_rows(groups: Any) -> dict[str, Any]:
    """Each group's name and rows (a boolean mask). A row without a value is
    in no group: it had made a group "nan" of no rows, whose rates of 0 were
    taken as a disparity. Named as the values they are (conformance.as_text:
    a yes/no attribute with an empty cell read as 1.0 is group "1")."""
    import numpy as np
    import pandas as pd

    names = as_text(pd.Series(np.asarray(groups, dtype=object)))
    present = names.notna().to_numpy()
    values = names.to_numpy()
    return {str(g): (values == g) & present for g in sorted(set(values[present]), key=str)}


def group_rates(y: Any, pred: Any, groups: Any, positive: Any) -> dict[str, dict[str, float]]:
    return _rates(y, pred, group_rows(groups), positive)


def _rates(y: Any, pred: Any, rows: dict[str, Any], positive: Any) -> dict[str, dict[str, float]]:
    import numpy as np

    y, pred = np.asarray(y), np.asarray(pred)
    out = {}
    for name, m in rows.items():
        yt, yp = y[m] == positive, pred[m] == positive
        out[name] = {
            "n": int(m.sum()),
            "selection_rate": float(yp.mean()) if m.any() else 0.0,
            "tpr": float(yp[yt].mean()) if yt.any() else 0.0,
            "fpr": float(yp[~yt].mean()) if (~yt).any() else 0.0,
        }
    return out


def parity(rates: dict[str, dict[str, float]]) -> dict[str, float]:
    sel = [r["selection_rate"] for r in rates.values()]
    tpr = [r["tpr"] for r in rates.values()]
    fpr = [r["fpr"] for r in rates.values()]
    return {
        "demographic_parity_difference": max(sel) - min(sel),
        "demographic_parity_ratio": (min(sel) / max(sel)) if max(sel) > 0 else 1.0,
        "equalized_odds_difference": max(max(tpr) - min(tpr), max(fpr) - min(fpr)),
    }


def run(spec: FairnessCheck, subject: Subject) -> CheckResult:
    ev = subject.evaluation()
    if ev.task != "classification":
        raise ValueError("fairness needs a classifier")
    attributes = spec.attributes or ev.sensitive
    if not attributes:
        raise ValueError("no sensitive attribute: set data.sensitive in the recipe")
    model = subject.load_model()
    y = ev.labels()
    pred, proba = predictions(model, ev.current[ev.features], ev.task)
    classes = sorted(set(y.tolist()))
    if len(classes) != 2:
        raise ValueError("fairness needs a binary target")
    positive = classes[1]
    values: dict[str, Any] = {}
    problems: list[str] = []
    for attr in attributes:
        if attr not in ev.current:
            raise ValueError(f"sensitive attribute '{attr}' is not in the data")
        groups = group_rows(ev.current[attr])  # once, for the rates and the metric gap
        rates = _rates(y, pred, groups, positive)
        scores = {k: round(v, 10) for k, v in parity(rates).items()}
        if spec.metric:
            import numpy as np

            per = {
                g: metric(
                    spec.metric,
                    np.asarray(y)[rows],
                    pred[rows],
                    None if proba is None else proba[rows],
                )
                for g, rows in groups.items()
            }
            scores["metric_gap"] = round(max(per.values()) - min(per.values()), 10)
        values[attr] = {"groups": rates, **scores}
        if scores["demographic_parity_difference"] > spec.max_demographic_parity_difference:
            problems.append(
                f"{attr}: demographic parity difference "
                f"{scores['demographic_parity_difference']:.3f}"
            )
        if scores["demographic_parity_ratio"] < spec.min_demographic_parity_ratio:
            problems.append(
                f"{attr}: demographic parity ratio {scores['demographic_parity_ratio']:.3f}"
            )
        if scores["equalized_odds_difference"] > spec.max_equalized_odds_difference:
            problems.append(
                f"{attr}: equalized odds difference {scores['equalized_odds_difference']:.3f}"
            )
        if spec.max_metric_gap is not None and scores.get("metric_gap", 0) > spec.max_metric_gap:
            problems.append(f"{attr}: {spec.metric} gap {scores['metric_gap']:.3f}")
    return CheckResult(
        spec.label,
        spec.kind,
        FAIL if problems else PASS,
        "; ".join(problems) if problems else f"within thresholds for {', '.join(attributes)}",
        spec.blocking,
        value=values,
        threshold=spec.model_dump(exclude={"kind", "name", "blocking", "attributes"}),
    )
