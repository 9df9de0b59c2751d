"""The one lifecycle state machine every system goes through.

Public surface::

    LifecycleState                       the states (a StrEnum, stored by the ledger)
    TRANSITIONS                          state -> the states it may move to (the only table)
    allowed_next(state) -> frozenset[LifecycleState]
    current_state(ledger, system_id) -> LifecycleState
    transition(ledger, system_id, to, *, actor, reason, expected=None, session=None) -> LifecycleState
    advance(ledger, system_id, to, *, expected, actor, reason, done_in=()) -> bool  (idempotent on restart)
    register_system(ledger, *, system_id, name, department, disposition,
                    spec_digest=None, actor) -> LifecycleState

A transition is a compare-and-set on the system's row, and its audit event is written in the
same transaction: either both happen or neither. Moving back to ``planned`` or ``tested`` voids
the system's reports and signatures, so evidence of an earlier cycle can never be reused.

A spec change is noticed in one place, :func:`register_system` (every command registering a
spec goes through it: ``cutover plan``, the cutover flow's start, ...): a system that is
``tested``, ``report_ready`` or ``signed`` under another spec digest goes back to ``planned``,
voiding its report and signatures, audited with the reason "the spec changed".
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from sqlalchemy.orm import Session

from cutover import audit
from cutover.errors import IllegalTransition, UnknownSystem
from cutover.ledger import AuditOutcome, Disposition, Ledger, LifecycleState

__all__ = [
    "TRANSITIONS",
    "LifecycleState",
    "advance",
    "allowed_next",
    "current_state",
    "register_system",
    "transition",
]

_S = LifecycleState

TRANSITIONS: Final[Mapping[LifecycleState, frozenset[LifecycleState]]] = MappingProxyType(
    {
        _S.PLANNED: frozenset({_S.TESTED}),
        _S.TESTED: frozenset({_S.REPORT_READY, _S.PLANNED}),
        _S.REPORT_READY: frozenset({_S.SIGNED, _S.REJECTED, _S.TESTED}),
        _S.SIGNED: frozenset({_S.CUTTING_OVER, _S.TESTED}),
        _S.REJECTED: frozenset({_S.PLANNED}),
        _S.CUTTING_OVER: frozenset({_S.RETAINED, _S.COMPENSATED, _S.ROLLBACK_INCOMPLETE}),
        _S.COMPENSATED: frozenset({_S.PLANNED}),
        # left by `cutover resolve` (cutover.resolution): RETAINED only with the window still open
        _S.ROLLBACK_INCOMPLETE: frozenset({_S.COMPENSATED, _S.RETAINED, _S.ROLLED_BACK}),
        _S.RETAINED: frozenset({_S.ROLLED_BACK, _S.DECOMMISSIONED, _S.ROLLBACK_INCOMPLETE}),
        _S.ROLLED_BACK: frozenset({_S.PLANNED}),
        _S.DECOMMISSIONED: frozenset(),
    }
)

_VOIDING_TARGETS: Final = frozenset({_S.PLANNED, _S.TESTED})

#: Where a changed spec sends a system holding test results made under the old one, move by move.
_SPEC_CHANGE_PATH: Final[Mapping[LifecycleState, tuple[LifecycleState, ...]]] = MappingProxyType(
    {
        _S.TESTED: (_S.PLANNED,),
        _S.REPORT_READY: (_S.TESTED, _S.PLANNED),
        _S.SIGNED: (_S.TESTED, _S.PLANNED),
    }
)


def allowed_next(state: LifecycleState) -> frozenset[LifecycleState]:
    """The states a system in ``state`` may move to (empty when ``state`` is terminal)."""
    return TRANSITIONS[state]


def current_state(ledger: Ledger, system_id: str) -> LifecycleState:
    """Where the system stands now."""
    with ledger.session() as session:
        return _state_of(ledger, session, system_id)


def transition(
    ledger: Ledger,
    system_id: str,
    to: LifecycleState,
    *,
    actor: str,
    reason: str,
    expected: LifecycleState | None = None,
    session: Session | None = None,
) -> LifecycleState:
    """Move the system to ``to`` and audit it in one transaction, or raise and change nothing.

    ``expected`` is the state the caller believes the system is in; if it is elsewhere the move
    is refused. Losing a race to another writer is refused the same way. With ``session`` the move
    joins that transaction (from ``ledger.session()``), with the caller's other changes.
    """
    if session is None:
        with ledger.session() as own:
            return transition(ledger, system_id, to, actor=actor, reason=reason, expected=expected, session=own)
    source = _state_of(ledger, session, system_id)
    _move(ledger, session, system_id, source, to, expected=expected, actor=actor, reason=reason)
    return to


def advance(
    ledger: Ledger,
    system_id: str,
    to: LifecycleState,
    *,
    expected: LifecycleState,
    actor: str,
    reason: str,
    done_in: frozenset[LifecycleState] = frozenset(),
) -> bool:
    """Move the system from ``expected`` to ``to``; True if it moved, False if it was already done.

    For a run that continues after a restart: the system already in ``to`` (or in one of
    ``done_in``, states a run reaches later) is not an error. One transaction, like
    :func:`transition`; any other state is refused.
    """
    with ledger.session() as session:
        source = _state_of(ledger, session, system_id)
        if source is to or source in done_in:
            return False
        _move(ledger, session, system_id, source, to, expected=expected, actor=actor, reason=reason)
    return True


def _move(
    ledger: Ledger,
    session: Session,
    system_id: str,
    source: LifecycleState,
    to: LifecycleState,
    *,
    expected: LifecycleState | None,
    actor: str,
    reason: str,
) -> None:
    _check_move(system_id, source, to, expected)
    if not ledger.compare_and_set_state(system_id, source, to, session=session):
        raise IllegalTransition(
            f"system {system_id!r} left state {source.value!r} while it was being moved to "
            f"{to.value!r} (another process moved it first); nothing was changed. Read its "
            "state again and decide anew"
        )
    voided = _void_evidence(ledger, session, system_id, to)
    audit.append(
        session,
        actor=actor,
        action="lifecycle.transition",
        object=f"system:{system_id}",
        outcome=AuditOutcome.SUCCEEDED,
        detail={"from": source.value, "to": to.value, "reason": reason, **voided},
    )


def _check_move(
    system_id: str,
    source: LifecycleState,
    to: LifecycleState,
    expected: LifecycleState | None,
) -> None:
    if expected is not None and expected is not source:
        raise IllegalTransition(
            f"system {system_id!r} is in state {source.value!r}, not {expected.value!r} as "
            f"expected, so it was not moved to {to.value!r}; another process moved it. Read its "
            "state again and decide anew"
        )
    if to not in TRANSITIONS[source]:
        raise IllegalTransition(
            f"system {system_id!r} cannot go from {source.value!r} to {to.value!r}; "
            f"from {source.value!r} it may go to: {_names(TRANSITIONS[source])}"
        )


def _names(states: frozenset[LifecycleState]) -> str:
    if not states:
        return "nothing (it is terminal)"
    return ", ".join(sorted(state.value for state in states))


def _void_evidence(ledger: Ledger, session: Session, system_id: str, to: LifecycleState) -> dict[str, int]:
    if to not in _VOIDING_TARGETS:
        return {}
    return {
        "voided_reports": ledger.void_reports(system_id, session=session),
        "voided_signatures": ledger.void_signatures(system_id, session=session),
    }


def _state_of(ledger: Ledger, session: Session, system_id: str) -> LifecycleState:
    system = ledger.get_system(system_id, session=session)
    if system is None:
        raise UnknownSystem(
            f"system {system_id!r} is not in the ledger; check the id; `cutover plan` registers every spec "
            "in the specs directory (so does a cutover run)"
        )
    return system.state


def register_system(
    ledger: Ledger,
    *,
    system_id: str,
    name: str,
    department: str,
    disposition: Disposition | str,
    spec_digest: str | None = None,
    actor: str,
) -> LifecycleState:
    """Add the system in ``planned``, or update its descriptive fields; returns its state after.

    When the recorded ``spec_digest`` differs from the one given, the spec changed: a system that
    is ``tested``, ``report_ready`` or ``signed`` goes back to ``planned`` (its report and
    signatures voided, each move audited with the reason "the spec changed"), in the same
    transaction that records the new digest. Other states are kept. Without ``spec_digest`` the
    recorded one is kept.
    """
    with ledger.session() as session:
        before = ledger.get_system(system_id, session=session)
        if before is not None and spec_digest is None:
            spec_digest = before.spec_digest
        elif before is not None and before.spec_digest not in (None, spec_digest):
            reason = f"the spec changed ({before.spec_digest} -> {spec_digest}): test it again"
            _back_to_planned(ledger, session, system_id, before.state, actor=actor, reason=reason)
        upsert = ledger.upsert_system(
            system_id=system_id,
            name=name,
            department=department,
            disposition=disposition,
            spec_digest=spec_digest,
            session=session,
        )
        if upsert.changed:
            audit.append(
                session,
                actor=actor,
                action="system.registered" if upsert.created else "system.updated",
                object=f"system:{system_id}",
                detail={"changed": list(upsert.changed), "spec_digest": spec_digest},
            )
        return upsert.system.state


def _back_to_planned(
    ledger: Ledger, session: Session, system_id: str, state: LifecycleState, *, actor: str, reason: str
) -> None:
    """Void what was tested, reported and signed under an old spec (see :func:`register_system`)."""
    for to in _SPEC_CHANGE_PATH.get(state, ()):
        _move(ledger, session, system_id, state, to, expected=state, actor=actor, reason=reason)
        state = to
