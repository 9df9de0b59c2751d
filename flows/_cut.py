"""Stage 4–5 of the notice: the cutover saga, the health gate, and the retention window opening.

With ``data.replication`` the tool's replication steps run among the spec's (see
:mod:`tasks.replication_steps`): the cloud copy subscribes to the original at cutover start, the
final sync is the catch-up right before the switch (writes frozen by the spec's freeze step), the
data verification runs right after it on consistent snapshots taken at the catch-up (or before it,
with ``data.verify: in-window``), and the direction turns after that.

Right after each data_verify step of the cutover, the cloud copy's tables are recorded as the
divergence baseline (:func:`tasks.divergence.record_baseline`), and when the window opens any table
not yet recorded is; the watch measures against it. A baseline that cannot be recorded is logged,
and the divergence then reads "unknown": the cutover itself is not failed for it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from cutover import audit, lifecycle
from cutover.errors import ConfigurationError, CutoverError
from cutover.ledger import AuditOutcome, LifecycleState, RunState, StepPhase
from cutover.retention import window_end
from cutover.secrets import redact
from cutover.spec import CutoverPlan, DataVerifyStep
from flows._context import RunContext, run_logger
from flows._preflight import before_first_step
from flows._saga import SagaOutcome, SagaState, run_saga
from tasks.divergence import ensure_baseline, record_baseline
from tasks.health import health_gate
from tasks.replication import release_snapshots
from tasks.replication_steps import with_replication
from tasks.report import artifact_key
from tasks.ssh import StepContext
from tasks.steps import AnyStep, StepResult, execute_step, step_table

_FINAL = {
    SagaState.SUCCEEDED: (LifecycleState.RETAINED, RunState.SUCCEEDED),
    SagaState.COMPENSATED: (LifecycleState.COMPENSATED, RunState.COMPENSATED),
    SagaState.INCOMPLETE: (LifecycleState.ROLLBACK_INCOMPLETE, RunState.INCOMPLETE),
}


def cut_over(rc: RunContext) -> SagaOutcome:
    """Run the cutover steps as a saga (continuing from the ledger after a crash), then the health gate."""
    plan = _plan(rc)
    before_first_step(rc)  # a failure stops here: nothing has changed, the lifecycle stays signed
    lifecycle.advance(
        rc.ledger,
        rc.system_id,
        LifecycleState.CUTTING_OVER,
        expected=LifecycleState.SIGNED,
        actor=rc.actor,
        reason=f"run {rc.run.id}",
    )
    rollback_steps = rc.spec.rollback.steps if rc.spec.rollback else []

    def gate() -> None:
        rc.log(f"health gate: {plan.health_gate.passes} consecutive passes of {len(plan.health)} checks")
        health_gate(
            plan.health,
            plan.health_gate,
            on_probe=lambda streak, probes: rc.log(
                f"health gate streak {streak}: " + "; ".join(p.describe() for p in probes)
            ),
        )

    switch = plan.traffic_switch()
    try:
        outcome = run_saga(
            rc.steps(),
            with_replication(rc.spec, plan.steps, switch),
            rollback_steps=rollback_steps,
            after=gate,
            execute=_step_as_task,
            switch=switch,
        )
    finally:
        release_snapshots(rc.run.id)  # the sessions holding the verification's snapshots, if still open
    rc.log(outcome.summary())
    return outcome


@task(name="cutover-step", retries=0, cache_policy=NO_CACHE)
def _step_task(ctx: StepContext, step: AnyStep, phase: StepPhase) -> StepResult:
    """One cutover step, shown as its own task run in the Prefect UI (the ledger stays the record)."""
    return execute_step(ctx, step, phase=phase)


def _step_as_task(ctx: StepContext, step: AnyStep, phase: StepPhase) -> StepResult:
    runner = _step_task.with_options(
        task_run_name=f"{phase.value}-{step.id}", timeout_seconds=step.timeout.total_seconds() + 60
    )
    result: StepResult = runner(quote(ctx), quote(step), phase)  # type: ignore[call-overload]  # quote: not walked
    if isinstance(step, DataVerifyStep) and phase is StepPhase.CUTOVER:
        if result.replayed:  # verified before a crash: keep the baseline recorded then
            _baseline(ctx.spec.system.id, lambda: ensure_baseline(ctx.ledger, ctx.spec, ctx.run_id))
        else:
            _baseline(ctx.spec.system.id, lambda: record_baseline(ctx.ledger, ctx.spec, ctx.run_id, step_id=step.id))
    return result


def _baseline(system_id: str, record: Callable[[], int]) -> None:
    """Record the divergence baseline; a failure is logged, never fails the cutover."""
    try:
        tables = record()
    except CutoverError as exc:
        run_logger().error(
            redact(
                f"{system_id}: the divergence baseline was not recorded ({exc}); the watch will "
                "show the divergence as unknown"
            )
        )
        return
    if tables:
        run_logger().info(f"divergence baseline: {tables} tables of the cloud copy recorded")


def _plan(rc: RunContext) -> CutoverPlan:
    if rc.spec.cutover is None:
        raise ConfigurationError(f"{rc.spec_path}: system {rc.system_id} has no cutover section")
    return rc.spec.cutover


def record_and_open_retention(rc: RunContext, outcome: SagaOutcome) -> datetime | None:
    """Record the saga's outcome; on success open the retention window (and its one-click rollback), return its end."""
    state, run_state = _FINAL[outcome.state]
    ends = None
    with rc.ledger.session() as session:
        if outcome.state is SagaState.SUCCEEDED:
            ends = window_end(rc.ledger.now(), rc.spec.retention.months)
            rc.ledger.open_retention_window(rc.system_id, rc.run.id, ends, session=session)
        rc.ledger.finish_run(rc.run.id, run_state, note=outcome.summary(), session=session)
        audit.append(
            session,
            actor=rc.actor,
            action="cutover.finished",
            object=f"system:{rc.system_id}",
            outcome=AuditOutcome.SUCCEEDED if ends else AuditOutcome.FAILED,
            detail={
                "run_id": rc.run.id,
                "state": outcome.state.value,
                "remaining": outcome.remaining,
                "retention_ends": ends.isoformat() if ends else None,
            },
        )
    lifecycle.transition(rc.ledger, rc.system_id, state, actor=rc.actor, reason=outcome.summary())
    publish_summary(rc, outcome, ends)
    if ends is not None:
        _baseline(rc.system_id, lambda: ensure_baseline(rc.ledger, rc.spec, rc.run.id))
        _offer_one_click_rollback(rc)
    return ends


