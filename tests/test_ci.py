"""`cmi ci` end to end in a temporary git repository, with JUnit and Markdown."""

from __future__ import annotations

import subprocess
from pathlib import Path
from xml.etree import ElementTree as ET

from conftest import REPO, Workspace
from gate_helpers import ok

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
