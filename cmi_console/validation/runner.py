"""Run a suite's checks in order, with progress and cancellation."""

from __future__ import annotations

import threading
from collections.abc import Callable

from cmi_console.core.canonical import canonical_bytes
from cmi_console.core.policy import CheckSpec
from cmi_console.validation import (
    artifact_check,
    data_checks,
    drift_check,
    fairness_check,
    model_checks,
    performance_check,
)
from cmi_console.validation.evidence import MAX_KEPT, kept_warnings
from cmi_console.validation.results import ERROR, CheckResult
from cmi_console.validation.subject import Subject

CheckFn = Callable[[CheckSpec, Subject], CheckResult]

# kind -> implementation; core.policy.CHECK_SPECS holds the same kinds' settings
CHECKS: dict[str, CheckFn] = {
    "artifact": artifact_check.run,
    "performance": performance_check.run,  # type: ignore[dict-item]
    "drift": drift_check.run,  # type: ignore[dict-item]
    "fairness": fairness_check.run,  # type: ignore[dict-item]
    "schema": data_checks.run_schema,  # type: ignore[dict-item]
    "quality": data_checks.run_quality,  # type: ignore[dict-item]
    "calibration": model_checks.run_calibration,  # type: ignore[dict-item]
    "slices": model_checks.run_slices,  # type: ignore[dict-item]
    "robustness": model_checks.run_robustness,  # type: ignore[dict-item]
    "champion": model_checks.run_champion,  # type: ignore[dict-item]
    "latency": model_checks.run_latency,  # type: ignore[dict-item]
    "reproducibility": model_checks.run_reproducibility,  # type: ignore[dict-item]
}


class Cancelled(Exception):
    """The run was cancelled between two checks; nothing is recorded."""


def run_suite(
    specs: list[CheckSpec],
    subject: Subject,
    progress: Callable[[int, int, CheckResult | None], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[CheckResult]:
    results: list[CheckResult] = []
    for i, spec in enumerate(specs):
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"cancelled after {i} of {len(specs)} checks")
        if progress:
            progress(i, len(specs), None)
        results.append(_run_one(spec, subject))
        if progress:
            progress(i + 1, len(specs), results[-1])
    return results


def _run_one(spec: CheckSpec, subject: Subject) -> CheckResult:
    with kept_warnings() as said:  # evidence, kept with the result
        try:
            result = CHECKS[spec.kind](spec, subject)
        except Exception as exc:  # a check that breaks is an error result, never a pass
            result = CheckResult(
                spec.label, spec.kind, ERROR, f"{type(exc).__name__}: {exc}", spec.blocking
            )
    # a check may pass on warnings it collected itself (a retraining's)
    result.warnings = list(dict.fromkeys([*result.warnings, *said]))[:MAX_KEPT]
    try:
        canonical_bytes(result.as_json())
    except ValueError as exc:
        # e.g. a NaN measured: the run could be neither hashed nor recorded
        return CheckResult(
            spec.label,
            spec.kind,
            ERROR,
            f"measured a value that cannot be recorded: {exc}",
            spec.blocking,
            warnings=result.warnings,  # not its details: the value may sit there
        )
    return result
