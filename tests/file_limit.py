"""`cmi` in a child process whose files may not grow past a size: writes past
it fail with EFBIG, as they fail with ENOSPC on a full disk (the same code
path; a full disk cannot be made in a test without mounting one)."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

from conftest import REPO, Workspace

_MAIN = "import sys; from cmi_console.cli.app import main; main(sys.argv[1:])"


def cli_with_file_limit(
    ws: Workspace, limit: int, cwd: Path, *args: str, as_: str = "root"
) -> subprocess.CompletedProcess[str]:
    argv = ["--home", str(ws.home), *(["--db", ws.db] if ws.db else []), "--as", as_, *args]

    def limited() -> None:  # in the child only: ignore the signal, take the errno
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-c", _MAIN, *argv],
        env={**os.environ, "PYTHONPATH": str(REPO)},  # this checkout's code
        cwd=cwd,  # which `-c` would otherwise take from the working directory
        preexec_fn=limited,
        capture_output=True,
        text=True,
        timeout=120,
    )
