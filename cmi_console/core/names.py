"""Validation of user-given names, so they are safe in paths, subjects and SQL."""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from typing import TypeVar

from cmi_console.core.credentials import credential_url, holds_credential
from cmi_console.core.errors import BadInput

T = TypeVar("T", bound=Hashable)

# matched whole with fullmatch: "$" also matches before a final newline, so
# "^...$" took "evil\n" as a name (into subjects, paths and printed lines)
_PRINCIPAL = re.compile(r"[a-z][a-z0-9._-]{0,63}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# the largest integer a user may type where the databases keep one (SQLite's
# INTEGER is 64 bits; a larger number made the driver overflow)
MAX_INTEGER = 2**63 - 1


def is_decimal(text: str) -> bool:
    """ASCII digits only: str.isdigit() also takes "²" (which int() refuses)
    and "١" (which int() reads as 1)."""
    return text.isascii() and text.isdigit()


def principal(name: str, where: str = "principal") -> str:
    if not _PRINCIPAL.fullmatch(name):
        raise BadInput(
            f"{where}: '{name[:80]}' is not a valid principal name "
            "(lowercase letter, then up to 63 of a-z 0-9 . _ -)"
        )
    return name


def entity(name: str, where: str) -> str:
    if not _NAME.fullmatch(name):
        raise BadInput(
            f"{where}: '{name[:80]}' is not a valid name "
            "(letter or digit, then up to 99 of A-Z a-z 0-9 . _ -)"
        )
    return name


def key(name: str, where: str) -> str:
    if not _KEY.fullmatch(name):
        raise BadInput(f"{where}: '{name[:80]}' is not a valid key (A-Z a-z 0-9 . _ : / -)")
    return name


# A comment or a reason that lives only in a log entry or a signed statement
# (JSON, no column to bound it): the same limit as the descriptions' columns
TEXT_MAX = 2000


def free_text(value: str, where: str, limit: int = TEXT_MAX) -> str:
    """A comment, a reason or a value held to `limit` characters and free of
    credentials, in the words the column check uses (`at most N characters
    (M given)`): the log keeps it for good."""
    if len(value) > limit:
        raise BadInput(f"{where}: at most {limit} characters ({len(value)} given)")
    if url := credential_url(value):
        raise BadInput(holds_credential(where, url))
    return value


def repeated(items: Sequence[T]) -> tuple[int, T] | None:
    """The place and value of the first item that an earlier one equals, if
    any: a list a user wrote with one name twice."""
    seen: set[T] = set()
    for i, item in enumerate(items):
        if item in seen:
            return i, item
        seen.add(item)
    return None


def did_you_mean(near: str | None) -> str:
    """The end of a "no such name" line that names the one meant, if any."""
    return f"; did you mean '{near}'?" if near else ""


def one_of(value: str, choices: tuple[str, ...], where: str) -> str:
    """A value from a fixed set (a strategy, a status, a severity)."""
    if value not in choices:
        raise BadInput(f"{where}: '{value[:80]}' is not one of {', '.join(choices)}")
    return value


def sha256(digest: str, where: str) -> str:
    """A whole SHA-256 hex digest (64 lowercase hex digits): the only names
    the artifact store takes, and what a reviewer binds a decision to."""
    if not _SHA256.fullmatch(digest):
        raise BadInput(f"{where}: '{digest[:80]}' is not a SHA-256 hex digest (64 hex digits)")
    return digest
