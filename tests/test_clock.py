"""How instants are read and shown."""

from __future__ import annotations

import re

import pytest

from cmi_console.core.clock import add, parse_time, shown
from cmi_console.core.errors import BadInput


def test_shown_to_the_second_or_to_the_minute() -> None:
    moment = parse_time("2026-11-27T16:53:09.5+01:00")
    assert moment == "2026-11-27T15:53:09.500000Z"
    assert shown(moment) == "2026-11-27T15:53:09Z"
    assert shown(moment, minute=True) == "2026-11-27 15:53"
    assert shown(None) == shown("") == "-"


def test_every_year_has_four_digits_so_text_order_stays_time_order() -> None:
    """strftime's %Y wrote the year 1 as "1-01-01", which sorts after any 2026
    instant: an incident said to occur then broke the log's time order."""
    early, late = parse_time("0001-01-01"), parse_time("2026-01-01")
    assert early == "0001-01-01T00:00:00.000000Z" and early < late
    assert parse_time("0999-12-31T23:59:59Z") < parse_time("1000-01-01")
    assert shown(early) == "0001-01-01T00:00:00Z"


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"])
def test_an_instant_outside_the_years_in_utc_is_bad_input(text: str) -> None:
    with pytest.raises(BadInput, match=re.escape(f"--at: '{text}' is outside the years 1 to 9999")):
        parse_time(text, "--at")


def test_a_window_near_either_end_of_time_stops_there() -> None:
    assert add("0001-01-01T05:00:00.000000Z", hours=-24) == "0001-01-01T00:00:00.000000Z"
    assert add("9999-12-31T00:00:00.000000Z", days=2) == "9999-12-31T23:59:59.999999Z"
    assert add("2026-01-01T00:00:00.000000Z", hours=-24) == "2025-12-31T00:00:00.000000Z"
