"""Run any spec step (ssh, http_check, data_verify) with ledger records before and after.

:func:`execute_step` is the one place that knows the step kinds. Each execution is keyed by
(run id, step key) and recorded with the digest of the step definition (:mod:`cutover.executions`,
which also puts it in the audit trail); a key that succeeded under the same definition is not run
again (``replayed``), one whose definition changed since runs again as a new attempt.
:class:`StepReport` is one line of a run's report (cutover saga or rollback) and
:func:`step_table` renders those lines as the Markdown table both reports show.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cutover import executions
from cutover.errors import CutoverError, HealthCheckFailed
from cutover.ledger import StepPhase, StepStatus
from cutover.secrets import redact, resolve
from cutover.spec import DataVerifyStep, HttpCheckStep, SshStep, Step
from tasks import replication, replication_steps
from tasks.data import verify_databases
from tasks.engines import NormalForm
from tasks.health import probe
from tasks.replication_steps import ReplicationStep
from tasks.ssh import CommandName, StepContext, fan_out, run_ssh_step

#: A step the saga or a rollback runs: one of the spec's, or one the tool adds for ``data.replication``.
AnyStep = Step | ReplicationStep


@dataclass(frozen=True)
class StepResult:
    """What one step did, for the saga's report."""

    step_id: str
    name: str
    kind: str
    duration_s: float
    replayed: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepReport:
    """One line of a run's report: what was done for a step and how it ended."""

    step_id: str
    name: str
    action: str  # "run", "undo", "covered by <id>", "gate", "none"
    outcome: str  # "succeeded", "replayed", "failed", "undone", "undo failed", "nothing to undo", ...
    duration_s: float = 0.0
    error: str | None = None


def step_table(reports: Sequence[StepReport]) -> list[str]:
    """The Markdown table of ``reports`` (step, action, outcome, duration, error), one row each."""
    return [
        "| step 步骤 | action | outcome 结果 | duration | error |",
        "|---|---|---|---:|---|",
        *(
            f"| {r.name} (`{r.step_id}`) | {r.action} | {r.outcome} | {r.duration_s:.2f} s | {r.error or ''} |"
            for r in reports
        ),
    ]


def execute_step(
    ctx: StepContext, step: AnyStep, *, phase: StepPhase, command: CommandName = "run", key: str | None = None
) -> StepResult:
    """Run ``step`` (its ``command`` for ssh and replication steps); raise a CutoverError when it fails."""
    started = time.monotonic()
    if isinstance(step, SshStep):
        detail = _ssh(ctx, step, phase, command, key)
        replayed = bool(detail.pop("replayed", False))
    elif isinstance(step, ReplicationStep):
        replayed, detail = _replication(ctx, step, phase, command, key)
    else:
        replayed, detail = recorded(
            ctx, key or step.id, phase=phase, kind=step.kind, act=lambda: _check(ctx, step), definition=step
        )
    return StepResult(step.id, step.name, step.kind, time.monotonic() - started, replayed, detail)


def _ssh(ctx: StepContext, step: SshStep, phase: StepPhase, command: CommandName, key: str | None) -> dict[str, Any]:
    if step.host is not None:
        result = run_ssh_step(ctx, step, step.host, command=command, phase=phase, key=key)
        return {"hosts": {result.host: result.exit_status}, "replayed": result.replayed}
    outcome = fan_out(ctx, step, command=command, phase=phase)
    if not outcome.ok:
        failures = "; ".join(f"{host}: {error}" for host, error in sorted(outcome.errors.items()))
        raise type(next(iter(outcome.errors.values())))(
            f"step {step.id} failed on {len(outcome.errors)} of {len(outcome.errors) + len(outcome.results)} hosts — {failures}"
        )
    return {
        "hosts": {h: r.exit_status for h, r in outcome.results.items()},
        "replayed": all(r.replayed for r in outcome.results.values()),
    }


