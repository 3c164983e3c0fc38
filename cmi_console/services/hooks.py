"""Event hooks: an outbox written with the event, delivered after commit.

`enqueue` runs inside the transaction that logs an event: for each hook of
the model's policy that wants it, a `hook_deliveries` row (pending). The
context delivers them once the transaction has committed, never inside it,
so a slow or dead receiver never holds a lock or rolls back a decision.
A delivery that fails after its retries stays `failed`, with its attempts
and last error; the event itself is the log entry, so it is never lost:
`cmi hooks redeliver` sends it again.

A sender first claims the delivery (`sending`, in one conditional UPDATE),
so two processes never send it at once: a `redeliver --failed` from cron
while the command that committed the event was still retrying, or two
redeliverers, had both sent it, and the later outcome overwrote the other
(a delivery received was recorded `failed`, attempts were lost). A claim
whose sender died is taken over once it is older than the hook could take
(`_lease`).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import Connection

from cmi_console.core import clock, hooks, names
from cmi_console.core.credentials import scrubbed
from cmi_console.core.errors import BadInput, NotFound
from cmi_console.core.policy import Hook, url_problem
from cmi_console.services.context import Context, Tx
from cmi_console.services.identity import require_role
from cmi_console.services.policies import effective_for
from cmi_console.store.engine import check_page
from cmi_console.store.tables import AuditEntry, HookDelivery, table

DELIVERIES, ENTRIES = table(HookDelivery), table(AuditEntry)
STATUSES = ("pending", "sending", "delivered", "failed")
REDELIVERERS = frozenset({"admin", "deployer"})
LEASE_MARGIN = 10.0  # seconds past a hook's longest run before its claim is taken over


def _policy_hooks(conn: Connection, model: str | None, effective: Any = None) -> dict[str, Hook]:
    """The hooks of `model`'s policy (`effective`: that policy, when known)."""
    from cmi_console.services.registry import find_model

    if model is None:
        return {}
    if effective is None:
        row = find_model(conn, model)
        if row is None:
            return {}
        try:
            effective = effective_for(conn, row)
        except BadInput:  # no active policy: nothing to notify, and no reason to refuse the write
            return {}
    return dict(effective.policy.hooks)


def enqueue(tx: Tx, entry: dict[str, Any], event: str) -> list[int]:
    """Queue the deliveries of one logged event (inside its transaction).
    Plain inserts: the outbox is operational, not part of the entry's changes."""
    model = hooks.model_of(entry["subject"])
    wanted = [
        name
        for name, h in sorted(
            _policy_hooks(tx.conn, model, model and tx.remembered_policy(model)).items()
        )
        if hooks.matches(h.events, event)
    ]
    ids = []
    for name in wanted:
        result = tx.conn.execute(
            insert(DELIVERIES).values(
                seq=entry["seq"],
                event=event,
                hook=name,
                model=model,
                status="pending",
                attempts=0,
                created_at=tx.time,
                updated_at=tx.time,
            )
        )
        ids.append(int(result.inserted_primary_key[0]))
    return ids


def deliver(ctx: Context, ids: list[int]) -> list[dict[str, Any]]:
    """Deliver queued events, each with its hook's retries and backoff. Never
    raises: a failure is recorded on the delivery."""
    out = []
    for delivery_id in ids:
        try:
            out.append(_deliver_one(ctx, delivery_id))
        except Exception as exc:  # the events committed; nothing here may undo them
            # nor fail the command that committed them: with the database gone
            # too, the delivery stays pending, and `redeliver --failed` sends it
            error: str | None = scrubbed(f"internal: {type(exc).__name__}: {exc}")
            with contextlib.suppress(Exception):
                error = _finish(ctx, delivery_id, "failed", 0, error)
            out.append({"delivery": delivery_id, "status": "failed", "error": error})
    return out


