"""A file the user names is read once: what is recorded about it (its hash,
its stored copy, its format, its row count) is what was trained on,
measured or checked, even when another process rewrites the file meanwhile.

The rewrite is done as a concurrent writer would do it at the worst moment:
an audit hook (PEP 578) replaces the file's content just before it is
opened a second time. Code that reads a file once never sees the new
content; code that read it again (to hash it, to store it, to sniff its
format) recorded one file's hash for another file's rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import REPO, Workspace
from gate_helpers import ok
from open_hook import before_open, before_open_in
from sqlalchemy import select
from test_deployments import serving  # noqa: F401  (the fixture)
from test_monitoring import watched, week  # noqa: F401  (the fixture)
from test_training import cancer_recipe, credit  # noqa: F401  (the fixture)

from cmi_console.core import artifact_format
from cmi_console.services import monitoring, registry
from cmi_console.services.verify import verify


@contextmanager
def rewritten_when_reopened(path: Path, content: bytes) -> Iterator[None]:
    """As a concurrent writer would: the file's content is replaced just
    before it is opened a second time."""
    with before_open(path, lambda: path.write_bytes(content), nth=2):
        yield


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def test_the_hook_rewrites_a_file_opened_twice(tmp_path: Path) -> None:
    """The harness itself: without it the tests below could not fail."""
    path = tmp_path / "f.txt"
    path.write_bytes(b"first")
    with rewritten_when_reopened(path, b"second"):
        assert path.read_bytes() == b"first"
        assert path.read_bytes() == b"second"


def test_a_dataset_is_recorded_as_it_was_read(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "wine.csv"
    wine = pd.read_csv(REPO / "data" / "wine.csv")
    original = csv_bytes(wine)
    path.write_bytes(original)
    with rewritten_when_reopened(path, csv_bytes(wine.head(5))):
        ds = ok(ws.cli("dataset", "register", str(path), "--name", "wine", "--json")).json()
    assert ds["content_sha256"] == sha(original)
    assert ds["row_count"] == len(wine)
    # the copy kept is the file whose hash and rows the log records
    assert ws.ctx().workspace.artifacts.read(ds["content_sha256"]) == original


def test_the_same_file_registered_twice_at_once_is_one_version(
    ws: Workspace, tmp_path: Path
) -> None:
    """The same content twice is a no-op, also when the second registration
    commits while the first is storing its copy: both had found no such
    version, and both made one."""
    path = tmp_path / "wine.csv"
    path.write_bytes((REPO / "data" / "wine.csv").read_bytes())
    store_tmp = ws.ctx().workspace.artifacts.root / "tmp"

    def the_other() -> None:
        registry.register_dataset(ws.ctx("root"), path, "wine")

    with before_open_in(store_tmp, the_other):
        first = registry.register_dataset(ws.ctx("root"), path, "wine")
    assert (first["version"], first["created"]) == (1, False)
    assert [d["version"] for d in registry.list_datasets(ws.ctx())] == [1]
    assert verify(ws.ctx()).ok


def test_a_trained_version_reproduces_though_its_data_was_rewritten(
    ws: Workspace, tmp_path: Path
) -> None:
    ok(ws.cli("model", "create", "cancer"))
    recipe = cancer_recipe(tmp_path)
    data = tmp_path / "data" / "cancer.csv"
    original = data.read_bytes()
    fewer = csv_bytes(pd.read_csv(data).head(200))
    with rewritten_when_reopened(data, fewer):
        v = ok(ws.cli("train", str(recipe), "--json")).json()
    assert v["datasets"][0]["sha256"] == sha(original)
    # retrained from the dataset the run recorded: the same model, bit for bit
    out = ok(ws.cli("reproduce", "cancer:1", "--json")).json()
    assert out["artifact_match"] and out["metrics_match"]


def test_a_window_is_kept_as_it_was_measured(watched: Workspace, tmp_path: Path) -> None:  # noqa: F811
    frame = pd.read_csv(week(1)).assign(prediction=0)
    path = tmp_path / "window.csv"
    original = csv_bytes(frame)
    path.write_bytes(original)
    with rewritten_when_reopened(path, csv_bytes(frame.head(10))):
        w = monitoring.ingest(watched.ctx("alice"), "credit", "production", path)
    assert (w["rows"], w["data_sha256"]) == (len(frame), sha(original))
    assert watched.ctx().workspace.artifacts.read(w["data_sha256"]) == original


def test_labels_are_recorded_as_they_were_read(watched: Workspace, tmp_path: Path) -> None:  # noqa: F811
    frame = pd.read_csv(week(2))
    inputs = tmp_path / "inputs.csv"
    frame.drop(columns=["default"]).to_csv(inputs, index=False)
    ctx = watched.ctx("alice")
    w = monitoring.ingest(ctx, "credit", "production", inputs, predict=True)
    labels = tmp_path / "labels.csv"
    original = csv_bytes(frame[["default"]])
    labels.write_bytes(original)
    with rewritten_when_reopened(labels, csv_bytes(1 - frame[["default"]])):
        monitoring.labels(ctx, "credit", w["window"], labels)
    with watched.ctx().read() as conn:
        row = conn.execute(
            select(monitoring.WINDOWS.c.labels_sha256).where(monitoring.WINDOWS.c.id == w["window"])
        ).one()
    assert row.labels_sha256 == sha(original)
    assert watched.ctx().workspace.artifacts.read(row.labels_sha256) == original


def test_a_versions_format_is_that_of_the_bytes_stored(ws: Workspace, tmp_path: Path) -> None:
    """A skops file swapped for a pickle after its format was sniffed was
    stored as the pickle and recorded as something else."""
    import pickle

    from sklearn.linear_model import LogisticRegression

    from cmi_console.store.model_files import dumps

    ok(ws.cli("model", "create", "m"))
    artifact = tmp_path / "model.skops"
    skops = dumps(LogisticRegression())
    artifact.write_bytes(skops)
    with rewritten_when_reopened(artifact, pickle.dumps(LogisticRegression())):
        v = ok(ws.cli("version", "register", "m", "--artifact", str(artifact), "--json")).json()
    assert (v["artifact_sha256"], v["artifact_format"]) == (sha(skops), "skops")
    store = ws.ctx().workspace.artifacts
    assert artifact_format.detect(store.path_for(v["artifact_sha256"])) == "skops"


def test_a_validation_checks_the_rows_whose_hash_it_records(
    credit: Workspace,  # noqa: F811
    tmp_path: Path,
) -> None:
    drifted = (REPO / "data" / "credit-2026q3.csv").read_bytes()
    (tmp_path / "as-read").mkdir()
    (tmp_path / "untouched").mkdir()
    path, copy = tmp_path / "as-read" / "current.csv", tmp_path / "untouched" / "current.csv"
    path.write_bytes(drifted)
    copy.write_bytes(drifted)
    args = ["validate", "credit:1", "--suite", "full", "--json", "--data"]
    with rewritten_when_reopened(path, (REPO / "data" / "credit.csv").read_bytes()):
        run = credit.cli(*args, str(path)).json()
    again = credit.cli(*args, str(copy)).json()
    assert run["inputs"]["current"]["sha256"] == sha(drifted)

    def drift(out: dict[str, Any]) -> Any:
        return next(r["value"] for r in out["results"] if r["kind"] == "drift")

    assert drift(run)["drifted"] and drift(run) == drift(again)


def test_an_export_carries_the_log_key_it_checked(ws: Workspace, tmp_path: Path) -> None:
    """Export checked keys/log.vkey (its origin, the --previous checkpoint's
    signature), then read the file again for the bundle: rewritten in
    between, the bundle carried a key nobody had checked."""
    from cmi_console.core import bundle

    vkey = ws.home / "keys" / "log.vkey"
    checked = vkey.read_bytes()
    out = tmp_path / "q.zip"
    with rewritten_when_reopened(vkey, b"someone+00000000+AAAA\n"):
        ok(ws.cli("audit", "export", "--out", str(out)))
    with zipfile.ZipFile(out) as zf:
        assert zf.read(bundle.LOG_KEY) == checked


@pytest.mark.parametrize(
    "command", ["dataset", "policy", "artifact", "bundle", "key", "config", "vkey"]
)
def test_a_file_swapped_for_a_fifo_is_refused_not_waited_on(
    ws: Workspace, tmp_path: Path, command: str
) -> None:
    """The name was checked (a regular file), then the file became a FIFO:
    the read had waited for a writer that never comes. The check is now made
    on what was opened."""
    ok(ws.cli("model", "create", "m"))
    names = {"dataset": "d.csv", "policy": "p.toml", "artifact": "m.bin", "bundle": "b.zip"}
    inside = {"key": "keys/root.key", "config": "workspace.json", "vkey": "keys/log.vkey"}
    if command in inside:  # the workspace's own files
        path = ws.home / inside[command]
    else:
        path = tmp_path / names[command]
        path.write_text("a,b\n1,2\n")
    args = {
        "dataset": ["dataset", "register", str(path), "--name", "d"],
        "policy": ["policy", "activate", str(path)],
        "artifact": ["version", "register", "m", "--artifact", str(path)],
        "bundle": ["audit", "verify-bundle", str(path)],
        "key": ["user", "add", "x", "--role", "developer"],  # a decision root signs
        "config": ["audit", "log"],
        "vkey": ["audit", "verify"],
    }[command]

    def swap() -> None:
        path.unlink()
        os.mkfifo(path)

    def unblock() -> None:  # should the read wait after all, the test fails, not hangs
        with contextlib.suppress(OSError), open(path, "wb"):
            pass

    rescue = threading.Timer(10, unblock)
    rescue.start()
    try:
        with before_open(path, swap):
            r = ws.cli(*args)
    finally:
        rescue.cancel()
    assert r.code == 2 and r.err.strip() == f"cmi: {path}: not a regular file", r.err
