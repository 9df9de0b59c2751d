"""A tiny deployment-backed flow that only collects the joint sign-off (tests and demos).

The real cutover flow calls :func:`tasks.signoff.collect_signoff` between the trial-run report and
the cutover; this flow exercises suspend/resume on its own until then. It reads the system's
current trial-run report from the ledger on every (re)start, as the real flow does.
"""

from datetime import datetime
from typing import Any

from prefect import flow

from cutover.errors import SignOffError
from cutover.ledger import Ledger, ReportKind
from cutover.spec_loader import load_spec
from flows.signoff_deadline import schedule_wakeup
from tasks.report import report_summary
from tasks.signoff import SignOffRequest, collect_signoff


@flow(name="signoff-demo", persist_result=False)
def signoff_demo(spec_path: str, ledger_url: str, deadline: datetime, report_link: str = "") -> dict[str, Any]:
    """Collect both parties' signatures on the system's current trial-run report."""
    spec = load_spec(spec_path)
    ledger = Ledger(ledger_url, digest="sm3")
    try:
        report = ledger.latest_report(spec.system.id, ReportKind.TRIAL_RUN)
        if report is None:
            raise SignOffError(f"system {spec.system.id} has no trial-run report in {ledger.safe_url}; create it first")
        plan = spec.cutover
        request = SignOffRequest(
            spec,
            ReportKind.TRIAL_RUN,
            report.digest,
            report_link,
            deadline,
            window=plan.window if plan is not None else None,
            valid_for=plan.signoff_valid_for if plan is not None else None,
            summary=report_summary(ledger, spec.system.id, report.digest),
        )
        outcome = collect_signoff(ledger, request, schedule_wakeup=schedule_wakeup)
        return {
            "report_digest": outcome.report_digest,
            "signatures": [(s.party.value, s.approver_id, s.decision.value) for s in outcome.signatures],
        }
    finally:
        ledger.dispose()
