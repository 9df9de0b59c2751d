"""The way out of ``rollback_incomplete``: what is left to do, and a resolution done by hand.

A system ends ``rollback_incomplete`` when an undo of its failed cutover did not succeed (the
cutover run ends ``incomplete`` and no retention window was opened) or when a step of a rollback
failed (the rollback run ends ``incomplete``; the window stays open). :func:`unresolved` reads
which from the ledger — the system's last cutover or rollback run — and names the steps that
failed. ``cutover resolve SYSTEM`` retries them (:mod:`flows.resolve`); when the work was finished
by hand, :func:`resolve_manually` records who did it, what was done and the state it left:

- ``compensated`` — the cutover's steps are undone and the original serves; a new cutover may
  start. Only when no retention window is open (the cutover never finished);
- ``retained`` — the cloud copy kept serving and the original is still retained: the watch and the
  rollback apply again. Only while the retention window is open;
- ``rolled_back`` — the original serves again; the retention window is closed.

One transaction moves the lifecycle, closes the window, ends any run of the system left
``running`` and appends the ``resolve.manual`` audit event; then the lock is released
(:func:`cutover.claims.release`). Any other state is refused with what to do instead.

Public surface::

    Leftover                                     what failed: the compensation or the rollback
    Unresolved                                   the failed run and the steps it left
    unresolved(ledger, system_id) -> Unresolved  (LifecycleError when nothing needs resolving)
    require_unresolved                           a claims.Check refusing any other state
    ManualState                                  compensated | retained | rolled_back
    ManualResolution
    resolve_manually(ledger, system_id, to, *, actor, note) -> ManualResolution
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cutover import audit, claims, lifecycle
from cutover.errors import IllegalTransition, LifecycleError, RetentionError, UnknownSystem
from cutover.ledger import (
    Ledger,
    LifecycleState,
    Lock,
    RetentionCloseReason,
    RetentionWindow,
    Run,
    RunKind,
    RunState,
    StepExecution,
    StepPhase,
    StepStatus,
    System,
)

__all__ = [
    "Leftover",
    "ManualResolution",
    "ManualState",
    "Unresolved",
    "require_unresolved",
    "resolve_manually",
    "unresolved",
]

_S = LifecycleState
_NEEDS_RESOLVING: Final = _S.ROLLBACK_INCOMPLETE
_NOT_DONE: Final = frozenset({StepStatus.FAILED, StepStatus.UNDO_FAILED, StepStatus.STARTED, StepStatus.UNKNOWN})


class Leftover(StrEnum):
    """What ended incomplete: the undo of a failed cutover, or a rollback."""

    COMPENSATION = "compensation"
    ROLLBACK = "rollback"


class ManualState(StrEnum):
    """The states a resolution done by hand may leave a ``rollback_incomplete`` system in."""

    COMPENSATED = "compensated"
    RETAINED = "retained"
    ROLLED_BACK = "rolled_back"

    @property
    def lifecycle(self) -> LifecycleState:
        return LifecycleState(self.value)


_MANUAL_TARGETS: Final = frozenset(state.lifecycle for state in ManualState)


@dataclass(frozen=True)
class Unresolved:
    """A ``rollback_incomplete`` system: the run that left it there and the steps that failed."""

    system_id: str
    leftover: Leftover
    run_id: str  # the last cutover or rollback run (ended incomplete, or still running)
    run_state: RunState
    cutover_run_id: str  # the cutover whose steps are undone, or which the rollback reverses
    failed: tuple[str, ...]  # "<step key> (<status>): <last output line>"
    note: str | None

    def describe(self) -> str:
        """What is left, in a sentence or two a person reads."""
        what = (
            f"the undo of its cutover (run {self.cutover_run_id}) did not finish"
            if self.leftover is Leftover.COMPENSATION
            else f"its rollback of cutover run {self.cutover_run_id} did not finish"
        )
        run = f"run {self.run_id} ({self.run_state.value})"
        failed = "; ".join(self.failed) if self.failed else "no step recorded as failed (see the run's note)"
        return f"system {self.system_id} is rollback_incomplete: {what}; {run}, failed: {failed}"


@dataclass(frozen=True)
class ManualResolution:
    """What a resolution by hand recorded."""

    system_id: str
    source: LifecycleState
    to: LifecycleState
    actor: str
    note: str
    ended_runs: tuple[str, ...]
    window_closed: bool
    released_lock: str | None

    def summary(self) -> str:
        """One line: the move, who recorded it, and what else changed."""
        extra = [f"runs ended: {', '.join(self.ended_runs)}"] if self.ended_runs else []
        extra += ["retention window closed"] if self.window_closed else []
        extra += [f"lock of run {self.released_lock} released"] if self.released_lock else []
        tail = f" ({'; '.join(extra)})" if extra else ""
        return (
            f"system {self.system_id} resolved by hand: {self.source.value} -> {self.to.value}, "
            f"recorded by {self.actor}: {self.note}{tail}"
        )


def unresolved(ledger: Ledger, system_id: str) -> Unresolved:
    """What ended incomplete for ``system_id``, or LifecycleError when it needs no resolving."""
    state = lifecycle.current_state(ledger, system_id)
    if state is not _NEEDS_RESOLVING:
        raise LifecycleError(_nothing_to_resolve(system_id, state))
    runs = [run for run in ledger.list_runs(system_id) if run.kind in (RunKind.CUTOVER, RunKind.ROLLBACK)]
    if not runs:
        raise LifecycleError(
            f"system {system_id} is rollback_incomplete but the ledger holds no cutover or rollback run of it, "
            "so there is nothing to retry; once the work is done by hand, record it: "
            f"`cutover resolve {system_id} --manual --state compensated|retained|rolled_back --note '...'`"
        )
    last = runs[-1]
    leftover = Leftover.ROLLBACK if last.kind is RunKind.ROLLBACK else Leftover.COMPENSATION
    cutover_run_id = last.reverses_run_id or last.id
    if leftover is Leftover.ROLLBACK:
        failed = _failed(ledger, last.id, StepPhase.ROLLBACK)
    else:  # a cutover's undo steps are keyed in the cutover run, retried or not (see flows.resolve)
        failed = _failed(ledger, cutover_run_id, StepPhase.UNDO)
    return Unresolved(system_id, leftover, last.id, last.state, cutover_run_id, failed, last.note)


def _failed(ledger: Ledger, run_id: str, phase: StepPhase) -> tuple[str, ...]:
    """The run's steps of ``phase`` whose newest attempt did not succeed."""
    newest = {record.step_id: record for record in ledger.list_steps(run_id)}  # oldest attempt first
    return tuple(
        _failed_line(record) for record in newest.values() if record.phase is phase and record.status in _NOT_DONE
    )


