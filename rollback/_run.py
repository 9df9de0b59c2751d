"""The rollback itself, without Prefect: claim, run the plan, record the outcome.

:func:`run_rollback` takes the per-system lock (see :mod:`rollback._lock`), runs the spec's
rollback steps in the safe order of :func:`rollback._plan.build_plan` through
:func:`tasks.steps.execute_step` (cloud copy frozen, original writable, reverse data sync, its
verification, traffic back; what the tool added or moved is logged and audited), then the original's health checks, all recorded in the ledger under
the rollback run. Success: the lifecycle moves to ``rolled_back`` and the retention window
closes. A failed step ends ``rollback_incomplete``: audited as a failure, naming every step left
to do, the retention window kept open so the rollback can be retried (completed steps are not
repeated). A killed worker leaves the run ``running`` with its lock: ``resume=True`` continues it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cutover import audit, claims, executions, lifecycle
from cutover.errors import CutoverError
from cutover.ledger import AuditOutcome, Ledger, LifecycleState, RetentionCloseReason, RunState, StepPhase, StepStatus
from cutover.secrets import redact
from cutover.settings import Settings, get_settings
from cutover.spec import Spec
from rollback._lock import RollbackClaim, claim_rollback
from rollback._plan import HEALTH_KEY, RollbackPlan, build_plan, changes_state, step_keys
from tasks.health import health_gate
from tasks.ssh import StepContext, close_connections, pool_for
from tasks.steps import AnyStep, StepReport, execute_step, recorded

Log = Callable[[str], None]


class RollbackState(StrEnum):
    """How a rollback ended."""

    SUCCEEDED = "succeeded"
    INCOMPLETE = "incomplete"  # a step failed: rollback_incomplete, with what is left to do


@dataclass
class RollbackOutcome:
    """Every step's result, how the rollback ended, and what is left to do by hand."""

    system_id: str
    run_id: str
    reverses_run_id: str
    state: RollbackState
    steps: list[StepReport] = field(default_factory=list)
    failed_step: str | None = None
    error: str | None = None
    remaining: list[str] = field(default_factory=list)
    plan_changes: list[str] = field(default_factory=list)  # what the tool added or moved to make the order safe

    def summary(self) -> str:
        """One line a person reads: what happened and, if incomplete, what is left."""
        if self.state is RollbackState.SUCCEEDED:
            return (
                f"rollback of {self.system_id} succeeded (run {self.run_id}, reversing cutover {self.reverses_run_id}): "
                f"{len(self.steps)} steps done; the original serves the traffic again" + self._ordered()
            )
        return (
            f"ROLLBACK INCOMPLETE for {self.system_id} (run {self.run_id}): step {self.failed_step} failed: "
            f"{self.error}. Left to do: " + "; ".join(self.remaining) + ". Fix the cause, then run the rollback "
            "again (`cutover rollback " + self.system_id + "`): completed steps are not repeated. If it is "
            "finished by hand instead, record it: `cutover resolve " + self.system_id + " --manual --state "
            "rolled_back|retained --note '...'`" + self._ordered()
        )

    def _ordered(self) -> str:
        if not self.plan_changes:
            return ""
        return ". The tool made the order of the spec's steps safe: " + "; ".join(self.plan_changes)


def run_rollback(
    spec: Spec,
    ledger: Ledger,
    *,
    actor: str,
    flow_run_id: str | None = None,
    resume: bool = False,
    settings: Settings | None = None,
    log: Log | None = None,
    holder_state: claims.HolderLookup | None = None,
) -> RollbackOutcome:
    """Roll ``spec``'s system back to its retained original; raise the refusal if it may not.

    ``holder_state`` tells whether the flow run of an interrupted rollback is still alive: a dead
    one's rollback is continued by this request instead of refused (see :mod:`cutover.claims`).
    """
    system_id = spec.system.id
    claim = claim_rollback(
        ledger, system_id, flow_run_id=flow_run_id, resume=resume, actor=actor, holder_state=holder_state
    )
    ctx = StepContext(
        spec=spec,
        ledger=ledger,
        run_id=claim.run.id,
        pool=pool_for(claim.run.id),
        actor=actor,
        settings=settings or get_settings(),
        log=log,
    )
    try:
        plan = build_plan(spec, ledger, cutover_run_id=claim.window.cutover_run_id, run_id=claim.run.id)
        outcome = _execute(ctx, plan, claim)
    except CutoverError as exc:  # the plan could not be built: nothing ran
        outcome = _failed_before_steps(claim, system_id, exc)
    except Exception as exc:  # a bug, not a kill: record it loudly rather than leave the run "running"
        record_outcome(ledger, claim, _failed_before_steps(claim, system_id, exc), actor=actor)
        raise
    finally:
        close_connections(claim.run.id)
    record_outcome(ledger, claim, outcome, actor=actor)
    return outcome


def _execute(ctx: StepContext, plan: RollbackPlan, claim: RollbackClaim) -> RollbackOutcome:
    outcome = RollbackOutcome(ctx.spec.system.id, claim.run.id, claim.window.cutover_run_id, RollbackState.SUCCEEDED)
    outcome.plan_changes = [change.describe() for change in plan.changes]
    for line in outcome.plan_changes:
        _log(ctx, f"rollback order made safe: {line}")
    for index, step in enumerate(plan.steps):
        try:
            outcome.steps.append(_one_step(ctx, plan, step))
        except CutoverError as exc:
            return _incomplete(outcome, step.id, step.name, exc, plan.remaining_from(index))
    try:
        outcome.steps.append(_original_health(ctx, plan))
    except CutoverError as exc:
        return _incomplete(outcome, HEALTH_KEY, "health of the original", exc, plan.remaining_from(len(plan.steps)))
    return outcome


