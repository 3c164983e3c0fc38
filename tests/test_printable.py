"""Text from users reaches people's terminals only as visible characters."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Workspace

from cmi_console.core.printable import printable

# recolours, clears the screen, rings, reverses what follows
HOSTILE = "fine\x1b[31m red\x1b[2J\x07 \u202eevil"


@pytest.mark.parametrize(
    "text, shown",
    [
        ("plain text", "plain text"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),
        ("del\x7f c1\x9b", "del\\x7f c1\\x9b"),
        ("\u202etxt.exe", "\\u202etxt.exe"),
        ("two\nlines\tand a tab", "two\nlines\tand a tab"),
        ("cr\roverwrites", "cr\\roverwrites"),
        ("ünïcode ✓ 中文", "ünïcode ✓ 中文"),
    ],
)
def test_controls_are_shown_as_escapes(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert "\n" not in printable(text, one_line=True)


def test_one_line_escapes_line_breaks_too() -> None:
    assert printable("a\nb\tc", one_line=True) == "a\\nb\\tc"


def test_cli_output_never_carries_a_control_sequence(populated: Workspace, tmp_path: Path) -> None:
    ws = populated
    assert ws.cli("model", "create", "hostile", "--description", HOSTILE, as_="alice").code == 0
    art = tmp_path / "m.bin"
    art.write_bytes(b"weights")
    r = ws.cli(
        "version",
        "register",
        "hostile",
        "--artifact",
        str(art),
        "--description",
        HOSTILE,
        as_="alice",
    )
    assert r.code == 0, r.err
    for args in (
        ["model", "show", "hostile"],
        ["model", "list"],
        ["version", "show", "hostile:1"],
        ["audit", "show", str(len(ws.cli("audit", "log", "-n", "1000", "--json").json()) - 1)],
    ):
        r = ws.cli(*args)
        assert r.code == 0, (args, r.err)
        assert "\x1b" not in r.out and "\u202e" not in r.out and "\x07" not in r.out, args
    shown = ws.cli("model", "show", "hostile").out
    assert "\\x1b[31m" in shown and "\\u202eevil" in shown
    # machine output keeps the stored text exactly (as JSON escapes)
    assert ws.cli("model", "show", "hostile", "--json").json()["description"] == HOSTILE
