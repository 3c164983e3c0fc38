"""The demo workspace: real scikit-learn models on the files in data/,
several principals, and a realistic audit history.

It is deterministic: a clock from a given start day, keys derived from public
seeds (they are demo keys, not secrets), and reproducible skops files, so two
builds from the same start day hold the same log, byte for byte. Key files are
encrypted with DEMO_PASSPHRASE.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cmi_console.core import clock
from cmi_console.core.errors import BadInput
from cmi_console.core.small_files import kind_of
from cmi_console.services import (
    deployments,
    gates,
    identity,
    incidents,
    monitoring,
    policies,
    registry,
    training,
    validations,
)
from cmi_console.services.context import Context
from cmi_console.services.setup import discard, init_workspace
from cmi_console.services.verify import verify
from cmi_console.store.workspace import CONFIG_FILE, Workspace

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


# (who trains, recipe in data/recipes, team tag), in order: versions 1, 2, ...
TRAINING = [
    ("alice", "credit-logreg.toml", "risk"),
    ("alice", "credit-gbm.toml", "risk"),
    ("ci-bot", "credit-gbm-deep.toml", "risk"),
    ("carol", "diabetes-ridge.toml", "clinical"),
    ("carol", "diabetes-rf.toml", "clinical"),
    ("alice", "wine-logreg.toml", "lab"),
    ("ci-bot", "wine-rf.toml", "lab"),
    ("alice", "wine-tree.toml", "lab"),
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


def default_start() -> date:
    """The history ends about today, so its pending approvals have not expired
    (policies make approvals expire): builds on the same day are identical."""
    return datetime.now(UTC).date() - timedelta(days=HISTORY_DAYS)


def build(home: Path, start: date | None = None) -> Context:
    src = data_dir()
    if not (src / "credit.csv").is_file():
        raise BadInput(f"{src}: demo data not found (set CMI_DEMO_DATA to the repository's data/)")
    tick = DemoClock(start or default_start())
    secret = DEMO_PASSPHRASE.encode()
    existed = kind_of(home, "--home") != "missing"
    # refused (another init, a workspace already there), it has made nothing:
    # nothing here may be removed then
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
    try:
        _populate(ctx, tick, src, secret)
    except BaseException:  # a half-built demo is worse than none
        ctx.engine.dispose()
        discard(home, created_home=not existed)
        raise
    ctx.actor = None
    return ctx


def _populate(ctx: Context, tick: DemoClock, src: Path, secret: bytes) -> None:
    """Everything the demo holds after its workspace is made."""

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
    recipes = src / "recipes"
    for who, recipe, team in TRAINING:
        # ci-bot trains what alice's commits changed (`cmi ci --change-author`)
        author = "alice" if who == "ci-bot" else None
        version = training.train(as_(who), recipes / recipe, root=src, change_author=author)
        registry.tag_version(as_(who), f"{version['model']}:{version['version']}", {"team": team})
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
        if v == 2:  # the staging endpoint keeps v2 long after: the demo's zombie
            deployments.deploy(as_("dora"), ref, "staging", "direct")
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
        if v == 1:
            deployments.deploy(as_("dora"), ref, "production", "direct")
        else:  # high tier: a progressive rollout; blue-green switches at once
            deployments.deploy(as_("dora"), ref, "production", "blue-green")
            deployments.act(as_("dora"), "credit-risk", "production", "advance")
            deployments.act(as_("dora"), "credit-risk", "production", "complete")
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
    # the Q3 applications have drifted: this run fails and blocks the gate,
    # whatever the reviewers think of the model
    validations.validate(as_("victor"), "credit-risk:3", data=data_dir() / "credit-2026q3.csv")
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
    deployments.deploy(as_("dora"), "wine-cultivar:1", "production", "direct")
    tick.skip(days=2)
    validations.validate(as_("victor"), "wine-cultivar:2")
    reason = "v1 mislabels cultivar 3 after the lab's sensor swap; v2 retrained on new readings"
    gates.break_glass(as_(ADMIN), "wine-cultivar:2", "production", reason)
    gates.break_glass(as_("sam"), "wine-cultivar:2", "production", reason)
    # even a break-glass fix rolls out gradually; the first canary goes back
    deployments.deploy(as_("dora"), "wine-cultivar:2", "production", "canary", traffic=10)
    tick.skip(hours=2)
    deployments.act(
        as_("dora"),
        "wine-cultivar",
        "production",
        "rollback",
        reason="canary rejects the north lab's old-format readings; fix the feed first",
    )
    gates.request(as_("alice"), "wine-cultivar:3", "staging", comment="shallow tree baseline")
    _incidents(as_, tick)
    tick.skip(hours=6)
    deployments.deploy(as_("dora"), "wine-cultivar:2", "production", "canary", traffic=10)
    deployments.act(as_("dora"), "wine-cultivar", "production", "advance", reason="feed fixed")
    _monitoring(as_, tick)


def _incidents(as_: Callable[[str], Context], tick: DemoClock) -> None:
    """An investigation in progress on credit-risk, and a closed one on diabetes."""
    tick.skip(hours=5)
    failed = next(
        r for r in validations.list_runs(as_("bob"), "credit-risk:3") if r["status"] == "fail"
    )
    happened = clock.add(tick(), hours=-3)
    opened = incidents.open_incident(
        as_("bob"),
        "credit-risk",
        "approval rate down 9 points since the Q3 data refresh",
        at=happened,
        severity="high",
    )
    n = opened["incident"]
    incidents.link(as_("bob"), n, "version", "credit-risk:2")
    incidents.link(as_("bob"), n, "validation", str(failed["run"]))
    incidents.note(as_("bob"), n, "income and debt_ratio drifted in the Q3 file (validation run)")
    incidents.note(as_("rita"), n, "hold credit-risk:3 until the drift is explained")
    other = incidents.open_incident(
        as_("carol"),
        "diabetes-progression",
        "predictions missing for 40 minutes",
        at=clock.add(tick(), hours=-30),
        severity="medium",
    )
    incidents.close(
        as_("dora"), other["incident"], "feature store timeout upstream; no model fault"
    )


def _monitoring(as_: Callable[[str], Context], tick: DemoClock) -> None:
    """Weekly credit windows drift (a drift alert at week 4); labels for the
    last two arrive late; a shadow compares v3 with v2; two weeks under the
    AUC floor fire the performance trigger, and one retrained candidate,
    answering both retraining requests, waits for review."""
    import tempfile

    import pandas as pd

    windows = data_dir() / "windows"
    for week in range(1, 6):  # the weekly job: a window, then the triggers
        monitoring.ingest(
            as_("ci-bot"),
            "credit-risk",
            "production",
            windows / f"credit-week-{week:02d}.csv",
            predict=True,
        )
        monitoring.evaluate(as_("ci-bot"), "credit-risk", "production")
        tick.skip(hours=3)
    deployments.deploy(
        as_("dora"), "credit-risk:3", "production", "shadow", comment="shadow v3 before its gate"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for week in (6, 7):
            frame = pd.read_csv(windows / f"credit-week-{week:02d}.csv")
            unlabelled = Path(tmp) / f"credit-week-{week:02d}.csv"
            frame.drop(columns=["default"]).to_csv(unlabelled, index=False)
            w = monitoring.ingest(
                as_("ci-bot"), "credit-risk", "production", unlabelled, predict=True
            )
            labels = Path(tmp) / f"credit-week-{week:02d}-labels.csv"
            frame[["default"]].to_csv(labels, index=False)
            tick.skip(hours=3)
            monitoring.evaluate(as_("ci-bot"), "credit-risk", "production")
            monitoring.labels(as_("ci-bot"), "credit-risk", w["window"], labels)
    monitoring.evaluate(
        as_("ci-bot"), "credit-risk", "production", retrain=data_dir() / "credit-recent.csv"
    )


def ensure_demo(home: Path, *, reset: bool = False, start: date | None = None) -> Summary:
    """Open the demo at `home`, building it first if it is not there (or on --reset)."""
    config = home / CONFIG_FILE
    built = False
    if kind_of(config, "--home") != "missing" and reset:
        if not Workspace.open(home).config.get("demo"):  # a broken file is bad input
            raise BadInput(f"{home}: not a demo workspace; refusing to delete it")
        shutil.rmtree(home)
    if kind_of(config, "--home") == "missing":
        build(home, start).engine.dispose()  # removes what it made if it fails
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
