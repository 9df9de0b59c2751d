"""Test support: a registered system whose trial-run report both parties signed (the human part done here)."""

from __future__ import annotations

from typing import Any

from cutover.ledger import Ledger, LifecycleState, RunKind, RunState
from cutover.settings import Settings


def signed_for_real(ledger: Ledger, spec: Any, settings: Settings) -> None:
    """Registered and signed by both parties on a trial-run report (the human part done by the test)."""
    from cutover import lifecycle
    from cutover.approvers import enroll
    from cutover.ledger import Decision, Party, ReportKind
    from cutover.runtime import register

    register(ledger, spec, actor="test")
    for state in (LifecycleState.TESTED, LifecycleState.REPORT_READY, LifecycleState.SIGNED):
        lifecycle.transition(ledger, spec.system.id, state, actor="test", reason="test set-up")
    run = ledger.create_run(spec.system.id, RunKind.CUTOVER)
    report = ledger.create_report(run.id, spec.system.id, ReportKind.TRIAL_RUN, "# trial-run report\nall passed\n")
    ledger.finish_run(run.id, RunState.SUCCEEDED, note="tests and report (test set-up)")
    for party, approver in ((Party.DEPARTMENT, "wang.li"), (Party.CLOUD_PROVIDER, "zhao.min")):
        if ledger.get_approver(approver) is None:
            enroll(ledger, approver, approver, settings=settings)
        ledger.add_signature(
            run_id=run.id,
            system_id=spec.system.id,
            party=party,
            approver_id=approver,
            decision=Decision.APPROVE,
            report_digest=report.digest,
            spec_digest=spec.digest(),
        )