def failed_notice(sent: dict[str, Any]) -> str:
    """What a command that committed an event says of its delivery that
    failed: the change stands, and how to send it again."""
    what = f"hook {sent['hook']} ({sent['event']})" if "hook" in sent else "a hook"
    return (
        f"committed, but {what} delivery #{sent['delivery']} failed: {sent.get('error')}; "
        f"`cmi hooks redeliver {sent['delivery']}` sends it again"
    )


def _deliver_one(ctx: Context, delivery_id: int) -> dict[str, Any]:
    with ctx.read() as conn:
        d = conn.execute(select(DELIVERIES).where(DELIVERIES.c.id == delivery_id)).one()
        e = conn.execute(select(ENTRIES).where(ENTRIES.c.seq == d.seq)).one()
        siblings = _policy_hooks(conn, d.model)
        hook = siblings.get(d.hook)
    view = {"delivery": d.id, "hook": d.hook, "event": d.event}
    if hook is None:
        error = _finish(ctx, d.id, "failed", 0, f"hook '{d.hook}' is no longer in the policy")
        return {**view, "status": "failed", "error": error}
    if not _claim(ctx, d.id, _lease(hook, shared=ctx.engine.dialect.name != "sqlite")):
        return {**view, "status": "sending", "attempts": d.attempts}  # another process has it
    entry = {**orjson.loads(bytes(e.body)), "hash": e.hash}
    body = hooks.payload(d.event, entry, d.id)
    env = _command_env(siblings.values()) if hook.command is not None else None
    made, error = 0, None
    wait = hook.backoff_seconds
    try:
        for attempt in range(hook.retries):
            if attempt:
                time.sleep(wait)
                wait *= 2
            made += 1
            error = _send(hook, d, body, env)
            if error is None:
                break
    except BaseException:  # ^C while sending: the claim is let go, not left to expire
        with contextlib.suppress(Exception):
            _finish(ctx, d.id, "failed", made, "interrupted while sending")
        raise
    status = "delivered" if error is None else "failed"
    error = _finish(ctx, d.id, status, made, error)
    return {**view, "status": status, "attempts": d.attempts + made, "error": error}


def _lease(hook: Hook, *, shared: bool) -> float:
    """Seconds after which a claim is taken to be a dead sender's: longer than
    every attempt and wait of the hook, and a little more; on a team's
    database (`shared`), plus the clock difference two of its hosts may have
    (each is refused beyond MAX_SKEW of the server). A SQLite workspace has
    one host, one clock."""
    waits = sum(hook.backoff_seconds * 2**i for i in range(hook.retries - 1))
    margin = 2 * clock.MAX_SKEW.total_seconds() if shared else LEASE_MARGIN
    return hook.retries * hook.timeout_seconds + waits + margin


def _claim(ctx: Context, delivery_id: int, lease: float) -> bool:
    """Mark the delivery `sending` unless another sender's claim is younger than `lease`."""
    from cmi_console.store.engine import write_transaction

    now = ctx.clock()
    expired = clock.add(now, hours=-lease / 3600)
    with write_transaction(ctx.engine) as conn:
        claimed = conn.execute(
            update(DELIVERIES)
            .where(
                DELIVERIES.c.id == delivery_id,
                or_(DELIVERIES.c.status != "sending", DELIVERIES.c.updated_at < expired),
            )
            .values(status="sending", updated_at=now)
        )
    return claimed.rowcount == 1


# the acting principal's key passphrase: with it (and their key file, which
# the command can read as them) a hook's program could sign as whoever
# happens to trigger it. Whoever writes a policy is not its reviewers.
PASSPHRASE_ENV = "CMI_KEY_PASSPHRASE"


def _command_env(policy_hooks: Iterable[Hook]) -> dict[str, str]:
    """The environment a command hook runs in: this process's, less its
    secrets: the key passphrase and every variable the policy's webhooks
    take a secret or a secret URL from (a command could forge their
    signed deliveries with it)."""
    hidden = {PASSPHRASE_ENV}
    for h in policy_hooks:
        hidden.update(n for n in (h.secret_env, h.url_env) if n is not None)
    return {k: v for k, v in os.environ.items() if k not in hidden}


