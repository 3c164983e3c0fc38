"""`cmi import mlflow` against a real MLflow store, built with MLflow itself:
two registered models, versions with tags, aliases, a legacy stage, runs
with params, metrics and a dataset input, and real scikit-learn models."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Workspace
from gate_helpers import ok
from silent_server import silent_server

from cmi_console.services import audit, registry
from cmi_console.services.verify import verify

mlflow = pytest.importorskip("mlflow", reason="the MLflow import needs cmi-console[mlflow]")


def build_store(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """What MLflow users have: runs that log models into the registry."""
    import mlflow.sklearn
    from mlflow import MlflowClient
    from sklearn.datasets import load_breast_cancer, load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    # artifacts under tmp_path, not MLflow's default ./mlruns in the working directory
    mlflow.create_experiment("cmi-import-test", artifact_location=(tmp_path / "art").as_uri())
    mlflow.set_experiment("cmi-import-test")
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    runs = {}
    for c in (0.1, 1.0):
        with mlflow.start_run() as run:
            model = LogisticRegression(C=c, max_iter=5000).fit(X, y)
            mlflow.log_param("C", c)
            mlflow.log_metric("accuracy", float(model.score(X, y)))
            dataset = mlflow.data.from_pandas(X.assign(target=y), name="breast-cancer")
            mlflow.log_input(dataset, context="training")
            mlflow.sklearn.log_model(model, name="model", registered_model_name="cancer")
            runs[c] = run.info.run_id
    Xw, yw = load_wine(return_X_y=True, as_frame=True)
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            DecisionTreeClassifier(max_depth=3, random_state=0).fit(Xw, yw),
            name="model",
            registered_model_name="wine",
            # MLflow saves with skops and checks its types; we built this tree
            skops_trusted_types=["sklearn.tree._tree.Tree"],
        )
    client = MlflowClient(tracking_uri=uri)
    client.set_registered_model_alias("cancer", "champion", "2")
    client.set_model_version_tag("cancer", "1", "validated_by", "qa-team")
    client.update_registered_model("cancer", description="Tumour classifier")
    client.transition_model_version_stage("cancer", "1", "Archived")
    return uri, runs


def test_import_brings_models_versions_runs_and_aliases(ws: Workspace, tmp_path: Path) -> None:
    uri, runs = build_store(tmp_path)
    ok(ws.cli("user", "add", "alice", "--role", "developer"))
    before = audit.count(ws.ctx())
    report = ok(ws.cli("import", "mlflow", "--tracking-uri", uri, "--json", as_="alice")).json()
    assert {m["model"]: m["imported"] for m in report["models"]} == {"cancer": 2, "wine": 1}
    assert report["skipped"] == []
    ctx = ws.ctx()
    cancer = registry.show_model(ctx, "cancer")
    assert cancer["aliases"] == {"champion": 2} and cancer["description"] == "Tumour classifier"
    v1 = registry.show_version(ctx, "cancer:1")
    assert v1["tags"]["mlflow.version"] == "1" and v1["tags"]["mlflow.run_id"] == runs[0.1]
    assert v1["tags"]["mlflow.stage"] == "Archived"  # recorded, not governed
    assert v1["tags"]["validated_by"] == "qa-team"
    assert v1["stage"] == "development"  # our own gates still decide
    assert v1["metrics"]["accuracy"] > 0.9 and v1["artifact_format"] in ("pickle", "skops")
    run = registry.show_run(ctx, v1["run"])
    assert run["params"]["params"] == {"C": "0.1"}
    (data,) = run["params"]["mlflow"]["datasets"]
    assert data["name"] == "breast-cancer" and data["context"] == {
        "mlflow.data.context": "training"
    }
    # the artifact is the model MLflow logged, content-addressed in our store
    assert ctx.workspace.artifacts.read(v1["artifact_sha256"])
    assert audit.count(ctx) > before and verify(ctx).ok
    # importing twice changes nothing: not one entry more
    size = audit.count(ctx)
    again = ok(ws.cli("import", "mlflow", "--tracking-uri", uri, "--json", as_="alice")).json()
    assert {m["model"]: m["imported"] for m in again["models"]} == {"cancer": 0, "wine": 0}
    assert audit.count(ctx) == size


def test_values_mlflow_keeps_and_we_do_not_are_reported_not_fatal(
    ws: Workspace, tmp_path: Path
) -> None:
    """MLflow logs a diverged loss as NaN and stores NUL characters and text
    longer than our columns; each such value stopped the whole import (a
    NaN as "--metrics.loss: must be finite", an option nobody gave). Now the
    value is left out or cut, the report says which, and the rest lands."""
    from mlflow import MlflowClient

    uri, runs = build_store(tmp_path)
    client = MlflowClient(tracking_uri=uri)
    client.log_metric(runs[0.1], "loss", float("nan"))
    client.set_model_version_tag("cancer", "1", "note", "before\x00after")
    client.set_model_version_tag("cancer", "2", "long", "x" * 1200)
    client.update_registered_model("cancer", description="d" * 5000)
    client.update_model_version("wine", "1", description="tree\x00")
    ok(ws.cli("user", "add", "alice", "--role", "developer"))
    report = ok(ws.cli("import", "mlflow", "--tracking-uri", uri, "--json", as_="alice")).json()
    assert {m["model"]: m["imported"] for m in report["models"]} == {"cancer": 2, "wine": 1}
    assert sorted(report["skipped"]) == sorted(
        [
            f"run {runs[0.1]}: metric 'loss' is nan, not a number we keep",
            "cancer version 1: tag 'note': holds a NUL character; not imported",
            "cancer version 2: tag 'long': cut to 500 characters (1200 given)",
            "model 'cancer': description: cut to 2000 characters (5000 given)",
            "wine version 1: description: holds a NUL character; not imported",
        ]
    )
    ctx = ws.ctx()
    v1, v2 = (registry.show_version(ctx, f"cancer:{n}") for n in (1, 2))
    assert "note" not in v1["tags"] and v1["metrics"]["accuracy"] > 0.9
    assert "loss" not in v1["metrics"] and v2["tags"]["long"] == "x" * 500
    assert registry.show_model(ctx, "cancer")["description"] == "d" * 2000
    assert registry.show_version(ctx, "wine:1")["description"] == ""
    assert verify(ctx).ok


def test_credentials_in_what_mlflow_recorded_never_reach_the_log(
    ws: Workspace, tmp_path: Path
) -> None:
    """MLflow records a run's git remote as CI cloned it (a token in it),
    and users log connection strings as params and data by signed URLs. The
    import copied them into the append-only log, for good. Each is kept
    with `***` in the credential's place, and the report says where."""
    from mlflow import MlflowClient

    uri, runs = build_store(tmp_path)
    client = MlflowClient(tracking_uri=uri)
    run = runs[0.1]
    client.set_tag(
        run, "mlflow.source.git.repoURL", "https://x-access-token:ghs_S3CRET1@github.com/o/r"
    )
    client.log_param(run, "db", "postgresql://etl:S3CRET2@db.internal/warehouse")
    client.set_model_version_tag("cancer", "1", "data", "https://h.example/d.csv?sig=S3CRET3&v=1")
    ok(ws.cli("user", "add", "alice", "--role", "developer"))
    report = ok(ws.cli("import", "mlflow", "--tracking-uri", uri, "--json", as_="alice")).json()
    assert {m["model"]: m["imported"] for m in report["models"]} == {"cancer": 2, "wine": 1}
    replaced = sorted(s for s in report["skipped"] if "a credential in it was replaced" in s)
    assert replaced == sorted(
        [
            f"run {run}: param 'db': a credential in it was replaced by ***",
            f"run {run}: tag 'mlflow.source.git.repoURL': a credential in it was replaced by ***",
            "cancer version 1: tag 'data': a credential in it was replaced by ***",
        ]
    ), report["skipped"]
    log = ok(ws.cli("audit", "log", "-n", "100000", "--json")).json()
    everything = json.dumps(log) + json.dumps(report)
    assert not any(f"S3CRET{i}" in everything for i in (1, 2, 3))
    shown = ok(ws.cli("run", "show", f"mlflow-{run}", "--json")).json()
    assert shown["code_ref"]["mlflow.source.git.repoURL"] == "https://***@github.com/o/r"
    assert shown["params"]["params"]["db"] == "postgresql://***@db.internal/warehouse"
    tags = registry.show_version(ws.ctx(), "cancer:1")["tags"]
    assert tags["data"] == "https://h.example/d.csv?sig=***&v=1"
    assert verify(ws.ctx()).ok