def _offer_one_click_rollback(rc: RunContext) -> None:
    """Create the system's one-click rollback deployment; the window is open even if this fails."""
    from prefect.exceptions import PrefectException

    from flows.deployments import deployment_url, ensure_rollback_deployment

    try:
        deployment = ensure_rollback_deployment(rc.system_id)
    except (PrefectException, OSError, RuntimeError) as exc:
        run_logger().error(
            f"the one-click rollback deployment of {rc.system_id} could not be created ({exc}); "
            f"roll back with `cutover rollback {rc.system_id}` and fix the Prefect work pool"
        )
        return
    rc.log(f"one-click rollback: {deployment_url(deployment)} (Run → Quick run)")


def publish_summary(rc: RunContext, outcome: SagaOutcome, ends: datetime | None) -> None:
    """A Markdown artifact a person reads: steps, durations, data verification, the window's end."""
    lines = [
        f"# 系统割接 Cutover — {rc.spec.system.name} ({rc.system_id})",
        "",
        f"**Outcome 结果:** {outcome.state.value} — {outcome.summary()}",
        "",
        *step_table(outcome.steps),
    ]
    lines += _data_lines(rc)
    if ends is not None:
        lines += [
            "",
            f"**Retention window 原系统保留期 ends:** {ends:%Y-%m-%d %H:%M} UTC (≥ {rc.spec.retention.months} months).",
        ]
    if outcome.remaining:
        lines += ["", "## ⚠ Left to do by hand 需人工处理", *(f"- {r}" for r in outcome.remaining)]
    create_markdown_artifact(
        markdown="\n".join(lines),
        key=artifact_key("cutover", rc.system_id),
        description="系统割接 cutover summary",
        _sync=True,
    )  # type: ignore[call-arg]


def _data_lines(rc: RunContext) -> list[str]:
    lines: list[str] = []
    for record in rc.ledger.list_steps(rc.run.id):
        tables = record.detail.get("tables") if isinstance(record.detail, dict) else None
        if not tables:
            continue
        lines += [
            "",
            f"## 数据校验 Data verification — `{record.step_id}`",
            "",
            "| table | source rows | target rows | checksum | match |",
            "|---|---:|---:|---|---|",
        ]
        for name, t in tables.items():
            lines.append(
                f"| {name} | {t['source_rows']} | {t['target_rows']} | `{t['source_checksum']}` | {'✅' if t['matches'] else '❌'} |"
            )
    return lines
