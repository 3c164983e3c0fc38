"""Compliance export bundles: the manifest signature and the offline check.

A bundle is a zip (layout in docs/export-bundle.md). `verify` needs nothing
but the zip and, ideally, the log's verifier key obtained out of band: no
database, no workspace. It reports every fault with the file or entry it
is in.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from cmi_console.core import checkpoint, entries, keys, merkle, statements, zip_end
from cmi_console.core.canonical import RepeatedName, canonical_bytes, is_canonical_of, unique_names
from cmi_console.core.errors import BadInput, IntegrityError
from cmi_console.core.gc_pause import gc_paused
from cmi_console.core.small_files import open_regular

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

FORMAT = "cmi-bundle/v1"
DOMAIN = b"cmi-console/bundle/v1\n"
MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"
ENTRIES, PROOFS, CHECKPOINT = "log/entries.jsonl", "log/proofs.jsonl", "log/checkpoint.note"
CONSISTENCY, LOG_KEY, PRINCIPALS = "log/consistency.json", "keys/log.vkey", "keys/principals.json"
DECISIONS = "decisions.jsonl"
MAX_PROBLEMS = 200
# a file the check reads whole (manifest, keys, checkpoint, a report) is small,
# and a .jsonl line is one entry: a zip member that unpacks past these is a
# zip bomb, not a bundle, and is reported instead of read into memory
MAX_MEMBER = 64 << 20
MAX_LINE = 16 << 20
# zipfile reads the central directory whole and makes ~560 bytes of objects per
# member before anything is checked: past this a bundle is refused unread. A
# bundle's member is ~80 bytes of it (one per validation run and model card),
# so this holds ~400,000 of them; a hostile one of 1-byte names costs <400 MB
MAX_DIRECTORY = 32 << 20
_READ = 1 << 20


def _unpacking_errors() -> tuple[type[BaseException], ...]:
    """What a damaged zip member raises as it is unpacked: a bad CRC or local
    header (BadZipFile), a broken deflate, bzip2 or lzma stream (zlib.error,
    OSError, EOFError, LZMAError), a method or an encryption zipfile cannot
    read (NotImplementedError, RuntimeError). One flipped bit in transit is
    enough; it is the bundle's fault, not the verifier's."""
    found: list[type[BaseException]] = [
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        NotImplementedError,
        RuntimeError,
    ]
    try:
        import lzma

        found.append(lzma.LZMAError)
    except ImportError:  # a Python built without it cannot unpack lzma members at all
        pass
    return tuple(found)


_UNPACKING = _unpacking_errors()


def manifest_message(manifest: dict[str, Any]) -> bytes:
    return DOMAIN + canonical_bytes(manifest)


def sign_manifest(manifest: dict[str, Any], log_key: Ed25519PrivateKey) -> str:
    return keys.b64(log_key.sign(manifest_message(manifest)))


def decision_record(entry: dict[str, Any]) -> dict[str, Any]:
    """A signed entry as decisions.jsonl lists it."""
    return {k: entry.get(k) for k in ("seq", "time", "actor", "action", "subject", "sig")}


@dataclass
class Problem:
    kind: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.where}: {self.message}"


@dataclass
class BundleReport:
    origin: str = ""
    scope: dict[str, Any] = field(default_factory=dict)
    log_size: int = 0
    entries: int = 0
    signatures: int = 0
    files: int = 0
    log_key: str = "bundle"  # "pinned" when the caller supplied the verifier key
    consistent_with: int | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "problems"}
        out["ok"] = self.ok
        out["problems"] = [p.__dict__ for p in self.problems]
        return out


def verify(path: Path, pinned_key: str | None = None, previous: str | None = None) -> BundleReport:
    """Check a bundle offline. BadInput when it is not a bundle at all."""
    # a FIFO given as the bundle (or swapped in after a check) must not hang it
    with os.fdopen(open_regular(path), "rb") as fh:
        claimed = zip_end.central_directory_size(fh)
        if claimed is not None and claimed > MAX_DIRECTORY:
            raise BadInput(
                f"{path}: its zip directory claims {claimed:,} bytes, more than a bundle "
                f"has ({MAX_DIRECTORY >> 20} MiB at most); not opened"
            )
        try:
            archive = zipfile.ZipFile(fh)
        except (OSError, zipfile.BadZipFile) as exc:
            raise BadInput(f"{path}: not a readable zip file ({exc})") from None
        with archive, gc_paused():
            return _Check(archive, pinned_key, previous).run()


def _manifest_shape(manifest: Any) -> str | None:
    """What is wrong with the manifest's shape, if anything: the checks after
    this one read it as an object with an object of files and a scope."""
    if not isinstance(manifest, dict):
        return "not a JSON object"
    files = manifest.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        return "files is not an object of file names and SHA-256 digests"
    if not isinstance(manifest.get("scope", {}), dict):
        return "scope is not an object"
    return None


def _public_key(listed: dict[str, Any]) -> bytes:
    """A listed key's bytes; b"" (which verifies nothing) when not base64."""
    try:
        return keys.unb64(str(listed.get("public_key")), "public key")
    except BadInput:
        return b""


