"""Documentation moves with the code."""

from __future__ import annotations

import importlib.util
import re

from conftest import REPO


def test_cli_reference_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen_cli", REPO / "docs" / "gen_cli.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (REPO / "docs" / "cli.md").read_text() == gen.render(), (
        "docs/cli.md is stale: python docs/gen_cli.py > docs/cli.md"
    )


def test_every_policy_key_is_documented() -> None:
    from cmi_console.core import policy

    doc = (REPO / "docs" / "policies.md").read_text()
    models = [policy.Policy, policy.Stage, policy.Tier, policy.Approval, policy.Suite]
    models += list(policy.CHECK_SPECS.values())
    for model in models:
        for name, field in model.model_fields.items():
            key = field.alias or name
            assert re.search(rf"`{re.escape(key)}`", doc), f"{model.__name__}.{key} undocumented"


def test_every_command_summary_is_one_line() -> None:
    """Typer's command lists print a help text's first paragraph with its line breaks
    kept, so a summary wrapped in the docstring shows up broken mid-sentence."""
    import typer

    from cmi_console.cli.app import app

    def wrapped(group: object, path: str) -> list[str]:
        found = []
        for name, sub in getattr(group, "commands", {}).items():
            summary = (sub.help or "").strip().split("\n\n")[0]
            if not summary or "\n" in summary:  # none at all: an empty line in every list
                found.append(f"{path} {name}")
            found += wrapped(sub, f"{path} {name}")
        return found

    assert wrapped(typer.main.get_command(app), "cmi") == []


def test_every_option_and_argument_says_what_it_does() -> None:
    """docs/cli.md is generated from the help texts: an option without one was
    a row with an empty meaning there and in `--help`, and an argument a bare
    `recipe <path> [required]` (68 of the 80 had none)."""
    import typer

    from cmi_console.cli.app import app

    def silent(group: object, path: str) -> list[str]:
        found = [
            f"{path} {p.opts[0] if p.param_type_name == 'option' else p.name.upper()}"
            for p in getattr(group, "params", [])
            if getattr(p, "param_type_name", "") in ("option", "argument")
            and not (getattr(p, "help", None) or "").strip()
        ]
        for name, sub in getattr(group, "commands", {}).items():
            found += silent(sub, f"{path} {name}")
        return found

    assert silent(typer.main.get_command(app), "cmi") == []


def test_every_console_key_is_documented() -> None:
    """docs/tui.md's keys table names every binding of the console's screens
    (it once lacked `R`, retire)."""
    import pkgutil

    from textual.binding import Binding

    import cmi_console.tui

    shown = set(re.findall(r"`([^`]+)`", (REPO / "docs" / "tui.md").read_text()))
    named = {"slash": "/", "question_mark": "?"}
    missing = []
    for info in pkgutil.iter_modules(cmi_console.tui.__path__):
        module = importlib.import_module(f"cmi_console.tui.{info.name}")
        for cls in vars(module).values():
            if not (isinstance(cls, type) and cls.__module__ == module.__name__):
                continue
            for b in vars(cls).get("BINDINGS", []):
                for key in (b.key if isinstance(b, Binding) else b[0]).split(","):
                    if named.get(key, key) not in shown:
                        missing.append(f"{cls.__name__}: {key}")
    assert missing == []
