"""What a rollback runs: the spec's rollback steps in the safe order the tool makes of them (see
:mod:`rollback._order`: what it added or moved, and why, is in :attr:`RollbackPlan.changes`), which
of them an earlier attempt finished, and the health gate the original must pass at the end.

A rollback that ended incomplete is retried as a new ledger run reversing the same cutover. A
state-changing step that succeeded in an earlier attempt, as the spec defines it now (the same
step digest, see :mod:`cutover.executions`), is not repeated (it is recorded ``skipped``, naming
the run that did it); one whose definition changed since runs again. Read-only steps — data verification, HTTP checks, ssh
steps with ``changes_state: false`` — always run again: they check the state as it is now.
"""

from __future__ import annotations

from dataclasses import dataclass

from cutover.errors import ConfigurationError
from cutover.executions import definition_digest
from cutover.ledger import Ledger, RunKind, StepPhase, StepStatus
from cutover.spec import HealthGate, HttpCheckStep, Spec, SshStep
from rollback._order import PlanChange, safe_order
from tasks.steps import AnyStep

HEALTH_KEY = "original-health"


@dataclass(frozen=True)
class RollbackPlan:
    """The ordered steps, the original's health checks and gate, and steps done by earlier attempts."""

    steps: tuple[AnyStep, ...]
    health: tuple[HttpCheckStep, ...]
    gate: HealthGate
    done_earlier: dict[str, str]  # step key -> the rollback run that completed it
    changes: tuple[PlanChange, ...] = ()  # what the tool added to the spec's steps or moved, and why

    def remaining_from(self, index: int) -> list[str]:
        """What is left to do when step ``index`` failed (it, the steps after it, the health checks)."""
        left = [f"step {s.id!r} ({s.name})" for s in self.steps[index:]]
        if self.health:
            left.append("health checks of the original: " + ", ".join(c.id for c in self.health))
        return left


def build_plan(spec: Spec, ledger: Ledger, *, cutover_run_id: str, run_id: str) -> RollbackPlan:
    """The rollback plan of ``spec`` for the rollback run ``run_id`` reversing ``cutover_run_id``."""
    if spec.rollback is None:
        raise ConfigurationError(
            f"the spec of system {spec.system.id} has no rollback section, so there is no plan to run; "
            "add rollback.steps (reverse sync, verify, traffic back) to its YAML file"
        )
    gate = spec.cutover.health_gate if spec.cutover else HealthGate()
    steps, changes = safe_order(spec)
    digests = {key: definition_digest(step, ledger.digest) for step in steps for key in step_keys(step)}
    done = _done_earlier(ledger, spec.system.id, cutover_run_id, run_id, digests)
    return RollbackPlan(steps, tuple(spec.rollback.health), gate, done, changes)


def step_keys(step: AnyStep) -> list[str]:
    """The ledger keys the step's execution is recorded under (one per host for a fan-out)."""
    if isinstance(step, SshStep) and step.host is None and step.hosts:
        return [f"{step.id}@{host}" for host in step.hosts]
    return [step.id]


def changes_state(step: AnyStep) -> bool:
    """True for steps with side effects (ssh steps not marked read-only)."""
    return isinstance(step, SshStep) and step.changes_state


def _done_earlier(
    ledger: Ledger, system_id: str, cutover_run_id: str, run_id: str, digests: dict[str, str]
) -> dict[str, str]:
    """Step key -> the earlier rollback run whose newest attempt of it succeeded under ``digests[key]``."""
    earlier = [
        run.id
        for run in ledger.list_runs(system_id)
        if run.kind is RunKind.ROLLBACK and run.reverses_run_id == cutover_run_id and run.id != run_id
    ]
    done: dict[str, str] = {}
    for earlier_id in earlier:
        newest = {record.step_id: record for record in ledger.list_steps(earlier_id)}
        for key, record in newest.items():
            if (
                record.phase is StepPhase.ROLLBACK
                and record.status is StepStatus.SUCCEEDED
                and record.step_digest == digests.get(key)
            ):
                done[key] = earlier_id
    return done
