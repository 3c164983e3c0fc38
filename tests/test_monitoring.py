"""Monitoring: windows measured against the training reference, late labels,
triggers that fire exactly when they should, canary auto-rollback, retraining
that waits for approval, and zombies. Real models on the repository's credit
windows (data/windows), which drift a little more each week."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, Result, Workspace
from gate_helpers import ok
from test_deployments import serve_credit, serving  # noqa: F401  (the fixture)

from cmi_console.core import clock
from cmi_console.services import deployments, monitoring, policies
from cmi_console.services.verify import verify

WINDOWS = REPO / "data" / "windows"
POLICY = """model = "credit"
[monitoring.triggers.performance]
min = { roc_auc = 0.65 }
windows = 2
[monitoring.triggers.drift]
share = 0.25
windows = 2
[environments.production]
stages = ["production"]
shadow_stages = ["staging", "production"]
[environments.production.auto_rollback]
max = { error_rate = 0.5 }
"""


def week(n: int) -> Path:
    return WINDOWS / f"credit-week-{n:02d}.csv"


@pytest.fixture
def watched(serving: Workspace, tmp_path: Path) -> Workspace:  # noqa: F811
    policy = tmp_path / "credit-policy.toml"
    policy.write_text(POLICY)
    policies.activate(serving.ctx(), policy)
    return serving


def ingest(ws: Workspace, path: Path, **kw: object) -> dict:  # type: ignore[type-arg]
    return monitoring.ingest(ws.ctx("alice"), "credit", "production", path, predict=True, **kw)


def test_drift_per_window_follows_the_known_shift(watched: Workspace, tmp_path: Path) -> None:
    base = ingest(watched, week(1))
    assert base["summary"]["1"]["drift_share"] == 0.0
    shifted = pd.read_csv(week(1))
    shifted["income"] *= 2.0  # a known shift of one of the eight features
    shifted["debt_ratio"] = (shifted["debt_ratio"] + 0.3).clip(0, 1)
    path = tmp_path / "shifted.csv"
    shifted.to_csv(path, index=False)
    w = monitoring.show_window(watched.ctx(), "credit", ingest(watched, path)["window"])
    drifted = {c["column"] for c in w["metrics"]["drift"]["columns"] if c["drifted"]}
    assert drifted == {"income", "debt_ratio"}
    assert w["summary"]["1"]["drift_share"] == 0.25
    # the same rows again are the window already ingested: scored the same
    # way (deterministic), they are stored under the same hash
    again = ingest(watched, path)
    assert (again["window"], again["created"], again["result_sha256"]) == (
        w["window"],
        False,
        w["result_sha256"],
    )


@pytest.mark.parametrize("predict", [True, False])
def test_the_same_window_again_is_answered_not_counted_twice(
    watched: Workspace, tmp_path: Path, predict: bool
) -> None:
    """A CI job's retry (or a copy of the file) had made a second window of
    the same rows: counted twice toward a trigger's windows in a row and a
    comparison's sample. It is answered with the window; nothing is written."""
    path = week(3)
    if not predict:  # a window that brings its predictions is stored as given
        frame = pd.read_csv(week(3))
        frame["prediction"] = 0
        path = tmp_path / "given.csv"
        frame.to_csv(path, index=False)
    args = ["monitor", "ingest", "credit", "--env", "production", "--window"]
    flags = ["--predict"] * predict
    first = ok(watched.cli(*args, str(path), *flags, "--json", as_="alice")).json()
    copy = tmp_path / "retry.csv"
    copy.write_bytes(path.read_bytes())
    head = ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"]
    r = ok(watched.cli(*args, str(copy), *flags, "--json", as_="alice"))
    assert (r.json()["window"], r.json()["created"], first["created"]) == (
        first["window"],
        False,
        True,
    )
    assert r.err.strip() == (
        f"note: this data was ingested already, as window {first['window']} "
        f"('{path.name}', {clock.shown(first['created_at'])}); nothing written"
    )
    assert ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] == head


def test_late_labels_update_performance(watched: Workspace, tmp_path: Path) -> None:
    from sklearn.metrics import roc_auc_score

    frame = pd.read_csv(week(2))
    inputs, labels = tmp_path / "inputs.csv", tmp_path / "labels.csv"
    frame.drop(columns=["default"]).to_csv(inputs, index=False)
    frame[["default"]].to_csv(labels, index=False)
    w = ingest(watched, inputs)
    assert "roc_auc" not in w["summary"]["1"] and not w["labelled"]
    attach = ["monitor", "labels", "credit", "--window", str(w["window"]), "--file", str(labels)]
    r = ok(watched.cli(*attach, "--json", as_="alice")).json()
    shown = monitoring.show_window(watched.ctx(), "credit", w["window"])
    stored = monitoring._load_frame(watched.ctx(), shown["data_sha256"], "parquet")
    expected = roc_auc_score(frame["default"], stored["score"])
    assert r["summary"]["1"]["roc_auc"] == pytest.approx(expected, abs=1e-9)
    assert r["result_sha256"] != w["result_sha256"] and r["labelled"] and r["created"]
    # the same labels again (a CI job's retry) measured the same and logged
    # a second monitor.labels entry; they change nothing, so nothing is written
    head = ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"]
    again = watched.cli(*attach, "--json", as_="alice")
    assert again.code == 0 and again.json()["created"] is False
    assert again.json()["result_sha256"] == r["result_sha256"]
    assert again.err.strip() == (
        f"note: window {w['window']} has these labels already; nothing written"
    )
    assert ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] == head
    short = tmp_path / "short.csv"
    frame[["default"]].head(10).to_csv(short, index=False)
    bad = watched.cli(*attach[:-1], str(short), as_="alice")
    assert bad.code == 2 and "10 labels for a window of 1000 rows" in bad.err
    assert verify(watched.ctx()).ok


