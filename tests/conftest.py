"""Fixtures: real workspaces on a real SQLite file and, when CMI_TEST_DATABASE_URL
is set, on a fresh database of the real PostgreSQL server."""

from __future__ import annotations

import os

# Two xdist workers each running multi-threaded BLAS oversubscribe two cores
# ~10x; set before numpy is first imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cmi_console.cli.app import main
from cmi_console.services.context import Context
from cmi_console.services.setup import init_workspace

PG_URL = os.environ.get("CMI_TEST_DATABASE_URL")
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(
                not PG_URL, reason="PostgreSQL tests need CMI_TEST_DATABASE_URL (see README)"
            ),
        ],
    ),
]
REPO = Path(__file__).resolve().parents[1]


def _pg_admin(url: str) -> Any:
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(plain, autocommit=True)


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test."""
    assert PG_URL
    name = f"cmi_t_{uuid.uuid4().hex[:12]}"
    with _pg_admin(PG_URL) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with _pg_admin(PG_URL) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("fresh_pg_url")


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Workspace:
    home: Path
    db: str | None
    capsys: pytest.CaptureFixture[str]

    def cli(self, *args: str, as_: str | None = "root") -> Result:
        """Run `cmi` in-process, as a user would type it."""
        argv = ["--home", str(self.home)]
        if self.db:
            argv += ["--db", self.db]
        if as_:
            argv += ["--as", as_]
        self.capsys.readouterr()
        try:
            main([*argv, *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        cap = self.capsys.readouterr()
        return Result(code, cap.out, cap.err)

    def ctx(self, actor: str | None = "root") -> Context:
        return Context.open(self.home, self.db, actor)

    @property
    def sqlite_path(self) -> Path:
        return self.home / "cmi.db"


@pytest.fixture
def ws(tmp_path: Path, db_url: str | None, capsys: pytest.CaptureFixture[str]) -> Workspace:
    home = tmp_path / "ws"
    init_workspace(home, admin="root", db=db_url).engine.dispose()
    return Workspace(home, db_url, capsys)


@pytest.fixture
def populated(ws: Workspace, tmp_path: Path) -> Workspace:
    """A developer, a reviewer, a dataset, a model and two versions: real sklearn models."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    from cmi_console.store.model_files import dumps

    assert ws.cli("user", "add", "alice", "--role", "developer").code == 0
    assert ws.cli("user", "add", "bob", "--role", "reviewer").code == 0
    frame = load_breast_cancer(as_frame=True).frame
    data = tmp_path / "cancer.csv"
    frame.to_csv(data, index=False)
    X, y = frame.drop(columns=["target"]), frame["target"]
    assert ws.cli("dataset", "register", str(data), "--name", "cancer", as_="alice").code == 0
    assert ws.cli("model", "create", "cancer", as_="alice").code == 0
    for i, c in enumerate((0.1, 1.0), start=1):
        art = tmp_path / f"m{i}.skops"
        art.write_bytes(dumps(LogisticRegression(C=c, max_iter=5000).fit(X, y)))
        r = ws.cli(
            "version",
            "register",
            "cancer",
            "--artifact",
            str(art),
            "--dataset",
            "cancer",
            "--metrics",
            json.dumps({"auc": 0.9 + i / 100}),
            "--tag",
            f"c={c}",
            "--tag",
            "team=onc",
            as_="alice",
        )
        assert r.code == 0, r.err
    return ws


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Collect once and freeze the heap before the run reports it is done.

    At unconfigure pytest runs `gc.collect()` five times (to report late
    unraisable exceptions). In an xdist worker that has run half the suite
    the heap holds over a million objects and those five took seconds, after
    the worker had told the controller it was finished; execnet interrupts
    a worker still busy 5 s after that, and the KeyboardInterrupt landed in
    hypothesis's gc callback (a PytestUnraisableExceptionWarning after 100%
    in most full runs). This collection runs before the worker reports, and
    a frozen heap makes the five later ones near free (measured: 0.4 s here
    for ~480,000 objects, then 0.00 s for the five, against 1.7 s)."""
    import gc

    gc.collect()
    gc.freeze()
