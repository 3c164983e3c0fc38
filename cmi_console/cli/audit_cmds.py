"""`cmi audit ...`: read, verify, prove and checkpoint the log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cmi_console.cli import common
from cmi_console.cli.common import SeqArg
from cmi_console.core.clock import shown

app = typer.Typer(help="Read, verify and prove the tamper-evident audit log.", no_args_is_help=True)

JsonOpt = common.JsonOpt


@app.command("log")
def log(
    actor: Annotated[str | None, typer.Option(help="Only entries by this principal.")] = None,
    action: Annotated[str | None, typer.Option(help="Action, or prefix with a trailing *.")] = None,
    subject: Annotated[
        str | None, typer.Option(help="Subject, or prefix with a trailing *.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="From this instant (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this instant (ISO 8601).")] = None,
    before: Annotated[
        int | None, typer.Option(help="Only entries with seq below this (paging).")
    ] = None,
    after: Annotated[
        int | None, typer.Option(help="Only entries with seq above this (paging).")
    ] = None,
    limit: Annotated[int, typer.Option("-n", "--limit", help="At most this many entries.")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many entries.")] = 0,
    reverse: Annotated[bool, typer.Option("--reverse", help="Oldest first.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List log entries, newest first."""
    from cmi_console.core.clock import parse_time
    from cmi_console.services import audit

    ctx = common.context()
    rows = audit.query(
        ctx,
        actor=actor,
        action=action,
        subject=subject,
        since=parse_time(since, "--since") if since is not None else None,
        until=parse_time(until, "--until") if until is not None else None,
        before=before,
        after=after,
        limit=limit,
        offset=offset,
        oldest_first=reverse,
    )
    if not rows:
        for why in audit.filter_notes(ctx, actor=actor, action=action, subject=subject):
            common.echo(f"note: {why}", err=True)
    if as_json:
        common.print_json(rows)
        return
    common.table(
        None,
        ["seq", "time", "actor", "action", "subject", "signed", "hash"],
        [
            [
                e["seq"],
                shown(e["time"]),
                e["actor"],
                e["action"],
                e["subject"],
                "yes" if "sig" in e else "",
                e["hash"][:12],
            ]
            for e in rows
        ],
    )


@app.command("show")
def show(seq: SeqArg, as_json: JsonOpt = False) -> None:
    """One entry: its canonical bytes and hash, and what it says in a line."""
    from cmi_console.core import entry_text
    from cmi_console.core.merkle import leaf_hash
    from cmi_console.services import audit

    entry, body = audit.get_entry(common.context(), seq)
    what = entry_text.summary(entry["action"], entry.get("data") or {}, entry["time"])
    if as_json:
        common.print_json({"entry": entry, "hash": leaf_hash(body).hex(), "what": what})
        return
    common.console().print(body.decode(), markup=False, highlight=False)
    common.console().print(f"hash {leaf_hash(body).hex()}")
    common.console().print(f"what {what}", markup=False, highlight=False)


@app.command("verify")
def verify(
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            envvar="CMI_VERIFY_WORKERS",
            help="Processes that scan the log (default: one per core; 1: scan in this process).",
        ),
    ] = None,
    artifacts: Annotated[
        bool,
        typer.Option(
            "--artifacts", help="Also re-hash every artifact the registry names (reads them all)."
        ),
    ] = False,
) -> None:
    """Check chain, tree, checkpoints, witness, signatures and registry state.

    Exit 4 on any fault, naming the first bad entry or row.
    """
    from cmi_console.services.verify import check_artifacts
    from cmi_console.services.verify import verify as run_verify

    ctx = common.context()
    report = common.with_progress(
        "verifying", as_json or quiet, lambda p: run_verify(ctx, p, workers)
    )
    if artifacts:
        check_artifacts(ctx, report)
    for note in report.notes:
        common.echo(f"note: {note}", err=True)
    if as_json:
        common.print_json(report.as_json())
    elif report.ok:
        common.console().print(
            f"[green]ok[/green]: {report.entries} entries, {report.signatures} signatures, "
            f"{report.checkpoints} checkpoints, {report.rows} registry rows"
            + ("" if report.artifacts is None else f", {report.artifacts} artifacts")
            + f"; root {report.root[:16]}, witness at {report.witness_size}"
        )
    else:
        first = report.findings[0]
        common.echo(f"integrity violation: {first}", err=True)
        for f in report.findings[1:20]:
            common.echo(f"  also {f}", err=True)
        if len(report.findings) > 20:
            common.echo(f"  ... {len(report.findings) - 20} more", err=True)
    if not report.ok:
        raise typer.Exit(4)


@app.command("checkpoint")
def checkpoint_cmd(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Also write the note here: a file is replaced whole, a device or pipe written to.",
        ),
    ] = None,
) -> None:
    """Print the signed checkpoint (C2SP signed note) of the whole log."""
    from cmi_console.services import audit

    note = audit.checkpoint_now(common.context(), out)
    common.echo(note, nl=False)