def _send(hook: Hook, d: Any, body: bytes, env: dict[str, str] | None) -> str | None:
    """One attempt; None on success, else what went wrong (no secret in it).
    `env`: a command's environment (_command_env)."""
    if hook.command is not None:
        return _run(hook.command, body, hook.timeout_seconds, env)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "cmi-console",
        "X-CMI-Event": d.event,
        "X-CMI-Delivery": str(d.id),
    }
    if hook.secret_env is not None:
        secret = os.environ.get(hook.secret_env)
        if not secret:
            return f"the secret's environment variable {hook.secret_env} is not set"
        headers[hooks.SIGNATURE_HEADER] = hooks.signature(secret.encode(), body)
    url = hook.url
    if hook.url_env is not None:  # read at each attempt, never stored
        url = os.environ.get(hook.url_env)
        if not url:
            return f"the URL's environment variable {hook.url_env} is not set"
        problem = url_problem(url)
        if problem:
            return f"the URL in {hook.url_env} {problem}"
    assert url is not None
    with _Deadline(hook.timeout_seconds) as deadline:
        error = _post(url, body, headers, hook, deadline)
        # cut off, the answer may have ended early (headers end at EOF), so
        # whatever it said, success or error, is not the receiver's
        if not deadline.in_time():
            return f"timed out after {hook.timeout_seconds:g} s"
    return error


def _post(
    url: str, body: bytes, headers: dict[str, str], hook: Hook, deadline: _Deadline
) -> str | None:
    opener = urllib.request.build_opener(
        _NoRedirect, _WatchedHTTP(deadline), _WatchedHTTPS(deadline)
    )
    try:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with opener.open(request, timeout=hook.timeout_seconds) as response:
            if not 200 <= response.status < 300:
                return f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            return f"HTTP {exc.code}: a redirect, not followed; give the hook the final URL"
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{type(exc).__name__}: {reason}"[:500]
    except (ValueError, http.client.InvalidURL) as exc:
        # their messages quote the URL, a secret path and all: said without it
        where = f"in {hook.url_env}" if hook.url_env is not None else "in the policy"
        return f"the URL {where} is not one that can be sent to ({type(exc).__name__})"
    except http.client.HTTPException as exc:  # the receiver broke the protocol
        return f"{type(exc).__name__} from the receiver"
    return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib follows a 301, 302 or 303 answer to a POST with a GET, without
    the body and to wherever it points: the event never arrived, yet the
    final answer (a landing page's 200) recorded it delivered, and the
    event's headers went to another host. A redirect is a failed delivery."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises the 3xx as an HTTPError


class _Deadline:
    """Ends an attempt when its time is up. A socket's timeout bounds each
    read, not the attempt: a receiver that sent its answer a byte at a time,
    each within the timeout, held the command that committed the event for
    hours (and outlived the lease another sender waits out, so the event
    could be sent twice). Each socket of the attempt is watched through a
    duplicate of its descriptor (TLS takes the original over), and at the
    deadline shut down, which ends whatever read or handshake waits on it."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._done = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock.dup())
            if self.expired:
                _shut(self._sockets[-1])

    def in_time(self) -> bool:
        """Whether the attempt ended before the deadline; after this, it never expires."""
        with self._lock:
            self._done = True
            return not self.expired

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _watched(base: type[http.client.HTTPConnection], deadline: _Deadline) -> Any:
    """`base` with every socket it opens watched by `deadline`."""

    class Watched(base):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)

            def connect(*a: Any, **k: Any) -> socket.socket:
                sock = socket.create_connection(*a, **k)
                deadline.watch(sock)
                return sock

            self._create_connection = connect

    return Watched


class _Watching:
    """A urllib handler whose connections' sockets `deadline` watches."""

    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        opened = super().do_open  # type: ignore[misc]
        return opened(_watched(http_class, self._deadline), req, **kwargs)


class _WatchedHTTP(_Watching, urllib.request.HTTPHandler):
    pass


class _WatchedHTTPS(_Watching, urllib.request.HTTPSHandler):
    pass


STDERR_KEPT = 64 * 1024  # of a command's stderr only the end is kept: its last line is the error


def _run(command: list[str], body: bytes, timeout: float, env: dict[str, str] | None) -> str | None:
    """Run a command hook with the event on stdin; None when it exits 0.

    Its stdout is discarded and only the end of its stderr kept, as it is
    read: capturing both whole (subprocess.run) held whatever the command
    printed in memory, gigabytes for a chatty one. The event is written and
    stderr read on threads, so a command that reads neither still meets the
    timeout; on timeout its whole process group is killed."""
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=env,
        )
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    assert proc.stdin is not None and proc.stderr is not None
    stdin, stderr = proc.stdin, proc.stderr
    kept = bytearray()

    def feed() -> None:
        with contextlib.suppress(OSError), stdin:  # a command may exit without reading it
            stdin.write(body)

    def drain() -> None:
        with stderr:
            while chunk := stderr.read1(65536):
                kept.extend(chunk)
                del kept[:-STDERR_KEPT]

    threads = [threading.Thread(target=f, daemon=True) for f in (feed, drain)]
    for t in threads:
        t.start()
    try:
        code = proc.wait(timeout)
    except BaseException as exc:  # the timeout, or ^C: its own session no longer gets the signal
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if isinstance(exc, subprocess.TimeoutExpired):
            return f"timed out after {timeout:g} s"
        raise
    finally:
        for t in threads:
            t.join(1.0)  # a process it started may hold stderr open: its reader ends with it
    if code != 0:
        last = bytes(kept).decode(errors="replace").strip().splitlines()[-1:] or [""]
        return f"exit {code}: {last[0]}"[:500]
    return None


