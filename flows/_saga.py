"""The cutover saga: steps in order; on failure, undo what ran, last first.

Compensation is registered right after each step succeeds. A state-changing ssh step is undone
by its ``undo`` command; an irreversible one by the rollback step named in ``covered_by``;
read-only steps (checks, data verification) need nothing. A second compensation of the same
run replays from the ledger and repeats nothing. If an undo fails, the saga ends
``INCOMPLETE`` and names exactly what is left to do by hand — it never claims success it did not have.

Crash safety: before running forward, steps that the ledger shows finished are skipped, and a
step left ``started`` by a killed worker is reconciled: its ``check`` command decides whether it
took effect; without a check the step is run again (such steps must be idempotent).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from cutover.errors import CutoverError
from cutover.ledger import StepPhase, StepStatus
from cutover.secrets import redact
from cutover.spec import SshStep, Step
from tasks.ssh import StepContext, run_ssh_step
from tasks.steps import StepReport, StepResult, execute_step

Executor = Callable[[StepContext, Step, StepPhase], StepResult]


class SagaState(StrEnum):
    """How the saga ended."""

    SUCCEEDED = "succeeded"
    COMPENSATED = "compensated"
    INCOMPLETE = "incomplete"  # an undo failed: "rollback incomplete"


@dataclass
class SagaOutcome:
    """Every step's result, how the saga ended, and what is left to do by hand."""

    state: SagaState
    steps: list[StepReport] = field(default_factory=list)
    failed_step: str | None = None
    error: str | None = None
    remaining: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.state is SagaState.SUCCEEDED:
            return f"all {len(self.steps)} steps succeeded"
        head = f"step {self.failed_step} failed: {self.error}"
        if self.state is SagaState.COMPENSATED:
            return f"{head}; every completed step was undone (last first)"
        return f"{head}; ROLLBACK INCOMPLETE — left to do by hand: " + "; ".join(self.remaining)


def _run_step(ctx: StepContext, step: Step, phase: StepPhase) -> StepResult:
    return execute_step(ctx, step, phase=phase)


def run_saga(
    ctx: StepContext,
    steps: Sequence[Step],
    *,
    rollback_steps: Sequence[Step] = (),
    after: Callable[[], None] | None = None,
    execute: Executor = _run_step,
) -> SagaOutcome:
    """Run ``steps`` in order, then ``after`` (e.g. the health gate); compensate on any failure."""
    done: list[Step] = []
    reports: list[StepReport] = []
    try:
        for step in steps:
            _reconcile(ctx, step)
            result = execute(ctx, step, StepPhase.CUTOVER)
            done.append(step)
            reports.append(
                StepReport(step.id, step.name, "run", "replayed" if result.replayed else "succeeded", result.duration_s)
            )
        if after is not None:
            after()
    except CutoverError as exc:
        return _compensated(ctx, done, reports, _failed_id(steps, done), exc, rollback_steps)
    except BaseException as exc:  # cancelled or killed from inside: undo, then let it propagate
        _compensated(ctx, done, reports, _failed_id(steps, done), exc, rollback_steps)
        raise
    return SagaOutcome(SagaState.SUCCEEDED, reports)


def _failed_id(steps: Sequence[Step], done: list[Step]) -> str:
    return steps[len(done)].id if len(done) < len(steps) else "health-gate"


def _compensated(
    ctx: StepContext,
    done: list[Step],
    reports: list[StepReport],
    failed: str,
    exc: BaseException,
    rollback_steps: Sequence[Step],
) -> SagaOutcome:
    error = redact(str(exc)) or type(exc).__name__
    reports.append(StepReport(failed, failed, "run", "failed", error=error))
    undo_reports, remaining = compensate(ctx, done, rollback_steps)
    state = SagaState.INCOMPLETE if remaining else SagaState.COMPENSATED
    return SagaOutcome(state, reports + undo_reports, failed, error, remaining)


def compensate(
    ctx: StepContext, done: Sequence[Step], rollback_steps: Sequence[Step]
) -> tuple[list[StepReport], list[str]]:
    """Undo ``done`` last first; return the reports and what is left to do by hand."""
    covering = {s.id: s for s in rollback_steps}
    reports: list[StepReport] = []
    remaining: list[str] = []
    for step in reversed(done):
        report = _undo_one(ctx, step, covering)
        reports.append(report)
        if report.outcome == "undo failed":
            remaining.append(f"undo step {step.id!r} ({report.action}) — {report.error}")
    return reports, remaining


def _undo_one(ctx: StepContext, step: Step, covering: dict[str, Step]) -> StepReport:
    if not isinstance(step, SshStep) or not step.changes_state:
        return StepReport(step.id, step.name, "none", "nothing to undo")
    try:
        if step.undo is not None:
            result = execute_step(ctx, step, phase=StepPhase.UNDO, command="undo")
            return StepReport(step.id, step.name, "undo", "undone", result.duration_s)
        cover = covering[step.covered_by or ""]
        result = execute_step(ctx, cover, phase=StepPhase.UNDO, key=f"{cover.id}:covers:{step.id}")
        return StepReport(step.id, step.name, f"covered by {cover.id}", "undone", result.duration_s)
    except (CutoverError, KeyError) as exc:
        action = "undo" if isinstance(step, SshStep) and step.undo is not None else f"covered by {step.covered_by}"
        return StepReport(step.id, step.name, action, "undo failed", error=redact(str(exc)))


def _reconcile(ctx: StepContext, step: Step) -> None:
    """A step left ``started`` by a killed worker: decide with its check whether it took effect."""
    record = ctx.ledger.get_step(ctx.run_id, step.id)
    if record is None or record.status is not StepStatus.STARTED:
        return
    if isinstance(step, SshStep) and step.check is not None and step.host is not None:
        took_effect = _check_passes(ctx, step)
        status = StepStatus.SUCCEEDED if took_effect else StepStatus.UNKNOWN
        note = (
            "check passed: the step took effect before the crash" if took_effect else "check failed: running it again"
        )
    else:
        status, note = StepStatus.UNKNOWN, "outcome unknown after a crash and no check: running it again"
    ctx.ledger.finish_step(ctx.run_id, step.id, status=status, detail={"reconciled": note})
    if ctx.log:
        ctx.log(f"{step.id}: reconciled after a crash — {note}")


def _check_passes(ctx: StepContext, step: SshStep) -> bool:
    attempt = len([s for s in ctx.ledger.list_steps(ctx.run_id) if s.step_id.startswith(f"{step.id}-check")])
    probe = step.model_copy(update={"id": f"{step.id}-check{attempt}"})
    try:
        run_ssh_step(ctx, probe, step.host or "", command="check", phase=StepPhase.CUTOVER)
    except CutoverError:
        return False
    return True
