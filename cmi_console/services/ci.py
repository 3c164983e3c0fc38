"""`cmi ci RECIPE`: what a CI job runs on every commit. Train, register,
validate against the suite of the first gate, and, when it passes, open the
promotion request to that gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cmi_console.core import names
from cmi_console.core import recipe as rcp
from cmi_console.core.errors import BadInput
from cmi_console.services import gates, policies, registry, training, validations
from cmi_console.services.context import Context


def run(ctx: Context, recipe: Path, comment: str = "") -> dict[str, Any]:
    # what would refuse the run is checked before anything is trained or written
    names.free_text(comment, "--comment")
    model = rcp.load(recipe)[0].model
    _gate(ctx, model, None)
    version = training.train(ctx, recipe)
    ref = f"{version['model']}:{version['version']}"
    to_stage, suite = _gate(ctx, model, version["stage"])
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
        "training_warnings": version["warnings"],
    }


def _gate(ctx: Context, model: str, stage: str | None) -> tuple[str, str]:
    """The gate a new version of `model` goes to next from `stage` (default:
    the policy's initial stage), and its suite."""
    with ctx.read() as conn:
        eff = policies.effective_for(conn, registry.model_row(conn, model))
    stage = stage or eff.policy.initial_stage
    gate = validations.next_gate(eff, stage)
    if gate is None or gate[1] is None:
        raise BadInput(f"{model}: the policy has no gate with a suite after {stage}")
    return gate[0], gate[1]
