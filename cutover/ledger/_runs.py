"""Runs and their step executions, keyed by (run id, step id) so a re-run never repeats a step.

A step is recorded ``started`` before it acts (:meth:`RunsRepository.begin_step`) and finished
after (:meth:`RunsRepository.finish_step`). A re-run that finds a step already begun gets the
existing record back with ``is_new=False`` and must reconcile, not repeat it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cutover.errors import LedgerError
from cutover.ledger._core import LedgerCore, insert_unless_present, plain_json
from cutover.ledger._enums import RunKind, RunState, StepPhase, StepStatus
from cutover.ledger._models import Run, StepExecution

OUTPUT_TAIL_CHARS = 8_000


class StepClaim(NamedTuple):
    """The step's record, and whether this call created it (False: it was begun before)."""

    record: StepExecution
    is_new: bool


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
        phase: StepPhase,
        host: str | None = None,
        detail: Mapping[str, Any] | None = None,
        session: Session | None = None,
    ) -> StepClaim:
        """Record the step ``started`` before it acts, or return the record that already exists."""
        with self._tx(session) as s:
            existing = self._find_step(s, run_id, step_id)
            if existing is not None:
                return StepClaim(existing, is_new=False)
            run = self._require_run(s, run_id)
            record = StepExecution(
                run_id=run_id,
                step_id=step_id,
                system_id=run.system_id,
                phase=phase,
                host=host,
                status=StepStatus.STARTED,
                output_tail="",
                detail=plain_json(detail),
                started_at=self.now(),
            )
            if insert_unless_present(s, record):
                return StepClaim(record, is_new=True)
            return StepClaim(self._require_step(s, run_id, step_id), is_new=False)

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
        """Record what became of a begun step; ``detail`` is merged into what was recorded."""
        if status is StepStatus.STARTED:
            raise LedgerError(f"run {run_id} step {step_id!r}: finish_step needs an outcome")
        with self._tx(session) as s:
            record = self._require_step(s, run_id, step_id)
            record.status, record.exit_status = status, exit_status
            record.duration_s = duration_s
            record.output_tail = output_tail[-OUTPUT_TAIL_CHARS:]
            record.detail = {**record.detail, **plain_json(detail)}
            record.finished_at = self.now()
            s.flush()
            return record

    def get_step(self, run_id: str, step_id: str, *, session: Session | None = None) -> StepExecution | None:
        """The step's record, or None if it was never begun."""
        with self._tx(session) as s:
            return self._find_step(s, run_id, step_id)

    def list_steps(self, run_id: str) -> list[StepExecution]:
        """Every step of the run, in the order they were begun."""
        statement = sa.select(StepExecution).where(StepExecution.run_id == run_id)
        with self.session() as s:
            return list(s.scalars(statement.order_by(StepExecution.id)))

    def _find_step(self, s: Session, run_id: str, step_id: str) -> StepExecution | None:
        statement = sa.select(StepExecution).where(StepExecution.run_id == run_id, StepExecution.step_id == step_id)
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
