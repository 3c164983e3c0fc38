"""Event hooks: delivered after the transaction commits, signed with
HMAC-SHA256, recorded with their attempts, and never lost when the receiver
is down. A real HTTP server on 127.0.0.1 and a real command."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import Workspace
from gate_helpers import add_staff, ok

from cmi_console.core import clock
from cmi_console.core import hooks as core_hooks
from cmi_console.services import audit, gates, hooks
from cmi_console.services.context import Context

SECRET = "s3cret-for-tests-only"


class Receiver:
    """A webhook receiver that checks, as it is called, that the event it is
    told about is already committed (visible to another connection)."""

    def __init__(
        self,
        ws: Workspace,
        port: int = 0,
        delay: float = 0.0,
        hold: threading.Event | None = None,
    ) -> None:
        self.ws, self.delay, self.hold = ws, delay, hold
        self.calls: list[dict[str, Any]] = []
        self.errors: list[BaseException | None] = []
        self.arrived = threading.Event()  # set when a request comes in, before its delay
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.arrived.set()
                time.sleep(receiver.delay)
                if receiver.hold is not None:  # answers once the test lets it
                    receiver.hold.wait(60)
                seq = json.loads(body)["entry"]["seq"]
                committed = audit.count(receiver.ws.ctx(None)) > seq
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.calls.append({"headers": headers, "body": body, "committed": committed})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                # kept, not printed: a delivery that timed out hangs up, so a late
                # reply fails, and a request still handled after its test ended
                # finds its workspace gone; socketserver printed a traceback that
                # escaped the tests' capture into CI's output
                receiver.errors.append(sys.exc_info()[1])

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def activate(ws: Workspace, tmp_path: Path, hooks_toml: str) -> None:
    policy = tmp_path / "cancer-hooks.toml"
    policy.write_text('model = "cancer"\n' + hooks_toml)
    ok(ws.cli("policy", "activate", str(policy)))


@pytest.fixture
def hooked(populated: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    monkeypatch.setenv("CMI_TEST_HOOK_SECRET", SECRET)
    yield add_staff(populated)


def webhook(port: int, events: str, **extra: str) -> str:
    lines = [
        "[hooks.ci]",
        f"url = 'http://127.0.0.1:{port}/cmi'",
        f"events = {events}",
        "secret_env = 'CMI_TEST_HOOK_SECRET'",
        "timeout_seconds = 2",
        "retries = 2",
        "backoff_seconds = 0.05",
        *(f"{k} = {v}" for k, v in extra.items()),
    ]
    return "\n".join(lines) + "\n"


def test_a_webhook_gets_each_event_signed_after_commit(hooked: Workspace, tmp_path: Path) -> None:
    ws = hooked
    receiver = Receiver(ws)
    try:
        activate(ws, tmp_path, webhook(receiver.port, '["gate.*", "stage.promoted"]'))
        ok(ws.cli("validate", "cancer:1", "--suite", "staging", as_="alice"))
        ok(ws.cli("request", "cancer:1", "--to", "staging", as_="alice"))  # not an event
        ok(ws.cli("approve", "cancer:1", "--to", "staging", as_="victor"))
        ok(ws.cli("promote", "cancer:1", "--to", "staging", as_="dora"))
    finally:
        receiver.close()
    events = [c["headers"]["x-cmi-event"] for c in receiver.calls]
    assert events == ["gate.approved", "stage.promoted"]
    for call in receiver.calls:
        assert call["committed"]  # delivered after the commit, never inside it
        header = call["headers"][core_hooks.SIGNATURE_HEADER.lower()]
        assert core_hooks.verify_signature(SECRET.encode(), call["body"], header)
        assert not core_hooks.verify_signature(b"another secret", call["body"], header)
    body = json.loads(receiver.calls[0]["body"])
    entry = audit.query(ws.ctx(), action="gate.approve", limit=1)[0]
    assert body["entry"]["seq"] == entry["seq"] and body["entry"]["hash"] == entry["hash"]
    assert body["model"] == "cancer" and body["data"]["statement"]["decision"] == "approve"
    rows = hooks.list_deliveries(ws.ctx())
    assert {(r["event"], r["status"], r["attempts"]) for r in rows} == {
        ("gate.approved", "delivered", 1),
        ("stage.promoted", "delivered", 1),
    }


def test_a_redirect_is_a_failed_delivery_never_followed(hooked: Workspace, tmp_path: Path) -> None:
    """urllib answered a 302 to the POST with a GET elsewhere, without the
    event: the landing page's 200 recorded the delivery delivered, and the
    event's signed headers went to the other host."""
    ws = hooked
    landing: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(302)
            self.send_header("Location", "/landing")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            landing.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        activate(ws, tmp_path, webhook(server.server_address[1], '["validation.*"]'))
        ok(ws.cli("validate", "cancer:1", "--suite", "staging", as_="alice"))
    finally:
        server.shutdown()
        server.server_close()
    (failed,) = hooks.list_deliveries(ws.ctx())
    assert failed["status"] == "failed" and failed["attempts"] == 2
    assert failed["last_error"].startswith("HTTP 302: a redirect, not followed")
    assert landing == []


