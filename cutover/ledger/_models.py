"""The ledger's tables as typed SQLAlchemy 2 ORM classes.

The schema itself is created only by the Alembic migrations in ``migrations/versions``; a test
checks that these classes and the migrated database agree. Rows returned by :class:`Ledger`
methods are detached snapshots: change the ledger through its methods, never by mutating them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cutover.ledger._enums import (
    AuditOutcome,
    Decision,
    Disposition,
    ExemptionDecision,
    LifecycleState,
    Party,
    ProbeStatus,
    ReportKind,
    RetentionCloseReason,
    RoadmapStatus,
    RunKind,
    RunState,
    StepPhase,
    StepStatus,
)
from cutover.ledger._types import UTCDateTime, enum_type

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_DIGEST = sa.String(100)
_ID = sa.String(128)
_RUN_ID = sa.String(36)


class Base(DeclarativeBase):
    """Declarative base with a naming convention, UTC datetimes and JSON dicts."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: sa.JSON()}


def _system_fk() -> Mapped[str]:
    return mapped_column(_ID, sa.ForeignKey("systems.id"), index=True)


def _run_fk() -> Mapped[str]:
    return mapped_column(_RUN_ID, sa.ForeignKey("cutover_runs.id"), index=True)


class System(Base):
    """One information system from the plan, and where it stands in the lifecycle."""

    __tablename__ = "systems"

    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(256))
    department: Mapped[str] = mapped_column(sa.String(256))
    disposition: Mapped[Disposition] = mapped_column(enum_type(Disposition, "disposition"))
    state: Mapped[LifecycleState] = mapped_column(enum_type(LifecycleState, "lifecycle_state"))
    spec_digest: Mapped[str | None] = mapped_column(_DIGEST)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PlanEntry(Base):
    """The system's row of the plan table (attachment 2), as exported."""

    __tablename__ = "plan_entries"

    system_id: Mapped[str] = mapped_column(_ID, sa.ForeignKey("systems.id"), primary_key=True)
    fields: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class Run(Base):
    """One run of one system: a cutover, a rollback or a decommission (table ``cutover_runs``)."""

    __tablename__ = "cutover_runs"

    id: Mapped[str] = mapped_column(_RUN_ID, primary_key=True)
    system_id: Mapped[str] = _system_fk()
    kind: Mapped[RunKind] = mapped_column(enum_type(RunKind, "run_kind"))
    flow_run_id: Mapped[str | None] = mapped_column(_RUN_ID)
    state: Mapped[RunState] = mapped_column(enum_type(RunState, "run_state"))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    reverses_run_id: Mapped[str | None] = mapped_column(_RUN_ID, sa.ForeignKey("cutover_runs.id"))
    note: Mapped[str | None] = mapped_column(sa.Text)


