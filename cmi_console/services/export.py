"""`cmi audit export`: a compliance bundle an auditor verifies offline.

The entries stream from the database into the zip (exact canonical bytes,
one per line) while their hashes are taken, so a million-entry export holds
one batch of rows in memory, plus the leaf hashes when a subset needs
inclusion proofs. Layout: docs/export-bundle.md.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from cmi_console.core import bundle, bundle_readme, checkpoint, entries, merkle, model_card, names
from cmi_console.core.clock import check_window
from cmi_console.core.errors import BadInput, IntegrityError
from cmi_console.core.refs import model_subjects
from cmi_console.core.small_files import kind_of
from cmi_console.services import policies, registry, validations
from cmi_console.services.context import Context
from cmi_console.store.artifacts import require_writable
from cmi_console.store.driver import stream_rows
from cmi_console.store.engine import escape_like
from cmi_console.store.tables import Decision, PromotionRequest, Retirement, table

DECISIONS, REQUESTS, RETIREMENTS = table(Decision), table(PromotionRequest), table(Retirement)
Progress = Callable[[int, int], None]


class _Writer:
    """A zip being written, with the SHA-256 of every member for the manifest."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.zip = archive
        self.files: dict[str, str] = {}
        self.open: _Stream | None = None  # the member being streamed, if any

    def abandon(self) -> None:
        """Let go of a zip that failed part way (its file is about to be removed):
        closing it normally would write to the file that just failed, and with a
        member still open zipfile refuses to close at all, so the first error was
        lost behind zipfile's own and its finaliser printed a traceback."""
        for done in (self.open.fh.close if self.open else None, self.zip.close):
            if done is not None:
                with contextlib.suppress(Exception):
                    done()

    def put(self, name: str, data: bytes) -> None:
        self.zip.writestr(name, data)
        self.files[name] = hashlib.sha256(data).hexdigest()

    def stream(self, name: str) -> _Stream:
        """A large member, stored without compression: deflate ran at ~40 MB/s
        here and took half of a million-entry export."""
        return _Stream(self, name)


class _Stream:
    def __init__(self, writer: _Writer, name: str) -> None:
        self.writer, self.name = writer, name
        info = zipfile.ZipInfo(name, date_time=time.gmtime()[:6])
        info.compress_type = zipfile.ZIP_STORED
        self.fh = writer.zip.open(info, "w", force_zip64=True)
        self.hash = hashlib.sha256()
        writer.open = self

    def write(self, data: bytes) -> None:
        self.fh.write(data)
        self.hash.update(data)

    def close(self) -> None:
        self.fh.close()
        self.writer.open = None
        self.writer.files[self.name] = self.hash.hexdigest()


def _upstream(conn: Any, model: str) -> list[str]:
    """Subjects of the datasets and training runs the model's versions came
    from, so a model's bundle carries its history from the data on."""
    m = registry.model_row(conn, model)
    mv, ds, vd = registry.VERSIONS, registry.DATASETS, registry.VERSION_DATASETS
    runs, rd = registry.RUNS, registry.RUN_DATASETS
    keys = conn.execute(
        select(runs.c.id, runs.c.run_key)
        .join(mv, mv.c.run_id == runs.c.id)
        .where(mv.c.model_id == m.id)
    ).all()
    direct = (
        select(ds.c.name, ds.c.version)
        .join(vd, vd.c.dataset_id == ds.c.id)
        .join(mv, mv.c.id == vd.c.version_id)
        .where(mv.c.model_id == m.id)
    )
    via_runs = (
        select(ds.c.name, ds.c.version)
        .join(rd, rd.c.dataset_id == ds.c.id)
        .where(rd.c.run_id.in_([k.id for k in keys] or [-1]))
    )
    data = {f"dataset:{n}:{v}" for n, v in conn.execute(direct.union(via_runs)).all()}
    return sorted(data | {f"run:{k.run_key}" for k in keys})


# the bundle's file system is full, or the file too large for it: the partial
# file is removed and the reason is one line
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _scope_sql(
    conn: Any, size: int, model: str | None, since: str | None, until: str | None
) -> tuple[str, tuple[Any, ...]]:
    where, params = ["seq < ?"], [size]
    if model is not None:
        exact, prefix = model_subjects(model)
        subjects = [*sorted(exact), *_upstream(conn, model)]
        marks = ", ".join("?" for _ in subjects)
        where.append(f"(subject IN ({marks}) OR subject LIKE ? ESCAPE '\\')")
        params += [*subjects, f"{escape_like(prefix)}%"]
    if since is not None:
        where.append("time >= ?")
        params.append(since)
    if until is not None:
        where.append("time < ?")
        params.append(until)
    return " AND ".join(where), tuple(params)


