"""Stage 3 of the notice: the joint sign-off of the trial-run report (共同认可)."""

from __future__ import annotations

from cutover import lifecycle
from cutover.ledger import LifecycleState, Report, ReportKind
from flows._context import RunContext
from tasks.report import artifact_key
from tasks.signoff import SignOffOutcome, collect_signoff


def report_link(system_id: str) -> str:
    """Where the report artifact is shown in the Prefect UI."""
    from prefect.settings import PREFECT_UI_URL

    base = PREFECT_UI_URL.value() or "http://127.0.0.1:4200"
    return f"{base.rstrip('/')}/artifacts/key/{artifact_key('trial-run', system_id)}"


def joint_signoff(rc: RunContext, report: Report) -> SignOffOutcome:
    """Wait (suspended, holding no worker) until both parties approve ``report``; the system becomes ``signed``."""
    platform = rc.spec.test_platform
    assert platform is not None
    outcome = collect_signoff(
        rc.spec,
        rc.ledger,
        report_digest=report.digest,
        report_link=report_link(rc.system_id),
        deadline=report.created_at + platform.signoff_deadline,
        kind=ReportKind.TRIAL_RUN,
        settings=rc.settings,
    )
    if lifecycle.current_state(rc.ledger, rc.system_id) is LifecycleState.REPORT_READY:
        signers = ", ".join(f"{s.approver_id} ({s.party.value})" for s in outcome.signatures)
        lifecycle.transition(
            rc.ledger,
            rc.system_id,
            LifecycleState.SIGNED,
            actor=rc.actor,
            reason=f"report {report.digest} approved by {signers}",
        )
    return outcome
