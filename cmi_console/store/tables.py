"""Registry and log tables.

Every registry table has an integer `id` and is rebuilt, row for row, by
replaying the `changes` of the audit log (DESIGN.md invariant 6). Times are
text in clock.format_time form; JSON columns hold plain JSON values.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, Table, UniqueConstraint
from sqlmodel import Field, SQLModel


class Principal(SQLModel, table=True):
    __tablename__ = "principals"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=64)
    display_name: str = Field(default="", max_length=200)
    created_at: str = Field(max_length=32)
    created_by: str = Field(max_length=64)
    disabled: bool = False


class PublicKey(SQLModel, table=True):
    __tablename__ = "public_keys"
    id: int | None = Field(default=None, primary_key=True)
    principal_id: int = Field(foreign_key="principals.id", index=True)
    key_id: str = Field(unique=True, max_length=64)
    public_key: str = Field(max_length=64)  # base64 of the 32 raw bytes
    created_at: str = Field(max_length=32)
    revoked_at: str | None = Field(default=None, max_length=32)


class RoleGrant(SQLModel, table=True):
    __tablename__ = "role_grants"
    __table_args__ = (Index("ix_role_grants_principal_role", "principal_id", "role"),)
    id: int | None = Field(default=None, primary_key=True)
    principal_id: int = Field(foreign_key="principals.id")
    role: str = Field(max_length=32)
    granted_by: str = Field(max_length=64)
    granted_at: str = Field(max_length=32)
    revoked_by: str | None = Field(default=None, max_length=64)
    revoked_at: str | None = Field(default=None, max_length=32)


class Model(SQLModel, table=True):
    __tablename__ = "models"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=100)
    description: str = Field(default="", max_length=2000)
    owner: str = Field(max_length=64)
    created_at: str = Field(max_length=32)
    created_by: str = Field(max_length=64)
    # None: the policy's default tier
    risk_tier: str | None = Field(default=None, max_length=32)


class ModelConsumer(SQLModel, table=True):
    """Downstream systems told when a version of the model is retired."""

    __tablename__ = "model_consumers"
    __table_args__ = (UniqueConstraint("model_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id")
    name: str = Field(max_length=100)
    contact: str = Field(default="", max_length=200)
    added_at: str = Field(max_length=32)
    added_by: str = Field(max_length=64)


class Dataset(SQLModel, table=True):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, index=True)
    version: int
    content_sha256: str = Field(max_length=64, index=True)
    file_name: str = Field(max_length=255)
    file_format: str = Field(max_length=16)
    row_count: int
    columns: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    created_at: str = Field(max_length=32)
    created_by: str = Field(max_length=64)


class TrainingRun(SQLModel, table=True):
    __tablename__ = "training_runs"
    id: int | None = Field(default=None, primary_key=True)
    run_key: str = Field(unique=True, max_length=100)
    params: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    metrics: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    environment: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    code_ref: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    seed: int | None = None
    created_at: str = Field(max_length=32)
    created_by: str = Field(max_length=64)


class RunDataset(SQLModel, table=True):
    __tablename__ = "run_datasets"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="training_runs.id", index=True)
    dataset_id: int = Field(foreign_key="datasets.id", index=True)
    role: str = Field(max_length=32)


class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        # one version per model in each exclusive stage and environment: a
        # racing second promotion fails here even if the gate check raced
        Index("ux_model_versions_slot", "model_id", "slot", unique=True),
    )
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id")
    version: int
    artifact_sha256: str = Field(max_length=64, index=True)
    artifact_name: str = Field(max_length=255)
    artifact_format: str = Field(max_length=16)
    artifact_size: int
    author: str = Field(max_length=64)
    run_id: int | None = Field(default=None, foreign_key="training_runs.id")
    stage: str = Field(default="development", max_length=32, index=True)
    status: str = Field(default="active", max_length=32)
    description: str = Field(default="", max_length=2000)
    created_at: str = Field(max_length=32)
    # "stage@environment" while the version holds an exclusive stage
    slot: str | None = Field(default=None, max_length=100)
    environment: str | None = Field(default=None, max_length=64)
    break_glass: bool = False


class VersionDataset(SQLModel, table=True):
    __tablename__ = "version_datasets"
    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_versions.id", index=True)
    dataset_id: int = Field(foreign_key="datasets.id", index=True)
    role: str = Field(max_length=32)


class VersionMetric(SQLModel, table=True):
    __tablename__ = "version_metrics"
    __table_args__ = (
        UniqueConstraint("version_id", "key"),
        Index("ix_version_metrics_key_value", "key", "value"),
    )
    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_versions.id")
    key: str = Field(max_length=100)
    value: float


class VersionTag(SQLModel, table=True):
    __tablename__ = "version_tags"
    __table_args__ = (
        UniqueConstraint("version_id", "key"),
        Index("ix_version_tags_key_value", "key", "value"),
    )
    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_versions.id")
    key: str = Field(max_length=100)
    value: str = Field(max_length=500)


class Alias(SQLModel, table=True):
    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("model_id", "alias"),)
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id")
    alias: str = Field(max_length=100)
    version_id: int = Field(foreign_key="model_versions.id")


class PolicyRow(SQLModel, table=True):
    """An activated policy file; the active one per scope governs its models."""

    __tablename__ = "policies"
    __table_args__ = (Index("ix_policies_scope_active", "scope", "active"),)
    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(max_length=100)  # "default" or a model name
    sha256: str = Field(max_length=64)
    source: str = Field(max_length=255)
    content: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    active: bool = True
    activated_at: str = Field(max_length=32)
    activated_by: str = Field(max_length=64)


class ValidationRun(SQLModel, table=True):
    __tablename__ = "validation_runs"
    __table_args__ = (Index("ix_validation_runs_version_suite", "version_id", "suite"),)
    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_versions.id")
    suite: str = Field(max_length=100)
    policy_sha256: str = Field(max_length=64)
    result_sha256: str = Field(max_length=64)
    status: str = Field(max_length=16)  # pass | fail | error
    results: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    inputs: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    seed: int
    environment: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    run_by: str = Field(max_length=64)
    started_at: str = Field(max_length=32)
    finished_at: str = Field(max_length=32)


class PromotionRequest(SQLModel, table=True):
    __tablename__ = "promotion_requests"
    __table_args__ = (Index("ix_promotion_requests_status", "status", "version_id"),)
    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_versions.id")
    to_stage: str = Field(max_length=32)
    environment: str | None = Field(default=None, max_length=64)
    requested_by: str = Field(max_length=64)
    comment: str = Field(default="", max_length=2000)
    created_at: str = Field(max_length=32)
    status: str = Field(default="open", max_length=16)  # open | rejected | done | withdrawn
    closed_at: str | None = Field(default=None, max_length=32)
    closed_by: str | None = Field(default=None, max_length=64)


class Decision(SQLModel, table=True):
    """An approval or rejection: the signed statement, checked on every read."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_request", "request_id"),)
    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="promotion_requests.id")
    version_id: int = Field(foreign_key="model_versions.id")
    principal: str = Field(max_length=64)
    decision: str = Field(max_length=16)
    statement: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    key_id: str = Field(max_length=64)
    signature: str = Field(max_length=200)
    created_at: str = Field(max_length=32)


