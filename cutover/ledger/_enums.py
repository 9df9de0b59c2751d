"""Every enumerated value the ledger stores; each column holding one is an ``sa.Enum``.

The lifecycle states live here (and are re-exported by :mod:`cutover.lifecycle`) because the
``systems`` table stores them and the ORM must not import the lifecycle module that uses it.
"""

from __future__ import annotations

from enum import StrEnum

from cutover.spec import Disposition  # defined with the spec that declares it; stored here

__all__ = [
    "AuditOutcome",
    "Decision",
    "Disposition",
    "ExemptionDecision",
    "LifecycleState",
    "Party",
    "ProbeStatus",
    "ReportKind",
    "RetentionCloseReason",
    "RoadmapStatus",
    "RunKind",
    "RunState",
    "StepPhase",
    "StepStatus",
]


class LifecycleState(StrEnum):
    """Where a system stands in the mandated sequence (see :mod:`cutover.lifecycle`)."""

    PLANNED = "planned"
    TESTED = "tested"
    REPORT_READY = "report_ready"
    SIGNED = "signed"
    REJECTED = "rejected"
    CUTTING_OVER = "cutting_over"
    RETAINED = "retained"
    ROLLED_BACK = "rolled_back"
    DECOMMISSIONED = "decommissioned"
    COMPENSATED = "compensated"
    ROLLBACK_INCOMPLETE = "rollback_incomplete"


class RunKind(StrEnum):
    """What a run does; also the kind of lock it holds on its system."""

    CUTOVER = "cutover"
    ROLLBACK = "rollback"
    DECOMMISSION = "decommission"


class RunState(StrEnum):
    """Where a run stands: running until it finishes with one of the outcomes."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    COMPENSATED = "compensated"
    INCOMPLETE = "incomplete"


class StepPhase(StrEnum):
    """Which part of a run a step belongs to."""

    STRESS_TEST = "stress_test"
    INTERNAL_TEST = "internal_test"
    CUTOVER = "cutover"
    HEALTH_GATE = "health_gate"
    UNDO = "undo"
    ROLLBACK = "rollback"
    DECOMMISSION = "decommission"


class StepStatus(StrEnum):
    """What happened to one step: recorded as ``started`` before it acts."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"
    UNDONE = "undone"
    UNDO_FAILED = "undo_failed"
    SKIPPED = "skipped"


class ReportKind(StrEnum):
    """Which report: the trial-run report, or the decommission (service exit) report."""

    TRIAL_RUN = "trial_run"
    DECOMMISSION = "decommission"


class Party(StrEnum):
    """The two parties who must both sign."""

    DEPARTMENT = "department"
    CLOUD_PROVIDER = "cloud_provider"


class Decision(StrEnum):
    """An approver's decision on a report."""

    APPROVE = "approve"
    REJECT = "reject"


class RetentionCloseReason(StrEnum):
    """Why a retention window was closed."""

    ROLLED_BACK = "rolled_back"
    DECOMMISSIONED = "decommissioned"


class ProbeStatus(StrEnum):
    """The result of one health probe."""

    PASSED = "passed"
    FAILED = "failed"


class AuditOutcome(StrEnum):
    """The outcome recorded with an audit event."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"


class RoadmapStatus(StrEnum):
    """Where one item of a system's roadmap stands (the network move, each adaptation item)."""

    NOT_NEEDED = "not_needed"
    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    DONE = "done"


class ExemptionDecision(StrEnum):
    """The expert panel's ruling on a system declared unable to migrate."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