def test_late_labels_join_the_labels_given_at_ingest(watched: Workspace, tmp_path: Path) -> None:
    """A window ingested with half its labels, the rest joined on a key: the
    key join had set the first half's labels to nothing."""
    from sklearn.metrics import accuracy_score

    frame = pd.read_csv(week(2)).reset_index(names="id")
    half = len(frame) // 2
    inputs = tmp_path / "inputs.csv"
    frame.assign(default=frame["default"].where(frame.index < half)).to_csv(inputs, index=False)
    w = ingest(watched, inputs)["window"]

    def attach(name: str, part: pd.DataFrame) -> Result:
        path = tmp_path / name
        part.to_csv(path, index=False)
        args = ["--window", str(w), "--file", str(path), "--key", "id", "--json"]
        return watched.cli("monitor", "labels", "credit", *args, as_="alice")

    both = ok(attach("rest.csv", frame[["id", "default"]].tail(len(frame) - half))).json()
    shown = monitoring.show_window(watched.ctx(), "credit", w)
    stored = monitoring._load_frame(watched.ctx(), shown["data_sha256"], "parquet")
    assert both["summary"]["1"]["accuracy"] == pytest.approx(
        accuracy_score(frame["default"], stored["prediction"]), abs=1e-9
    )
    # a file that labels nothing is refused, not recorded as a new measurement
    head = ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"]
    none = attach("none.csv", frame[["id"]].assign(id=frame["id"] + 10_000, default=0))
    assert none.code == 2 and "none of its 1000 keys is in the window" in none.err
    empty = attach("empty.csv", frame[["id"]].assign(default=None))
    assert empty.code == 2 and "default: no labels (the column is empty)" in empty.err
    assert ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] == head


def test_late_labels_say_how_they_joined(watched: Workspace, tmp_path: Path) -> None:
    """Labels whose keys are in no row of the window (typed in another form,
    meant for another window) were dropped without a word while the window
    showed as labelled: the output and the log now count them."""
    frame = pd.read_csv(week(2)).reset_index(names="id")
    inputs = tmp_path / "inputs.csv"
    frame.assign(default=frame["default"].where(frame.index < 500)).to_csv(inputs, index=False)
    w = ingest(watched, inputs)["window"]
    # 300 of the 500 rows still unlabelled, and 50 keys the window does not have
    part = pd.concat(
        [
            frame[["id", "default"]].iloc[500:800],
            frame[["id", "default"]].head(50).assign(id=lambda f: f["id"] + 5000),
        ]
    )
    path = tmp_path / "labels.csv"
    part.to_csv(path, index=False)
    window = ["monitor", "labels", "credit", "--window", str(w)]
    args = [*window, "--file", str(path), "--key", "id"]
    out = ok(watched.cli(*args, "--json", as_="alice")).json()
    assert out["join"] == {
        "given": 350,
        "from_file": 300,
        "unknown_keys": 50,
        "labelled": 800,
        "unlabelled": 200,
    }
    entry = ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]
    assert entry["action"] == "monitor.labels"
    assert entry["data"]["labelled"] == 800 and entry["data"]["unknown_keys"] == 50
    text = ok(watched.cli(*args, as_="alice")).out
    assert (
        "labels: 350 in the file, 300 row(s) labelled from it, 50 key(s) not in the window; "
        "200 of 1000 row(s) still without a label"
    ) in " ".join(text.split())
    # by position every label lands on a row: no key count
    labels = tmp_path / "all.csv"
    frame[["default"]].to_csv(labels, index=False)
    by_row = ok(watched.cli(*window, "--file", str(labels), "--json", as_="alice")).json()
    assert by_row["join"]["unknown_keys"] is None and by_row["join"]["unlabelled"] == 0
    # a missing file is named once, after the option (it was named twice)
    nope = tmp_path / "nope.csv"
    gone = watched.cli(*window, "--file", str(nope), as_="alice")
    assert gone.code == 2 and gone.err.strip() == f"cmi: --file: {nope}: no such file"


def _alerts(ws: Workspace, kind: str) -> list[dict]:  # type: ignore[type-arg]
    return [a for a in monitoring.status(ws.ctx(), "credit")["alerts"] if a["kind"] == kind]


def test_triggers_fire_exactly_when_they_should(watched: Workspace) -> None:
    """Week by week, evaluated after each window: drift (share >= 0.25 for two
    windows) fires at week 4, not 3; performance (AUC < 0.65 for two windows)
    fires at week 7: week 3 dips alone, week 6 is the first of the two."""
    fired: dict[str, int] = {}
    aucs = []
    for n in range(1, 9):
        ingest(watched, week(n))
        out = monitoring.evaluate(watched.ctx("alice"), "credit", "production")
        for a in out["alerts"]:
            fired.setdefault(a["kind"], n)
        aucs.append(monitoring.status(watched.ctx(), "credit")["trends"]["1"]["roc_auc"][-1])
    below = [n for n, auc in enumerate(aucs, start=1) if auc < 0.65]
    first_pair = next(n for n in below if n - 1 in below)
    assert fired["performance"] == first_pair
    drift = _alerts(watched, "drift")
    assert (
        len(drift) == 1
        and fired["drift"] == drift[0]["windows"][-1]
        and len(drift[0]["windows"]) >= 2
    )
    # one alert per run of bad windows, however often evaluate runs
    assert len(_alerts(watched, "performance")) == 1
    # each alert opened a retraining request, linked to the windows that fired it
    status = monitoring.status(watched.ctx(), "credit")
    assert {r["alert"] for r in status["retrain_requests"]} == {
        a["alert"] for a in status["alerts"]
    }


def test_age_trigger_fires_on_the_day(watched: Workspace) -> None:
    ingest(watched, week(1))
    ctx = watched.ctx("alice")
    born = deployments.list_deployments(ctx, "credit")[0]["created_at"]
    from cmi_console.services import registry

    created = registry.show_version(ctx, "credit:1")["created_at"]
    assert created <= born
    ctx.clock = lambda: clock.add(created, days=179.9)
    assert monitoring.evaluate(ctx, "credit", "production")["alerts"] == []
    ctx.clock = lambda: clock.add(created, days=180.01)
    alerts = monitoring.evaluate(ctx, "credit", "production")["alerts"]
    assert [a["kind"] for a in alerts] == ["age"]
    assert monitoring.evaluate(ctx, "credit", "production")["alerts"] == []  # once
    # closing it twice (a script's retry) is answered; another closing is
    # refused naming the one made
    n = str(alerts[0]["alert"])
    close = ("monitor", "close-alert", n, "--comment", "retrain planned")
    ok(watched.cli(*close, as_="alice"))
    head = ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"]
    again = ok(watched.cli(*close, as_="alice"))
    assert again.err == f"note: you closed alert {n} already; nothing written\n", again.err
    other = watched.cli("monitor", "close-alert", n, "--comment", "noise", as_="dora")
    assert other.code == 2 and other.err == (
        f"cmi: alert {n} is already closed (by alice: retrain planned)\n"
    ), other.err
    assert ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] == head


