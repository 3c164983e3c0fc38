"""An auditor's own bundle verifier, written only from docs/export-bundle.md
and docs/audit-log-format.md: it imports nothing of cmi_console. It shows
that the documents are precise enough for a third party (DESIGN.md), and it
checks our bundles without our code. It returns its findings as
(kind, where) pairs, with the kinds the documents name."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import rfc8785

DOCS = Path(__file__).resolve().parent.parent / "docs"


def listed(doc: str, start: str, end: str) -> set[str]:
    """The `names` a document lists between two phrases."""
    text = (DOCS / doc).read_text()
    at = text.index(start)
    return set(re.findall(r"`([a-z_.-]+)`", text[at : text.index(end, at)]))


# read from the page itself ("Decisions and signatures", "Decision statements")
DECISIONS = listed("audit-log-format.md", "The actions `workspace.init`", "**decisions**")
STATEMENTS = listed("audit-log-format.md", "Gate decisions (", ") also carry")


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf(entry: bytes) -> bytes:
    return sha256(b"\x00" + entry)


def node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962's Merkle Tree Hash over leaf hashes."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return node(mth(leaves[:split]), mth(leaves[split:]))


def inclusion_root(index: int, size: int, leaf_hash: bytes, path: list[bytes]) -> bytes | None:
    """RFC 9162 section 2.1.3.2: the root an inclusion proof leads to."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def ed25519(public: bytes, signature: bytes, message: bytes) -> bool:
    """Strictly, as the format asks (libsodium: small-order keys and R, and
    S not below the group order, refused); OpenSSL's check takes a forgery
    under the identity point."""
    from nacl.exceptions import BadSignatureError
    from nacl.exceptions import ValueError as NaclValueError
    from nacl.signing import VerifyKey

    try:
        VerifyKey(public).verify(message, signature)
    except (BadSignatureError, NaclValueError, TypeError):
        return False
    return True


def parse_vkey(text: str) -> tuple[str, bytes, bytes]:
    """`<origin>+<hex key hash>+<base64(0x01 || key)>` -> origin, key hash, key."""
    # the origin holds no "+", the base64 may: split at the first two
    origin, key_hash, blob = text.strip().split("+", 2)
    raw = base64.b64decode(blob)
    if raw[:1] != b"\x01" or len(raw) != 33:
        raise ValueError("not an Ed25519 verifier key")
    public = raw[1:]
    if sha256(origin.encode() + b"\n\x01" + public)[:4] != bytes.fromhex(key_hash):
        raise ValueError("key hash does not match the key")
    return origin, bytes.fromhex(key_hash), public


def open_note(note: bytes, origin: str, key_hash: bytes, public: bytes) -> tuple[int, bytes] | None:
    """A checkpoint signed by the log key: (tree size, root), or None."""
    text = note.decode()
    body, _, signatures = text.partition("\n\n")
    lines = body.split("\n")
    if len(lines) != 3 or lines[0] != origin:
        return None
    for line in signatures.splitlines():
        name, _, blob = line.removeprefix("— ").rpartition(" ")
        raw = base64.b64decode(blob)
        signed = body.encode() + b"\n"  # the first three lines, with their newlines
        if name == origin and raw[:4] == key_hash and ed25519(public, raw[4:], signed):
            return int(lines[1]), base64.b64decode(lines[2])
    return None


