"""Who is at the console: the principal, their roles, and whether they can sign."""

from __future__ import annotations

from dataclasses import dataclass, field

from cmi_console.services import identity
from cmi_console.services.context import Context


@dataclass
class Session:
    """One Context for the whole console: its engine is thread-safe and each
    worker thread takes its own pooled connection."""

    ctx: Context
    roles: list[str] = field(default_factory=list)
    can_sign: bool = False
    passphrase: bytes | None = None
    unreachable: str | None = None  # why the database did not answer the last poll

    def __post_init__(self) -> None:
        self.ctx.passphrase = lambda _what: self.passphrase
        # a decision is shown as soon as it is committed; its hooks follow,
        # and a delivery that fails is a notice (the app shows them)
        self.ctx.deliver_in_background = True

    @property
    def actor(self) -> str | None:
        return self.ctx.actor

    @property
    def read_only(self) -> bool:
        return not self.can_sign

    def has_key(self, name: str) -> bool:
        return self.ctx.workspace.principal_key_path(name).exists()

    def key_is_encrypted(self, name: str) -> bool:
        return self.ctx.key_is_encrypted(name)

    def principals_with_keys(self) -> list[str]:
        """Principals whose private key is on this machine: who can sign here."""
        return [
            u.name for u in identity.list_users(self.ctx) if not u.disabled and self.has_key(u.name)
        ]

    def sign_in(
        self, name: str | None, passphrase: bytes | None = None, *, read_only: bool = False
    ) -> None:
        """Adopt `name`; load its key to prove it can sign (Denied on a wrong
        passphrase). Without a key, or `read_only`, the console only reads."""
        self.ctx.actor, self.passphrase = name, passphrase
        self.ctx.forget_keys()
        self.can_sign, self.roles = False, []
        if name is None:
            return
        self.roles = identity.get_user(self.ctx, name).roles
        if self.has_key(name) and not read_only:
            self.ctx.private_key(name)
            self.can_sign = True

    def describe(self) -> str:
        if not self.actor:
            return "nobody (read-only)"
        roles = ", ".join(self.roles) or "no roles"
        return f"{self.actor} ({roles})" + ("" if self.can_sign else " read-only: no key here")
