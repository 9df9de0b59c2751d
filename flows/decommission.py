"""Decommission — service exit (服务退出) of a retained original, after its retention window.

    window ended? → decommission report → joint sign-off by both parties → drop the replication
    (``data.replication``) → remove the rollback deployment → close the window → lifecycle ``decommissioned``

Refused (audited, with the date to come back) before the window's end: the notice keeps the
original at least three months. After it, both parties sign the decommission report with the same
mechanism and checks as the trial-run report (:func:`tasks.signoff.collect_signoff`); the flow run
is suspended meanwhile, so it must run from its deployment (``decommission/decommission``). On
resume the flow starts again from the top and finds its run and its report in the ledger.

With ``data.replication`` the reverse subscription (on the original), its slot and publication (on the
cloud copy) and anything else of the system's replication on either side are dropped
(:func:`tasks.replication.drop_all`) before the window closes: a forgotten slot holds the cloud's WAL
until its disk is full. If a side does not answer, the decommission stops there (the window stays
open, the run can be continued) rather than leave a slot behind.
"""

from __future__ import annotations

from datetime import timedelta

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from sqlalchemy.orm import Session

from cutover import audit, claims, lifecycle
from cutover.errors import RetentionError, SignOffError
from cutover.ledger import (
    Ledger,
    LifecycleState,
    Report,
    ReportKind,
    RetentionCloseReason,
    RetentionWindow,
    Run,
    RunKind,
    RunState,
    System,
)
from cutover.runtime import find_spec, open_ledger
from cutover.secrets import redact, resolve
from cutover.spec import Spec
from flows._context import current_flow_run_id, holder_state, run_logger
from flows.deployments import artifact_url, remove_rollback_deployment
from flows.signoff_deadline import schedule_wakeup
from tasks.replication import drop_all
from tasks.report import artifact_key
from tasks.signoff import SignOffRequest, collect_signoff

__all__ = ["check_decommission_allowed", "decommission_flow", "render_report"]

_DEFAULT_SIGNOFF_DEADLINE = timedelta(days=14)


@flow(name="decommission", flow_run_name="decommission-{system_id}", persist_result=False, log_prints=False)
def decommission_flow(system_id: str, actor: str = "ops", resume: bool = False) -> str:
    """Decommission ``system_id``'s original once its window ended and both parties signed."""
    _, spec = find_spec(system_id)
    ledger = open_ledger()
    window = check_decommission_allowed(ledger, system_id, actor=actor)
    run = claims.claim(
        ledger,
        system_id,
        RunKind.DECOMMISSION,
        actor=actor,
        flow_run_id=current_flow_run_id(),
        resume=resume,
        check=_still_retained,
        holder_state=holder_state,
    ).run
    try:
        report = _report(ledger, spec, run, window)
        request = SignOffRequest(
            spec=spec,
            kind=ReportKind.DECOMMISSION,
            report_digest=report.digest,
            report_link=_report_link(system_id),
            deadline=report.created_at + _signoff_deadline(spec),
        )
        collect_signoff(ledger, request, schedule_wakeup=schedule_wakeup)
    except SignOffError as exc:
        ledger.finish_run(run.id, RunState.FAILED, note=redact(str(exc)))
        claims.release(ledger, spec.system.id, run.id)
        raise
    _finish(ledger, spec, run, actor)
    return f"{system_id}: the original was decommissioned (service exit), signed by both parties"


def check_decommission_allowed(ledger: Ledger, system_id: str, *, actor: str) -> RetentionWindow:
    """The open window of a retained system whose end has passed; else RetentionError (audited)."""
    try:
        return _allowed(ledger, system_id)
    except RetentionError as exc:
        claims.refused(ledger, system_id, RunKind.DECOMMISSION, actor=actor, reason=str(exc))
        raise


def _allowed(ledger: Ledger, system_id: str) -> RetentionWindow:
    state = lifecycle.current_state(ledger, system_id)
    window = ledger.current_retention_window(system_id)
    if state is not LifecycleState.RETAINED or window is None:
        raise RetentionError(
            f"decommission of {system_id} refused: it is {state.value}, not in retention; only an original "
            "retained after a cutover can be decommissioned"
        )
    now = ledger.now()
    if now < window.ends_at:
        left = window.ends_at - now
        raise RetentionError(
            f"decommission of {system_id} refused: its retention window runs until {window.ends_at:%Y-%m-%d %H:%M} UTC "
            f"({_days(left)} from now). The notice keeps the original at least 3 months as the way back "
            "(原系统至少保留3个月); start the decommission again after that date"
        )
    return window


