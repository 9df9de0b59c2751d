"""Test support: put a system in ``rollback_incomplete`` on paper (ledger rows only, no host touched).

``compensation_failed`` leaves what a cutover whose undo failed leaves (flows/_cut.py): the cutover
run ``incomplete``, its failed undo recorded, no retention window. ``rollback_failed`` leaves what a
failed rollback leaves (rollback/_run.py): the cutover run ``succeeded`` with its window still
open, the rollback run ``incomplete`` with its failed step.
"""

from __future__ import annotations

from dataclasses import dataclass

from cutover import executions, lifecycle
from cutover.executions import definition_digest
from cutover.ledger import Ledger, LifecycleState, RunKind, RunState, StepPhase, StepStatus
from cutover.retention import window_end

_TO_CUTTING_OVER = (
    LifecycleState.TESTED,
    LifecycleState.REPORT_READY,
    LifecycleState.SIGNED,
    LifecycleState.CUTTING_OVER,
)


@dataclass(frozen=True)
class Incomplete:
    """The system, the cutover run, and the run that ended incomplete."""

    system_id: str
    cutover_run_id: str
    failed_run_id: str


def _step(ledger: Ledger, run_id: str, key: str, phase: StepPhase, status: StepStatus, tail: str = "") -> None:
    executions.begin(ledger, run_id, key, step_digest=definition_digest({"key": key}), phase=phase, actor="test")
    executions.finish(ledger, run_id, key, status=status, output_tail=tail, actor="test")


def _cutting_over(ledger: Ledger, system_id: str) -> str:
    for state in _TO_CUTTING_OVER:
        lifecycle.transition(ledger, system_id, state, actor="test", reason="test set-up")
    return ledger.create_run(system_id, RunKind.CUTOVER).id


def compensation_failed(ledger: Ledger, system_id: str) -> Incomplete:
    """``system_id`` (registered, planned) cut over, failed, and the undo of its first step failed."""
    run_id = _cutting_over(ledger, system_id)
    _step(ledger, run_id, "freeze", StepPhase.CUTOVER, StepStatus.SUCCEEDED)
    _step(ledger, run_id, "switch-traffic", StepPhase.CUTOVER, StepStatus.FAILED, "route: no such target")
    _step(ledger, run_id, "freeze:undo", StepPhase.UNDO, StepStatus.FAILED, "appctl: permission denied\n")
    note = "step switch-traffic failed; ROLLBACK INCOMPLETE — left to do by hand: undo step 'freeze'"
    ledger.finish_run(run_id, RunState.INCOMPLETE, note=note)
    lifecycle.transition(ledger, system_id, LifecycleState.ROLLBACK_INCOMPLETE, actor="test", reason=note)
    return Incomplete(system_id, run_id, run_id)


def rollback_failed(ledger: Ledger, system_id: str) -> Incomplete:
    """``system_id`` (registered, planned) cut over into retention, then its rollback's route-back failed."""
    cutover_run_id = _cutting_over(ledger, system_id)
    ledger.open_retention_window(system_id, cutover_run_id, window_end(ledger.now(), 3))
    ledger.finish_run(cutover_run_id, RunState.SUCCEEDED, note="test cutover")
    lifecycle.transition(ledger, system_id, LifecycleState.RETAINED, actor="test", reason="test cutover")
    run_id = ledger.create_run(system_id, RunKind.ROLLBACK, reverses_run_id=cutover_run_id).id
    _step(ledger, run_id, "reverse-sync", StepPhase.ROLLBACK, StepStatus.SUCCEEDED)
    _step(ledger, run_id, "route-back", StepPhase.ROLLBACK, StepStatus.FAILED, "route: no such target")
    note = "ROLLBACK INCOMPLETE: step route-back failed"
    ledger.finish_run(run_id, RunState.INCOMPLETE, note=note)
    lifecycle.transition(ledger, system_id, LifecycleState.ROLLBACK_INCOMPLETE, actor="test", reason=note)
    return Incomplete(system_id, cutover_run_id, run_id)
