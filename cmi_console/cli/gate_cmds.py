"""Stage gates from the command line: request, queue, approve, reject, gate
status, promote, retire, break-glass, and validate."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from cmi_console.cli import common
from cmi_console.cli.common import RefArg
from cmi_console.core.clock import shown

JsonOpt = common.JsonOpt
ToOpt = Annotated[str, typer.Option("--to", help="Target stage.")]
EnvOpt = Annotated[str | None, typer.Option("--env", help="Environment of the stage.")]
CommentOpt = Annotated[str, typer.Option("--comment", help="Why.")]
JunitOpt = Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.")]
MarkdownOpt = Annotated[Path | None, typer.Option("--markdown", help="Write a Markdown summary.")]
gate_app = typer.Typer(help="Gate status and the statement a decision signs.", no_args_is_help=True)
validation_app = typer.Typer(help="Recorded validation runs.", no_args_is_help=True)


def render_report(report: Any) -> None:
    data = report.as_json()
    verdict = "PASSES" if data["passed"] else "BLOCKED"
    common.table(
        f"gate {data['version']} -> {data['to_stage']} ({data['environment']}): {verdict}",
        ["condition", "state", "detail"],
        [[c["condition"], c["state"], c["detail"]] for c in data["conditions"]],
    )
    if data["approvals"]:
        common.table(
            "decisions",
            ["#", "principal", "decision", "state", "detail"],
            [
                [a["id"], a["principal"], a["decision"], a["state"], a["detail"]]
                for a in data["approvals"]
            ],
        )
    common.echo(
        f"policy {data['policy_sha256'][:16]}  validation "
        f"{(data['validation_sha256'] or 'none')[:16]}"
    )


@contextmanager
def showing_refusal(as_json: bool) -> Iterator[None]:
    """A gate refusal shows its whole report; main() then prints the one-line
    reason and exits 3."""
    from cmi_console.services.gates import GateRefused

    try:
        yield
    except GateRefused as exc:
        if as_json:
            common.print_json({"refused": True, **exc.report.as_json()})
        else:
            render_report(exc.report)
        raise


@gate_app.command("status")
def status(ref: RefArg, to: ToOpt, env: EnvOpt = None, as_json: JsonOpt = False) -> None:
    """Each condition of the gate: met, unmet or stale, and why. Exit 1 if blocked."""
    from cmi_console.services import gates

    report = gates.status(common.context(), ref, to, env)
    if as_json:
        common.print_json(report.as_json())
    else:
        render_report(report)
    if not report.passed:
        raise typer.Exit(1)


@gate_app.command("statement")
def statement(
    ref: RefArg,
    to: ToOpt,
    decision: Annotated[str, typer.Option(help="approve or reject.")] = "approve",
    comment: CommentOpt = "",
    env: EnvOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The exact statement you would sign now, or the rule that forbids it (exit 3)."""
    from cmi_console.core import statements
    from cmi_console.services import gates

    st = gates.preview(common.context(), ref, to, decision, comment, env)
    if as_json:
        common.print_json(st)
    else:
        common.echo(statements.render(st))


def request(
    ref: RefArg, to: ToOpt, env: EnvOpt = None, comment: CommentOpt = "", as_json: JsonOpt = False
) -> None:
    """Open a promotion (or retirement) request; it shows in the review queue.

    The same request again by its requester (a retry) is answered with it;
    nothing is written.
    """
    from cmi_console.services import gates

    data = gates.request(common.context(), ref, to, env, comment)
    if not data["created"]:
        common.answered(f"request #{data['request']} was open already")
    if as_json:
        common.print_json(data)
    else:
        common.echo(
            f"request #{data['request']}: {data['model']}:{data['version']} "
            f"{data['from_stage']} -> {data['to_stage']} ({data['environment']})"
        )


