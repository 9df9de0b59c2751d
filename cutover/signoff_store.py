"""What the sign-off reads from and writes to the ledger beyond :class:`cutover.ledger.Ledger`.

The sign-off's progress lives in the ledger so a resumed flow (which starts again from the top)
continues where it was:

- signatures: the ``signatures`` table, scoped to the report's run;
- attempts: audit events on ``system:<id>``: ``signoff.requested`` (a form was shown, with the
  digests it showed), then ``signoff.signed`` or ``signoff.refused`` (the answer was processed).
  Each carries the flow run id, the sign-off kind and the pause key number ``n``.

Voiding only some signatures of a system is not in the ledger's API (it voids all of them), so it
is done here with one UPDATE.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cutover import audit
from cutover.errors import SignOffError
from cutover.ledger import AuditEvent, AuditOutcome, Ledger, Report, ReportKind, Signature

REQUESTED = "signoff.requested"
SIGNED = "signoff.signed"
REFUSED = "signoff.refused"
VOIDED = "signoff.voided"
WITHDRAWN = "signoff.withdrawn"
EXPIRED = "signoff.expired"
ACTOR = "signoff"


def system_object(system_id: str) -> str:
    """The audit object naming a system."""
    return f"system:{system_id}"


@dataclass(frozen=True)
class Requested:
    """A form that was shown: its attempt number and the digests it showed."""

    n: int
    key: str
    report_digest: str
    spec_digest: str
    at: datetime
    wakeup: bool = False  # a deadline wake-up was scheduled when it was shown


@dataclass
class AttemptLog:
    """The attempts of one sign-off in one flow run, read back from the audit trail."""

    requested: dict[int, Requested] = field(default_factory=dict)
    answered: dict[int, tuple[AuditOutcome, str]] = field(default_factory=dict)

    def next_n(self) -> int:
        """The attempt to ask (or to read the answer of) next."""
        return max(self.answered, default=0) + 1

    def last_refusal(self) -> str | None:
        """Why the newest answered attempt was refused, if it was."""
        if not self.answered:
            return None
        outcome, reason = self.answered[max(self.answered)]
        return reason if outcome is AuditOutcome.REFUSED else None


def attempt_log(ledger: Ledger, system_id: str, kind: ReportKind, flow_run_id: str) -> AttemptLog:
    """Every attempt of this sign-off in this flow run."""
    log = AttemptLog()
    for event in _events(ledger, system_id, (REQUESTED, SIGNED, REFUSED, WITHDRAWN)):
        detail = event.detail
        if detail.get("kind") != kind.value or detail.get("flow_run_id") != flow_run_id:
            continue
        n = int(detail["n"])
        if event.action == REQUESTED:
            log.requested[n] = Requested(
                n,
                str(detail["key"]),
                str(detail["report_digest"]),
                str(detail["spec_digest"]),
                event.at,
                bool(detail.get("wakeup", False)),
            )
        else:
            log.answered[n] = (AuditOutcome(event.outcome), str(detail.get("reason", "")))
    return log


def latest_request(ledger: Ledger, system_id: str) -> AuditEvent | None:
    """The newest ``signoff.requested`` event of the system (the CLI finds the run with it)."""
    events = _events(ledger, system_id, (REQUESTED,), newest_first=True, limit=1)
    return events[0] if events else None


def answer_for(ledger: Ledger, system_id: str, flow_run_id: str, n: int) -> AuditEvent | None:
    """The ``signed``/``refused``/``withdrawn`` event answering attempt ``n`` of the flow run, if any yet."""
    for event in _events(ledger, system_id, (SIGNED, REFUSED, WITHDRAWN), newest_first=True, limit=20):
        if event.detail.get("flow_run_id") == flow_run_id and event.detail.get("n") == n:
            return event
    return None


def _events(
    ledger: Ledger,
    system_id: str,
    actions: Iterable[str],
    *,
    newest_first: bool = False,
    limit: int | None = None,
) -> list[AuditEvent]:
    order = AuditEvent.seq.desc() if newest_first else AuditEvent.seq
    statement = (
        sa.select(AuditEvent)
        .where(AuditEvent.object == system_object(system_id), AuditEvent.action.in_(list(actions)))
        .order_by(order)
        .limit(limit)
    )
    with ledger.session() as session:
        return list(session.scalars(statement))


def record(
    ledger: Ledger,
    system_id: str,
    action: str,
    detail: dict[str, Any],
    *,
    outcome: AuditOutcome = AuditOutcome.SUCCEEDED,
    actor: str = ACTOR,
    session: Session | None = None,
) -> None:
    """Append one sign-off event to the audit chain (in ``session`` if given)."""
    if session is not None:
        audit.append(
            session, actor=actor, action=action, object=system_object(system_id), outcome=outcome, detail=detail
        )
        return
    with ledger.session() as own:
        record(ledger, system_id, action, detail, outcome=outcome, actor=actor, session=own)


def require_report(ledger: Ledger, system_id: str, kind: ReportKind, digest: str) -> Report:
    """The system's non-voided report of ``kind`` with ``digest``, or a SignOffError."""
    statement = sa.select(Report).where(
        Report.system_id == system_id,
        Report.kind == kind,
        Report.digest == digest,
        Report.voided_at.is_(None),
    )
    with ledger.session() as session:
        report = session.scalars(statement.order_by(Report.id.desc()).limit(1)).first()
    if report is None:
        raise SignOffError(
            f"no current {kind.value} report with digest {digest} for system {system_id!r} in the "
            f"ledger at {ledger.safe_url}; create the report first, or pass the digest of the current one"
        )
    return report


