"""Principals, their keys and their roles. Every change here is a signed decision."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import and_, bindparam, select
from sqlalchemy.engine import Connection

from cmi_console.core import keys, names, roles
from cmi_console.core.errors import BadInput, Denied, NotFound
from cmi_console.core.gates import RULE_SELF_GRANT
from cmi_console.services.context import Context, Tx
from cmi_console.store import driver
from cmi_console.store.tables import Principal, PublicKey, RoleGrant, table
from cmi_console.store.workspace import write_private

PRINCIPALS = table(Principal)
KEYS = table(PublicKey)
GRANTS = table(RoleGrant)


@dataclass(frozen=True)
class PrincipalView:
    name: str
    display_name: str
    roles: list[str]
    key_ids: list[str]
    disabled: bool
    created_at: str

    def as_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def principal_row(conn: Connection, name: str) -> Any:
    row = conn.execute(select(PRINCIPALS).where(PRINCIPALS.c.name == name)).first()
    if row is None:
        raise NotFound(f"principal '{name}' does not exist")
    return row


def active_roles(conn: Connection, name: str) -> set[str]:
    rows = conn.execute(
        select(GRANTS.c.role)
        .join(PRINCIPALS, PRINCIPALS.c.id == GRANTS.c.principal_id)
        .where(PRINCIPALS.c.name == name, GRANTS.c.revoked_at.is_(None))
    )
    return {r[0] for r in rows}


# One query for "who is this and what may they do": it runs in every write.
_STANDING = driver.Prepared(
    select(PRINCIPALS.c.disabled, GRANTS.c.role)
    .select_from(PRINCIPALS)
    .outerjoin(
        GRANTS, and_(GRANTS.c.principal_id == PRINCIPALS.c.id, GRANTS.c.revoked_at.is_(None))
    )
    .where(PRINCIPALS.c.name == bindparam("name"))
)


def _standing(conn: Connection, actor: str, what: str) -> set[str]:
    """The actor's active roles; Denied when unknown or disabled."""
    rows = driver.all_rows(conn, _STANDING, {"name": actor})
    if not rows:
        raise Denied(f"{actor}: unknown principal; cannot {what}")
    if rows[0].disabled:
        raise Denied(f"{actor}: principal is disabled; cannot {what}")
    return {r.role for r in rows if r.role is not None}


def require_enabled(conn: Connection, actor: str, what: str) -> None:
    _standing(conn, actor, what)


def require_role(
    conn: Connection, actor: str, allowed: frozenset[str] | set[str], what: str
) -> None:
    """Roles are checked at decision time, inside the write transaction."""
    held = _standing(conn, actor, what)
    if not held & set(allowed):
        need = " or ".join(sorted(allowed))
        raise Denied(
            f"{actor}: {what} needs role {need} (holds: {', '.join(sorted(held)) or 'none'})"
        )


def new_key_file(
    path: Path, passphrase: bytes | None, private: Ed25519PrivateKey | None = None
) -> bytes:
    """Write a (new) key pair, the private half 0600; return the public raw bytes.
    A key file already there is refused, however it got there: the file is
    made exclusively (another `user add` of the same name may have made it
    since the name was checked; that was an internal error)."""
    private = private or keys.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_private(path, keys.private_pem(private, passphrase))
    except FileExistsError:
        raise BadInput(f"{path}: a key file already exists") from None
    public = keys.public_raw(private)
    path.with_suffix(".pub").write_text(keys.b64(public) + "\n")
    return public


def insert_principal(tx: Tx, name: str, display_name: str, public: bytes) -> int:
    pid = tx.insert(
        PRINCIPALS,
        {
            "name": name,
            "display_name": display_name,
            "created_at": tx.time,
            "created_by": tx.ctx.actor,
            "disabled": False,
        },
    )
    insert_key(tx, pid, public)
    return pid


def public_key(text: str, where: str) -> bytes:
    """An Ed25519 public key given as base64."""
    public = keys.unb64(text.strip(), where)
    if len(public) != 32:
        raise BadInput(f"{where}: an Ed25519 public key is 32 bytes (base64)")
    if not keys.usable_public(public):
        raise BadInput(
            f"{where}: not a usable Ed25519 public key (a point of small order, not "
            "canonically written, or off the curve: no honest key is one)"
        )
    return public


def insert_key(tx: Tx, principal_id: int, public: bytes) -> str:
    """Register a public key; a key is one principal's, once (another's key
    given as a new user's had been an internal error)."""
    kid = keys.key_id(public)
    if tx.conn.execute(select(KEYS.c.id).where(KEYS.c.key_id == kid)).first():
        raise BadInput(f"--public-key: key {kid[:16]} is already registered")
    tx.insert(
        KEYS,
        {
            "principal_id": principal_id,
            "key_id": kid,
            "public_key": keys.b64(public),
            "created_at": tx.time,
            "revoked_at": None,
        },
    )
    return kid


