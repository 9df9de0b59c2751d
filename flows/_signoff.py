"""Stage 3 of the notice: the joint sign-off of the trial-run report (共同认可)."""

from __future__ import annotations

from cutover import lifecycle
from cutover.ledger import LifecycleState, Report, ReportKind
from flows._context import RunContext
from flows._preflight import before_signoff
from flows.deployments import artifact_url
from flows.signoff_deadline import schedule_wakeup
from tasks.report import artifact_key
from tasks.signoff import SignOffOutcome, SignOffRequest, collect_signoff


def report_link(system_id: str) -> str:
    """Where the trial-run report artifact is shown in the Prefect UI."""
    return artifact_url(artifact_key("trial-run", system_id))


def joint_signoff(rc: RunContext, report: Report) -> SignOffOutcome:
    """Wait (suspended, holding no worker) until both parties approve ``report``; the system becomes ``signed``."""
    platform = rc.spec.test_platform
    assert platform is not None
    request = SignOffRequest(
        spec=rc.spec,
        kind=ReportKind.TRIAL_RUN,
        report_digest=report.digest,
        report_link=report_link(rc.system_id),
        deadline=report.created_at + platform.signoff_deadline,
    )
    before_signoff(rc)  # hosts, programs, secrets, databases, URLs: checked before anyone is asked to sign
    outcome = collect_signoff(rc.ledger, request, settings=rc.settings, schedule_wakeup=schedule_wakeup)
    signers = ", ".join(f"{s.approver_id} ({s.party.value})" for s in outcome.signatures)
    lifecycle.advance(
        rc.ledger,
        rc.system_id,
        LifecycleState.SIGNED,
        expected=LifecycleState.REPORT_READY,
        done_in=frozenset({LifecycleState.CUTTING_OVER}),
        actor=rc.actor,
        reason=f"report {report.digest} approved by {signers}",
    )
    return outcome