def test_canary_auto_rollback_fires_on_a_bad_window(watched: Workspace, tmp_path: Path) -> None:
    ok(watched.cli("deploy", "credit:2", "--env", "production", "--strategy", "canary", as_="dora"))
    good = ingest(watched, week(1))
    assert set(good["versions"]) == {1, 2}
    assert (
        monitoring.evaluate(watched.ctx("dora"), "credit", "production")["deployment_actions"] == []
    )
    # the candidate's labels come back inverted: its error rate is far over 0.5
    frame = pd.read_csv(week(2))
    frame["default"] = 1 - frame["default"]
    frame["prediction"] = frame["default"]  # v1 looks perfect...
    frame["version"] = 1
    bad = frame.copy()
    bad["prediction"] = 1 - bad["default"]  # ...and v2 is always wrong
    bad["version"] = 2
    path = tmp_path / "bad.csv"
    pd.concat([frame.head(900), bad.head(100)]).to_csv(path, index=False)
    monitoring.ingest(watched.ctx("alice"), "credit", "production", path)
    # without a deployer's role the breach is raised, and nothing moves
    due = monitoring.evaluate(watched.ctx("alice"), "credit", "production")
    assert [a["action"] for a in due["deployment_actions"]] == ["rollback-due"]
    assert deployments.serving(watched.ctx(), "credit", "production")[0]["shares"] == {
        "1": 90,
        "2": 10,
    }
    out = monitoring.evaluate(watched.ctx("dora"), "credit", "production")
    assert [a["action"] for a in out["deployment_actions"]] == ["rollback"]
    assert "error_rate 1 > 0.5" in out["deployment_actions"][0]["reason"]
    assert deployments.serving(watched.ctx(), "credit", "production")[0]["shares"] == {"1": 100}
    last = deployments.history(watched.ctx(), "credit", "production")[-1]
    assert last["action"] == "rollback" and last["by"] == "dora"
    assert len(_alerts(watched, "canary")) == 1  # one alert for the one bad window
    assert verify(watched.ctx()).ok


def test_shadow_compares_champion_and_challenger(watched: Workspace) -> None:
    ok(watched.cli("deploy", "credit:2", "--env", "production", "--strategy", "shadow", as_="dora"))
    w = ingest(watched, week(3))
    assert w["rows"] == 2000  # every input scored by both
    comp = monitoring.show_window(watched.ctx(), "credit", w["window"])["metrics"]["comparison"]
    assert comp["mode"] == "shadow" and comp["test"] == "mcnemar-exact" and comp["pairs"] == 1000
    assert 0.5 < comp["agreement"] <= 1.0
    assert 0 <= comp["p_value"] <= 1 and comp["sample_size"] == 1000
    if not comp["significant"] and comp["needed"] is not None:
        assert comp["still_needed"] == max(0, comp["needed"] - 1000)
    # the shadow serves nothing: v1 keeps all traffic
    assert deployments.serving(watched.ctx(), "credit", "production")[0]["shares"] == {"1": 100}


def test_a_shadow_windows_input_has_one_truth(watched: Workspace, tmp_path: Path) -> None:
    """One label per row of a shadow window is one per (input, version): two
    different labels for one input had measured the versions against
    different answers. Labels that agree, or one per input, are taken."""
    ok(watched.cli("deploy", "credit:2", "--env", "production", "--strategy", "shadow", as_="dora"))
    frame = pd.read_csv(week(3))
    inputs = tmp_path / "inputs.csv"
    frame.drop(columns=["default"]).to_csv(inputs, index=False)
    w = str(ingest(watched, inputs)["window"])
    truth = frame[["default"]]
    both, wrong = tmp_path / "both.csv", tmp_path / "wrong.csv"
    pd.concat([truth, truth]).to_csv(both, index=False)
    flipped = pd.concat([truth, truth]).reset_index(drop=True)
    flipped.loc[1004, "default"] = 1 - flipped.loc[1004, "default"]
    flipped.to_csv(wrong, index=False)
    head = ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"]
    r = watched.cli("monitor", "labels", "credit", "--window", w, "--file", str(wrong), as_="alice")
    assert r.code == 2, r.err
    assert "the labels in rows 5 and 1005 differ" in r.err and "give one label per input" in r.err
    assert ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] == head
    args = ["monitor", "labels", "credit", "--window", w, "--json"]
    twice = ok(watched.cli(*args, "--file", str(both), as_="alice")).json()
    once = tmp_path / "once.csv"
    truth.to_csv(once, index=False)
    single = ok(watched.cli(*args, "--file", str(once), as_="alice")).json()
    assert twice["summary"] == single["summary"]  # the same truth either way


def test_retrain_produces_a_candidate_that_waits(watched: Workspace, tmp_path: Path) -> None:
    for n in (6, 7):
        ingest(watched, week(n))
    out = ok(
        watched.cli(
            "monitor",
            "evaluate",
            "credit",
            "--env",
            "production",
            "--retrain",
            str(REPO / "data" / "credit-recent.csv"),
            "--json",
            as_="alice",
        )
    ).json()
    assert sorted(a["kind"] for a in out["alerts"]) == ["drift", "performance"]
    # the alert table's rows name the version and kind in their columns: the
    # message, which names them too (it stands alone in the log), is shown
    # without them (it read "credit:1 drift: credit:1 drift: 2 window(s) ...")
    listed = ok(watched.cli("monitor", "alerts", "--json")).json()
    for a in listed:
        opening = f"{a['model']}:{a['version']} {a['kind']}: "
        assert a["message"] == opening + a["detail"] and "in a row" in a["detail"]
    table = ok(watched.cli("monitor", "alerts")).out
    assert "window(s) in a row" in table and f"{listed[0]['model']}:" not in table
    (retrained,) = out["retrained"]  # one candidate answers both requests
    assert sorted(retrained["requests"]) == sorted(a["retrain_request"] for a in out["alerts"])
    assert retrained["requested"] == "staging"
    v = ok(watched.cli("version", "show", retrained["candidate"], "--json")).json()
    assert v["stage"] == "development"  # never promoted by itself
    gate = watched.cli("gate", "status", retrained["candidate"], "--to", "staging", "--json")
    assert gate.code == 1  # blocked until a validator approves
    lineage = ok(watched.cli("lineage", retrained["candidate"], "--up", "--format", "json")).json()
    kinds = {n["kind"] for n in lineage["nodes"].values()}
    assert {"alert", "window"} <= kinds
    status = monitoring.status(watched.ctx(), "credit")
    assert {r["status"] for r in status["retrain_requests"]} == {"trained"}