def _replication(
    ctx: StepContext, step: ReplicationStep, phase: StepPhase, command: CommandName, key: str | None
) -> tuple[bool, dict[str, Any]]:
    undoing = command == "undo"
    act = replication_steps.undo if undoing else replication_steps.act
    return recorded(
        ctx,
        key or (f"{step.id}:undo" if undoing else step.id),
        phase=phase,
        kind=step.kind,
        act=lambda: act(ctx.spec, step, ctx.run_id),
        definition=step,
    )


def recorded(
    ctx: StepContext,
    key: str,
    *,
    phase: StepPhase,
    kind: str,
    act: Callable[[], dict[str, Any]],
    definition: object = None,
) -> tuple[bool, dict[str, Any]]:
    """Run ``act`` recorded under ``key`` before and after; (True, its detail) if it already succeeded.

    ``definition`` is what ``act`` does (a spec step, or the checks it runs): a result recorded
    under another definition does not count, and ``act`` runs again. ``act`` returns the
    JSON-ready detail of what it found, or raises a CutoverError (recorded ``failed`` with the
    error's text and detail, then raised again).
    """
    digest = executions.definition_digest({"kind": kind} if definition is None else definition, ctx.ledger.digest)
    claim = executions.begin(
        ctx.ledger, ctx.run_id, key, step_digest=digest, phase=phase, actor=ctx.actor, detail={"kind": kind}
    )
    if claim.done:
        return True, dict(claim.record.detail)
    started = time.monotonic()
    try:
        detail = act()
    except CutoverError as exc:
        executions.finish(
            ctx.ledger,
            ctx.run_id,
            key,
            actor=ctx.actor,
            status=StepStatus.FAILED,
            duration_s=time.monotonic() - started,
            output_tail=redact(str(exc)),
            detail=exc.detail,
        )
        raise
    executions.finish(
        ctx.ledger,
        ctx.run_id,
        key,
        actor=ctx.actor,
        status=StepStatus.SUCCEEDED,
        duration_s=time.monotonic() - started,
        detail=detail,
    )
    return False, detail


def _check(ctx: StepContext, step: HttpCheckStep | DataVerifyStep) -> dict[str, Any]:
    if isinstance(step, HttpCheckStep):
        seen = probe(step)
        if ctx.log:
            ctx.log(seen.describe())
        if not seen.passed:
            raise HealthCheckFailed(f"step {step.id}: {seen.describe()}")
        return {"status": seen.status, "latency_ms": round(seen.latency_ms, 1)}
    return _verify(ctx, step)


_AFTER_THE_SWITCH = (
    "Traffic already flows to the cloud copy: the cutover rolls back, sending it to the original and carrying "
    "every write the cloud copy acknowledged back; find why the replication missed these rows, then run the "
    "cutover again."
)


def _verify(ctx: StepContext, step: DataVerifyStep) -> dict[str, Any]:
    source = resolve(ctx.spec, step.source).get_secret_value()
    target = resolve(ctx.spec, step.target).get_secret_value()
    snapshots = None
    if step.id in replication_steps.verified_on_snapshots(ctx.spec):
        snapshots = replication.snapshots_held(ctx.run_id, source, target)
    result = verify_databases(
        source,
        target,
        step.tables,
        keys=step.keys,
        chunk_rows=step.chunk_rows,
        form=NormalForm(float_decimals=step.float_decimals, time_zone=step.time_zone),
        source_snapshot=snapshots.original if snapshots else None,
        target_snapshot=snapshots.cloud if snapshots else None,
    )
    if ctx.log:
        for table in result.tables:
            ctx.log(f"{step.id}: {table.describe()}" + (" (on the snapshots taken at the switch)" if snapshots else ""))
    detail: dict[str, Any] = {"tables": result.as_detail(), "rows": result.rows}
    if snapshots:
        detail["snapshots"] = snapshots.as_detail()
        result.raise_for_mismatch(f"step {step.id}", detail=detail, then=_AFTER_THE_SWITCH)
    result.raise_for_mismatch(f"step {step.id}", detail=detail)
    return detail