@app.command("prove")
def prove(seq: SeqArg) -> None:
    """Inclusion proof (RFC 9162) of entry SEQ in the latest signed checkpoint, as JSON."""
    from cmi_console.services import audit

    common.print_json(audit.prove(common.context(), seq))


@app.command("consistency")
def consistency(
    checkpoint_file: Annotated[
        Path, typer.Argument(help="A checkpoint saved earlier (cmi audit checkpoint --out).")
    ],
) -> None:
    """Prove that today's log extends the checkpoint in CHECKPOINT_FILE, as JSON."""
    from cmi_console.services import audit

    note = common.read_text_arg(checkpoint_file, "CHECKPOINT_FILE")
    common.print_json(audit.consistency(common.context(), note, str(checkpoint_file)))


@app.command("diff")
def diff(
    start: Annotated[str, typer.Argument(help="From this instant (exclusive, ISO 8601).")],
    end: Annotated[str, typer.Argument(help="To this instant (inclusive, ISO 8601).")],
    as_json: JsonOpt = False,
) -> None:
    """What changed between two instants, grouped by subject."""
    from cmi_console.core.clock import parse_time
    from cmi_console.services import history

    report = history.diff(common.context(), parse_time(start, "START"), parse_time(end, "END"))
    if as_json:
        common.print_json(report)
        return
    common.table(
        f"{report['entries']} entries from {report['from']} to {report['to']}",
        ["subject", "seq", "time", "actor", "action", "rows"],
        [
            [
                s["subject"] if i == 0 else "",
                e["seq"],
                shown(e["time"]),
                e["actor"],
                e["action"],
                ", ".join(e["rows"]),
            ]
            for s in report["subjects"]
            for i, e in enumerate(s["entries"])
        ],
    )


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="The bundle to write (a new .zip file).")],
    model: Annotated[str | None, typer.Option(help="Only this model's entries.")] = None,
    since: Annotated[str | None, typer.Option(help="Entries from this instant.")] = None,
    until: Annotated[str | None, typer.Option(help="Entries before this instant.")] = None,
    previous: Annotated[
        Path | None,
        typer.Option(help="An earlier checkpoint file: add a consistency proof from it."),
    ] = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Write a compliance bundle with a signed manifest.

    It holds the entries, the checkpoint, proofs, keys, decisions, validation
    reports, model cards and CSV views."""
    from cmi_console.core.clock import parse_time
    from cmi_console.services import export as exporter

    old = common.read_text_arg(previous, "--previous") if previous else None
    ctx = common.context()
    summary = common.with_progress(
        "exporting",
        as_json or quiet,
        lambda p: exporter.export(
            ctx,
            out,
            model=model,
            since=parse_time(since, "--since") if since is not None else None,
            until=parse_time(until, "--until") if until is not None else None,
            previous=old,
            progress=p,
        ),
    )
    if not summary["entries"]:  # a window typed wrong shipped an empty bundle unsaid
        common.echo(
            "note: no entry matched --model/--since/--until; the bundle holds the "
            "checkpoint and keys only",
            err=True,
        )
    if as_json:
        common.print_json(summary)
        return
    common.kv(f"bundle {out}", summary)


@app.command("verify-bundle")
def verify_bundle(
    path: Annotated[Path, typer.Argument(help="The bundle (.zip).")],
    log_key: Annotated[
        str | None,
        typer.Option(help="The log's verifier key (or a file holding it), obtained out of band."),
    ] = None,
    previous: Annotated[
        Path | None, typer.Option(help="Your earlier checkpoint: the bundle must extend it.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a bundle offline: no database, no workspace. Exit 4 on any fault."""
    from cmi_console.core import bundle
    from cmi_console.core.errors import CmiError
    from cmi_console.core.small_files import kind_of

    pin = None
    if log_key is not None:  # the key itself, or a file holding it
        key_file = Path(log_key)
        try:
            is_file = kind_of(key_file, "--log-key") == "file"
        except CmiError:  # no path can be that (a name too long): the key itself
            is_file = False
        pin = common.read_text_arg(key_file, "--log-key") if is_file else log_key
    old = common.read_text_arg(previous, "--previous") if previous else None
    report = bundle.verify(path, pin, old)
    if as_json:
        common.print_json(report.as_json())
    elif report.ok:
        common.console().print(
            f"[green]ok[/green]: {report.entries} entries of a log of {report.log_size}, "
            f"{report.signatures} signatures, {report.files} files; log key {report.log_key}"
            + (
                f"; extends the checkpoint at {report.consistent_with}"
                if report.consistent_with is not None
                else ""
            )
        )
        if report.log_key != "pinned":
            common.echo(
                "note: the log key was taken from the bundle; pin it with --log-key", err=True
            )
    else:
        common.echo(f"bundle rejected: {report.problems[0]}", err=True)
        for p in report.problems[1:20]:
            common.echo(f"  also {p}", err=True)
    if not report.ok:
        raise typer.Exit(4)
