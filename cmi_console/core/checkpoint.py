"""Checkpoints in the C2SP signed-note format (c2sp.org/tlog-checkpoint).

    <origin>\n<size>\n<base64 root>\n\n— <name> <base64(keyhash[4] || sig[64])>\n

The signature is Ed25519 over the note text (the first three lines with their
newlines); the key hash is SHA-256(name || "\n" || 0x01 || pubkey)[:4].
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cmi_console.core import keys, names
from cmi_console.core.errors import BadInput, IntegrityError

_DASH = "\u2014 "
_ED25519 = b"\x01"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def key_hash(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public).digest()[:4]


def verifier_key(name: str, public: bytes) -> str:
    """The vkey string: <name>+<hex key hash>+<base64(0x01 || pubkey)>."""
    return f"{name}+{key_hash(name, public).hex()}+{keys.b64(_ED25519 + public)}"


def parse_verifier_key(vkey: str) -> tuple[str, bytes]:
    try:
        name, khash, blob = vkey.strip().split("+", 2)
        raw = keys.unb64(blob, "log key")
    except (ValueError, BadInput):
        raise BadInput("log key: not a verifier key <name>+<hash>+<key>") from None
    if len(raw) != 33 or raw[:1] != _ED25519 or key_hash(name, raw[1:]).hex() != khash:
        raise BadInput("log key: verifier key is malformed or its hash does not match")
    return name, raw[1:]


@dataclass(frozen=True)
class NoteSigner:
    """Signs notes as `name`; the key hash is computed once (every audited
    write signs a checkpoint)."""

    name: str
    key: Ed25519PrivateKey
    key_hash: bytes

    @classmethod
    def of(cls, name: str, key: Ed25519PrivateKey) -> NoteSigner:
        return cls(name, key, key_hash(name, keys.public_raw(key)))

    def sign(self, cp: Checkpoint) -> str:
        body = cp.body()
        blob = self.key_hash + self.key.sign(body.encode())
        return f"{body}\n{_DASH}{self.name} {keys.b64(blob)}\n"


def sign(cp: Checkpoint, name: str, key: Ed25519PrivateKey) -> str:
    return NoteSigner.of(name, key).sign(cp)


def parse(note: str, where: str = "checkpoint") -> tuple[Checkpoint, list[tuple[str, bytes]]]:
    """Split a note into its checkpoint and (name, keyhash+sig) lines. No verification."""
    text, sep, sigs = note.partition("\n\n")
    if not sep:
        raise BadInput(f"{where}: no blank line between note text and signatures")
    lines = text.split("\n")
    if len(lines) < 3:
        raise BadInput(f"{where}: needs origin, size and root lines")
    origin, size_s, root_s = lines[:3]
    if not names.is_decimal(size_s) or (size_s != "0" and size_s.startswith("0")):
        raise BadInput(f"{where}:2: size is not a decimal number")
    root = keys.unb64(root_s, f"{where}:3: root")  # non-ASCII too: b64decode raised ValueError
    if len(root) != 32:
        raise BadInput(f"{where}:3: root is not 32 bytes")
    signatures = []
    for n, line in enumerate(sigs.rstrip("\n").split("\n"), start=len(lines) + 2):
        if not line.startswith(_DASH):
            raise BadInput(f"{where}:{n}: signature line must start with an em dash")
        name, _, blob = line[len(_DASH) :].rpartition(" ")
        signatures.append((name, keys.unb64(blob, f"{where}:{n}: signature")))
    return Checkpoint(origin, int(size_s), root), signatures


def verify(note: str, name: str, public: bytes, where: str = "checkpoint") -> Checkpoint:
    """Parse a note and check it carries a valid signature by (name, public)."""
    cp, signatures = parse(note, where)
    if note.partition("\n\n")[0] + "\n" != cp.body():
        raise IntegrityError(f"{where}: note text has extra lines or is not in canonical form")
    want = key_hash(name, public)
    for sig_name, blob in signatures:
        if sig_name == name and blob[:4] == want:
            if keys.verify(public, blob[4:], cp.body().encode()):
                return cp
            raise IntegrityError(f"{where}: signature by {name} does not verify")
    raise IntegrityError(f"{where}: not signed by the log key {name}")
