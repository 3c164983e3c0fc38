"""`cmi ci` end to end in a temporary git repository, with JUnit and Markdown."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from conftest import REPO, Workspace
from gate_helpers import log_head, ok

POLICY = (
    (REPO / "policies" / "default.toml")
    .read_text()
    .replace(
        '[suites.staging]\ndescription = "Every candidate: the artifact is intact and loads '
        'safely."\n[[suites.staging.checks]]\nkind = "artifact"\n',
        '[suites.staging]\n[[suites.staging.checks]]\nkind = "artifact"\n'
        '[[suites.staging.checks]]\nkind = "performance"\nmin = { roc_auc = MIN }\nbootstrap = 50\n'
        '[[suites.staging.checks]]\nkind = "drift"\nblocking = false\n',
    )
)


def repo_with_recipe(tmp_path: Path) -> Path:
    from sklearn.datasets import load_breast_cancer

    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    load_breast_cancer(as_frame=True).frame.to_csv(repo / "data" / "cancer.csv", index=False)
    (repo / "cancer.toml").write_text(
        'model = "cancer"\nseed = 3\n[data]\nfile = "data/cancer.csv"\ntarget = "target"\n'
        '[estimator]\nclass = "sklearn.linear_model.LogisticRegression"\n'
        "params = { max_iter = 5000 }\n"
    )
    git = ["git", "-C", str(repo), "-c", "user.email=ci@x", "-c", "user.name=ci"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "model"], check=True)
    return repo


def setup(ws: Workspace, tmp_path: Path, minimum: float) -> Path:
    assert POLICY.count("MIN") == 1, "the staging suite of default.toml changed"
    policy = tmp_path / "default.toml"
    policy.write_text(POLICY.replace("MIN", str(minimum)))
    ok(ws.cli("policy", "activate", str(policy)))
    ok(ws.cli("user", "add", "ci-bot", "--role", "developer"))
    ok(ws.cli("model", "create", "cancer", as_="ci-bot"))
    return repo_with_recipe(tmp_path)


def test_ci_trains_validates_and_requests(ws: Workspace, tmp_path: Path) -> None:
    repo = setup(ws, tmp_path, 0.9)
    junit, md = tmp_path / "junit.xml", tmp_path / "summary.md"
    r = ws.cli(
        "ci",
        str(repo / "cancer.toml"),
        "--junit",
        str(junit),
        "--markdown",
        str(md),
        "--json",
        as_="ci-bot",
    )
    assert r.code == 0, r.err
    out = r.json()
    assert out["request"]["to_stage"] == "staging" and out["code"]["dirty"] is False
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "3" and suite.get("failures") == "0"
    names = [c.get("name") for c in suite.iter("testcase")]
    assert names == ["artifact", "performance", "drift"]
    text = md.read_text()
    assert "`cancer:1` suite `staging` passed" in text and "| performance |" in text
    queue = ok(ws.cli("queue", "--json")).json()
    assert [q["version"] for q in queue] == ["cancer:1"]


def test_ci_fails_with_exit_1_and_opens_no_request(ws: Workspace, tmp_path: Path) -> None:
    repo = setup(ws, tmp_path, 0.9999)
    junit = tmp_path / "junit.xml"
    r = ws.cli("ci", str(repo / "cancer.toml"), "--junit", str(junit), as_="ci-bot")
    assert r.code == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    failure = next(c for c in suite.iter("testcase") if c.get("name") == "performance")
    assert failure.find("failure") is not None
    assert ok(ws.cli("queue", "--json")).json() == []


def test_a_report_path_that_cannot_be_written_stops_ci_before_it_trains(
    ws: Workspace, tmp_path: Path
) -> None:
    # it was found after the version, the run and the request had been written
    from gate_helpers import log_head

    repo = setup(ws, tmp_path, 0.9)
    before = log_head(ws)
    missing = tmp_path / "no" / "junit.xml"
    r = ws.cli("ci", str(repo / "cancer.toml"), "--junit", str(missing), as_="ci-bot")
    assert r.code == 2 and f"--junit: {missing}: no such directory" in r.err, r.err
    assert log_head(ws) == before
    # so is a comment too long for the request it would open
    r = ws.cli("ci", str(repo / "cancer.toml"), "--comment", "x" * 2001, as_="ci-bot")
    assert r.code == 2 and "--comment: at most 2000 characters (2001 given)" in r.err, r.err
    assert log_head(ws) == before


def test_an_unchanged_commit_answers_with_its_version_and_writes_nothing(
    ws: Workspace, tmp_path: Path
) -> None:
    """CI runs on every commit; one that changes neither the recipe nor its
    data trains the same model bytes. That was refused ("already trained",
    exit 2), failing every such job. Now the version is answered with, its
    request and validation reported, and nothing is written; a rejection
    of that very model stands (exit 1) and is not asked again."""
    from gate_helpers import log_head

    repo = setup(ws, tmp_path, 0.9)
    ok(ws.cli("user", "add", "val", "--role", "validator"))  # staging's approver
    recipe = str(repo / "cancer.toml")
    first = ok(ws.cli("ci", recipe, "--json", as_="ci-bot")).json()
    assert first["already_registered"] is False and first["request"]["status"] == "open"
    before = log_head(ws)
    junit = tmp_path / "again.xml"
    again = ws.cli("ci", recipe, "--junit", str(junit), "--json", as_="ci-bot")
    assert again.code == 0, again.err
    out = again.json()
    assert out["already_registered"] is True and out["version"] == "cancer:1"
    assert out["request"]["request"] == first["request"]["request"]
    assert out["validation"]["result_sha256"] == first["validation"]["result_sha256"]
    assert log_head(ws) == before  # nothing written
    suite = ET.parse(junit).getroot().find("testsuite")  # the report of the recorded run
    assert suite is not None and suite.get("failures") == "0"
    text = ok(ws.cli("ci", recipe, as_="ci-bot")).out
    assert "cancer:1: already registered from this recipe and data" in text
    # the reviewers reject it: the same model fails the job, and is not asked again
    ok(ws.cli("reject", "cancer:1", "--to", "staging", "--comment", "not this one", as_="val"))
    before = log_head(ws)
    rejected = ws.cli("ci", recipe, "--json", as_="ci-bot")
    assert rejected.code == 1 and rejected.json()["request"]["status"] == "rejected"
    assert log_head(ws) == before and ok(ws.cli("queue", "--json")).json() == []
    # `cmi train` itself still refuses to train it twice
    r = ws.cli("train", recipe, as_="ci-bot")
    assert r.code == 2 and "already trained" in r.err


def test_an_unchanged_commit_after_a_failed_validation_validates_again(
    ws: Workspace, tmp_path: Path
) -> None:
    """A version with no request (its validation failed, or a job stopped
    half way) is validated again: the same failure, exit 1, one more run."""
    repo = setup(ws, tmp_path, 0.9999)
    recipe = str(repo / "cancer.toml")
    assert ws.cli("ci", recipe, as_="ci-bot").code == 1
    r = ws.cli("ci", recipe, "--json", as_="ci-bot")
    assert r.code == 1 and r.json()["already_registered"] is True
    assert r.json()["request"] is None and r.json()["validation"]["status"] == "fail"
    from cmi_console.services import validations

    runs = validations.list_runs(ws.ctx(), "cancer:1")
    assert [x["status"] for x in runs] == ["fail", "fail"]


def test_jobs_racing_on_one_commit_register_one_version_and_one_request(
    ws: Workspace, tmp_path: Path
) -> None:
    """A push and its pull request start two CI jobs on one commit. Both
    trained, both found no earlier run, and the later one failed on the
    earlier's ("run ... already exists", exit 2), or on its request ("already
    open"). Three real processes at once: every job passes, with one version
    and one request, and the log verifies."""
    import os
    import sys

    repo = setup(ws, tmp_path, 0.9)
    argv = ["--home", str(ws.home), *(["--db", ws.db] if ws.db else []), "--as", "ci-bot"]
    main = "import sys; from cmi_console.cli.app import main; main(sys.argv[1:])"
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", main, *argv, "ci", str(repo / "cancer.toml"), "--json"],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [job.communicate(timeout=300) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0, 0], [err for _, err in outs]
    answers = [json.loads(out) for out, _ in outs]
    assert {a["version"] for a in answers} == {"cancer:1"}
    assert len({a["request"]["request"] for a in answers}) == 1
    assert [q["version"] for q in ok(ws.cli("queue", "--json")).json()] == ["cancer:1"]
    assert ok(ws.cli("audit", "verify")).code == 0


def test_the_change_author_cannot_decide_on_what_ci_built_from_it(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the job's principal (ci-bot) registers and trains; without the change's
    # author, alice could approve the model her own commit changed
    repo = setup(ws, tmp_path, 0.9)
    ok(ws.cli("user", "add", "alice", "--role", "developer", "--role", "validator"))
    ok(ws.cli("user", "add", "val", "--role", "validator"))
    monkeypatch.setenv("CMI_CHANGE_AUTHOR", "alice")  # as a CI config sets it
    out = ok(ws.cli("ci", str(repo / "cancer.toml"), "--json", as_="ci-bot")).json()
    assert out["request"]["status"] == "open" and out["code"]["change_author"] == "alice"
    monkeypatch.delenv("CMI_CHANGE_AUTHOR")
    before = log_head(ws)
    for verb in ("approve", "reject"):
        r = ws.cli(verb, "cancer:1", "--to", "staging", "--comment", "mine", as_="alice")
        assert r.code == 3 and "sod.change-author-cannot-approve" in r.err, (r.code, r.err)
        assert "alice authored the change behind cancer:1" in r.err
    assert log_head(ws) == before
    ok(ws.cli("approve", "cancer:1", "--to", "staging", as_="val"))  # anyone else may


def test_a_change_author_who_is_no_principal_is_refused_before_training(
    ws: Workspace, tmp_path: Path
) -> None:
    repo = setup(ws, tmp_path, 0.9)
    before = log_head(ws)
    for cmd in ("ci", "train"):
        r = ws.cli(cmd, str(repo / "cancer.toml"), "--change-author", "alice", as_="ci-bot")
        assert r.code == 2, (cmd, r.code, r.err)
        assert r.err.startswith("cmi: --change-author: 'alice' is not a principal"), r.err
        assert len(r.err.strip().splitlines()) == 1
    r = ws.cli("run", "record", "--code", '{"change_author": "alice"}', as_="ci-bot")
    assert r.code == 2 and "--code: change_author: 'alice' is not a principal" in r.err, r.err
    r = ws.cli("run", "record", "--code", '{"change_author": 7}', as_="ci-bot")
    assert r.code == 2 and "--code: change_author: must be a principal's name" in r.err, r.err
    assert log_head(ws) == before
    assert ok(ws.cli("version", "list", "cancer", "--json")).json() == []


def _documented_gitlab_script() -> list[str]:
    doc = (REPO / "docs" / "ci.md").read_text()
    found = re.search(r"## GitLab CI\n\n```yaml\n(.*?)```", doc, re.S)
    assert found, "docs/ci.md lost its GitLab job"
    script = found.group(1).split("  script:\n", 1)[1].split("\n  artifacts:", 1)[0]
    return [ln.strip()[2:] for ln in script.splitlines() if ln.strip().startswith("- ")]


def test_the_documented_ci_job_runs_on_a_fresh_runner(ws: Workspace, tmp_path: Path) -> None:
    """docs/ci.md's GitLab job, its script run line by line as a runner runs
    it, with its CI/CD variables pointing at the team's files. The job it
    documented left out the log key: its first write failed ("the workspace
    log key is missing")."""
    import os
    import sys

    repo = setup(ws, tmp_path, 0.5)
    variables = tmp_path / "variables"  # GitLab's file variables
    variables.mkdir()
    for name, source in (
        ("CMI_WORKSPACE_JSON", ws.home / "workspace.json"),
        ("CMI_LOG_VKEY", ws.home / "keys" / "log.vkey"),
        ("CMI_CI_KEY", ws.home / "keys" / "ci-bot.key"),
        ("CMI_LOG_KEY", ws.home / "keys" / "log.key"),
    ):
        (variables / name).write_bytes(source.read_bytes())
    runner = tmp_path / "runner"
    env = {
        **os.environ,
        **{name: str(variables / name) for name in os.listdir(variables)},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "CI_PROJECT_DIR": str(runner),
        "CMI_HOME": str(runner / ".cmi"),
        "CMI_USER": "ci-bot",
        "CMI_DATABASE_URL": ws.db or f"sqlite:///{ws.sqlite_path}",
    }
    env.pop("CMI_KEY_PASSPHRASE", None)  # the test workspace's keys are not encrypted
    script = _documented_gitlab_script()
    assert script[0].startswith("pip install ") and script[-1].startswith("cmi ci ")
    for line in script[1:]:  # the project is installed already
        done = subprocess.run(
            ["bash", "-ec", line.replace("recipes/credit.toml", "cancer.toml")],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, (line, done.stderr)
    ET.parse(repo / "cmi-junit.xml")
    assert "cancer:1" in (repo / "cmi-summary.md").read_text()
    assert [q["version"] for q in ok(ws.cli("queue", "--json")).json()] == ["cancer:1"]
    assert ok(ws.cli("audit", "verify")).code == 0