def _finish(
    ctx: Context, delivery_id: int, status: str, made: int, error: str | None
) -> str | None:
    """Record the outcome of `made` more attempts (added in the database, not
    to a count read earlier); the error as recorded."""
    from cmi_console.store.engine import write_transaction

    if error is not None:  # a command's stderr may quote a URL, password and all
        error = scrubbed(error)

    with write_transaction(ctx.engine) as conn:
        conn.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.id == delivery_id)
            .values(
                status=status,
                attempts=DELIVERIES.c.attempts + made,
                last_error=error,
                updated_at=ctx.clock(),
            )
        )
    return error


def list_deliveries(
    ctx: Context, *, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    if status is not None:
        names.one_of(status, STATUSES, "--status")
    check_page(limit)
    stmt = select(DELIVERIES).order_by(DELIVERIES.c.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(DELIVERIES.c.status == status)
    with ctx.read() as conn:
        return [_view(r) for r in conn.execute(stmt)]


def _view(r: Any) -> dict[str, Any]:
    return {
        "delivery": r.id,
        "seq": r.seq,
        "event": r.event,
        "hook": r.hook,
        "model": r.model,
        "status": r.status,
        "attempts": r.attempts,
        "last_error": r.last_error,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
    }


def redeliver(
    ctx: Context, ids: list[int] | None = None, *, failed: bool = False
) -> list[dict[str, Any]]:
    """Send deliveries again: the ones named, or every one not delivered."""
    if not ids and not failed:
        raise BadInput("hooks redeliver: name deliveries, or pass --failed")
    actor = ctx.require_actor()
    with ctx.read() as conn:
        require_role(conn, actor, REDELIVERERS, "redeliver hook events")
        if ids:
            found = {
                r.id for r in conn.execute(select(DELIVERIES.c.id).where(DELIVERIES.c.id.in_(ids)))
            }
            missing = sorted(set(ids) - found)
            if missing:
                raise NotFound(f"delivery {missing[0]} does not exist")
            chosen = sorted(set(ids))  # named twice, sent once
        else:
            chosen = [
                r.id
                for r in conn.execute(
                    select(DELIVERIES.c.id)
                    # a claim is skipped by _claim unless its sender died
                    .where(DELIVERIES.c.status.in_(["pending", "sending", "failed"]))
                    .order_by(DELIVERIES.c.id)
                )
            ]
    return deliver(ctx, chosen)
