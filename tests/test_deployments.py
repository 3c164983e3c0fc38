"""Deployments: each strategy's state machine, signed rollouts, rollback,
manifests, and the log covering every traffic change."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import REPO, Workspace
from gate_helpers import log_head, ok
from hypothesis import given, settings
from hypothesis import strategies as st

from cmi_console.core import deployments as dm
from cmi_console.services import deployments, gates
from cmi_console.services.verify import verify

STEPS = [10, 25, 50, 100]
CREDIT_RECIPE = (
    'model = "credit"\nseed = 3\n[data]\nfile = "data/credit.csv"\nname = "credit"\n'
    'target = "default"\nsensitive = ["sex"]\n[estimator]\nclass = "{cls}"\nparams = {params}\n'
)
ESTIMATORS = (
    ("sklearn.linear_model.LogisticRegression", "{ max_iter = 500 }"),
    ("sklearn.ensemble.GradientBoostingClassifier", "{ n_estimators = 30, max_depth = 2 }"),
)


# --- the state machines (pure) ---------------------------------------------


def test_canary_climbs_its_steps_and_completes_at_100() -> None:
    s = dm.start("canary", None, STEPS, has_stable=True)
    assert (s.status, s.traffic) == ("active", 10)
    seen = []
    while s.open:
        s = dm.apply(s, "advance", STEPS)
        seen.append(s.traffic)
    assert seen == [25, 50, 100] and s.status == "completed"
    with pytest.raises(dm.Illegal):
        dm.apply(s, "advance", STEPS)  # over: deploy again


def test_canary_pause_blocks_advance_until_resumed() -> None:
    s = dm.apply(dm.start("canary", 5, STEPS, True), "pause", STEPS)
    for action in ("advance", "complete", "pause"):
        with pytest.raises(dm.Illegal):
            dm.apply(s, action, STEPS)
    s = dm.apply(s, "resume", STEPS)
    assert dm.apply(s, "advance", STEPS).traffic == 10
    with pytest.raises(dm.Illegal):
        dm.apply(s, "advance", STEPS, to=5)  # never backwards


def test_blue_green_switches_once_then_completes() -> None:
    s = dm.start("blue-green", None, STEPS, True)
    assert s.traffic == 0 and dm.shares(1, 2, s) == {"1": 100}
    s = dm.apply(s, "advance", STEPS)
    assert s.traffic == 100 and s.status == "active" and dm.shares(1, 2, s) == {"2": 100}
    with pytest.raises(dm.Illegal):
        dm.apply(s, "advance", STEPS)
    assert dm.apply(s, "complete", STEPS).status == "completed"


@pytest.mark.parametrize("strategy", ["ab", "shadow"])
def test_ab_and_shadow_never_advance(strategy: str) -> None:
    s = dm.start(strategy, None, STEPS, True)
    with pytest.raises(dm.Illegal):
        dm.apply(s, "advance", STEPS)
    if strategy == "shadow":
        assert s.traffic == 0 and s.mirror == 100 and dm.shares(1, 2, s) == {"1": 100}
    else:
        assert dm.shares(1, 2, s) == {"2": 50, "1": 50}
    rolled = dm.apply(s, "rollback", STEPS)
    assert dm.shares(1, 2, rolled) == {"1": 100}
    with pytest.raises(dm.Illegal):
        dm.apply(rolled, "rollback", STEPS)


def test_first_deployment_and_direct_take_everything() -> None:
    assert dm.start("canary", None, STEPS, has_stable=False).status == "completed"
    assert dm.shares(None, 3, dm.start("direct", None, STEPS, True)) == {"3": 100}


# --- through the services and the CLI ----------------------------------------


def train_credit(ws: Workspace, tmp_path: Path, count: int = 2, rows: int | None = None) -> None:
    """Credit models trained from recipes on the repository's credit data (or
    its first `rows` rows)."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    if rows is None:
        shutil.copy(REPO / "data" / "credit.csv", data / "credit.csv")
    else:
        lines = (REPO / "data" / "credit.csv").read_text().splitlines(keepends=True)
        (data / "credit.csv").write_text("".join(lines[: rows + 1]))
    for i, (cls, params) in enumerate(ESTIMATORS[:count]):
        recipe = tmp_path / f"credit-{i}.toml"
        recipe.write_text(CREDIT_RECIPE.format(cls=cls, params=params))
        ok(ws.cli("train", str(recipe), as_="alice"))


def staff(ws: Workspace) -> None:
    for name, role in (
        ("alice", "developer"),
        ("victor", "validator"),
        ("bob", "reviewer"),
        ("dora", "deployer"),
        ("rita", "risk-officer"),
    ):
        ok(ws.cli("user", "add", name, "--role", role))
    ok(ws.cli("model", "create", "credit", as_="alice"))