def test_retrain_on_data_it_cannot_train_on_writes_nothing(
    watched: Workspace, tmp_path: Path
) -> None:
    """The file is trained on before the triggers are applied: a missing
    feature had been found after the alerts and requests were recorded."""
    from cmi_console.core.errors import BadInput
    from cmi_console.store import data_files

    for n in (6, 7):
        ingest(watched, week(n))
    recent = REPO / "data" / "credit-recent.csv"
    bad = tmp_path / "recent.csv"
    pd.read_csv(recent).drop(columns=["income"]).to_csv(bad, index=False)
    head = ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"]
    args = ["monitor", "evaluate", "credit", "--env", "production", "--retrain"]
    r = watched.cli(*args, str(bad), as_="alice")
    assert r.code == 2 and r.err.strip() == (
        f"cmi: {bad}: column(s) income missing: the recipe's data section names them"
    ), r.err
    assert ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] == head
    assert monitoring.open_alerts(watched.ctx()) == []
    out = ok(watched.cli(*args, str(recent), as_="alice"))
    assert "trained credit:3" in out.out and "--retrain: no open" not in out.out
    # nothing left to answer: said, so a scheduled job knows its data went unused
    out = ok(watched.cli(*args, str(recent), as_="alice"))
    assert f"--retrain: no open retraining request; {recent} was not trained on" in out.out
    # the next request about v1 could not be answered with the same data:
    # refused before anything is written, too
    with pytest.raises(
        BadInput,
        match=r"already trained on this data \(gave credit:3, which answered retraining "
        r"request #\d+; run credit-",
    ):
        monitoring._refit(watched.ctx("alice"), "credit:1", data_files.load(recent))


def _stopped_half_way(ws: Workspace, reached: str) -> tuple[str, list[int]]:
    """An evaluation that opened retraining requests, and a retraining that
    stopped after `reached` (a killed job, the database gone): the steps
    `monitor evaluate --retrain` takes, through the same services."""
    from cmi_console.services import gates, training, validations
    from cmi_console.store import data_files

    for n in (6, 7):
        ingest(ws, week(n))
    opened = ok(ws.cli("monitor", "evaluate", "credit", "--env", "production", "--json"))
    requests = sorted(a["retrain_request"] for a in opened.json()["alerts"])
    base = f"credit:{monitoring.status(ws.ctx(), 'credit')['retrain_requests'][0]['version']}"
    alice = ws.ctx("alice")
    fitted = training.fit_retrain(alice, base, data_files.load(REPO / "data" / "credit-recent.csv"))
    trained = training.register_retrain(alice, base, fitted)
    ref = f"credit:{trained['version']}"
    if reached in ("validated", "requested", "rejected", "retired"):
        validations.validate(alice, ref)
    if reached in ("requested", "rejected"):
        gates.request(alice, ref, "staging")
    if reached == "rejected":
        gates.decide(ws.ctx("victor"), ref, "staging", "reject", "not good enough")
    if reached == "retired":
        gates.request(ws.ctx("dora"), ref, "retired")
        gates.decide(ws.ctx("rita"), ref, "retired", "approve", "withdrawn by its team")
        gates.retire(ws.ctx("dora"), ref, "withdrawn by its team")
    return ref, requests


@pytest.mark.parametrize("reached", ["registered", "validated", "requested"])
def test_a_retraining_stopped_half_way_is_finished_by_the_next_run(
    watched: Workspace, reached: str
) -> None:
    """Its candidate was registered, its requests left open: the same data
    gives the same run, so the next run with it had been refused ("already
    trained on this data") and the requests could not be answered. It now
    finishes what is missing, and repeats nothing."""
    from cmi_console.services import gates, validations

    ref, requests = _stopped_half_way(watched, reached)
    runs_before = len(validations.list_runs(watched.ctx(), ref))
    recent = str(REPO / "data" / "credit-recent.csv")
    args = ["monitor", "evaluate", "credit", "--env", "production", "--retrain", recent]
    out = ok(watched.cli(*args, "--json", as_="alice")).json()
    (retrained,) = out["retrained"]
    assert retrained["candidate"] == ref and retrained["resumed"] is True
    assert sorted(retrained["requests"]) == requests
    assert retrained["validation"] == "pass" and retrained["requested"] == "staging"
    versions = ok(watched.cli("version", "list", "credit", "--json")).json()
    assert max(v["version"] for v in versions) == int(ref.split(":")[1])  # no new version
    # validated once, requested once
    assert len(validations.list_runs(watched.ctx(), ref)) == max(runs_before, 1)
    asked = gates.latest_request(watched.ctx(), ref, "staging")
    assert asked is not None and asked["status"] == "open"
    status = monitoring.status(watched.ctx(), "credit")
    assert {(r["status"], r["candidate"]) for r in status["retrain_requests"]} == {
        ("trained", int(ref.split(":")[1]))
    }
    assert verify(watched.ctx()).ok
    again = ok(watched.cli(*args, as_="alice"))
    assert "--retrain: no open retraining request" in again.out


@pytest.mark.parametrize(
    ("reached", "why"),
    [("rejected", r"whose request #\d+ to staging was rejected"), ("retired", "which was retired")],
)
def test_a_candidate_rejected_or_retired_answers_no_request(
    watched: Workspace, reached: str, why: str
) -> None:
    ref, _ = _stopped_half_way(watched, reached)
    head = ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"]
    recent = REPO / "data" / "credit-recent.csv"
    args = ["monitor", "evaluate", "credit", "--env", "production", "--retrain", str(recent)]
    r = watched.cli(*args, as_="alice")
    assert r.code == 2 and r.out == "", r.out
    assert re.fullmatch(
        rf"cmi: {recent}: the recipe of credit:\d+ was already trained on this data "
        rf"\(gave {ref}, {why}; run credit-\S+\); give newer data\n",
        r.err,
    ), r.err
    assert ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] == head


def test_retrain_by_someone_who_may_not_register_writes_nothing(watched: Workspace) -> None:
    """A deployer and a validator may evaluate, but --retrain registers,
    validates and requests: they had the evaluation recorded (alerts and
    requests) and were refused only at the registration."""
    for n in (6, 7):
        ingest(watched, week(n))
    head = ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"]
    recent = str(REPO / "data" / "credit-recent.csv")
    args = ["monitor", "evaluate", "credit", "--env", "production"]
    for who, role in (("dora", "deployer"), ("victor", "validator")):
        r = watched.cli(*args, "--retrain", recent, as_=who)
        assert r.code == 3 and r.out == "", (r.out, r.err)
        assert r.err == (
            f"cmi: {who}: --retrain (register, validate, request) needs role admin or "
            f"developer (holds: {role})\n"
        )
        assert ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] == head
        assert monitoring.open_alerts(watched.ctx()) == []
    # without --retrain the deployer evaluates as before
    out = ok(watched.cli(*args, "--json", as_="dora")).json()
    assert sorted(a["kind"] for a in out["alerts"]) == ["drift", "performance"]