def _one_step(ctx: StepContext, plan: RollbackPlan, step: AnyStep) -> StepReport:
    keys = step_keys(step)
    if changes_state(step) and all(key in plan.done_earlier for key in keys):
        return _skip(ctx, step, keys, plan.done_earlier[keys[0]])
    _log(ctx, f"rollback step {step.id}: {step.name}")
    result = execute_step(ctx, step, phase=StepPhase.ROLLBACK)
    return StepReport(step.id, step.name, "run", "replayed" if result.replayed else "succeeded", result.duration_s)


def _skip(ctx: StepContext, step: AnyStep, keys: list[str], earlier_run: str) -> StepReport:
    digest = executions.definition_digest(step, ctx.ledger.digest)
    for key in keys:
        claim = executions.begin(
            ctx.ledger,
            ctx.run_id,
            key,
            step_digest=digest,
            phase=StepPhase.ROLLBACK,
            actor=ctx.actor,
            detail={"kind": step.kind},
        )
        if not claim.done:
            executions.finish(
                ctx.ledger,
                ctx.run_id,
                key,
                status=StepStatus.SKIPPED,
                actor=ctx.actor,
                detail={"done_in_run": earlier_run},
            )
    _log(ctx, f"rollback step {step.id}: done by the earlier attempt {earlier_run}, not repeated")
    return StepReport(step.id, step.name, "run", f"done in run {earlier_run}")


def _original_health(ctx: StepContext, plan: RollbackPlan) -> StepReport:
    if not plan.health:
        return StepReport(HEALTH_KEY, "health of the original", "none", "no checks declared in rollback.health")
    started = time.monotonic()
    replayed, _ = recorded(
        ctx,
        HEALTH_KEY,
        phase=StepPhase.ROLLBACK,
        kind="health_gate",
        act=lambda: _gate_of_original(ctx, plan),
        definition={"health": plan.health, "gate": plan.gate},
    )
    outcome = "replayed" if replayed else "succeeded"
    return StepReport(HEALTH_KEY, "health of the original", "gate", outcome, time.monotonic() - started)


def _gate_of_original(ctx: StepContext, plan: RollbackPlan) -> dict[str, Any]:
    probes = health_gate(
        plan.health,
        plan.gate,
        on_probe=lambda streak, seen: _log(
            ctx, f"original health, streak {streak}: " + "; ".join(p.describe() for p in seen)
        ),
    )
    return {"probes": [{"check": p.check, "status": p.status, "latency_ms": round(p.latency_ms, 1)} for p in probes]}


def _incomplete(
    outcome: RollbackOutcome, step_id: str, name: str, exc: Exception, remaining: list[str]
) -> RollbackOutcome:
    error = f"{type(exc).__name__}: {redact(str(exc))}" if not isinstance(exc, CutoverError) else redact(str(exc))
    outcome.steps.append(StepReport(step_id, name, "run", "failed", error=error))
    outcome.state, outcome.failed_step, outcome.error, outcome.remaining = (
        RollbackState.INCOMPLETE,
        step_id,
        error,
        remaining,
    )
    return outcome


def _failed_before_steps(claim: RollbackClaim, system_id: str, exc: Exception) -> RollbackOutcome:
    outcome = RollbackOutcome(system_id, claim.run.id, claim.window.cutover_run_id, RollbackState.INCOMPLETE)
    left = [f"every rollback step not recorded as succeeded in run {claim.run.id} (see its ledger steps)"]
    return _incomplete(outcome, "rollback", "rollback", exc, left)


def record_outcome(ledger: Ledger, claim: RollbackClaim, outcome: RollbackOutcome, *, actor: str) -> None:
    """Move the lifecycle, close (or keep) the window, finish the run, audit, release the lock."""
    system_id = outcome.system_id
    succeeded = outcome.state is RollbackState.SUCCEEDED
    target = LifecycleState.ROLLED_BACK if succeeded else LifecycleState.ROLLBACK_INCOMPLETE
    lifecycle.advance(ledger, system_id, target, expected=claim.state, actor=actor, reason=outcome.summary()[:2000])
    with ledger.session() as session:
        if succeeded:
            ledger.close_retention_window(system_id, RetentionCloseReason.ROLLED_BACK, session=session)
        state = RunState.SUCCEEDED if succeeded else RunState.INCOMPLETE
        ledger.finish_run(outcome.run_id, state, note=outcome.summary(), session=session)
        audit.append(
            session,
            actor=actor,
            action="rollback.finished",
            object=f"system:{system_id}",
            outcome=AuditOutcome.SUCCEEDED if succeeded else AuditOutcome.FAILED,
            detail={
                "run_id": outcome.run_id,
                "reverses_run_id": outcome.reverses_run_id,
                "state": outcome.state.value,
                "failed_step": outcome.failed_step,
                "error": outcome.error,
                "remaining": outcome.remaining,
                "plan_changes": outcome.plan_changes,
            },
        )
    claims.release(ledger, system_id, claim.run.id)


def _log(ctx: StepContext, message: str) -> None:
    if ctx.log is not None:
        ctx.log(redact(message))
