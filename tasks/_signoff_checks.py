"""Checking one sign-off answer against the form it answers, and recording it (ledger + audit).

The checks, in order: the approver is on a party's roster in the spec; the report and spec are
still the ones the form showed; the two parties are two different people, one signature each; the
proof holds (:mod:`tasks._signoff_proof`: an SM2 signature over the statement, or a TOTP code).
A withdrawal (decision ``withdraw``) is checked the same way and voids the approver's signature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from cutover import signoff_store as store
from cutover.errors import SignatureInvalid
from cutover.ledger import Decision, Ledger, Party, ReportKind, Signature
from cutover.settings import Settings
from cutover.spec import Spec
from tasks._signoff_forms import AnyAnswer, StatementFields
from tasks._signoff_proof import Proven, prove
from tasks._signoff_text import PARTY_LABELS

__all__ = [
    "ShownForm",
    "SignOffOutcome",
    "SignatureCheck",
    "SignatureRecord",
    "check_signature",
    "check_withdrawal",
]


@dataclass(frozen=True)
class SignatureRecord:
    """One verified signature as recorded in the ledger."""

    signature_id: int
    approver_id: str
    party: Party
    decision: Decision
    comment: str
    report_digest: str
    spec_digest: str
    signed_at: datetime

    @classmethod
    def from_row(cls, row: Signature) -> SignatureRecord:
        """The record of a ledger signature row."""
        return cls(
            row.id,
            row.approver_id,
            Party(row.party),
            Decision(row.decision),
            row.comment,
            row.report_digest,
            row.spec_digest,
            row.signed_at,
        )


@dataclass(frozen=True)
class SignOffOutcome:
    """Both parties approved this report and spec."""

    system_id: str
    kind: ReportKind
    report_digest: str
    spec_digest: str
    signatures: tuple[SignatureRecord, ...]


@dataclass(frozen=True)
class ShownForm:
    """What one sign-off form showed the approver: the report and spec it was about."""

    kind: ReportKind
    report_digest: str
    spec_digest: str
    context: Mapping[str, Any] = field(default_factory=dict)  # which form (flow run, n, key), for the audit


@dataclass(frozen=True)
class SignatureCheck:
    """The one input of :func:`check_signature`: an answer, the form it answers, and the state now."""

    spec: Spec
    submitted: AnyAnswer
    shown: ShownForm
    current_report_digest: str | None  # the ledger's current report of that kind
    current_spec_digest: str  # the spec's digest now
    other_signatures: Sequence[SignatureRecord]
    now: datetime


def check_signature(ledger: Ledger, check: SignatureCheck, *, settings: Settings | None = None) -> SignatureRecord:
    """Check one submitted signature and record it (ledger + audit, one transaction).

    Raises SignatureInvalid saying what was wrong and what to do; nothing is recorded then.
    """
    spec, submitted, shown = check.spec, check.submitted, check.shown
    approver_id = submitted.approver_id.strip()
    party = _roster_party(spec, approver_id)
    _check_digests(spec, shown, check.current_report_digest, check.current_spec_digest)
    if submitted.decision == "withdraw":
        raise SignatureInvalid(f"{approver_id} has no valid signature on this report to withdraw; nothing was changed")
    _check_parties(approver_id, party, check.other_signatures)
    report = store.require_report(ledger, spec.system.id, shown.kind, shown.report_digest)
    with ledger.session() as session:
        proven = _prove(ledger, check, party, settings, session)
        row = ledger.add_signature(
            run_id=report.run_id,
            system_id=spec.system.id,
            party=party,
            approver_id=approver_id,
            decision=Decision(submitted.decision),
            report_digest=shown.report_digest,
            spec_digest=check.current_spec_digest,
            comment=submitted.comment,
            session=session,
            **proven.columns,
        )
        detail = {**_detail(check, party, proven), "signature_id": row.id}
        store.record(ledger, spec.system.id, store.SIGNED, detail, actor=approver_id, session=session)
    return SignatureRecord.from_row(row)


def check_withdrawal(ledger: Ledger, check: SignatureCheck, *, settings: Settings | None = None) -> SignatureRecord:
    """Check a withdrawal answer and void the approver's signature (ledger + audit, one transaction).

    The withdrawal is itself signed (decision ``withdraw``); it voids the approver's valid signature
    on this report, so the run waits for that party again. Raises SignatureInvalid otherwise.
    """
    spec, submitted = check.spec, check.submitted
    approver_id = submitted.approver_id.strip()
    party = _roster_party(spec, approver_id)
    mine = [s for s in check.other_signatures if s.approver_id == approver_id]
    if not mine:
        raise SignatureInvalid(f"{approver_id} has no valid signature on this report to withdraw; nothing was changed")
    with ledger.session() as session:
        proven = _prove(ledger, check, party, settings, session)
    detail = {**_detail(check, party, proven), "withdrawn_signature_id": mine[0].signature_id}
    store.withdraw_signature(ledger, spec.system.id, mine[0].signature_id, actor=approver_id, detail=detail)
    return mine[0]


def _prove(ledger: Ledger, check: SignatureCheck, party: Party, settings: Settings | None, session: Session) -> Proven:
    """The answer's proof against the statement the form showed (its fixed lines rebuilt here)."""
    spec, approver_id = check.spec, check.submitted.approver_id.strip()
    fields = _fields(spec, check.shown, check.current_spec_digest)
    return prove(
        ledger,
        check.submitted,
        fields,
        party,
        now=check.now,
        settings=settings,
        session=session,
        pinned=_pin(spec, approver_id),
    )


