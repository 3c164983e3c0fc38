"""Principals, roles and keys: signed, admin-only, no self-grants."""

from __future__ import annotations

import os

import pytest
from conftest import Result, Workspace
from gate_helpers import log_head, ok, race
from open_hook import before_open

from cmi_console.core import keys


def entries(ws: Workspace) -> int:
    return len(ws.cli("audit", "log", "-n", "10000", "--json").json())


def test_user_add_is_a_signed_decision(ws: Workspace) -> None:
    r = ws.cli("user", "add", "alice", "--role", "developer", "--role", "reviewer", "--json")
    assert r.code == 0, r.err
    assert r.json()["roles"] == ["developer", "reviewer"]
    last = ws.cli("audit", "log", "-n", "1", "--json").json()[0]
    assert last["action"] == "user.add" and last["sig"]["alg"] == "ed25519"


@pytest.mark.parametrize(
    "args, actor, words",
    [
        (["role", "grant", "root", "developer"], "root", "themselves"),
        (["role", "grant", "bob", "developer"], "alice", "needs role admin"),
        (["user", "add", "eve", "--role", "admin"], "alice", "needs role admin"),
        (["role", "revoke", "root", "admin"], "root", "last admin"),
        (["model", "create", "m"], "bob", "needs role admin or developer"),
        (["model", "create", "m"], "nobody", "unknown principal"),
    ],
)
def test_denied_with_exit_3_and_nothing_written(
    ws: Workspace, args: list[str], actor: str, words: str
) -> None:
    assert ws.cli("user", "add", "alice", "--role", "developer").code == 0
    assert ws.cli("user", "add", "bob", "--role", "reviewer").code == 0
    before = entries(ws)
    r = ws.cli(*args, as_=actor)
    assert r.code == 3, r.err
    assert words in r.err and len(r.err.strip().splitlines()) == 1
    assert entries(ws) == before


@pytest.mark.parametrize("key", ["root", "log"])
def test_a_private_key_others_can_read_is_not_used(ws: Workspace, key: str) -> None:
    """As ssh refuses such a key: mode 0644 had been signed with as usual."""
    path = ws.home / "keys" / f"{key}.key"
    path.chmod(0o644)
    before = entries(ws)
    r = ws.cli("user", "add", "alice", "--role", "developer")  # a signed decision
    assert r.code == 3, r.err
    assert f"{path}: private key is open to others (mode 0644)" in r.err
    assert entries(ws) == before
    path.chmod(0o600)
    assert ws.cli("user", "add", "alice", "--role", "developer").code == 0


def test_revoked_role_no_longer_counts(ws: Workspace) -> None:
    assert ws.cli("user", "add", "alice", "--role", "developer").code == 0
    assert ws.cli("model", "create", "m1", as_="alice").code == 0
    assert ws.cli("role", "revoke", "alice", "developer").code == 0
    r = ws.cli("model", "create", "m2", as_="alice")
    assert r.code == 3 and "needs role" in r.err
    # an admin's provisioning run again: answered, nothing written (it failed, exit 2)
    entries = len(ws.cli("audit", "log", "-n", "1000", "--json").json())
    again = ws.cli("role", "revoke", "alice", "developer")
    assert again.code == 0 and "developer" not in again.out
    assert again.err.strip() == "note: alice does not hold role developer; nothing written"
    assert ws.cli("role", "grant", "alice", "validator").code == 0
    twice = ws.cli("role", "grant", "alice", "validator", "--json")
    assert twice.code == 0 and twice.json()["roles"] == ["validator"]
    assert twice.err.strip() == "note: alice holds role validator already; nothing written"
    assert len(ws.cli("audit", "log", "-n", "1000", "--json").json()) == entries + 1
    assert ws.cli("audit", "verify").code == 0


