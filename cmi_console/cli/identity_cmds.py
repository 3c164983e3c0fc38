"""`cmi user ...` and `cmi role ...`: principals, keys and roles (signed decisions)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from cmi_console.cli import common
from cmi_console.cli.common import PrincipalArg, RoleArg
from cmi_console.core.clock import shown

users = typer.Typer(help="Principals and their keys.", no_args_is_help=True)
role_app = typer.Typer(help="Grant and revoke roles.", no_args_is_help=True)
key_app = typer.Typer(help="Principals' signing keys: add and revoke.", no_args_is_help=True)
JsonOpt = common.JsonOpt


def _show(view: object, as_json: bool) -> None:
    data = view.as_json()  # type: ignore[attr-defined]
    if as_json:
        common.print_json(data)
    else:
        common.kv(f"principal {data['name']}", data)


@users.command("add")
def add(
    name: PrincipalArg,
    role: Annotated[list[str], typer.Option("--role", help="Role to grant (repeatable).")],
    display_name: Annotated[str, typer.Option(help="Full name.")] = "",
    public_key: Annotated[
        Path | None,
        typer.Option(help="The user's own public key (base64 file); else one is generated."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a principal (admin only, signed).

    A generated key is encrypted with CMI_NEW_KEY_PASSPHRASE when it is set.
    The same add again by the admin who made it, with nothing changed since,
    is answered; nothing is written.
    """
    from cmi_console.services import identity

    pub = common.read_text_arg(public_key, "--public-key") if public_key is not None else None
    secret = os.environ.get("CMI_NEW_KEY_PASSPHRASE")
    view, created = identity.add_user(
        common.context(),
        name,
        role,
        display_name=display_name,
        public_key_b64=pub,
        new_key_passphrase=secret.encode() if secret else None,
    )
    if not created:
        common.answered(f"user {name} exists already, as asked")
    _show(view, as_json)


@users.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """All principals with their roles."""
    from cmi_console.services import identity

    views = identity.list_users(common.context())
    if as_json:
        common.print_json([v.as_json() for v in views])
        return
    common.table(
        None,
        ["name", "roles", "keys", "disabled", "created"],
        [
            [
                v.name,
                ", ".join(v.roles),
                len(v.key_ids),
                "yes" if v.disabled else "",
                shown(v.created_at),
            ]
            for v in views
        ],
    )


@users.command("show")
def show(name: PrincipalArg, as_json: JsonOpt = False) -> None:
    """One principal."""
    from cmi_console.services import identity

    _show(identity.get_user(common.context(), name), as_json)


@users.command("disable")
def disable(
    name: PrincipalArg,
    reason: Annotated[str, typer.Option("--reason", help="Why.")],
    as_json: JsonOpt = False,
) -> None:
    """Disable NAME: it can no longer act or decide (admin only, signed).

    The same disabling again by the admin who made it, for the same reason,
    is answered; nothing is written.
    """
    from cmi_console.services import identity

    view, changed = identity.disable_user(common.context(), name, reason)
    if not changed:
        common.answered(f"{name} was disabled already, as asked")
    _show(view, as_json)


@key_app.command("add")
def key_add(
    name: PrincipalArg,
    public_key: Annotated[
        str, typer.Option("--public-key", help="Base64 of the 32-byte Ed25519 public key.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Register another public key for NAME (admin only, signed).

    A key NAME holds already is answered; nothing is written.
    """
    from cmi_console.services import identity

    view, changed = identity.add_key(common.context(), name, public_key)
    if not changed:
        common.answered(f"{name} holds that key already")
    _show(view, as_json)


@key_app.command("revoke")
def key_revoke(
    name: PrincipalArg,
    key_id: Annotated[
        str, typer.Argument(help="The key's id, or its first 8 or more hex digits (cmi user show).")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Revoke NAME's key whose id starts with KEY_ID (8 to 64 hex digits) (admin only, signed).

    Decisions it signed before stay valid; nothing it signs later counts. A
    key revoked already is answered; nothing is written.
    """
    from cmi_console.services import identity

    view, changed = identity.revoke_key(common.context(), name, key_id)
    if not changed:
        common.answered(f"{name}'s key {key_id} was revoked already")
    _show(view, as_json)


@role_app.command("grant")
def grant(name: PrincipalArg, role: RoleArg, as_json: JsonOpt = False) -> None:
    """Grant ROLE to NAME (admin only, signed; never to yourself).

    A role NAME holds already is answered; nothing is written.
    """
    from cmi_console.services import identity

    view, changed = identity.grant_role(common.context(), name, role)
    if not changed:
        common.answered(f"{name} holds role {role} already")
    _show(view, as_json)


@role_app.command("revoke")
def revoke(name: PrincipalArg, role: RoleArg, as_json: JsonOpt = False) -> None:
    """Revoke ROLE from NAME (admin only, signed).

    A role NAME does not hold is answered; nothing is written.
    """
    from cmi_console.services import identity

    view, changed = identity.revoke_role(common.context(), name, role)
    if not changed:
        common.answered(f"{name} does not hold role {role}")
    _show(view, as_json)


@role_app.command("list")
def roles_list(as_json: JsonOpt = False) -> None:
    """The roles a principal can hold."""
    from cmi_console.core.roles import ROLES

    if as_json:
        common.print_json(ROLES)
    else:
        common.table(None, ["role", "may"], [[k, v] for k, v in ROLES.items()])
