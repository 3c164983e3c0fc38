"""What a check reports, and the hash of a whole run."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from cmi_console.core.canonical import canonical_bytes

PASS, FAIL, WARN, ERROR = "pass", "fail", "warn", "error"


@dataclass
class CheckResult:
    label: str
    kind: str
    status: str
    explanation: str
    blocking: bool = True
    value: Any = None
    threshold: Any = None
    details: dict[str, Any] = field(default_factory=dict)
    # a measurement that varies between identical runs (timings): kept in the
    # run, left out of its result hash
    volatile: bool = False
    # what numpy, scipy or scikit-learn warned while the check ran: kept in
    # the run, left out of its hash (another thread's warning may land here)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        # results without them hash as they always did
        if not self.volatile:
            del out["volatile"]
        if not self.warnings:
            del out["warnings"]
        return out


def overall(results: list[CheckResult]) -> str:
    """fail if a blocking check failed or errored; a non-blocking failure warns."""
    if any(r.blocking and r.status in (FAIL, ERROR) for r in results):
        return FAIL
    return PASS


MEASURED = ("status", "explanation", "value", "details")


def digest(document: dict[str, Any]) -> str:
    """The hash of a run: SHA-256 of the RFC 8785 form of its result document,
    which approvals bind (docs/policies.md, "Validation results"). A volatile
    result contributes what was asked of it (kind, label, threshold,
    blocking), not what was measured, so identical inputs keep one hash;
    a result's `warnings` never count."""
    stable = {
        **document,
        "results": [
            {
                k: v
                for k, v in r.items()
                if k != "warnings" and not (r.get("volatile") and k in MEASURED)
            }
            for r in document.get("results", [])
        ],
    }
    return hashlib.sha256(canonical_bytes(stable)).hexdigest()