def withdraw(
    request_id: Annotated[int, typer.Argument(help="The request's number (cmi queue).")],
    comment: CommentOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Withdraw an open request (its author, or an admin).

    The same withdrawal again by whoever made it is answered; nothing is written.
    """
    from cmi_console.services import gates

    data = gates.withdraw(common.context(), request_id, comment)
    if not data["created"]:
        common.answered(f"you withdrew request #{request_id} already")
    common.show(f"request {request_id}", data, as_json)


def queue(
    mine: Annotated[bool, typer.Option("--mine", help="Only what you may decide now.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Open requests, with their approvals and what still blocks them."""
    from cmi_console.services import gates

    ctx = common.context()
    rows = gates.queue(ctx, mine)
    if mine and not rows and (open_ := len(gates.queue(ctx))):
        # "nothing for you" is not "nothing open": say which, and where to look
        common.echo(
            f"note: {open_} open request{'s' if open_ > 1 else ''}, none you may decide now; "
            "`cmi queue` says why for each",
            err=True,
        )
    if as_json:
        common.print_json(rows)
        return
    common.table(
        None,
        ["#", "version", "to", "env", "by", "opened", "approvals", "unmet", "you"],
        [
            [
                r["request"],
                r["version"],
                r["to_stage"],
                r["environment"],
                r["requested_by"],
                shown(r["created_at"]),
                r["approvals"],
                ", ".join(r["unmet"]) or "-",
                "can decide" if r["you_can_decide"] else r["why_not"],
            ]
            for r in rows
        ],
    )


def _bind(artifact: str | None, policy: str | None, validation: str | None) -> dict[str, str]:
    out = {"artifact_sha256": artifact, "policy_sha256": policy, "validation_sha256": validation}
    return {k: v for k, v in out.items() if v is not None}


BindArtifact = Annotated[
    str | None, typer.Option("--artifact", help="The artifact SHA-256 you reviewed.")
]
BindPolicy = Annotated[
    str | None, typer.Option("--policy", help="The policy SHA-256 you reviewed.")
]
BindValidation = Annotated[
    str | None, typer.Option("--validation", help="The validation result SHA-256 you reviewed.")
]


_DONE = {"approve": "approved", "reject": "rejected"}


def _decide(
    decision: str,
    ref: str,
    to: str,
    comment: str,
    env: str | None,
    bind: dict[str, str],
    as_json: bool,
) -> None:
    from cmi_console.core import statements
    from cmi_console.services import gates

    ctx = common.context()
    data = gates.decide(ctx, ref, to, decision, comment, env=env, bind=bind)
    if not data["created"]:
        common.answered(
            f"you {_DONE[decision]} {ref} to {to} already (decision #{data['decision']}, "
            f"entry #{data['seq']})"
        )
    # what the gate needs now: the reviewer's next question (a rejection
    # closed the request, so there is no gate to ask about)
    gate = None
    if decision == "approve":
        report = gates.status(ctx, ref, to, env)
        gate = {"passed": report.passed, "blocking": [c.as_json() for c in report.blocking()]}
    if as_json:
        common.print_json({**data, **({"gate": gate} if gate else {})})
        return
    common.echo(f"{decision} #{data['decision']} signed with key {data['key'][:16]}:")
    common.echo(statements.render(data["statement"]))
    if gate is not None:
        common.echo(_gate_line(ref, to, gate))


def _gate_line(ref: str, to: str, gate: dict[str, Any]) -> str:
    """`gate credit-risk:3 -> production: still blocked by approvals:risk-officer
    (0/1)`, or that it passes and what runs next."""
    if gate["passed"]:
        return f"gate {ref} -> {to}: passes; a promoter may run `cmi promote {ref} --to {to}`"
    blocking = ", ".join(f"{c['condition']} ({c['detail']})" for c in gate["blocking"])
    return f"gate {ref} -> {to}: still blocked by {blocking}"


def approve(
    ref: RefArg,
    to: ToOpt,
    comment: CommentOpt = "",
    env: EnvOpt = None,
    artifact: BindArtifact = None,
    policy: BindPolicy = None,
    validation: BindValidation = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve the open request with a signed statement.

    Refused (exit 3) by segregation of duties, a missing role, a second
    decision, or a reviewed hash (--artifact/--policy/--validation) that is no
    longer current. The same approval again (same comment) while it counts
    is answered with the decision signed then; nothing is written.
    """
    _decide("approve", ref, to, comment, env, _bind(artifact, policy, validation), as_json)


def reject(
    ref: RefArg,
    to: ToOpt,
    comment: Annotated[str, typer.Option("--comment", help="Why.")],
    env: EnvOpt = None,
    artifact: BindArtifact = None,
    policy: BindPolicy = None,
    validation: BindValidation = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject the open request with a comment (signed); the request closes.

    The same rejection again, while no request has been opened since, is
    answered with the decision signed then; nothing is written.
    """
    _decide("reject", ref, to, comment, env, _bind(artifact, policy, validation), as_json)


def promote(
    ref: RefArg, to: ToOpt, env: EnvOpt = None, comment: CommentOpt = "", as_json: JsonOpt = False
) -> None:
    """Promote if the gate passes; otherwise exit 3 with every unmet condition.

    The same promotion again by its promoter (a retry) is answered with the
    decision signed then; nothing is written.
    """
    from cmi_console.services import gates

    with showing_refusal(as_json):
        data = gates.promote(common.context(), ref, to, env, comment)
    if not data["created"]:
        common.answered(
            f"you promoted {data['version']} to {data['stage']} already "
            f"({shown(data['time'])}, entry #{data['seq']})"
        )
    if as_json:
        common.print_json(data)
        return
    now = " now" if data["created"] else ""
    common.echo(f"{data['version']} is{now} in {data['stage']} ({data['environment']})")
    if data["archived"] is not None:
        common.echo(f"  previous version {data['archived']} moved to archived")


def retire(
    ref: RefArg,
    reason: Annotated[str, typer.Option("--reason", help="Why it is retired.")],
    successor: Annotated[
        str | None, typer.Option("--successor", help="MODEL:VERSION that replaces it.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Retire a version through the `retired` gate.

    Its records are archived by hash, its consumers listed for notice, its
    deployments ended and its aliases removed; it can never be promoted,
    deployed or aliased again. The same retirement again by the one who made
    it is answered with the decision signed then; nothing is written.
    """
    from cmi_console.services import gates

    with showing_refusal(as_json):
        data = gates.retire(common.context(), ref, reason, successor)
    if not data["created"]:
        common.answered(f"you retired {data['version']} already (entry #{data['seq']})")
    if as_json:
        common.print_json(data)
        return
    common.echo(f"{data['version']} retired; archive {data['archive_sha256'][:16]}")
    if data["successor"]:
        common.echo(f"  successor {data['successor']}")
    common.echo(f"  notify: {', '.join(data['notify']) or 'no consumers listed'}")
    if data["aliases_removed"]:
        common.echo(f"  aliases removed: {', '.join(data['aliases_removed'])}")


def break_glass(
    ref: RefArg,
    to: ToOpt,
    reason: Annotated[str, typer.Option("--reason", help="The emergency.")],
    env: EnvOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Emergency promotion past unmet approvals, signed by two admins.

    The first admin signs; a second, different admin running the same command
    within 24 hours executes it and opens an incident. Transition and
    validation must still hold. The same command again by an admin who
    signed, with the same reason (a retry), is answered with the signature or
    the execution; nothing is written.
    """
    from cmi_console.services import gates

    with showing_refusal(as_json):
        data = gates.break_glass(common.context(), ref, to, reason, env)
    if not data["created"]:
        common.answered(
            f"break-glass #{data['break_glass']} was "
            + ("signed by you" if data["status"] == "pending" else "executed")
            + f" already (entry #{data['seq']})"
        )
    if as_json:
        common.print_json(data)
        return
    if data["status"] == "pending":
        common.echo(f"break-glass #{data['break_glass']} signed by {', '.join(data['signed_by'])}")
        common.echo(f"  waiting: {data['needs']}")
        return
    common.echo(
        f"break-glass #{data['break_glass']} executed by {', '.join(data['signed_by'])}: "
        f"{data['version']} is in {data['stage']}; incident #{data['incident']} opened"
    )


def validate(
    ref: RefArg,
    suite: Annotated[str | None, typer.Option(help="Suite (default: the next gate's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for every random step.")] = 0,
    data: Annotated[
        Path | None, typer.Option("--data", help="Current data (default: the holdout).")
    ] = None,
    junit: JunitOpt = None,
    markdown: MarkdownOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a validation suite on a version and record it; exit 1 if a blocking check fails."""
    from cmi_console.services import validations

    check_report_paths(junit, markdown)
    ctx = common.context()

    def run_suite(update: Any) -> dict[str, Any]:
        def progress(done: int, total: int, result: Any) -> None:
            update(done, total, f"checked {result.label}: {result.status}" if result else None)

        return validations.validate(
            ctx, ref, suite=suite, seed=seed, data=data, progress=progress if update else None
        )

    run = common.with_progress("validating", as_json, run_suite)
    write_reports(run, junit, markdown)
    if as_json:
        common.print_json(run)
    else:
        show_run(run, ref)
    if run["status"] != "pass":
        raise typer.Exit(1)


def check_report_paths(junit: Path | None, markdown: Path | None) -> None:
    """Before the run: a report that cannot be written must not leave it recorded."""
    from cmi_console.store.artifacts import require_writable

    for option, path in (("--junit", junit), ("--markdown", markdown)):
        if path is not None:
            require_writable(path, option)


def write_reports(run: dict[str, Any], junit: Path | None, markdown: Path | None) -> None:
    from cmi_console.core.errors import BadInput
    from cmi_console.validation import reports

    for path, text in ((junit, reports.junit), (markdown, reports.markdown)):
        if path is None:
            continue
        try:
            path.write_text(text(run), encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"{path}: cannot write ({exc.strerror})") from None


def show_run(run: dict[str, Any], ref: str) -> None:
    from cmi_console.validation.reports import short

    common.table(
        f"validation run #{run['run']} of {ref} ({run['suite']}): {run['status'].upper()}",
        ["check", "status", "value", "threshold", "explanation"],
        [
            [r["label"], r["status"], short(r["value"]), short(r["threshold"]), r["explanation"]]
            for r in run["results"]
        ],
    )
    common.echo(f"result sha256 {run['result_sha256']}")


@validation_app.command("list")
def validation_list(ref: RefArg, as_json: JsonOpt = False) -> None:
    """Validation runs of a version, oldest first."""
    from cmi_console.services import validations

    rows = validations.list_runs(common.context(), ref)
    if as_json:
        common.print_json(rows)
        return
    common.table(
        None,
        ["run", "suite", "status", "result sha256", "by", "finished"],
        [
            [
                r["run"],
                r["suite"],
                r["status"],
                r["result_sha256"][:16],
                r["run_by"],
                shown(r["finished_at"]),
            ]
            for r in rows
        ],
    )


@validation_app.command("show")
def validation_show(
    run: Annotated[int, typer.Argument(help="The validation run's number (cmi validation list).")],
    as_json: JsonOpt = False,
) -> None:
    """One validation run: its inputs, hashes and every check's result."""
    from cmi_console.services import validations

    common.show(f"validation run {run}", validations.show_run(common.context(), run), as_json)


def register(app: typer.Typer) -> None:
    """Top-level gate commands (`cmi approve ...`, not `cmi gate approve ...`); the
    `gate` and `validation` groups are in cli.app.GROUPS."""
    for fn in (request, withdraw, queue, approve, reject, promote, retire, validate):
        app.command(fn.__name__)(fn)
    app.command("break-glass")(break_glass)