def _still_retained(_session: Session, system: System | None) -> None:
    if system is None or system.state is not LifecycleState.RETAINED:
        state = system.state.value if system is not None else "not in the ledger"
        raise RetentionError(f"decommission refused: the system is {state}, no longer in retention")


def _days(left: timedelta) -> str:
    days = left.days + (1 if left.seconds or left.microseconds else 0)
    return f"{days} day" + ("" if days == 1 else "s")


def _report(ledger: Ledger, spec: Spec, run: Run, window: RetentionWindow) -> Report:
    existing = ledger.latest_report(spec.system.id, ReportKind.DECOMMISSION)
    if existing is not None and existing.run_id == run.id and existing.voided_at is None:
        return existing  # the flow restarted after a suspend: the same report is being signed
    content = render_report(ledger, spec, window)
    report = ledger.create_report(run.id, spec.system.id, ReportKind.DECOMMISSION, content)
    create_markdown_artifact(
        markdown=content, key=_artifact_key(spec.system.id), description="服务退出 decommission report"
    )
    return report


def render_report(ledger: Ledger, spec: Spec, window: RetentionWindow) -> str:
    """The decommission report: the system, its cutover, the window, how healthy it was."""
    rows = ledger.health_history(spec.system.id, since=window.opened_at)
    checks = sum(r.checks for r in rows)
    failures = sum(r.failures for r in rows)
    latency = sum(r.latency_sum_ms for r in rows) / checks if checks else 0.0
    lines = [
        f"# 服务退出报告 Decommission report — {spec.system.name} ({spec.system.id})",
        "",
        "| | |",
        "|---|---|",
        f"| 部门 Department | {spec.system.department} |",
        f"| 割接 Cutover | {window.opened_at:%Y-%m-%d %H:%M} UTC (run `{window.cutover_run_id}`) |",
        f"| 保留期 Retention window | {window.opened_at:%Y-%m-%d} – {window.ends_at:%Y-%m-%d} ({spec.retention.months} months) |",
        f"| 健康检查 Health checks | {checks} probes, {failures} failed ({_ratio(failures, checks)}), mean {latency:.0f} ms |",
        "",
        "After both parties sign, the one-click rollback is removed and the original may be shut down:",
        "the way back no longer exists. 双方签字后回退通道关闭，原系统可下线。",
    ]
    return "\n".join(lines) + "\n"


def _ratio(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f} %" if whole else "n/a"


def _finish(ledger: Ledger, spec: Spec, run: Run, actor: str) -> None:
    system_id = spec.system.id
    dropped = _drop_replication(spec)
    removed = remove_rollback_deployment(system_id)
    with ledger.session() as session:
        ledger.close_retention_window(system_id, RetentionCloseReason.DECOMMISSIONED, session=session)
        ledger.finish_run(run.id, RunState.SUCCEEDED, note="decommissioned, signed by both parties", session=session)
        audit.append(
            session,
            actor=actor,
            action="decommission.finished",
            object=f"system:{system_id}",
            detail={"run_id": run.id, "rollback_deployment_removed": removed, "replication_dropped": dropped},
        )
    lifecycle.transition(ledger, system_id, LifecycleState.DECOMMISSIONED, actor=actor, reason=f"run {run.id}")
    claims.release(ledger, spec.system.id, run.id)
    run_logger().info("%s decommissioned; rollback deployment removed: %s", system_id, removed)


def _drop_replication(spec: Spec) -> list[str]:
    """Every replication object of the system dropped on both sides; what was dropped (none without ``data:``)."""
    if spec.data is None:
        return []
    dropped = drop_all(spec.system.id, resolve(spec, spec.data.original), resolve(spec, spec.data.cloud))
    run_logger().info("%s: replication dropped: %s", spec.system.id, ", ".join(dropped) or "nothing was left")
    return dropped


def _signoff_deadline(spec: Spec) -> timedelta:
    return spec.test_platform.signoff_deadline if spec.test_platform else _DEFAULT_SIGNOFF_DEADLINE


def _artifact_key(system_id: str) -> str:
    return artifact_key("decommission", system_id)


def _report_link(system_id: str) -> str:
    return artifact_url(_artifact_key(system_id))