def verify(path: Path, log_key: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    origin, key_hash, public = parse_vkey(log_key)

    # 1. the manifest is signed by the log key
    manifest = json.loads(files["manifest.json"])
    signed = b"cmi-console/bundle/v1\n" + rfc8785.dumps(manifest)
    if not ed25519(public, base64.b64decode(files["manifest.sig"]), signed):
        found.append(("manifest-signature", "manifest.sig"))
    if files["keys/log.vkey"].decode().strip() != log_key.strip():
        found.append(("log-key-mismatch", "keys/log.vkey"))

    # 2. every file is listed with its SHA-256
    listed = manifest["files"]
    for name, data in files.items():
        if name in ("manifest.json", "manifest.sig"):
            continue
        if name not in listed:
            found.append(("unlisted-file", name))
        elif hashlib.sha256(data).hexdigest() != listed[name]:
            found.append(("file-modified", name))
    found += [("missing-file", n) for n in listed if n not in files]

    # 3. the checkpoint
    opened = open_note(files["log/checkpoint.note"], origin, key_hash, public)
    if opened is None or opened[0] != manifest["log_size"]:
        found.append(("checkpoint-invalid", "log/checkpoint.note"))
        return found
    size, root = opened

    # 4. the entries: canonical, in order, chained, and in the tree
    lines = files["log/entries.jsonl"].decode().splitlines()
    entries: list[dict[str, Any]] = []
    hashes: dict[int, bytes] = {}
    for line in lines:
        entry = json.loads(line)
        seq = entry["seq"]
        if rfc8785.dumps(entry) != line.encode():
            found.append(("not-canonical", f"entry {seq}"))
        if entries and seq <= entries[-1]["seq"]:
            found.append(("out-of-order", f"entry {seq}"))
        if seq - 1 in hashes and entry["prev"] != hashes[seq - 1].hex():
            found.append(("chain-broken", f"entry {seq}"))
        hashes[seq] = leaf(line.encode())
        entries.append(entry)
    if manifest["scope"]["full"]:
        if [e["seq"] for e in entries] != list(range(size)):
            found.append(("entry-missing", "log/entries.jsonl"))
        elif mth([hashes[s] for s in range(size)]) != root:
            found.append(("root-mismatch", "log/entries.jsonl"))
    else:
        proofs = [json.loads(p) for p in files["log/proofs.jsonl"].decode().splitlines()]
        if [p["seq"] for p in proofs] != [e["seq"] for e in entries]:
            found.append(("proof-invalid", "log/proofs.jsonl"))
        for p in proofs:
            path_ = [bytes.fromhex(h) for h in p["path"]]
            if inclusion_root(p["seq"], size, hashes.get(p["seq"], b""), path_) != root:
                found.append(("proof-invalid", f"entry {p['seq']}"))

    # 5. decisions: signed by a key of the actor valid at the entry's time
    keys = {k["key_id"]: k for k in json.loads(files["keys/principals.json"])}
    signed_entries = []
    for entry in entries:
        where = f"entry {entry['seq']}"
        action, sig = entry["action"], entry.get("sig")
        if sig is None:
            if action in DECISIONS:
                found.append(("signature-missing", where))
            continue
        signed_entries.append(entry)
        key = keys.get(sig["key"])
        valid = (
            key is not None
            and key["principal"] == entry["actor"]
            and key["created_at"] <= entry["time"]
            and (key["revoked_at"] is None or entry["time"] < key["revoked_at"])
        )
        unsigned = {k: v for k, v in entry.items() if k != "sig"}
        message = b"cmi-console/decision/v1\n" + rfc8785.dumps(unsigned)
        if not valid or not ed25519(
            base64.b64decode(key["public_key"]), base64.b64decode(sig["value"]), message
        ):
            found.append(("signature-invalid", where))
        if action in STATEMENTS:
            data = entry["data"]
            statement, by = data["statement"], keys.get(data["key"])
            message = b"cmi-console/statement/v1\n" + rfc8785.dumps(statement)
            if (
                by is None
                or statement["principal"] != entry["actor"]
                or by["principal"] != entry["actor"]
                or not ed25519(
                    base64.b64decode(by["public_key"]),
                    base64.b64decode(data["signature"]),
                    message,
                )
            ):
                found.append(("statement-invalid", where))

    # 6. the decision list and the validation reports equal their entries
    fields = ("seq", "time", "actor", "action", "subject", "sig")
    listed_decisions = [json.loads(d) for d in files["decisions.jsonl"].decode().splitlines()]
    if listed_decisions != [{f: e[f] for f in fields} for e in signed_entries]:
        found.append(("decision-mismatch", "decisions.jsonl"))
    by_seq = {e["seq"]: e for e in entries}
    for name, data in files.items():
        if not name.startswith("validation/"):
            continue
        report = json.loads(data)
        run = report["run"]
        entry = by_seq.get(report["seq"], {})
        inserted = [
            {**c["row"], "id": c["id"]}
            for c in entry.get("changes", [])
            if c["t"] == "validation_runs" and c["op"] == "insert"
        ]
        if run not in inserted:
            found.append(("report-mismatch", name))
    return found
