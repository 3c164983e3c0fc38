"""Policies as code: precise errors, hashes, activation, effective policy, tiers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import REPO, Workspace
from gate_helpers import add_staff, log_head, ok

from cmi_console.core import policy as pol
from cmi_console.core.canonical import canonical_bytes

DEFAULT = (REPO / "policies" / "default.toml").read_text()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def with_check(body: str):  # type: ignore[no-untyped-def]
    """An edit of the default policy: one more check in its production suite."""
    first = '[[suites.production.checks]]\nkind = "artifact"'
    return lambda t: t.replace(first, f"{first}\n[[suites.production.checks]]\n{body}", 1)


def activate_for_cancer(ws: Workspace, tmp_path: Path, body: str) -> None:
    """Activate a model policy for `cancer` (as rita, a risk officer)."""
    path = write(tmp_path, "cancer.toml", 'format = 1\nmodel = "cancer"\n' + body)
    ok(ws.cli("policy", "activate", str(path), as_="rita"))


def test_the_repository_policies_check(ws: Workspace) -> None:
    r = ok(
        ws.cli("policy", "check", *map(str, sorted((REPO / "policies").glob("*.toml"))), "--json")
    )
    assert {p["scope"] for p in r.json()} == {"default", "credit-risk"}


def test_the_bundled_default_is_the_repository_file() -> None:
    from cmi_console.services.policies import bundled_default

    assert bundled_default().read_bytes() == (REPO / "policies" / "default.toml").read_bytes()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.replace(
                'approvals = [{ role = "reviewer", count = 1 }]\napproval_expiry_days',
                'approvals = [{ role = "reviewer", count = 1 }, { role = "risk-oficer" }]\n'
                "approval_expiry_days",
            ),
            "stages.production.approvals[1].role: unknown role 'risk-oficer'",
        ),
        (
            lambda t: t + "\n[stages.qa]\nfrom = ['development']\ncolour = 'red'\n",
            "stages.qa.colour: unknown key",
        ),
        (
            lambda t: t.replace('from = ["staging"]', 'from = ["stagign"]'),
            "stages.production.from[0]: unknown stage 'stagign'",
        ),
        (
            lambda t: t.replace('suite = "production"', 'suite = "prod"'),
            "stages.production.suite: unknown suite 'prod'",
        ),
        (
            lambda t: t.replace('kind = "artifact"', 'kind = "artefact"', 1),
            "suites.staging.checks[0].kind: unknown check kind 'artefact'",
        ),
        (
            lambda t: t.replace("count = 1 }]\npromoters", "count = 0 }]\npromoters", 1),
            "stages.staging.approvals[0].count: Input should be greater than or equal to 1",
        ),
        (
            lambda t: t.replace('default_tier = "medium"', 'default_tier = "mid"'),
            "default_tier: unknown tier 'mid'",
        ),
        (
            lambda t: t.replace("approval_expiry_days = 30", "approval_expiry_days = 'soon'"),
            "stages.production.approval_expiry_days: Input should be a valid integer",
        ),
        (lambda t: t.replace("format = 1", "format = 1\nformat = 2"), "invalid TOML"),
        # lax validation took a TOML boolean for a number and a number for a
        # boolean: `count = true` was one approval, `exclusive = 1` true
        (
            lambda t: t.replace(
                "count = 1 }]\napproval_expiry_days", "count = true }]\napproval_expiry_days"
            ),
            "stages.production.approvals[0].count: Input should be a valid integer",
        ),
        (
            lambda t: t.replace("exclusive = true", "exclusive = 1"),
            "stages.production.exclusive: Input should be a valid boolean",
        ),
        (
            lambda t: t.replace('kind = "artifact"', 'kind = "artifact"\nblocking = "no"', 1),
            "suites.staging.checks[0].blocking: Input should be a valid boolean",
        ),
        # a stage added a role's counts up and a tier took the largest: which
        # one the author meant cannot be told
        (
            lambda t: t.replace(
                "count = 1 }]\napproval_expiry_days",
                'count = 1 }, { role = "reviewer", count = 2 }]\napproval_expiry_days',
            ),
            "stages.production.approvals[1]: role 'reviewer' is listed twice; give it once",
        ),
        (
            lambda t: t.replace(
                '{ role = "risk-officer", count = 1 }]\nprogressive',
                '{ role = "risk-officer", count = 1 }, { role = "reviewer" }]\nprogressive',
            ),
            "tiers.high.approvals[2]: role 'reviewer' is listed twice; give it once",
        ),
        # nothing leaves a terminal stage: a policy saying otherwise was taken
        (
            lambda t: t.replace(
                '[stages.archived]\nfrom = ["development", "staging", "production"]',
                '[stages.archived]\nfrom = ["retired"]',
            ),
            "stages.archived.from[0]: 'retired' is terminal; nothing leaves it",
        ),
        (
            lambda t: t.replace('initial_stage = "development"', 'initial_stage = "retired"'),
            "initial_stage: 'retired' is terminal; nothing would leave it",
        ),
        # settings no value meets, a typo found only when a validation ran, a
        # bound applied to nothing: each was taken
        *(
            (with_check(body), f"suites.production.checks[1].{message}")
            for body, message in (
                (
                    "kind = 'performance'\nmin = { roc_auc = 1.5 }",
                    "min: roc_auc = 1.5: roc_auc is at most 1; no value meets it",
                ),
                (
                    "kind = 'performance'\nmax = { log_loss = -0.1 }",
                    "max: log_loss = -0.1: log_loss is at least 0; no value meets it",
                ),
                (
                    "kind = 'performance'\nmin = { f1 = 0.8 }\nmax = { f1 = 0.7 }",
                    "max: f1: min 0.8 is above max 0.7; no value meets both",
                ),
                ("kind = 'drift'\ncolumns = []", "columns: empty; leave it out"),
                ("kind = 'drift'\ncolumns = ['age', 'age']", "columns: 'age' given twice"),
                ("kind = 'fairness'\nattributes = []", "attributes: empty; leave it out"),
                ("kind = 'fairness'\nmetric = 'acuracy'", "metric: unknown metric 'acuracy'"),
                ("kind = 'fairness'\nmax_metric_gap = 0.1", "max_metric_gap: needs `metric`"),
                ("kind = 'slices'\ncolumn = 'age'\nmetric = 'r^2'", "metric: unknown metric"),
                ("kind = 'robustness'\nmetric = 'auc'", "metric: unknown metric 'auc'"),
                ("kind = 'champion'\nmetric = 'auc'", "metric: unknown metric 'auc'"),
                (
                    "kind = 'schema'\ncolumns = { age = { min = 10, max = 5 } }",
                    "columns.age.max: 5 is below min 10; no value meets both",
                ),
                (
                    "kind = 'schema'\ncolumns = { sex = { dtype = 'string', max = 1 } }",
                    "columns.sex.max: a bound on numbers; the column's dtype is string",
                ),
                (
                    "kind = 'schema'\ncolumns = { sex = { allowed = [] } }",
                    "columns.sex.allowed: empty: no value would be allowed",
                ),
            )
        ),
        # a link in a description: the policy's text is in the log for good
        (
            lambda t: t.replace(
                'description = "Customer-facing, bounded impact."',
                'description = "see https://wiki.example/risk?token=c2VjcmV0"',
            ),
            "tiers.medium.description: holds a credential "
            "(https://wiki.example/risk?token=***); the audit log would keep it for good",
        ),
        (
            lambda t: t.replace(
                "max = { error_rate = 0.45, drift_share = 0.5 }",
                "max = { error_rate = 0.45, drift_share = 0.5 }\nmin = { error_rate = 0.5 }",
            ),
            "environments.production.auto_rollback.min: error_rate: min 0.5 is above max 0.45",
        ),
    ],
)
def test_errors_name_the_file_and_the_key_path(
    ws: Workspace, tmp_path: Path, edit, message
) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, "bad.toml", edit(DEFAULT))
    before = log_head(ws)
    for cmd in (("policy", "check", str(path)), ("policy", "activate", str(path))):
        r = ws.cli(*cmd)
        assert r.code == 2, r.out
        assert r.err.startswith(f"cmi: {path}: {message}"), r.err
        assert len(r.err.splitlines()) == 1
    assert log_head(ws) == before


def test_a_model_policy_below_its_tier_is_rejected_naming_the_requirement(
    ws: Workspace, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "credit.toml",
        'format = 1\nmodel = "credit"\ntier = "high"\n'
        '[stages.production]\napprovals = [{ role = "reviewer", count = 1 }]\n',
    )
    r = ws.cli("policy", "check", str(path))
    assert r.code == 2
    assert (
        "stages.production.approvals: tier 'high' requires 1 approval(s) by risk-officer" in r.err
    )
    tighter = write(
        tmp_path,
        "credit2.toml",
        'format = 1\nmodel = "credit"\ntier = "high"\n'
        '[stages.production]\napprovals = [{ role = "reviewer", count = 2 },'
        ' { role = "risk-officer", count = 1 }]\n',
    )
    ok(ws.cli("policy", "check", str(tighter)))


def test_a_model_policy_cannot_redefine_the_tiers(ws: Workspace, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "credit.toml",
        'format = 1\nmodel = "credit"\ntier = "high"\n[tiers.high]\napprovals = []\n',
    )
    r = ws.cli("policy", "check", str(path))
    assert r.code == 2 and "tiers: a model policy cannot change the tiers" in r.err


def test_a_policy_is_versioned_by_its_canonical_content(tmp_path: Path) -> None:
    a = pol.parse_toml(DEFAULT, "a")
    reordered = "\n".join(reversed(DEFAULT.split("\n[")))  # same tables, other order
    b = pol.parse_toml(DEFAULT.replace("# ", "#  ") + "\n", "b")
    assert pol.sha256_of(a) == pol.sha256_of(b) == hashlib.sha256(canonical_bytes(a)).hexdigest()
    assert reordered  # documents the intent; tables may appear in any order in TOML
    c = pol.parse_toml(
        DEFAULT.replace("approval_expiry_days = 30", "approval_expiry_days = 31"), "c"
    )
    assert pol.sha256_of(c) != pol.sha256_of(a)


def test_activation_is_a_signed_decision_with_old_and_new_hash(
    ws: Workspace, tmp_path: Path
) -> None:
    add_staff(ws)
    new = write(
        tmp_path,
        "default.toml",
        DEFAULT.replace("approval_expiry_days = 30", "approval_expiry_days = 7"),
    )
    r = ws.cli("policy", "activate", str(new), as_="victor")
    assert r.code == 3 and "risk-officer" in r.err
    old_sha = pol.sha256_of(pol.parse_toml(DEFAULT, "d"))
    out = ok(ws.cli("policy", "activate", str(new), "--json", as_="rita")).json()
    assert out["old_sha256"] == old_sha
    assert out["new_sha256"] == pol.sha256_of(pol.read_toml(new))
    entry = ok(ws.cli("audit", "log", "-n", "1", "--json")).json()[0]
    assert entry["action"] == "policy.activate" and entry["actor"] == "rita"
    assert entry["data"]["old_sha256"] == old_sha and entry["sig"]["alg"] == "ed25519"
    # a pipeline applying the policy files on every merge failed (exit 2)
    # whenever a file had not changed: the state asked for holds, whoever
    # made it, so it is answered and nothing is written
    seq = entry["seq"]
    for who in ("rita", "root"):
        again = ok(ws.cli("policy", "activate", str(new), "--json", as_=who))
        assert again.err.startswith(
            f"note: default.toml ({out['new_sha256'][:16]}) is active for default already "
            "(activated by rita, "
        ), again.err
        assert again.json()["created"] is False
    assert ok(ws.cli("audit", "log", "-n", "1", "--json")).json()[0]["seq"] == seq
    history = ok(ws.cli("policy", "history", "--json")).json()
    assert [h["active"] for h in history] == [False, True]
    # a model already of the tier asked for: answered the same way
    ok(ws.cli("model", "create", "cancer"))
    ok(ws.cli("model", "tier", "cancer", "high", "--reason", "patients", as_="rita"))
    same = ok(ws.cli("model", "tier", "cancer", "high", "--reason", "again", as_="rita"))
    assert same.err == "note: model 'cancer' is tier high already; nothing written\n"
    assert [e["action"] for e in ok(ws.cli("audit", "log", "-n", "2", "--json")).json()] == [
        "model.tier",
        "model.create",
    ]
    assert ok(ws.cli("audit", "verify")).code == 0


def test_effective_policy_merges_the_model_override_and_the_tier(
    populated: Workspace, tmp_path: Path
) -> None:
    ws = add_staff(populated)
    shown = ok(ws.cli("policy", "show", "cancer", "--json")).json()
    assert shown["tier"] == "medium" and list(shown["sources"]) == ["default"]
    assert shown["required_approvals"]["production"] == {"reviewer": 1}
    activate_for_cancer(
        ws,
        tmp_path,
        "[stages.production]\napproval_expiry_days = 3\n"
        'approvals = [{ role = "reviewer", count = 2 }]\n',
    )
    shown2 = ok(ws.cli("policy", "show", "cancer", "--json")).json()
    assert shown2["policy"]["stages"]["production"]["approval_expiry_days"] == 3
    assert shown2["policy"]["stages"]["production"]["exclusive"] is True  # kept from default
    assert shown2["required_approvals"]["production"] == {"reviewer": 2}
    assert shown2["sha256"] != shown["sha256"]
    ok(ws.cli("model", "tier", "cancer", "high", "--reason", "patients", as_="rita"))
    shown3 = ok(ws.cli("policy", "show", "cancer", "--json")).json()
    assert shown3["required_approvals"]["production"] == {"reviewer": 2, "risk-officer": 1}
    # a new default that would leave the override below its tier is refused
    stricter = write(
        tmp_path,
        "default.toml",
        DEFAULT.replace(
            'approvals = [{ role = "reviewer", count = 1 }, { role = "risk-officer", count = 1 }]',
            'approvals = [{ role = "reviewer", count = 3 }, { role = "risk-officer", count = 1 }]',
        ),
    )
    before = log_head(ws)
    r = ws.cli("policy", "activate", str(stricter), as_="rita")
    assert r.code == 2 and "the active policy of cancer fails" in r.err
    assert "tier 'high' requires 3 approval(s) by reviewer" in r.err
    assert log_head(ws) == before


def test_every_view_of_a_model_shows_the_tier_its_gates_apply(
    populated: Workspace, tmp_path: Path
) -> None:
    """A tier given by the model's policy file (`tier = ...`) governs its gates,
    but the model list, the dashboard's counts and the exported model card
    read the column `cmi model tier` sets and said "default" (no such tier)."""
    import zipfile

    from cmi_console.services import registry

    ws = add_staff(populated)
    ok(ws.cli("model", "create", "plain", as_="alice"))
    activate_for_cancer(
        ws,
        tmp_path,
        'tier = "high"\n[stages.production]\n'
        'approvals = [{ role = "reviewer", count = 1 }, { role = "risk-officer", count = 1 }]\n',
    )
    assert ok(ws.cli("policy", "show", "cancer", "--json")).json()["tier"] == "high"

    def tiers() -> tuple[dict[str, str], str, dict[str, int]]:
        listed = {m["name"]: m["risk_tier"] for m in ok(ws.cli("model", "list", "--json")).json()}
        shown = ok(ws.cli("model", "show", "cancer", "--json")).json()["risk_tier"]
        return listed, shown, registry.stage_summary(ws.ctx())["tiers"]

    assert tiers() == ({"cancer": "high", "plain": "medium"}, "high", {"high": 1, "medium": 1})
    bundle = tmp_path / "b.zip"
    ok(ws.cli("audit", "export", "--out", str(bundle), "--model", "cancer", "-q", as_="rita"))
    with zipfile.ZipFile(bundle) as z:
        cards = [z.read(n).decode() for n in z.namelist() if n.endswith(".md") and "card" in n]
    assert cards and all("Risk tier: high." in c for c in cards)

    # the tier `cmi model tier` sets wins over the file's, everywhere alike
    ok(ws.cli("model", "tier", "cancer", "low", "--reason", "internal", as_="rita"))
    ok(ws.cli("model", "tier", "plain", "high", "--reason", "patients", as_="rita"))
    assert tiers() == ({"cancer": "low", "plain": "high"}, "low", {"high": 1, "low": 1})


def test_tier_changes_are_signed_and_restricted(populated: Workspace) -> None:
    ws = add_staff(populated)
    r = ws.cli("model", "tier", "cancer", "low", "--reason", "x", as_="alice")
    assert r.code == 3
    r = ws.cli("model", "tier", "cancer", "extreme", "--reason", "x", as_="rita")
    assert r.code == 2 and "unknown tier 'extreme'" in r.err
    r = ws.cli("model", "tier", "cancer", "low", "--reason", " ", as_="rita")
    assert r.code == 2
    out = ok(
        ws.cli("model", "tier", "cancer", "low", "--reason", "internal", "--json", as_="rita")
    ).json()
    assert (out["old_tier"], out["new_tier"]) == ("medium", "low")
    assert out["old_policy_sha256"] != out["new_policy_sha256"]
    entry = ok(ws.cli("audit", "log", "-n", "1", "--json")).json()[0]
    assert entry["action"] == "model.tier" and "sig" in entry
    assert ok(ws.cli("model", "show", "cancer", "--json")).json()["risk_tier"] == "low"


def test_a_policy_that_strands_versions_or_requests_is_refused(
    populated: Workspace, tmp_path: Path
) -> None:
    """Dropping a stage that versions are in left them unable to move (not
    even to `retired`), and one open request to it made `cmi queue` fail for
    everyone ("--to: unknown stage")."""
    ws = populated
    no_development = (
        DEFAULT.replace('initial_stage = "development"', 'initial_stage = "staging"')
        .replace('[stages.staging]\nfrom = ["development"]\n', "[stages.staging]\n")
        .replace("[stages.development]\n", "")
        .replace('"development", ', "")
    )
    path = write(tmp_path, "default.toml", no_development)
    head = log_head(ws)
    r = ws.cli("policy", "activate", str(path))
    assert r.code == 2 and "no 'development' for cancer, where 2 version(s) are" in r.err, r.err
    assert "(e.g. cancer:1)" in r.err and log_head(ws) == head

    no_staging = DEFAULT.replace('from = ["staging"]', 'from = ["development"]')
    no_staging = no_staging.replace('"staging", ', "").replace('shadow_stages = ["production"]', "")
    cut = no_staging.index("[stages.staging]")
    no_staging = no_staging[:cut] + no_staging[no_staging.index("[stages.production]") :]
    cut = no_staging.index("[environments.staging]")
    no_staging = no_staging[:cut] + no_staging[no_staging.index("[environments.production]") :]
    request = ok(ws.cli("request", "cancer:1", "--to", "staging", "--json", as_="alice"))
    elsewhere = DEFAULT.replace('environments = ["staging"]\n', 'environments = ["default"]\n')
    cut = elsewhere.index("[environments.staging]")
    elsewhere = elsewhere[:cut] + elsewhere[elsewhere.index("[environments.production]") :]
    r = ws.cli("policy", "activate", str(write(tmp_path, "elsewhere.toml", elsewhere)))
    assert r.code == 2 and "stages.staging: no environment 'staging' for cancer" in r.err, r.err
    path = write(tmp_path, "default.toml", no_staging)
    head = log_head(ws)
    r = ws.cli("policy", "activate", str(path))
    assert r.code == 2 and "no 'staging' for cancer, which open request #" in r.err, r.err
    assert log_head(ws) == head
    ok(ws.cli("withdraw", str(request.json()["request"]), as_="alice"))
    ok(ws.cli("policy", "activate", str(path)))
    assert ok(ws.cli("queue", "--json")).json() == []


def test_a_call_reads_a_model_policy_once_and_again_after_writing_one(
    populated: Workspace,
) -> None:
    # a registration and the hook deliveries its entry queues share one read of
    # the model's policy (Tx.effective_for); a call that then writes a policy
    # or the model's tier must not act on the policy it read before
    from cmi_console.services import registry

    ctx = populated.ctx("root")
    with ctx.write() as tx:
        model = registry.model_row(tx.conn, "cancer")
        first = tx.effective_for(model)
        assert tx.effective_for(model) is first and tx.remembered_policy("cancer") is first
        assert first.tier == "medium"
        tx.update(registry.MODELS, model.id, {"risk_tier": "high"})
        assert tx.remembered_policy("cancer") is None
        model = registry.model_row(tx.conn, "cancer")
        assert tx.effective_for(model).tier == "high"
        tx.record("model.tier", "model:cancer", {"tier": "high"})


def test_a_drift_check_may_ask_for_distances_at_every_size(ws: Workspace, tmp_path: Path) -> None:
    text = DEFAULT.replace('kind = "artifact"', 'kind = "drift"\nmethod = "distance"', 1)
    assert text != DEFAULT
    ok(ws.cli("policy", "check", str(write(tmp_path, "distance.toml", text))))
    bad = ws.cli("policy", "check", str(write(tmp_path, "d.toml", text.replace("distance", "far"))))
    assert bad.code == 2 and "method: Input should be 'auto', 'distance' or 'psi'" in bad.err


def test_settings_refused_since_still_load_in_an_active_policy(
    populated: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bound no value meets is refused when a policy is activated; one
    activated before that rule keeps loading, and its check fails (as it
    always did) rather than every command on the model."""
    ws = add_staff(populated)
    body = "[suites.odd]\n[[suites.odd.checks]]\nkind = 'performance'\nmin = { accuracy = 1.5 }\n"
    with monkeypatch.context() as m:
        m.setattr(pol, "_activating", lambda _info: False)  # as activated before the rule
        activate_for_cancer(ws, tmp_path, body)
    assert ok(ws.cli("policy", "show", "cancer", "--json")).json()["policy"]["suites"]["odd"]
    r = ws.cli("validate", "cancer:1", "--suite", "odd", "--json", as_="alice")
    assert r.code == 1 and r.json()["results"][0]["status"] in ("fail", "error")
    r = ws.cli("policy", "activate", str(tmp_path / "cancer.toml"), as_="rita")
    assert r.code == 2 and "min: accuracy = 1.5: accuracy is at most 1" in r.err


def test_a_model_policy_for_a_name_in_another_case_says_which_model(
    populated: Workspace, tmp_path: Path
) -> None:
    path = write(tmp_path, "c.toml", 'format = 1\nmodel = "Cancer"\n')
    r = populated.cli("policy", "activate", str(path), as_="root")
    assert r.code == 2 and r.err.strip() == (
        f"cmi: {path}: model: model 'Cancer' does not exist; did you mean 'cancer'?"
    )


def test_every_metric_a_bound_may_name_has_its_range() -> None:
    """The activation check of metric bounds reads each metric's range: a
    metric added to the list without one would be an internal error there."""
    assert set(pol.METRICS) <= set(pol.WINDOW_METRICS) == set(pol.METRIC_RANGES)
    assert all(low < high for low, high in pol.METRIC_RANGES.values())
