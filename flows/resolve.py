"""``cutover resolve SYSTEM``'s retry: finish what a ``rollback_incomplete`` system has left, without Prefect.

Which case applies is read from the ledger (:func:`cutover.resolution.unresolved`):

- a rollback failed: :func:`rollback.run_rollback` again, a new rollback run reversing the same
  cutover; the state-changing steps an earlier attempt finished are not repeated;
- the undo of a failed cutover failed: the saga resumes that cutover run's compensation
  (:func:`flows._saga.run_saga` on a run whose compensation began never goes forward). Its steps
  are keyed in the failed run, so an undo that succeeded before is replayed from the ledger, not
  repeated, and a failed one runs again (e.g. with the undo command fixed in the spec). A new
  cutover run reversing the failed one (``reverses_run_id``) holds the system's lock meanwhile and
  records the outcome. Every undo done: the system is ``compensated`` and a new cutover may start;
  otherwise it stays ``rollback_incomplete`` and the outcome names what is still left.

Either way the attempt is audited as ``resolve.retried``, with its outcome and what is left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cutover import audit, claims, lifecycle
from cutover.errors import ConfigurationError, LifecycleError
from cutover.ledger import AuditOutcome, Ledger, LifecycleState, RunKind, RunState, StepPhase
from cutover.resolution import Leftover, Unresolved, require_unresolved
from cutover.secrets import redact
from cutover.settings import Settings, get_settings
from cutover.spec import CutoverPlan, Spec
from flows._saga import SagaOutcome, SagaState, run_saga
from rollback import RollbackState, run_rollback
from tasks.ssh import StepContext, close_connections, pool_for
from tasks.steps import StepReport

__all__ = ["RetryOutcome", "retry"]

Log = Callable[[str], None]


@dataclass
class RetryOutcome:
    """How the retry ended: the run that made it, every step's result, what is still left."""

    system_id: str
    leftover: Leftover
    run_id: str
    succeeded: bool
    summary: str
    steps: list[StepReport] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)


def retry(
    spec: Spec,
    ledger: Ledger,
    left: Unresolved,
    *,
    actor: str,
    resume: bool = False,
    settings: Settings | None = None,
    log: Log | None = None,
) -> RetryOutcome:
    """Retry what ``left`` names for ``spec``'s system; raise the refusal (audited) if it may not run."""
    if left.leftover is Leftover.ROLLBACK:
        outcome = _retry_rollback(spec, ledger, actor=actor, resume=resume, settings=settings, log=log)
    else:
        outcome = _retry_compensation(spec, ledger, left, actor=actor, resume=resume, settings=settings, log=log)
    with ledger.session() as session:
        audit.append(
            session,
            actor=actor,
            action="resolve.retried",
            object=f"system:{spec.system.id}",
            outcome=AuditOutcome.SUCCEEDED if outcome.succeeded else AuditOutcome.FAILED,
            detail={
                "leftover": left.leftover.value,
                "failed_run_id": left.run_id,
                "run_id": outcome.run_id,
                "remaining": outcome.remaining,
            },
        )
    return outcome


def _retry_rollback(
    spec: Spec, ledger: Ledger, *, actor: str, resume: bool, settings: Settings | None, log: Log | None
) -> RetryOutcome:
    result = run_rollback(spec, ledger, actor=actor, resume=resume, settings=settings, log=log)
    succeeded = result.state is RollbackState.SUCCEEDED
    return RetryOutcome(
        spec.system.id, Leftover.ROLLBACK, result.run_id, succeeded, result.summary(), result.steps, result.remaining
    )


def _retry_compensation(
    spec: Spec,
    ledger: Ledger,
    left: Unresolved,
    *,
    actor: str,
    resume: bool,
    settings: Settings | None,
    log: Log | None,
) -> RetryOutcome:
    plan = _plan(spec, ledger, left)
    taken = claims.claim(
        ledger,
        spec.system.id,
        RunKind.CUTOVER,
        actor=actor,
        resume=resume,
        check=require_unresolved,
        reverses_run_id=left.cutover_run_id,
    )
    ctx = StepContext(
        spec=spec,
        ledger=ledger,
        run_id=left.cutover_run_id,  # the undo is the failed run's: its ledger keys say what is done
        pool=pool_for(taken.run.id),
        actor=actor,
        settings=settings or get_settings(),
        log=log,
    )
    rollback_steps = spec.rollback.steps if spec.rollback else []
    try:
        saga = run_saga(ctx, plan.steps, rollback_steps=rollback_steps, switch=plan.traffic_switch())
    except Exception as exc:  # a bug, not a kill: record it rather than leave the run "running"
        error = f"the retry stopped: {type(exc).__name__}: {redact(str(exc))}"
        _finish(ledger, taken.run.id, spec.system.id, left, SagaOutcome(SagaState.INCOMPLETE, remaining=[error]), actor)
        raise
    finally:
        close_connections(taken.run.id)
    return _finish(ledger, taken.run.id, spec.system.id, left, saga, actor)


def _plan(spec: Spec, ledger: Ledger, left: Unresolved) -> CutoverPlan:
    """The cutover plan whose compensation is resumed; refused unless that compensation began."""
    if spec.cutover is None:
        raise ConfigurationError(
            f"the spec of system {spec.system.id} has no cutover section, so its steps cannot be undone; "
            "restore the cutover.steps the failed cutover ran"
        )
    if not any(record.phase is StepPhase.UNDO for record in ledger.list_steps(left.cutover_run_id)):
        raise LifecycleError(
            f"the ledger holds no undo step of cutover run {left.cutover_run_id} of {spec.system.id}, so there is "
            "no compensation to resume (and the cutover is never run forward again from here); once its steps are "
            f"undone by hand, record it: `cutover resolve {spec.system.id} --manual --state compensated --note '...'`"
        )
    return spec.cutover


def _finish(
    ledger: Ledger, run_id: str, system_id: str, left: Unresolved, saga: SagaOutcome, actor: str
) -> RetryOutcome:
    """Finish the run, move the lifecycle when every undo is done (one transaction), release the lock."""
    done = saga.state is SagaState.COMPENSATED
    summary = _summary(system_id, run_id, left, saga)
    with ledger.session() as session:
        ledger.finish_run(run_id, RunState.COMPENSATED if done else RunState.INCOMPLETE, note=summary, session=session)
        if done:
            lifecycle.transition(
                ledger,
                system_id,
                LifecycleState.COMPENSATED,
                actor=actor,
                reason=summary[:2000],
                expected=LifecycleState.ROLLBACK_INCOMPLETE,
                session=session,
            )
    claims.release(ledger, system_id, run_id)
    undo = [report for report in saga.steps if report.action != "run"]
    return RetryOutcome(system_id, Leftover.COMPENSATION, run_id, done, summary, undo, saga.remaining)


def _summary(system_id: str, run_id: str, left: Unresolved, saga: SagaOutcome) -> str:
    if saga.state is SagaState.COMPENSATED:
        return (
            f"the undo of cutover run {left.cutover_run_id} of {system_id} is finished (retry run {run_id}; "
            f"undos done before were not repeated): {system_id} is compensated, the original serves and a new "
            "cutover may start"
        )
    return (
        f"UNDO STILL INCOMPLETE for {system_id} (retry run {run_id}): left to do: " + "; ".join(saga.remaining) + ". "
        f"Fix the cause, then run `cutover resolve {system_id}` again (undos already done are not repeated); if "
        f"you finish it by hand, record it: `cutover resolve {system_id} --manual --state compensated --note '...'`"
    )