def to_stage(ws: Workspace, ref: str, stage: str) -> None:
    ctx = ws.ctx
    gates.request(ctx("alice"), ref, stage)
    gates.decide(ctx("victor" if stage == "staging" else "bob"), ref, stage, "approve")
    gates.promote(ctx("dora"), ref, stage)


@pytest.fixture
def serving(ws: Workspace, tmp_path: Path) -> Workspace:
    """credit:1 and credit:2 in production (v2 archived v1), v1 serving."""
    return serve_credit(ws, tmp_path)


def serve_credit(ws: Workspace, tmp_path: Path, rows: int | None = None) -> Workspace:
    staff(ws)
    train_credit(ws, tmp_path, rows=rows)
    from cmi_console.services import validations

    for ref in ("credit:1", "credit:2"):
        validations.validate(ws.ctx("alice"), ref, suite="staging")
        to_stage(ws, ref, "staging")
        validations.validate(ws.ctx("alice"), ref, suite="production")
        to_stage(ws, ref, "production")
        if ref == "credit:1":
            ok(ws.cli("deploy", ref, "--env", "production", "--strategy", "direct", as_="dora"))
    return ws


def test_canary_rollout_is_signed_and_rollback_restores(serving: Workspace) -> None:
    ws = serving
    r = ok(
        ws.cli(
            "deploy",
            "credit:2",
            "--env",
            "production",
            "--strategy",
            "canary",
            "--json",
            as_="dora",
        )
    )
    assert r.json()["shares"] == {"1": 90, "2": 10}
    assert r.json()["statement"]["decision"] == "deploy"
    kserve = ok(
        ws.cli("deploy", "manifest", "credit", "--env", "production", "--format", "kserve")
    ).json()
    assert kserve["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert kserve["metadata"]["name"] == "credit-production"  # a valid name stays as it is
    assert kserve["metadata"]["annotations"]["cmi-console/version"] == "2"
    ok(ws.cli("deploy", "advance", "credit", "--env", "production", as_="dora"))
    # a share outside 1..100 is bad input, as at start (it was "denied", exit 3)
    head = log_head(ws)
    for share in ("101", "0", "-5"):
        r = ws.cli("deploy", "advance", "credit", "--env", "production", "--traffic", share)
        assert (r.code, r.err.strip()) == (2, "cmi: --traffic: must be 1..100"), r.err
    assert log_head(ws) == head
    # only a deployer or an admin moves traffic (exit 3), and an A/B cannot start on top
    assert ws.cli("deploy", "advance", "credit", "--env", "production", as_="alice").code == 3
    r = ws.cli("deploy", "credit:2", "--env", "production", "--strategy", "ab", as_="dora")
    assert r.code == 3 and "roll it back first" in r.err
    r = ok(
        ws.cli(
            "rollback", "credit", "--env", "production", "--reason", "latency", "--json", as_="dora"
        )
    )
    assert r.json()["shares"] == {"1": 100} and r.json()["status"] == "rolled-back"
    assert deployments.manifest(ws.ctx(), "credit", "production")["versions"][0]["version"] == 1
    # a completed rollout rolls back to the version before it
    ok(
        ws.cli(
            "deploy",
            "credit:2",
            "--env",
            "production",
            "--strategy",
            "canary",
            "--traffic",
            "100",
            as_="dora",
        )
    )
    assert deployments.serving(ws.ctx(), "credit", "production")[0]["shares"] == {"2": 100}
    ok(ws.cli("rollback", "credit", "--env", "production", as_="dora"))
    assert deployments.serving(ws.ctx(), "credit", "production")[0]["shares"] == {"1": 100}
    # the same rollback again is a retry, answered: it had gone back one
    # version further (here: refused, there being none)
    again = ok(ws.cli("rollback", "credit", "--env", "production", as_="dora"))
    assert "give another --reason to roll back further" in again.err, again.err
    r = ws.cli("rollback", "credit", "--env", "production", "--reason", "again", as_="dora")
    assert r.code == 3 and "no earlier version" in r.err
    history = ok(ws.cli("deploy", "history", "credit", "--json")).json()
    assert [h["action"] for h in history] == [
        "start",
        "start",
        "advance",
        "rollback",
        "start",
        "rollback",
    ]
    report = verify(ws.ctx())
    assert report.ok, report.findings
    assert report.signatures >= 6


def test_the_same_rollout_started_again_is_answered_with_its_decision(
    serving: Workspace,
) -> None:
    """A CI job's `cmi deploy` retried after its first try had committed
    failed: exit 2 "already serves" for a direct rollout, exit 3 "roll it
    back first" for a canary. Its deployer starting the same again, while
    nothing has happened to the rollout since, is answered with the decision
    signed then; anything else is refused as before."""
    ws = serving
    direct = ["deploy", "credit:1", "--env", "production", "--strategy", "direct", "--json"]
    first_direct = deployments.history(ws.ctx(), "credit")[0]
    again = ok(ws.cli(*direct, as_="dora"))
    assert again.json()["created"] is False
    assert again.json()["deployment"] == first_direct["deployment"]
    assert again.err.startswith(f"note: you started deployment #{first_direct['deployment']} ")
    canary = ["deploy", "credit:2", "--env", "production", "--strategy", "canary"]
    asked = [*canary, "--traffic", "20", "--comment", "pipeline 81", "--json"]
    first = ok(ws.cli(*asked, as_="dora")).json()
    assert first["created"] is True
    head = log_head(ws)
    again = ok(ws.cli(*asked, as_="dora"))
    assert again.json() == {
        **first,
        "created": False,
        "seq": head[0],
        "time": again.json()["time"],
    }
    assert again.err.strip().endswith(f"entry #{head[0]}); nothing written")
    for other, as_ in (
        (["--traffic", "30", "--comment", "pipeline 81"], "dora"),
        (["--traffic", "20"], "dora"),
        (["--traffic", "20", "--comment", "pipeline 81"], "root"),  # the admin
    ):
        r = ws.cli(*canary, *other, as_=as_)
        assert r.code == 3 and "roll it back first" in r.err, r.err
    assert ws.cli(*direct, as_="dora").code == 3  # a rollout is in progress
    assert log_head(ws) == head
    ok(ws.cli("deploy", "advance", "credit", "--env", "production", as_="dora"))
    r = ws.cli(*asked, as_="dora")  # the rollout moved on since: no retry
    assert r.code == 3 and "roll it back first" in r.err, r.err
    assert verify(ws.ctx()).ok


def test_a_rollout_step_retried_is_answered_not_taken_twice(serving: Workspace) -> None:
    """A pipeline's step retried after its first try had committed: `pause`,
    `resume` and `complete` failed (exit 3, "already paused", "no deployment
    in progress"), `advance --traffic 50` at 50% failed, and a rollback went
    back one version further. The same step by its deployer, while it is
    still the last thing that happened to the traffic, is answered with the
    decision signed then. An advance to the next step is a step each time."""
    ws = serving
    ok(ws.cli("deploy", "credit:2", "--env", "production", "--strategy", "canary", as_="dora"))
    env = ("credit", "--env", "production")
    # an advance without --traffic is the next step each time
    for share in (25, 50):
        out = ok(ws.cli("deploy", "advance", *env, "--json", as_="dora")).json()
        assert out["created"] is True and out["shares"]["2"] == share, out
    for step in (
        ("advance", *env, "--traffic", "75", "--reason", "p95 fine"),
        ("pause", *env, "--reason", "weekend"),
        ("resume", *env),
        ("complete", *env, "--reason", "done"),
    ):
        first = ok(ws.cli("deploy", *step, "--json", as_="dora")).json()
        head = log_head(ws)
        again = ok(ws.cli("deploy", *step, "--json", as_="dora"))
        assert again.json() == {
            **first,
            "created": False,
            "seq": head[0],
            "time": again.json()["time"],
        }, step
        assert again.err == (
            f"note: you made this {step[0]} of deployment #{first['deployment']} already "
            f"(entry #{head[0]}); nothing written\n"
        ), again.err
        assert log_head(ws) == head
        if step[0] == "pause":  # by another, or for another reason: refused as before
            r = ws.cli("deploy", "pause", *env, "--reason", "other", as_="dora")
            assert r.code == 3 and "already paused" in r.err, r.err
            r = ws.cli("deploy", "pause", *env, "--reason", "weekend", as_="root")
            assert r.code == 3 and "already paused" in r.err, r.err
    history = [h["action"] for h in ok(ws.cli("deploy", "history", "credit", "--json")).json()]
    assert history[-7:] == ["start", "advance", "advance", "advance", "pause", "resume", "complete"]
    assert verify(ws.ctx()).ok


def test_only_the_policys_stage_serves(serving: Workspace, tmp_path: Path) -> None:
    ws = serving
    from cmi_console.services import validations

    train_credit_more(ws, tmp_path)
    # credit:3 is in development: production refuses it (exit 3), nothing written
    before = ok(ws.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"]
    r = ws.cli("deploy", "credit:3", "--env", "production", "--strategy", "canary", as_="dora")
    assert r.code == 3 and "development" in r.err and r.err.count("\n") == 1
    assert ok(ws.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] == before
    validations.validate(ws.ctx("alice"), "credit:3", suite="staging")
    to_stage(ws, "credit:3", "staging")
    # a staging version may shadow production (it takes no traffic), not canary
    assert (
        ws.cli("deploy", "credit:3", "--env", "production", "--strategy", "canary", as_="dora").code
        == 3
    )
    ok(ws.cli("deploy", "credit:3", "--env", "production", "--strategy", "shadow", as_="dora"))
    assert ws.cli("deploy", "advance", "credit", "--env", "production", as_="dora").code == 3
    # the list says who serves and who only sees copies, and when, to the second
    listed = ok(ws.cli("deploy", "list", "--open")).out
    assert re.search(r"v\d+ 100%; v3 mirrored 100%", listed), listed
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", listed), listed
    for bad in (["--env", "moon"], ["--strategy", "yolo"], ["--traffic", "0"]):
        args = {"--env": "production", "--strategy": "canary", **dict([bad])}
        r = ws.cli("deploy", "credit:2", *[x for kv in args.items() for x in kv], as_="dora")
        assert r.code == 2, (bad, r.err)


def train_credit_more(ws: Workspace, tmp_path: Path) -> None:
    recipe = tmp_path / "credit-2.toml"
    recipe.write_text(
        CREDIT_RECIPE.format(cls="sklearn.tree.DecisionTreeClassifier", params="{ max_depth = 4 }")
    )
    ok(ws.cli("train", str(recipe), as_="alice"))


def test_retiring_a_serving_version_ends_its_deployment(serving: Workspace) -> None:
    ws = serving
    ok(ws.cli("deploy", "credit:2", "--env", "production", "--strategy", "blue-green", as_="dora"))
    ok(ws.cli("deploy", "advance", "credit", "--env", "production", as_="dora"))
    gates.request(ws.ctx("alice"), "credit:1", "retired")
    gates.decide(ws.ctx("rita"), "credit:1", "retired", "approve")
    # v1 is the blue side of an open rollout: a rollback would need it
    r = ws.cli("retire", "credit:1", "--reason", "superseded", as_="dora")
    assert r.code == 3 and "rollout #2" in r.err
    ok(ws.cli("deploy", "complete", "credit", "--env", "production", as_="dora"))
    gates.retire(ws.ctx("dora"), "credit:1", "superseded")
    # v1 no longer serves and can no longer be rolled back to
    r = ws.cli("rollback", "credit", "--env", "production", as_="dora")
    assert r.code == 3
    assert deployments.serving(ws.ctx(), "credit", "production")[0]["shares"] == {"2": 100}
    assert verify(ws.ctx()).ok


def test_a_forged_traffic_row_is_named_by_verify(serving: Workspace) -> None:
    ws = serving
    ok(ws.cli("deploy", "credit:2", "--env", "production", "--strategy", "canary", as_="dora"))
    ctx = ws.ctx()
    from sqlalchemy import text

    with ctx.engine.begin() as conn:
        conn.execute(text("UPDATE deployments SET traffic = 100 WHERE id = 2"))
        conn.execute(
            text("UPDATE deployment_events SET shares = :s WHERE id = 2"), {"s": '{"2": 100}'}
        )
    report = verify(ctx)
    named = {(f.table, f.row_id) for f in report.findings}
    assert ("deployments", 2) in named and ("deployment_events", 2) in named


def test_a_policy_that_drops_an_environment_something_serves_is_refused(
    serving: Workspace, tmp_path: Path
) -> None:
    """A policy without the environment a rollout runs in left that rollout
    unable to complete, to roll back or to be rolled back by monitoring
    ("--env: unknown environment"): activation is refused while anything
    serves there, and allowed once nothing does."""
    ws = serving
    renamed = (
        (REPO / "policies" / "default.toml")
        .read_text()
        .replace('environments = ["production"]', 'environments = ["live"]')
        .replace("[environments.production", "[environments.live")
    )
    policy = tmp_path / "renamed.toml"
    policy.write_text(renamed)
    ok(ws.cli("policy", "check", str(policy)))
    ok(ws.cli("deploy", "credit:2", "--env", "production", "--strategy", "canary", as_="dora"))
    for rollout_open in (True, False):
        head = log_head(ws)
        r = ws.cli("policy", "activate", str(policy), as_="rita")
        assert r.code == 2 and r.err.count("\n") == 1, r.err
        assert "environments: no 'production' for credit, where deployment #2 serves" in r.err
        assert log_head(ws) == head
        if rollout_open:  # the rollout can still end, either way
            ok(ws.cli("deploy", "complete", "credit", "--env", "production", as_="dora"))
    # nothing serves production once its versions are retired
    for ref in ("credit:1", "credit:2"):
        gates.request(ws.ctx("alice"), ref, "retired")
        gates.decide(ws.ctx("rita"), ref, "retired", "approve")
        gates.retire(ws.ctx("dora"), ref, "environment decommissioned")
    ok(ws.cli("policy", "activate", str(policy), as_="rita"))
    assert verify(ws.ctx()).ok


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", fullmatch=True), min_size=2, max_size=2
    ),
    st.lists(
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", fullmatch=True), min_size=2, max_size=2
    ),
)
def test_a_manifest_name_is_one_kserve_takes_and_tells_models_apart(
    one: list[str], other: list[str]
) -> None:
    """KServe takes an InferenceService name only as a DNS-1035 label short
    enough for its children's names; ours may hold capitals, '.', '_', start
    with a digit and run to 100 characters: `Credit_Risk.v2-production` was
    written as it is, and `kubectl apply` refused it."""
    name = dm.k8s_name(*one)
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= dm.K8S_NAME_MAX
    joined = "-".join(one)
    if re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", joined) and len(joined) <= dm.K8S_NAME_MAX:
        assert name == joined
    if joined != "-".join(other):
        assert name != dm.k8s_name(*other)


