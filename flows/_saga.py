"""The cutover saga: steps in order; on failure, undo what ran, last first.

Compensation fits what happened. A state-changing ssh step is undone by its ``undo`` command,
last first; read-only steps (checks, data verification) need nothing; a fan-out step is undone on
the hosts where it succeeded, including the step that failed on some of its hosts. An
irreversible step (a data copy to the cloud copy) is covered by the rollback step named in
``covered_by`` only if traffic reached the cloud copy — its traffic switch
(:meth:`cutover.spec.CutoverPlan.traffic_switch`) succeeded. Before that, the original's data is
unchanged (it was frozen, users were never on the cloud copy), so no data is moved back. After
it, the covering data steps run once every undo is done, when the original is writable again
and the cloud copy no longer receives traffic (DESIGN.md: freeze the cloud copy first, make the
original writable before copying into it). A second compensation of the same run replays from the
ledger and repeats nothing. If an undo fails, the saga ends ``INCOMPLETE`` and names exactly what
is left to do by hand — it never claims success it did not have.

Crash safety: a run whose compensation had begun resumes the compensation, never the forward
plan. Otherwise steps the ledger shows finished are skipped, and a step left ``started`` by a
killed worker is reconciled: its ``check`` command decides whether it took effect; without a
check the step is run again (such steps must be idempotent).

Replicated data (spec ``data.replication``): the steps the tool adds (:mod:`tasks.replication_steps`)
are undone like the others, last first, with one exception: the turn-around of the replication
direction is undone right after the switch's undo, when the cloud copy no longer gets traffic and
the original is still frozen, so every write the cloud copy acknowledged reaches the original before
it is writable. Whenever traffic moved, the turn-around is undone — also when it failed half-way or
never ran (the verification on snapshots, between the switch and the turn-around, failed): its undo
completes the turn first, from the reverse slot made before the switch. A catch-up whose snapshots
are gone (a crash or re-run) before the switch ever started runs again, to take new ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from cutover import executions
from cutover.errors import CutoverError
from cutover.ledger import StepPhase, StepStatus
from cutover.secrets import redact
from cutover.spec import SshStep, Step
from tasks import replication
from tasks.replication_steps import ReplicationAction, ReplicationStep, on_snapshots
from tasks.ssh import StepContext, run_ssh_step, step_key
from tasks.steps import AnyStep, StepReport, StepResult, execute_step

Executor = Callable[[StepContext, AnyStep, StepPhase], StepResult]


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


def _run_step(ctx: StepContext, step: AnyStep, phase: StepPhase) -> StepResult:
    return execute_step(ctx, step, phase=phase)


def run_saga(
    ctx: StepContext,
    steps: Sequence[AnyStep],
    *,
    rollback_steps: Sequence[Step] = (),
    after: Callable[[], None] | None = None,
    execute: Executor = _run_step,
    switch: str | None = None,
) -> SagaOutcome:
    """Run ``steps`` in order, then ``after`` (e.g. the health gate); compensate on any failure.

    ``switch`` is the id of the step that sends traffic to the cloud copy (default: the last
    state-changing ssh step); see the module docstring for what it decides.
    """
    plan = _Plan(list(steps), list(rollback_steps), switch if switch is not None else _last_changing(steps))
    if _compensation_began(ctx, plan):
        return _resume_compensation(ctx, plan)
    done: list[AnyStep] = []
    reports: list[StepReport] = []
    try:
        for planned in steps:
            step = _as_recorded(ctx, planned, plan)
            _reconcile(ctx, step)
            result = execute(ctx, step, StepPhase.CUTOVER)
            done.append(step)
            reports.append(
                StepReport(step.id, step.name, "run", "replayed" if result.replayed else "succeeded", result.duration_s)
            )
        if after is not None:
            after()
    except CutoverError as exc:
        return _compensated(ctx, plan, done, reports, exc)
    except BaseException as exc:  # cancelled or killed from inside: undo, then let it propagate
        _compensated(ctx, plan, done, reports, exc)
        raise
    return SagaOutcome(SagaState.SUCCEEDED, reports)


@dataclass(frozen=True)
class _Plan:
    steps: list[AnyStep]
    rollback_steps: list[Step]
    switch: str | None  # the traffic switch's step id

    def failed_id(self, done: Sequence[AnyStep]) -> str:
        return self.steps[len(done)].id if len(done) < len(self.steps) else "health-gate"

    def traffic_moved(self, done: Sequence[AnyStep]) -> bool:
        return self.switch is not None and any(step.id == self.switch for step in done)


def _last_changing(steps: Sequence[AnyStep]) -> str | None:
    changing = [s.id for s in steps if isinstance(s, SshStep) and s.changes_state]
    return changing[-1] if changing else None


def _compensated(
    ctx: StepContext, plan: _Plan, done: list[AnyStep], reports: list[StepReport], exc: BaseException
) -> SagaOutcome:
    failed = plan.failed_id(done)
    error = redact(str(exc)) or type(exc).__name__
    reports.append(StepReport(failed, failed, "run", "failed", error=error))
    partly = [s for s in plan.steps if s.id == failed and _partly_done(ctx, s)]
    moved = plan.traffic_moved(done)
    undone = [*done, *partly]
    if moved and not any(_is_turn(s) for s in undone):  # failed between the switch and the turn-around
        undone += [s for s in plan.steps if _is_turn(s)]
    undo_reports, remaining = compensate(ctx, undone, plan.rollback_steps, traffic_moved=moved, switch=plan.switch)
    state = SagaState.INCOMPLETE if remaining else SagaState.COMPENSATED
    return SagaOutcome(state, reports + undo_reports, failed, error, remaining)


def _compensation_began(ctx: StepContext, plan: _Plan) -> bool:
    return any(record.phase is StepPhase.UNDO for record in ctx.ledger.list_steps(ctx.run_id))


def _resume_compensation(ctx: StepContext, plan: _Plan) -> SagaOutcome:
    """After a crash during compensation: finish the compensation from the ledger, never go forward."""
    done = [step for step in plan.steps if _forward_succeeded(ctx, step)]
    failed = plan.failed_id(done)
    if ctx.log:
        ctx.log(f"compensation of run {ctx.run_id} had begun before a crash: it is resumed, not the forward plan")
    reports = [StepReport(step.id, step.name, "run", "replayed") for step in done]
    return _compensated(ctx, plan, done, reports, CutoverError(f"step {failed} failed before the crash"))


def _forward_succeeded(ctx: StepContext, step: AnyStep) -> bool:
    keys = _host_keys(step) if isinstance(step, SshStep) else {None: step.id}
    records = [ctx.ledger.get_step(ctx.run_id, key) for key in keys.values()]
    return all(r is not None and r.status in _DONE for r in records)


_DONE = frozenset({StepStatus.SUCCEEDED})


def _host_keys(step: SshStep) -> dict[str | None, str]:
    hosts = step.hosts or ([step.host] if step.host else [])
    return {host: step_key(step, host, "run") for host in hosts}


def _partly_done(ctx: StepContext, step: AnyStep) -> bool:
    """A fan-out step that failed on some hosts and succeeded on others; a turn-around that began."""
    if isinstance(step, ReplicationStep):
        return _is_turn(step) and ctx.ledger.get_step(ctx.run_id, step.id) is not None
    if not isinstance(step, SshStep) or not step.hosts or not step.changes_state:
        return False
    records = [ctx.ledger.get_step(ctx.run_id, key) for key in _host_keys(step).values()]
    return any(r is not None and r.status is StepStatus.SUCCEEDED for r in records)


def _is_turn(step: AnyStep) -> bool:
    return isinstance(step, ReplicationStep) and step.action is ReplicationAction.TURN


def compensate(
    ctx: StepContext,
    done: Sequence[AnyStep],
    rollback_steps: Sequence[Step],
    *,
    traffic_moved: bool = True,
    switch: str | None = None,
) -> tuple[list[StepReport], list[str]]:
    """Undo ``done`` last first, then carry data back if traffic had moved; the reports and what is left."""
    covering = {s.id: s for s in rollback_steps}
    reports: list[StepReport] = []
    remaining: list[str] = []
    undone = _undo_order([s for s in reversed(done) if not _covered(s)], switch)
    covered = [s for s in reversed(done) if _covered(s)]
    for step in undone:
        _record(reports, remaining, _undo_one(ctx, step))
    for step in covered:
        _record(reports, remaining, _cover_one(ctx, step, covering, traffic_moved=traffic_moved))
    return reports, remaining


def _undo_order(last_first: list[AnyStep], switch: str | None) -> list[AnyStep]:
    """Last first, except a replication turn-around: undone right after the traffic switch's undo."""
    turns = [s for s in last_first if _is_turn(s)]
    order = [s for s in last_first if not _is_turn(s)]
    at = next((i + 1 for i, s in enumerate(order) if s.id == switch), None)
    if at is None:  # no switch among them: right after the step that ran before the turn-around
        at = next((i + 1 for i, s in enumerate(last_first) if _is_turn(s)), 0)
        at = min(at, len(order))
    return order[:at] + turns + order[at:]


