"""C2SP signed-note checkpoints: format, signatures, and refusals."""

from __future__ import annotations

import pytest

from cmi_console.core import checkpoint, keys
from cmi_console.core.errors import BadInput, IntegrityError

NAME = "cmi-console.local/test"


def test_round_trip_and_format() -> None:
    key = keys.generate()
    cp = checkpoint.Checkpoint(NAME, 42, bytes(range(32)))
    note = checkpoint.sign(cp, NAME, key)
    lines = note.split("\n")
    assert lines[:3] == [NAME, "42", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]
    assert lines[3] == "" and lines[4].startswith("\u2014 " + NAME + " ")
    assert checkpoint.verify(note, NAME, keys.public_raw(key)) == cp


def test_verifier_key_round_trip() -> None:
    key = keys.generate()
    vkey = checkpoint.verifier_key(NAME, keys.public_raw(key))
    assert checkpoint.parse_verifier_key(vkey) == (NAME, keys.public_raw(key))
    with pytest.raises(BadInput):
        checkpoint.parse_verifier_key(vkey.replace("+", "+0", 1))


@pytest.mark.parametrize(
    "edit",
    [
        lambda n: n.replace("\n42\n", "\n43\n"),
        lambda n: n.replace(NAME + "\n", "other/log\n", 1),
    ],
)
def test_edited_notes_fail(edit) -> None:  # type: ignore[no-untyped-def]
    key = keys.generate()
    note = checkpoint.sign(checkpoint.Checkpoint(NAME, 42, b"\x01" * 32), NAME, key)
    with pytest.raises(IntegrityError):
        checkpoint.verify(edit(note), NAME, keys.public_raw(key))


def test_wrong_key_fails() -> None:
    note = checkpoint.sign(checkpoint.Checkpoint(NAME, 1, b"\x01" * 32), NAME, keys.generate())
    with pytest.raises(IntegrityError):
        checkpoint.verify(note, NAME, keys.public_raw(keys.generate()))


@pytest.mark.parametrize(
    "note",
    [
        "",
        "a\nb\n",
        "o\nx\nAA==\n\n\u2014 o AA==\n",
        "o\n1\nAA==\n\n- o AA==\n",
        # digits int() refuses though str.isdigit() takes them
        "o\n\u00b2\n" + "A" * 43 + "=\n\n\u2014 o AA==\n",
    ],
)
def test_malformed_notes_are_bad_input(note: str) -> None:
    with pytest.raises(BadInput):
        checkpoint.parse(note)


def test_signatures_made_by_cryptography_verify_and_nothing_else_does() -> None:
    # signing is cryptography's (OpenSSL), checking libsodium's: they must agree
    key = keys.generate()
    public, message = keys.public_raw(key), b"cmi-console/decision/v1\n{}"
    sig = keys.sign(key, message)
    assert keys.verify(public, sig, message)
    assert not keys.verify(public, sig, message + b" ")
    assert not keys.verify(public, bytes([sig[0] ^ 1]) + sig[1:], message)
    assert not keys.verify(keys.public_raw(keys.generate()), sig, message)
    # malformed input is a failed check, never an exception
    assert not keys.verify(public, sig[:63], message)
    assert not keys.verify(public, b"", message)
    assert not keys.verify(public[:31], sig, message)
    assert not keys.verify(bytes(32), sig, message)  # a small-order (identity) point


def test_every_hostile_edit_of_a_note_is_refused_in_one_line() -> None:
    """A non-ASCII character in a base64 field (the root, a signature, the
    verifier key) raised ValueError, not binascii.Error: `cmi audit
    consistency` on such a file was an internal error. Every line replaced,
    dropped or doubled, and every byte position changed, must be refused as
    bad input or an integrity violation, or still verify."""
    key = keys.generate()
    public = keys.public_raw(key)
    note = checkpoint.sign(checkpoint.Checkpoint(NAME, 42, bytes(range(32))), NAME, key)
    lines = note.split("\n")
    edits = []
    for i in range(len(lines)):
        for text in ("", "x", "é", "\u2014 é", "99999999999999999999999", "\x00", lines[i] * 2):
            edits.append("\n".join([*lines[:i], text, *lines[i + 1 :]]))
        edits.append("\n".join([*lines[:i], *lines[i + 1 :]]))
    for i in range(len(note)):
        edits.append(note[:i] + "é" + note[i + 1 :])
    for edited in edits:
        try:
            checkpoint.verify(edited, NAME, public)
        except (BadInput, IntegrityError) as exc:
            assert "\n" not in exc.message
    vkey = checkpoint.verifier_key(NAME, public)
    for i in range(len(vkey)):
        with pytest.raises(BadInput):
            checkpoint.parse_verifier_key(vkey[:i] + "é" + vkey[i + 1 :])
