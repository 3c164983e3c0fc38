"""Policies as code: the stages, gates, risk tiers and validation suites.

A policy is a TOML file. `default.toml` holds a complete policy; a per-model
file (`model = "NAME"`) overrides parts of it: tables merge key by key,
arrays and scalars replace. Every key is documented in docs/policies.md.

Errors name the file and the key path, e.g.
`policies/credit.toml: stages.production.approvals[1].role: unknown role 'risk-oficer'`.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from cmi_console.core import names
from cmi_console.core.canonical import canonical_bytes, unrepresentable
from cmi_console.core.credentials import credential_in, secret_name
from cmi_console.core.errors import BadInput
from cmi_console.core.roles import ROLES
from cmi_console.core.small_files import read_document

FORMAT = 1
ARCHIVED = "archived"  # where a replaced version of an exclusive stage goes


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Approval(_Strict):
    role: str
    count: int = Field(default=1, ge=1, le=20)

    @field_validator("role")
    @classmethod
    def _known_role(cls, value: str) -> str:
        if value not in ROLES:
            raise ValueError(f"unknown role '{value}' (known: {', '.join(sorted(ROLES))})")
        return value


class Stage(_Strict):
    # stages a version may come from; empty = no gate leads here (the initial stage)
    from_: list[str] = Field(default_factory=list, alias="from")
    suite: str | None = None
    approvals: list[Approval] = Field(default_factory=list)
    approval_expiry_days: int | None = Field(default=None, ge=1, le=3650)
    promoters: list[str] = Field(default_factory=lambda: ["admin", "developer", "deployer"])
    exclusive: bool = False
    environments: list[str] = Field(default_factory=lambda: ["default"])
    terminal: bool = False

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("promoters")
    @classmethod
    def _known_roles(cls, value: list[str]) -> list[str]:
        for role in value:
            if role not in ROLES:
                raise ValueError(f"unknown role '{role}'")
        return value

    @field_validator("environments")
    @classmethod
    def _env_names(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one environment")
        for env in value:
            _name(env)
        return value

    def approvals_by_role(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.approvals:
            out[a.role] = out.get(a.role, 0) + a.count
        return out


class Tier(_Strict):
    description: str = ""
    applies_to: list[str] = Field(default_factory=lambda: ["production"])
    required_checks: list[str] = Field(default_factory=list)
    approvals: list[Approval] = Field(default_factory=list)
    progressive_deployment: bool = False


class CheckSpec(_Strict):
    """One check of a suite: what every kind has. Each kind adds its own
    settings (thresholds) in a subclass registered in CHECK_SPECS."""

    kind: str
    name: str | None = None
    blocking: bool = True

    @property
    def label(self) -> str:
        return self.name or self.kind


class ArtifactCheck(CheckSpec):
    """The artifact's SHA-256 matches the registry and it loads safely."""

    kind: Literal["artifact"] = "artifact"


# what each metric can be, as scikit-learn computes it (r2 has no floor)
METRIC_RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(("accuracy", "precision", "recall", "f1", "roc_auc", "brier"), (0.0, 1.0)),
    **dict.fromkeys(("log_loss", "rmse", "mae"), (0.0, math.inf)),
    "r2": (-math.inf, 1.0),
    # a monitoring window's own
    **dict.fromkeys(
        ("error_rate", "drift_share", "missing_share", "demographic_parity_difference"),
        (0.0, 1.0),
    ),
    "prediction_drift": (0.0, math.inf),
}
METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "brier",
    "rmse",
    "mae",
    "r2",
)


def _known_metrics(value: dict[str, float], known: tuple[str, ...] = METRICS) -> dict[str, float]:
    for name in value:
        _known_metric(name, known)
    return value


def _known_metric(name: str, known: tuple[str, ...] = METRICS) -> str:
    if name not in known:
        raise ValueError(f"unknown metric '{name}' (known: {', '.join(known)})")
    return name


def _activated_metric(value: str | None, info: ValidationInfo) -> str | None:
    """A check's `metric`, known by name when a policy is activated: a typo
    was found only when a validation ran (an error then)."""
    return _known_metric(value) if value is not None and _activating(info) else value


