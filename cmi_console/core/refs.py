"""References to versions and datasets as users type them."""

from __future__ import annotations

from dataclasses import dataclass

from cmi_console.core import names
from cmi_console.core.errors import BadInput


@dataclass(frozen=True)
class VersionRef:
    model: str
    version: int | None = None  # None: the latest
    alias: str | None = None

    def __str__(self) -> str:
        if self.alias:
            return f"{self.model}@{self.alias}"
        return self.model if self.version is None else f"{self.model}:{self.version}"


def parse_version_ref(text: str, where: str = "version") -> VersionRef:
    """MODEL, MODEL:VERSION or MODEL@ALIAS."""
    if "@" in text:
        model, alias = text.split("@", 1)
        return VersionRef(names.entity(model, where), alias=names.entity(alias, where))
    model, sep, ver = text.partition(":")
    names.entity(model, where)
    if not sep:
        return VersionRef(model)
    return VersionRef(model, _version_number(ver, text, where))


def parse_dataset_ref(text: str, where: str = "--dataset") -> tuple[str, int | None]:
    name, sep, ver = text.partition(":")
    names.entity(name, where)
    if not sep:
        return name, None
    return name, _version_number(ver, text, where)


def _version_number(ver: str, text: str, where: str) -> int:
    number = int(ver) if names.is_decimal(ver) else 0
    if number < 1:
        raise BadInput(f"{where}: '{text[:120]}': version must be a positive integer")
    if number > names.MAX_INTEGER:
        raise BadInput(f"{where}: '{text[:120]}': version number is too large")
    return number


def parse_pair(text: str, where: str) -> tuple[str, str]:
    """KEY=VALUE."""
    key, sep, value = text.partition("=")
    if not sep:
        raise BadInput(f"{where}: '{text[:80]}' is not KEY=VALUE")
    return names.key(key.strip(), where), value.strip()


def parse_pairs(texts: list[str], where: str) -> dict[str, str]:
    """KEY=VALUE, repeatable; a key given twice is ambiguous (which value?)."""
    out: dict[str, str] = {}
    for text in texts:
        key, value = parse_pair(text, where)
        if key in out:
            raise BadInput(f"{where}: '{key}' given twice")
        out[key] = value
    return out


def model_subjects(model: str) -> tuple[frozenset[str], str]:
    """The log subjects about a model: the exact ones, and the prefix every
    one of its versions' subjects starts with (export scope, incident timeline)."""
    return frozenset({f"model:{model}", f"policy:{model}"}), f"version:{model}:"
