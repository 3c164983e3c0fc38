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


def run(
    ctx: Context, recipe: Path, comment: str = "", change_author: str | None = None
) -> dict[str, Any]:
    """Train, register, validate and request, as one CI step.

    A commit that changes neither the recipe nor its data (a CI job runs on
    every commit) trains the same model bytes: that version is answered
    with, and nothing is written once it has a request to the first gate
    (open, or decided: a rejection stands) or has moved past it. It had been
    refused, failing every such job. A version with neither (its validation
    failed, or a job stopped half way) is validated again and, if it passes,
    requested. `change_author` names the principal whose commit this is
    (see `training.train`)."""
    # what would refuse the run is checked before anything is trained or written
    names.free_text(comment, "--comment")
    model = rcp.load(recipe)[0].model
    initial, to_stage, suite = _first_gate(ctx, model)
    version = training.train(ctx, recipe, again=True, change_author=change_author)
    ref = f"{version['model']}:{version['version']}"
    out = {
        "version": ref,
        "run": version["run"],
        "stage": version["stage"],
        "to_stage": to_stage,
        "code": version["code"],
        "training_warnings": version["warnings"],
        "already_registered": version["already_registered"],
    }
    if version["already_registered"]:
        request = gates.latest_request(ctx, ref, to_stage)
        if request is not None or version["stage"] != initial:
            recorded = validations.recorded(ctx, ref, suite)
            # the job fails only if the reviewers rejected this very model
            failed = request is not None and request["status"] == "rejected"
            return {**out, "validation": recorded, "request": request, "failed": failed}
    result = validations.validate(ctx, ref, suite=suite)
    request = None
    if result["status"] == "pass":
        try:
            request = gates.request(
                ctx, ref, to_stage, comment=comment or f"cmi ci: {result['suite']} passed"
            )
            request["status"] = "open"
        except BadInput:
            # another job on the same commit opened it first: that is the answer
            request = gates.latest_request(ctx, ref, to_stage)
            if request is None or request["status"] != "open":
                raise
    return {**out, "validation": result, "request": request, "failed": request is None}


def _first_gate(ctx: Context, model: str) -> tuple[str, str, str]:
    """The policy's initial stage for `model`, the gate it leads to, and that
    gate's suite."""
    with ctx.read() as conn:
        eff = policies.effective_for(conn, registry.model_row(conn, model))
    initial = eff.policy.initial_stage
    gate = validations.next_gate(eff, initial)
    if gate is None or gate[1] is None:
        raise BadInput(f"{model}: the policy has no gate with a suite after {initial}")
    return initial, gate[0], gate[1]