def test_import_of_one_model_and_bad_input(ws: Workspace, tmp_path: Path) -> None:
    uri, _runs = build_store(tmp_path)
    ok(ws.cli("user", "add", "alice", "--role", "developer"))
    r = ok(
        ws.cli("import", "mlflow", "--tracking-uri", uri, "--model", "wine", "--json", as_="alice")
    )
    assert [m["model"] for m in r.json()["models"]] == ["wine"]
    # a reviewer may not write the registry: refused, nothing written
    ok(ws.cli("user", "add", "bob", "--role", "reviewer"))
    size = audit.count(ws.ctx())
    denied = ws.cli("import", "mlflow", "--tracking-uri", uri, "--model", "cancer", as_="bob")
    assert denied.code == 3 and audit.count(ws.ctx()) == size


def test_who_trained_in_mlflow_is_kept_and_a_mapped_user_may_not_approve(
    ws: Workspace, tmp_path: Path
) -> None:
    # the importer's principal registers every version: without a map, the
    # MLflow user who trained a model, holding the gate's role here, could
    # approve it (segregation of duties saw only the importer)
    from mlflow import MlflowClient

    uri, runs = build_store(tmp_path)
    client = MlflowClient(tracking_uri=uri)
    client.set_tag(runs[0.1], "mlflow.user", "vic.t")
    client.set_tag(runs[1.0], "mlflow.user", "someone")
    ok(ws.cli("user", "add", "alice", "--role", "developer"))
    ok(ws.cli("user", "add", "victor", "--role", "validator"))
    ok(ws.cli("user", "add", "val", "--role", "validator"))
    args = ("import", "mlflow", "--tracking-uri", uri, "--model", "cancer", "--json")
    report = ok(ws.cli(*args, "--user-map", " vic.t = victor", as_="alice")).json()
    assert report["skipped"] == [
        f"run {runs[1.0]}: MLflow user 'someone' is not in --user-map; no change author kept"
    ]
    ctx = ws.ctx()
    code = {
        n: registry.show_run(ctx, registry.show_version(ctx, f"cancer:{n}")["run"])["code_ref"]
        for n in (1, 2)
    }
    assert code[1]["mlflow.user"] == "vic.t" and code[1]["change_author"] == "victor"
    assert code[2]["mlflow.user"] == "someone" and "change_author" not in code[2]
    ok(ws.cli("request", "cancer:1", "--to", "staging", as_="alice"))
    size = audit.count(ctx)
    r = ws.cli("approve", "cancer:1", "--to", "staging", as_="victor")
    assert r.code == 3 and "sod.change-author-cannot-approve" in r.err, (r.code, r.err)
    assert audit.count(ctx) == size
    ok(ws.cli("approve", "cancer:1", "--to", "staging", as_="val"))  # anyone else may