def test_a_receiver_that_answers_a_byte_at_a_time_meets_the_timeout(
    hooked: Workspace, tmp_path: Path
) -> None:
    """A socket's timeout bounds each read, not the attempt: a receiver that
    sent its answer's header a byte every 0.2 s held the approving command
    until it gave up (here 40 s; a slower one, for hours), past the lease
    after which another sender sends the event again."""
    ws = hooked
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def trickle() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                for _ in range(200):  # 40 s, then it gives up
                    if stop.is_set():
                        break
                    conn.sendall(b"a")
                    time.sleep(0.2)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    port = server.getsockname()[1]
    try:
        hook = webhook(port, '["validation.*"]').replace("seconds = 2", "seconds = 1")
        activate(ws, tmp_path, hook)
        started = time.monotonic()
        ok(ws.cli("validate", "cancer:1", "--suite", "staging", as_="alice"))
        took = time.monotonic() - started
    finally:
        stop.set()
        server.close()
    (failed,) = hooks.list_deliveries(ws.ctx())
    assert failed["status"] == "failed" and failed["attempts"] == 2
    assert failed["last_error"] == "timed out after 1 s"
    # two attempts of at most 1 s and the validation: not the receiver's 2 x 40 s
    assert took < 20, took


def test_a_receiver_that_is_down_loses_nothing(hooked: Workspace, tmp_path: Path) -> None:
    ws = hooked
    port = free_port()  # nothing listens here yet
    activate(ws, tmp_path, webhook(port, '["version.registered", "validation.*"]'))
    r = ok(ws.cli("validate", "cancer:2", "--suite", "staging", as_="alice"))
    assert r.code == 0  # the decision stands: the hook failed after the commit
    (failed,) = hooks.list_deliveries(ws.ctx(), status="failed")
    assert failed["event"] == "validation.passed" and failed["attempts"] == 2
    assert "refused" in failed["last_error"].lower() or "errno" in failed["last_error"].lower()
    # said, not silence: a CI job learns its webhook did not go out
    n = failed["delivery"]
    assert r.err == (
        f"warning: committed, but hook ci (validation.passed) delivery #{n} failed: "
        f"{failed['last_error']}; `cmi hooks redeliver {n}` sends it again\n"
    ), r.err
    again = ws.cli("hooks", "redeliver", "--failed", as_="dora")
    assert again.code == 1  # still down
    assert again.out == f"delivery #{n}: failed after 4 attempt(s): {failed['last_error']}\n"
    receiver = Receiver(ws, port=port)
    try:
        assert ws.cli("hooks", "redeliver", "--failed", as_="alice").code == 3  # not a deployer
        # a delivery named twice is sent once (it was sent as often as named)
        ident = str(failed["delivery"])
        ok(ws.cli("hooks", "redeliver", ident, ident, as_="dora"))
    finally:
        receiver.close()
    assert [json.loads(c["body"])["event"] for c in receiver.calls] == ["validation.passed"]
    (done,) = hooks.list_deliveries(ws.ctx())
    assert done["status"] == "delivered" and done["attempts"] == 5 and done["last_error"] is None
    # nothing left: said, not silence (which read as done, or as nothing done)
    idle = ok(ws.cli("hooks", "redeliver", "--failed", as_="dora"))
    assert idle.out.strip() == "no delivery to send: none is waiting"


