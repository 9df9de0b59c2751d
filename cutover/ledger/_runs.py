"""Runs and their step executions, keyed by what ran so a re-run never repeats a step it need not.

A step is recorded ``started`` before it acts (:meth:`RunsRepository.begin_step`) and finished
after (:meth:`RunsRepository.finish_step`), under its key in the run (the step id, with the host
for a fan-out and the command for undo and check) and the digest of the step definition.

Keyed by (run id, key, attempt), so (run id, key) names a history and its newest attempt is the
current record. :meth:`RunsRepository.begin_step` returns that record (``is_new=False``) only if
it still stands for the step as now defined: begun and not finished (reconcile it, do not repeat
it), or finished ``succeeded``/``skipped`` under the same step digest (its result counts). Any
other record (failed, unknown, or another definition) is superseded by a new attempt; the
earlier rows stay, and one left ``started`` under another definition is finished ``unknown``.
A row is written twice at most, inserted then finished: the database refuses any other change
(see the migration ``2026_12_02_0003``), and :func:`step_record_digest` is what the audit trail
records of it, so ``cutover audit verify`` finds an edited row.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cutover.digest import Algorithm, digest_json
from cutover.errors import LedgerError
from cutover.ledger._core import LedgerCore, insert_unless_present, plain_json
from cutover.ledger._enums import RunKind, RunState, StepPhase, StepStatus
from cutover.ledger._models import Run, StepExecution

OUTPUT_TAIL_CHARS = 8_000


#: Finished outcomes that count as the step's result under the same step digest.
_RESULTS = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED})


class StepClaim(NamedTuple):
    """The step's current record, whether this call created it, and the attempt it closed.

    ``is_new=False`` means the record stands for the step as defined now: ``done`` (its result
    counts, do not act again) or still ``started`` (reconcile it). ``closed`` is an earlier attempt,
    begun under another definition and never finished, that this call finished as ``unknown``.
    """

    record: StepExecution
    is_new: bool
    closed: StepExecution | None = None

    @property
    def done(self) -> bool:
        """True when the step's recorded result counts: it is not to be run again."""
        return not self.is_new and self.record.finished_at is not None


def step_record_digest(record: StepExecution, algorithm: Algorithm) -> str:
    """The digest of everything a step execution row records (what its audit events hold)."""
    return digest_json(
        {
            "run_id": record.run_id,
            "step_id": record.step_id,
            "attempt": record.attempt,
            "system_id": record.system_id,
            "phase": StepPhase(record.phase).value,
            "host": record.host,
            "step_digest": record.step_digest,
            "status": StepStatus(record.status).value,
            "exit_status": record.exit_status,
            "duration_s": record.duration_s,
            "output_tail": record.output_tail,
            "detail": record.detail,
            "started_at": record.started_at.isoformat(),
            "finished_at": record.finished_at.isoformat() if record.finished_at else None,
        },
        algorithm,
    )