def _failed_line(record: StepExecution) -> str:
    lines = [line for line in record.output_tail.splitlines() if line.strip()]
    return f"{record.step_id} ({record.status.value})" + (f": {lines[-1].strip()}" if lines else "")


def require_unresolved(session: Session, system: System | None) -> None:
    """A :data:`cutover.claims.Check`: refuse a system that is not ``rollback_incomplete``."""
    if system is not None and system.state is not _NEEDS_RESOLVING:
        raise LifecycleError(_nothing_to_resolve(system.id, system.state))


def _nothing_to_resolve(system_id: str, state: LifecycleState) -> str:
    """Why a system in ``state`` needs no resolving, and what applies to it instead."""
    if state is _S.CUTTING_OVER:
        advice = (
            "its cutover is running, or its worker died: wait for it, or start the cutover again with "
            "resume=true to continue it from the ledger (a failing cutover undoes its own steps)"
        )
    elif state in (_S.COMPENSATED, _S.ROLLED_BACK, _S.REJECTED):
        advice = "the original serves its traffic; a new cutover may start from here"
    elif state is _S.RETAINED:
        advice = (
            f"the cloud copy serves and the original is retained; roll back with `cutover rollback {system_id}`, "
            f"or decommission it after the window with `cutover decommission {system_id}`"
        )
    elif state is _S.DECOMMISSIONED:
        advice = "it was decommissioned (terminal)"
    else:
        advice = "it is on its way to a cutover"
    return (
        f"system {system_id} is {state.value}: nothing to resolve ({advice}); "
        "`cutover resolve` applies only to a rollback_incomplete system"
    )


