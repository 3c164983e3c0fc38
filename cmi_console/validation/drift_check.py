"""The `drift` check: per-column drift; dataset drift when the share of
drifted columns reaches the configured share."""

from __future__ import annotations

from cmi_console.core.policy import DriftCheck
from cmi_console.validation.drift import dataset_drift
from cmi_console.validation.results import FAIL, PASS, CheckResult
from cmi_console.validation.subject import Subject


def run(spec: DriftCheck, subject: Subject) -> CheckResult:
    ev = subject.evaluation()
    columns = spec.columns or ev.features
    missing = [c for c in columns if c not in ev.reference or c not in ev.current]
    if missing:
        raise ValueError(f"column(s) {', '.join(missing)} missing from the data")
    drifts = dataset_drift(ev.reference, ev.current, columns, spec.method, spec.threshold)
    drifted = [d.column for d in drifts if d.drifted]
    share = len(drifted) / len(drifts) if drifts else 0.0
    detected = share >= spec.share
    return CheckResult(
        spec.label,
        spec.kind,
        FAIL if detected else PASS,
        f"{len(drifted)} of {len(drifts)} columns drifted ({share:.0%}; dataset drift at "
        f"{spec.share:.0%})" + (f": {', '.join(drifted)}" if drifted else ""),
        spec.blocking,
        value={"share": round(share, 6), "drifted": drifted},
        threshold={"share": spec.share, "method": spec.method},
        details={"columns": [d.as_json() for d in drifts]},
    )