class _Check:
    def __init__(self, archive: zipfile.ZipFile, pinned: str | None, previous: str | None):
        self.zip = archive
        self.pinned = pinned
        self.previous = previous
        self.report = BundleReport()
        listed = Counter(archive.namelist())
        self.names = set(listed)
        self.unreadable: set[str] = set()
        self._next_proof: tuple[int, list[bytes]] | None = None
        # zipfile reads the last member of a name, other unzip tools the
        # first: the auditor could be shown another file than the one checked
        for name in sorted(n for n, count in listed.items() if count > 1):
            self.problem(
                "duplicate-file", name, f"{listed[name]} members have this name; a bundle has one"
            )

    def problem(self, kind: str, where: str, message: str) -> None:
        if len(self.report.problems) < MAX_PROBLEMS:
            self.report.problems.append(Problem(kind, where, message))

    def read(self, name: str) -> bytes | None:
        if name not in self.names:
            self.problem("missing-file", name, "the bundle does not contain this file")
            return None
        size = self.zip.getinfo(name).file_size  # zipfile never unpacks past it
        if size > MAX_MEMBER:
            self.problem("too-large", name, f"unpacks to {size} bytes; no bundle file is that big")
            return None
        data = b"".join(self._chunks(name))
        return None if name in self.unreadable else data

    def _chunks(self, name: str) -> Iterator[bytes]:
        """The member's bytes, a read at a time. A member that cannot be
        unpacked is reported once, as `unreadable`, and yields nothing more
        (zipfile checks the CRC after the last read: bytes already yielded
        may be wrong, and the checks they reach report that too)."""
        if name in self.unreadable:
            return
        try:
            with self.zip.open(name) as fh:
                while chunk := fh.read(_READ):
                    yield chunk
        except _UNPACKING as exc:
            self.unreadable.add(name)
            self.problem("unreadable", name, f"cannot be unpacked: {exc}")

    def run(self) -> BundleReport:
        raw_manifest, raw_sig, raw_vkey = (self.read(n) for n in (MANIFEST, SIGNATURE, LOG_KEY))
        if raw_manifest is None or raw_sig is None or raw_vkey is None:
            return self.report
        try:
            manifest = orjson.loads(raw_manifest)
            origin, public = checkpoint.parse_verifier_key(raw_vkey.decode())
        except (orjson.JSONDecodeError, UnicodeDecodeError, BadInput) as exc:
            self.problem("malformed", MANIFEST + " / " + LOG_KEY, str(exc))
            return self.report
        try:  # signed as parsed: a name given twice is two documents to two readers
            json.loads(raw_manifest, object_pairs_hook=unique_names)
        except RepeatedName as exc:
            self.problem("malformed", MANIFEST, str(exc))
            return self.report
        shape = _manifest_shape(manifest)
        if shape is not None:
            self.problem("malformed", MANIFEST, shape)
            return self.report
        if self.pinned is not None:
            pin_origin, pin_public = checkpoint.parse_verifier_key(self.pinned)
            self.report.log_key = "pinned"
            if (pin_origin, pin_public) != (origin, public):
                self.problem(
                    "log-key-mismatch", LOG_KEY, "the bundle's log key is not the pinned key"
                )
                origin, public = pin_origin, pin_public
        try:
            signature = keys.unb64(raw_sig.decode().strip(), "manifest signature")
        except (BadInput, UnicodeDecodeError):
            signature = b""
        try:
            message = manifest_message(manifest)
        except ValueError:  # e.g. an integer beyond 2**53: no canonical form
            message = b""
        if not message or not keys.verify(public, signature, message):
            self.problem("manifest-signature", SIGNATURE, "does not verify with the log key")
        self.report.origin, self.report.scope = origin, manifest.get("scope", {})
        self._files(manifest.get("files", {}))
        cp = self._checkpoint(origin, public, manifest)
        if cp is None:
            return self.report
        principals = self._principals()
        by_seq = self._entries(cp, bool(self.report.scope.get("full")), principals)
        self._decisions(by_seq)
        self._validation_reports(by_seq)
        self._consistency(origin, public, cp)
        return self.report

    def _files(self, listed: dict[str, str]) -> None:
        for name in sorted(self.names - {MANIFEST, SIGNATURE}):
            if name not in listed:
                self.problem("unlisted-file", name, "in the bundle but not in the manifest")
                continue
            h = hashlib.sha256()
            for chunk in self._chunks(name):
                h.update(chunk)
            if name in self.unreadable:
                continue
            if h.hexdigest() != listed[name]:
                self.problem("file-modified", name, "SHA-256 differs from the manifest")
            self.report.files += 1
        for name in sorted(set(listed) - self.names):
            self.problem("missing-file", name, "listed in the manifest but not in the bundle")

    def _checkpoint(
        self, origin: str, public: bytes, manifest: dict[str, Any]
    ) -> checkpoint.Checkpoint | None:
        note = self.read(CHECKPOINT)
        if note is None:
            return None
        try:
            cp = checkpoint.verify(note.decode(), origin, public, where=CHECKPOINT)
        except (BadInput, IntegrityError, UnicodeDecodeError) as exc:
            self.problem("checkpoint-invalid", CHECKPOINT, str(exc))
            return None
        self.report.log_size = cp.size
        if manifest.get("log_size") != cp.size:
            self.problem("checkpoint-invalid", MANIFEST, "log_size differs from the checkpoint")
        return cp

    def _principals(self) -> dict[str, dict[str, Any]]:
        raw = self.read(PRINCIPALS)
        try:
            rows = orjson.loads(raw) if raw is not None else []
        except orjson.JSONDecodeError:
            self.problem("malformed", PRINCIPALS, "not JSON")
            rows = []
        if not isinstance(rows, list):
            self.problem("malformed", PRINCIPALS, "not a JSON list of keys")
            rows = []
        listed = [k for k in rows if isinstance(k, dict) and isinstance(k.get("key_id"), str)]
        return {k["key_id"]: k for k in listed}

    def _lines(self, name: str) -> Iterator[tuple[int, bytes]]:
        if name not in self.names:
            self.problem("missing-file", name, "the bundle does not contain this file")
            return
        # split from 1 MiB reads: twice as fast as iterating the member's lines,
        # and a line that never ends cannot pull the whole member into memory
        number, rest = 0, b""
        for chunk in self._chunks(name):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                number += 1
                if len(line) > MAX_LINE:
                    self.problem("too-large", f"{name} line {number}", "longer than any entry")
                    return
                yield number, line
            if len(rest) > MAX_LINE:  # a line that has not ended yet
                self.problem("too-large", f"{name} line {number + 1}", "longer than any entry")
                return
        if rest and name not in self.unreadable:
            yield number + 1, rest

    def _proofs(self) -> Iterator[tuple[int, list[bytes]]]:
        """(seq, path) in file order; read alongside the entries, never all at once
        (a million proofs as Python objects would take gigabytes)."""
        for number, line in self._lines(PROOFS):
            try:
                p = orjson.loads(line)
                yield int(p["seq"]), [bytes.fromhex(h) for h in p["path"]]
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                self.problem("malformed", f"{PROOFS} line {number}", "not a proof record")

    def _proof_for(self, proofs: Iterator[tuple[int, list[bytes]]], seq: int) -> list[bytes]:
        """The proof for `seq`, advancing the proofs (both files are in seq order)."""
        while self._next_proof is not None and self._next_proof[0] < seq:
            self._next_proof = next(proofs, None)
        if self._next_proof is not None and self._next_proof[0] == seq:
            return self._next_proof[1]
        return []

    def _entries(
        self, cp: checkpoint.Checkpoint, full: bool, principals: dict[str, dict[str, Any]]
    ) -> dict[int, dict[str, Any]]:
        """Every entry: canonical, chained, in the signed tree, decisions signed."""
        proofs = self._proofs() if not full else iter(())
        self._next_proof = next(proofs, None)
        rng = merkle.CompactRange()
        leaves: list[bytes] = []  # of a full export, hashed into rng a block at a time
        kept: dict[int, dict[str, Any]] = {}
        last_seq, last_hash = -1, entries.GENESIS_PREV
        for number, line in self._lines(ENTRIES):
            where = f"{ENTRIES} line {number}"
            try:
                obj = orjson.loads(line)
                seq = int(obj["seq"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                self.problem("malformed", where, "not a log entry")
                continue
            where = f"entry {seq}"
            leaf = merkle.leaf_hash(line)
            if not is_canonical_of(line, obj):
                self.problem("not-canonical", where, "bytes are not RFC 8785 canonical JSON")
            if seq <= last_seq or seq >= cp.size:
                self.problem("out-of-order", where, f"seq after {last_seq}, tree size {cp.size}")
            if full and seq != last_seq + 1:
                self.problem("entry-missing", f"entry {last_seq + 1}", "a full export skips it")
            if seq == last_seq + 1 and obj.get("prev") != last_hash:
                self.problem("chain-broken", where, "prev is not the hash of the entry before")
            if full:
                leaves.append(leaf)
                if len(leaves) == merkle.EXTEND_BLOCK:
                    rng.extend(leaves)
                    leaves.clear()
            elif not merkle.verify_inclusion(
                seq, cp.size, leaf, self._proof_for(proofs, seq), cp.root
            ):
                self.problem("proof-invalid", where, "not included in the signed checkpoint")
            if entries.claims_decision(obj):
                self._signature(where, obj, principals)
            if "sig" in obj or obj.get("action") == "validation.run":
                kept[seq] = obj
            last_seq, last_hash = seq, leaf.hex()
            self.report.entries += 1
        rng.extend(leaves)
        if full and rng.size and rng.root() != cp.root:
            self.problem("root-mismatch", ENTRIES, "the entries do not hash to the signed root")
        if full and rng.size != cp.size:
            self.problem("entry-missing", ENTRIES, f"{rng.size} entries for a tree of {cp.size}")
        return kept

    def _signature(self, where: str, obj: dict[str, Any], keys_by_id: dict[str, Any]) -> None:
        sig = obj.get("sig")
        if not isinstance(sig, dict):
            self.problem("signature-missing", where, f"decision {obj.get('action')} is unsigned")
            return
        key = keys_by_id.get(str(sig.get("key")))
        time = str(obj.get("time"))
        if key is None or key.get("principal") != obj.get("actor"):
            self.problem("signature-invalid", where, "signed with a key not listed for its actor")
            return
        if str(key.get("created_at")) > time or str(key.get("revoked_at") or "~") <= time:
            self.problem("signature-invalid", where, "the key was not valid at the entry's time")
        message, public = entries.verifiable_message(obj), _public_key(key)
        try:
            raw = keys.unb64(str(sig.get("value")), "signature")
        except BadInput:
            raw = b""
        self.report.signatures += 1
        # checked here, not on a thread pool as `audit verify` does: this pass
        # keeps the GIL busy, and handing it back and forth cost more (measured)
        if not message or not keys.verify(public, raw, message):
            self.problem("signature-invalid", where, "the decision signature does not verify")
        data = obj.get("data") or {}
        if not isinstance(data, dict) or "statement" not in data:
            return
        signer = keys_by_id.get(str(data.get("key")))
        if signer is None or signer.get("principal") != obj.get("actor"):
            self.problem("statement-invalid", where, "statement signed with a key not the actor's")
            return
        if not statements.verify(
            _public_key(signer), data["statement"], str(data.get("signature"))
        ):
            self.problem("statement-invalid", where, "the signed statement does not verify")

    def _decisions(self, by_seq: dict[int, dict[str, Any]]) -> None:
        """decisions.jsonl lists every signed entry of the export, each as its
        entry has it: a line left out (a break-glass hidden from the list)
        or a field changed is named, not only a changed signature."""
        listed: set[int] = set()
        for number, line in self._lines(DECISIONS):
            where = f"{DECISIONS} line {number}"
            try:
                d = orjson.loads(line)
                seq = int(d["seq"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                self.problem("malformed", where, "not a decision record")
                continue
            listed.add(seq)
            entry = by_seq.get(seq)
            if entry is None or "sig" not in entry or d != decision_record(entry):
                self.problem("decision-mismatch", where, "differs from its entry in the log")
        for seq in sorted(s for s, e in by_seq.items() if "sig" in e and s not in listed):
            self.problem("decision-mismatch", DECISIONS, f"entry {seq}'s decision is not listed")

    def _validation_reports(self, by_seq: dict[int, dict[str, Any]]) -> None:
        for name in sorted(n for n in self.names if n.startswith("validation/")):
            raw = self.read(name)
            if raw is None:
                continue
            try:
                report = orjson.loads(raw)
                entry = by_seq.get(int(report["seq"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                self.problem("malformed", name, "not a validation report")
                continue
            changes = (entry or {}).get("changes")
            rows = [
                {"id": c.get("id"), **c["row"]}
                for c in (changes if isinstance(changes, list) else [])
                if isinstance(c, dict)
                and c.get("t") == "validation_runs"
                and isinstance(c.get("row"), dict)
            ]
            if report.get("run") not in rows:
                self.problem("report-mismatch", name, "differs from the run its entry logged")

    def _consistency(self, origin: str, public: bytes, cp: checkpoint.Checkpoint) -> None:
        if CONSISTENCY not in self.names:
            if self.previous is not None:
                self.problem("missing-file", CONSISTENCY, "no proof from the previous checkpoint")
            return
        raw = self.read(CONSISTENCY)
        if raw is None:
            return
        try:
            doc = orjson.loads(raw)
            old = checkpoint.verify(doc["previous"], origin, public, where=CONSISTENCY)
            proof = [bytes.fromhex(h) for h in doc["proof"]]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            self.problem("malformed", CONSISTENCY, str(exc))
            return
        except (BadInput, IntegrityError) as exc:
            self.problem("consistency-invalid", CONSISTENCY, exc.message)
            return
        if self.previous is not None:
            mine = checkpoint.verify(self.previous, origin, public, where="--previous")
            if (mine.size, mine.root) != (old.size, old.root):
                self.problem(
                    "consistency-invalid", CONSISTENCY, "proves from another checkpoint than yours"
                )
        if not merkle.verify_consistency(old.size, cp.size, old.root, cp.root, proof):
            message = f"the log at {cp.size} does not extend {old.size}"
            self.problem("consistency-invalid", CONSISTENCY, message)
        self.report.consistent_with = old.size