def test_zombies(watched: Workspace) -> None:
    ctx = watched.ctx("alice")
    assert monitoring.zombies(ctx) == []
    ctx.clock = lambda: clock.add(clock.utc_now(), days=8)
    (z,) = monitoring.zombies(ctx)
    assert (z["model"], z["version"], z["traffic"]) == ("credit", 1, 100)
    assert "no monitoring for 8 days" in z["reasons"][0]
    r = watched.cli("monitor", "zombies", "--json")
    assert r.code == 0  # the real clock: deployed today
    ingest(watched, week(1))
    ctx.clock = lambda: clock.add(clock.utc_now(), days=3)
    assert monitoring.zombies(ctx) == []


def test_bad_windows_get_one_line_and_write_nothing(watched: Workspace, tmp_path: Path) -> None:
    head = ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"]
    frame = pd.read_csv(week(1))
    cases = {
        "nofeature.csv": (frame.drop(columns=["income"]), "missing feature column(s) income"),
        "noprediction.csv": (frame, "no 'prediction' column"),
        "badversion.csv": (frame.assign(prediction=0, version=9), "version: 9 does not serve"),
        # a KPI's mean of inf has no JSON form: an internal error
        "kpi-inf.csv": (
            frame.assign(prediction=0, revenue=[np.inf if i == 2 else 1.0 for i in frame.index]),
            ":4: revenue: 'inf' is not a finite number",
        ),
        # astype(int) read 1.5 as version 1, and 25 digits overflowed (an internal error)
        "halfversion.csv": (
            frame.assign(prediction=0, version=[1.5 if i == 3 else 1 for i in range(len(frame))]),
            ":5: version: '1.5' is not a version number",
        ),
        "hugeversion.csv": (
            frame.assign(prediction=0, version=["9" * 25 if i == 0 else "1" for i in frame.index]),
            f":2: version: '{'9' * 25}' is not a version number",
        ),
        "noversion.csv": (
            frame.assign(prediction=0, version=[None if i == 1 else 1 for i in frame.index]),
            ":3: version: '' is not a version number",
        ),
        "badtime.csv": (frame.assign(prediction=0, timestamp="soon"), ":2: timestamp: 'soon'"),
        # pandas read epoch seconds as nanoseconds (a window in January 1970)
        "epoch.csv": (
            frame.assign(prediction=0, timestamp=1760832529),
            ":2: timestamp: '1760832529' is not an ISO 8601 time",
        ),
        # and '-1' as the year -1: an internal error
        "year-1.csv": (
            frame.assign(prediction=0, timestamp=frame["timestamp"].where(frame.index != 2, "-1")),
            ":4: timestamp: '-1' is not an ISO 8601 time",
        ),
        "badscore.csv": (frame.assign(prediction=0, score=2.0), "score: must be probabilities"),
        "badnumber.csv": (
            frame.assign(income=frame["income"].astype(str).where(frame.index != 4, "lots")),
            ":6: income: 'lots' is not a number",
        ),
        "badclass.csv": (frame.assign(prediction="yes"), ":2: prediction: 'yes' is not a class"),
        # a cell is named by 80 characters, not all 5,000
        "long.csv": (
            frame.assign(income=frame["income"].astype(str).where(frame.index != 4, "x" * 5000)),
            f":6: income: '{'x' * 79}…' is not a number",
        ),
        "badlabel.csv": (frame.assign(prediction=0, default=7), "default: '7' is not a class"),
        # internal errors before: an infinite value reached the drift tests
        "inf.csv": (
            frame.assign(prediction=0, income=frame["income"].where(frame.index != 2, np.inf)),
            ":4: income: 'inf' is not a finite number",
        ),
        # an internal error before ("No objects to concatenate")
        "norows.csv": (frame.head(0).assign(prediction=0), "norows.csv: no rows"),
    }
    for name, (f, message) in cases.items():
        path = tmp_path / name
        f.to_csv(path, index=False)
        r = watched.cli(
            "monitor", "ingest", "credit", "--env", "production", "--window", str(path), as_="alice"
        )
        assert r.code == 2 and message in r.err and r.err.count("\n") == 1, (name, r.err)
    r = watched.cli(
        "monitor",
        "ingest",
        "credit",
        "--env",
        "nowhere",
        "--window",
        str(week(1)),
        "--predict",
        as_="alice",
    )
    assert r.code == 2 and "unknown environment" in r.err
    # an empty cell the serving model (a logistic regression) takes no NaN for
    empty = tmp_path / "empty.csv"
    frame.assign(income=frame["income"].where(frame.index != 3)).to_csv(empty, index=False)
    r = watched.cli(
        "monitor",
        "ingest",
        "credit",
        "--env",
        "production",
        "--window",
        str(empty),
        "--predict",
        as_="alice",
    )
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert "empty.csv: version 1 cannot score these rows: Input X contains NaN" in r.err
    assert ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] == head
    w = ingest(watched, week(1))  # a good window, then bad labels for it
    labels = tmp_path / "labels.csv"
    frame[["default"]].assign(default="maybe").to_csv(labels, index=False)
    r = watched.cli(
        "monitor",
        "labels",
        "credit",
        "--window",
        str(w["window"]),
        "--file",
        str(labels),
        as_="alice",
    )
    assert r.code == 2 and "default: 'maybe' is not a class" in r.err
    assert ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] == head + 1


def test_canary_auto_advances_after_healthy_windows(watched: Workspace, tmp_path: Path) -> None:
    policy = tmp_path / "advance.toml"
    text = POLICY.replace(
        'shadow_stages = ["staging", "production"]\n',
        'shadow_stages = ["staging", "production"]\nauto_advance_windows = 2\n',
    )
    policy.write_text(text)
    policies.activate(watched.ctx(), policy)
    ok(watched.cli("deploy", "credit:2", "--env", "production", "--strategy", "canary", as_="dora"))
    ingest(watched, week(1))
    assert (
        monitoring.evaluate(watched.ctx("dora"), "credit", "production")["deployment_actions"] == []
    )
    ingest(watched, week(2))  # the second healthy window at 10%
    out = monitoring.evaluate(watched.ctx("dora"), "credit", "production")
    assert [a["action"] for a in out["deployment_actions"]] == ["advance"]
    assert out["deployment_actions"][0]["shares"] == {"1": 75, "2": 25}
    # a step resets the count: the next window alone does not advance again
    ingest(watched, week(1))
    assert (
        monitoring.evaluate(watched.ctx("dora"), "credit", "production")["deployment_actions"] == []
    )
    assert verify(watched.ctx()).ok