def insert_grant(tx: Tx, principal_id: int, role: str) -> None:
    tx.insert(
        GRANTS,
        {
            "principal_id": principal_id,
            "role": role,
            "granted_by": tx.ctx.actor,
            "granted_at": tx.time,
            "revoked_by": None,
            "revoked_at": None,
        },
    )


def add_user(
    ctx: Context,
    name: str,
    role_names: list[str],
    *,
    display_name: str = "",
    public_key_b64: str | None = None,
    new_key_passphrase: bytes | None = None,
    private_key: Ed25519PrivateKey | None = None,
) -> tuple[PrincipalView, bool]:
    """Admin only. Without a public key, a key pair is generated in the
    workspace. The principal, and whether it was added: the same user added
    again by the admin who added them, unchanged since (a provisioning
    script run twice), is answered, nothing written; any other user of that
    name is refused."""
    actor = ctx.require_actor()
    names.principal(name, "user")
    for role in role_names:
        roles.check(role)
    if name == actor:
        raise Denied(f"{RULE_SELF_GRANT}: {actor}: nobody creates or grants roles to themselves")
    if public_key_b64 is not None:
        public = public_key(public_key_b64, "--public-key")
        key_path = None
    else:
        public = None
        key_path = ctx.workspace.principal_key_path(name)
    asked = _Asked(actor, name, display_name, sorted(set(role_names)), public, key_path)
    with ctx.read() as conn:
        require_role(conn, actor, {"admin"}, "add users")
        earlier = _added_already(conn, asked, new_key_passphrase, private_key)
        if earlier is not None:
            return earlier, False
    if key_path is not None:
        public = new_key_file(key_path, new_key_passphrase, private_key)
    assert public is not None
    try:
        with ctx.write() as tx:
            require_role(tx.conn, actor, {"admin"}, "add users")
            # another try may have added them since the read (the key file
            # is made exclusively, so only a given public key gets here)
            earlier = _added_already(tx.conn, asked, new_key_passphrase, private_key)
            if earlier is not None:
                return earlier, False
            pid = insert_principal(tx, name, display_name, public)
            for role in sorted(set(role_names)):
                insert_grant(tx, pid, role)
            tx.record(
                "user.add",
                f"principal:{name}",
                {"user": name, "roles": sorted(set(role_names)), "key": keys.key_id(public)},
            )
    except BaseException:
        if key_path is not None:  # the key never became valid; do not leave it behind
            key_path.unlink(missing_ok=True)
            key_path.with_suffix(".pub").unlink(missing_ok=True)
        raise
    return get_user(ctx, name), True


@dataclass(frozen=True)
class _Asked:
    """A `user add` as asked: what a retry must match."""

    actor: str
    name: str
    display_name: str
    roles: list[str]
    public: bytes | None  # given by the user; None: generated at key_path
    key_path: Path | None


def _added_already(
    conn: Connection,
    asked: _Asked,
    passphrase: bytes | None,
    private: Ed25519PrivateKey | None,
) -> PrincipalView | None:
    """None when there is no user of that name; the principal when this is
    the same add again, by the same admin, with nothing changed since;
    otherwise refused, saying what differs."""
    row = conn.execute(select(PRINCIPALS).where(PRINCIPALS.c.name == asked.name)).first()
    if row is None:
        return None
    view = _view(conn, row)
    differs = (
        f"added by {row.created_by}"
        if row.created_by != asked.actor
        else "disabled"
        if view.disabled
        else f"named {view.display_name!r}"
        if view.display_name != asked.display_name
        else f"roles {', '.join(view.roles) or 'none'}"
        if view.roles != asked.roles
        else _other_key(view.key_ids, asked, passphrase, private)
    )
    if differs:
        raise BadInput(
            f"user '{asked.name}' already exists ({differs}); change a user with "
            "`cmi role grant/revoke` and `cmi key add/revoke`"
        )
    return view


def _other_key(
    key_ids: list[str],
    asked: _Asked,
    passphrase: bytes | None,
    private: Ed25519PrivateKey | None,
) -> str:
    """'' when the user's only key is the one this add would give them: the
    public key given, or the workspace key file (which this add would have
    written, encrypted as asked). Else what differs."""
    if asked.public is not None:
        same = key_ids == [keys.key_id(asked.public)]
        return "" if same else "another key"
    assert asked.key_path is not None
    try:
        pem = asked.key_path.read_bytes()
    except OSError:
        return f"no key file at {asked.key_path}"
    if keys.pem_is_encrypted(pem) != (passphrase is not None):
        return "a key file encrypted otherwise"
    try:
        held = keys.load_private(pem, passphrase, str(asked.key_path))
    except (BadInput, Denied):
        return "a key file encrypted otherwise"
    public = keys.public_raw(held)
    if private is not None and keys.public_raw(private) != public:
        return "another key"
    return "" if key_ids == [keys.key_id(public)] else "another key"