class RunsRepository(LedgerCore):
    """Cutover, rollback and decommission runs and the steps they execute."""

    def create_run(
        self,
        system_id: str,
        kind: RunKind,
        *,
        run_id: str | None = None,
        flow_run_id: str | None = None,
        reverses_run_id: str | None = None,
        session: Session | None = None,
    ) -> Run:
        """Record a new run in ``running`` (``run_id`` defaults to a fresh uuid4)."""
        run = Run(
            id=run_id or str(uuid.uuid4()),
            system_id=system_id,
            kind=kind,
            flow_run_id=flow_run_id,
            state=RunState.RUNNING,
            started_at=self.now(),
            reverses_run_id=reverses_run_id,
        )
        with self._tx(session) as s:
            s.add(run)
            s.flush()
        return run

    def get_run(self, run_id: str, *, session: Session | None = None) -> Run | None:
        """The run, or None."""
        with self._tx(session) as s:
            return s.get(Run, run_id)

    def finish_run(
        self,
        run_id: str,
        state: RunState,
        *,
        note: str | None = None,
        session: Session | None = None,
    ) -> Run:
        """Record the run's outcome; finishing it again with the same outcome is a no-op."""
        if state is RunState.RUNNING:
            raise LedgerError(f"run {run_id}: finish_run needs an outcome, not {state.value!r}")
        with self._tx(session) as s:
            run = self._require_run(s, run_id)
            if run.finished_at is not None and run.state is not state:
                raise LedgerError(
                    f"run {run_id} already finished as {run.state.value!r}; "
                    f"it cannot be finished again as {state.value!r}"
                )
            if run.finished_at is None:
                run.state, run.note, run.finished_at = state, note, self.now()
            s.flush()
            return run

    def running_run_for(self, system_id: str, *, kind: RunKind | None = None) -> Run | None:
        """The system's most recently started run still ``running`` (optionally of ``kind``)."""
        statement = sa.select(Run).where(Run.system_id == system_id, Run.state == RunState.RUNNING)
        if kind is not None:
            statement = statement.where(Run.kind == kind)
        with self.session() as s:
            return s.scalars(statement.order_by(Run.started_at.desc()).limit(1)).first()

    def list_runs(self, system_id: str) -> list[Run]:
        """Every run of the system, oldest first."""
        statement = sa.select(Run).where(Run.system_id == system_id)
        with self.session() as s:
            return list(s.scalars(statement.order_by(Run.started_at)))

    def begin_step(
        self,
        run_id: str,
        step_id: str,
        *,
        step_digest: str,
        phase: StepPhase,
        host: str | None = None,
        detail: Mapping[str, Any] | None = None,
        session: Session | None = None,
    ) -> StepClaim:
        """Record the step ``started`` before it acts, or return the record that still stands for it.

        ``step_digest`` is the digest of the step definition about to run: a record made under
        another one is superseded by a new attempt, never returned (see the module docstring).
        """
        with self._tx(session) as s:
            latest = self._find_step(s, run_id, step_id)
            if latest is not None and _stands_for(latest, step_digest):
                return StepClaim(latest, is_new=False)
            closed = self._close_superseded(latest, step_digest) if latest is not None else None
            run = self._require_run(s, run_id)
            record = StepExecution(
                run_id=run_id,
                step_id=step_id,
                attempt=latest.attempt + 1 if latest is not None else 1,
                step_digest=step_digest,
                system_id=run.system_id,
                phase=phase,
                host=host,
                status=StepStatus.STARTED,
                output_tail="",
                detail=plain_json(detail),
                started_at=self.now(),
            )
            if insert_unless_present(s, record):
                return StepClaim(record, is_new=True, closed=closed)
            return StepClaim(self._require_step(s, run_id, step_id), is_new=False, closed=closed)

    def _close_superseded(self, record: StepExecution, step_digest: str) -> StepExecution | None:
        """Finish an attempt left ``started`` under another definition as ``unknown``; None if finished."""
        if record.finished_at is not None:
            return None
        record.status = StepStatus.UNKNOWN
        record.detail = {**record.detail, "superseded": f"the step definition changed to {step_digest}"}
        record.finished_at = self.now()
        return record

    def finish_step(
        self,
        run_id: str,
        step_id: str,
        *,
        status: StepStatus,
        exit_status: int | None = None,
        duration_s: float | None = None,
        output_tail: str = "",
        detail: Mapping[str, Any] | None = None,
        session: Session | None = None,
    ) -> StepExecution:
        """Record what became of the step's started attempt; ``detail`` is merged into what was recorded."""
        if status is StepStatus.STARTED:
            raise LedgerError(f"run {run_id} step {step_id!r}: finish_step needs an outcome")
        with self._tx(session) as s:
            record = self._require_step(s, run_id, step_id)
            if record.finished_at is not None:
                raise LedgerError(
                    f"run {run_id} step {step_id!r} attempt {record.attempt} already finished as "
                    f"{record.status.value!r}; a finished execution is never changed: begin the step "
                    "again to record a new attempt"
                )
            record.status, record.exit_status = status, exit_status
            record.duration_s = duration_s
            record.output_tail = output_tail[-OUTPUT_TAIL_CHARS:]
            record.detail = {**record.detail, **plain_json(detail)}
            record.finished_at = self.now()
            s.flush()
            return record

    def get_step(self, run_id: str, step_id: str, *, session: Session | None = None) -> StepExecution | None:
        """The step's current record (its newest attempt), or None if it was never begun."""
        with self._tx(session) as s:
            return self._find_step(s, run_id, step_id)

    def list_steps(self, run_id: str) -> list[StepExecution]:
        """Every step execution of the run (superseded attempts too), in the order they were begun."""
        statement = sa.select(StepExecution).where(StepExecution.run_id == run_id)
        with self.session() as s:
            return list(s.scalars(statement.order_by(StepExecution.id)))

    def _find_step(self, s: Session, run_id: str, step_id: str) -> StepExecution | None:
        statement = (
            sa.select(StepExecution)
            .where(StepExecution.run_id == run_id, StepExecution.step_id == step_id)
            .order_by(StepExecution.attempt.desc())
            .limit(1)
        )
        return s.scalars(statement.execution_options(populate_existing=True)).first()

    def _require_step(self, s: Session, run_id: str, step_id: str) -> StepExecution:
        record = self._find_step(s, run_id, step_id)
        if record is None:
            raise LedgerError(f"run {run_id} has no step {step_id!r} in the ledger; call begin_step first")
        return record

    def _require_run(self, s: Session, run_id: str) -> Run:
        run = s.get(Run, run_id)
        if run is None:
            raise LedgerError(f"run {run_id} is not in the ledger; create it with create_run first")
        return run


def _stands_for(record: StepExecution, step_digest: str) -> bool:
    """True when ``record`` is the current execution of the step defined by ``step_digest``."""
    if record.step_digest != step_digest:
        return False
    return record.finished_at is None or record.status in _RESULTS