@pytest.mark.filterwarnings("error::RuntimeWarning")  # the CLI would print it
def test_ab_split_comparison_kpis_and_parquet(watched: Workspace, tmp_path: Path) -> None:
    ok(
        watched.cli(
            "deploy",
            "credit:2",
            "--env",
            "production",
            "--strategy",
            "ab",
            "--traffic",
            "50",
            "--segments",
            "region=north",
            as_="dora",
        )
    )
    frame = pd.read_csv(week(1)).assign(
        approved_amount=lambda f: f["loan_amount"] * 0.9, overflow=1e308
    )
    path = tmp_path / "ab.parquet"
    frame.to_parquet(path, index=False)
    w = ingest(watched, path)
    shown = monitoring.show_window(watched.ctx(), "credit", w["window"])
    versions = shown["metrics"]["versions"]
    assert (
        400 < versions["2"]["rows"] < 600 and versions["1"]["rows"] + versions["2"]["rows"] == 1000
    )
    comp = shown["metrics"]["comparison"]
    assert comp["mode"] == "ab" and comp["test"] == "two-proportion-z"
    assert comp["difference"] == pytest.approx(
        versions["2"]["performance"]["accuracy"] - versions["1"]["performance"]["accuracy"],
        abs=1e-9,
    )
    for v in ("1", "2"):
        assert versions[v]["kpis"]["approved_amount"] > 0  # tracked per version
        assert versions[v]["kpis"]["overflow"] is None  # finite values, a mean beyond float
        assert set(versions[v]["fairness"]["sex"]) == {
            "demographic_parity_difference",
            "demographic_parity_ratio",
            "equalized_odds_difference",
        }
    # the same window splits the same way again
    assert ingest(watched, path)["result_sha256"] == w["result_sha256"]
    manifest = deployments.manifest(watched.ctx(), "credit", "production", "kserve")
    assert manifest["metadata"]["annotations"]["cmi-console/segments"] == "region=north"


def test_a_version_whose_successors_all_retired_is_a_zombie(watched: Workspace) -> None:
    from cmi_console.services import gates

    gates.request(watched.ctx("alice"), "credit:2", "retired")
    gates.decide(watched.ctx("rita"), "credit:2", "retired", "approve")
    gates.retire(watched.ctx("dora"), "credit:2", "worse than v1 in review")
    ingest(watched, week(1))
    (z,) = monitoring.zombies(watched.ctx())
    assert z["version"] == 1 and z["flags"] == ["orphaned"]


def test_incidents_and_time_travel_see_deployments_and_windows(watched: Workspace) -> None:
    """An investigator's view: what served when, and the production events
    around an incident, linked to its deployment and window."""
    from cmi_console.services import history, incidents

    ctx = watched.ctx("dora")
    ok(watched.cli("deploy", "credit:2", "--env", "production", "--strategy", "canary", as_="dora"))
    during = ctx.clock()
    ok(watched.cli("deploy", "complete", "credit", "--env", "production", as_="dora"))
    for n in (6, 7):
        ingest(watched, week(n))
    monitoring.evaluate(watched.ctx("alice"), "credit", "production")
    at = {e["at"]: e for e in deployments.history(ctx, "credit", "production")}
    canary_start = sorted(at)[1]
    then = history.as_of(ctx, during, "credit")["models"][0]["traffic"]["production"]
    assert then["shares"] == {"1": 90, "2": 10} and then["since"] == canary_start
    now = history.as_of(ctx, ctx.clock(), "credit")["models"][0]["traffic"]["production"]
    assert now["shares"] == {"2": 100}
    opened = incidents.open_incident(ctx, "credit", "approvals dropped", at=during)
    n = opened["incident"]
    dep = deployments.list_deployments(ctx, "credit", "production")[0]["deployment"]
    incidents.link(ctx, n, "deployment", str(dep))
    incidents.link(ctx, n, "window", "1")
    r = watched.cli("incident", "link", str(n), "--window", "99", as_="dora")
    assert r.code == 2 and "99 does not exist" in r.err
    actions = [e["action"] for e in incidents.timeline(ctx, n)["events"]]
    for action in ("deploy.start", "deploy.complete", "monitor.ingest", "alert.raise"):
        assert action in actions, action
    # the auditor's model card carries the rollout and the monitoring
    bundle = watched.home.parent / "credit.zip"
    ok(watched.cli("audit", "export", "--out", str(bundle), "--model", "credit"))
    import zipfile

    card = zipfile.ZipFile(bundle).read("cards/credit-v2.md").decode()
    assert "| production | start | active | v1 90%, v2 10% | dora |" in card
    assert "2 monitoring window(s)" in card and "Monitoring alert (performance" in card
    up = ok(watched.cli("lineage", "credit:2", "--down", "--format", "json")).json()
    assert {"deployment", "window", "alert", "incident"} <= {
        node["kind"] for node in up["nodes"].values()
    }


def test_a_window_whose_labels_are_all_one_class_is_measured(
    watched: Workspace, tmp_path: Path
) -> None:
    # ROC AUC is not defined there (scikit-learn says NaN): it is left out, as
    # an inapplicable metric is; the NaN had made ingest an internal error
    frame = pd.read_csv(week(1))
    good = tmp_path / "all-good.csv"
    frame[frame["default"] == 0].head(200).to_csv(good, index=False)
    summary = ingest(watched, good)["summary"]["1"]
    assert "roc_auc" not in summary and summary["accuracy"] >= 0


def test_a_feature_empty_throughout_is_scored_and_named_as_drifted(
    watched: Workspace, tmp_path: Path
) -> None:
    # pandas reads an empty column as numbers: the model's category encoder
    # raised TypeError (an internal error), and the drift tests had no values
    path = tmp_path / "no-employment.csv"
    pd.read_csv(week(1)).assign(employment=None).to_csv(path, index=False)
    w = monitoring.show_window(watched.ctx(), "credit", ingest(watched, path)["window"])
    columns = {c["column"]: c for c in w["metrics"]["drift"]["columns"]}
    assert columns["employment"]["method"] == "no-values" and columns["employment"]["drifted"]
    assert [c for c, d in columns.items() if d["method"] == "no-values"] == ["employment"]
    assert verify(watched.ctx()).ok


