"""Calibration, slices, robustness, champion and reproducibility checks on
two real models of scikit-learn's breast_cancer set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, Workspace
from gate_helpers import ok

SUITES = """
[suites.behaviour]
[[suites.behaviour.checks]]
kind = "calibration"
max_ece = 0.5
[[suites.behaviour.checks]]
kind = "slices"
column = "mean radius"
max_gap = 0.5
min_rows = 20
[[suites.behaviour.checks]]
kind = "robustness"
max_drop = 0.5
[[suites.behaviour.checks]]
kind = "champion"
metric = "roc_auc"
stage = "development"
min_absolute_change = -1.0
require_significant = false
[[suites.behaviour.checks]]
kind = "reproducibility"

[suites.repro]
[[suites.repro.checks]]
kind = "reproducibility"

[suites.must-beat]
[[suites.must-beat.checks]]
kind = "champion"
metric = "roc_auc"
stage = "development"
min_absolute_change = 0.0
[[suites.must-beat.checks]]
kind = "champion"
name = "vs-production"
metric = "roc_auc"
missing_champion = "fail"
"""


@pytest.fixture
def two_models(ws: Workspace, tmp_path: Path) -> Workspace:
    from sklearn.datasets import load_breast_cancer

    policy = tmp_path / "default.toml"
    policy.write_text((REPO / "policies" / "default.toml").read_text() + SUITES)
    ok(ws.cli("policy", "activate", str(policy)))
    ok(ws.cli("model", "create", "cancer"))
    (tmp_path / "data").mkdir()
    load_breast_cancer(as_frame=True).frame.to_csv(tmp_path / "data" / "cancer.csv", index=False)
    for i, c in enumerate((1.0, 0.0005), start=1):
        recipe = tmp_path / f"r{i}.toml"
        recipe.write_text(
            'model = "cancer"\nseed = 5\n[data]\nfile = "data/cancer.csv"\ntarget = "target"\n'
            '[estimator]\nclass = "sklearn.linear_model.LogisticRegression"\n'
            f"params = {{ C = {c}, max_iter = 5000 }}\n"
        )
        ok(ws.cli("train", str(recipe)))
    return ws


def test_behaviour_checks(two_models: Workspace) -> None:
    ws = two_models
    out = ok(ws.cli("validate", "cancer:2", "--suite", "behaviour", "--json")).json()
    by = {r["kind"]: r for r in out["results"]}
    assert {k: r["status"] for k, r in by.items()} == {
        "calibration": "pass",
        "slices": "pass",
        "robustness": "pass",
        "champion": "pass",
        "reproducibility": "pass",
    }, {k: r["explanation"] for k, r in by.items()}
    v1 = ok(ws.cli("version", "show", "cancer:1", "--json")).json()["metrics"]
    v2 = ok(ws.cli("version", "show", "cancer:2", "--json")).json()["metrics"]
    champ = by["champion"]["value"]
    # the same holdout rows as at training: the recorded metrics, recomputed
    assert champ["champion_version"] == "cancer:1"
    assert champ["candidate"] == pytest.approx(v2["roc_auc"], abs=1e-9)
    assert champ["champion"] == pytest.approx(v1["roc_auc"], abs=1e-9)
    assert 0 <= by["calibration"]["value"]["ece"] <= 0.5
    assert by["calibration"]["value"]["brier"] == pytest.approx(v2["brier"], abs=1e-9)
    assert len(by["slices"]["value"]["slices"]) >= 3
    assert set(by["robustness"]["value"]["drops"]) == {"noise", "missing"}
    assert by["reproducibility"]["value"]["artifact_match"] is True


def test_reproducing_keeps_the_retrainings_warnings(two_models: Workspace, tmp_path: Path) -> None:
    """The retraining keeps its own warnings (they go with a training run);
    the reproducibility check passes them on to its result, as it did when
    they reached the check's own collector."""
    ws = two_models
    recipe = tmp_path / "r1.toml"
    recipe.write_text(recipe.read_text().replace("max_iter = 5000", "max_iter = 3"))
    ok(ws.cli("train", str(recipe)))
    r = ws.cli("validate", "cancer:3", "--suite", "repro", "--json")
    assert r.code == 0 and r.err.strip() == "", r.err
    (result,) = r.json()["results"]
    assert result["status"] == "pass"
    assert [w.split(" after")[0] for w in result["warnings"]] == [
        "ConvergenceWarning: lbfgs failed to converge"
    ]


def test_a_worse_candidate_and_a_missing_champion_fail(two_models: Workspace) -> None:
    r = two_models.cli("validate", "cancer:2", "--suite", "must-beat", "--json")
    assert r.code == 1
    beat, production = r.json()["results"]
    assert beat["status"] == "fail" and beat["value"]["change"] < 0
    assert (
        production["status"] == "fail" and "no version in production" in production["explanation"]
    )


