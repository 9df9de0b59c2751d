"""Claiming a system for a rollback: the refusals, the ledger run, and the per-system lock.

One transaction reads the system's state, creates the rollback run (pointing at the cutover it
reverses) and takes the system's lock, then reads the state again: of two simultaneous requests
exactly one gets the lock, and a request arriving just after a finished rollback sees
``rolled_back``. Every refusal is audited and raised with the reason and what to do:

- :class:`~cutover.errors.ConcurrencyRefused` — another rollback (named) or a cutover holds it;
- :class:`~cutover.errors.RetentionError` — decommissioned, already rolled back, not in retention.

A run whose worker died is taken over with ``resume=True`` (its completed steps are not repeated).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cutover import audit
from cutover.errors import ConcurrencyRefused, RetentionError
from cutover.ledger import (
    AuditOutcome,
    CutoverRun,
    Ledger,
    LifecycleState,
    RetentionWindow,
    RunKind,
    RunState,
    System,
)

#: States a rollback may start from: in retention, or retrying an incomplete rollback.
ROLLBACK_FROM = frozenset({LifecycleState.RETAINED, LifecycleState.ROLLBACK_INCOMPLETE})


@dataclass(frozen=True)
class RollbackClaim:
    """The rollback run this request works on, the window it closes, and the state it started in."""

    run: CutoverRun
    window: RetentionWindow
    state: LifecycleState
    taken_over: bool = False


def claim_rollback(
    ledger: Ledger, system_id: str, *, flow_run_id: str | None, resume: bool, actor: str
) -> RollbackClaim:
    """Create (or take over) the system's rollback run and lock, or raise the refusal."""
    try:
        running = ledger.running_run_for(system_id, kind=RunKind.ROLLBACK)
        if running is not None:
            return _continue(ledger, system_id, running, flow_run_id=flow_run_id, resume=resume, actor=actor)
        return _new_claim(ledger, system_id, flow_run_id, actor)
    except (ConcurrencyRefused, RetentionError) as exc:
        refused(ledger, system_id, actor=actor, reason=str(exc))
        raise


def refused(ledger: Ledger, system_id: str, *, actor: str, reason: str) -> None:
    """Audit a refused rollback request."""
    with ledger.session() as session:
        audit.append(
            session,
            actor=actor,
            action="rollback.refused",
            object=f"system:{system_id}",
            outcome=AuditOutcome.REFUSED,
            detail={"reason": reason},
        )


def _new_claim(ledger: Ledger, system_id: str, flow_run_id: str | None, actor: str) -> RollbackClaim:
    with ledger.session() as session:
        state, window = _check_allowed(session, system_id)
        run = ledger.create_run(
            system_id,
            RunKind.ROLLBACK,
            run_id=str(uuid.uuid4()),
            flow_run_id=flow_run_id,
            reverses_run_id=window.cutover_run_id,
            session=session,
        )
        ledger.acquire_lock(system_id, run.id, RunKind.ROLLBACK, session=session)
        state, window = _check_allowed(session, system_id)  # a rollback may have finished meanwhile
        audit.append(
            session,
            actor=actor,
            action="rollback.started",
            object=f"system:{system_id}",
            detail={"run_id": run.id, "reverses_run_id": window.cutover_run_id, "from": state.value},
        )
    return RollbackClaim(run, window, state)


def _continue(
    ledger: Ledger, system_id: str, running: CutoverRun, *, flow_run_id: str | None, resume: bool, actor: str
) -> RollbackClaim:
    if not (resume or (flow_run_id is not None and running.flow_run_id == flow_run_id)):
        raise ConcurrencyRefused(
            f"a rollback of system {system_id} is already running: run {running.id} (Prefect flow run "
            f"{running.flow_run_id or 'none: started outside Prefect'}, started {running.started_at:%Y-%m-%d %H:%M:%S} UTC); "
            "this request did nothing. Wait for that run to finish; if its worker died, start the rollback "
            "again with resume=true to continue it from the ledger"
        )
    with ledger.session() as session:
        state, window = _check_allowed(session, system_id)
        ledger.acquire_lock(system_id, running.id, RunKind.ROLLBACK, session=session)
        audit.append(
            session,
            actor=actor,
            action="rollback.resumed",
            object=f"system:{system_id}",
            detail={"run_id": running.id, "previous_flow_run": running.flow_run_id, "flow_run": flow_run_id},
        )
    return RollbackClaim(running, window, state, taken_over=True)


def _check_allowed(session: Session, system_id: str) -> tuple[LifecycleState, RetentionWindow]:
    system = session.get(System, system_id, populate_existing=True)
    if system is None:
        raise RetentionError(
            f"system {system_id!r} is not in the ledger, so there is nothing to roll back; check the id "
            "(`cutover status` lists the systems)"
        )
    _refuse_cutover_running(session, system_id, system.state)
    if system.state not in ROLLBACK_FROM:
        raise RetentionError(_not_in_retention(session, system_id, system.state))
    window = _open_window(session, system_id)
    if window is None:
        raise RetentionError(
            f"system {system_id!r} is {system.state.value} but has no open retention window (the cutover "
            "itself ended incomplete); there is no retained original to go back to. Finish the cutover's "
            "compensation by hand as its run report says"
        )
    return system.state, window


def _open_window(session: Session, system_id: str) -> RetentionWindow | None:
    statement = sa.select(RetentionWindow).where(
        RetentionWindow.system_id == system_id, RetentionWindow.closed_at.is_(None)
    )
    return session.scalars(statement.limit(1).execution_options(populate_existing=True)).first()


def _runs(session: Session, system_id: str, kind: RunKind, state: RunState) -> list[CutoverRun]:
    statement = sa.select(CutoverRun).where(
        CutoverRun.system_id == system_id, CutoverRun.kind == kind, CutoverRun.state == state
    )
    return list(session.scalars(statement.order_by(CutoverRun.started_at)))


def _refuse_cutover_running(session: Session, system_id: str, state: LifecycleState) -> None:
    running = _runs(session, system_id, RunKind.CUTOVER, RunState.RUNNING)
    cutover = running[-1] if running else None
    if cutover is not None or state is LifecycleState.CUTTING_OVER:
        which = f"run {cutover.id} (Prefect flow run {cutover.flow_run_id})" if cutover else "a run"
        raise ConcurrencyRefused(
            f"a cutover of system {system_id} is running: {which}; a rollback applies only once the system "
            "is in retention. A failing cutover undoes its own steps; wait for it to finish"
        )


def _not_in_retention(session: Session, system_id: str, state: LifecycleState) -> str:
    if state is LifecycleState.DECOMMISSIONED:
        return (
            f"system {system_id} was decommissioned (service exit, signed by both parties): the original "
            "no longer exists as a way back, so it cannot be rolled back"
        )
    if state is LifecycleState.ROLLED_BACK:
        done = _runs(session, system_id, RunKind.ROLLBACK, RunState.SUCCEEDED)
        last = done[-1] if done else None
        when = f" by run {last.id} at {last.finished_at:%Y-%m-%d %H:%M:%S} UTC" if last and last.finished_at else ""
        return f"system {system_id} was already rolled back{when}; the original serves its traffic. Nothing to do"
    return (
        f"system {system_id} is {state.value}, not in retention: only a cut-over system whose original is "
        "retained can be rolled back"
    )


def release(ledger: Ledger, system_id: str, run_id: str) -> None:
    """Give the system back (the run has a final outcome)."""
    ledger.release_lock(system_id, run_id)


__all__ = ["ROLLBACK_FROM", "RollbackClaim", "claim_rollback", "refused", "release"]