def _met_bounds(value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
    """`min` or `max` bounds on metrics, refused when a policy is activated if
    no value can meet them: above what the metric can be (`min = { roc_auc =
    1.5 }` failed every run), below it, or a `min` above the `max` (checked
    by whichever of the two is validated second, which sees the other)."""
    if not _activating(info):
        return value
    side = info.field_name
    other = info.data.get("max" if side == "min" else "min") or {}
    for name, bound in value.items():
        low, high = METRIC_RANGES[name]
        if side == "min" and bound > high:
            raise ValueError(f"{name} = {bound:g}: {name} is at most {high:g}; no value meets it")
        if side == "max" and bound < low:
            raise ValueError(f"{name} = {bound:g}: {name} is at least {low:g}; no value meets it")
        least, most = (bound, other.get(name)) if side == "min" else (other.get(name), bound)
        if least is not None and most is not None and least > most:
            raise ValueError(f"{name}: min {least:g} is above max {most:g}; no value meets both")
    return value


def _column_list(value: list[str] | None, info: ValidationInfo) -> list[str] | None:
    """Columns a check names, when a policy is activated: an empty list
    compared nothing (and passed), a name given twice counted twice."""
    if value is None or not _activating(info):
        return value
    if not value:
        raise ValueError("empty; leave it out for the recipe's columns")
    twice = names.repeated(value)
    if twice is not None:
        raise ValueError(f"'{twice[1]}' given twice")
    return value


class PerformanceCheck(CheckSpec):
    """Thresholds on holdout metrics, each with a seeded bootstrap 95% interval."""

    kind: Literal["performance"] = "performance"
    min: dict[str, float] = Field(default_factory=dict)
    max: dict[str, float] = Field(default_factory=dict)
    bound: Literal["estimate", "interval"] = "estimate"
    bootstrap: int = Field(default=200, ge=0, le=10_000)

    @field_validator("min", "max")
    @classmethod
    def _metrics(cls, value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        return _met_bounds(_known_metrics(value), info)


class DriftCheck(CheckSpec):
    """Reference (training split) vs current (holdout or --data), per column."""

    kind: Literal["drift"] = "drift"
    columns: list[str] | None = None
    method: Literal["auto", "distance", "psi"] = "auto"
    threshold: float | None = Field(default=None, gt=0)
    share: float = Field(default=0.5, gt=0, le=1)

    _columns = field_validator("columns")(_column_list)


class FairnessCheck(CheckSpec):
    """Group fairness of a binary classifier on the holdout, per sensitive attribute."""

    kind: Literal["fairness"] = "fairness"
    attributes: list[str] | None = None
    max_demographic_parity_difference: float = Field(default=0.1, ge=0, le=1)
    min_demographic_parity_ratio: float = Field(default=0.8, ge=0, le=1)
    max_equalized_odds_difference: float = Field(default=0.1, ge=0, le=1)
    metric: str | None = None
    max_metric_gap: float | None = Field(default=None, ge=0)

    _attributes = field_validator("attributes")(_column_list)
    _metric = field_validator("metric")(_activated_metric)

    @field_validator("max_metric_gap")
    @classmethod
    def _gap_of(cls, value: float | None, info: ValidationInfo) -> float | None:
        # without a metric there is no gap: the bound was never applied
        if value is not None and _activating(info) and info.data.get("metric") is None:
            raise ValueError("needs `metric`: the metric whose gap between groups it bounds")
        return value


class ColumnContract(_Strict):
    dtype: Literal["int", "float", "number", "string", "bool"] | None = None
    min: float | None = None
    max: float | None = None
    allowed: list[str | int | float | bool] | None = None
    nullable: bool = True
    unique: bool = False
    required: bool = True

    @field_validator("min", "max")
    @classmethod
    def _range(cls, value: float | None, info: ValidationInfo) -> float | None:
        # bounds no value meets, or that a text column never compares against
        if value is None or not _activating(info):
            return value
        dtype = info.data.get("dtype")
        if dtype in ("string", "bool"):
            raise ValueError(f"a bound on numbers; the column's dtype is {dtype}")
        least = info.data.get("min")
        if info.field_name == "max" and least is not None and least > value:
            raise ValueError(f"{value:g} is below min {least:g}; no value meets both")
        return value

    @field_validator("allowed")
    @classmethod
    def _some_allowed(cls, value: list[Any] | None, info: ValidationInfo) -> list[Any] | None:
        if value is not None and not value and _activating(info):
            raise ValueError("empty: no value would be allowed; leave it out to allow any")
        return value


class SchemaCheck(CheckSpec):
    """A data contract on the current data, reported per column (every failing
    value counted). Inline, so the policy hash covers the contract."""

    kind: Literal["schema"] = "schema"
    columns: dict[str, ColumnContract] = Field(min_length=1)
    strict: bool = False  # columns outside the contract are failures


class QualityCheck(CheckSpec):
    """Missing values, duplicate rows, constant columns, and rows of the
    holdout that also appear in the training split (leakage)."""

    kind: Literal["quality"] = "quality"
    max_missing_share: float = Field(default=0.05, ge=0, le=1)
    max_duplicate_share: float = Field(default=0.01, ge=0, le=1)
    allow_constant: bool = False
    max_leakage_share: float = Field(default=0.0, ge=0, le=1)


class CalibrationCheck(CheckSpec):
    """Expected calibration error (equal-width bins) and Brier score of a binary classifier."""

    kind: Literal["calibration"] = "calibration"
    max_ece: float = Field(default=0.1, ge=0, le=1)
    max_brier: float | None = Field(default=None, ge=0, le=1)
    bins: int = Field(default=10, ge=2, le=100)


class SlicesCheck(CheckSpec):
    """The worst slice of a column against the overall metric."""

    kind: Literal["slices"] = "slices"
    column: str
    metric: str | None = None  # default: accuracy (classification) or r2 (regression)
    max_gap: float = Field(default=0.1, ge=0)
    bins: int = Field(default=5, ge=2, le=50)  # quantile bins for a numeric column
    min_rows: int = Field(default=30, ge=1)

    _metric = field_validator("metric")(_activated_metric)


class RobustnessCheck(CheckSpec):
    """The metric's drop under Gaussian noise, injected missing values and
    category swaps."""

    kind: Literal["robustness"] = "robustness"
    metric: str | None = None
    noise_std: float = Field(default=0.1, ge=0)  # k x each numeric column's std
    missing_rate: float = Field(default=0.05, ge=0, le=1)
    swap_rate: float = Field(default=0.05, ge=0, le=1)
    max_drop: float = Field(default=0.05, ge=0)

    _metric = field_validator("metric")(_activated_metric)


class ChampionCheck(CheckSpec):
    """The candidate against the version now in the exclusive stage, on the
    same holdout rows (TFMA-style thresholds)."""

    kind: Literal["champion"] = "champion"
    metric: str
    stage: str = "production"
    higher_is_better: bool = True
    min_absolute_change: float | None = None
    min_relative_change: float | None = None
    require_significant: bool = False
    bootstrap: int = Field(default=200, ge=10, le=10_000)
    missing_champion: Literal["pass", "fail"] = "pass"

    _metric = field_validator("metric")(_activated_metric)


class LatencyCheck(CheckSpec):
    """p50 and p95 of one-row prediction time on a sample of the current data.
    Timings vary from run to run, so the measurement is kept in the run but
    outside its result hash."""

    kind: Literal["latency"] = "latency"
    sample: int = Field(default=200, ge=10, le=100_000)
    max_p50_ms: float | None = Field(default=None, gt=0)
    max_p95_ms: float = Field(default=50.0, gt=0)


class ReproducibilityCheck(CheckSpec):
    """Retrains from the recorded recipe and data (`cmi reproduce`)."""

    kind: Literal["reproducibility"] = "reproducibility"
    require_identical_artifact: bool = True


# kind -> settings model; the validation layer implements each kind listed here
CHECK_SPECS: dict[str, type[CheckSpec]] = {
    "artifact": ArtifactCheck,
    "performance": PerformanceCheck,
    "drift": DriftCheck,
    "fairness": FairnessCheck,
    "schema": SchemaCheck,
    "quality": QualityCheck,
    "calibration": CalibrationCheck,
    "slices": SlicesCheck,
    "robustness": RobustnessCheck,
    "latency": LatencyCheck,
    "champion": ChampionCheck,
    "reproducibility": ReproducibilityCheck,
}


# what a monitoring window measures, beyond the holdout metrics (docs/production.md)
WINDOW_METRICS = (
    *METRICS,
    "error_rate",
    "drift_share",
    "prediction_drift",
    "missing_share",
    "demographic_parity_difference",
)


class Criteria(_Strict):
    """Bounds on a window's metrics: a window breaches when any metric it has
    is above its `max` or below its `min` (a metric it lacks does not count)."""

    max: dict[str, float] = Field(default_factory=dict)
    min: dict[str, float] = Field(default_factory=dict)

    @field_validator("min", "max")
    @classmethod
    def _metrics(cls, value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        return _met_bounds(_known_metrics(value, WINDOW_METRICS), info)

    def breaches(self, metrics: dict[str, float]) -> list[str]:
        out = []
        for name, bound in sorted(self.max.items()):
            if name in metrics and metrics[name] > bound:
                out.append(f"{name} {metrics[name]:.4g} > {bound:g}")
        for name, bound in sorted(self.min.items()):
            if name in metrics and metrics[name] < bound:
                out.append(f"{name} {metrics[name]:.4g} < {bound:g}")
        return out

    def __bool__(self) -> bool:
        return bool(self.max or self.min)


class Environment(_Strict):
    """Where versions serve. Only versions in `stages` take traffic here; a
    shadow (which takes none) may also come from `shadow_stages`."""

    stages: list[str] = Field(min_length=1)
    shadow_stages: list[str] = Field(default_factory=list)
    canary_steps: list[int] = Field(default_factory=lambda: [10, 25, 50, 100])
    # checked on each window of a canary's candidate: a breach rolls it back
    auto_rollback: Criteria = Field(default_factory=Criteria)
    # 0: a person advances; N: advance after N healthy windows at a step
    auto_advance_windows: int = Field(default=0, ge=0, le=100)
    # where the serving layer fetches an artifact ({sha256}, {model}, {version})
    storage_uri: str = "cmi://artifacts/sha256/{sha256}"

    @field_validator("canary_steps")
    @classmethod
    def _steps(cls, value: list[int]) -> list[int]:
        if not value or value[-1] != 100:
            raise ValueError("must end at 100")
        if any(not 0 < v <= 100 for v in value) or value != sorted(set(value)):
            raise ValueError("must rise strictly, each between 1 and 100")
        return value


class AgeTrigger(_Strict):
    max_days: int = Field(ge=1, le=3650)


class PerformanceTrigger(Criteria):
    windows: int = Field(default=3, ge=1, le=100)


class DriftTrigger(_Strict):
    share: float = Field(default=0.5, gt=0, le=1)
    windows: int = Field(default=1, ge=1, le=100)


class Triggers(_Strict):
    age: AgeTrigger | None = None
    performance: PerformanceTrigger | None = None
    drift: DriftTrigger | None = None


class Monitoring(_Strict):
    zombie_days: int = Field(default=7, ge=1, le=3650)
    significance: float = Field(default=0.05, gt=0, lt=1)
    power: float = Field(default=0.8, gt=0, lt=1)
    comparison_metric: str = "accuracy"
    triggers: Triggers = Field(default_factory=Triggers)

    @field_validator("comparison_metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value not in ("accuracy", "error_rate", "rmse", "mae"):
            raise ValueError("must be accuracy, error_rate, rmse or mae")
        return value


class Hook(_Strict):
    """Where an event goes after its transaction commits: a local command (the
    event JSON on stdin) or an HTTP POST signed with HMAC-SHA256 (the secret
    comes from the environment variable `secret_env`, never from the policy).
    A URL that is itself a secret (Slack's, Teams') comes from `url_env`."""

    events: list[str] = Field(min_length=1)
    url: str | None = None
    url_env: str | None = None
    command: list[str] | None = None
    secret_env: str | None = None
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    retries: int = Field(default=3, ge=1, le=10)  # attempts per delivery
    backoff_seconds: float = Field(default=0.5, ge=0, le=60)  # doubles after each attempt

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        from cmi_console.core.hooks import EVENTS, known_pattern

        for pattern in value:
            if not known_pattern(pattern):
                raise ValueError(f"'{pattern}' names no event (known: {', '.join(EVENTS)})")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            problem = url_problem(value) or (secret_in_url(value) if _activating(info) else None)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is not None and (not value or not all(value)):
            raise ValueError("must be a program and its arguments, none empty")
        if (
            value is not None
            and _activating(info)
            and "/" in value[0]
            and not value[0].startswith("/")
        ):
            # whoever delivers runs it: a CI job in its checkout, a reviewer's
            # console wherever it was started, so ./notify.sh is whatever file
            # has that name there
            raise ValueError(
                f"'{value[0]}' is a relative path, found from the working directory of "
                "whichever process delivers; give an absolute path or a program on PATH"
            )
        return value

    def target(self) -> str:
        if self.url_env is not None:
            return f"${self.url_env}"  # the name, never the secret URL
        return self.url or " ".join(self.command or [])


def _activating(info: ValidationInfo) -> bool:
    """Rules added after policies were first activated hold for a policy being
    activated (`check_document`), not for one already active: a workspace
    whose active policy broke a new rule would have refused every command on
    its models until someone activated another."""
    return bool(info.context and info.context.get("activating"))


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook's, or None."""
    if not url.startswith(("http://", "https://")):
        return "must be an http:// or https:// URL"
    if "@" in url.split("/", 3)[2]:
        # the policy's text is hashed into the log and shown by `policy
        # show`: a secret has no place in it (secret_env signs deliveries)
        return "must not hold credentials (user:password@); use url_env or secret_env"
    return None


# services whose incoming-webhook URL is itself the credential (whoever has
# it may post), and query parameters that carry one (Google Chat's key and
# token): such a URL belongs in url_env, never in the policy's audited text
_SECRET_URL_HOSTS = (
    "hooks.slack.com",
    "discord.com",
    "discordapp.com",
    "chat.googleapis.com",
    "webhook.office.com",
    "outlook.office.com",
)


# A path segment that looks like a generated token: most incoming-webhook
# services we do not name above (Mattermost, Rocket.Chat, n8n, webhook.site,
# Zapier's longer ids) put the credential in the path. Long, with many
# distinct characters, letters and digits alternating three times or more:
# words and numbers ("credit_risk_2026", "model-v2-eu1"), dates and short ids
# pass. A URL it refuses by mistake goes in url_env, which takes any URL.
_TOKEN_SEGMENT = re.compile(r"[A-Za-z0-9_-]{20,}")
_LETTER_DIGIT = re.compile(r"[A-Za-z](?=[0-9])|[0-9](?=[A-Za-z])")


def _looks_like_token(segment: str) -> bool:
    return (
        _TOKEN_SEGMENT.fullmatch(segment) is not None
        and len(set(segment)) >= 10
        and len(_LETTER_DIGIT.findall(segment)) >= 3
    )


def secret_in_url(url: str) -> str | None:
    """Why `url` would put a secret into the policy's audited text, or None.
    Only the parameter's name, or the segment's place, is said, never a value."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if any(host == h or host.endswith("." + h) for h in _SECRET_URL_HOSTS):
        return f"a {host} webhook URL is itself the credential; give it in url_env"
    for name, _value in parse_qsl(parts.query, keep_blank_values=True):
        if secret_name(name):
            return f"must not carry a credential in its query ({name}=...); use url_env"
    for i, segment in enumerate(parts.path.split("/")[1:], start=1):
        if any(_looks_like_token(piece) for piece in unquote(segment).split("/")):
            return (
                f"path segment {i} looks like a token ({len(segment)} characters); a URL "
                "that holds its credential goes in url_env"
            )
    return None


class Suite(_Strict):
    description: str = ""
    # kept raw here, parsed per kind by `specs` so errors name the check's key path
    checks: list[dict[str, Any]] = Field(min_length=1)

    def specs(self, where: str = "checks", *, strict: bool = False) -> list[CheckSpec]:
        out = []
        for i, raw in enumerate(self.checks):
            kind = raw.get("kind")
            spec = CHECK_SPECS.get(kind) if isinstance(kind, str) else None
            if spec is None:
                known = ", ".join(sorted(CHECK_SPECS))
                raise ValueError(f"{where}[{i}].kind: unknown check kind {kind!r} (known: {known})")
            try:
                out.append(spec.model_validate(raw, strict=strict, context={"activating": strict}))
            except ValidationError as exc:
                err = exc.errors()[0]
                raise ValueError(
                    f"{where}[{i}].{key_path(tuple(err['loc']))}: {_message(err)}"
                ) from None
        return out


class Policy(_Strict):
    format: Literal[1] = 1
    model: str | None = None
    description: str = ""
    initial_stage: str = "development"
    default_tier: str = "medium"
    tier: str | None = None
    stages: dict[str, Stage]
    tiers: dict[str, Tier]
    suites: dict[str, Suite] = Field(default_factory=dict)
    allow_pickle: bool = False
    break_glass_stages: list[str] = Field(default_factory=lambda: ["production"])
    environments: dict[str, Environment] = Field(default_factory=dict)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    hooks: dict[str, Hook] = Field(default_factory=dict)


def _name(value: str) -> str:
    try:
        names.key(value, "name")
    except BadInput:
        raise ValueError(f"'{value}' is not a valid name") from None
    return value


def sha256_of(content: Mapping[str, Any]) -> str:
    """A policy's version: the SHA-256 of its RFC 8785 canonical JSON."""
    return hashlib.sha256(canonical_bytes(dict(content))).hexdigest()


def read_toml(path: Path) -> dict[str, Any]:
    return parse_toml(read_document(path), str(path))


def parse_toml(text: str, where: str) -> dict[str, Any]:
    try:
        content = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{where}: invalid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per level of nesting
        raise BadInput(f"{where}: invalid TOML: nested too deeply") from None
    # TOML has nan, inf and integers of any size; JSON, and so the audited
    # content, has none of them (and a threshold of nan compares false both
    # ways, so it would pass anything)
    problem = unrepresentable(content)
    if problem:
        raise BadInput(f"{where}: {problem}")
    return content


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; everything else in the override replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + ("from" if part == "from_" else str(part))
    return out or "(top level)"


def _has_path(doc: Any, loc: tuple[int | str, ...]) -> bool:
    for part in loc:
        in_table = isinstance(part, str) and isinstance(doc, Mapping) and part in doc
        in_array = isinstance(part, int) and isinstance(doc, list) and part < len(doc)
        if not (in_table or in_array):
            return False
        doc = doc[part]
    return True


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def validate(
    doc: Mapping[str, Any],
    sources: list[tuple[str, Mapping[str, Any]]],
    *,
    activating: bool = False,
) -> Policy:
    """Validate a (merged) document; an error names the file that set the key.

    `sources` lists (label, raw document) from the most to the least specific;
    `activating` adds the rules that hold only for a policy being activated.
    """
    try:
        # strict when activating: lax validation took `count = true` as 1 and
        # `exclusive = 1` as true; a policy read back stays readable as it was
        policy = Policy.model_validate(
            dict(doc), strict=activating, context={"activating": activating}
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        label = next((lbl for lbl, raw in sources if _has_path(raw, loc)), sources[-1][0])
        raise BadInput(f"{label}: {key_path(loc)}: {_message(err)}") from None
    _check_references(policy, sources[0][0], strict=activating)
    if activating:  # after the hooks' own rules, which say where a URL's secret goes
        label, raw = sources[0]
        problem = credential_in(raw)
        if problem:  # a description quoting a link: the log keeps the text for good
            raise BadInput(f"{label}: {problem}")
    return policy


def _check_references(p: Policy, label: str, *, strict: bool) -> None:
    def bad(path: str, msg: str) -> BadInput:
        return BadInput(f"{label}: {path}: {msg}")

    for stage in p.stages:
        try:
            _name(stage)
        except ValueError as exc:
            raise bad(f"stages.{stage}", str(exc)) from None
    if p.initial_stage not in p.stages:
        raise bad("initial_stage", f"unknown stage '{p.initial_stage}'")
    if p.default_tier not in p.tiers:
        raise bad("default_tier", f"unknown tier '{p.default_tier}'")
    if p.tier is not None and p.tier not in p.tiers:
        raise bad("tier", f"unknown tier '{p.tier}'")
    if strict and p.stages[p.initial_stage].terminal:
        raise bad("initial_stage", f"'{p.initial_stage}' is terminal; nothing would leave it")
    for name, stage in p.stages.items():
        for i, src in enumerate(stage.from_):
            if src not in p.stages:
                raise bad(f"stages.{name}.from[{i}]", f"unknown stage '{src}'")
            if strict and p.stages[src].terminal:
                raise bad(f"stages.{name}.from[{i}]", f"'{src}' is terminal; nothing leaves it")
        if stage.suite is not None and stage.suite not in p.suites:
            raise bad(f"stages.{name}.suite", f"unknown suite '{stage.suite}'")
        if name != p.initial_stage and not stage.from_:
            raise bad(f"stages.{name}.from", "no stage leads here; list at least one")
    if any(s.exclusive for s in p.stages.values()) and ARCHIVED not in p.stages:
        raise bad(
            "stages", f"an exclusive stage needs a stage '{ARCHIVED}' for the versions it replaces"
        )
    if strict:  # a policy read back stays readable as it was
        # a role listed twice: a stage added the counts up and a tier took the
        # largest, so what the author meant cannot be told
        for path, approvals in (
            *((f"stages.{n}.approvals", st.approvals) for n, st in p.stages.items()),
            *((f"tiers.{n}.approvals", t.approvals) for n, t in p.tiers.items()),
        ):
            twice = names.repeated([a.role for a in approvals])
            if twice is not None:
                raise bad(f"{path}[{twice[0]}]", f"role '{twice[1]}' is listed twice; give it once")
    for tname, tier in p.tiers.items():
        for i, stage_name in enumerate(tier.applies_to):
            if stage_name not in p.stages:
                raise bad(f"tiers.{tname}.applies_to[{i}]", f"unknown stage '{stage_name}'")
    for tname, tier in p.tiers.items():
        for i, kind in enumerate(tier.required_checks):
            if kind not in CHECK_SPECS:
                raise bad(f"tiers.{tname}.required_checks[{i}]", f"unknown check kind '{kind}'")
    for i, stage_name in enumerate(p.break_glass_stages):
        if stage_name not in p.stages:
            raise bad(f"break_glass_stages[{i}]", f"unknown stage '{stage_name}'")
    for ename, env in p.environments.items():
        try:
            _name(ename)
        except ValueError as exc:
            raise bad(f"environments.{ename}", str(exc)) from None
        for key in ("stages", "shadow_stages"):
            for i, stage_name in enumerate(getattr(env, key)):
                if stage_name not in p.stages or p.stages[stage_name].terminal:
                    raise bad(
                        f"environments.{ename}.{key}[{i}]",
                        f"unknown or terminal stage '{stage_name}'",
                    )
    for hname, hook in p.hooks.items():
        given = [k for k in ("url", "url_env", "command") if getattr(hook, k) is not None]
        if len(given) != 1:
            raise bad(f"hooks.{hname}", "give exactly one of url, url_env and command")
        if hook.secret_env is not None and hook.command is not None:
            raise bad(f"hooks.{hname}.secret_env", "only a webhook (url, url_env) is signed")
    for sname, suite in p.suites.items():
        seen: set[str] = set()
        try:
            specs = suite.specs(f"suites.{sname}.checks", strict=strict)
        except ValueError as exc:
            raise BadInput(f"{label}: {exc}") from None
        for i, check in enumerate(specs):
            if check.label in seen:
                raise bad(
                    f"suites.{sname}.checks[{i}]",
                    f"two checks are labelled '{check.label}'; give one a `name`",
                )
            seen.add(check.label)


def tier_shortfalls(p: Policy, tier_name: str) -> list[str]:
    """Where the policy goes below its tier's minimum, one line per requirement."""
    tier = p.tiers[tier_name]
    out: list[str] = []
    for stage_name in tier.applies_to:
        stage = p.stages[stage_name]
        have = stage.approvals_by_role()
        for need in tier.approvals:
            if have.get(need.role, 0) < need.count:
                out.append(
                    f"stages.{stage_name}.approvals: tier '{tier_name}' requires "
                    f"{need.count} approval(s) by {need.role}, the policy asks for "
                    f"{have.get(need.role, 0)}"
                )
        kinds = {c.kind for c in p.suites[stage.suite].specs()} if stage.suite else set()
        for check in tier.required_checks:
            if check not in kinds:
                where = f"suite '{stage.suite}'" if stage.suite else "no suite"
                out.append(
                    f"stages.{stage_name}.suite: tier '{tier_name}' requires a {check} "
                    f"check, {where} has none"
                )
    return out


class Effective:
    """The policy that governs one model: default merged with its override,
    with its risk tier's minimums applied on top."""

    def __init__(self, policy: Policy, tier: str, sources: dict[str, str]) -> None:
        self.policy = policy
        self.tier = tier
        self.sources = sources  # scope -> sha256 of each contributing file
        dumped = policy.model_dump(mode="json", by_alias=True)
        # sections a policy leaves at their defaults stay out of its hash, so
        # approvals given before they existed still bind the same policy
        for key, empty in (("environments", {}), ("monitoring", Monitoring())):
            if getattr(policy, key) == empty:
                del dumped[key]
        # hooks route notifications, they do not govern: changing a webhook
        # must not make every approval stale
        del dumped["hooks"]
        self.document = {"policy": dumped, "tier": tier}
        self.sha256 = sha256_of(self.document)

    def stage(self, name: str) -> Stage:
        try:
            return self.policy.stages[name]
        except KeyError:
            known = ", ".join(self.policy.stages)
            raise BadInput(f"--to: unknown stage '{name}' (this policy has: {known})") from None

    def required_approvals(self, stage_name: str) -> dict[str, int]:
        """The stage's approvals, raised to the tier's minimum where it applies."""
        need = self.stage(stage_name).approvals_by_role()
        tier = self.policy.tiers[self.tier]
        if stage_name in tier.applies_to:
            for a in tier.approvals:
                need[a.role] = max(need.get(a.role, 0), a.count)
        return dict(sorted(need.items()))

    def environment(self, name: str) -> Environment:
        """An environment's deployment rules. Without an `environments` table,
        each environment a stage lists takes that stage's versions."""
        envs = self.environments()
        if name not in envs:
            known = ", ".join(envs) or "none"
            raise BadInput(f"--env: unknown environment '{name}' (this policy has: {known})")
        return envs[name]

    def environments(self) -> dict[str, Environment]:
        if self.policy.environments:
            return dict(self.policy.environments)
        out: dict[str, list[str]] = {}
        for sname, stage in self.policy.stages.items():
            if stage.terminal or sname == ARCHIVED:
                continue
            for env in stage.environments:
                out.setdefault(env, []).append(sname)
        return {env: Environment(stages=stages) for env, stages in out.items()}

    @property
    def progressive(self) -> bool:
        """The tier wants every replacement rolled out gradually."""
        return self.policy.tiers[self.tier].progressive_deployment

    def required_checks(self, stage_name: str) -> list[str]:
        tier = self.policy.tiers[self.tier]
        return list(tier.required_checks) if stage_name in tier.applies_to else []


def check_document(
    raw: Mapping[str, Any],
    label: str,
    default: Mapping[str, Any] | None,
    default_label: str = "active default policy",
) -> Policy:
    if "model" in raw:
        if default is None:
            raise BadInput(f"{label}: a model policy needs an active default policy to extend")
        if not isinstance(raw["model"], str):
            raise BadInput(f"{label}: model: must be a model name")
        for key in ("tiers", "default_tier"):
            if key in raw:
                # tiers are the floor every model stands on: only the default sets them
                raise BadInput(f"{label}: {key}: a model policy cannot change the tiers")
        merged = merge(default, raw)
        return validate(merged, [(label, raw), (default_label, default)], activating=True)
    return validate(raw, [(label, raw)], activating=True)


def effective(
    default: Mapping[str, Any],
    override: Mapping[str, Any] | None,
    tier: str | None,
    sources: dict[str, str],
) -> Effective:
    doc = merge(default, override) if override else dict(default)
    policy = validate(doc, [("active policy", doc)])
    return Effective(policy, tier or policy.tier or policy.default_tier, sources)