def test_parquet_windows_with_values_of_the_wrong_kind(watched: Workspace, tmp_path: Path) -> None:
    """Parquet carries types CSV cannot: each of these was an internal error
    (a list is unhashable, a category of numbers met an encoder of text, and
    pandas read datetimes as nanoseconds, so they passed as numbers)."""
    frame = pd.read_csv(week(1))
    head = ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"]
    bad = {
        "list.parquet": (
            frame.assign(employment=[[x] for x in frame["employment"]]),
            "list.parquet: row 1: employment: '['",
        ),
        "time.parquet": (
            frame.assign(age=pd.Timestamp("2020-01-01")),
            "time.parquet: row 1: age: '2020-01-01",
        ),
        # a Parquet file has rows, not lines: it said ':5:' for the fourth row
        "row.parquet": (
            frame.assign(income=frame["income"].astype(str).where(frame.index != 3, "lots")),
            "row.parquet: row 4: income: 'lots' is not a number",
        ),
    }
    # a list or a mapping where one value belongs: unhashable, an internal error
    for column, value, shown in (
        ("default", [1], "[1]"),
        ("prediction", {"a": 1}, "{'a': 1}"),
        ("id", [7], "[7]"),
        ("version", [1], "[1]"),
        ("score", [0.5], "[0.5]"),
    ):
        bad[f"{column}.parquet"] = (
            frame.assign(**{column: [value] * len(frame)}),
            f"{column}.parquet: row 1: {column}: '{shown}' is not a single value",
        )
    for name, (f, message) in bad.items():
        path = tmp_path / name
        f.to_parquet(path)
        args = ["--env", "production", "--window", str(path), "--predict"]
        r = watched.cli("monitor", "ingest", "credit", *args, as_="alice")
        assert r.code == 2 and message in r.err and r.err.count("\n") == 1, (name, r.err)
    assert ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] == head
    # codes stored as numbers in a column the model took as text are categories
    codes = tmp_path / "codes.parquet"
    frame.assign(region=1.5).to_parquet(codes)
    w = monitoring.show_window(watched.ctx(), "credit", ingest(watched, codes)["window"])
    region = next(c for c in w["metrics"]["drift"]["columns"] if c["column"] == "region")
    assert region["kind"] == "categorical" and region["drifted"]


def test_a_windows_period_is_its_first_and_last_instant_in_utc(
    watched: Workspace, tmp_path: Path
) -> None:
    """ISO 8601 text with or without an offset (without one it is UTC), or a
    Parquet datetime column; the period is kept to the microsecond, like every
    instant the log records (nanoseconds printed a pandas warning)."""
    frame = pd.read_csv(week(1)).head(60)
    stamps = ["2026-10-19T12:30:00"] * len(frame)
    stamps[5] = "2026-10-19T02:00:00+02:00"
    stamps[9] = "2026-10-20T23:59:59.999999999Z"
    text = tmp_path / "offsets.csv"
    frame.assign(timestamp=stamps).to_csv(text, index=False)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        w = ingest(watched, text)
    # pandas warned "Discarding nonzero ...", and the CLI printed it
    assert not [m for m in said if "Discarding nonzero" in str(m.message)]
    assert w["period"] == ["2026-10-19T00:00:00.000000Z", "2026-10-20T23:59:59.999999Z"]
    columnar = tmp_path / "datetimes.parquet"
    when = pd.to_datetime(["2026-11-02T08:00:00"] * len(frame))
    frame.assign(
        timestamp=when.where(frame.index != 7, pd.Timestamp("2026-11-01T07:15:00"))
    ).to_parquet(columnar)
    w = ingest(watched, columnar)
    assert w["period"] == ["2026-11-01T07:15:00.000000Z", "2026-11-02T08:00:00.000000Z"]


def test_feedback_from_the_future_is_refused(watched: Workspace, tmp_path: Path) -> None:
    """A row stamped in 2099 was taken, and the window's period, which the log
    keeps for good, ran to 2099. Beyond the clock skew a team's hosts are
    allowed (5 min), a time after now is bad input naming its row."""
    frame = pd.read_csv(week(1)).head(60)
    soon = clock.add(clock.utc_now(), hours=0.05)  # 3 min ahead: within the skew
    stamps = ["2026-10-19T12:30:00"] * len(frame)
    stamps[2] = soon
    path = tmp_path / "skewed.csv"
    frame.assign(timestamp=stamps).to_csv(path, index=False)
    assert ingest(watched, path)["period"][1] == soon
    stamps[4] = "2099-01-01T00:00:00"
    later = tmp_path / "later.csv"
    frame.assign(timestamp=stamps).to_csv(later, index=False)
    head = ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"]
    args = ["--env", "production", "--window", str(later), "--predict"]
    r = watched.cli("monitor", "ingest", "credit", *args, as_="alice")
    assert r.code == 2 and "later.csv:6: timestamp: '2099-01-01T00:00:00' is not" in r.err, r.err
    assert "in the future" in r.err and r.err.count("\n") == 1
    assert ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] == head


def test_a_comparison_with_a_missing_label_compares_the_labelled_rows(
    watched: Workspace, tmp_path: Path
) -> None:
    """One empty label cell makes pandas read the labels as floats (1.0): the
    comparison had matched predictions and labels as text, "1" against
    "1.0", so every row was an error for both versions (difference 0, p 1)."""
    from scipy import stats

    ok(watched.cli("deploy", "credit:2", "--env", "production", "--strategy", "shadow", as_="dora"))
    frame = pd.read_csv(week(3))
    frame["default"] = frame["default"].astype(float)
    frame.loc[7, "default"] = np.nan
    path = tmp_path / "one-missing.csv"
    frame.to_csv(path, index=False)
    w = ingest(watched, path)
    shown = monitoring.show_window(watched.ctx(), "credit", w["window"])
    metrics = shown["metrics"]
    comp, versions = metrics["comparison"], metrics["versions"]
    assert versions["1"]["performance"]["labelled"] == 999
    assert comp["difference"] == pytest.approx(
        versions["2"]["performance"]["accuracy"] - versions["1"]["performance"]["accuracy"],
        abs=1e-9,
    )
    stored = monitoring._load_frame(watched.ctx(), shown["data_sha256"], "parquet")
    pairs = pd.DataFrame(
        {
            "c": stored[stored["version"] == 1]["prediction"].to_numpy(),
            "h": stored[stored["version"] == 2]["prediction"].to_numpy(),
            "y": frame["default"].to_numpy(),
        }
    ).dropna()
    right_c, right_h = pairs["c"] == pairs["y"], pairs["h"] == pairs["y"]
    b, c = int((right_h & ~right_c).sum()), int((right_c & ~right_h).sum())
    assert b + c > 0  # the versions disagree on some labelled rows
    p = stats.binomtest(min(b, c), b + c, 0.5).pvalue
    assert comp["p_value"] == pytest.approx(p, abs=1e-9)


