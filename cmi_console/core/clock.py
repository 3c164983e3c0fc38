"""Timestamps: UTC, ISO 8601 with microseconds and a Z, so text order is time order."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from cmi_console.core.errors import BadInput


def format_time(moment: datetime) -> str:
    # isoformat pads the year to four digits; strftime's %Y does not here
    # (glibc printed the year 1 as "1-01-01", which sorts after "2026-")
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def utc_now() -> str:
    return format_time(datetime.now(UTC))


_DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_time(text: str, where: str = "time") -> str:
    """Normalize a user-given instant (ISO 8601; date only means midnight UTC)."""
    raw = text.strip()
    if _DATE_ONLY.fullmatch(raw):
        raw += "T00:00:00"
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise BadInput(f"{where}: '{text}' is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return format_time(moment)
    except OverflowError:  # 0001-01-01T00:00+05:00 is in the year 0 in UTC
        raise BadInput(f"{where}: '{text}' is outside the years 1 to 9999 in UTC") from None


def check_window(since: str | None, until: str | None) -> None:
    """--since and --until (normalized) that leave something between them:
    the other way round, a query quietly found nothing."""
    if since is not None and until is not None and until <= since:
        raise BadInput(f"--until: {until} is not after --since {since}")


def instant(moment: str) -> datetime:
    """A format_time string as an aware datetime."""
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def add(moment: str, *, days: float = 0, hours: float = 0) -> str:
    """`moment` (format_time form) moved by the given amount; a move past the
    year 1 or 9999 stops there (a window around an instant near either end)."""
    try:
        return format_time(instant(moment) + timedelta(days=days, hours=hours))
    except OverflowError:
        edge = datetime.min if days + hours < 0 else datetime.max
        return format_time(edge.replace(tzinfo=UTC))


MAX_SKEW = timedelta(minutes=5)


def skew_problem(here: str, reference: datetime, what: str) -> str | None:
    """Why this host's clock (`here`, format_time) may not stamp the log, when it
    is more than MAX_SKEW off `reference` (the clock a team shares)."""
    off = instant(here) - reference
    if abs(off) <= MAX_SKEW:
        return None
    minutes = int(abs(off).total_seconds() // 60)
    amount = f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
    side = "ahead of" if off > timedelta(0) else "behind"
    return (
        f"this host's clock ({shown(here)}) is {amount} {side} {what} "
        f"({shown(format_time(reference))}); the audit log's times would be wrong: "
        "set the clock (NTP) and try again"
    )


def shown(moment: str | None, *, minute: bool = False) -> str:
    """A format_time string as people read it: to the second, UTC, with its Z
    (`2026-11-27T15:53:00Z`), or for a narrow column to the minute
    (`2026-11-27 15:53`)."""
    if not moment:
        return "-"
    return f"{moment[:10]} {moment[11:16]}" if minute else f"{moment[:19]}Z"
