"""Every command, with each of its options and arguments given hostile values
(empty, negative, beyond 64 bits, non-ASCII with an escape sequence, 3,000
characters), on a populated demo workspace: never an internal error, never a
traceback, never more than one line on stderr (DESIGN.md: bad input gets one
clear line and the documented exit code). Such a sweep found a path too long
for the file system to be an internal error for every option taking a path,
and an empty MLflow tracking URI to create a store in the working directory:
nothing but the files asked for may appear there."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import typer

from cmi_console.cli.app import app, main
from cmi_console.services import demo

# interactive, or minutes long (they train), or they make workspaces of their own
SKIP = {"tui", "demo", "init", "train", "ci", "reproduce"}
HOSTILE = ["", "-1", "9" * 25, "\u00e9\x1b[2J", "n" * 3000]
# a plausible value for each argument, so that each option is reached
ARGUMENTS = {
    "ref": "credit-risk:3",
    "version": "credit-risk:3",
    "model": "credit-risk",
    "name": "credit-risk",
    "seq": "5",
    "request_id": "8",
    "incident": "2",
    "alert": "1",
    "window": "1",
    "run": "1",
    "deliveries": "1",
    "text": "a note",
    "when": "2026-11-20",
    "start": "2026-11-20",
    "end": "2026-11-25",
    "role": "reviewer",
    "tier": "high",
    "alias": "champion",
    "key_id": "abcdef12",
}


def _commands(group: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    for name, command in getattr(group, "commands", {}).items():
        if name in SKIP:
            continue
        if hasattr(command, "commands"):
            yield from _commands(command, [*path, name])
        else:
            yield [*path, name], command


COMMANDS = dict((" ".join(p), c) for p, c in _commands(typer.main.get_command(app), []))


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("sweep") / "ws"
    demo.ensure_demo(home, start=date(2026, 9, 1))
    return home


def _argv_variants(command: Any, files: Path) -> Iterator[list[str]]:
    args = [
        ARGUMENTS.get(p.name, str(files / "policy.toml"))
        for p in command.params
        if p.param_type_name == "argument"
    ]
    for p in command.params:
        if p.param_type_name == "option" and not p.is_flag and p.name != "help":
            for value in HOSTILE:
                yield [*args, p.opts[0], value]
    for i in range(len(args)):
        for value in HOSTILE:
            yield [*args[:i], value, *args[i + 1 :]]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_no_hostile_value_is_an_internal_error(
    name: str,
    demo_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(Path(__file__).parents[1] / "policies" / "default.toml", files / "policy.toml")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("CMI_KEY_PASSPHRASE", "demo")
    bad = []
    for argv in _argv_variants(COMMANDS[name], files):
        capsys.readouterr()
        try:
            main(["--home", str(demo_home), "--as", "ada", *name.split(), *argv])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        err = capsys.readouterr().err.strip()
        if code == 70 or "Traceback" in err or len(err.splitlines()) > 1:
            bad.append((code, " ".join(argv)[:100], err[:200]))
    assert bad == []
    # nothing made where it ran, but the files asked for (an --out named "-1")
    assert sorted(p.name for p in cwd.iterdir() if p.name not in HOSTILE) == []