def test_categories_the_model_never_saw_are_counted(watched: Workspace, tmp_path: Path) -> None:
    """pandas 3 reads text as its string dtype, not object: the check for
    categories outside the training data (`ref.dtype == object`) had
    matched no column, and a window full of unseen regions reported none."""
    frame = pd.read_csv(week(1))
    frame.loc[:99, "region"] = "moon"  # 100 of 1000 rows
    frame.loc[:9, "employment"] = None  # missing is not unseen
    path = tmp_path / "moon.csv"
    frame.to_csv(path, index=False)
    w = monitoring.show_window(watched.ctx(), "credit", ingest(watched, path)["window"])
    assert w["metrics"]["quality"]["unseen_categories"] == {"region": 0.1}
    shown = ok(watched.cli("monitor", "show", "credit", str(w["window"]), as_="alice")).out
    assert (
        "data quality: missing values employment 1.0%; duplicate rows 0.0%; "
        "categories never seen in training region 10.0%"
    ) in shown


def test_prediction_drift_is_a_distance_whatever_the_training_split_size(
    ws: Workspace, tmp_path: Path
) -> None:
    """Below 1,000 training rows the drift verdict comes from a test, and the
    window metric `prediction_drift` had been its p-value: high for a
    healthy window, near 0 for a drifted one, the opposite of the distance
    it is above 1,000 rows, so a policy's `max = { prediction_drift = 0.1 }`
    rolled healthy canaries back and let drifted ones through."""
    serve_credit(ws, tmp_path, rows=900)  # a 675-row training split
    policy = tmp_path / "credit-policy.toml"
    policy.write_text(POLICY)
    policies.activate(ws.ctx(), policy)
    shifted = pd.read_csv(week(1)).head(400)
    shifted["income"] *= 3.0
    shifted["debt_ratio"] = (shifted["debt_ratio"] + 0.4).clip(0, 1)
    path = tmp_path / "shifted.csv"
    shifted.to_csv(path, index=False)
    measured = {}
    for name, window in (("healthy", pd.read_csv(week(1)).head(400)), ("shifted", shifted)):
        window.to_csv(tmp_path / f"{name}.csv", index=False)
        w = ingest(ws, tmp_path / f"{name}.csv")
        entry = monitoring.show_window(ws.ctx(), "credit", w["window"])["metrics"]["versions"]["1"]
        drift = entry["prediction_drift"]
        assert drift["method"] == "ks"  # the verdict's test, for a small split
        assert drift["distance_method"] == "wasserstein_distance_norm"
        assert w["summary"]["1"]["prediction_drift"] == drift["distance"]
        measured[name] = drift
    healthy, moved = measured["healthy"], measured["shifted"]
    assert not healthy["drifted"] and moved["drifted"]
    assert healthy["score"] > moved["score"]  # the p-value falls as the drift grows
    assert healthy["distance"] < moved["distance"] / 2  # the metric grows with it


def test_a_row_key_given_twice_for_one_version_is_refused(
    watched: Workspace, tmp_path: Path
) -> None:
    """A shadow pairs its versions' rows by `id`: an id given to many rows
    paired each with each (1,000 rows of one id made a million pairs, 640 MB
    and a "decided" comparison from nothing; 10,000 rows ran out of memory).
    An id names one row of each version; where it does not, the first repeat
    is named."""
    ok(watched.cli("deploy", "credit:2", "--env", "production", "--strategy", "shadow", as_="dora"))
    frame = pd.read_csv(week(3)).reset_index(names="id")
    frame.loc[9, "id"] = 4
    path = tmp_path / "twice.csv"
    frame.to_csv(path, index=False)
    head = ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"]
    args = ["--env", "production", "--window", str(path), "--predict"]
    r = watched.cli("monitor", "ingest", "credit", *args, as_="alice")
    assert r.code == 2 and "twice.csv:11: id: '4' is given twice for version 1" in r.err, r.err
    assert ok(watched.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] == head
    # one id per input, shared by the versions that scored it, is the shape
    frame.loc[9, "id"] = 9
    frame.to_csv(path, index=False)
    comp = monitoring.show_window(watched.ctx(), "credit", ingest(watched, path)["window"])
    assert comp["metrics"]["comparison"]["pairs"] == len(frame)


def test_a_column_nothing_measures_is_named_with_its_first_value(
    watched: Workspace, tmp_path: Path
) -> None:
    """Any other numeric column is a KPI; one a spreadsheet wrote with its
    thousands separator ("1,204.50") is text, and was dropped without a word:
    the window looked as if the KPI had not been sent. The ingest names each
    column nothing measured, with its first value; numbers stay KPIs."""
    frame = pd.read_csv(week(1)).head(300)
    frame["approved"] = frame["loan_amount"] * 0.9
    frame["revenue"] = [f"{1000 + 3.5 * i:,.2f}" for i in range(len(frame))]
    frame["channel"] = ["web", None, "branch"] * 100
    path = tmp_path / "kpis.csv"
    frame.to_csv(path, index=False)

    def ingested(window: Path, *extra: str) -> Result:
        args = ["--env", "production", "--window", str(window), "--predict", *extra]
        return ok(watched.cli("monitor", "ingest", "credit", *args, as_="alice"))

    r = ingested(path)
    assert (
        "  columns not measured (no KPI: not numbers): revenue ('1,000.00'), channel ('web')"
        in (r.out.splitlines())
    )
    w = monitoring.show_window(watched.ctx(), "credit", 1)
    assert set(w["metrics"]["versions"]["1"]["kpis"]) == {"approved"}
    again = ingested(path, "--json").json()
    assert again["created"] is False
    assert again["unmeasured"] == {"revenue": "1,000.00", "channel": "web"}
    plain = tmp_path / "plain.csv"
    pd.read_csv(week(2)).head(300).to_csv(plain, index=False)
    r = ingested(plain)
    assert "not measured" not in r.out