class Retirement(SQLModel, table=True):
    __tablename__ = "retirements"
    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_versions.id", unique=True)
    reason: str = Field(max_length=2000)
    successor_id: int | None = Field(default=None, foreign_key="model_versions.id")
    archive: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    archive_sha256: str = Field(max_length=64)
    consumers: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    retired_at: str = Field(max_length=32)
    retired_by: str = Field(max_length=64)


class BreakGlass(SQLModel, table=True):
    """An emergency promotion: two distinct admins sign it."""

    __tablename__ = "break_glass"
    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_versions.id")
    to_stage: str = Field(max_length=32)
    environment: str | None = Field(default=None, max_length=64)
    reason: str = Field(max_length=2000)
    # [{principal, key_id, signature, statement}], one per admin
    signatures: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=16)  # pending | executed | expired
    incident_id: int | None = Field(default=None, foreign_key="incidents.id")
    created_at: str = Field(max_length=32)
    executed_at: str | None = Field(default=None, max_length=32)


class Incident(SQLModel, table=True):
    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_status", "status", "model_id"),)
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id")
    title: str = Field(max_length=300)
    severity: str = Field(max_length=16)
    kind: str = Field(default="incident", max_length=32)
    status: str = Field(default="open", max_length=16)
    details: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    opened_at: str = Field(max_length=32)
    opened_by: str = Field(max_length=64)
    closed_at: str | None = Field(default=None, max_length=32)
    closed_by: str | None = Field(default=None, max_length=64)
    root_cause: str | None = Field(default=None, max_length=4000)
    # when it happened (opened_at is when it was reported)
    occurred_at: str | None = Field(default=None, max_length=32)