def resolve_manually(
    ledger: Ledger, system_id: str, to: ManualState | LifecycleState, *, actor: str, note: str
) -> ManualResolution:
    """Record that the work left by a ``rollback_incomplete`` system was done by hand, leaving it ``to``."""
    target = LifecycleState(to.value)
    text = " ".join(note.split())
    if not text:
        raise LifecycleError(
            f"a resolution of {system_id} by hand needs a note saying what was done (--note '...'); nothing changed"
        )
    if target not in _MANUAL_TARGETS:
        raise IllegalTransition(
            f"a resolution by hand leaves {system_id} compensated, retained or rolled_back, not {target.value}"
        )
    with ledger.session() as session:
        source = _resolvable(session, system_id)
        window = _open_window(session, system_id)
        _check_window(system_id, target, window)
        reason = f"resolved by hand, recorded by {actor}: {text}"
        lifecycle.transition(ledger, system_id, target, actor=actor, reason=reason, expected=source, session=session)
        if target is _S.ROLLED_BACK:
            ledger.close_retention_window(system_id, RetentionCloseReason.ROLLED_BACK, session=session)
        ended = _end_running(ledger, session, system_id, f"ended by a resolution by hand ({actor}): {text}")
        lock = session.get(Lock, system_id, populate_existing=True)
        holder = lock.holder_run_id if lock is not None else None
        resolution = ManualResolution(system_id, source, target, actor, text, ended, target is _S.ROLLED_BACK, holder)
        audit.append(
            session,
            actor=actor,
            action="resolve.manual",
            object=f"system:{system_id}",
            detail={
                "from": source.value,
                "to": target.value,
                "note": text,
                "ended_runs": list(ended),
                "window_closed": resolution.window_closed,
                "released_lock": holder,
            },
        )
    if holder is not None:
        claims.release(ledger, system_id, holder)
    return resolution


def _resolvable(session: Session, system_id: str) -> LifecycleState:
    system = session.get(System, system_id, populate_existing=True)
    if system is None:
        raise UnknownSystem(
            f"system {system_id!r} is not in the ledger; check the id (`cutover status` lists the systems)"
        )
    require_unresolved(session, system)
    return system.state


def _open_window(session: Session, system_id: str) -> RetentionWindow | None:
    statement = sa.select(RetentionWindow).where(
        RetentionWindow.system_id == system_id, RetentionWindow.closed_at.is_(None)
    )
    return session.scalars(statement.limit(1)).first()


def _check_window(system_id: str, to: LifecycleState, window: RetentionWindow | None) -> None:
    if window is None and to is not _S.COMPENSATED:
        raise RetentionError(
            f"system {system_id} has no open retention window (its cutover failed before it opened one, so the "
            f"original was never retained), so it cannot be resolved as {to.value}; once the cutover's steps are "
            "undone by hand, resolve it as compensated"
        )
    if window is not None and to is _S.COMPENSATED:
        raise RetentionError(
            f"system {system_id} was cut over and its original is retained (window open since "
            f"{window.opened_at:%Y-%m-%d}, cutover run {window.cutover_run_id}), so it cannot be resolved as "
            "compensated; resolve it as rolled_back (the original serves again) or retained (the cloud copy serves)"
        )


def _end_running(ledger: Ledger, session: Session, system_id: str, note: str) -> tuple[str, ...]:
    statement = sa.select(Run).where(Run.system_id == system_id, Run.state == RunState.RUNNING)
    running = list(session.scalars(statement.order_by(Run.started_at)))
    for run in running:
        ledger.finish_run(run.id, RunState.INCOMPLETE, note=note, session=session)
    return tuple(run.id for run in running)
