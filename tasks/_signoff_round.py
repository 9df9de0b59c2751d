"""The sign-off loop: suspend for a form, check the answer, ask again until both parties approved.

:func:`collect_signoff` suspends the flow run (``suspend_flow_run``, which needs a deployment)
with the form, once per answer. A refused answer is audited and the form is asked again under a
new pause key (``signoff-trial-run-<n>``). When both parties approved and the request names a
cutover window, the run stays suspended (holding no worker) until the window opens, still
accepting withdrawals; a sign-off that would expire before the window is refused. Progress lives in
the ledger and the audit trail, so a resumed flow (which restarts from the top) continues where
it was.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NoReturn

import pydantic
from prefect.context import FlowRunContext
from prefect.flow_runs import suspend_flow_run
from prefect.logging import get_run_logger

from cutover import signoff_store as store
from cutover.errors import SignatureInvalid, SignOffError, SignOffExpired, SignOffRejected
from cutover.ledger import AuditOutcome, Decision, Ledger, Party, ReportKind
from cutover.settings import Settings, get_settings
from cutover.spec import Spec
from cutover.window import CutoverWindow, decide_start
from tasks import _signoff_deadline as deadline_wakeup
from tasks._signoff_checks import (
    ShownForm,
    SignatureCheck,
    SignatureRecord,
    SignOffOutcome,
    check_signature,
    check_withdrawal,
)
from tasks._signoff_deadline import WakeupRequest
from tasks._signoff_forms import AnyAnswer, Proof, StatementFields, form_for
from tasks._signoff_howto import how_to_sign, window_notice
from tasks._signoff_text import PARTY_LABELS, FormContext, SignedLine, signoff_description
from tasks.notify import WaitingForm, announce_waiting
from tasks.report import ReportSummary

__all__ = ["ScheduleWakeup", "SignOffRequest", "collect_signoff"]


@dataclass(frozen=True)
class SignOffRequest:
    """The one input of :func:`collect_signoff`: which report, where to read it, until when."""

    spec: Spec
    kind: ReportKind
    report_digest: str
    report_link: str
    deadline: datetime
    verdicts: Mapping[str, str] = field(default_factory=dict)  # shown on the form (e.g. the stress verdicts)
    window: CutoverWindow | None = None  # when the work that follows may start (after both signatures)
    valid_for: timedelta | None = None  # how long a joint sign-off stays valid; None: no limit
    summary: ReportSummary | None = None  # the report's key numbers, shown inline on the form


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
    notices: tuple[str, ...] = ()  # shown at the top of the next form (e.g. signatures a spec change voided)

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

    @property
    def proof(self) -> Proof:
        return (self.settings or get_settings()).signoff_proof

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
    current = _void_stale(current)
    while True:
        signed = _signed(current)
        done = _finished(current, signed)
        until: datetime | None = None
        if done is not None:
            until = _start_or_wait(current, done)
            if until is None:
                return done
        else:
            _refuse_if_expired(current, signed)
        log = store.attempt_log(ledger, current.system_id, current.kind, current.flow_run_id)
        n = log.next_n()
        submitted = _ask(current, Ask(n, log, signed, until))
        _answer(current, n, log, submitted, signed)


@dataclass(frozen=True)
class Ask:
    """One form to show: its number, what the attempts so far were, and (both signed) until when it waits."""

    n: int
    log: store.AttemptLog
    signed: list[SignatureRecord]
    window_opens: datetime | None = None


def _start_or_wait(current: _Round, done: SignOffOutcome) -> datetime | None:
    """None when the work may start now; else when the window opens. An expiring sign-off is refused."""
    request = current.request
    if request.window is None and request.valid_for is None:
        return None
    valid_for = request.valid_for or timedelta(days=36500)
    decision = decide_start(request.window, valid_for, [s.signed_at for s in done.signatures], current.clock())
    if not decision.ok:
        _expire_signoff(current, done, decision.reason)
    return decision.start_at if decision.start_at > current.clock() else None


def _expire_signoff(current: _Round, done: SignOffOutcome, reason: str) -> NoReturn:
    rows = store.valid_signatures(current.ledger, current.system_id, current.run_id)
    detail = {**current.context(0), "report_digest": current.report_digest, "reason": reason}
    store.void_signatures(current.ledger, rows, reason=reason, detail=detail)
    store.record(current.ledger, current.system_id, store.EXPIRED, detail, outcome=AuditOutcome.FAILED)
    raise SignOffExpired(f"the joint sign-off of {current.system_id} is refused: {reason}")


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


def _void_stale(current: _Round) -> _Round:
    rows = store.valid_signatures(current.ledger, current.system_id, current.run_id)
    stale = [
        row for row in rows if row.report_digest != current.report_digest or row.spec_digest != current.spec_digest
    ]
    if stale:
        reason = "the report or the spec changed after it was signed; both parties sign the current one"
        detail = {**current.context(0), "report_digest": current.report_digest, "spec_digest": current.spec_digest}
        count = store.void_signatures(current.ledger, stale, reason=reason, detail=detail)
        get_run_logger().warning("voided %d signature(s) of %s: %s", count, current.system_id, reason)
        who = ", ".join(f"{row.approver_id} ({row.party.value})" for row in stale)
        return replace(current, notices=(f"Signatures voided 签署已作废: {who} — {reason}.",))
    return current


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


def _ask(current: _Round, ask: Ask) -> AnyAnswer | None:
    """Suspend for attempt ``ask.n`` (or read its answer if it was already given); None if malformed."""
    n, log = ask.n, ask.log
    wake_at = ask.window_opens or current.deadline
    if n in log.requested:  # shown before this restart: its wake-up, if any, is scheduled
        woken = log.requested[n].wakeup
    else:
        wakeup = WakeupRequest(current.flow_run_id, current.system_id, current.kind.value, wake_at)
        woken = current.schedule_wakeup(wakeup) if current.schedule_wakeup is not None else False
        detail = {
            **current.context(n),
            "report_digest": current.report_digest,
            "spec_digest": current.spec_digest,
            "wakeup": woken,
        }
        if ask.window_opens is not None:
            detail["window_opens"] = ask.window_opens.isoformat()
        store.record(current.ledger, current.system_id, store.REQUESTED, detail)
        _tell_where_to_sign(current, ask)
    form_class = form_for(current.proof)
    form = form_class.with_initial_data(description=_description(current, ask))
    backstop = wake_at + (deadline_wakeup.GRACE if woken else timedelta(0))
    timeout = max(1, math.ceil((backstop - current.clock()).total_seconds()))
    try:
        return suspend_flow_run(wait_for_input=form, key=current.key(n), timeout=timeout)
    except pydantic.ValidationError as invalid:
        if invalid.title != form_class.__name__:
            raise
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in invalid.errors(include_input=False))
        get_run_logger().warning("the answer to form %s is malformed: %s", current.key(n), problems)
        return None


def _description(current: _Round, ask: Ask) -> str:
    lines = [SignedLine(s.party, s.approver_id, s.decision.value, s.signed_at) for s in ask.signed]
    notices = list(current.notices)
    if ask.window_opens is not None:
        notices.append(window_notice(current.request.window, ask.window_opens))
    fields = StatementFields(
        current.system_id, current.kind.value, current.report_digest, current.spec_digest, current.flow_run_id
    )
    return signoff_description(
        FormContext(
            current.spec,
            current.kind,
            current.report_digest,
            current.spec_digest,
            current.request.report_link,
            current.deadline,
            ask.n,
            lines,
            current.request.verdicts,
            ask.log.last_refusal(),
            summary=current.request.summary,
            how_to_sign=how_to_sign(
                current.proof,
                fields,
                current.clock(),
                spec=current.spec,
                awaited=[p for p in Party if p not in {s.party for s in ask.signed}],
                withdrawers=[s.approver_id for s in ask.signed] if ask.window_opens is not None else (),
            ),
            notices=notices,
        )
    )


def _tell_where_to_sign(current: _Round, ask: Ask) -> None:
    from prefect.settings import PREFECT_UI_URL

    awaited = [PARTY_LABELS[p] for p in Party if p not in {s.party for s in ask.signed}]
    ui = PREFECT_UI_URL.value()
    where = f"{ui}/v2/runs/flow-run/{current.flow_run_id}" if ui else f"flow run {current.flow_run_id}"
    logger = get_run_logger()
    if ask.window_opens is not None:
        logger.info(
            "both parties signed the %s report of %s; the run waits, suspended and holding no worker, for the "
            "cutover window: %s. Until then an approver may withdraw: `cutover withdraw %s --as <id> --key <file>`",
            current.kind.value,
            current.system_id,
            window_notice(current.request.window, ask.window_opens),
            current.system_id,
        )
    else:
        logger.info(
            "waiting for the %s to sign the %s report of %s (form %s): open %s, menu ⋮ → Resume; "
            "or run `cutover sign %s --as <approver id> --key <your key file>`",
            " or ".join(awaited),
            current.kind.value,
            current.system_id,
            current.key(ask.n),
            where,
            current.system_id,
        )
    announce_waiting(
        WaitingForm(
            system_id=current.system_id,
            system_name=current.spec.system.name,
            kind="withdrawal" if ask.window_opens is not None else current.kind.value,
            parties=awaited,
            deadline=ask.window_opens or current.deadline,
            link=where,
            flow_run_id=current.flow_run_id,
            form_key=current.key(ask.n),
        )
    )


def _answer(
    current: _Round, n: int, log: store.AttemptLog, submitted: AnyAnswer | None, signed: list[SignatureRecord]
) -> None:
    """Check the answer to attempt ``n``; a refusal is audited (the loop then asks again)."""
    if _is_wakeup(current, submitted, signed):
        return  # the loop now ends the sign-off as expired (naming who did not sign), or starts in the window
    try:
        if submitted is None:
            raise SignatureInvalid("the submitted form was empty or malformed; fill in every field and submit again")
        requested = log.requested.get(n)
        if requested is None:
            raise SignatureInvalid(f"no record of form {current.key(n)} being shown; sign the new form")
        if current.clock() > current.deadline and submitted.decision != "withdraw":
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
        if submitted.decision == "withdraw":
            withdrawn = check_withdrawal(current.ledger, check, settings=current.settings)
            get_run_logger().warning(
                "%s withdrew the %s signature on %s: the run waits for that party again",
                withdrawn.approver_id,
                withdrawn.party.value,
                current.system_id,
            )
            return
        check_signature(current.ledger, check, settings=current.settings)
    except SignatureInvalid as refusal:
        _refuse(current, n, submitted, refusal)


def _is_wakeup(current: _Round, submitted: AnyAnswer | None, signed: list[SignatureRecord]) -> bool:
    """The wake-up's answer: after the deadline, or while both signed (the window). Else refused as unknown."""
    if submitted is None or submitted.approver_id != deadline_wakeup.WAKEUP_APPROVER:
        return False
    return current.clock() >= current.deadline or {s.party for s in signed} == set(Party)


def _refuse(current: _Round, n: int, submitted: AnyAnswer | None, refusal: SignatureInvalid) -> None:
    claimed = submitted.approver_id if submitted is not None else None
    detail = {**current.context(n), "reason": str(refusal), "claimed_approver_id": claimed}
    store.record(current.ledger, current.system_id, store.REFUSED, detail, outcome=AuditOutcome.REFUSED)
    get_run_logger().warning("sign-off %s of %s refused: %s", current.key(n), current.system_id, refusal)