def test_ece_matches_a_direct_computation() -> None:
    from cmi_console.validation.model_checks import expected_calibration_error

    rng = np.random.default_rng(0)
    p = rng.random(1000)
    y = (rng.random(1000) < p).astype(int)
    bins = np.minimum((p * 10).astype(int), 9)
    direct = sum(
        abs(y[bins == b].mean() - p[bins == b].mean()) * (bins == b).sum() / 1000
        for b in range(10)
        if (bins == b).any()
    )
    assert expected_calibration_error(y, p, 10) == pytest.approx(direct, abs=1e-12)


LATENCY = """
[suites.speed]
[[suites.speed.checks]]
kind = "latency"
sample = 50
max_p95_ms = 10000
[suites.too-slow]
[[suites.too-slow.checks]]
kind = "latency"
sample = 20
max_p95_ms = 0.000001
"""


def test_latency_is_measured_and_kept_out_of_the_result_hash(
    two_models: Workspace, tmp_path: Path
) -> None:
    ws = two_models
    policy = tmp_path / "default.toml"
    policy.write_text(policy.read_text() + LATENCY)
    ok(ws.cli("policy", "activate", str(policy)))
    first = ok(ws.cli("validate", "cancer:2", "--suite", "speed", "--json")).json()
    second = ok(ws.cli("validate", "cancer:2", "--suite", "speed", "--json")).json()
    [a], [b] = first["results"], second["results"]
    assert a["kind"] == "latency" and a["status"] == "pass" and a["volatile"] is True
    assert b["volatile"] is True and b["value"]["rows"] == 50
    assert 0 < a["value"]["p50_ms"] <= a["value"]["p95_ms"] and a["value"]["rows"] == 50
    # two runs of the same inputs: timings differ, the result hash does not
    assert first["result_sha256"] == second["result_sha256"]
    slow = ws.cli("validate", "cancer:2", "--suite", "too-slow", "--json")
    assert slow.code == 1 and "p95" in slow.json()["results"][0]["explanation"]
    # a non-volatile result hashes every field (the digest is not loosened)
    from cmi_console.validation.results import digest

    doc = {"results": [{"kind": "k", "status": "pass", "value": 1}]}
    assert digest(doc) != digest({"results": [{"kind": "k", "status": "fail", "value": 1}]})


def test_relative_change_from_zero_keeps_its_sign() -> None:
    from cmi_console.validation.model_checks import relative_change

    assert relative_change(0.05, 0.5) == pytest.approx(0.1)
    assert relative_change(-0.05, -0.5) == pytest.approx(-0.1)  # r2 may be negative
    assert relative_change(0.1, 0.0) == float("inf")
    assert relative_change(-0.1, 0.0) == float("-inf")
    assert relative_change(0.0, 0.0) == 0.0


@pytest.mark.parametrize("where", ["value", "details"])
def test_a_check_that_measures_nan_is_an_error_result_the_run_can_record(
    monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """The runner's guard, for any check kind a release adds: wherever a NaN
    sits in the result (value or details), the run stays hashable."""
    from cmi_console.core.canonical import canonical_bytes
    from cmi_console.core.policy import CHECK_SPECS
    from cmi_console.validation import runner
    from cmi_console.validation.results import PASS, CheckResult
    from cmi_console.validation.subject import Subject

    def measures_nan(spec: object, _subject: object) -> CheckResult:
        nan = float("nan")
        value, details = (nan, {}) if where == "value" else (1, {"score": nan})
        return CheckResult("artifact", "artifact", PASS, "ok", value=value, details=details)

    monkeypatch.setitem(runner.CHECKS, "artifact", measures_nan)
    spec = CHECK_SPECS["artifact"].model_validate({"kind": "artifact"})
    subject = Subject("m", 1, "0" * 64, "skops", read_artifact=lambda: b"")
    (result,) = runner.run_suite([spec], subject)
    assert result.status == "error" and "cannot be recorded" in result.explanation
    canonical_bytes(result.as_json())


def test_a_warning_about_garbage_collection_is_never_kept() -> None:
    """A training run's params recorded "<psycopg.Connection object at ...>
    was deleted while still open" (a ResourceWarning from a finalizer the
    garbage collector ran during the fit) once another thread's
    catch_warnings had left filters that show everything: only the kinds
    that are evidence (RuntimeWarning, UserWarning and theirs) are kept,
    whatever the process's filters are while the block runs."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from cmi_console.validation.evidence import kept_warnings

    with kept_warnings() as said:
        warnings.simplefilter("always")  # as another thread's filters can leave them
        warnings.warn(
            "<psycopg.Connection object at 0x1> was deleted while still open",
            ResourceWarning,
            stacklevel=2,
        )
        warnings.warn("the estimator's import path moves in 2.0", DeprecationWarning, stacklevel=2)
        warnings.warn("lbfgs failed to converge", ConvergenceWarning, stacklevel=2)
    assert said == ["ConvergenceWarning: lbfgs failed to converge"]