def test_as_of_names_the_traffic_and_whose_step_set_it(serving: Workspace, tmp_path: Path) -> None:
    """`registry as-of` and the incident report said which version held the
    production slot, and who put it there, but not that a canary was taking
    a quarter of the traffic, nor whose step had set that: during a rollout
    the traffic is what was serving, and the investigator's question."""
    ws = serving
    [direct] = ok(ws.cli("audit", "log", "--action", "deploy.start", "--json")).json()
    started = direct["seq"]  # credit:1's direct deployment
    ok(ws.cli("deploy", "credit:2", "--env", "production", "--strategy", "canary", as_="dora"))
    ok(ws.cli("deploy", "advance", "credit", "--env", "production", "--reason", "p99 ok"))
    advanced = log_head(ws)[0]
    assert ok(ws.cli("audit", "show", str(advanced), "--json")).json()["entry"]["action"] == (
        "deploy.advance"
    )
    incident = ok(
        ws.cli("incident", "open", "credit", "--title", "approvals down", "--json", as_="dora")
    ).json()["incident"]
    r = ok(ws.cli("registry", "as-of", "2100-01-01", "--json"))
    traffic = r.json()["models"][0]["traffic"]["production"]
    assert traffic["shares"] == {"1": 75, "2": 25} and traffic["reason"] == "p99 ok"
    assert traffic["set_by"]["seq"] == advanced and traffic["set_by"]["actor"] == "root"
    line = next(
        ln
        for ln in ok(ws.cli("registry", "as-of", "2100-01-01")).out.splitlines()
        if ln.startswith("credit traffic in production: ")
    )
    assert re.fullmatch(
        rf"credit traffic in production: v1 75%, v2 25% since \S+Z, set by root #{advanced} "
        r"deploy.advance: p99 ok",
        line,
    ), line
    # before the canary: the direct deployment's step, with no reason given
    before = ok(ws.cli("registry", "as-of", direct["time"])).out
    assert re.search(
        rf"^credit traffic in production: v1 100% since \S+, set by dora #{started} deploy.start$",
        before,
        re.M,
    ), before
    # the investigation report carries the same line
    out = tmp_path / "report.md"
    ok(ws.cli("incident", "report", str(incident), "--out", str(out)))
    text = out.read_text()
    assert "## Traffic when it happened" in text
    assert "| production | v1 75%, v2 25% since " in text
    assert f"set by root #{advanced} deploy.advance: p99 ok |" in text


def test_as_of_words_a_shadow_as_cmi_deploy_does(serving: Workspace) -> None:
    """The as-of table called a mirror "production shadow 100%" and the
    line under it (as `cmi deploy` does) "mirroring to": one output, two
    words for one thing."""
    ws = serving
    ok(ws.cli("deploy", "credit:2", "--env", "production", "--strategy", "shadow", as_="dora"))
    out = ok(ws.cli("registry", "as-of", "2100-01-01")).out
    assert "production mirrored 100%" in out and "shadow 100%" not in out
    assert re.search(
        r"^credit traffic in production: v1 100%; mirroring to v2 100% since \S+, set by dora "
        r"#\d+ deploy\.start$",
        out,
        re.M,
    ), out
