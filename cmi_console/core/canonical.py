"""RFC 8785 (JCS) canonical JSON.

`rfc8785` is the reference implementation. orjson with sorted keys produces the
same bytes for the values we log (strings, safe integers, finite floats written
without an exponent, BMP keys) at ~60x the speed, so it is the fast path; the
reference handles everything else. The regex spots every case where they may
differ, and the reference decides those: a number with an exponent (JCS
prints 1e20 as 100000000000000000000), an integral float (orjson writes 1.0,
JCS 1), a 16+ digit integer (beyond IEEE-754 exactness), or a non-BMP
character (JCS sorts keys by UTF-16 code units, orjson by code points).
A match inside a string only costs the slow path, never a wrong answer.

The regex itself costs ~20 ns a byte, more than everything else together on
the write path and in `audit verify`, so it runs only when a byte-level
screen finds a candidate: orjson marks every exponent with "e+" or "e-" and
every integral float with ".0" before a delimiter; STRICT_INTEGER refuses
integers beyond 2**53; and all-ASCII bytes hold no non-BMP character.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import orjson
import rfc8785

_MAYBE_DIFFERENT = re.compile(
    rb"[\xf0-\xf4]|(?:^|[:,\[])-?(?:\d{16,}|\d+\.0(?!\d)|\d+(?:\.\d+)?[eE])"
)


_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER


def _fast(obj: Any) -> bytes:
    return orjson.dumps(obj, option=_OPTIONS)


def _same_as_reference(fast: bytes) -> bool:
    """True when orjson's bytes are certainly what the reference writes."""
    # Each two-byte search costs ~0.5 us on a log entry (its hex hashes are
    # full of "e"), a one-byte search a tenth of that; so the rare bytes go
    # first: "+" appears in no time stamp, ".0" only in some.
    if fast.isascii() and not (
        (b"+" in fast and b"e+" in fast)
        or b"e-" in fast
        or (
            b".0" in fast
            and (b".0," in fast or b".0}" in fast or b".0]" in fast or fast.endswith(b".0"))
        )
    ):
        return True
    return _MAYBE_DIFFERENT.search(fast) is None


def canonical_bytes(obj: Any) -> bytes:
    """Return the RFC 8785 canonical encoding of a JSON value.

    Raises ValueError for values JSON cannot represent exactly (NaN, infinity,
    integers beyond 2**53, non-string keys).
    """
    try:
        fast = _fast(obj)
    except TypeError as exc:  # non-str keys, unsupported types, ints over 2**53
        if "53-bit" in str(exc):
            return _reference(obj)
        raise ValueError(f"not JSON-serialisable: {exc}") from None
    # a round trip equal to obj (C speed) proves there was no NaN/inf; only
    # when it differs (or obj held tuples) walk the value in Python
    if b"null" in fast and orjson.loads(fast) != obj and _has_non_finite(obj):
        raise ValueError("NaN and infinity have no JSON form")
    if _same_as_reference(fast):
        return fast
    return _reference(obj)


def _reference(obj: Any) -> bytes:
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:
        raise ValueError(str(exc)) from None


def is_canonical(body: bytes) -> bool:
    """True if `body` is exactly the canonical encoding of the value it holds."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return is_canonical_of(body, obj)


def is_canonical_of(body: bytes, obj: Any) -> bool:
    """Same as is_canonical, for a caller that has already parsed `body`."""
    try:
        if _fast(obj) == body and _same_as_reference(body):
            return True
    except TypeError:  # an integer beyond 2**53: the reference decides
        pass
    try:
        return rfc8785.dumps(_big_ints_as_floats(obj)) == body
    except rfc8785.CanonicalizationError:
        return False


def _big_ints_as_floats(obj: Any) -> Any:
    # JCS writes the double 2**53 as "9007199254740992", which parses back as
    # an int the reference refuses; read such ints as the doubles they were.
    if isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) > 2**53 - 1:
        return float(obj)
    if isinstance(obj, dict):
        return {k: _big_ints_as_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_big_ints_as_floats(v) for v in obj]
    return obj


def walked(obj: Any) -> Iterator[tuple[str, Any]]:
    """Every value of a parsed JSON or TOML document with where it is
    (`a.b[1]`; "the value" for the whole), in document order. Walked with a
    stack: the nesting may be as deep as a parser allowed."""
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        path, value = stack.pop()
        yield path or "the value", value
        # pushed in reverse, so the first one in the document comes first
        if isinstance(value, dict):
            items = [(f"{path}.{k}" if path else str(k), v) for k, v in value.items()]
            stack.extend(reversed(items))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{path}[{i}]", v) for i, v in enumerate(value)]))


def unrepresentable(obj: Any) -> str | None:
    """Where a parsed JSON or TOML value holds a number canonical JSON cannot
    carry exactly (NaN, infinity, an integer beyond 2**53), and what; else None."""
    for where, value in walked(obj):
        if isinstance(value, float) and not math.isfinite(value):
            return f"{where}: {value} is not a finite number"
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53 - 1:
            return f"{where}: {value} is beyond the integers JSON carries exactly (2**53)"
    return None


class RepeatedName(ValueError):
    """A JSON object names one member twice."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the name {name!r} appears twice in one object")


def unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads`'s object_pairs_hook for input that must be I-JSON (RFC
    7493, which RFC 8785 takes as its input): a name given twice is refused,
    since parsers differ on which value they keep (orjson and Python keep the
    last, others the first), so two readers would see two documents."""
    obj: dict[str, Any] = {}
    for name, value in pairs:
        if name in obj:
            raise RepeatedName(name)
        obj[name] = value
    return obj


def _has_non_finite(obj: Any) -> bool:
    # orjson silently writes NaN/inf as null; only walk when a null is present.
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(_has_non_finite(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return any(_has_non_finite(v) for v in obj)
    return False


def loads(body: bytes | str) -> Any:
    return orjson.loads(body)
