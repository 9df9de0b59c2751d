"""The audit trail: append-only, hash-chained, verified end to end.

Public surface::

    append(session, *, actor, action, object, outcome=SUCCEEDED, detail=None) -> AuditEvent
    verify(ledger) -> VerifyResult            VerifyResult.ok / .broken_seq / .reason
                                              VerifyResult.raise_if_broken()  (AuditChainBroken)
    events(ledger, *, object=None, limit=100) -> list[AuditEvent]   newest first
    event_digest(event, algorithm) -> str
    purge_before(ledger, cutoff, *, settings=None) -> None           always refuses, see below

Every event holds its sequence number, time, actor, action, object (e.g. ``system:hrss``),
outcome, detail (redacted by the caller), the digest of the event before it and its own digest:
the configured algorithm (SM3 by default, never a silent fallback) over the canonical JSON of all
of those. Appends lock the single ``audit_chain_head`` row (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite transactions begin with the write lock), so two writers cannot fork the chain.
Call :func:`append` inside the transaction that makes the change it records.

The database itself refuses UPDATE and DELETE on ``audit_events`` (triggers created by the
migration), so editing needs DBA rights and leaves a trace :func:`verify` names. What the chain
cannot catch alone is a DBA rewriting every digest after an edit: anchor the head digest
elsewhere (e.g. in each signed report) to close that gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast, get_args

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cutover.digest import Algorithm, digest_json
from cutover.errors import AuditChainBroken, LedgerError, PurgeRefused
from cutover.ledger import AuditChainHead, AuditEvent, AuditOutcome, Ledger, ledger_of, plain_json
from cutover.settings import Settings, get_settings

_VERIFY_BATCH = 1_000


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify` found: ``ok``, how many events it checked, and the first bad link."""

    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str | None = None

    def raise_if_broken(self) -> None:
        """Raise AuditChainBroken naming the first broken link, if there is one."""
        if not self.ok:
            raise AuditChainBroken(
                f"audit chain broken at seq {self.broken_seq}: {self.reason}. Preserve the "
                "database as evidence and compare it with the last exported audit log."
            )