def test_a_slow_receiver_times_out_and_is_retried(hooked: Workspace, tmp_path: Path) -> None:
    ws = hooked
    receiver = Receiver(ws, delay=1.0)
    try:
        activate(
            ws,
            tmp_path,
            webhook(receiver.port, '["validation.passed"]').replace(
                "timeout_seconds = 2", "timeout_seconds = 0.2"
            ),
        )
        ok(ws.cli("validate", "cancer:2", "--suite", "staging", as_="alice"))
    finally:
        receiver.close()
    (d,) = hooks.list_deliveries(ws.ctx())
    assert d["status"] == "failed" and d["attempts"] == 2 and "timed out" in d["last_error"]


def _failed_delivery(ws: Workspace, tmp_path: Path, port: int, timeout: float) -> int:
    """One validation.passed delivery that failed (nothing listened on `port`)."""
    hook = webhook(port, '["validation.passed"]').replace(
        "timeout_seconds = 2", f"timeout_seconds = {timeout}"
    )
    activate(ws, tmp_path, hook)
    ok(ws.cli("validate", "cancer:2", "--suite", "staging", as_="alice"))
    (failed,) = hooks.list_deliveries(ws.ctx(), status="failed")
    return int(failed["delivery"])


def test_two_redeliverers_at_once_send_a_delivery_once(hooked: Workspace, tmp_path: Path) -> None:
    """A `redeliver --failed` from cron while another is still waiting on a
    slow receiver: both had sent it, and the later outcome overwrote the
    other's attempts. The second now finds it claimed and leaves it."""
    ws = hooked
    port = free_port()
    ident = _failed_delivery(ws, tmp_path, port, timeout=5)  # 2 attempts, both refused
    receiver = Receiver(ws, port=port, delay=1.0)
    first: list[Any] = []
    sender = threading.Thread(
        target=lambda: first.extend(hooks.redeliver(ws.ctx("dora"), failed=True))
    )
    try:
        sender.start()
        assert receiver.arrived.wait(10)  # the first sender is waiting on the receiver
        second = ws.cli("hooks", "redeliver", "--failed", as_="dora")
        sender.join(10)
    finally:
        receiver.close()
    assert second.code == 1  # not known to be delivered when it answered
    assert second.out.strip() == f"delivery #{ident}: being sent by another process; not sent again"
    assert len(receiver.calls) == 1
    assert [(d["status"], d["attempts"]) for d in first] == [("delivered", 3)]
    (done,) = hooks.list_deliveries(ws.ctx())
    assert (done["status"], done["attempts"], done["last_error"]) == ("delivered", 3, None)


