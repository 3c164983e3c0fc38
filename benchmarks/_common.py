"""Shared set-up for the benchmark scripts: a fresh workspace with a developer."""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
from pathlib import Path

from cmi_console.services import identity
from cmi_console.services.context import Context
from cmi_console.services.setup import init_workspace


def fresh_workspace(name: str, db: str | None = None) -> Context:
    home = Path(os.environ.get("CMI_BENCH_DIR", tempfile.gettempdir())) / f"cmi-bench-{name}"
    shutil.rmtree(home, ignore_errors=True)
    ctx = init_workspace(home, admin="root", db=db)
    identity.add_user(ctx, "dev", ["developer"])
    identity.add_user(ctx, "rev", ["reviewer"])
    return ctx


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
