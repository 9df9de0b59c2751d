"""The audit trail: append-only, hash-chained, verified end to end.

Public surface::

    append(session, *, actor, action, object, outcome=SUCCEEDED, detail=None) -> AuditEvent
    verify(ledger) -> VerifyResult            VerifyResult.ok / .broken_seq / .reason / .step
                                              .signatures_checked / .signature
                                              VerifyResult.raise_if_broken()  (AuditChainBroken)
    STEP_STARTED, STEP_FINISHED, step_object(run_id, key)   how step executions appear in it
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
migration), so editing needs DBA rights and leaves a trace :func:`verify` names.

Step executions (what a resumed run trusts) are in the chain too: :mod:`cutover.executions`
appends ``step.started`` and ``step.finished`` with each row's digest, and :func:`verify`, once
the chain holds, checks every ``step_executions`` row against its newest event (a row edited,
inserted outside cutover, or deleted is named). Rows from before step digests (``step_digest``
NULL, never trusted) and rows whose events a DBA purge removed are not checked. What the chain
cannot catch alone is a DBA rewriting every digest after an edit: anchor the head digest
elsewhere (e.g. in each signed report) to close that gap.

Signatures are re-verified too: every ``signoff.signed`` and ``signoff.withdrawn`` event whose
detail says ``"proof": "sm2"`` carries the signed ``statement``, the base64 ``signature`` and the
``key_fingerprint``. :func:`verify` takes the public key from the ``approver.enrolled`` event that
recorded it (enrolled for that approver, before the signature, not revoked or replaced before it),
checks the signature over the statement, and checks the statement says what the event does (report
kind and digest, spec digest, decision, approver, system, run). So an auditor holding an export of
the trail can check every sign-off years later with public keys only. TOTP sign-offs carry no
proof anyone can re-check and are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple, cast, get_args

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cutover import sm2
from cutover.digest import Algorithm, digest_json
from cutover.errors import AuditChainBroken, ConfigurationError, LedgerError, PurgeRefused, SignatureInvalid
from cutover.ledger import (
    AuditChainHead,
    AuditEvent,
    AuditOutcome,
    Ledger,
    StepExecution,
    ledger_of,
    plain_json,
    step_record_digest,
)
from cutover.settings import Settings, get_settings
from cutover.statement import Statement

_VERIFY_BATCH = 1_000
STEP_STARTED: Final = "step.started"
STEP_FINISHED: Final = "step.finished"
#: The events whose SM2 signatures :func:`verify` re-verifies, and where it finds the keys.
SIGNED_ACTIONS: Final = ("signoff.signed", "signoff.withdrawn")
ENROLLED: Final = "approver.enrolled"
REVOKED: Final = "approver.revoked"


def step_object(run_id: str, key: str) -> str:
    """The audit object naming one step key of one run: ``run:<run id>/step:<key>``."""
    return f"run:{run_id}/step:{key}"


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify` found: ``ok``, how many events and step rows it checked, the first bad link.

    ``step`` names the step execution row (``run:<id>/step:<key> attempt <n>``) when the chain
    holds but a step row does not match it; ``broken_seq`` is then the event it was checked against.
    ``signature`` names the first signature event that does not re-verify (``broken_seq`` is its
    seq); ``signatures_checked`` counts the SM2 signatures re-verified.
    """

    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str | None = None
    steps_checked: int = 0
    step: str | None = None
    signatures_checked: int = 0
    signature: str | None = None

    def raise_if_broken(self) -> None:
        """Raise AuditChainBroken naming the first broken link, if there is one."""
        if self.ok:
            return
        where = f"audit chain broken at seq {self.broken_seq}"
        if self.step:
            where = f"step execution {self.step}"
        elif self.signature:
            where = f"signature at seq {self.broken_seq} ({self.signature}) does not re-verify"
        raise AuditChainBroken(
            f"{where}: {self.reason}. Preserve the database as evidence and compare it with the "
            "last exported audit log (`cutover audit export --out FILE` writes one; keep each export outside the ledger)."
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
    """Walk the whole chain and name the first broken link (edited, deleted or reordered), then
    check every step execution row against its newest audit event."""
    with ledger.session() as session:
        _one_snapshot(session)
        head = session.get(AuditChainHead, 1)
        if head is None:
            return VerifyResult(False, 0, None, "the chain head row is missing (deleted?)")
        expected_seq, prev_digest, checked = head.anchor_seq + 1, head.anchor_digest, 0
        steps: dict[tuple[str, int], _StepSeen] = {}
        signatures = _SignaturesSeen()
        oldest: datetime | None = None
        statement = sa.select(AuditEvent).where(AuditEvent.seq > head.anchor_seq).order_by(AuditEvent.seq)
        for event in session.scalars(statement.execution_options(yield_per=_VERIFY_BATCH)):
            problem = _link_problem(event, expected_seq, prev_digest)
            if problem is not None:
                return VerifyResult(False, checked, event.seq, problem)
            _note_step(steps, event)
            signatures.note(event)
            oldest = oldest or event.at
            expected_seq, prev_digest, checked = event.seq + 1, event.digest, checked + 1
        tail = _check_tail(head, expected_seq - 1, prev_digest, checked)
        if not tail.ok:
            return tail
        purged_before = (oldest or ledger.now()) if head.anchor_seq > 0 else None
        result = _check_steps(session, steps, purged_before, checked)
        return signatures.check(result, purged=head.anchor_seq > 0) if result.ok else result


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


def _one_snapshot(session: Session) -> None:
    """Read the head, the events and the step rows as of one moment, whatever commits meanwhile.

    PostgreSQL's default (read committed) gives each statement a new snapshot: a step recorded
    between reading the events and the rows would look forged. SQLite transactions here begin
    holding the write lock, so nothing commits meanwhile.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


class _StepSeen(NamedTuple):
    """The newest audit event of one step execution: its seq and the row digest it recorded."""

    seq: int
    record: str


def _note_step(steps: dict[tuple[str, int], _StepSeen], event: AuditEvent) -> None:
    if event.action in (STEP_STARTED, STEP_FINISHED):
        key = (event.object, int(event.detail.get("attempt", 0)))
        steps[key] = _StepSeen(event.seq, str(event.detail.get("record", "")))


def _check_steps(
    session: Session, steps: dict[tuple[str, int], _StepSeen], purged_before: datetime | None, checked: int
) -> VerifyResult:
    """Every step row matches its newest event; every step event's row is still there."""
    count = 0
    statement = sa.select(StepExecution).order_by(StepExecution.id)
    for record in session.scalars(statement.execution_options(yield_per=_VERIFY_BATCH)):
        name = step_object(record.run_id, record.step_id)
        seen = steps.pop((name, record.attempt), None)
        problem = _step_problem(record, seen, purged_before)
        if problem is not None:
            where = f"{name} attempt {record.attempt}"
            return VerifyResult(False, checked, seen.seq if seen else None, problem, count, where)
        count += 1
    if steps:
        (name, attempt), seen = min(steps.items(), key=lambda item: item[1].seq)
        reason = f"its row is missing although audit event seq {seen.seq} records it: the row was deleted"
        return VerifyResult(False, checked, seen.seq, reason, count, f"{name} attempt {attempt}")
    return VerifyResult(True, checked, steps_checked=count)


def _step_problem(record: StepExecution, seen: _StepSeen | None, purged_before: datetime | None) -> str | None:
    if seen is None:
        if record.step_digest is None:
            return None  # recorded before step digests: never counts as a result, so nothing trusts it
        if purged_before is not None and record.finished_at is not None and record.finished_at < purged_before:
            return None  # its events went with a DBA purge
        return "no audit event records it: the row was written outside cutover"
    algorithm = seen.record.partition(":")[0]
    if algorithm not in get_args(Algorithm):
        return f"audit event seq {seen.seq} records no digest of it (found {seen.record!r}): the event is not a step's"
    if step_record_digest(record, cast(Algorithm, algorithm)) != seen.record:
        return f"its content does not match audit event seq {seen.seq}, which recorded it last: the row was edited"
    return None


@dataclass(frozen=True)
class _KeySeen:
    """An SM2 key as its ``approver.enrolled`` event recorded it, and when it stopped counting."""

    seq: int
    approver_id: str
    public_key: str
    ended_seq: int | None = None  # revoked or replaced at this seq


class _SignaturesSeen:
    """The enrolled keys and the SM2-signed sign-off events met while walking the chain."""

    def __init__(self) -> None:
        self.keys: dict[str, _KeySeen] = {}
        self.signed: list[AuditEvent] = []

    def note(self, event: AuditEvent) -> None:
        detail = event.detail
        if event.action == ENROLLED and detail.get("proof") == "sm2":
            approver_id = event.object.removeprefix("approver:")
            self._end(detail.get("replaced"), event.seq)
            self.keys[str(detail.get("fingerprint"))] = _KeySeen(event.seq, approver_id, str(detail.get("public_key")))
        elif event.action == REVOKED:
            self._end(detail.get("fingerprint"), event.seq)
        elif event.action in SIGNED_ACTIONS and detail.get("proof") == "sm2":
            self.signed.append(event)

    def _end(self, fingerprint: object, seq: int) -> None:
        key = self.keys.get(str(fingerprint))
        if key is not None and key.ended_seq is None:
            self.keys[str(fingerprint)] = _KeySeen(key.seq, key.approver_id, key.public_key, seq)

    def check(self, result: VerifyResult, *, purged: bool) -> VerifyResult:
        """``result`` with the signatures re-verified, or naming the first that does not."""
        for count, event in enumerate(self.signed):
            problem = self._problem(event, purged=purged)
            if problem is not None:
                name = f"{event.action} by {event.detail.get('approver_id', event.actor)} on {event.object}"
                return replace(
                    result, ok=False, broken_seq=event.seq, reason=problem, signatures_checked=count, signature=name
                )
        return replace(result, signatures_checked=len(self.signed))

    def _problem(self, event: AuditEvent, *, purged: bool) -> str | None:
        detail = event.detail
        fingerprint = str(detail.get("key_fingerprint"))
        key = self.keys.get(fingerprint)
        if key is None:
            if purged:
                return None  # its key's enrollment went with a DBA purge: nothing left to check it with
            return f"no approver.enrolled event records its key {fingerprint}"
        try:
            statement = Statement.parse(str(detail.get("statement", "")))
        except SignatureInvalid as exc:
            return f"its statement does not parse: {exc}"
        if not _verifies(key.public_key, statement, str(detail.get("signature", ""))):
            return f"its signature does not verify over its statement with key {fingerprint}"
        return _key_problem(key, statement, event) or _statement_mismatch(statement, event)


def _verifies(public_key: str, statement: Statement, signature: str) -> bool:
    try:
        return sm2.verify(public_key, statement.message(), signature)
    except ConfigurationError:
        return False  # the recorded public key itself is unreadable


def _key_problem(key: _KeySeen, statement: Statement, event: AuditEvent) -> str | None:
    if key.approver_id != statement.approver_id:
        return f"its key was enrolled for {key.approver_id}, not for {statement.approver_id} who the statement names"
    if key.seq > event.seq:
        return f"its key was enrolled only at seq {key.seq}, after the signature was recorded"
    if key.ended_seq is not None and key.ended_seq < event.seq:
        return f"its key was revoked (or replaced) at seq {key.ended_seq}, before the signature was recorded"
    return None


def _statement_mismatch(statement: Statement, event: AuditEvent) -> str | None:
    detail = event.detail
    claims = {
        "report_digest": statement.report_digest,
        "spec_digest": statement.spec_digest,
        "decision": statement.decision,
        "approver_id": statement.approver_id,
        "kind": statement.report_kind,
        "flow_run_id": statement.run_id,
    }
    for field, signed in claims.items():
        if field in detail and str(detail[field]) != signed:
            return f"the event's {field} is {detail[field]!r} but the signed statement says {signed!r}"
    if event.object.startswith("system:") and event.object != f"system:{statement.system_id}":
        return f"the event is about {event.object} but the signed statement is about system {statement.system_id}"
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
