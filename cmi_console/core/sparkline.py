"""A one-line plot of a series, for the CLI and the TUI alike."""

from __future__ import annotations

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None]) -> str:
    """One character per value, scaled between the series' min and max; a
    missing value (a window without labels) is a space."""
    present = [v for v in values if v is not None]
    if not present:
        return " " * len(values)
    lo, hi = min(present), max(present)
    span = hi - lo
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        else:
            i = 0 if span == 0 else round((v - lo) / span * (len(BARS) - 1))
            out.append(BARS[i])
    return "".join(out)