def current_report_digest(ledger: Ledger, system_id: str, kind: ReportKind) -> str | None:
    """The digest of the system's newest non-voided report of ``kind``."""
    report = ledger.latest_report(system_id, kind)
    return report.digest if report else None


def valid_signatures(ledger: Ledger, system_id: str, run_id: str) -> list[Signature]:
    """The run's valid signatures, oldest first."""
    statement = sa.select(Signature).where(
        Signature.system_id == system_id, Signature.run_id == run_id, Signature.valid.is_(True)
    )
    with ledger.session() as session:
        return list(session.scalars(statement.order_by(Signature.id)))


def void_signatures(ledger: Ledger, signatures: list[Signature], *, reason: str, detail: dict[str, Any]) -> int:
    """Void these signatures (never delete them) and audit it, in one transaction."""
    if not signatures:
        return 0
    ids = [signature.id for signature in signatures]
    with ledger.session() as session:
        session.execute(
            sa.update(Signature)
            .where(Signature.id.in_(ids), Signature.valid.is_(True))
            .values(valid=False, voided_at=ledger.now())
            .execution_options(synchronize_session=False)
        )
        voided = [{"id": s.id, "party": s.party.value, "approver_id": s.approver_id} for s in signatures]
        record(
            ledger, signatures[0].system_id, VOIDED, {**detail, "reason": reason, "signatures": voided}, session=session
        )
    return len(ids)


def withdraw_signature(
    ledger: Ledger, system_id: str, signature_id: int, *, actor: str, detail: dict[str, Any]
) -> None:
    """Void one signature at its approver's signed request and audit the withdrawal, in one transaction."""
    with ledger.session() as session:
        changed = session.execute(
            sa.update(Signature)
            .where(Signature.id == signature_id, Signature.valid.is_(True))
            .values(valid=False, voided_at=ledger.now())
            .execution_options(synchronize_session=False)
        )
        if not getattr(changed, "rowcount", 1):
            raise SignOffError(f"signature {signature_id} of {system_id} is no longer valid; nothing to withdraw")
        record(ledger, system_id, WITHDRAWN, detail, actor=actor, session=session)
