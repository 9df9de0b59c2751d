"""Joint sign-off (共同认可) of a report by the owning department and the cloud service provider.

Public surface::

    SignOffInput                         the form (Prefect RunInput; every field required)
    SignatureRecord, SignOffOutcome      what was signed
    ShownForm, SignatureCheck            what a form showed; one answer to check against it
    check_signature(ledger, SignatureCheck, *, settings=None) -> SignatureRecord
    SignOffRequest                       which report, where to read it, until when
    collect_signoff(ledger, SignOffRequest, *, now=None, settings=None,
                    schedule_wakeup=None) -> SignOffOutcome                    (in a flow body)
    WakeupRequest, wakeup_input()        the deadline wake-up (scheduled by flows.signoff_deadline)
    signoff_description(FormContext) -> str

How it works: :func:`collect_signoff` suspends the flow run (``suspend_flow_run``, which needs a
deployment) with the form, once per signature. Prefect records no identity for who resumed a
run, so the flow checks every submission itself: the approver is on the party's roster, their
TOTP code is valid and unused, the report and spec are still the ones shown, and the two parties
are two different people. A refused submission is audited and the form is asked again under a new
pause key (``signoff-trial-run-<n>``). Progress lives in the ledger and the audit trail, so a
resumed flow (which restarts from the top) continues where it was.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import pydantic
from prefect.context import FlowRunContext
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.logging import get_run_logger
from pydantic import Field

from cutover import signoff_store as store
from cutover.approvers import verify_code
from cutover.errors import SignatureInvalid, SignOffError, SignOffExpired, SignOffRejected
from cutover.ledger import AuditOutcome, Decision, Ledger, Party, ReportKind, Signature
from cutover.settings import Settings
from cutover.spec import Spec
from tasks import _signoff_deadline as deadline_wakeup
from tasks._signoff_deadline import GRACE, WakeupRequest, wakeup_input
from tasks._signoff_text import PARTY_LABELS, FormContext, SignedLine, signoff_description

__all__ = [
    "GRACE",
    "FormContext",
    "ScheduleWakeup",
    "ShownForm",
    "SignOffInput",
    "SignOffOutcome",
    "SignOffRequest",
    "SignatureCheck",
    "SignatureRecord",
    "WakeupRequest",
    "check_signature",
    "collect_signoff",
    "signoff_description",
    "wakeup_input",
]


class SignOffInput(RunInput):
    """The sign-off form. Every field is required and has no default (see PREFECT_NOTES.md)."""

    approver_id: str = Field(
        title="Approver id 审批人账号",
        description="Your approver id as listed in the spec, e.g. wang.li.",
        min_length=1,
        max_length=64,
    )
    decision: Literal["approve", "reject"] = Field(
        title="Decision 决定", description="approve 同意 / reject 不同意 the report."
    )
    comment: str = Field(
        title="Comment 意见",
        description="Your opinion; for a rejection, what must change.",
        max_length=2000,
    )
    code: str = Field(
        title="Code 动态验证码",
        description="The 6-digit code your authenticator app shows now (issuer govcloud-cutover).",
        min_length=1,
        max_length=16,
        repr=False,
    )


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


# ---------------------------------------------------------------------------------- checks
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
    submitted: SignOffInput
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
    _check_parties(approver_id, party, check.other_signatures)
    report = store.require_report(ledger, spec.system.id, shown.kind, shown.report_digest)
    with ledger.session() as session:
        counter = verify_code(ledger, approver_id, submitted.code, at=check.now, settings=settings, session=session)
        row = ledger.add_signature(
            run_id=report.run_id,
            system_id=spec.system.id,
            party=party,
            approver_id=approver_id,
            decision=Decision(submitted.decision),
            report_digest=shown.report_digest,
            spec_digest=check.current_spec_digest,
            comment=submitted.comment.strip(),
            session=session,
        )
        detail = {
            "kind": shown.kind.value,
            **shown.context,
            "party": party.value,
            "decision": submitted.decision,
            "comment": row.comment,
            "report_digest": shown.report_digest,
            "spec_digest": check.current_spec_digest,
            "totp_counter": counter,
            "signature_id": row.id,
        }
        store.record(ledger, spec.system.id, store.SIGNED, detail, actor=approver_id, session=session)
    return SignatureRecord.from_row(row)


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


# -------------------------------------------------------------------------- the sign-off loop
@dataclass(frozen=True)
class SignOffRequest:
    """The one input of :func:`collect_signoff`: which report, where to read it, until when."""

    spec: Spec
    kind: ReportKind
    report_digest: str
    report_link: str
    deadline: datetime
    verdicts: Mapping[str, str] = field(default_factory=dict)  # shown on the form (e.g. the stress verdicts)


#: Schedules the deadline wake-up of a waiting sign-off; False when it cannot (see flows.signoff_deadline).
ScheduleWakeup = Callable[[WakeupRequest], bool]


@dataclass(frozen=True)
class _Round:
    """What one call of :func:`collect_signoff` is about."""

    request: SignOffRequest
    ledger: Ledger
    spec_digest: str
    run_id: str
    flow_run_id: str
    clock: Callable[[], datetime]
    settings: Settings | None
    schedule_wakeup: ScheduleWakeup | None

    @property
    def spec(self) -> Spec:
        return self.request.spec

    @property
    def kind(self) -> ReportKind:
        return self.request.kind

    @property
    def report_digest(self) -> str:
        return self.request.report_digest

    @property
    def deadline(self) -> datetime:
        return self.request.deadline

    @property
    def system_id(self) -> str:
        return self.spec.system.id

    def key(self, n: int) -> str:
        return f"signoff-{self.kind.value.replace('_', '-')}-{n}"

    def context(self, n: int) -> dict[str, Any]:
        return {"kind": self.kind.value, "flow_run_id": self.flow_run_id, "n": n, "key": self.key(n)}


def collect_signoff(
    ledger: Ledger,
    request: SignOffRequest,
    *,
    now: Callable[[], datetime] | None = None,
    settings: Settings | None = None,
    schedule_wakeup: ScheduleWakeup | None = None,
) -> SignOffOutcome:
    """Collect both parties' signatures on the requested report, suspending the flow run for each.

    Call it in the body of a deployment-backed flow (suspending needs a deployment). Returns when
    both parties approved the report and the current spec. Raises SignOffRejected when a party
    rejects, SignOffExpired when the deadline passes first. ``now`` is a clock (default: the
    ledger's); ``schedule_wakeup`` arranges for the run to be woken at the deadline.
    """
    current = _start_round(ledger, request, now, settings, schedule_wakeup)
    _void_stale(current)
    while True:
        signed = _signed(current)
        done = _finished(current, signed)
        if done is not None:
            return done
        _refuse_if_expired(current, signed)
        log = store.attempt_log(ledger, current.system_id, current.kind, current.flow_run_id)
        n = log.next_n()
        submitted = _ask(current, n, log, signed)
        _answer(current, n, log, submitted, signed)


def _start_round(
    ledger: Ledger,
    request: SignOffRequest,
    now: Callable[[], datetime] | None,
    settings: Settings | None,
    schedule_wakeup: ScheduleWakeup | None,
) -> _Round:
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise SignOffError(
            f"collect_signoff for {request.spec.system.id} was called outside a flow run; call it in the body "
            "of a deployment-backed flow (suspending a run needs a deployment)"
        )
    report = store.require_report(ledger, request.spec.system.id, request.kind, request.report_digest)
    return _Round(
        request,
        ledger,
        request.spec.digest(),
        report.run_id,
        str(context.flow_run.id),
        now or ledger.now,
        settings,
        schedule_wakeup,
    )


def _void_stale(current: _Round) -> None:
    rows = store.valid_signatures(current.ledger, current.system_id, current.run_id)
    stale = [
        row for row in rows if row.report_digest != current.report_digest or row.spec_digest != current.spec_digest
    ]
    if stale:
        reason = "the report or the spec changed after it was signed; both parties sign the current one"
        detail = {**current.context(0), "report_digest": current.report_digest, "spec_digest": current.spec_digest}
        count = store.void_signatures(current.ledger, stale, reason=reason, detail=detail)
        get_run_logger().warning("voided %d signature(s) of %s: %s", count, current.system_id, reason)


def _signed(current: _Round) -> list[SignatureRecord]:
    rows = store.valid_signatures(current.ledger, current.system_id, current.run_id)
    return [
        SignatureRecord.from_row(row)
        for row in rows
        if row.report_digest == current.report_digest and row.spec_digest == current.spec_digest
    ]


def _finished(current: _Round, signed: list[SignatureRecord]) -> SignOffOutcome | None:
    for record in signed:
        if record.decision is Decision.REJECT:
            raise SignOffRejected(
                f"the {PARTY_LABELS[record.party]} ({record.approver_id}) rejected the {current.kind.value} "
                f"report {current.report_digest} of {current.system_id} at {record.signed_at:%Y-%m-%d %H:%M} UTC: "
                f"{record.comment or '(no comment)'}. Nothing is cut over; address the comment and issue a new report"
            )
    if {record.party for record in signed} == set(Party):
        return SignOffOutcome(
            current.system_id, current.kind, current.report_digest, current.spec_digest, tuple(signed)
        )
    return None


def _refuse_if_expired(current: _Round, signed: list[SignatureRecord]) -> None:
    at = current.clock()
    if at < current.deadline:
        return
    missing = ", ".join(PARTY_LABELS[p] for p in Party if p not in {s.party for s in signed})
    message = (
        f"the sign-off deadline of the {current.kind.value} report of {current.system_id} passed at "
        f"{current.deadline:%Y-%m-%d %H:%M} UTC without a signature from: {missing}; "
        "issue a new report to start a new sign-off"
    )
    detail = {**current.context(0), "deadline": current.deadline.isoformat(), "missing": missing}
    store.record(current.ledger, current.system_id, store.EXPIRED, detail, outcome=AuditOutcome.FAILED)
    raise SignOffExpired(message)


def _ask(current: _Round, n: int, log: store.AttemptLog, signed: list[SignatureRecord]) -> SignOffInput | None:
    """Suspend for attempt ``n`` (or read its answer if it was already given); None if malformed."""
    if n in log.requested:  # shown before this restart: its wake-up, if any, is scheduled
        woken = log.requested[n].wakeup
    else:
        wakeup = WakeupRequest(current.flow_run_id, current.system_id, current.kind.value, current.deadline)
        woken = current.schedule_wakeup(wakeup) if current.schedule_wakeup is not None else False
        detail = {
            **current.context(n),
            "report_digest": current.report_digest,
            "spec_digest": current.spec_digest,
            "wakeup": woken,
        }
        store.record(current.ledger, current.system_id, store.REQUESTED, detail)
        _tell_where_to_sign(current, n, signed)
    form = SignOffInput.with_initial_data(description=_description(current, n, log, signed))
    backstop = current.deadline + (deadline_wakeup.GRACE if woken else timedelta(0))
    timeout = max(1, math.ceil((backstop - current.clock()).total_seconds()))
    try:
        return suspend_flow_run(wait_for_input=form, key=current.key(n), timeout=timeout)
    except pydantic.ValidationError as invalid:
        if invalid.title != SignOffInput.__name__:
            raise
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in invalid.errors(include_input=False))
        get_run_logger().warning("the answer to form %s is malformed: %s", current.key(n), problems)
        return None


def _description(current: _Round, n: int, log: store.AttemptLog, signed: list[SignatureRecord]) -> str:
    lines = [SignedLine(s.party, s.approver_id, s.decision.value, s.signed_at) for s in signed]
    return signoff_description(
        FormContext(
            current.spec,
            current.kind,
            current.report_digest,
            current.spec_digest,
            current.request.report_link,
            current.deadline,
            n,
            lines,
            current.request.verdicts,
            log.last_refusal(),
        )
    )


def _tell_where_to_sign(current: _Round, n: int, signed: list[SignatureRecord]) -> None:
    from prefect.settings import PREFECT_UI_URL

    awaited = " or ".join(PARTY_LABELS[p] for p in Party if p not in {s.party for s in signed})
    ui = PREFECT_UI_URL.value()
    where = f"{ui}/v2/runs/flow-run/{current.flow_run_id}" if ui else f"flow run {current.flow_run_id}"
    get_run_logger().info(
        "waiting for the %s to sign the %s report of %s (form %s): open %s, menu ⋮ → Resume; "
        "or run `cutover sign %s --as <approver id>`",
        awaited,
        current.kind.value,
        current.system_id,
        current.key(n),
        where,
        current.system_id,
    )


def _answer(
    current: _Round, n: int, log: store.AttemptLog, submitted: SignOffInput | None, signed: list[SignatureRecord]
) -> None:
    """Check the answer to attempt ``n``; a refusal is audited (the loop then asks again)."""
    if _is_deadline_wakeup(current, submitted):
        return  # the loop now ends the sign-off as expired, naming who did not sign
    try:
        if submitted is None:
            raise SignatureInvalid("the submitted form was empty or malformed; fill in every field and submit again")
        requested = log.requested.get(n)
        if requested is None:
            raise SignatureInvalid(f"no record of form {current.key(n)} being shown; sign the new form")
        if current.clock() > current.deadline:
            raise SignatureInvalid("the signature arrived after the sign-off deadline")
        shown = ShownForm(current.kind, requested.report_digest, requested.spec_digest, current.context(n))
        check = SignatureCheck(
            spec=current.spec,
            submitted=submitted,
            shown=shown,
            current_report_digest=store.current_report_digest(current.ledger, current.system_id, current.kind),
            current_spec_digest=current.spec_digest,
            other_signatures=signed,
            now=current.clock(),
        )
        check_signature(current.ledger, check, settings=current.settings)
    except SignatureInvalid as refusal:
        _refuse(current, n, submitted, refusal)


def _is_deadline_wakeup(current: _Round, submitted: SignOffInput | None) -> bool:
    """The deadline wake-up's answer, after the deadline (before it, it is refused as an unknown approver)."""
    return (
        submitted is not None
        and submitted.approver_id == deadline_wakeup.WAKEUP_APPROVER
        and current.clock() >= current.deadline
    )


def _refuse(current: _Round, n: int, submitted: SignOffInput | None, refusal: SignatureInvalid) -> None:
    claimed = submitted.approver_id if submitted is not None else None
    detail = {**current.context(n), "reason": str(refusal), "claimed_approver_id": claimed}
    store.record(current.ledger, current.system_id, store.REFUSED, detail, outcome=AuditOutcome.REFUSED)
    get_run_logger().warning("sign-off %s of %s refused: %s", current.key(n), current.system_id, refusal)
