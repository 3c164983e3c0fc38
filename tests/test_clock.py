"""How instants are read and shown."""

from __future__ import annotations

from cmi_console.core.clock import parse_time, shown


def test_shown_to_the_second_or_to_the_minute() -> None:
    moment = parse_time("2026-11-27T16:53:09.5+01:00")
    assert moment == "2026-11-27T15:53:09.500000Z"
    assert shown(moment) == "2026-11-27T15:53:09Z"
    assert shown(moment, minute=True) == "2026-11-27 15:53"
    assert shown(None) == shown("") == "-"