def test_a_bad_user_map_is_one_line_and_nothing_is_imported(ws: Workspace, tmp_path: Path) -> None:
    uri, _runs = build_store(tmp_path)
    ok(ws.cli("user", "add", "alice", "--role", "developer"))
    size = audit.count(ws.ctx())
    for pair, says in [
        ("vic.t", "cmi: --user-map 'vic.t': expected MLFLOW_USER=PRINCIPAL"),
        ("=victor", "cmi: --user-map '=victor': expected MLFLOW_USER=PRINCIPAL"),
        ("vic.t=", "cmi: --user-map 'vic.t=': expected MLFLOW_USER=PRINCIPAL"),
        ("vic.t=ghost", "cmi: --user-map vic.t: 'ghost' is not a principal"),
        ("vic.t=no way", "cmi: --user-map vic.t: "),
    ]:
        r = ws.cli("import", "mlflow", "--tracking-uri", uri, "--user-map", pair, as_="alice")
        assert r.code == 2 and r.err.startswith(says), (pair, r.err)
        assert len(r.err.strip().splitlines()) == 1
    r = ws.cli(
        "import",
        "mlflow",
        "--tracking-uri",
        uri,
        "--user-map",
        "vic.t=alice",
        "--user-map",
        "vic.t=root",
        as_="alice",
    )
    assert r.code == 2 and "'vic.t' is mapped twice (alice, root)" in r.err, r.err
    assert audit.count(ws.ctx()) == size
    assert registry.list_models(ws.ctx()) == []


