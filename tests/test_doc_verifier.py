"""The documents are enough to check a bundle: an auditor's verifier written
only from docs/export-bundle.md and docs/audit-log-format.md
(tests/doc_verifier.py, which imports nothing of cmi_console) accepts the
demo's bundles, full and subset, and names the tampering that `cmi audit
verify-bundle` names. The documents' lists of decisions and replayed tables
are held to the code's."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import doc_verifier
import pytest
from conftest import Workspace
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gate_helpers import ok

from cmi_console.services import demo


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("demo") / "ws"
    demo.ensure_demo(home)
    return home


@pytest.fixture
def auditor(demo_home: Path, capsys: pytest.CaptureFixture[str]) -> Workspace:
    return Workspace(demo_home, None, capsys)


def export(ws: Workspace, out: Path, *args: str) -> Path:
    ok(ws.cli("audit", "export", "--out", str(out), "-q", *args, as_="audrey"))
    return out


def log_key(ws: Workspace) -> str:
    return (ws.home / "keys" / "log.vkey").read_text()


def ours(ws: Workspace, path: Path) -> set[str]:
    r = ws.cli("audit", "verify-bundle", str(path), "--log-key", log_key(ws), "--json", as_=None)
    return {p["kind"] for p in r.json()["problems"]}


def theirs(ws: Workspace, path: Path) -> set[str]:
    return {kind for kind, _where in doc_verifier.verify(path, log_key(ws))}


def tampered(src: Path, out: Path, edit: Any) -> Path:
    """An attacker's copy: `edit` changes the members; the manifest's hashes are
    made to match again (they cannot sign it)."""
    with zipfile.ZipFile(src) as z:
        files = {n: z.read(n) for n in z.namelist()}
    edit(files)
    manifest = json.loads(files["manifest.json"])
    manifest["files"] = {
        n: hashlib.sha256(b).hexdigest()
        for n, b in files.items()
        if n not in ("manifest.json", "manifest.sig")
    }
    files["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out


def test_a_verifier_written_from_the_documents_accepts_our_bundles(
    auditor: Workspace, tmp_path: Path
) -> None:
    import ast

    tree = ast.parse(Path(doc_verifier.__file__).read_text())
    imported = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            imported |= {a.name.split(".")[0] for a in n.names}
        elif isinstance(n, ast.ImportFrom):
            imported.add((n.module or "").split(".")[0])
    assert "cmi_console" not in imported  # nothing of ours: only the documents
    full = export(auditor, tmp_path / "full.zip")
    subset = export(auditor, tmp_path / "subset.zip", "--model", "credit-risk")
    window = export(auditor, tmp_path / "window.zip", "--since", "2026-11-20")
    for bundle in (full, subset, window):
        assert doc_verifier.verify(bundle, log_key(auditor)) == [], bundle.name
        assert ours(auditor, bundle) == set()
    # the checks had something to check: decisions with statements, deployments,
    # validation reports, and in a subset, proofs
    with zipfile.ZipFile(subset) as z:
        entries = [json.loads(line) for line in z.read("log/entries.jsonl").splitlines()]
        reports = [n for n in z.namelist() if n.startswith("validation/")]
        proofs = z.read("log/proofs.jsonl").splitlines()
    actions = {e["action"] for e in entries if "sig" in e}
    assert {"gate.approve", "gate.promote", "deploy.start"} <= actions
    assert (
        reports
        and len(proofs)
        == len(entries)
        < json.loads(zipfile.ZipFile(full).read("manifest.json"))["log_size"]
    )


def _edit_entry(files: dict[str, bytes], action: str, change: Any) -> None:
    """Change the first entry with `action`, written back canonically."""
    import rfc8785

    lines = files["log/entries.jsonl"].split(b"\n")
    for i, line in enumerate(lines):
        entry = json.loads(line) if line else {}
        if entry.get("action") == action:
            change(entry)
            lines[i] = rfc8785.dumps(entry)
            break
    files["log/entries.jsonl"] = b"\n".join(lines)


def _drop_line(name: str, index: int) -> Any:
    def edit(files: dict[str, bytes]) -> None:
        lines = files[name].split(b"\n")
        del lines[index]
        files[name] = b"\n".join(lines)

    return edit


def _comment(entry: dict[str, Any], text: str) -> None:
    entry["data"]["statement"]["comment"] = text


CASES = {
    # a reviewer's approval given another comment: its entry and its statement
    "approval": (
        "full",
        lambda f: _edit_entry(f, "gate.approve", lambda e: _comment(e, "looks fine")),
        {"manifest-signature", "signature-invalid", "statement-invalid", "root-mismatch"},
    ),
    "deploy": (
        "full",
        lambda f: _edit_entry(f, "deploy.start", lambda e: e.update(actor="alice")),
        {"manifest-signature", "signature-invalid", "root-mismatch"},
    ),
    "unsigned": (
        "subset",
        lambda f: _edit_entry(f, "gate.promote", lambda e: e.pop("sig")),
        {"manifest-signature", "signature-missing", "proof-invalid"},
    ),
    "report": (
        "subset",
        lambda f: f.update(
            {
                name: f[name].replace(b'"status":"pass"', b'"status":"fail"', 1)
                for name in f
                if name.startswith("validation/") and b'"status":"pass"' in f[name]
            }
        ),
        {"manifest-signature", "report-mismatch"},
    ),
    "decisions": (
        "subset",
        _drop_line("decisions.jsonl", 0),
        {"manifest-signature", "decision-mismatch"},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tampering_is_named_by_both_verifiers(
    auditor: Workspace, tmp_path: Path, case: str
) -> None:
    scope, edit, expected = CASES[case]
    args = () if scope == "full" else ("--model", "credit-risk")
    bundle = tampered(export(auditor, tmp_path / "b.zip", *args), tmp_path / "t.zip", edit)
    assert expected <= theirs(auditor, bundle), theirs(auditor, bundle)
    assert expected <= ours(auditor, bundle), ours(auditor, bundle)


def test_another_log_key_is_refused_by_both(auditor: Workspace, tmp_path: Path) -> None:
    bundle = export(auditor, tmp_path / "full.zip")
    origin = log_key(auditor).split("+", 1)[0]
    raw = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    khash = hashlib.sha256(origin.encode() + b"\n\x01" + raw).digest()[:4].hex()
    blob = base64.b64encode(b"\x01" + raw).decode()
    other = f"{origin}+{khash}+{blob}"
    found = {kind for kind, _ in doc_verifier.verify(bundle, other)}
    assert {"manifest-signature", "log-key-mismatch", "checkpoint-invalid"} <= found
    r = auditor.cli("audit", "verify-bundle", str(bundle), "--log-key", other, "--json", as_=None)
    assert r.code == 4 and "log-key-mismatch" in {p["kind"] for p in r.json()["problems"]}


def test_the_documents_list_every_decision_and_every_replayed_table() -> None:
    """A verifier written from the page checks what the page lists: it listed
    12 of the 28 tables replayed from the log, and deployments as to come."""
    from cmi_console.core.entries import DECISION_ACTIONS
    from cmi_console.store.tables import REGISTRY_TABLES

    tables = doc_verifier.listed(
        "audit-log-format.md", "rebuilds every registry table", "An insert of"
    )
    assert tables == set(REGISTRY_TABLES)
    assert set(DECISION_ACTIONS) == doc_verifier.DECISIONS
    assert {
        "gate.approve",
        "gate.reject",
        "gate.promote",
        "version.retire",
        "break-glass.sign",
        "break-glass.execute",
    } == doc_verifier.STATEMENTS


def test_the_documents_verifier_checks_signatures_strictly() -> None:
    """docs/audit-log-format.md asks for libsodium's strict check: under the
    identity point as a key, (R = identity, S = 0) is a signature anyone
    can make for any message, and OpenSSL's check takes it."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    identity, forged = b"\x01" + bytes(31), b"\x01" + bytes(63)
    assert not doc_verifier.ed25519(identity, forged, b"any message")
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    assert doc_verifier.ed25519(public, key.sign(b"m"), b"m")
    assert not doc_verifier.ed25519(public, key.sign(b"m"), b"n")