def _covered(step: AnyStep) -> bool:
    return isinstance(step, SshStep) and step.changes_state and step.undo is None


def _record(reports: list[StepReport], remaining: list[str], report: StepReport) -> None:
    reports.append(report)
    if report.outcome == "undo failed":
        remaining.append(f"undo step {report.step_id!r} ({report.action}) — {report.error}")


def _undo_one(ctx: StepContext, step: AnyStep) -> StepReport:
    if isinstance(step, ReplicationStep):
        return _undo_replication(ctx, step)
    if not isinstance(step, SshStep) or not step.changes_state or step.undo is None:
        return StepReport(step.id, step.name, "none", "nothing to undo")
    try:
        if step.hosts:
            return _undo_where_done(ctx, step)
        result = execute_step(ctx, step, phase=StepPhase.UNDO, command="undo")
        return StepReport(step.id, step.name, "undo", "undone", result.duration_s)
    except CutoverError as exc:
        return StepReport(step.id, step.name, "undo", "undo failed", error=redact(str(exc)))


def _undo_replication(ctx: StepContext, step: ReplicationStep) -> StepReport:
    try:
        result = execute_step(ctx, step, phase=StepPhase.UNDO, command="undo")
    except CutoverError as exc:
        return StepReport(step.id, step.name, "undo", "undo failed", error=redact(str(exc)))
    return StepReport(step.id, step.name, "undo", "undone", result.duration_s)