def test_a_store_mlflow_cannot_read_is_one_line_and_nothing_is_created(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(ws.cli("user", "add", "alice", "--role", "developer"))
    size = audit.count(ws.ctx())
    # MLflow's client creates a missing SQLite store, tables and all
    missing = tmp_path / "nothing-here.db"
    r = ws.cli("import", "mlflow", "--tracking-uri", f"sqlite:///{missing}", as_="alice")
    assert r.code == 2 and "no such MLflow database" in r.err, r.err
    assert not missing.exists()
    # a model the store lacks, and a store this MLflow refuses to open, were
    # internal errors (an MlflowException)
    uri, _runs = build_store(tmp_path)
    r = ws.cli("import", "mlflow", "--tracking-uri", uri, "--model", "nope", as_="alice")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
    r = ws.cli("import", "mlflow", "--tracking-uri", (tmp_path / "art").as_uri(), as_="alice")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
    # an empty URI is MLflow's default store, which it made in the working
    # directory (mlflow.db); an existing database without MLflow's tables had
    # them created; a server that does not answer was an internal error, and
    # its URI's password was printed
    empty_db = tmp_path / "empty.db"
    sqlite3.connect(empty_db).close()
    monkeypatch.chdir(tmp_path / "art")
    for uri, code, words in (
        ("", 2, "--tracking-uri: empty; give the MLflow store to import"),
        (f"sqlite:///{empty_db}", 2, "no MLflow registry there (no registered_models table)"),
        ("postgresql://u:hunter2@127.0.0.1:1/x", 75, "u:***@127.0.0.1:1/x: cannot reach it ("),
    ):
        r = ws.cli("import", "mlflow", "--tracking-uri", uri, as_="alice")
        assert r.code == code and words in r.err and "hunter2" not in r.err, r.err
        assert len(r.err.strip().splitlines()) == 1
    assert (
        sorted(p.name for p in Path.cwd().iterdir() if p.name.startswith(("mlflow", "mlruns")))
        == []
    )
    with sqlite3.connect(empty_db) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    assert audit.count(ws.ctx()) == size


def test_a_store_this_mlflow_would_change_is_refused_and_left_as_it_was(
    ws: Workspace, tmp_path: Path
) -> None:
    """MLflow's client creates, and migrates, every table of its schema that
    it does not find: an import of a store written by an older MLflow (here,
    one table of this MLflow's schema is dropped) upgraded that store in
    place, and an import must only read. A file that is no database at all
    was an internal error."""
    from cmi_console.services.mlflow_import import _mlflow_tables

    ok(ws.cli("user", "add", "alice", "--role", "developer"))
    size = audit.count(ws.ctx())
    uri, _runs = build_store(tmp_path)
    store = tmp_path / "mlflow.db"
    victim = sorted(_mlflow_tables() - {"registered_models"})[-1]
    with sqlite3.connect(store) as conn:
        conn.execute(f"DROP TABLE {victim}")  # noqa: S608 - a name from MLflow's schema
    conn.close()
    junk = tmp_path / "junk.db"
    junk.write_bytes(bytes(range(256)) * 16)
    before = {p: p.read_bytes() for p in (store, junk)}
    for target, words in (
        (uri, f"this MLflow would add 1 table(s) to the store ({victim})"),
        (f"sqlite:///{junk}", "cannot read it as a database (file is not a database)"),
    ):
        r = ws.cli("import", "mlflow", "--tracking-uri", target, as_="alice")
        assert r.code == 2 and words in r.err, r.err
        assert len(r.err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in before} == before
    with sqlite3.connect(store) as conn:
        names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert victim not in names
    assert audit.count(ws.ctx()) == size


def test_a_tracking_server_that_never_answers_is_exit_75(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL tracking store that took the connection and said nothing
    held the import for ever (libpq waits for ever by default)."""
    from cmi_console.store import engine

    ok(ws.cli("user", "add", "alice", "--role", "developer"))
    monkeypatch.setattr(engine, "CONNECT_TIMEOUT", 2)  # the default (10 s), shorter
    with silent_server() as port:
        uri = f"postgresql://u:hunter2@127.0.0.1:{port}/mlflow"
        r = ws.cli("import", "mlflow", "--tracking-uri", uri, as_="alice")
    assert r.code == 75 and "cannot reach it (connection timeout expired)" in r.err, r.err
    assert "hunter2" not in r.err and len(r.err.strip().splitlines()) == 1


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    }


def test_a_file_store_is_imported_and_nothing_is_written_anywhere(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow 2's default store, a folder such as ./mlruns. MLflow 3 opens one
    only when told to (MLFLOW_ALLOW_FILE_STORE): the import was refused with
    the first half of MLflow's sentence ("... is in maintenance mode"). Once
    opened, its registry reads every logged model through MLflow's default
    store, which MLflow 3 creates as mlflow.db in the working directory. A
    folder that is not a store, or none at all, had a registry made in it."""
    import mlflow.sklearn
    from mlflow import MlflowClient
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # to build it
    mlflow.set_tracking_uri(store.as_uri())
    mlflow.set_experiment("file-store")
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            LogisticRegression(max_iter=5000).fit(X, y),
            name="model",
            registered_model_name="cancer",
        )
    MlflowClient(store.as_uri()).set_registered_model_alias("cancer", "champion", "1")
    mlflow.set_tracking_uri(None)  # a fresh `cmi` process: no URI set anywhere
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    ok(ws.cli("user", "add", "alice", "--role", "developer"))
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    before = _tree(store)

    report = ok(ws.cli("import", "mlflow", "--tracking-uri", "../mlruns", "--json", as_="alice"))
    assert report.json()["models"] == [
        {"model": "cancer", "imported": 1, "already": 0, "aliases": 1}
    ], report.out
    assert report.json()["skipped"] == []
    assert registry.show_model(ws.ctx(), "cancer")["aliases"] == {"champion": 1}
    assert list(here.iterdir()) == [] and _tree(store) == before
    assert "MLFLOW_TRACKING_URI" not in os.environ  # the caller's environment is left as it was
    # a URI this process set itself outranks the environment: it is routed too, then put back
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    mlflow.set_tracking_uri(elsewhere)
    again = ok(ws.cli("import", "mlflow", "--tracking-uri", str(store), "--json", as_="alice"))
    assert again.json()["models"][0]["already"] == 1 and again.json()["skipped"] == []
    assert mlflow.get_tracking_uri() == elsewhere and not (tmp_path / "elsewhere.db").exists()
    mlflow.set_tracking_uri(None)

    size = audit.count(ws.ctx())
    empty = tmp_path / "empty"
    empty.mkdir()
    for uri, words in (
        (str(empty), "no MLflow registry there (no models folder)"),
        (f"{tmp_path / 'absent'}", "absent: no such MLflow store"),
        ((tmp_path / "absent").as_uri(), "absent: no such MLflow store"),
    ):
        r = ws.cli("import", "mlflow", "--tracking-uri", uri, as_="alice")
        assert r.code == 2 and words in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert list(empty.iterdir()) == [] and not (tmp_path / "absent").exists()
    # a bare name MLflow reads as a service is not taken for a missing folder
    r = ws.cli("import", "mlflow", "--tracking-uri", "databricks", as_="alice")
    assert r.code == 2 and "no such MLflow store" not in r.err, r.err
    assert list(here.iterdir()) == [] and audit.count(ws.ctx()) == size


def test_a_version_whose_source_lies_outside_the_store_is_not_copied_in(
    ws: Workspace, tmp_path: Path
) -> None:
    """Whoever may register a version in MLflow chooses its source: a path to
    someone else's file (here, a stand-in for /etc/shadow), directly or by a
    link inside the artifact location, had been copied into our store, 0444."""
    import hashlib

    from mlflow import MlflowClient

    uri, _runs = build_store(tmp_path)
    secret = tmp_path / "private" / "model.pkl"
    secret.parent.mkdir()
    secret.write_bytes(b"\x80\x04" + b"not yours" * 100)
    linked = tmp_path / "art" / "innocent"
    linked.mkdir()
    (linked / "model.pkl").symlink_to(secret)
    client = MlflowClient(tracking_uri=uri)
    client.create_registered_model("leak")
    for source in (str(secret.parent), secret.as_uri(), str(linked)):
        client.create_model_version("leak", source=source)
    ok(ws.cli("user", "add", "alice", "--role", "developer"))
    report = ok(ws.cli("import", "mlflow", "--tracking-uri", uri, "--json", as_="alice")).json()
    assert {m["model"]: m["imported"] for m in report["models"]}["leak"] == 0
    outside = [s for s in report["skipped"] if "outside the store's artifact locations" in s]
    # MLflow's own copy refuses the link (an MlflowException): skipped too
    assert len(outside) == 2 and all(str(secret.parent) in s for s in outside), report["skipped"]
    assert sum(s.startswith("leak version") for s in report["skipped"]) == 3
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    assert not ws.ctx().workspace.artifacts.path_for(digest).exists()
    # the store's own artifacts still come in
    assert {m["model"]: m["imported"] for m in report["models"]}["cancer"] == 2


def test_the_import_sends_no_mlflow_telemetry(tmp_path: Path) -> None:
    """MLflow 3 starts a telemetry client when it is imported, outside CI and
    tests; `cmi import mlflow` only reads a store, so it turns that off (and
    leaves a user's own setting alone). Run in a child process without the
    variables by which MLflow recognises a test or CI run."""
    import os
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "if sys.argv[1] == 'ours':\n"
        "    from cmi_console.core.errors import BadInput\n"
        "    from cmi_console.services.mlflow_import import _client\n"
        "    try:\n"
        "        _client('')\n"
        "    except BadInput:\n"
        "        pass\n"
        "else:\n"
        "    import mlflow\n"
        "from mlflow.telemetry.client import get_telemetry_client\n"
        "print(get_telemetry_client() is not None)\n"
    )
    quiet = {"PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "MLFLOW_DISABLE_TELEMETRY"}
    env = {k: v for k, v in os.environ.items() if k not in quiet and k != "DO_NOT_TRACK"}
    env["PYTHONPATH"] = str(REPO)  # this checkout's code, wherever it is installed from

    def telemetry(how: str, **extra: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe, how],
            env={**env, **extra},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert telemetry("plain") == "True"  # this environment would send it
    assert telemetry("ours") == "False"
    assert telemetry("ours", MLFLOW_DISABLE_TELEMETRY="false") == "True"


def test_a_model_named_as_one_here_but_for_case_is_skipped(ws: Workspace, tmp_path: Path) -> None:
    """MLflow's `wine` beside a model `Wine` here: two models a reviewer reads
    for one another, the policy of one not governing the other. Skipped,
    said, and the rest imported."""
    uri, _runs = build_store(tmp_path)
    ok(ws.cli("user", "add", "alice", "--role", "developer"))
    ok(ws.cli("model", "create", "Wine", as_="alice"))
    r = ok(ws.cli("import", "mlflow", "--tracking-uri", uri, "--json", as_="alice")).json()
    by = {m["model"]: m for m in r["models"]}
    assert by["wine"]["imported"] == 0 and by["cancer"]["imported"] == 2
    assert "model 'wine': differs from the model 'Wine' only by case" in r["skipped"]
    assert ws.cli("model", "show", "wine").code == 2


def test_a_version_whose_model_file_is_empty_is_skipped_not_fatal(
    ws: Workspace, tmp_path: Path
) -> None:
    """A version of 0 bytes is refused by the registration, which had failed
    the whole import (its batch) for one bad version."""
    from mlflow import MlflowClient

    uri, _runs = build_store(tmp_path)
    empty = tmp_path / "art" / "broken" / "model.skops"
    empty.parent.mkdir()
    empty.write_bytes(b"")
    client = MlflowClient(tracking_uri=uri)
    client.create_registered_model("broken")
    client.create_model_version("broken", source=str(empty.parent))
    ok(ws.cli("user", "add", "alice", "--role", "developer"))
    report = ok(ws.cli("import", "mlflow", "--tracking-uri", uri, "--json", as_="alice")).json()
    imported = {m["model"]: m["imported"] for m in report["models"]}
    assert imported["broken"] == 0 and imported["cancer"] == 2
    assert "broken version 1: artifact is empty (0 bytes)" in report["skipped"], report["skipped"]
