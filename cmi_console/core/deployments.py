"""Deployment strategies as state machines. Pure: the services read the
current state, ask here what an action leads to, and write the answer.

A deployment puts one candidate version next to the version serving the
environment (the stable one) and moves traffic between them:

    direct      the candidate takes all traffic at once (the first deployment,
                or a tier that does not ask for progressive rollout)
    canary      the candidate's share climbs the policy's canary steps
    blue-green  the candidate is staged at 0%, then switched to 100% in one move
    ab          a fixed split (and optional segments) until someone decides
    shadow      the candidate sees a copy of the requests and serves none

States: active, paused, completed (the candidate is the stable version),
rolled-back, ended (its version was retired). An action that a state does
not allow is refused: `Illegal` is a Denied, exit 3.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace

from cmi_console.core.errors import Denied

STRATEGIES = ("direct", "canary", "blue-green", "ab", "shadow")
PROGRESSIVE = frozenset({"canary", "blue-green", "ab", "shadow"})
ACTIONS = ("advance", "pause", "resume", "complete", "rollback")
OPEN = frozenset({"active", "paused"})
ACTIVE, PAUSED, COMPLETED, ROLLED_BACK, ENDED = (
    "active",
    "paused",
    "completed",
    "rolled-back",
    "ended",
)


class Illegal(Denied):
    """An action the deployment's strategy and state do not allow."""


@dataclass(frozen=True)
class State:
    strategy: str
    status: str
    traffic: int  # the candidate's share of served requests, 0..100
    mirror: int = 0  # shadow: the share of requests copied to the candidate

    @property
    def open(self) -> bool:
        return self.status in OPEN


def start(strategy: str, traffic: int | None, steps: list[int], has_stable: bool) -> State:
    """The state a new deployment starts in."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}")
    if strategy == "direct" or not has_stable:
        return State(strategy, COMPLETED, 100)
    if strategy == "canary":
        share = steps[0] if traffic is None else traffic
        return State(strategy, COMPLETED if share == 100 else ACTIVE, share)
    if strategy == "ab":
        return State(strategy, ACTIVE, 50 if traffic is None else traffic)
    if strategy == "shadow":
        return State(strategy, ACTIVE, 0, 100 if traffic is None else traffic)
    return State(strategy, ACTIVE, 0)  # blue-green: green staged, blue serves


def traffic_problem(strategy: str, traffic: int | None) -> str | None:
    """What is wrong with --traffic for a strategy, if anything."""
    if traffic is None:
        return None
    if strategy in ("direct", "blue-green"):
        return f"{strategy} takes no --traffic (it moves all traffic at once)"
    if strategy == "ab" and not 0 < traffic < 100:
        return "an A/B split needs 1..99"
    if not 0 < traffic <= 100:
        return "must be 1..100"
    return None


def apply(state: State, action: str, steps: list[int], to: int | None = None) -> State:
    """The state after `action`, or Illegal."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    where = f"{action}: a {state.strategy} deployment that is {state.status}"
    if action == "rollback":
        if state.status in (ROLLED_BACK, ENDED):
            raise Illegal(f"{where} cannot be rolled back")
        return replace(state, status=ROLLED_BACK, traffic=0, mirror=0)
    if not state.open:
        raise Illegal(f"{where} is over; deploy again")
    if action == "pause":
        if state.status == PAUSED:
            raise Illegal(f"{where} is already paused")
        return replace(state, status=PAUSED)
    if action == "resume":
        if state.status != PAUSED:
            raise Illegal(f"{where} is not paused")
        return replace(state, status=ACTIVE)
    if state.status == PAUSED:
        raise Illegal(f"{where} is paused; resume it first")
    if action == "complete":
        return replace(state, status=COMPLETED, traffic=100, mirror=0)
    # advance
    if state.strategy == "canary":
        share = to if to is not None else next((s for s in steps if s > state.traffic), 100)
        if share <= state.traffic or share > 100:
            raise Illegal(f"{where} at {state.traffic}% cannot advance to {share}%")
        return replace(state, status=COMPLETED if share == 100 else ACTIVE, traffic=share)
    if state.strategy == "blue-green":
        if to is not None:
            raise Illegal(f"{where} switches all traffic at once; no --traffic")
        if state.traffic == 100:
            raise Illegal(f"{where} has already switched; complete or roll back")
        return replace(state, traffic=100)  # the switch; `complete` retires blue
    raise Illegal(f"{where} does not advance; complete it or roll it back")


def shares(stable: int | None, candidate: int, state: State) -> dict[str, int]:
    """Who serves which share of requests: {version number: percent}."""
    if state.status == COMPLETED:
        return {str(candidate): 100}
    if state.status in (ROLLED_BACK, ENDED):
        return {str(stable): 100} if stable is not None else {}
    out = {str(candidate): state.traffic} if state.traffic else {}
    if stable is not None and state.traffic < 100:
        out[str(stable)] = 100 - state.traffic
    return out


def shares_text(shares: dict[str, int], sep: str = ", ", by_share: bool = False) -> str:
    """ "v1 75%, v2 25%": by version number, or largest share first."""
    if by_share:
        ordered = sorted(shares.items(), key=lambda kv: (-kv[1], int(kv[0])))
    else:
        ordered = sorted(shares.items(), key=lambda kv: int(kv[0]))
    return sep.join(f"v{v} {p}%" for v, p in ordered)


# KServe takes an InferenceService name only as a DNS-1035 label, and its
# children (`NAME-predictor-NAMESPACE...`) must fit 63 characters too
K8S_NAME_MAX = 45
_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def k8s_name(*parts: str) -> str:
    """The Kubernetes object name for `parts` (model, environment), joined by
    '-'. Our names may hold capitals, '.' and '_', start with a digit and run
    to 100 characters, none of which a serving layer takes; such a name is
    lowered and cleaned, and a short hash of the original keeps two names
    that clean alike apart."""
    raw = "-".join(parts)
    if len(raw) <= K8S_NAME_MAX and _DNS_1035.fullmatch(raw):
        return raw
    tag = hashlib.sha256(raw.encode()).hexdigest()[:8]
    clean = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")
    if not clean[:1].isalpha():
        clean = f"m-{clean}".rstrip("-")
    return f"{clean[: K8S_NAME_MAX - len(tag) - 1].rstrip('-')}-{tag}"