def _undo_where_done(ctx: StepContext, step: SshStep) -> StepReport:
    """Undo a fan-out step on each host where it succeeded (not where it failed or never ran)."""
    hosts = [h for h, key in _host_keys(step).items() if _succeeded(ctx, key)]
    errors: list[str] = []
    for host in hosts:
        try:
            run_ssh_step(ctx, step, host or "", command="undo", phase=StepPhase.UNDO)
        except CutoverError as exc:
            errors.append(f"{host}: {redact(str(exc))}")
    if errors:
        return StepReport(step.id, step.name, "undo", "undo failed", error="; ".join(errors))
    return StepReport(step.id, step.name, f"undo on {', '.join(h or '' for h in hosts) or 'no host'}", "undone")


def _succeeded(ctx: StepContext, key: str) -> bool:
    record = ctx.ledger.get_step(ctx.run_id, key)
    return record is not None and record.status is StepStatus.SUCCEEDED


def _cover_one(ctx: StepContext, step: AnyStep, covering: dict[str, Step], *, traffic_moved: bool) -> StepReport:
    assert isinstance(step, SshStep)
    action = f"covered by {step.covered_by}"
    if not traffic_moved:
        return StepReport(
            step.id, step.name, action, "not needed: traffic never reached the cloud copy, the original is unchanged"
        )
    try:
        cover = covering[step.covered_by or ""]
        result = execute_step(ctx, cover, phase=StepPhase.UNDO, key=f"{cover.id}:covers:{step.id}")
        return StepReport(step.id, step.name, action, "undone", result.duration_s)
    except (CutoverError, KeyError) as exc:
        return StepReport(step.id, step.name, action, "undo failed", error=redact(str(exc)))