def _detail(check: SignatureCheck, party: Party, proven: Proven) -> dict[str, Any]:
    """What the audit event of a signature or a withdrawal says (the proof's part included)."""
    shown = check.shown
    return {
        "kind": shown.kind.value,
        **shown.context,
        "party": party.value,
        "decision": check.submitted.decision,
        "comment": check.submitted.comment,
        "report_digest": shown.report_digest,
        "spec_digest": check.current_spec_digest,
        **proven.detail,
    }


def _pin(spec: Spec, approver_id: str) -> str | None:
    approver = spec.approver(approver_id)
    return approver.key if approver is not None else None


def _fields(spec: Spec, shown: ShownForm, spec_digest: str) -> StatementFields:
    return StatementFields(
        system_id=spec.system.id,
        report_kind=shown.kind.value,
        report_digest=shown.report_digest,
        spec_digest=spec_digest,
        run_id=str(shown.context.get("flow_run_id", "")),
    )


def _roster_party(spec: Spec, approver_id: str) -> Party:
    party = spec.approver_party(approver_id)
    if party is None:
        rosters = "; ".join(
            f"{p.value}: " + ", ".join(a.id for a in getattr(spec.parties, p.value).approvers) for p in Party
        )
        raise SignatureInvalid(
            f"{approver_id!r} is not on either party's roster in the spec of {spec.system.id} "
            f"({rosters}); sign with your own approver id, or ask for the spec to list you"
        )
    return Party(party)


def _check_digests(spec: Spec, shown: ShownForm, current_report: str | None, current_spec: str) -> None:
    report_digest, spec_digest = shown.report_digest, shown.spec_digest
    if report_digest != current_report:
        raise SignatureInvalid(
            f"the report of {spec.system.id} changed after this form was shown (form: {report_digest}, "
            f"now: {current_report}); read the current report and sign the new form"
        )
    if spec_digest != current_spec:
        raise SignatureInvalid(
            f"the spec of {spec.system.id} changed after this form was shown (form: {spec_digest}, "
            f"now: {current_spec}); check the changes and sign the new form"
        )


def _check_parties(approver_id: str, party: Party, others: Sequence[SignatureRecord]) -> None:
    for other in others:
        if other.approver_id == approver_id:
            raise SignatureInvalid(
                f"{approver_id} already signed this report for the {PARTY_LABELS[other.party]}; "
                "the two parties must be two different people — the other party's approver signs next"
            )
        if other.party is party:
            raise SignatureInvalid(
                f"the {PARTY_LABELS[party]} already signed this report ({other.approver_id}); "
                "one signature per party — the other party's approver signs next"
            )
