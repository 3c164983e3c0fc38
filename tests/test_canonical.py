"""Our fast canonicalizer must equal the RFC 8785 reference on every JSON value."""

from __future__ import annotations

import math

import pytest
import rfc8785
from hypothesis import example, given
from hypothesis import strategies as st

from cmi_console.core.canonical import canonical_bytes, is_canonical

SAFE_INT = 2**53 - 1
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-SAFE_INT, SAFE_INT)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    scalars,
    lambda kids: (
        st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=8), kids, max_size=5)
    ),
    max_leaves=25,
)


@given(json_values)
# where orjson and the reference differ, at the end of a document or inside it
@example(0.0)
@example(-3.0)
@example([1.0, {"a": 2.0}])
@example(1e20)
@example({"p": 1e-5})
def test_fast_path_equals_the_rfc8785_reference(value: object) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


@given(json_values)
def test_canonical_bytes_are_recognised_as_canonical(value: object) -> None:
    assert is_canonical(canonical_bytes(value))


@pytest.mark.parametrize(
    "number, text",
    [
        (1e20, b"100000000000000000000"),
        (1e21, b"1e+21"),
        (1e-6, b"0.000001"),
        (1e-7, b"1e-7"),
        (0.1, b"0.1"),
    ],
)
def test_numbers_use_ecmascript_form(number: float, text: bytes) -> None:
    assert canonical_bytes(number) == text


def test_keys_sort_by_utf16_code_units() -> None:
    # U+1F600 (surrogates D83D..) sorts before U+FB01 in UTF-16, after it by code point
    value = {"\ufb01": 1, "\U0001f600": 2}
    assert canonical_bytes(value) == rfc8785.dumps(value)
    assert canonical_bytes(value).index("\U0001f600".encode()) < canonical_bytes(value).index(
        "\ufb01".encode()
    )


@pytest.mark.parametrize(
    "body", [b'{"b":1,"a":2}', b'{"a": 1}', b'{"a":1.0}', b'{"a":1e20}', b"not json"]
)
def test_non_canonical_bytes_are_refused(body: bytes) -> None:
    assert not is_canonical(body)


@pytest.mark.parametrize("bad", [math.nan, math.inf, {"x": [math.nan]}, {1: "a"}])
def test_values_without_a_json_form_raise(bad: object) -> None:
    with pytest.raises(ValueError):
        canonical_bytes(bad)
