"""complete_row: the whole row as the log records it, from what a service gives."""

from __future__ import annotations

import pytest

from cmi_console.services.context import complete_row
from cmi_console.store.tables import PolicyRow, Principal, table

PRINCIPALS, POLICIES = table(Principal), table(PolicyRow)


def test_defaults_and_nulls_are_filled_in_and_the_id_left_out() -> None:
    row = complete_row(
        POLICIES,
        {
            "scope": "m",
            "sha256": "ab" * 32,
            "source": "p.toml",
            "content": {},
            "activated_at": "t",
            "activated_by": "ada",
        },
    )
    assert "id" not in row
    assert row["active"] is True  # the column's default
    assert list(row) == [c.name for c in POLICIES.columns if c.name != "id"]  # table order


def test_a_missing_required_column_and_an_unknown_column_are_refused() -> None:
    with pytest.raises(TypeError, match=r"principals\.name needs a value"):
        complete_row(PRINCIPALS, {"display_name": "x", "created_at": "t", "disabled": False})
    with pytest.raises(TypeError, match=r"unknown columns \['nickname'\]"):
        complete_row(
            PRINCIPALS,
            {"name": "a", "display_name": "x", "created_at": "t", "disabled": False, "nickname": 1},
        )
