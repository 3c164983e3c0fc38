"""The demo workspace: real scikit-learn models on the files in data/,
several principals, and a realistic audit history.

It is deterministic: a clock from a given start day, keys derived from public
seeds (they are demo keys, not secrets), and reproducible skops files, so two
builds from the same start day hold the same log, byte for byte. Key files are
encrypted with DEMO_PASSPHRASE.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cmi_console.core import clock, environment
from cmi_console.core.errors import BadInput
from cmi_console.services import gates, identity, policies, registry, validations
from cmi_console.services.context import Context
from cmi_console.services.setup import init_workspace
from cmi_console.services.verify import verify
from cmi_console.store.workspace import CONFIG_FILE

DEMO_PASSPHRASE = "demo"
HISTORY_DAYS = 25  # the demo's story spans about 24 days
ADMIN = "ada"
USERS: list[tuple[str, str, list[str]]] = [
    ("sam", "Sam Okafor", ["admin"]),
    ("alice", "Alice Martin", ["developer"]),
    ("carol", "Carol Ng", ["developer"]),
    ("ci-bot", "CI runner", ["developer"]),
    ("bob", "Bob Keller", ["reviewer"]),
    ("rita", "Rita Alvarez", ["risk-officer", "reviewer"]),
    ("nina", "Nina Patel", ["reviewer"]),
    ("victor", "Victor Hugo", ["validator"]),
    ("dora", "Dora Lind", ["deployer"]),
    ("audrey", "Audrey Chen", ["auditor"]),
]


def data_dir() -> Path:
    env = os.environ.get("CMI_DEMO_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2] / "data"
    return here if here.is_dir() else Path.cwd() / "data"


def demo_key(name: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(f"cmi-demo/{name}".encode()).digest()
    )


class DemoClock:
    """Starts at `start` (09:00 UTC); each reading moves it on a little."""

    def __init__(self, start: date) -> None:
        self.now = datetime(start.year, start.month, start.day, 9, 0, tzinfo=UTC)

    def __call__(self) -> str:
        self.now += timedelta(minutes=7)
        return clock.format_time(self.now)

    def skip(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Summary:
    home: Path
    built: bool
    models: list[dict[str, Any]]
    users: int
    entries: int
    verified: bool


def _train(
    ctx: Context,
    tick: DemoClock,
    *,
    model: str,
    data_ref: str,
    frame: Any,
    target: str,
    estimator: Any,
    params: dict[str, Any],
    kind: str,
    key: str,
    tags: dict[str, str],
    workdir: Path,
) -> dict[str, Any]:
    from sklearn import metrics as skm
    from sklearn.compose import ColumnTransformer
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from cmi_console.store.model_files import dumps

    X = frame.drop(columns=[target])
    y = frame[target]
    from pandas.api.types import is_numeric_dtype

    cats = [c for c in X.columns if not is_numeric_dtype(X[c])]
    nums = [c for c in X.columns if c not in cats]
    pre = ColumnTransformer(
        [("num", StandardScaler(), nums)]
        + ([("cat", OneHotEncoder(handle_unknown="ignore"), cats)] if cats else [])
    )
    pipe = Pipeline([("prep", pre), ("model", estimator.set_params(**params))])
    strat = y if kind == "classification" else None
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=42, stratify=strat)
    pipe.fit(X_tr, y_tr)
    pred = pipe.predict(X_te)
    if kind == "classification":
        scores: dict[str, float] = {
            "accuracy": skm.accuracy_score(y_te, pred),
            "f1_macro": skm.f1_score(y_te, pred, average="macro"),
        }
        if y.nunique() == 2:
            scores["roc_auc"] = skm.roc_auc_score(y_te, pipe.predict_proba(X_te)[:, 1])
    else:
        scores = {
            "rmse": skm.root_mean_squared_error(y_te, pred),
            "mae": skm.mean_absolute_error(y_te, pred),
            "r2": skm.r2_score(y_te, pred),
        }
    scores = {k: round(float(v), 6) for k, v in scores.items()}
    artifact = workdir / f"{key}.skops"
    artifact.write_bytes(dumps(pipe))
    tick.skip(hours=3)
    registry.record_run(
        ctx,
        params={"estimator": type(estimator).__name__, **params, "test_size": 0.25},
        metrics=scores,
        environment=environment.describe(),
        code_ref={
            "repo": "git@example.com:risk/models.git",
            "commit": hashlib.sha1(key.encode()).hexdigest(),
        },
        seed=42,
        datasets={"train": data_ref},
        run_key=key,
    )
    return registry.register_version(
        ctx, model, artifact, datasets={"train": data_ref}, run=key, metrics=scores, tags=tags
    )


def default_start() -> date:
    """The history ends about today, so its pending approvals have not expired
    (policies make approvals expire): builds on the same day are identical."""
    return datetime.now(UTC).date() - timedelta(days=HISTORY_DAYS)


def build(home: Path, start: date | None = None) -> Context:
    import pandas as pd
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.tree import DecisionTreeClassifier

    src = data_dir()
    if not (src / "credit.csv").is_file():
        raise BadInput(f"{src}: demo data not found (set CMI_DEMO_DATA to the repository's data/)")
    tick = DemoClock(start or default_start())
    secret = DEMO_PASSPHRASE.encode()
    ctx = init_workspace(
        home,
        admin=ADMIN,
        passphrase=secret,
        display_name="Ada Byron",
        now=tick,
        workspace_id="d" * 32,
        keygen=demo_key,
        extra_config={"demo": True},
    )
    ctx.passphrase = lambda _what: secret

    def as_(name: str) -> Context:
        ctx.actor = name
        return ctx

    for name, full, roles in USERS:
        identity.add_user(
            as_(ADMIN),
            name,
            roles,
            display_name=full,
            new_key_passphrase=secret,
            private_key=demo_key(name),
        )
    tick.skip(days=1)
    for name, file in (
        ("credit", "credit.csv"),
        ("diabetes", "diabetes.csv"),
        ("wine", "wine.csv"),
    ):
        registry.register_dataset(as_("alice" if name != "diabetes" else "carol"), src / file, name)
    registry.create_model(
        as_("alice"), "credit-risk", "Probability of default for consumer loans", "alice"
    )
    registry.create_model(
        as_("carol"), "diabetes-progression", "Disease progression one year ahead", "carol"
    )
    registry.create_model(as_("alice"), "wine-cultivar", "Cultivar from chemical analysis", "alice")
    frames = {
        n: pd.read_csv(src / f)
        for n, f in (("credit", "credit.csv"), ("diabetes", "diabetes.csv"), ("wine", "wine.csv"))
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plans: list[tuple[str, str, str, str, str, Any, dict[str, Any], str, dict[str, str]]] = [
            (
                "alice",
                "credit-risk",
                "credit",
                "default",
                "classification",
                LogisticRegression(max_iter=2000),
                {"C": 1.0},
                "cr-logreg-1",
                {"team": "risk", "algo": "logreg"},
            ),
            (
                "alice",
                "credit-risk",
                "credit",
                "default",
                "classification",
                GradientBoostingClassifier(random_state=0),
                {"n_estimators": 80, "max_depth": 2},
                "cr-gbm-1",
                {"team": "risk", "algo": "gbm"},
            ),
            (
                "ci-bot",
                "credit-risk",
                "credit",
                "default",
                "classification",
                GradientBoostingClassifier(random_state=0),
                {"n_estimators": 120, "max_depth": 3},
                "cr-gbm-2",
                {"team": "risk", "algo": "gbm"},
            ),
            (
                "carol",
                "diabetes-progression",
                "diabetes",
                "target",
                "regression",
                Ridge(),
                {"alpha": 1.0},
                "db-ridge-1",
                {"team": "clinical", "algo": "ridge"},
            ),
            (
                "carol",
                "diabetes-progression",
                "diabetes",
                "target",
                "regression",
                RandomForestRegressor(random_state=0),
                {"n_estimators": 60, "max_depth": 4},
                "db-rf-1",
                {"team": "clinical", "algo": "rf"},
            ),
            (
                "alice",
                "wine-cultivar",
                "wine",
                "target",
                "classification",
                LogisticRegression(max_iter=5000),
                {"C": 0.5},
                "wn-logreg-1",
                {"team": "lab", "algo": "logreg"},
            ),
            (
                "ci-bot",
                "wine-cultivar",
                "wine",
                "target",
                "classification",
                RandomForestClassifier(random_state=0),
                {"n_estimators": 40},
                "wn-rf-1",
                {"team": "lab", "algo": "rf"},
            ),
            (
                "alice",
                "wine-cultivar",
                "wine",
                "target",
                "classification",
                DecisionTreeClassifier(random_state=0),
                {"max_depth": 3},
                "wn-tree-1",
                {"team": "lab", "algo": "tree"},
            ),
        ]
        for who, model, data, target, kind, est, params, key, tags in plans:
            _train(
                as_(who),
                tick,
                model=model,
                data_ref=data,
                frame=frames[data],
                target=target,
                estimator=est,
                params=params,
                kind=kind,
                key=key,
                tags=tags,
                workdir=work,
            )
            tick.skip(hours=20)
    registry.set_alias(as_("alice"), "credit-risk", "champion", 2)
    registry.set_alias(as_("ci-bot"), "credit-risk", "challenger", 3)
    registry.set_alias(as_("carol"), "diabetes-progression", "champion", 1)
    tick.skip(days=2)
    registry.set_alias(as_("carol"), "diabetes-progression", "champion", 2)
    registry.tag_version(as_("alice"), "credit-risk:1", {"deprecated": "superseded by gbm"})
    identity.grant_role(as_(ADMIN), "victor", "reviewer")
    tick.skip(days=1)
    identity.revoke_role(as_("sam"), "victor", "reviewer")
    _govern(as_, tick)
    ctx.actor = None
    return ctx


def _gate(
    as_: Callable[[str], Context],
    ref: str,
    to: str,
    *,
    validator: str | None,
    requester: str,
    approvers: tuple[str, ...],
    promoter: str | None,
) -> None:
    """One pass through a gate, by the book."""
    if validator:
        validations.validate(as_(validator), ref)
    gates.request(as_(requester), ref, to)
    for who in approvers:
        gates.decide(as_(who), ref, to, "approve", "reviewed the validation report")
    if promoter:
        gates.promote(as_(promoter), ref, to)


def _govern(as_: Callable[[str], Context], tick: DemoClock) -> None:
    """Every stage, pending requests, a stale approval, a rejection, a
    retirement with a successor, and one break-glass."""
    policies.activate(as_("rita"), policies.BUNDLED / "credit-risk.toml")
    gates.add_consumer(as_("alice"), "credit-risk", "loan-origination", "#lending-eng")
    gates.add_consumer(as_("alice"), "credit-risk", "collections-scoring", "#collections")
    high = ("bob", "nina", "rita")  # credit-risk is high tier: 2 reviewers + a risk officer
    for v in (1, 2):
        ref = f"credit-risk:{v}"
        _gate(
            as_,
            ref,
            "staging",
            validator="ci-bot",
            requester="alice",
            approvers=("victor",),
            promoter="dora",
        )
        tick.skip(days=1)
        _gate(
            as_,
            ref,
            "production",
            validator="ci-bot",
            requester="alice",
            approvers=high,
            promoter="dora",
        )
        tick.skip(days=2)
    # v1 went to archived when v2 took production; now it retires for good
    _gate(
        as_,
        "credit-risk:1",
        "retired",
        validator=None,
        requester="alice",
        approvers=("rita",),
        promoter=None,
    )
    gates.retire(
        as_("dora"),
        "credit-risk:1",
        "superseded by the GBM; logreg is no longer monitored",
        successor="credit-risk:2",
    )
    _gate(
        as_,
        "credit-risk:3",
        "staging",
        validator="ci-bot",
        requester="ci-bot",
        approvers=("victor",),
        promoter="dora",
    )
    validations.validate(as_("ci-bot"), "credit-risk:3")
    gates.request(as_("ci-bot"), "credit-risk:3", "production")
    gates.decide(
        as_("rita"),
        "credit-risk:3",
        "production",
        "reject",
        "no fairness assessment on `sex`; rerun with the fairness suite",
    )
    tick.skip(days=1)
    gates.request(as_("alice"), "credit-risk:3", "production", comment="fairness reviewed offline")
    gates.decide(as_("bob"), "credit-risk:3", "production", "approve", "metrics hold up")

    for v in (1, 2):
        _gate(
            as_,
            f"diabetes-progression:{v}",
            "staging",
            validator="carol",
            requester="carol",
            approvers=("victor",),
            promoter="carol",
        )
    _gate(
        as_,
        "diabetes-progression:1",
        "production",
        validator="victor",
        requester="carol",
        approvers=("bob",),
        promoter="dora",
    )
    _gate(
        as_,
        "diabetes-progression:2",
        "production",
        validator="victor",
        requester="carol",
        approvers=("nina",),
        promoter=None,
    )
    tick.skip(days=1)
    # clinical use makes it high tier: nina's approval was given under the old policy
    policies.set_tier(as_("rita"), "diabetes-progression", "high", "now used in clinical triage")

    for v in (1, 2):
        _gate(
            as_,
            f"wine-cultivar:{v}",
            "staging",
            validator="ci-bot",
            requester="alice",
            approvers=("victor",),
            promoter="dora",
        )
    _gate(
        as_,
        "wine-cultivar:1",
        "production",
        validator="victor",
        requester="alice",
        approvers=("bob",),
        promoter="dora",
    )
    tick.skip(days=2)
    validations.validate(as_("victor"), "wine-cultivar:2")
    reason = "v1 mislabels cultivar 3 after the lab's sensor swap; v2 retrained on new readings"
    gates.break_glass(as_(ADMIN), "wine-cultivar:2", "production", reason)
    gates.break_glass(as_("sam"), "wine-cultivar:2", "production", reason)
    gates.request(as_("alice"), "wine-cultivar:3", "staging", comment="shallow tree baseline")


def ensure_demo(home: Path, *, reset: bool = False, start: date | None = None) -> Summary:
    """Open the demo at `home`, building it first if it is not there (or on --reset)."""
    config = home / CONFIG_FILE
    built = False
    if config.exists() and reset:
        if not json.loads(config.read_text()).get("demo"):
            raise BadInput(f"{home}: not a demo workspace; refusing to delete it")
        shutil.rmtree(home)
    if not config.exists():
        existed = home.exists()
        try:
            build(home, start)
        except BaseException:
            if not existed:  # a half-built demo is worse than none
                shutil.rmtree(home, ignore_errors=True)
            raise
        built = True
    ctx = Context.open(home)
    return summarize(ctx, built)


def summarize(ctx: Context, built: bool) -> Summary:
    from cmi_console.services import audit

    report = verify(ctx)
    return Summary(
        home=ctx.workspace.home,
        built=built,
        models=registry.list_models(ctx),
        users=len(identity.list_users(ctx)),
        entries=audit.head(ctx)["size"],
        verified=report.ok,
    )


def print_summary(summary: Summary, echo: Callable[[str], None] = print) -> None:
    echo(f"{'Built' if summary.built else 'Opened'} the demo workspace at {summary.home}")
    for m in summary.models:
        stages = ", ".join(f"{k} {v}" for k, v in sorted(m["stages"].items()))
        echo(f"  {m['name']:<22} {m['versions']} versions ({stages}), owner {m['owner']}")
    echo(
        f"  {summary.users} principals; audit log {summary.entries} entries, "
        f"{'verifies' if summary.verified else 'DOES NOT VERIFY'}"
    )
    echo(
        f"  keys are encrypted with the passphrase '{DEMO_PASSPHRASE}' "
        f"(export CMI_KEY_PASSPHRASE={DEMO_PASSPHRASE})"
    )
    echo(f"  try: cmi --home {summary.home} --as bob audit log -n 10")