def grant_role(ctx: Context, name: str, role: str) -> tuple[PrincipalView, bool]:
    """Grant `role`; the principal, and whether it changed. A role held
    already (an admin's provisioning script run again) is answered, nothing
    written."""
    actor = ctx.require_actor()
    roles.check(role)
    if name == actor:
        raise Denied(f"{RULE_SELF_GRANT}: {actor}: nobody grants a role to themselves")
    with ctx.write() as tx:
        require_role(tx.conn, actor, {"admin"}, "grant roles")
        target = principal_row(tx.conn, name)
        changed = role not in active_roles(tx.conn, name)
        if changed:
            insert_grant(tx, target.id, role)
            tx.record("role.grant", f"principal:{name}", {"user": name, "role": role})
    return get_user(ctx, name), changed


def revoke_role(ctx: Context, name: str, role: str) -> tuple[PrincipalView, bool]:
    """Revoke `role`; the principal, and whether it changed. A role not held
    (a revocation run again) is answered, nothing written."""
    actor = ctx.require_actor()
    roles.check(role)
    with ctx.write() as tx:
        require_role(tx.conn, actor, {"admin"}, "revoke roles")
        target = principal_row(tx.conn, name)
        grant = tx.conn.execute(
            select(GRANTS.c.id).where(
                GRANTS.c.principal_id == target.id,
                GRANTS.c.role == role,
                GRANTS.c.revoked_at.is_(None),
            )
        ).first()
        if grant is not None:
            if role == "admin" and _admin_count(tx.conn) <= 1:
                raise Denied(f"{name} is the last admin; grant admin to someone else first")
            tx.update(GRANTS, grant.id, {"revoked_by": actor, "revoked_at": tx.time})
            tx.record("role.revoke", f"principal:{name}", {"user": name, "role": role})
    return get_user(ctx, name), grant is not None


def _admin_count(conn: Connection) -> int:
    """Admins who can still act: an unrevoked grant on an enabled principal."""
    rows = conn.execute(
        select(GRANTS.c.principal_id)
        .join(PRINCIPALS, PRINCIPALS.c.id == GRANTS.c.principal_id)
        .where(
            GRANTS.c.role == "admin",
            GRANTS.c.revoked_at.is_(None),
            PRINCIPALS.c.disabled.is_(False),
        )
    )
    return len({r[0] for r in rows})


def disable_user(ctx: Context, name: str, reason: str) -> tuple[PrincipalView, bool]:
    """A disabled principal can no longer act or decide; its history stays.
    The principal, and whether it changed: the same disabling again by the
    admin who made it, for the same reason (an offboarding script run
    twice), is answered, nothing written."""
    actor = ctx.require_actor()
    if not reason.strip():
        raise BadInput("--reason: disabling a principal needs a reason")
    names.free_text(reason, "--reason")
    if name == actor:
        raise Denied(f"{actor}: nobody disables themselves; ask another admin")
    with ctx.write() as tx:
        require_role(tx.conn, actor, roles.DECISION_ROLES["user.disable"], "disable principals")
        target = principal_row(tx.conn, name)
        if target.disabled:
            _same_disabling(tx.conn, name, actor, reason)
            return _view(tx.conn, target), False
        if "admin" in active_roles(tx.conn, name) and _admin_count(tx.conn) <= 1:
            raise Denied(f"{name} is the last admin; grant admin to someone else first")
        tx.update(PRINCIPALS, target.id, {"disabled": True})
        tx.record("user.disable", f"principal:{name}", {"user": name, "reason": reason})
    return get_user(ctx, name), True


def _same_disabling(conn: Connection, name: str, actor: str, reason: str) -> None:
    """Refuse, naming it, unless `name` was disabled by `actor` for `reason`
    (as the log's last disabling says): then a retry is answered."""
    from cmi_console.services import ledger

    last = ledger.newest(conn, f"principal:{name}", ("user.disable",))
    if last is not None and (last["actor"], last["data"].get("reason")) == (actor, reason):
        return
    by = f" (by {last['actor']}: {last['data'].get('reason')})" if last is not None else ""
    raise BadInput(f"{name} is already disabled{by}")


