"""Claiming a system for a run, and giving it back: one run of a system at a time.

:func:`claim` is the one way any run (cutover, rollback, decommission) takes a system. In one
transaction it reads the system's state, lets the caller's ``check`` refuse it (e.g. a rollback of
a system that is not in retention), finds a run of the same kind still running, creates the new
run and takes the system's lock, then checks again: of two simultaneous requests exactly one gets
the system, and a request arriving just after another run finished sees that run's outcome.

A run still running in the ledger is continued, not duplicated:

- by the same Prefect flow run (restarted from the top after a suspend, e.g. the sign-off);
- by any request, when the flow run that holds it is dead — Prefect reports it crashed, failed,
  cancelled, completed or gone (``holder_state``, handed in by the flows layer): the run is taken
  over, audited as ``<kind>.resumed``, and its completed steps are not repeated;
- with ``resume=True`` when nobody can tell (no Prefect flow run, or no way to ask).

A holder that is alive (running, pending, suspended for a sign-off) is never taken over, resume or
not: the request is refused with :class:`~cutover.errors.ConcurrencyRefused` naming the run that
holds the system. Every refusal is audited as ``<kind>.refused``. :func:`release` gives the
system back once the run has its final outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cutover import audit
from cutover.errors import ConcurrencyRefused, CutoverError, LedgerError, UnknownSystem
from cutover.ledger import AuditOutcome, Ledger, LifecycleState, Run, RunKind, RunState, System

__all__ = ["Check", "Claim", "HolderLookup", "HolderState", "claim", "refused", "release"]


@dataclass(frozen=True)
class HolderState:
    """What Prefect says of the flow run holding a system: alive or not, and its state's name."""

    alive: bool
    state: str  # e.g. "Running", "Suspended", "Crashed", "missing"


#: The state of a flow run by its id; None when it cannot be told (e.g. the API does not answer).
HolderLookup = Callable[[str], HolderState | None]

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
    holder_state: HolderLookup | None = None,
) -> Claim:
    """Create (or continue) the system's run of ``kind`` with its lock, or raise the refusal (audited)."""
    holder = _holder(ledger, system_id, kind, flow_run_id, holder_state)  # asked before the transaction
    try:
        with ledger.session() as session:
            system = _checked(session, system_id, check)
            running = _running(session, system_id, kind)
            if running is not None:
                request = _Request(flow_run_id, resume, actor, holder if holder and holder[0] == running.id else None)
                return _continue(ledger, session, system, running, request)
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
        raise UnknownSystem(
            f"system {system_id!r} is not in the ledger, so no run can claim it; check the id "
            "(`cutover status` lists the systems) or register its spec (`cutover plan`)"
        )
    return system


def _running(session: Session, system_id: str, kind: RunKind) -> Run | None:
    statement = sa.select(Run).where(Run.system_id == system_id, Run.kind == kind, Run.state == RunState.RUNNING)
    return session.scalars(statement.order_by(Run.started_at.desc()).limit(1)).first()


@dataclass(frozen=True)
class _Request:
    flow_run_id: str | None
    resume: bool
    actor: str
    holder: tuple[str, HolderState] | None  # (ledger run id, its flow run's state), when known


def _holder(
    ledger: Ledger, system_id: str, kind: RunKind, flow_run_id: str | None, lookup: HolderLookup | None
) -> tuple[str, HolderState] | None:
    running = ledger.running_run_for(system_id, kind=kind)
    if lookup is None or running is None or not running.flow_run_id or running.flow_run_id == flow_run_id:
        return None
    state = lookup(running.flow_run_id)
    return (running.id, state) if state is not None else None


def _continue(ledger: Ledger, session: Session, system: System, running: Run, request: _Request) -> Claim:
    if request.flow_run_id is not None and running.flow_run_id == request.flow_run_id:
        return Claim(running, system.state, restarted=True)
    holder = request.holder[1] if request.holder else None
    if (holder is not None and holder.alive) or (holder is None and not request.resume):
        raise ConcurrencyRefused(_running_message(system.id, running, holder))
    ledger.acquire_lock(system.id, running.id, running.kind, session=session)
    previous_flow_run = running.flow_run_id
    if request.flow_run_id is not None:
        running.flow_run_id = request.flow_run_id  # the run now belongs to this flow run (its restarts find it)
    audit.append(
        session,
        actor=request.actor,
        action=f"{running.kind.value}.resumed",
        object=f"system:{system.id}",
        detail={
            "run_id": running.id,
            "previous_flow_run": previous_flow_run,
            "previous_state": holder.state if holder else "unknown (resume=true)",
            "flow_run": request.flow_run_id,
        },
    )
    return Claim(running, system.state, taken_over=True)


def _running_message(system_id: str, running: Run, holder: HolderState | None) -> str:
    flow_run = running.flow_run_id or "none: started outside Prefect"
    where = f"Prefect flow run {flow_run}" + (f", {holder.state}" if holder else "")
    head = (
        f"a {running.kind.value} of system {system_id} is already running: run {running.id} ({where}, started "
        f"{running.started_at:%Y-%m-%d %H:%M:%S} UTC); this request did nothing. "
    )
    if holder is not None:
        return head + "Wait for that run to finish: it is alive, so it is never taken over"
    return head + (
        "Wait for that run to finish; if its worker died, start it again with resume=true to continue it from the ledger"
    )


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
