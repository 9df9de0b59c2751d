"""The key numbers of a trial-run report, for the sign-off form; re-exported by :mod:`tasks.report`.

The report's digest covers its Markdown and chart only (what both parties sign), and the ledger
keeps the report as that text. The numbers the form shows inline are taken from the same
evidence when the report is issued (:func:`summarize`) and kept with the ids of the report's
Prefect artifacts in one audit event ``report.published`` on ``system:<id>``
(:func:`record_published`): hash-chained like every event, no new table or column, and no change
to what the report digest covers. :func:`report_summary` and :func:`report_artifact_id` read it
back for one report digest; a report issued before this existed has neither (None).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import pydantic
import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from cutover import audit
from cutover.ledger import AuditEvent, Ledger, ReportKind
from tasks._report_models import InternalTestResult, ReportEvidence
from tasks.loadtest import ThresholdVerdict

REPORT_PUBLISHED = "report.published"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StressSummary(_Frozen):
    """The stress test in a few numbers, with every threshold's verdict."""

    passed: bool
    users: int
    duration_s: int = Field(description="The planned duration of the spec.")
    elapsed_s: float
    requests: int
    failures: int
    failure_ratio: float
    p95_ms: float | None
    rps: float
    thresholds: tuple[ThresholdVerdict, ...]
    reason: str | None = None

    def verdict(self, name: str) -> ThresholdVerdict | None:
        """The verdict of threshold ``name`` (``p95_ms``, ``failure_ratio``, ``min_rps``), if the spec set one."""
        return next((v for v in self.thresholds if v.name == name), None)


class TrialRunSummary(_Frozen):
    """The trial-run period and its health samples."""

    period_start: AwareDatetime
    period_end: AwareDatetime
    minimum: timedelta | None = Field(description="The trial-run length the spec requires; None if unknown.")
    checks: int = Field(ge=0)
    failures: int = Field(ge=0)

    @property
    def length(self) -> timedelta:
        """How long the trial run lasted."""
        return self.period_end - self.period_start

    @property
    def long_enough(self) -> bool | None:
        """The period lasted at least the spec's minimum; None when the minimum is unknown."""
        return None if self.minimum is None else self.length >= self.minimum


class ReportSummary(_Frozen):
    """What the sign-off form shows inline about one trial-run report."""

    report_digest: str
    issued_at: AwareDatetime
    tests_passed: bool
    stress: StressSummary
    internal_tests: tuple[InternalTestResult, ...]
    trial_run: TrialRunSummary
    open_problems: tuple[str, ...] = ()


def summarize(evidence: ReportEvidence, report_digest: str, *, trial_run_minimum: timedelta | None) -> ReportSummary:
    """The key numbers of the report rendered from ``evidence`` (a pure function, like the report)."""
    stress, health = evidence.stress, evidence.health
    return ReportSummary(
        report_digest=report_digest,
        issued_at=evidence.issued_at,
        tests_passed=evidence.tests_passed,
        stress=StressSummary(
            passed=stress.passed,
            users=evidence.environment.users,
            duration_s=evidence.environment.duration_s,
            elapsed_s=stress.elapsed_s,
            requests=stress.requests,
            failures=stress.overall.failures if stress.overall else 0,
            failure_ratio=stress.failure_ratio,
            p95_ms=stress.overall.p95_ms if stress.overall else None,
            rps=stress.rps,
            thresholds=stress.thresholds,
            reason=stress.reason,
        ),
        internal_tests=evidence.internal_tests,
        trial_run=TrialRunSummary(
            period_start=health.period_start,
            period_end=health.period_end,
            minimum=trial_run_minimum,
            checks=health.checks,
            failures=health.failures,
        ),
        open_problems=evidence.open_problems,
    )


def record_published(
    ledger: Ledger,
    system_id: str,
    summary: ReportSummary,
    *,
    artifact_id: UUID | None,
    table_artifact_id: UUID | None = None,
    actor: str = "report",
) -> None:
    """Keep ``summary`` and the report's artifact ids in the audit trail (``report.published``)."""
    detail: dict[str, Any] = {
        "kind": ReportKind.TRIAL_RUN.value,
        "report_digest": summary.report_digest,
        "artifact_id": str(artifact_id) if artifact_id else None,
        "table_artifact_id": str(table_artifact_id) if table_artifact_id else None,
        "summary": summary.model_dump(mode="json"),
    }
    with ledger.session() as session:
        audit.append(session, actor=actor, action=REPORT_PUBLISHED, object=f"system:{system_id}", detail=detail)


def report_summary(ledger: Ledger, system_id: str, report_digest: str) -> ReportSummary | None:
    """The key numbers kept for the report ``report_digest``; None if none were kept (or they no longer parse)."""
    detail = _published(ledger, system_id, report_digest)
    if detail is None:
        return None
    try:
        return ReportSummary.model_validate(detail.get("summary"))
    except pydantic.ValidationError:
        return None


def report_artifact_id(ledger: Ledger, system_id: str, report_digest: str) -> UUID | None:
    """The id of the Markdown artifact that shows the report ``report_digest`` in the Prefect UI, if kept."""
    detail = _published(ledger, system_id, report_digest)
    value = detail.get("artifact_id") if detail else None
    return UUID(str(value)) if value else None


def _published(ledger: Ledger, system_id: str, report_digest: str) -> dict[str, Any] | None:
    statement = (
        sa.select(AuditEvent.detail)
        .where(AuditEvent.object == f"system:{system_id}", AuditEvent.action == REPORT_PUBLISHED)
        .order_by(AuditEvent.seq.desc())
    )
    with ledger.session() as session:
        for detail in session.scalars(statement):
            if detail.get("report_digest") == report_digest:
                return dict(detail)
    return None
