"""Text from users and files, made safe to print on a terminal.

A description, a comment, a reason, a webhook's error or a line of an
imported file may hold escape sequences (ESC [ ...) that recolour, hide or
overwrite what a reviewer or an auditor reads, or bidirectional overrides
that reorder it on screen. Printed raw, they act on the terminal (or on a
CI log viewer). Here they are shown as escapes instead: `\\x1b`, `\\u202e`.
"""

from __future__ import annotations

# C0 and C1 controls and DEL, and the bidirectional embeddings, overrides and
# isolates ("Trojan Source"); line breaks and tabs are layout and stay unless
# the text must be one line
_HIDDEN = [*range(0x20), *range(0x7F, 0xA0), 0x200E, 0x200F, *range(0x202A, 0x202F)]
_HIDDEN += [*range(0x2066, 0x206A)]
_SHOWN = {c: repr(chr(c))[1:-1] for c in _HIDDEN if c not in (0x09, 0x0A)}
_SHOWN_ONE_LINE = {**_SHOWN, 0x09: "\\t", 0x0A: "\\n"}


def printable(text: str, *, one_line: bool = False) -> str:
    """`text` with every control character shown as its escape."""
    if text.isprintable():  # the common case, checked in C
        return text
    return text.translate(_SHOWN_ONE_LINE if one_line else _SHOWN)
