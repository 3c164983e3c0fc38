"""The README's "Using it" block, run as written: a reader follows it line by
line from a clone, so a line that no longer works (a role the default policy
no longer asks for, a recipe that moved) is a broken promise. It was: the
block had bob, a reviewer, approve the staging gate the default policy gives
to validators, and trained `recipes/credit.toml`, which never existed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def _block() -> str:
    readme = (REPO / "README.md").read_text()
    found = re.search(r"## Using it\n.*?```sh\n(.*?)```", readme, re.S)
    assert found, "README.md lost its 'Using it' block"
    return found.group(1)


def _clone(into: Path) -> None:
    """What the block reads from a clone: the repository's data, in a git
    repository (a recipe's data paths are bounded by it), and a model of
    the reader's own, saved with skops."""
    import pandas as pd
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    shutil.copytree(REPO / "data", into / "data")
    credit = pd.read_csv(into / "data" / "credit.csv")
    features = credit[["age", "income", "debt_ratio", "credit_history_months"]]
    model = LogisticRegression(max_iter=2000).fit(features, credit["default"])
    sio.dump(model, into / "model.skops")
    git = ["git", "-c", "user.name=reader", "-c", "user.email=reader@example.org"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "clone"]):
        subprocess.run([*git, *args], cwd=into, check=True)


def test_the_readme_walkthrough_runs_as_written(tmp_path: Path, db_url: str | None) -> None:
    """On both backends: a team runs the same commands with CMI_DATABASE_URL
    set to its PostgreSQL server."""
    clone, home = tmp_path / "clone", tmp_path / "home"
    clone.mkdir()
    home.mkdir()
    _clone(clone)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMI_")}
    env.update(
        HOME=str(home),  # the block's ~/.cmi
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(REPO),  # this checkout's code, wherever `cmi` is installed from
        COLUMNS="200",
    )
    if db_url:
        env["CMI_DATABASE_URL"] = db_url
    r = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-x", "-c", _block()],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # in order: a failure's line follows its command's trace
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-3000:]
    assert "Traceback" not in r.stdout, r.stdout
    # the story the block's comments tell
    assert "credit-risk:2 is now in production" in r.stdout
    assert "serving v2 90%, v3 10%" in r.stdout  # the canary's first step
    assert "rolled-back; serving v2 100%" in r.stdout
    assert re.search(r"^ok: \d+ entries of a log of \d+, .*log key pinned", r.stdout, re.M)
    assert (home / ".cmi" / "keys" / "alice.key").stat().st_mode & 0o777 == 0o600
    assert (home / ".cmi" / "cmi.db").exists() == (db_url is None)  # the backend asked for
