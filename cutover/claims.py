"""Claiming a system for a run, and giving it back: one run of a system at a time.

:func:`claim` is the one way any run (cutover, rollback, decommission) takes a system. In one
transaction it reads the system's state, lets the caller's ``check`` refuse it (e.g. a rollback of
a system that is not in retention), finds a run of the same kind still running, creates the new
run and takes the system's lock, then checks again: of two simultaneous requests exactly one gets
the system, and a request arriving just after another run finished sees that run's outcome.

A run still running is continued, not duplicated:

- by the same Prefect flow run (restarted from the top after a suspend, e.g. the sign-off);
- with ``resume=True``, when its worker died: the run is taken over, audited as
  ``<kind>.resumed``, and its completed steps are not repeated.

Anything else is refused with :class:`~cutover.errors.ConcurrencyRefused` naming the run that
holds the system; every refusal is audited as ``<kind>.refused``. :func:`release` gives the
system back once the run has its final outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cutover import audit
from cutover.errors import ConcurrencyRefused, CutoverError, LedgerError, LifecycleError
from cutover.ledger import AuditOutcome, Ledger, LifecycleState, Run, RunKind, RunState, System

__all__ = ["Check", "Claim", "claim", "refused", "release"]

#: Raises the refusal when the system, as read in the claim's transaction (None: not in the
#: ledger), may not be claimed.
Check = Callable[[Session, System | None], None]


@dataclass(frozen=True)
class Claim:
    """The run this request works on and the system's state when it was claimed."""

    run: Run
    state: LifecycleState
    taken_over: bool = False  # a run whose worker died, continued with resume=True
    restarted: bool = False  # the same flow run, started again after a suspend


def claim(
    ledger: Ledger,
    system_id: str,
    kind: RunKind,
    *,
    actor: str,
    flow_run_id: str | None = None,
    resume: bool = False,
    check: Check | None = None,
    reverses_run_id: str | None = None,
) -> Claim:
    """Create (or continue) the system's run of ``kind`` with its lock, or raise the refusal (audited)."""
    try:
        with ledger.session() as session:
            system = _checked(session, system_id, check)
            running = _running(session, system_id, kind)
            if running is not None:
                return _continue(ledger, session, system, running, flow_run_id=flow_run_id, resume=resume, actor=actor)
            run = ledger.create_run(
                system_id,
                kind,
                flow_run_id=flow_run_id,
                reverses_run_id=reverses_run_id,
                session=session,
            )
            ledger.acquire_lock(system_id, run.id, kind, session=session)
            system = _checked(session, system_id, check)  # another run may have finished meanwhile
            audit.append(
                session,
                actor=actor,
                action=f"{kind.value}.started",
                object=f"system:{system_id}",
                detail={"run_id": run.id, "flow_run": flow_run_id, "from": system.state.value},
            )
            return Claim(run, system.state)
    except CutoverError as exc:
        if not isinstance(exc, LedgerError):
            refused(ledger, system_id, kind, actor=actor, reason=str(exc))
        raise


def release(ledger: Ledger, system_id: str, run_id: str) -> None:
    """Give the system back (the run has its final outcome)."""
    ledger.release_lock(system_id, run_id)


def _checked(session: Session, system_id: str, check: Check | None) -> System:
    system = session.get(System, system_id, populate_existing=True)
    if check is not None:
        check(session, system)
    if system is None:
        raise LifecycleError(
            f"system {system_id!r} is not in the ledger, so no run can claim it; check the id "
            "(`cutover status` lists the systems) or register its spec (`cutover plan`)"
        )
    return system


def _running(session: Session, system_id: str, kind: RunKind) -> Run | None:
    statement = sa.select(Run).where(Run.system_id == system_id, Run.kind == kind, Run.state == RunState.RUNNING)
    return session.scalars(statement.order_by(Run.started_at.desc()).limit(1)).first()


def _continue(
    ledger: Ledger,
    session: Session,
    system: System,
    running: Run,
    *,
    flow_run_id: str | None,
    resume: bool,
    actor: str,
) -> Claim:
    if flow_run_id is not None and running.flow_run_id == flow_run_id:
        return Claim(running, system.state, restarted=True)
    if not resume:
        raise ConcurrencyRefused(
            f"a {running.kind.value} of system {system.id} is already running: run {running.id} (Prefect flow run "
            f"{running.flow_run_id or 'none: started outside Prefect'}, started {running.started_at:%Y-%m-%d %H:%M:%S} "
            "UTC); this request did nothing. Wait for that run to finish; if its worker died, start it again "
            "with resume=true to continue it from the ledger"
        )
    ledger.acquire_lock(system.id, running.id, running.kind, session=session)
    audit.append(
        session,
        actor=actor,
        action=f"{running.kind.value}.resumed",
        object=f"system:{system.id}",
        detail={"run_id": running.id, "previous_flow_run": running.flow_run_id, "flow_run": flow_run_id},
    )
    return Claim(running, system.state, taken_over=True)


def refused(ledger: Ledger, system_id: str, kind: RunKind, *, actor: str, reason: str) -> None:
    """Audit a refused request for a run of ``kind`` (``<kind>.refused``, with the reason)."""
    with ledger.session() as session:
        audit.append(
            session,
            actor=actor,
            action=f"{kind.value}.refused",
            object=f"system:{system_id}",
            outcome=AuditOutcome.REFUSED,
            detail={"reason": reason},
        )
