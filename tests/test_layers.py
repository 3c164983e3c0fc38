"""The layering of DESIGN.md, enforced: import-linter contracts, and `cmi audit log`
does not pay for pandas, scikit-learn, Textual or the other command groups."""

from __future__ import annotations

import shutil
import subprocess
import sys

from conftest import REPO, Workspace


def test_import_linter_contracts_hold() -> None:
    exe = shutil.which("lint-imports") or str(
        __import__("pathlib").Path(sys.executable).with_name("lint-imports")
    )
    r = subprocess.run([exe], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_audit_log_does_not_import_heavy_libraries(ws: Workspace) -> None:
    code = (
        "import sys\n"
        "from cmi_console.cli.app import main\n"
        f"try: main(['--home', {str(ws.home)!r}, 'audit', 'log', '-n', '10'] + "
        f"(['--db', {ws.db!r}] if {ws.db!r} else []))\n"
        "except SystemExit: pass\n"
        # pydantic: typer 0.29 imports it to coerce options (pyproject pins below it)
        "names = ('pandas', 'sklearn', 'textual', 'skops', 'alembic', 'pydantic')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
        # a group's call builds that group alone, not every command of the CLI
        "cmds = [m for m in sys.modules if m.startswith('cmi_console.cli.') and "
        "m.endswith('_cmds')]\n"
        "print('COMMANDS', cmds)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert "HEAVY []" in r.stdout, r.stdout + r.stderr
    assert "COMMANDS ['cmi_console.cli.audit_cmds']" in r.stdout, r.stdout + r.stderr
