"""Property test: random sequences of requests, validations, approvals, role
changes, policy changes and promotions, checked step by step against a small
independent model of the rules. No promotion happens without its gate, no
refused decision is recorded, and the log verifies at the end."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import PG_URL, _pg_admin
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from cmi_console.core.errors import BadInput, CmiError, Denied
from cmi_console.services import gates, identity, policies, registry, validations
from cmi_console.services.context import Context
from cmi_console.services.setup import init_workspace
from cmi_console.services.verify import verify

POLICY = """
format = 1
initial_stage = "development"
default_tier = "low"
[stages.development]
[stages.production]
from = ["development"]
suite = "gate"
approvals = [{ role = "reviewer", count = 2 }]
promoters = ["deployer"]
exclusive = true
environments = ["production"]
approval_expiry_days = %d
[stages.archived]
from = ["production"]
[stages.retired]
from = ["development", "production", "archived"]
terminal = true
[tiers.low]
[suites.gate]
[[suites.gate.checks]]
kind = "artifact"
"""
REVIEWERS = ("bob", "carl", "erin")
DECIDERS = (*REVIEWERS, *REVIEWERS, "alice", "victor")  # reviewers drawn more often
_ARTIFACTS: list[bytes] = []


def artifacts() -> list[bytes]:
    if not _ARTIFACTS:
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        from cmi_console.store.model_files import dumps

        X, y = load_iris(return_X_y=True)
        _ARTIFACTS.extend(dumps(LogisticRegression(C=c, max_iter=500).fit(X, y)) for c in (1, 2))
    return _ARTIFACTS


class Gates(RuleBasedStateMachine):
    backend = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="cmi-prop-"))
        self.pg_name: str | None = None
        db = None
        if self.backend == "postgres":
            self.pg_name = f"cmi_p_{uuid.uuid4().hex[:12]}"
            with _pg_admin(PG_URL) as conn:  # type: ignore[arg-type]
                conn.execute(f'CREATE DATABASE "{self.pg_name}"')
            db = f"{PG_URL.rsplit('/', 1)[0]}/{self.pg_name}"  # type: ignore[union-attr]
        self.epoch = 30  # approval_expiry_days: changing it changes the policy hash
        (self.tmp / "p.toml").write_text(POLICY % self.epoch)
        root = init_workspace(self.tmp / "ws", admin="root", db=db, policy=self.tmp / "p.toml")
        self.ctx = root
        for name, role in [
            ("alice", "developer"),
            ("victor", "validator"),
            ("dora", "deployer"),
            *((r, "reviewer") for r in REVIEWERS),
        ]:
            identity.add_user(self.as_("root"), name, [role])
        for i, data in enumerate(artifacts(), start=1):
            path = self.tmp / f"m{i}.skops"
            path.write_bytes(data)
            if i == 1:
                registry.create_model(self.as_("alice"), "m")
            registry.register_version(self.as_("alice"), "m", path)
        # the model: what the rules say, kept apart from the implementation
        self.reviewers = set(REVIEWERS)
        self.stage = {1: "development", 2: "development"}
        self.request: dict[int, bool] = {1: False, 2: False}
        self.validation: dict[int, tuple[str, int] | None] = {1: None, 2: None}  # (by, epoch)
        # (approver, policy epoch, epoch of the validation result it bound): a
        # result depends only on the version and the policy, not on who ran it
        self.approvals: dict[int, list[tuple[str, int, int | None]]] = {1: [], 2: []}
        self.promotions = 0

    def as_(self, name: str) -> Context:
        self.ctx.actor = name
        return self.ctx

    def teardown(self) -> None:
        self.ctx.engine.dispose()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.pg_name:
            with _pg_admin(PG_URL) as conn:  # type: ignore[arg-type]
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')

    # --- the rules, as the model sees them ---------------------------------

    def _standing(self, v: int) -> set[str]:
        """Approvers whose approval still binds the present (not stale, no SoD
        conflict); a stale approver may approve again."""
        val = self.validation[v]
        current = val[1] if val else None
        return {
            who
            for who, epoch, bound in self.approvals[v]
            if epoch == self.epoch and bound == current and (val is None or who != val[0])
        }

    def _counted(self, v: int) -> set[str]:
        return self._standing(v) if self.validation[v] is not None else set()

    def _passes(self, v: int) -> bool:
        val = self.validation[v]
        return (
            self.stage[v] == "development"
            and self.request[v]
            and val is not None
            and val[1] == self.epoch
            and len(self._counted(v)) >= 2
        )

    # --- steps -------------------------------------------------------------

    @initialize(head_start=st.booleans())
    def maybe_start_a_gate(self, head_start: bool) -> None:
        """Half the runs start with a request open and validated, so that whole
        gates, not only their first steps, are exercised."""
        if head_start:
            self.validate(1, "victor")
            self.request_production(1)

    @rule(v=st.sampled_from([1, 2]), who=st.sampled_from(["alice", "victor"]))
    def validate(self, v: int, who: str) -> None:
        validations.validate(self.as_(who), f"m:{v}", suite="gate")
        self.validation[v] = (who, self.epoch)

    @rule(v=st.sampled_from([1, 2]))
    def request_production(self, v: int) -> None:
        # alice asking again for the request she has open is answered with it
        # (a retry): nothing changes, its approvals stand
        expect_ok = self.stage[v] == "development"
        try:
            out = gates.request(self.as_("alice"), f"m:{v}", "production")
        except (Denied, BadInput):
            assert not expect_ok
            return
        assert expect_ok and out["created"] is not self.request[v]
        if out["created"]:
            self.request[v] = True
            self.approvals[v] = []

    @rule(v=st.sampled_from([1, 1, 2]), who=st.sampled_from(DECIDERS))
    def approve(self, v: int, who: str) -> None:
        val = self.validation[v]
        may = (
            self.request[v]
            and who in self.reviewers
            and who != "alice"
            and (val is None or who != val[0])
        )
        allowed = may and who not in self._standing(v)
        # the same approval again while it counts (a retry) is answered
        answered = may and who in self._standing(v)
        try:
            out = gates.decide(self.as_(who), f"m:{v}", "production", "approve")
        except CmiError:
            assert not allowed and not answered, f"{who} was refused on m:{v}"
            return
        if not out["created"]:
            assert answered, f"{who} was answered on m:{v} with no approval standing"
            return
        assert allowed, f"{who} was allowed to approve m:{v}"
        self.approvals[v].append((who, self.epoch, val[1] if val else None))

    @rule(who=st.sampled_from(REVIEWERS))
    def toggle_role(self, who: str) -> None:
        if who in self.reviewers:
            identity.revoke_role(self.as_("root"), who, "reviewer")
            self.reviewers.discard(who)
        else:
            identity.grant_role(self.as_("root"), who, "reviewer")
            self.reviewers.add(who)

    # rules are drawn uniformly: repeat the common ones so that whole gates
    # (request, validation, two approvals, promotion) happen often
    @rule(v=st.sampled_from([1, 1, 2]), who=st.sampled_from(DECIDERS))
    def approve_again(self, v: int, who: str) -> None:
        self.approve(v, who)

    @rule(v=st.sampled_from([1, 2]))
    def promote_again(self, v: int) -> None:
        self.promote(v)

    @precondition(lambda self: self.epoch < 33)
    @rule()
    def change_policy(self) -> None:
        self.epoch += 1
        (self.tmp / "p.toml").write_text(POLICY % self.epoch)
        policies.activate(self.as_("root"), self.tmp / "p.toml")

    @rule(v=st.sampled_from([1, 2]))
    def promote(self, v: int) -> None:
        expected = self._passes(v)
        # only dora promotes, so a version in production is where her promotion
        # put it: the same promotion again (a retry) is answered, nothing moves
        answered = self.stage[v] == "production"
        try:
            out = gates.promote(self.as_("dora"), f"m:{v}", "production")
        except Denied:
            assert not expected and not answered, f"m:{v} was refused though its gate passes"
            return
        if not out["created"]:
            assert answered, f"m:{v} was answered as promoted though it is in {self.stage[v]}"
            return
        assert expected, f"m:{v} was promoted though its gate does not pass"
        self.promotions += 1
        other = 2 if v == 1 else 1
        if self.stage[other] == "production":
            self.stage[other] = "archived"
        self.stage[v] = "production"
        self.request[v] = False

    @precondition(lambda self: self.promotions > 0)
    @rule()
    def log_verifies(self) -> None:
        report = verify(self.as_("root"))
        assert report.ok, [str(f) for f in report.findings[:3]]

    @invariant()
    def stages_match_the_model(self) -> None:
        if not hasattr(self, "ctx"):
            return
        rows = registry.list_versions(self.as_("root"), "m")
        actual = {r["version"]: r["stage"] for r in rows}
        assert actual == self.stage
        assert list(actual.values()).count("production") <= 1


@pytest.mark.parametrize(
    "backend",
    [
        "sqlite",
        pytest.param(
            "postgres",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(
                    not PG_URL, reason="PostgreSQL tests need CMI_TEST_DATABASE_URL"
                ),
            ],
        ),
    ],
)
def test_no_promotion_without_its_gate(backend: str) -> None:
    machine: Any = type(f"Gates_{backend}", (Gates,), {"backend": backend})
    examples = 40 if backend == "sqlite" else 8
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        ),
    )
