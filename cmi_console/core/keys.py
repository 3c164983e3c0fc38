"""Ed25519 keys: generation, serialization, identifiers and signatures."""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)

from cmi_console.core.errors import BadInput, Denied


def generate() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: bytes) -> str:
    """A key's identifier in the log: hex SHA-256 of its 32 raw public bytes."""
    return hashlib.sha256(public).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise BadInput(f"{what}: not valid base64") from None


def private_pem(key: Ed25519PrivateKey, passphrase: bytes | None) -> bytes:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def pem_is_encrypted(pem: bytes) -> bool:
    return b"ENCRYPTED PRIVATE KEY" in pem


def load_private(pem: bytes, passphrase: bytes | None, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase or None)
    except TypeError:
        # encrypted without a passphrase, or a passphrase for a plain key
        if pem_is_encrypted(pem):
            raise Denied(f"{where}: key is encrypted; set CMI_KEY_PASSPHRASE") from None
        raise BadInput(f"{where}: key is not encrypted but a passphrase was given") from None
    except ValueError:
        if pem_is_encrypted(pem):
            raise Denied(f"{where}: wrong passphrase for the key") from None
        raise BadInput(f"{where}: not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BadInput(f"{where}: not an Ed25519 key")
    return key


def sign(key: Ed25519PrivateKey, message: bytes) -> bytes:
    return key.sign(message)


def usable_public(public: bytes) -> bool:
    """32 bytes that a generated key's public half can be: a canonically
    written point of the curve's prime-order subgroup (libsodium's check).
    The identity and the other small-order points are not: OpenSSL accepts
    a signature anyone can make under the identity, for any message, so an
    outside verifier built on it would take forgeries; and a key under
    which anyone's signature counts lets its holder deny what it signed."""
    from nacl.bindings import crypto_core_ed25519_is_valid_point

    return bool(crypto_core_ed25519_is_valid_point(public))


def verify(public: bytes, signature: bytes, message: bytes) -> bool:
    """Check with libsodium (PyNaCl): 1.7x faster here than OpenSSL's Ed25519
    verification, which is most of `audit verify`'s time on a log of decisions;
    and stricter (it refuses small-order keys and non-canonical signatures,
    which an honest signer never makes). Imported here: most commands never
    check a signature, and the import costs ~25 ms of start-up."""
    from nacl.exceptions import BadSignatureError
    from nacl.exceptions import ValueError as NaclValueError
    from nacl.signing import VerifyKey

    try:
        VerifyKey(public).verify(message, signature)
    except (BadSignatureError, NaclValueError, TypeError):
        return False
    return True
