"""Step executions keyed by what ran, recorded in the ledger and the audit trail together.

Public surface::

    definition_digest(definition, algorithm="sm3") -> str    the digest of a step's spec entry
    begin(ledger, run_id, key, *, step_digest, phase, actor, host=None, detail=None) -> StepClaim
    finish(ledger, run_id, key, *, status, actor, exit_status=None, duration_s=None,
           output_tail="", detail=None) -> StepExecution
    step_object(run_id, key) -> str         the audit object of a step: ``run:<run id>/step:<key>``
    STARTED, FINISHED                       the audit actions ``step.started`` and ``step.finished``

A step's recorded result counts only for the step definition it was recorded under. The digest
of the step's spec entry (the canonical JSON of the step model, made like
:meth:`cutover.spec.Spec.digest`) is stored with each execution, and
:meth:`cutover.ledger.Ledger.begin_step` hands back a recorded result only under the same digest:
a step whose definition changed runs again as a new attempt of its key, the earlier rows kept.

Each execution's insert and its finish append ``step.started`` / ``step.finished`` to the
hash-chained audit trail in the same transaction as the row, holding the row's digest
(:func:`cutover.ledger.step_record_digest`): :func:`cutover.audit.verify` then checks every step
row a resumed run trusts, and the database refuses changing a finished row or deleting any.
The audit detail holds the attempt, status, phase, step digest, host and exit status, never
output (callers redact output before it reaches the ledger).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel
from sqlalchemy.orm import Session

from cutover import audit
from cutover.digest import Algorithm, digest_json
from cutover.ledger import (
    AuditOutcome,
    Ledger,
    StepClaim,
    StepExecution,
    StepPhase,
    StepStatus,
    step_record_digest,
)

__all__ = ["FINISHED", "STARTED", "begin", "definition_digest", "finish", "step_object"]

STARTED: Final = audit.STEP_STARTED
FINISHED: Final = audit.STEP_FINISHED
step_object = audit.step_object

_OUTCOMES: Final[Mapping[StepStatus, AuditOutcome]] = {
    StepStatus.STARTED: AuditOutcome.STARTED,
    StepStatus.SUCCEEDED: AuditOutcome.SUCCEEDED,
    StepStatus.SKIPPED: AuditOutcome.SUCCEEDED,
    StepStatus.UNDONE: AuditOutcome.SUCCEEDED,
    StepStatus.FAILED: AuditOutcome.FAILED,
    StepStatus.UNKNOWN: AuditOutcome.FAILED,
    StepStatus.UNDO_FAILED: AuditOutcome.FAILED,
}


def definition_digest(definition: object, algorithm: Algorithm = "sm3") -> str:
    """The digest of a step definition: the canonical JSON of its model (or of plain values)."""
    return digest_json(_plain(definition), algorithm)


def _plain(value: object) -> object:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def begin(
    ledger: Ledger,
    run_id: str,
    key: str,
    *,
    step_digest: str,
    phase: StepPhase,
    actor: str,
    host: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> StepClaim:
    """Record the step ``started`` (audited) before it acts, or return the record standing for it.

    ``claim.done`` means its result, recorded under this ``step_digest``, counts: do not act.
    """
    with ledger.session() as session:
        claim = ledger.begin_step(
            run_id, key, step_digest=step_digest, phase=phase, host=host, detail=detail, session=session
        )
        if claim.closed is not None:
            _audit(session, ledger, claim.closed, actor)
        if claim.is_new:
            _audit(session, ledger, claim.record, actor)
        return claim


def finish(
    ledger: Ledger,
    run_id: str,
    key: str,
    *,
    status: StepStatus,
    actor: str,
    exit_status: int | None = None,
    duration_s: float | None = None,
    output_tail: str = "",
    detail: Mapping[str, Any] | None = None,
) -> StepExecution:
    """Record (and audit) what became of the step's started attempt; ``output_tail`` must be redacted."""
    with ledger.session() as session:
        record = ledger.finish_step(
            run_id,
            key,
            status=status,
            exit_status=exit_status,
            duration_s=duration_s,
            output_tail=output_tail,
            detail=detail,
            session=session,
        )
        _audit(session, ledger, record, actor)
        return record


def _audit(session: Session, ledger: Ledger, record: StepExecution, actor: str) -> None:
    audit.append(
        session,
        actor=actor,
        action=FINISHED if record.finished_at is not None else STARTED,
        object=step_object(record.run_id, record.step_id),
        outcome=_OUTCOMES[StepStatus(record.status)],
        detail={
            "attempt": record.attempt,
            "status": StepStatus(record.status).value,
            "phase": StepPhase(record.phase).value,
            "step_digest": record.step_digest,
            "host": record.host,
            "exit_status": record.exit_status,
            "record": step_record_digest(record, ledger.digest),
        },
    )
