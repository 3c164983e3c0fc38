"""`cmi ci RECIPE`: what a CI job runs on every commit. Train, register,
validate against the suite of the first gate, and, when it passes, open the
promotion request to that gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cmi_console.core.errors import BadInput
from cmi_console.services import gates, policies, registry, training, validations
from cmi_console.services.context import Context


def run(ctx: Context, recipe: Path, comment: str = "") -> dict[str, Any]:
    version = training.train(ctx, recipe)
    ref = f"{version['model']}:{version['version']}"
    with ctx.read() as conn:
        eff = policies.effective_for(conn, registry.model_row(conn, version["model"]))
    gate = validations.next_gate(eff, version["stage"])
    if gate is None or gate[1] is None:
        raise BadInput(f"{ref}: the policy has no gate with a suite after {version['stage']}")
    to_stage, suite = gate
    result = validations.validate(ctx, ref, suite=suite)
    request = None
    if result["status"] == "pass":
        request = gates.request(
            ctx, ref, to_stage, comment=comment or f"cmi ci: {result['suite']} passed"
        )
    return {
        "version": ref,
        "run": version["run"],
        "to_stage": to_stage,
        "validation": result,
        "request": request,
        "code": version["code"],
    }
