"""Validation of user-given names, so they are safe in paths, subjects and SQL."""

from __future__ import annotations

import re

from cmi_console.core.errors import BadInput

_PRINCIPAL = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")


def principal(name: str, where: str = "principal") -> str:
    if not _PRINCIPAL.match(name):
        raise BadInput(
            f"{where}: '{name[:80]}' is not a valid principal name "
            "(lowercase letter, then up to 63 of a-z 0-9 . _ -)"
        )
    return name


def entity(name: str, where: str) -> str:
    if not _NAME.match(name):
        raise BadInput(
            f"{where}: '{name[:80]}' is not a valid name "
            "(letter or digit, then up to 99 of A-Z a-z 0-9 . _ -)"
        )
    return name


def key(name: str, where: str) -> str:
    if not _KEY.match(name):
        raise BadInput(f"{where}: '{name[:80]}' is not a valid key (A-Z a-z 0-9 . _ : / -)")
    return name
