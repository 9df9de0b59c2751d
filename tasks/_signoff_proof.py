"""Checking the proof of one sign-off answer: an SM2 signature (default) or a TOTP code (pilots).

An SM2 answer is accepted when the statement it claims (the form's fixed lines plus the approver's
decision, comment and signed-at time) verifies under the approver's enrolled, unrevoked public key,
the key was enrolled for the party the spec's roster puts the approver in, the signed-at time is
not in the future, and the very same statement was never accepted before (a captured signature
cannot be replayed: not on another report, system or run, whose statement differs, nor on this
one, which already used it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cutover.approvers import approver_party, verify_code, verify_statement
from cutover.digest import digest_bytes
from cutover.errors import SignatureInvalid
from cutover.ledger import AuditEvent, Ledger, Party, Signature
from cutover.settings import Settings
from cutover.statement import Statement
from tasks._signoff_forms import AnyAnswer, SignOffInput, StatementFields, statement_of

__all__ = ["CLOCK_SKEW", "Proven", "prove"]

#: How far an approver's clock may run ahead of the ledger's.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Proven:
    """What the proof established: the ledger columns and the audit detail it adds."""

    columns: dict[str, Any]
    detail: dict[str, Any]


def prove(
    ledger: Ledger,
    answer: AnyAnswer,
    fields: StatementFields,
    party: Party,
    *,
    now: datetime,
    settings: Settings | None,
    session: Session,
    pinned: str | None = None,
) -> Proven:
    """Check the answer's proof for ``fields``; raise SignatureInvalid saying what and what to do.

    ``pinned`` is the key fingerprint the spec's roster pins for the approver, if any.
    """
    if isinstance(answer, SignOffInput):
        return _prove_sm2(ledger, statement_of(answer, shown=fields), answer.signature, party, now, pinned)
    counter = verify_code(ledger, answer.approver_id.strip(), answer.code, at=now, settings=settings, session=session)
    return Proven({"proof": "totp"}, {"proof": "totp", "totp_counter": counter})


def _prove_sm2(
    ledger: Ledger, statement: Statement, signature: str, party: Party, now: datetime, pinned: str | None
) -> Proven:
    if statement.signed_at > now + CLOCK_SKEW:
        raise SignatureInvalid(
            f"the statement is signed at {statement.signed_at:%Y-%m-%d %H:%M:%S} UTC, later than now "
            f"({now:%Y-%m-%d %H:%M:%S} UTC); check your computer's clock and sign again"
        )
    fingerprint = verify_statement(ledger, statement, signature.strip())
    if pinned is not None and fingerprint != pinned:
        raise SignatureInvalid(
            f"the spec pins {statement.approver_id}'s key to {pinned}, but the ledger enrolled {fingerprint} for "
            "them; a key enrolled outside the reviewed spec is not accepted — enroll the pinned key, or change the "
            "spec through review"
        )
    enrolled = approver_party(ledger, statement.approver_id)
    if enrolled is not None and Party(enrolled) is not party:
        raise SignatureInvalid(
            f"{statement.approver_id}'s key was enrolled for the {enrolled.value} but the spec lists them for the "
            f"{party.value}; the administrator re-enrolls the key for the right party, or the spec is corrected"
        )
    text = statement.text()
    used = statement_digest(ledger, text)
    if _already_accepted(ledger, statement.system_id, used):
        raise SignatureInvalid(
            f"this exact statement of {statement.approver_id} (signed at {statement.signed_at:%Y-%m-%d %H:%M:%S} UTC) "
            "was already accepted once; a signature is used once — sign the statement of the form shown now"
        )
    columns = {"proof": "sm2", "statement": text, "signature": signature.strip(), "key_fingerprint": fingerprint}
    detail = {**columns, "approver_id": statement.approver_id, "statement_digest": used}
    return Proven(columns, detail)


def statement_digest(ledger: Ledger, text: str) -> str:
    """The digest by which a statement is accepted at most once."""
    return digest_bytes(text.encode("utf-8"), ledger.digest)


def _already_accepted(ledger: Ledger, system_id: str, digest: str) -> bool:
    withdrawals = sa.select(AuditEvent.detail).where(
        AuditEvent.object == f"system:{system_id}", AuditEvent.action == "signoff.withdrawn"
    )
    with ledger.session() as session:
        signed = session.scalar(sa.select(sa.func.count()).where(Signature.statement_digest == digest))
        withdrawn = session.scalars(withdrawals).all()
    return bool(signed) or any(detail.get("statement_digest") == digest for detail in withdrawn)