class StepExecution(Base):
    """One execution of one step of one run, written before and after it acts.

    Keyed by (run id, step key, attempt): a key is executed again as a new attempt, the earlier
    rows stay as history. ``step_digest`` is the digest of the step definition that ran (NULL only
    on rows recorded before step digests existed; such a row never counts as a result). The
    database refuses DELETE, and UPDATE except the one that finishes a started row.
    """

    __tablename__ = "step_executions"
    __table_args__ = (sa.UniqueConstraint("run_id", "step_id", "attempt"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(_RUN_ID, sa.ForeignKey("cutover_runs.id"))
    step_id: Mapped[str] = mapped_column(_ID)
    attempt: Mapped[int] = mapped_column(server_default=sa.text("1"))
    step_digest: Mapped[str | None] = mapped_column(_DIGEST)
    system_id: Mapped[str] = _system_fk()
    phase: Mapped[StepPhase] = mapped_column(enum_type(StepPhase, "step_phase"))
    host: Mapped[str | None] = mapped_column(_ID)
    status: Mapped[StepStatus] = mapped_column(enum_type(StepStatus, "step_status"))
    exit_status: Mapped[int | None]
    duration_s: Mapped[float | None]
    output_tail: Mapped[str] = mapped_column(sa.Text)
    detail: Mapped[dict[str, Any]]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class Report(Base):
    """A trial-run or decommission report and its digest (what the parties sign)."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = _run_fk()
    system_id: Mapped[str] = _system_fk()
    kind: Mapped[ReportKind] = mapped_column(enum_type(ReportKind, "report_kind"))
    content: Mapped[str] = mapped_column(sa.Text)
    digest: Mapped[str] = mapped_column(_DIGEST)
    created_at: Mapped[datetime]
    voided_at: Mapped[datetime | None]


class Approver(Base):
    """An enrolled approver: their party, and for the TOTP light mode the secret (encrypted, never in clear).

    An approver who signs with an SM2 key has no TOTP secret (``totp_secret_encrypted`` NULL);
    their public keys are in :class:`ApproverKey`.
    """

    __tablename__ = "approvers"

    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(256))
    party: Mapped[Party | None] = mapped_column(enum_type(Party, "party"))
    totp_secret_encrypted: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    enrolled_at: Mapped[datetime]
    last_used_counter: Mapped[int | None] = mapped_column(sa.BigInteger)


class ApproverKey(Base):
    """One SM2 public key of an approver, who enrolled it, and when it was revoked.

    An approver has at most one active key (``revoked_at`` NULL); a replaced or revoked key is
    kept, so signatures made with it can be verified years later. A key belongs to one approver
    only (``fingerprint`` is unique).
    """

    __tablename__ = "approver_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    approver_id: Mapped[str] = mapped_column(_ID, sa.ForeignKey("approvers.id"), index=True)
    party: Mapped[Party] = mapped_column(enum_type(Party, "party"))
    public_key_pem: Mapped[str] = mapped_column(sa.Text)
    fingerprint: Mapped[str] = mapped_column(_DIGEST, unique=True)
    source: Mapped[str] = mapped_column(sa.String(512))
    enrolled_at: Mapped[datetime]
    enrolled_by: Mapped[str] = mapped_column(_ID)
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(_ID)


class Signature(Base):
    """One party's decision on one report; voided (never deleted) when the report is.

    ``proof`` says how the approver proved it (``"sm2"`` or ``"totp"``; NULL on rows from before
    proofs were recorded). For SM2 the row keeps the signed ``statement``, the base64
    ``signature`` and the fingerprint of the key that verified it; ``statement_digest`` is unique,
    so one statement is accepted at most once, ever.
    """

    __tablename__ = "signatures"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = _run_fk()
    system_id: Mapped[str] = _system_fk()
    party: Mapped[Party] = mapped_column(enum_type(Party, "party"))
    approver_id: Mapped[str] = mapped_column(_ID, sa.ForeignKey("approvers.id"))
    decision: Mapped[Decision] = mapped_column(enum_type(Decision, "decision"))
    comment: Mapped[str] = mapped_column(sa.Text)
    report_digest: Mapped[str] = mapped_column(_DIGEST)
    spec_digest: Mapped[str] = mapped_column(_DIGEST)
    signed_at: Mapped[datetime]
    valid: Mapped[bool]
    voided_at: Mapped[datetime | None]
    proof: Mapped[str | None] = mapped_column(sa.String(16))
    statement: Mapped[str | None] = mapped_column(sa.Text)
    signature: Mapped[str | None] = mapped_column(sa.Text)
    key_fingerprint: Mapped[str | None] = mapped_column(_DIGEST)
    statement_digest: Mapped[str | None] = mapped_column(_DIGEST, unique=True)


class RetentionWindow(Base):
    """The period the original system is kept as the way back after a cutover."""

    __tablename__ = "retention_windows"

    id: Mapped[int] = mapped_column(primary_key=True)
    system_id: Mapped[str] = _system_fk()
    cutover_run_id: Mapped[str] = mapped_column(_RUN_ID, sa.ForeignKey("cutover_runs.id"))
    opened_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    close_reason: Mapped[RetentionCloseReason | None] = mapped_column(enum_type(RetentionCloseReason, "close_reason"))


class Lock(Base):
    """The one lock per system: inserting it is acquiring it, deleting it is releasing it."""

    __tablename__ = "locks"

    system_id: Mapped[str] = mapped_column(_ID, sa.ForeignKey("systems.id"), primary_key=True)
    holder_run_id: Mapped[str] = mapped_column(_RUN_ID, sa.ForeignKey("cutover_runs.id"))
    kind: Mapped[RunKind] = mapped_column(enum_type(RunKind, "run_kind"))
    acquired_at: Mapped[datetime]


class HealthObservation(Base):
    """Health probes of one check, aggregated per hour so months of watching stay small."""

    __tablename__ = "health_observations"
    __table_args__ = (sa.UniqueConstraint("system_id", "check_name", "bucket_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    system_id: Mapped[str] = mapped_column(_ID, sa.ForeignKey("systems.id"))
    check_name: Mapped[str] = mapped_column(_ID)
    bucket_start: Mapped[datetime]
    checks: Mapped[int]
    failures: Mapped[int]
    latency_sum_ms: Mapped[float]
    latency_max_ms: Mapped[float]
    last_status: Mapped[ProbeStatus] = mapped_column(enum_type(ProbeStatus, "probe_status"))
    last_at: Mapped[datetime]
    consecutive_failures: Mapped[int]


class StressResult(Base):
    """The metrics of one stress test and whether they met the thresholds."""

    __tablename__ = "stress_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = _run_fk()
    system_id: Mapped[str] = _system_fk()
    metrics: Mapped[dict[str, Any]]
    passed: Mapped[bool]
    created_at: Mapped[datetime]


class AuditEvent(Base):
    """One link of the hash-chained audit trail. The database refuses UPDATE and DELETE."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(_ID)
    action: Mapped[str] = mapped_column(_ID)
    object: Mapped[str] = mapped_column(sa.String(256), index=True)
    outcome: Mapped[AuditOutcome] = mapped_column(enum_type(AuditOutcome, "audit_outcome"))
    detail: Mapped[dict[str, Any]]
    prev_digest: Mapped[str] = mapped_column(_DIGEST)
    digest: Mapped[str] = mapped_column(_DIGEST, unique=True)


class AuditChainHead(Base):
    """The single row naming the chain's last link; appenders lock it to serialize.

    ``anchor_seq``/``anchor_digest`` name the last event removed by a DBA purge (0 and "" when
    nothing was ever purged): verification starts from there.
    """

    __tablename__ = "audit_chain_head"
    __table_args__ = (sa.CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int]
    digest: Mapped[str] = mapped_column(_DIGEST)
    anchor_seq: Mapped[int]
    anchor_digest: Mapped[str] = mapped_column(_DIGEST)


class DivergenceBaseline(Base):
    """The cloud copy as it was at a cutover, after its data verification (per table: counters or chunks)."""

    __tablename__ = "divergence_baselines"

    id: Mapped[int] = mapped_column(primary_key=True)
    system_id: Mapped[str] = _system_fk()
    cutover_run_id: Mapped[str] = mapped_column(_RUN_ID, sa.ForeignKey("cutover_runs.id"), unique=True)
    taken_at: Mapped[datetime]
    tables: Mapped[dict[str, Any]]


class DivergenceSample(Base):
    """How far the cloud copy has moved since the cutover, as the watch measured it (newest of the hour)."""

    __tablename__ = "divergence_samples"
    __table_args__ = (sa.UniqueConstraint("system_id", "bucket_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    system_id: Mapped[str] = mapped_column(_ID, sa.ForeignKey("systems.id"))
    cutover_run_id: Mapped[str] = mapped_column(_RUN_ID, sa.ForeignKey("cutover_runs.id"))
    bucket_start: Mapped[datetime]
    taken_at: Mapped[datetime]
    changed_rows: Mapped[int | None] = mapped_column(sa.BigInteger)
    approximate: Mapped[bool]
    lag_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    behind_s: Mapped[float | None]
    detail: Mapped[dict[str, Any]]


def _status(column: str) -> Mapped[RoadmapStatus]:
    return mapped_column(enum_type(RoadmapStatus, f"{column}_status"))


class Roadmap(Base):
    """The system's timetable and roadmap: planned dates, the network move, each adaptation item.

    Written by ``cutover plan import`` (``source`` "plan-table"); a spec registered later for the
    same system takes it over (``source`` "spec", the cutover date from the spec).
    """

    __tablename__ = "roadmaps"

    system_id: Mapped[str] = mapped_column(_ID, sa.ForeignKey("systems.id"), primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(16))
    test_on: Mapped[date | None]
    signoff_on: Mapped[date | None]
    cutover_on: Mapped[date | None]
    retention_ends_on: Mapped[date | None]
    decommission_on: Mapped[date | None]
    network_move: Mapped[RoadmapStatus] = _status("network_move")
    code_optimisation: Mapped[RoadmapStatus] = _status("code_optimisation")
    database_update: Mapped[RoadmapStatus] = _status("database_update")
    os_upgrade: Mapped[RoadmapStatus] = _status("os_upgrade")
    operator: Mapped[str | None] = mapped_column(sa.String(256))
    exemption_reason: Mapped[str | None] = mapped_column(sa.Text)
    updated_at: Mapped[datetime]


class ExemptionRuling(Base):
    """The expert panel's ruling on a system declared unable to migrate (never updated nor deleted)."""

    __tablename__ = "exemption_rulings"

    id: Mapped[int] = mapped_column(primary_key=True)
    system_id: Mapped[str] = _system_fk()
    decision: Mapped[ExemptionDecision] = mapped_column(enum_type(ExemptionDecision, "exemption_decision"))
    ruled_on: Mapped[date]
    panel: Mapped[list[str]] = mapped_column(sa.JSON)
    document: Mapped[str] = mapped_column(sa.String(128))
    reason: Mapped[str] = mapped_column(sa.Text)
    recorded_at: Mapped[datetime]
    recorded_by: Mapped[str] = mapped_column(_ID)
