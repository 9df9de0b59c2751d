"""Preflight in the cutover flow: before the sign-off is first asked for, and right before the first cutover step.

The checks live in :mod:`tasks.preflight`. Each preflight is recorded in the audit trail
(``preflight.passed`` / ``preflight.failed`` on ``system:<id>``, with every item). A failure raises
:class:`~cutover.errors.PreflightFailed` before anything changes: no step has run, nothing is
compensated, the lifecycle stays where it was, and the flow ends the run through its stop path.
"""

from __future__ import annotations

from prefect.utilities.annotations import quote

from cutover import lifecycle
from cutover import signoff_store as store
from cutover.ledger import LifecycleState, ReportKind, StepPhase
from flows._context import RunContext, current_flow_run_id
from tasks.preflight import PreflightReport, preflight_task, record_preflight

#: Steps of these phases are the test platform's (recorded in the same run); they change nothing the cutover owns.
_TEST_PHASES = frozenset({StepPhase.STRESS_TEST, StepPhase.INTERNAL_TEST})


def before_signoff(rc: RunContext) -> None:
    """Preflight before the sign-off form is first shown in this flow run (not again on each resume)."""
    flow_run_id = current_flow_run_id()
    if (
        flow_run_id is not None
        and store.attempt_log(rc.ledger, rc.system_id, ReportKind.TRIAL_RUN, flow_run_id).requested
    ):
        return  # the form was shown before this restart: its preflight passed then
    if lifecycle.current_state(rc.ledger, rc.system_id) is not LifecycleState.REPORT_READY:
        return  # already signed: nothing is asked, and the cutover checks again before its first step
    check(rc, stage="signoff")


def before_first_step(rc: RunContext) -> None:
    """Preflight right before the first cutover step (not when this run already recorded one: it resumes)."""
    recorded = [s for s in rc.ledger.list_steps(rc.run.id) if s.phase not in _TEST_PHASES]
    if recorded:
        rc.log(f"preflight not repeated: this run already recorded {len(recorded)} cutover step(s)")
        return
    check(rc, stage="cutover")


def check(rc: RunContext, *, stage: str) -> PreflightReport:
    """Run the preflight of ``rc``'s system, log and audit every item; raise PreflightFailed if one failed."""
    runner = preflight_task.with_options(task_run_name=f"preflight-{stage}")
    report: PreflightReport = runner(quote(rc.spec), quote(rc.settings))  # type: ignore[call-overload]  # quote: not walked
    for item in report.items:
        rc.log(f"preflight {item.describe()}")
    detail = {"run_id": rc.run.id, "flow_run_id": current_flow_run_id(), "stage": stage}
    record_preflight(rc.ledger, report, actor=rc.actor, detail=detail)
    report.raise_for_failures()
    rc.log(f"{report.summary()} ({report.duration_s:.1f} s)")
    return report
