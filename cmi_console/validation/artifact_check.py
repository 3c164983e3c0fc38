"""The `artifact` check: the bytes are the registered ones and load safely."""

from __future__ import annotations

from cmi_console.core.errors import IntegrityError
from cmi_console.core.policy import CheckSpec
from cmi_console.validation.results import FAIL, PASS, CheckResult
from cmi_console.validation.subject import Subject


def run(spec: CheckSpec, subject: Subject) -> CheckResult:
    try:
        model = subject.load_model()
    except IntegrityError as exc:
        return CheckResult(
            spec.label,
            spec.kind,
            FAIL,
            exc.message,
            spec.blocking,
            value=subject.artifact_format,
            threshold="sha256 match, trusted types only",
        )
    return CheckResult(
        spec.label,
        spec.kind,
        PASS,
        f"SHA-256 {subject.artifact_sha256[:12]} matches; loads as {type(model).__name__}",
        spec.blocking,
        value=subject.artifact_sha256,
        threshold="sha256 match, trusted types only",
        details={"estimator": f"{type(model).__module__}.{type(model).__name__}"},
    )