def export(
    ctx: Context,
    out: Path,
    *,
    model: str | None = None,
    since: str | None = None,
    until: str | None = None,
    previous: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write the bundle to `out` (atomically: a partial file never appears)."""
    if model is not None:
        names.entity(model, "--model")
    check_window(since, until)
    if kind_of(out, "--out") != "missing":
        raise BadInput(f"{out}: already exists; choose a new file name")
    require_writable(out, "--out")
    ws = ctx.workspace
    origin, (vkey, public) = ws.origin, ws.log_verifier_key()
    old = checkpoint.verify(previous, origin, public, where="--previous") if previous else None
    full = model is None and since is None and until is None
    tmp = out.with_name(f".{out.name}.partial")
    try:
        # a folder that takes no new file though it says it is writable (/proc)
        archive = zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, 1)
    except OSError as exc:
        raise BadInput(f"--out: cannot write {out} ({exc.strerror})") from None
    w = _Writer(archive)
    try:
        with ctx.read() as conn:
            if model is not None:
                registry.model_row(conn, model)
            head = conn.exec_driver_sql(
                "SELECT size, note FROM checkpoints ORDER BY id DESC LIMIT 1"
            ).first()
            if head is None:
                raise IntegrityError("the log has no checkpoint to export against")
            size, note = int(head[0]), str(head[1])
            if old is not None and old.size > size:
                raise BadInput(f"--previous: covers {old.size} entries; the log has {size}")
            found = _entries(conn, w, size, model, since, until, progress)
            leaves = _leaves(conn, size) if not full or old is not None else None
            if not full and leaves is not None:
                tree = merkle.Tree(leaves)
                proofs = w.stream(bundle.PROOFS)
                for seq in found["seqs"]:
                    path = [h.hex() for h in tree.inclusion_proof(seq)]
                    proofs.write(orjson.dumps({"seq": seq, "path": path}) + b"\n")
                proofs.close()
            if old is not None and leaves is not None:
                proof = merkle.consistency_proof(old.size, leaves) if old.size else []
                doc = {"previous": previous, "old_size": old.size, "new_size": size}
                w.put(bundle.CONSISTENCY, orjson.dumps({**doc, "proof": [p.hex() for p in proof]}))
            w.put(bundle.CHECKPOINT, note.encode())
            w.put(bundle.LOG_KEY, vkey.encode())  # the key checked above, not a second read
            w.put(bundle.PRINCIPALS, orjson.dumps(_principals(conn), option=orjson.OPT_INDENT_2))
            w.put(bundle.DECISIONS, b"".join(orjson.dumps(d) + b"\n" for d in found["decisions"]))
            for run in found["runs"]:
                w.put(f"validation/run-{run['run']['id']}.json", orjson.dumps(run))
            cards = _cards(ctx, conn, w, found["versions"], model)
            _csv_views(conn, w, found)
            about = {
                "format": bundle.FORMAT,
                "origin": origin,
                "created_at": ctx.clock(),
                "exported_by": ctx.actor,
                "scope": {"full": full, "model": model, "since": since, "until": until},
                "log_size": size,
                "entries": len(found["seqs"]),
            }
            # listed, so what it says of the bundle is signed with the rest
            members = [*w.files, bundle.MANIFEST, bundle.SIGNATURE]
            w.put(bundle_readme.README, bundle_readme.readme(about, vkey, members).encode())
            manifest = {**about, "files": dict(sorted(w.files.items()))}
            archive.writestr(bundle.MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
            archive.writestr(bundle.SIGNATURE, bundle.sign_manifest(manifest, ctx.log_key()))
        _verifiable(archive)
        archive.close()
        os.replace(tmp, out)
    except BaseException as exc:
        w.abandon()
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in _FULL:
            raise BadInput(f"--out: cannot write {out} ({exc.strerror})") from None
        raise
    return {
        "bundle": str(out),
        "entries": len(found["seqs"]),
        "log_size": size,
        "decisions": len(found["decisions"]),
        "validation_reports": len(found["runs"]),
        "model_cards": cards,
        "full": full,
        "consistency_from": old.size if old else None,
    }


def _verifiable(archive: zipfile.ZipFile) -> None:
    """Refuse a bundle whose zip directory `verify-bundle` would not open
    (bundle.MAX_DIRECTORY): each member's directory record is 46 bytes, its
    name and extra field, and at most 28 bytes of zip64 figures."""
    members = archive.infolist()
    directory = sum(46 + len(i.filename.encode()) + len(i.extra) + 28 for i in members)
    if directory > bundle.MAX_DIRECTORY:
        raise BadInput(
            f"--out: the bundle would hold {len(members):,} files, more than verify-bundle "
            f"opens ({bundle.MAX_DIRECTORY >> 20} MiB of zip directory); export part of the "
            "log with --model or --since/--until"
        )


def _entries(
    conn: Any,
    w: _Writer,
    size: int,
    model: str | None,
    since: str | None,
    until: str | None,
    progress: Progress | None,
) -> dict[str, Any]:
    where, params = _scope_sql(conn, size, model, since, until)
    found: dict[str, Any] = {"seqs": [], "decisions": [], "runs": [], "versions": set()}
    # a zip takes one member at a time: the CSV view waits in a temporary file
    with tempfile.TemporaryFile() as sheet:
        sheet.write(b"seq,time,actor,action,subject,hash\r\n")
        out = w.stream(bundle.ENTRIES)
        # `where` joins constant fragments only; every value is a bound parameter
        sql = (
            f"SELECT seq, time, actor, action, subject, hash, body FROM audit_entries WHERE {where}"  # noqa: S608
        )
        for part in stream_rows(conn, sql + " ORDER BY seq", params):
            sheet.write(_csv_rows(part))
            bodies = []
            for seq, _time, _actor, action, subject, _hash, body in part:
                bodies.append(bytes(body))
                _take(found, seq, action, subject, bodies[-1])
            # one write per batch: a compressor call per entry cost more than the rest
            out.write(b"\n".join(bodies) + b"\n")
            if progress:  # how far through the log, also for a subset
                progress(part[-1][0] + 1, size)
        out.close()
        if progress:
            progress(size, size)
        sheet.seek(0)
        view = w.stream("csv/entries.csv")
        while chunk := sheet.read(1 << 20):
            view.write(chunk)
        view.close()
    return found


def _csv_rows(part: list[Any]) -> bytes:
    """CSV lines for (seq, time, actor, action, subject, hash) rows.

    These fields come from validated names, so a plain join is already valid
    CSV, at a quarter of the csv module's cost; a batch where any field would
    need quoting goes through the csv module instead."""
    text = "".join(f"{r[0]},{r[1]},{r[2]},{r[3]},{r[4]},{r[5]}\r\n" for r in part)
    if text.count(",") == 5 * len(part) and text.count("\n") == len(part) and '"' not in text:
        return text.encode()
    buf = io.StringIO()
    csv.writer(buf).writerows(r[:6] for r in part)
    return buf.getvalue().encode()


def _take(found: dict[str, Any], seq: int, action: str, subject: str, body: bytes) -> None:
    found["seqs"].append(seq)
    if subject.startswith("version:"):
        found["versions"].add(subject)
    # only decisions and validation runs need their body parsed
    if action in entries.DECISION_ACTIONS or action == "validation.run":
        obj = orjson.loads(body)
        if "sig" in obj:
            found["decisions"].append(bundle.decision_record(obj))
        for c in obj.get("changes", ()):
            if c.get("t") == "validation_runs":
                found["runs"].append({"seq": seq, "run": {"id": c["id"], **c["row"]}})


def _leaves(conn: Any, size: int) -> list[bytes]:
    leaves: list[bytes] = []
    for part in stream_rows(
        conn, "SELECT hash FROM audit_entries WHERE seq < ? ORDER BY seq", (size,)
    ):
        leaves.extend(bytes.fromhex(r[0]) for r in part)
    return leaves


def _principals(conn: Any) -> list[dict[str, Any]]:
    rows = conn.exec_driver_sql(
        "SELECT p.name, p.disabled, k.key_id, k.public_key, k.created_at, k.revoked_at "
        "FROM public_keys k JOIN principals p ON p.id = k.principal_id ORDER BY k.id"
    ).all()
    return [
        {
            "principal": r[0],
            "disabled": bool(r[1]),
            "key_id": r[2],
            "public_key": r[3],
            "created_at": r[4],
            "revoked_at": r[5],
        }
        for r in rows
    ]


def _production(conn: Any, version_id: int, number: int, model_id: int) -> dict[str, Any]:
    """The version's rollouts (every traffic change) and its monitoring windows."""
    from cmi_console.services import deployments, monitoring

    events = conn.execute(
        select(deployments.EVENTS)
        .join(
            deployments.DEPLOYMENTS,
            deployments.DEPLOYMENTS.c.id == deployments.EVENTS.c.deployment_id,
        )
        .where(deployments.DEPLOYMENTS.c.version_id == version_id)
        .order_by(deployments.EVENTS.c.id)
    ).all()
    windows = [
        w
        for w in conn.execute(
            select(
                monitoring.WINDOWS.c.id, monitoring.WINDOWS.c.versions, monitoring.WINDOWS.c.summary
            )
            .where(monitoring.WINDOWS.c.model_id == model_id)
            .order_by(monitoring.WINDOWS.c.id)
        )
        if number in w.versions
    ]
    alerts = conn.execute(
        select(monitoring.ALERTS.c.kind, monitoring.ALERTS.c.message, monitoring.ALERTS.c.status)
        .where(monitoring.ALERTS.c.version_id == version_id)
        .order_by(monitoring.ALERTS.c.id)
    ).all()
    return {
        "events": [
            {
                "at": e.created_at,
                "environment": e.environment,
                "action": e.action,
                "status": e.status,
                "shares": e.shares,
                "by": e.created_by,
            }
            for e in events
        ],
        "windows": len(windows),
        "last_window": windows[-1].summary.get(str(number)) if windows else None,
        "alerts": [{"kind": a.kind, "message": a.message, "status": a.status} for a in alerts],
    }


def _cards(ctx: Context, conn: Any, w: _Writer, subjects: set[str], model: str | None) -> int:
    """A model card per exported version (Markdown and HTML)."""
    made = 0
    for subject in sorted(subjects, key=lambda s: (s.rsplit(":", 1)[0], int(s.rsplit(":", 1)[1]))):
        _, name, number = subject.split(":")
        try:
            v = registry.version_row(conn, f"{name}:{number}")
        except BadInput:  # NotFound is a BadInput: a subject of a version since removed
            continue
        m = registry.model_row(conn, name)
        view = registry.version_view(conn, name, v)
        run = registry.show_run(ctx, view["run"]) if view["run"] else None
        runs = conn.execute(
            select(validations.RUNS)
            .where(validations.RUNS.c.version_id == v.id)
            .order_by(validations.RUNS.c.id)
        ).all()
        decided = conn.execute(
            select(DECISIONS, REQUESTS.c.to_stage)
            .join(REQUESTS, REQUESTS.c.id == DECISIONS.c.request_id)
            .where(DECISIONS.c.version_id == v.id)
            .order_by(DECISIONS.c.id)
        ).all()
        retired = conn.execute(
            select(RETIREMENTS.c.reason).where(RETIREMENTS.c.version_id == v.id)
        ).first()
        card = {
            "production": _production(conn, v.id, v.version, m.id),
            "version": view,
            "model_description": m.description,
            "owner": m.owner,
            "tier": policies.tiers_of(conn, [m])[m.id],
            "run": run,
            "validations": [validations.run_view(r) for r in runs],
            "decisions": [
                {
                    "created_at": d.created_at,
                    "principal": d.principal,
                    "decision": d.decision,
                    "to_stage": d.to_stage,
                    "comment": d.statement.get("comment", ""),
                }
                for d in decided
            ],
            "retirement": {"reason": retired.reason} if retired else None,
        }
        stem = f"cards/{name}-v{number}"
        w.put(f"{stem}.md", model_card.markdown(card).encode())
        w.put(f"{stem}.html", model_card.to_html(card).encode())
        made += 1
    return made


def _csv_views(conn: Any, w: _Writer, found: dict[str, Any]) -> None:
    """Spreadsheet views of what the bundle holds (the JSONL files are the record)."""
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(["seq", "time", "actor", "action", "subject", "key"])
    for d in found["decisions"]:
        out.writerow([d["seq"], d["time"], d["actor"], d["action"], d["subject"], d["sig"]["key"]])
    w.put("csv/decisions.csv", buf.getvalue().encode())
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(["model", "version", "stage", "status", "author", "created_at", "artifact_sha256"])
    for subject in sorted(found["versions"]):
        _, name, number = subject.split(":")
        try:
            v = registry.version_row(conn, f"{name}:{number}")
        except BadInput:
            continue
        out.writerow(
            [name, v.version, v.stage, v.status, v.author, v.created_at, v.artifact_sha256]
        )
    w.put("csv/versions.csv", buf.getvalue().encode())
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(["run", "seq", "suite", "status", "result_sha256", "run_by", "finished_at"])
    for r in found["runs"]:
        run = r["run"]
        out.writerow(
            [
                run["id"],
                r["seq"],
                run["suite"],
                run["status"],
                run["result_sha256"],
                run["run_by"],
                run["finished_at"],
            ]
        )
    w.put("csv/validation_runs.csv", buf.getvalue().encode())