def append(
    session: Session,
    *,
    actor: str,
    action: str,
    object: str,
    outcome: AuditOutcome = AuditOutcome.SUCCEEDED,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain inside ``session``'s transaction (from ``ledger.session()``)."""
    ledger = ledger_of(session)
    head = _lock_head(session)
    event = AuditEvent(
        seq=head.seq + 1,
        at=ledger.now(),
        actor=actor,
        action=action,
        object=object,
        outcome=outcome,
        detail=plain_json(detail),
        prev_digest=head.digest,
    )
    event.digest = event_digest(event, ledger.digest)
    session.add(event)
    head.seq, head.digest = event.seq, event.digest
    session.flush()
    return event


def event_digest(event: AuditEvent, algorithm: Algorithm) -> str:
    """The digest of the event's fields and the previous event's digest."""
    return digest_json(
        {
            "seq": event.seq,
            "at": event.at.astimezone(UTC).isoformat(),
            "actor": event.actor,
            "action": event.action,
            "object": event.object,
            "outcome": AuditOutcome(event.outcome).value,
            "detail": event.detail,
            "prev_digest": event.prev_digest,
        },
        algorithm,
    )


def _lock_head(session: Session) -> AuditChainHead:
    statement = (
        sa.select(AuditChainHead)
        .where(AuditChainHead.id == 1)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    head = session.scalars(statement).first()
    if head is None:
        raise LedgerError(
            "the audit chain head row is missing: the ledger is not migrated or was tampered "
            "with; run Ledger.migrate() on a new ledger, or investigate this one"
        )
    return head


def verify(ledger: Ledger) -> VerifyResult:
    """Walk the whole chain and name the first broken link (edited, deleted or reordered)."""
    with ledger.session() as session:
        head = session.get(AuditChainHead, 1)
        if head is None:
            return VerifyResult(False, 0, None, "the chain head row is missing (deleted?)")
        expected_seq, prev_digest, checked = head.anchor_seq + 1, head.anchor_digest, 0
        statement = sa.select(AuditEvent).where(AuditEvent.seq > head.anchor_seq).order_by(AuditEvent.seq)
        for event in session.scalars(statement.execution_options(yield_per=_VERIFY_BATCH)):
            problem = _link_problem(event, expected_seq, prev_digest)
            if problem is not None:
                return VerifyResult(False, checked, event.seq, problem)
            expected_seq, prev_digest, checked = event.seq + 1, event.digest, checked + 1
        return _check_tail(head, expected_seq - 1, prev_digest, checked)


def _link_problem(event: AuditEvent, expected_seq: int, prev_digest: str) -> str | None:
    if event.seq != expected_seq:
        missing = f"seq {expected_seq}" + (f"..{event.seq - 1}" if event.seq - 1 > expected_seq else "")
        return f"{missing} missing before seq {event.seq}: events were deleted"
    if event.prev_digest != prev_digest:
        return (
            f"its prev_digest is not the digest of the event before it (seq {expected_seq - 1}): "
            "events were deleted, inserted or reordered"
        )
    algorithm = event.digest.partition(":")[0]
    if algorithm not in get_args(Algorithm):
        return f"its digest names an unknown algorithm {algorithm!r}: the event was edited"
    if event_digest(event, cast(Algorithm, algorithm)) != event.digest:
        return "its content does not match its digest: the event was edited"
    return None


def _check_tail(head: AuditChainHead, last_seq: int, last_digest: str, checked: int) -> VerifyResult:
    if head.seq != last_seq or head.digest != last_digest:
        return VerifyResult(
            False,
            checked,
            last_seq + 1,
            f"the chain ends at seq {last_seq} but its head records seq {head.seq}: "
            "the newest events were deleted (or the head row was altered)",
        )
    return VerifyResult(True, checked)


def events(
    ledger: Ledger,
    *,
    object: str | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """The newest events (optionally only about ``object``), newest first."""
    statement = sa.select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)
    if object is not None:
        statement = statement.where(AuditEvent.object == object)
    with ledger.session() as session:
        return list(session.scalars(statement))


def purge_before(ledger: Ledger, cutoff: datetime, *, settings: Settings | None = None) -> None:
    """Refuse to purge; say why and, for old enough events, how a DBA does it.

    Events younger than ``audit_purge_floor_days`` (at least 183) are never purged. Older ones
    can be removed only by a DBA, because the database refuses DELETE on audit rows; the error
    names the events and the steps (archive, delete, record the anchor, verify).
    """
    floor_days = (settings or get_settings()).audit_purge_floor_days
    youngest_allowed = ledger.now() - timedelta(days=floor_days)
    if cutoff > youngest_allowed:
        raise PurgeRefused(
            f"purging audit events before {cutoff.isoformat()} would remove events younger than "
            f"the {floor_days}-day floor; choose a cutoff on or before "
            f"{youngest_allowed.isoformat()}"
        )
    last = _last_event_before(ledger, cutoff)
    if last is None:
        return
    raise PurgeRefused(
        f"audit events seq ..{last.seq} are older than {cutoff.isoformat()}, but the database "
        "refuses deleting audit rows, so purging is a DBA procedure: (1) export those events and "
        "the output of cutover.audit.verify to the archive; (2) in one transaction: disable the "
        f"audit_events triggers, remove the events with seq <= {last.seq}, set the "
        f"audit_chain_head row's anchor_seq to {last.seq} and anchor_digest to {last.digest!r}, "
        "and enable the triggers again; (3) run cutover.audit.verify and record the purge."
    )


def _last_event_before(ledger: Ledger, cutoff: datetime) -> AuditEvent | None:
    statement = sa.select(AuditEvent).where(AuditEvent.at < cutoff).order_by(AuditEvent.seq.desc()).limit(1)
    with ledger.session() as session:
        return session.scalars(statement).first()
