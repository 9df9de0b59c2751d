"""Claiming a system for a rollback: the refusals a rollback adds to :func:`cutover.claims.claim`.

The claim (one transaction: state checked, run created pointing at the cutover it reverses, lock
taken, state checked again) is :mod:`cutover.claims`'s; this module says when a rollback may not
start. Every refusal is audited and raised with the reason and what to do:

- :class:`~cutover.errors.ConcurrencyRefused` — another rollback (named) or a cutover holds it;
- :class:`~cutover.errors.RetentionError` — decommissioned, already rolled back, not in retention.

A run whose worker died is taken over with ``resume=True`` (its completed steps are not repeated).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cutover import claims
from cutover.errors import ConcurrencyRefused, RetentionError
from cutover.ledger import (
    Ledger,
    LifecycleState,
    RetentionWindow,
    Run,
    RunKind,
    RunState,
    System,
)

#: States a rollback may start from: in retention, or retrying an incomplete rollback.
ROLLBACK_FROM = frozenset({LifecycleState.RETAINED, LifecycleState.ROLLBACK_INCOMPLETE})


@dataclass(frozen=True)
class RollbackClaim:
    """The rollback run this request works on, the window it closes, and the state it started in."""

    run: Run
    window: RetentionWindow
    state: LifecycleState
    taken_over: bool = False


def claim_rollback(
    ledger: Ledger,
    system_id: str,
    *,
    flow_run_id: str | None,
    resume: bool,
    actor: str,
    holder_state: claims.HolderLookup | None = None,
) -> RollbackClaim:
    """Create (or take over) the system's rollback run and lock, or raise the refusal (audited)."""
    window = ledger.current_retention_window(system_id)
    taken = claims.claim(
        ledger,
        system_id,
        RunKind.ROLLBACK,
        actor=actor,
        flow_run_id=flow_run_id,
        resume=resume,
        check=_check_allowed,
        reverses_run_id=window.cutover_run_id if window is not None else None,
        holder_state=holder_state,
    )
    with ledger.session() as session:
        window = _open_window(session, system_id)
    if window is None:  # closed between the claim and now: only a finished rollback does that
        raise RetentionError(f"the retention window of {system_id} closed while this rollback was claimed")
    return RollbackClaim(taken.run, window, taken.state, taken_over=taken.taken_over)


def _check_allowed(session: Session, system: System | None) -> None:
    if system is None:
        raise RetentionError(
            "this system is not in the ledger, so there is nothing to roll back; check the id "
            "(`cutover status` lists the systems)"
        )
    _refuse_cutover_running(session, system.id, system.state)
    if system.state not in ROLLBACK_FROM:
        raise RetentionError(_not_in_retention(session, system.id, system.state))
    if _open_window(session, system.id) is None:
        raise RetentionError(
            f"system {system.id!r} is {system.state.value} but has no open retention window (the cutover "
            "itself ended incomplete); there is no retained original to go back to. Retry the cutover's "
            f"undo with `cutover resolve {system.id}`, or, once it is finished by hand, record it: "
            f"`cutover resolve {system.id} --manual --state compensated --note '...'`"
        )


def _open_window(session: Session, system_id: str) -> RetentionWindow | None:
    statement = sa.select(RetentionWindow).where(
        RetentionWindow.system_id == system_id, RetentionWindow.closed_at.is_(None)
    )
    return session.scalars(statement.limit(1).execution_options(populate_existing=True)).first()


def _runs(session: Session, system_id: str, kind: RunKind, state: RunState) -> list[Run]:
    statement = sa.select(Run).where(Run.system_id == system_id, Run.kind == kind, Run.state == state)
    return list(session.scalars(statement.order_by(Run.started_at)))


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


__all__ = ["ROLLBACK_FROM", "RollbackClaim", "claim_rollback"]