def _as_recorded(ctx: StepContext, step: AnyStep, plan: _Plan) -> AnyStep:
    """A catch-up on snapshots as the ledger last recorded it (its ``take``), or taken once more: when it
    is recorded as done but this process holds no snapshots (a crash or re-run since) and the switch never
    started, it runs again as a new attempt to take new ones (nothing was written on the cloud copy since;
    its reverse slot is made again). Once the switch started, the verification fails on the lost snapshots
    instead and the saga rolls back, carrying the cloud copy's writes back."""
    if not (isinstance(step, ReplicationStep) and step.action is ReplicationAction.CATCH_UP and on_snapshots(ctx.spec)):
        return step
    record = ctx.ledger.get_step(ctx.run_id, step.id)
    if record is None:
        return step
    take = int(record.detail.get("take", 0)) if isinstance(record.detail, dict) else 0
    if record.status is not StepStatus.SUCCEEDED or replication.holding_snapshots(ctx.run_id):
        return step.model_copy(update={"take": take})
    if plan.switch is None or _began(ctx, plan.switch):
        return step.model_copy(update={"take": take})
    if ctx.log:
        ctx.log(
            f"{step.id}: the snapshots taken at the catch-up are gone (a crash or re-run) and traffic never moved: catching up again to take new ones"
        )
    return step.model_copy(update={"take": take + 1})


def _began(ctx: StepContext, step_id: str) -> bool:
    """Whether the ledger shows any attempt of ``step_id`` in this run (on any host, or its check)."""
    prefixes = (f"{step_id}@", f"{step_id}:", f"{step_id}-check")
    return any(r.step_id == step_id or r.step_id.startswith(prefixes) for r in ctx.ledger.list_steps(ctx.run_id))


def _reconcile(ctx: StepContext, step: AnyStep) -> None:
    """A step left ``started`` by a killed worker: decide with its check whether it took effect.

    Not when its definition changed since: the step runs again as a new attempt either way.
    """
    record = ctx.ledger.get_step(ctx.run_id, step.id)
    if record is None or record.status is not StepStatus.STARTED:
        return
    if record.step_digest != executions.definition_digest(step, ctx.ledger.digest):
        return
    if isinstance(step, SshStep) and step.check is not None and step.host is not None:
        failure = _check_failure(ctx, step)
        status = StepStatus.SUCCEEDED if failure is None else StepStatus.UNKNOWN
        note = (
            "check passed: the step took effect before the crash"
            if failure is None
            else f"check failed, running the step again — {failure}"
        )
    else:
        status, note = StepStatus.UNKNOWN, "outcome unknown after a crash and no check: running it again"
    executions.finish(ctx.ledger, ctx.run_id, step.id, status=status, actor=ctx.actor, detail={"reconciled": note})
    if ctx.log:
        ctx.log(f"{step.id}: reconciled after a crash — {note}")


def _check_failure(ctx: StepContext, step: SshStep) -> str | None:
    """None when the step's check command exits 0 (the step took effect), else what it did instead."""
    attempt = len([s for s in ctx.ledger.list_steps(ctx.run_id) if s.step_id.startswith(f"{step.id}-check")])
    probe = step.model_copy(update={"id": f"{step.id}-check{attempt}"})
    try:
        run_ssh_step(ctx, probe, step.host or "", command="check", phase=StepPhase.CUTOVER)
    except CutoverError as exc:
        return redact(str(exc))
    return None
