"""What the watcher does in Prefect: request rollbacks, raise readiness alerts.

A rollback request acts directly: it creates a run of the system's rollback deployment
(``run_deployment``, not waiting), or — when the server has no such deployment — runs the rollback
flow in this process, on a thread of its own so the watch goes on. It also emits a
``cutover.rollback.requested`` event for automations; the event is a notification only, so a lost
event never loses a rollback. A double request never runs two: the deployment runs one at a time,
the run is created with an idempotency key per watcher, and the ledger lock refuses a second.

The divergence of a system (how far its cloud copy has moved since the cutover, how far behind
the original is) is the system's retention artifact, ``retention-<system>``, a new version when
it changes or hourly; the retention artifact is informative, so a failure to publish it is logged
and the watch goes on.

An alert (the original is no longer ready for rollback) is a Markdown artifact keyed per system,
shown in the UI's Artifacts page, plus a ``cutover.original.not-ready`` event. Nothing is rolled back.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any, cast

import httpx
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.events import emit_event
from prefect.exceptions import PrefectException, PrefectHTTPStatusError

from cutover.ledger import DivergenceSample
from cutover.secrets import redact
from cutover.spec import Spec
from flows._context import run_logger
from flows._watch_ready import Readiness
from flows._watch_sweep import WatchHooks
from flows.deployments import find_rollback_deployment, rollback_deployment_name
from tasks.divergence import markdown
from tasks.report import artifact_key


def prefect_hooks(executor: Executor, *, watch_key: str) -> WatchHooks:
    """Hooks that act through Prefect; in-process rollbacks run on ``executor``."""

    def rollback(spec: Spec, reason: str) -> str | None:
        return request_rollback(spec, reason, executor=executor, watch_key=watch_key)

    return WatchHooks(rollback=rollback, alert=raise_alert, divergence=publish_divergence)


def request_rollback(spec: Spec, reason: str, *, executor: Executor, watch_key: str) -> str | None:
    """Start the system's rollback; what was started, or None when nothing could be (retry later)."""
    system_id = spec.system.id
    _emit("cutover.rollback.requested", system_id, {"reason": reason})
    try:
        deployment_id = find_rollback_deployment(system_id)
        if deployment_id is not None:
            run = cast(
                FlowRun,
                run_deployment(  # type: ignore[call-arg]
                    deployment_id,
                    parameters={"system_id": system_id, "actor": "watch", "reason": reason},
                    timeout=0,
                    as_subflow=False,
                    idempotency_key=f"auto-rollback-{system_id}-{watch_key}",
                    _sync=True,
                ),
            )
            run_logger().warning("%s: %s → flow run %s", system_id, reason, run.id)
            return f"flow run {run.id} of {rollback_deployment_name(system_id)}"
    except (httpx.HTTPError, PrefectHTTPStatusError) as exc:
        run_logger().error("%s: could not start the rollback deployment (%s); retrying next sweep", system_id, exc)
        return None
    executor.submit(_in_process, system_id, reason)
    run_logger().warning("%s: %s → rollback in the watcher's process (no deployment)", system_id, reason)
    return "rollback in the watcher's process"


def _in_process(system_id: str, reason: str) -> None:
    from flows.rollback import rollback_flow

    rollback_flow(system_id=system_id, actor="watch", reason=reason)


def raise_alert(spec: Spec, not_ready: list[Readiness]) -> None:
    """The original is not ready for rollback: an artifact in the UI and an event; no rollback."""
    system_id = spec.system.id
    lines = [
        f"# ⚠ 原系统不可回退 Original not ready for rollback — {spec.system.name} ({system_id})",
        "",
        "The retained original would not take the traffic back if a rollback were needed now:",
        "",
        *(f"- {r.describe()}" for r in not_ready),
        "",
        "Nothing was rolled back. Restore the original's host and service, then watch this alert clear.",
    ]
    create_markdown_artifact(
        markdown=redact("\n".join(lines)),
        key=artifact_key("not-ready", system_id),
        description="保留期告警 retention alert",
    )
    _emit("cutover.original.not-ready", system_id, {"checks": [r.describe() for r in not_ready]})
    run_logger().error("%s: original NOT ready for rollback: %s", system_id, "; ".join(r.describe() for r in not_ready))


def publish_divergence(spec: Spec, found: DivergenceSample) -> None:
    """The system's retention artifact: how far the cloud copy has moved since the cutover."""
    system_id = spec.system.id
    lines = [
        f"# 保留期 Retention — {spec.system.name} ({system_id})",
        "",
        "## 数据差异 Divergence since the cutover",
        "",
        *markdown(found),
        "",
        f"A rollback now carries these changes back: `cutover rollback {system_id}`.",
    ]
    try:
        create_markdown_artifact(
            markdown=redact("\n".join(lines)),
            key=artifact_key("retention", system_id),
            description="保留期 retention: divergence",
        )
    except (PrefectException, httpx.HTTPError) as exc:
        run_logger().warning("%s: the retention artifact could not be published (%s)", system_id, exc)


def _emit(event: str, system_id: str, payload: dict[str, Any]) -> None:
    emit_event(
        event=event,
        resource={"prefect.resource.id": f"cutover.system.{system_id}", "prefect.resource.name": system_id},
        payload=payload,
    )