def test_encrypted_key_needs_its_passphrase(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from cmi_console.services.setup import init_workspace

    home = tmp_path / "enc"
    init_workspace(home, admin="root", passphrase=b"s3cret").engine.dispose()
    assert b"ENCRYPTED" in (home / "keys" / "root.key").read_bytes()
    w = Workspace(home, None, capsys)
    monkeypatch.delenv("CMI_KEY_PASSPHRASE", raising=False)
    r = w.cli("user", "add", "alice", "--role", "developer")
    assert r.code == 3 and "CMI_KEY_PASSPHRASE" in r.err
    monkeypatch.setenv("CMI_KEY_PASSPHRASE", "wrong")
    r = w.cli("user", "add", "alice", "--role", "developer")
    assert r.code == 3 and "wrong passphrase" in r.err
    monkeypatch.setenv("CMI_KEY_PASSPHRASE", "s3cret")
    assert w.cli("user", "add", "alice", "--role", "developer").code == 0
    assert "s3cret" not in (home / "cmi.db").read_bytes().decode("latin-1")


def test_a_stolen_database_cannot_sign_for_a_principal(ws: Workspace) -> None:
    """Decisions need the private key file, not just database access."""
    assert ws.cli("user", "add", "alice", "--role", "admin").code == 0
    os.unlink(ws.home / "keys" / "alice.key")
    r = ws.cli("role", "grant", "root", "developer", as_="alice")
    assert r.code == 3 and "no private key" in r.err


def test_user_with_their_own_public_key_signs_with_their_own_private_key(
    ws: Workspace, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """The private half never touches the workspace until the user puts it there."""
    from cmi_console.core import keys

    private = keys.generate()
    pub = tmp_path / "dana.pub"
    pub.write_text(keys.b64(keys.public_raw(private)) + "\n")
    r = ws.cli("user", "add", "dana", "--role", "admin", "--public-key", str(pub), "--json")
    assert r.code == 0, r.err
    assert r.json()["key_ids"] == [keys.key_id(keys.public_raw(private))]
    assert not (ws.home / "keys" / "dana.key").exists()
    assert ws.cli("role", "grant", "root", "developer", as_="dana").code == 3  # no key yet
    (ws.home / "keys" / "dana.key").write_bytes(keys.private_pem(private, None))
    assert ws.cli("role", "grant", "root", "developer", as_="dana").code == 3  # 0644
    (ws.home / "keys" / "dana.key").chmod(0o600)
    assert ws.cli("role", "grant", "root", "developer", as_="dana").code == 0
    assert ws.cli("audit", "verify").code == 0
    bad = tmp_path / "bad.pub"
    bad.write_text("not base64!")
    r = ws.cli("user", "add", "erin", "--role", "developer", "--public-key", str(bad))
    assert r.code == 2 and "--public-key: not valid base64" in r.err
    # another principal's key: an internal error (the unique key id) before
    head = ws.cli("audit", "log", "-n", "1", "--json").json()[0]["seq"]
    r = ws.cli("user", "add", "erin", "--role", "developer", "--public-key", str(pub))
    assert r.code == 2 and "--public-key: key" in r.err and "is already registered" in r.err, r.err
    assert ws.cli("audit", "log", "-n", "1", "--json").json()[0]["seq"] == head
    assert ws.cli("user", "show", "erin").code == 2


def test_disable_a_principal(ws: Workspace) -> None:
    assert ws.cli("user", "add", "sam", "--role", "admin").code == 0
    assert ws.cli("user", "add", "dev", "--role", "developer").code == 0
    r = ws.cli("user", "disable", "dev", "--reason", " ")
    assert r.code == 2
    r = ws.cli("user", "disable", "root", "--reason", "x")
    assert r.code == 3 and "themselves" in r.err
    assert ws.cli("user", "disable", "dev", "--reason", "left the company").code == 0
    r = ws.cli("model", "create", "m", as_="dev")
    assert r.code == 3 and "disabled" in r.err
    # an offboarding script run twice is answered; a disabling that differs
    # (another reason, another admin) is refused, naming the one made
    head = log_head(ws)
    again = ok(ws.cli("user", "disable", "dev", "--reason", "left the company"))
    assert again.err == "note: dev was disabled already, as asked; nothing written\n"
    for reason, as_ in (("x", "root"), ("left the company", "sam")):
        r = ws.cli("user", "disable", "dev", "--reason", reason, as_=as_)
        assert r.code == 2, r.err
        assert r.err == "cmi: dev is already disabled (by root: left the company)\n", r.err
    assert log_head(ws) == head
    assert ws.cli("user", "disable", "root", "--reason", "x", as_="sam").code == 0
    r = ws.cli("user", "disable", "sam", "--reason", "x", as_="root")
    assert r.code == 3  # root is disabled now
    assert ws.cli("audit", "verify").code == 0


def test_the_last_enabled_admin_cannot_be_disabled(ws: Workspace) -> None:
    assert ws.cli("user", "add", "sam", "--role", "admin").code == 0
    assert ws.cli("user", "disable", "sam", "--reason", "x").code == 0
    assert ws.cli("user", "add", "ann", "--role", "admin").code == 0
    assert ws.cli("user", "disable", "root", "--reason", "x", as_="ann").code == 0
    r = ws.cli("user", "disable", "ann", "--reason", "x", as_="root")
    assert r.code == 3  # root is disabled
    r = ws.cli("role", "revoke", "ann", "admin", as_="ann")
    assert r.code == 3 and "last admin" in r.err


def test_key_rotation_add_then_revoke(ws: Workspace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cmi_console.core import keys

    assert ws.cli("user", "add", "dev", "--role", "developer").code == 0
    new = keys.generate()
    public = keys.b64(keys.public_raw(new))
    assert ws.cli("key", "add", "dev", "--public-key", "not base64!").code == 2
    assert ws.cli("key", "add", "dev", "--public-key", public, as_="dev").code == 3
    shown = ws.cli("key", "add", "dev", "--public-key", public, "--json").json()
    assert len(shown["key_ids"]) == 2
    old = next(k for k in shown["key_ids"] if k != keys.key_id(keys.public_raw(new)))
    # a prefix must say which key: '' matched every one (and revoked a lone key)
    for prefix in ("", old[:7], "zz" + old[:10]):
        r = ws.cli("key", "revoke", "dev", prefix)
        assert r.code == 2 and "is not 8 to 64 hex digits of a key id" in r.err, r.err
    assert len(ws.cli("user", "show", "dev", "--json").json()["key_ids"]) == 2
    out = ws.cli("key", "revoke", "dev", old[:12], "--json")
    assert out.code == 0 and out.json()["key_ids"] == [keys.key_id(keys.public_raw(new))]
    # a rotation script run twice: the key added and the key revoked are
    # answered, nothing written; a revoked key is not registered again, and
    # a prefix of no key of theirs is still refused
    head = log_head(ws)
    again = ok(ws.cli("key", "add", "dev", "--public-key", public))
    assert again.err == "note: dev holds that key already; nothing written\n", again.err
    again = ok(ws.cli("key", "revoke", "dev", old[:12], "--json"))
    assert again.err == f"note: dev's key {old[:12]} was revoked already; nothing written\n"
    assert again.json()["key_ids"] == [keys.key_id(keys.public_raw(new))]
    assert log_head(ws) == head
    on_disk = (ws.home / "keys" / "dev.pub").read_text().strip()
    r = ws.cli("key", "add", "dev", "--public-key", on_disk)
    assert r.code == 2 and f"key {old[:16]} of dev was revoked at " in r.err, r.err
    r = ws.cli("key", "revoke", "dev", "0123456789ab")
    assert r.code == 2 and "dev: no key of it starts with '0123456789ab'" in r.err, r.err
    r = ws.cli("key", "add", "root", "--public-key", public)  # dev's key
    assert r.code == 2 and "is already registered" in r.err, r.err
    assert log_head(ws) == head
    # an admin whose key is revoked cannot sign decisions with it any more
    assert ws.cli("user", "add", "sam", "--role", "admin").code == 0
    root_key = ws.cli("user", "show", "root", "--json").json()["key_ids"][0]
    # nobody revokes the key they sign with: the refusal said the key "was
    # revoked" (it was not), and it would leave its holder without a key
    own = ws.cli("key", "revoke", "root", root_key[:16], as_="root")
    assert own.code == 3 and "nobody revokes the key they sign with" in own.err, own.err
    assert "was revoked" not in own.err
    assert ws.cli("user", "show", "root", "--json").json()["key_ids"] == [root_key]
    assert ws.cli("key", "revoke", "root", root_key[:16], as_="sam").code == 0
    r = ws.cli("role", "grant", "dev", "reviewer", as_="root")
    assert r.code == 3 and "revoked" in r.err
    assert ws.cli("audit", "verify").code == 0


def test_a_user_added_again_unchanged_is_answered(
    ws: Workspace, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """An admin's provisioning script run twice failed on the users it had
    added ("already exists", exit 2), so scripts learned `|| true`, which
    also hides the refusal of a user whose roles differ. The same add by the
    same admin, with nothing changed since, is answered; nothing written.
    Anything else is refused, saying what differs."""
    add = ["user", "add", "alice", "--role", "developer", "--display-name", "Alice"]
    ok(ws.cli(*add))
    key = ws.home / "keys" / "alice.key"
    pem, head = key.read_bytes(), log_head(ws)
    again = ok(ws.cli(*add, "--json"))
    assert again.err == "note: user alice exists already, as asked; nothing written\n"
    assert again.json()["roles"] == ["developer"] and key.read_bytes() == pem
    assert log_head(ws) == head
    ok(ws.cli("user", "add", "sam", "--role", "admin"))
    for args, as_, differs in [
        (["--role", "reviewer", "--display-name", "Alice"], "root", "roles developer"),
        (["--role", "developer"], "root", "named 'Alice'"),
        (["--role", "developer", "--display-name", "Alice"], "sam", "added by root"),
    ]:
        r = ws.cli("user", "add", "alice", *args, as_=as_)
        assert r.code == 2 and r.err == (
            f"cmi: user 'alice' already exists ({differs}); change a user with "
            "`cmi role grant/revoke` and `cmi key add/revoke`\n"  # commands that exist
        ), r.err
    monkeypatch.setenv("CMI_NEW_KEY_PASSPHRASE", "later")  # the key file is not encrypted
    r = ws.cli(*add)
    assert r.code == 2 and "(a key file encrypted otherwise)" in r.err, r.err
    monkeypatch.delenv("CMI_NEW_KEY_PASSPHRASE")
    key.rename(tmp_path / "handed-to-alice.key")  # the admin gave it to alice
    r = ws.cli(*add)
    assert r.code == 2 and f"(no key file at {key})" in r.err, r.err
    assert log_head(ws)[0] == head[0] + 1 and not key.exists()  # only sam's add

    # a key the user brought: the same key again is answered, another refused
    pub, other = tmp_path / "dana.pub", tmp_path / "other.pub"
    pub.write_text(keys.b64(keys.public_raw(keys.generate())) + "\n")
    other.write_text(keys.b64(keys.public_raw(keys.generate())) + "\n")
    ok(ws.cli("user", "add", "dana", "--role", "reviewer", "--public-key", str(pub)))
    assert ok(ws.cli("user", "add", "dana", "--role", "reviewer", "--public-key", str(pub))).err
    r = ws.cli("user", "add", "dana", "--role", "reviewer", "--public-key", str(other))
    assert r.code == 2 and "(another key)" in r.err, r.err
    ok(ws.cli("user", "disable", "dana", "--reason", "left"))
    r = ws.cli("user", "add", "dana", "--role", "reviewer", "--public-key", str(pub))
    assert r.code == 2 and "(disabled)" in r.err, r.err
    assert ok(ws.cli("audit", "verify")).code == 0


def test_a_user_add_racing_its_retry_is_answered_not_an_internal_error(ws: Workspace) -> None:
    """Both tries pass the name check before either writes; the second
    found the name taken by the unique index (an internal error). The check
    is made again under the write lock, so it is answered."""
    from cmi_console.services import identity

    pub = keys.b64(keys.public_raw(keys.generate()))
    tries = race(
        [lambda: identity.add_user(ws.ctx(), "dana", ["reviewer"], public_key_b64=pub)] * 2
    )
    assert sorted(created for _, created in tries) == [False, True], tries
    log = ok(ws.cli("audit", "log", "--action", "user.add", "-n", "100", "--json")).json()
    assert [e["data"]["user"] for e in log].count("dana") == 1
    assert ok(ws.cli("audit", "verify")).code == 0


def test_two_user_adds_of_one_name_at_once_keep_the_first_key(ws: Workspace) -> None:
    """The second `user add alice` passed the name check before the first
    wrote alice's key file, then failed to make its own: an internal error.
    It is one line, exit 2; the key written is the one registered."""
    key = ws.home / "keys" / "alice.key"
    said: list[Result] = []
    other = ["user", "add", "alice", "--role", "reviewer"]
    with before_open(key, lambda: said.append(ws.cli(*other))):
        first = ws.cli("user", "add", "alice", "--role", "developer")
    # the other wrote its key first (just before this one opened the path) and
    # registered alice; this one found the file and changed nothing
    assert said[0].code == 0, said[0].err
    assert first.code == 2 and first.err == f"cmi: {key}: a key file already exists\n", first.err
    (alice,) = [u for u in ok(ws.cli("user", "list", "--json")).json() if u["name"] == "alice"]
    on_disk = keys.public_raw(keys.load_private(key.read_bytes(), None, str(key)))
    assert alice["roles"] == ["reviewer"] and alice["key_ids"] == [keys.key_id(on_disk)]


@pytest.mark.parametrize(
    "point",
    [
        b"\x01" + bytes(31),  # the identity: OpenSSL takes (R = identity, S = 0) for any message
        bytes(32),  # y = 0: a point of order 4
        b"\xec" + b"\xff" * 30 + b"\x7f",  # y = p - 1: of order 2
        b"\xed" + b"\xff" * 30 + b"\x7f",  # y = p: the identity, not canonically written
        b"\x02" + bytes(31),  # y = 2: no point of the curve
    ],
    ids=["identity", "order-4", "order-2", "non-canonical", "off-curve"],
)
def test_a_public_key_no_honest_signer_has_is_refused(
    ws: Workspace, point: bytes, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """32 bytes that are no usable Ed25519 key were registered: the identity
    point is one under which OpenSSL (and so an outside verifier built on it)
    accepts a signature made by anyone, for any message; cmi's own checks
    refuse its every signature. Such a key lets its holder deny what it
    signed, so it is refused when registered."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if point == b"\x01" + bytes(31):  # the forgery this is about, made here
        Ed25519PublicKey.from_public_bytes(point).verify(b"\x01" + bytes(63), b"any message")
    ok(ws.cli("user", "add", "dev", "--role", "developer"))
    before = log_head(ws)
    pub = tmp_path / "eve.pub"  # `user add` reads the key from a file
    pub.write_text(keys.b64(point))
    for args, given in (
        (("key", "add", "dev"), keys.b64(point)),
        (("user", "add", "eve", "--role", "reviewer"), str(pub)),
    ):
        r = ws.cli(*args, "--public-key", given)
        assert r.code == 2 and "--public-key: not a usable Ed25519 public key" in r.err, r.err
    assert log_head(ws) == before  # no key for dev, and no eve