def add_key(ctx: Context, name: str, public_key_b64: str) -> tuple[PrincipalView, bool]:
    """Register another public key for a principal (rotation: add, then
    revoke); the principal, and whether it changed. A key the principal
    holds already (a rotation script run twice) is answered, nothing
    written; a key they held and was revoked is never registered again."""
    actor = ctx.require_actor()
    public = public_key(public_key_b64, "--public-key")
    kid = keys.key_id(public)
    with ctx.write() as tx:
        require_role(tx.conn, actor, roles.DECISION_ROLES["key.add"], "add keys")
        target = principal_row(tx.conn, name)
        held = tx.conn.execute(
            select(KEYS.c.principal_id, KEYS.c.revoked_at).where(KEYS.c.key_id == kid)
        ).first()
        if held is not None and held.principal_id == target.id:
            if held.revoked_at is None:
                return _view(tx.conn, target), False
            raise BadInput(
                f"--public-key: key {kid[:16]} of {name} was revoked at {held.revoked_at}; "
                "a revoked key is not registered again: generate a new one"
            )
        insert_key(tx, target.id, public)
        tx.record("key.add", f"principal:{name}", {"user": name, "key": kid})
    return get_user(ctx, name), True


KEY_PREFIX = re.compile(r"[0-9a-fA-F]{8,64}")


def revoke_key(ctx: Context, name: str, key_prefix: str) -> tuple[PrincipalView, bool]:
    """Revoke a key: nothing signed with it later counts (decisions signed
    before stay valid); the principal, and whether it changed. A key revoked
    already (a revocation run again) is answered, nothing written."""
    actor = ctx.require_actor()
    # an empty prefix matched every key: `key revoke alice ''` revoked her only one
    if not KEY_PREFIX.fullmatch(key_prefix):
        raise BadInput(
            f"KEY_ID: '{key_prefix}' is not 8 to 64 hex digits of a key id "
            f"(`cmi user show {name}` lists them)"
        )
    with ctx.write() as tx:
        require_role(tx.conn, actor, roles.DECISION_ROLES["key.revoke"], "revoke keys")
        target = principal_row(tx.conn, name)
        found = tx.conn.execute(
            select(KEYS).where(
                KEYS.c.principal_id == target.id,
                KEYS.c.revoked_at.is_(None),
                KEYS.c.key_id.startswith(key_prefix.lower(), autoescape=True),
            )
        ).all()
        if not found and _revoked_key(tx.conn, target.id, key_prefix):
            return _view(tx.conn, target), False
        if len(found) != 1:
            what = "no key of it starts" if not found else f"{len(found)} keys start"
            raise BadInput(f"{name}: {what} with '{key_prefix}'")
        # the revocation is signed, and a key cannot sign its own revocation
        # once revoked: the refusal had said the key "was revoked", which it
        # was not, and it would leave its holder, maybe the last admin, no key
        if name == actor and tx.signer(actor)[0] == found[0].key_id:
            raise Denied(
                f"{actor}: key {found[0].key_id[:16]} signs this command; nobody revokes "
                "the key they sign with: ask another admin"
            )
        tx.update(KEYS, found[0].id, {"revoked_at": tx.time})
        tx.record("key.revoke", f"principal:{name}", {"user": name, "key": found[0].key_id})
    return get_user(ctx, name), True


def _revoked_key(conn: Connection, principal_id: int, key_prefix: str) -> bool:
    """Whether a revoked key of the principal starts with `key_prefix`."""
    return (
        conn.execute(
            select(KEYS.c.id).where(
                KEYS.c.principal_id == principal_id,
                KEYS.c.revoked_at.is_not(None),
                KEYS.c.key_id.startswith(key_prefix.lower(), autoescape=True),
            )
        ).first()
        is not None
    )


def _view(conn: Connection, row: Any) -> PrincipalView:
    key_ids = [
        r[0]
        for r in conn.execute(
            select(KEYS.c.key_id).where(KEYS.c.principal_id == row.id, KEYS.c.revoked_at.is_(None))
        )
    ]
    return PrincipalView(
        name=row.name,
        display_name=row.display_name,
        roles=sorted(active_roles(conn, row.name)),
        key_ids=key_ids,
        disabled=bool(row.disabled),
        created_at=row.created_at,
    )


def get_user(ctx: Context, name: str) -> PrincipalView:
    with ctx.read() as conn:
        return _view(conn, principal_row(conn, name))


def list_users(ctx: Context) -> list[PrincipalView]:
    with ctx.read() as conn:
        rows = conn.execute(select(PRINCIPALS).order_by(PRINCIPALS.c.name)).all()
        return [_view(conn, r) for r in rows]
