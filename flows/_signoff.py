"""Stage 3 of the notice: the joint sign-off of the trial-run report (共同认可)."""

from __future__ import annotations

from uuid import UUID

from cutover import lifecycle
from cutover.ledger import LifecycleState, Report, ReportKind
from cutover.lifecycle import current_state
from flows._context import RunContext
from flows._preflight import before_signoff
from flows.deployments import artifact_url, artifact_version_url
from flows.signoff_deadline import schedule_wakeup
from tasks.report import artifact_key, report_artifact_id, report_summary
from tasks.signoff import SignOffOutcome, SignOffRequest, collect_signoff

_BEFORE_CUTOVER = frozenset({LifecycleState.REPORT_READY, LifecycleState.SIGNED})


def report_link(system_id: str, artifact_id: UUID | None = None) -> str:
    """The page of this trial-run report's artifact version in the Prefect UI (not the list of versions).

    Pass the id kept when the report was published (``tasks.report.report_artifact_id``); without
    it, the newest version of the system's report artifact (each new report supersedes the older
    ones), or the key's page when Prefect holds none.
    """
    key = artifact_key("trial-run", system_id)
    if artifact_id is None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

        with get_client(sync_client=True) as client:
            latest = client.read_latest_artifacts(
                artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[key])), limit=1
            )
        artifact_id = latest[0].latest_id if latest else None
    return artifact_version_url(artifact_id) if artifact_id is not None else artifact_url(key)


def joint_signoff(rc: RunContext, report: Report) -> SignOffOutcome:
    """Wait (suspended, holding no worker) until both parties approve ``report`` and the cutover window opens.

    The system becomes ``signed``. A sign-off that would expire before the window opens is refused.
    """
    platform = rc.spec.test_platform
    assert platform is not None
    started = current_state(rc.ledger, rc.system_id) not in _BEFORE_CUTOVER  # a resumed cutover: no window again
    plan = rc.spec.cutover
    request = SignOffRequest(
        spec=rc.spec,
        kind=ReportKind.TRIAL_RUN,
        report_digest=report.digest,
        report_link=report_link(rc.system_id, report_artifact_id(rc.ledger, rc.system_id, report.digest)),
        deadline=report.created_at + platform.signoff_deadline,
        window=plan.window if plan is not None and not started else None,
        valid_for=plan.signoff_valid_for if plan is not None and not started else None,
        summary=report_summary(rc.ledger, rc.system_id, report.digest),
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