def test_a_dead_senders_claim_is_taken_over_once_it_expires(
    hooked: Workspace, tmp_path: Path
) -> None:
    """kill -9 a redeliverer while the receiver holds its request: the
    delivery stays claimed (`sending`), is left alone while the claim could
    still be a live sender's, and is sent by the first redeliverer after."""
    ws = hooked
    port = free_port()
    ident = _failed_delivery(ws, tmp_path, port, timeout=30)
    receiver = Receiver(ws, port=port, delay=60)  # never answers in time
    env = {**os.environ, "CMI_HOME": str(ws.home), "CMI_USER": "dora"}
    if ws.db:
        env["CMI_DATABASE_URL"] = ws.db
    proc = subprocess.Popen(
        [sys.executable, "-m", "cmi_console", "hooks", "redeliver", "--failed"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert receiver.arrived.wait(60)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        receiver.close()
    (claimed,) = hooks.list_deliveries(ws.ctx())
    assert claimed["status"] == "sending"
    again = hooks.redeliver(ws.ctx("dora"), failed=True)
    assert [d["status"] for d in again] == ["sending"]  # it could still be sending

    def redeliver_at(seconds: float) -> list[dict[str, Any]]:
        moment = clock.add(clock.utc_now(), hours=seconds / 3600)
        return hooks.redeliver(Context.open(ws.home, ws.db, "dora", clock=lambda: moment), [ident])

    receiver = Receiver(ws, port=port)
    try:
        # 100 s on: past the hook's 2 x 30 s and 10 s; a team's database also
        # waits out twice the clock skew its hosts may have
        done = redeliver_at(100)
        if ws.db:
            assert [d["status"] for d in done] == ["sending"]
            done = redeliver_at(3600)
    finally:
        receiver.close()
    assert [(d["status"], d["attempts"]) for d in done] == [("delivered", 3)]
    assert len(receiver.calls) == 1


def retire_cancer_2(ws: Workspace) -> None:
    """cancer:2 requested for retirement, approved and retired: a model.retired event."""
    gates.request(ws.ctx("alice"), "cancer:2", "retired")
    gates.decide(ws.ctx("rita"), "cancer:2", "retired", "approve")
    gates.retire(ws.ctx("dora"), "cancer:2", "superseded")


def test_a_command_hook_gets_the_event_on_stdin(hooked: Workspace, tmp_path: Path) -> None:
    ws = hooked
    out = tmp_path / "event.json"
    script = f"import sys; open({str(out)!r}, 'wb').write(sys.stdin.buffer.read())"
    activate(
        ws,
        tmp_path,
        "[hooks.notify]\nevents = ['model.retired']\n"
        f"command = [{json.dumps(sys.executable)}, '-c', {json.dumps(script)}]\n"
        "[hooks.broken]\nevents = ['model.retired']\nretries = 1\n"
        # its error names a URL with a password, as curl's do: kept without it
        # (made as it runs: a policy whose text holds one is refused)
        "command = ['sh', '-c', 'u=https://bot; echo curl: cannot reach $u:S3CRET@h.example/x "
        ">&2; exit 1']\n",
    )
    retire_cancer_2(ws)
    event = json.loads(out.read_text())
    assert event["event"] == "model.retired" and event["entry"]["action"] == "version.retire"
    status = {d["hook"]: d for d in hooks.list_deliveries(ws.ctx())}
    assert status["notify"]["status"] == "delivered"
    assert status["broken"]["status"] == "failed" and "exit 1" in status["broken"]["last_error"]
    assert "https://***@h.example/x" in status["broken"]["last_error"]
    assert "S3CRET" not in json.dumps(hooks.list_deliveries(ws.ctx()))


def test_a_command_hook_never_gets_the_consoles_secrets(
    hooked: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command hook ran with the whole environment of whoever triggered it:
    their key passphrase (with their key file, which it can read as them, it
    could sign as them: the policy's author is not its reviewers) and the
    secrets of the policy's webhooks. It gets the rest."""
    ws = hooked
    monkeypatch.setenv("CMI_KEY_PASSPHRASE", "rita-types-this")
    monkeypatch.setenv("CMI_TEST_HOOK_URL", "http://127.0.0.1:9/secret-path")
    monkeypatch.setenv("CMI_TEST_VISIBLE", "yes")
    out = tmp_path / "env.json"
    script = f"import json, os; open({str(out)!r}, 'w').write(json.dumps(dict(os.environ)))"
    activate(
        ws,
        tmp_path,
        "[hooks.notify]\nevents = ['model.retired']\n"
        f"command = [{json.dumps(sys.executable)}, '-c', {json.dumps(script)}]\n"
        # webhooks of the same policy, for other events: their secrets stay ours
        "[hooks.signed]\nevents = ['gate.*']\nurl = 'http://127.0.0.1:9/x'\n"
        "secret_env = 'CMI_TEST_HOOK_SECRET'\n"
        "[hooks.slack]\nevents = ['gate.*']\nurl_env = 'CMI_TEST_HOOK_URL'\n",
    )
    retire_cancer_2(ws)
    seen = json.loads(out.read_text())
    assert seen["CMI_TEST_VISIBLE"] == "yes" and seen["PATH"] == os.environ["PATH"]
    for name in ("CMI_KEY_PASSPHRASE", "CMI_TEST_HOOK_SECRET", "CMI_TEST_HOOK_URL"):
        assert name not in seen, name
    assert os.environ["CMI_KEY_PASSPHRASE"] == "rita-types-this"  # ours is untouched


def test_a_chatty_or_hanging_command_costs_no_memory_and_meets_its_timeout(
    hooked: Workspace, tmp_path: Path
) -> None:
    """A command's output was captured whole (subprocess.run): 64 MB of it
    stayed in the deciding process's memory. Only the end of stderr is kept
    now; and a timeout kills what the command started as well."""
    import tracemalloc

    ws = hooked
    chatty = (
        "import sys\n"
        "for _ in range(64): sys.stdout.buffer.write(b'o' * 2**20); "
        "sys.stderr.buffer.write(b'e' * 2**20)\n"
        "sys.stderr.write('\\nboom\\n'); sys.exit(3)"
    )
    pid_file = tmp_path / "grandchild.pid"
    hanging = f"sleep 60 & echo $! > {pid_file}; exec sleep 60"
    activate(
        ws,
        tmp_path,
        "[hooks.chatty]\nevents = ['model.retired']\nretries = 1\n"
        f"command = [{json.dumps(sys.executable)}, '-c', {json.dumps(chatty)}]\n"
        "[hooks.hanging]\nevents = ['model.retired']\nretries = 1\ntimeout_seconds = 1\n"
        f"command = ['sh', '-c', {json.dumps(hanging)}]\n",
    )
    tracemalloc.start()
    try:
        gates.request(ws.ctx("alice"), "cancer:2", "retired")
        gates.decide(ws.ctx("rita"), "cancer:2", "retired", "approve")
        tracemalloc.reset_peak()
        gates.retire(ws.ctx("dora"), "cancer:2", "superseded")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"{peak / 2**20:.0f} MiB held while delivering"
    status = {d["hook"]: d for d in hooks.list_deliveries(ws.ctx())}
    chatty = status["chatty"]
    assert (chatty["status"], chatty["last_error"]) == ("failed", "exit 3: boom")
    assert status["hanging"]["status"] == "failed"
    assert status["hanging"]["last_error"] == "timed out after 1 s"
    grandchild = Path(f"/proc/{pid_file.read_text().strip()}/stat")
    assert not grandchild.exists() or grandchild.read_text().split(") ")[1][0] == "Z"


def test_hooks_in_the_policy_are_checked_and_keep_the_hash(
    hooked: Workspace, tmp_path: Path
) -> None:
    ws = hooked
    activate(ws, tmp_path, "")  # the same model policy, without hooks
    before = ok(ws.cli("policy", "show", "cancer", "--json")).json()["sha256"]
    for bad, message in (
        ("[hooks.x]\nevents = ['gate.aproved']\nurl = 'http://127.0.0.1:1/'\n", "names no event"),
        ("[hooks.x]\nevents = ['gate.*']\n", "exactly one of url, url_env and command"),
        (
            "[hooks.x]\nevents = ['gate.*']\nurl = 'http://h/'\nurl_env = 'CMI_TEST_HOOK_URL'\n",
            "exactly one of url, url_env and command",
        ),
        ("[hooks.x]\nevents = ['gate.*']\nurl = 'ftp://x'\n", "http:// or https://"),
        # a password in the URL would sit in the policy's audited text
        (
            "[hooks.x]\nevents = ['gate.*']\nurl = 'https://ci:hunter2@example.org/h'\n",
            "must not hold credentials",
        ),
        # so would a URL that is the credential, or carries one in its query
        (
            "[hooks.x]\nevents = ['gate.*']\n"
            "url = 'https://hooks.slack.com/services/T0/B0/hunter2'\n",
            "a hooks.slack.com webhook URL is itself the credential; give it in url_env",
        ),
        (
            "[hooks.x]\nevents = ['gate.*']\n"
            "url = 'https://chat.googleapis.com/v1/spaces/S/messages?key=hunter2&token=t'\n",
            "itself the credential",
        ),
        (
            "[hooks.x]\nevents = ['gate.*']\nurl = 'https://ci.example.org/h?access_token=hunter2'\n",
            "must not carry a credential in its query (access_token=...); use url_env",
        ),
        # or in its path, on a host we do not know (Mattermost's incoming webhooks)
        (
            "[hooks.x]\nevents = ['gate.*']\n"
            "url = 'https://chat.example.org/hooks/hunter2xq5k8fz3b7gk9jcu1p'\n",
            "path segment 2 looks like a token (25 characters); a URL that holds its "
            "credential goes in url_env",
        ),
        # a relative program is whatever file has that name where the deliverer runs
        (
            "[hooks.x]\nevents = ['gate.*']\ncommand = ['./notify.sh']\n",
            "'./notify.sh' is a relative path",
        ),
    ):
        policy = tmp_path / "bad.toml"
        policy.write_text('model = "cancer"\n' + bad)
        r = ws.cli("policy", "activate", str(policy))
        assert r.code == 2 and message in r.err and "hooks.x" in r.err, r.err
        assert "hunter2" not in r.err
    from cmi_console.core.policy import secret_in_url

    for harmless in (
        "https://ci.example.org/h?env=prod&team=risk",
        "http://127.0.0.1:8080/",
        # words, numbers, versions and dates in a path are not tokens
        "https://ci.example.org/projects/credit_risk_scoring_2026/events",
        "https://ci.example.org/events/credit-risk-v2-production-eu1",
        "https://ci.example.org/api/v4/projects/1234/trigger/pipeline",
        "https://ci.example.org/h/2026-11-30T12-00-00",
        "https://ci.example.org/hooks/x1y2z3",
    ):
        assert secret_in_url(harmless) is None, harmless
    for token in (
        "https://webhook.site/2f1c6a3e-8b7d-4c9e-a1f0-5d6e7b8c9a0b",
        "https://rocket.example.org/hooks/6Q2Bqr3Xyz/abcd1234EFGH5678ijklMNOP9012qrst",
        "https://ci.example.org/h%2Fxq5k8fz3b7gk9jcu1pb9yq4m6a",  # an escaped / hides none
    ):
        problem = secret_in_url(token)
        assert problem is not None and "looks like a token" in problem, token
        assert not any(part in problem for part in token.split("/")[3:]), problem
    activate(ws, tmp_path, webhook(free_port(), '["gate.*"]'))
    shown = ok(ws.cli("policy", "show", "cancer", "--json")).json()
    assert shown["sha256"] == before  # a webhook does not make approvals stale
    assert shown["hooks"]["ci"]["events"] == ["gate.*"]


def test_a_policy_active_before_a_rule_was_added_keeps_working(
    hooked: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rules added later (a relative hook program, a webhook URL that is a
    credential) refuse a policy being activated. One that was active before
    them must still load: it had stopped every command on its models."""
    from cmi_console.core import policy as pol

    ws = hooked
    relative = "[hooks.x]\nevents = ['model.retired']\ncommand = ['./notify.sh']\n"
    with monkeypatch.context() as m:
        m.setattr(pol, "_activating", lambda _info: False)  # as activated before the rule
        activate(ws, tmp_path, relative)
    shown = ok(ws.cli("policy", "show", "cancer", "--json")).json()
    assert shown["hooks"]["x"]["command"] == ["./notify.sh"]
    ok(ws.cli("validate", "cancer:1", "--suite", "staging", as_="alice"))
    r = ws.cli("policy", "activate", str(tmp_path / "cancer-hooks.toml"))
    assert r.code == 2 and "'./notify.sh' is a relative path" in r.err


def test_the_secret_never_reaches_the_log_or_the_outbox(hooked: Workspace, tmp_path: Path) -> None:
    ws = hooked
    receiver = Receiver(ws)
    try:
        activate(ws, tmp_path, webhook(receiver.port, '["validation.*"]'))
        ok(ws.cli("validate", "cancer:1", "--suite", "staging", as_="alice"))
    finally:
        receiver.close()
    with ws.ctx().engine.connect() as conn:
        from sqlalchemy import text

        for table_name in ("audit_entries", "hook_deliveries", "policies"):
            for row in conn.execute(text(f"SELECT * FROM {table_name}")):  # noqa: S608 (fixed names)
                assert SECRET not in str(row), table_name


def test_a_secret_url_comes_from_the_environment_and_is_stored_nowhere(
    hooked: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack's and Teams' webhook URLs are their secret: in `url` it would
    sit in the policy's audited text. `url_env` names the variable instead."""
    ws = hooked
    receiver = Receiver(ws)
    secret_url = f"http://127.0.0.1:{receiver.port}/services/T000/B000/XXXXSECRETXXXX"
    hook = webhook(receiver.port, '["validation.*"]').replace(
        f"url = 'http://127.0.0.1:{receiver.port}/cmi'", "url_env = 'CMI_TEST_HOOK_URL'"
    )
    try:
        activate(ws, tmp_path, hook)
        monkeypatch.delenv("CMI_TEST_HOOK_URL", raising=False)
        ok(ws.cli("validate", "cancer:1", "--suite", "staging", as_="alice"))
        (failed,) = hooks.list_deliveries(ws.ctx())
        assert failed["status"] == "failed"
        assert "environment variable CMI_TEST_HOOK_URL is not set" in failed["last_error"]
        # a URL http.client cannot send: its error quoted the URL, secret path
        # and all, into the delivery's record (an "internal" error)
        monkeypatch.setenv("CMI_TEST_HOOK_URL", secret_url.replace("/T000", "/T 000"))
        assert ws.cli("hooks", "redeliver", "--failed", as_="root").code == 1
        (failed,) = hooks.list_deliveries(ws.ctx())
        assert failed["status"] == "failed"
        assert failed["last_error"] == (
            "the URL in CMI_TEST_HOOK_URL is not one that can be sent to (InvalidURL)"
        )
        monkeypatch.setenv("CMI_TEST_HOOK_URL", secret_url)
        ok(ws.cli("hooks", "redeliver", "--failed", as_="root"))
    finally:
        receiver.close()
    (call,) = receiver.calls
    assert call["committed"] and call["headers"]["x-cmi-signature"]
    with ws.ctx().engine.connect() as conn:
        from sqlalchemy import text

        for table_name in ("audit_entries", "hook_deliveries", "policies"):
            for row in conn.execute(text(f"SELECT * FROM {table_name}")):  # noqa: S608 (fixed names)
                assert "XXXXSECRETXXXX" not in str(row), table_name
    shown = ok(ws.cli("policy", "show", "cancer", "--json")).json()
    assert shown["hooks"]["ci"]["url_env"] == "CMI_TEST_HOOK_URL"


def test_the_console_shows_a_decision_without_waiting_for_its_hooks(
    hooked: Workspace, tmp_path: Path
) -> None:
    """The console's worker sent the hooks before it returned, so a reviewer
    looked at a spinner for as long as a slow receiver took (16 s with the
    default retries). The console's Context sends them on a thread of its
    own: the call returns while the receiver still holds the delivery, and
    the delivery is still made and recorded."""
    from cmi_console.services import validations
    from cmi_console.tui.session import Session

    ws = hooked
    release = threading.Event()
    receiver = Receiver(ws, hold=release)
    try:
        hook = webhook(receiver.port, '["validation.passed"]')
        activate(ws, tmp_path, hook.replace("timeout_seconds = 2", "timeout_seconds = 30"))
        session = Session(ws.ctx("alice"))  # the console's
        done = threading.Event()

        def validate() -> None:
            validations.validate(session.ctx, "cancer:2", suite="staging")
            done.set()

        threading.Thread(target=validate, daemon=True).start()
        assert receiver.arrived.wait(60)
        # answered while the receiver holds it (a wait for it would take 30 s)
        assert done.wait(15) and not receiver.calls
        release.set()
        for _ in range(600):
            if hooks.list_deliveries(ws.ctx())[0]["status"] == "delivered":
                break
            time.sleep(0.05)
    finally:
        release.set()
        receiver.close()
    (sent,) = hooks.list_deliveries(ws.ctx())
    assert sent["status"] == "delivered" and sent["attempts"] == 1
    assert [json.loads(c["body"])["event"] for c in receiver.calls] == ["validation.passed"]
    assert session.ctx.take_notices() == []