class IncidentNote(SQLModel, table=True):
    __tablename__ = "incident_notes"
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True)
    text: str = Field(max_length=4000)
    created_at: str = Field(max_length=32)
    created_by: str = Field(max_length=64)


class IncidentLink(SQLModel, table=True):
    """An incident points at a version, a log entry or a validation run."""

    __tablename__ = "incident_links"
    __table_args__ = (UniqueConstraint("incident_id", "kind", "ref"),)
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id")
    kind: str = Field(max_length=16)
    ref: str = Field(max_length=200)
    created_at: str = Field(max_length=32)
    created_by: str = Field(max_length=64)


class LineageEdge(SQLModel, table=True):
    """How one node came from another: (src) -[relation]-> (dst). Nodes are
    (kind, id): dataset, recipe (its SHA-256), run, version, validation,
    decision, incident, and later deployment and window."""

    __tablename__ = "lineage_edges"
    __table_args__ = (
        Index("ix_lineage_edges_src", "src_kind", "src_id"),
        Index("ix_lineage_edges_dst", "dst_kind", "dst_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    src_kind: str = Field(max_length=16)
    src_id: str = Field(max_length=100)
    dst_kind: str = Field(max_length=16)
    dst_id: str = Field(max_length=100)
    relation: str = Field(max_length=40)
    created_at: str = Field(max_length=32)


class Deployment(SQLModel, table=True):
    """One candidate version rolled out in one environment (core.deployments)."""

    __tablename__ = "deployments"
    __table_args__ = (Index("ix_deployments_env", "model_id", "environment", "status"),)
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id")
    environment: str = Field(max_length=64)
    version_id: int = Field(foreign_key="model_versions.id", index=True)
    # the version serving the environment when it started (None: the first)
    stable_version_id: int | None = Field(default=None, foreign_key="model_versions.id")
    strategy: str = Field(max_length=16)
    status: str = Field(max_length=16)
    traffic: int
    mirror: int = 0
    segments: list[str] = Field(sa_column=Column(JSON, nullable=False))
    created_at: str = Field(max_length=32)
    created_by: str = Field(max_length=64)
    updated_at: str = Field(max_length=32)
    ended_at: str | None = Field(default=None, max_length=32)


class DeploymentEvent(SQLModel, table=True):
    """The environment's traffic after each deployment action: who serves
    which share, from when. `shares` and `mirror` map version numbers to percent."""

    __tablename__ = "deployment_events"
    __table_args__ = (Index("ix_deployment_events_env", "model_id", "environment", "created_at"),)
    id: int | None = Field(default=None, primary_key=True)
    deployment_id: int = Field(foreign_key="deployments.id", index=True)
    model_id: int = Field(foreign_key="models.id")
    environment: str = Field(max_length=64)
    action: str = Field(max_length=32)
    status: str = Field(max_length=16)
    shares: dict[str, int] = Field(sa_column=Column(JSON, nullable=False))
    mirror: dict[str, int] = Field(sa_column=Column(JSON, nullable=False))
    reason: str = Field(default="", max_length=2000)
    created_at: str = Field(max_length=32)
    created_by: str = Field(max_length=64)


class MonitoringWindow(SQLModel, table=True):
    """A window of production feedback and what was measured on it. The rows
    are in the artifact store (`data_sha256`); `metrics` hash to `result_sha256`."""

    __tablename__ = "monitoring_windows"
    __table_args__ = (Index("ix_monitoring_windows_env", "model_id", "environment"),)
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id")
    environment: str = Field(max_length=64)
    deployment_id: int | None = Field(default=None, foreign_key="deployments.id")
    name: str = Field(max_length=200)
    rows: int
    period_start: str | None = Field(default=None, max_length=32)
    period_end: str | None = Field(default=None, max_length=32)
    data_sha256: str = Field(max_length=64)
    data_format: str = Field(max_length=16)
    labels_sha256: str | None = Field(default=None, max_length=64)
    versions: list[int] = Field(sa_column=Column(JSON, nullable=False))
    metrics: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # per version, the flat metrics triggers read (status reads only these)
    summary: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    result_sha256: str = Field(max_length=64)
    created_at: str = Field(max_length=32)
    created_by: str = Field(max_length=64)
    labelled_at: str | None = Field(default=None, max_length=32)


class Alert(SQLModel, table=True):
    """A trigger that fired (performance, drift, age, canary) and the windows
    that fired it."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_status", "status", "model_id"),)
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id")
    environment: str = Field(max_length=64)
    version_id: int = Field(foreign_key="model_versions.id")
    kind: str = Field(max_length=32)
    status: str = Field(default="open", max_length=16)
    message: str = Field(max_length=2000)
    windows: list[int] = Field(sa_column=Column(JSON, nullable=False))
    created_at: str = Field(max_length=32)
    created_by: str = Field(max_length=64)
    closed_at: str | None = Field(default=None, max_length=32)
    closed_by: str | None = Field(default=None, max_length=64)


class RetrainRequest(SQLModel, table=True):
    """Retraining asked for by an alert; `candidate_id` once it is trained."""

    __tablename__ = "retrain_requests"
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True)
    alert_id: int = Field(foreign_key="alerts.id")
    version_id: int = Field(foreign_key="model_versions.id")
    status: str = Field(default="open", max_length=16)
    candidate_id: int | None = Field(default=None, foreign_key="model_versions.id")
    created_at: str = Field(max_length=32)
    created_by: str = Field(max_length=64)
    closed_at: str | None = Field(default=None, max_length=32)


class HookDelivery(SQLModel, table=True):
    """One event for one hook: queued in the transaction that logged the
    event, delivered after it commits. Operational, not registry state: it is
    not rebuilt from the log (the event itself is the log entry `seq`)."""

    __tablename__ = "hook_deliveries"
    __table_args__ = (
        UniqueConstraint("seq", "hook"),
        Index("ix_hook_deliveries_status", "status"),
    )
    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(foreign_key="audit_entries.seq")
    event: str = Field(max_length=64)
    hook: str = Field(max_length=64)
    model: str | None = Field(default=None, max_length=200)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    created_at: str = Field(max_length=32)
    updated_at: str = Field(max_length=32)


class AuditEntry(SQLModel, table=True):
    """The log. Append-only: triggers refuse UPDATE and DELETE (migration 0001)."""

    __tablename__ = "audit_entries"
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    prev: str = Field(unique=True, max_length=64)
    hash: str = Field(unique=True, max_length=64)
    time: str = Field(max_length=32, index=True)
    actor: str = Field(max_length=64, index=True)
    action: str = Field(max_length=64, index=True)
    subject: str = Field(max_length=200, index=True)
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class CheckpointRow(SQLModel, table=True):
    """A signed tree head, written in the same transaction as the entries it covers."""

    __tablename__ = "checkpoints"
    id: int | None = Field(default=None, primary_key=True)
    size: int = Field(index=True)
    root: str = Field(max_length=64)
    note: str = Field(max_length=2000)
    peaks: list[str] = Field(sa_column=Column(JSON, nullable=False))
    created_at: str = Field(max_length=32)


def table(model: type[SQLModel]) -> Table:
    return model.__table__  # type: ignore[attr-defined,no-any-return]


# Rebuilt from the log by `cmi audit verify`; order is the order of replay checks.
REGISTRY_TABLES: dict[str, Table] = {
    table(m).name: table(m)
    for m in (
        Principal,
        PublicKey,
        RoleGrant,
        Model,
        ModelConsumer,
        Dataset,
        TrainingRun,
        RunDataset,
        ModelVersion,
        VersionDataset,
        VersionMetric,
        VersionTag,
        Alias,
        PolicyRow,
        ValidationRun,
        PromotionRequest,
        Decision,
        Incident,
        IncidentNote,
        IncidentLink,
        LineageEdge,
        Retirement,
        BreakGlass,
        Deployment,
        DeploymentEvent,
        MonitoringWindow,
        Alert,
        RetrainRequest,
    )
}
metadata = SQLModel.metadata

# Every column that names a file in the artifact store (`verify --artifacts`
# re-hashes them; a failed write keeps the files one of them names).
ARTIFACT_COLUMNS: tuple[tuple[Table, str], ...] = (
    (table(ModelVersion), "artifact_sha256"),
    (table(Dataset), "content_sha256"),
    (table(MonitoringWindow), "data_sha256"),
    (table(MonitoringWindow), "labels_sha256"),
)
