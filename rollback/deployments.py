"""Prefect deployments of the retention stage: one-click rollback per system, decommission, watch.

When a system enters retention the cutover flow calls :func:`ensure_rollback_deployment`: a
deployment ``rollback/rollback-<system id>`` of :func:`rollback.flow.rollback_flow` with the
system id as its fixed parameter and a concurrency limit of 1, so rolling back in the UI is one
click ("Run" → "Quick run") on that deployment, and a double click queues a second run that the
ledger lock then refuses. A link artifact on the cutover run points to it.
:func:`remove_rollback_deployment` removes it at decommission.

How the runs get executed — a work pool of type ``cutover`` (default ``cutover-process``) and its
workers, Prefect process workers that start each run in a warm process (:mod:`cutover.worker`)::

    prefect worker start --pool cutover-process --type cutover

Why not ``serve()``: a served runner executes only the deployments it registered when it started,
while rollback deployments appear at run time, one per system entering retention. A worker polls
its pool and runs any deployment in it, including ones created after it started. The demo runs one
local worker; production runs several (one per site or host, any of them may take a rollback),
each with the ledger URL, specs directory and secrets in its environment, since flow runs inherit
the worker's environment. The flows are deployed by module path (``rollback.flow.rollback_flow``),
so a worker needs this package installed, nothing else. With 1 s polling
(``PREFECT_WORKER_QUERY_SECONDS=1``) a worker starts a run 1–2 s after the click.

:func:`ensure_decommission_deployment` and :func:`ensure_watch_deployment` put the decommission
flow (it suspends for the two parties' sign-off, which needs a deployment) and the scheduled
retention watch in the same pool.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast
from uuid import UUID

from prefect import get_client
from prefect.artifacts import create_link_artifact
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import ObjectNotFound
from prefect.flows import Flow
from prefect.types.entrypoint import EntrypointType

__all__ = [
    "DEFAULT_POOL",
    "deployment_url",
    "ensure_decommission_deployment",
    "ensure_rollback_deployment",
    "ensure_signoff_deadline_deployment",
    "ensure_watch_deployment",
    "ensure_work_pool",
    "find_rollback_deployment",
    "flow_run_url",
    "remove_rollback_deployment",
    "rollback_deployment_name",
]

DEFAULT_POOL = "cutover-process"


def rollback_deployment_name(system_id: str) -> str:
    """The full name (``flow/deployment``) of the system's rollback deployment."""
    return f"rollback/rollback-{system_id}"


def ensure_rollback_deployment(system_id: str, *, work_pool: str = DEFAULT_POOL, link: bool = True) -> UUID:
    """Create or update the system's one-click rollback deployment; its id.

    Called in a flow run (the cutover's ``conclude``), it also leaves a link artifact on that run.
    """
    from rollback.flow import rollback_flow

    deployment_id = _apply(
        rollback_flow,
        name=rollback_deployment_name(system_id).split("/", 1)[1],
        work_pool=work_pool,
        parameters={"system_id": system_id, "actor": "ui", "reason": "one-click rollback (Prefect UI)"},
        description=f"一键回退 One-click rollback of {system_id} to its retained original (one run at a time).",
        tags=["cutover", "rollback", f"system:{system_id}"],
    )
    if link and _in_a_run():
        create_link_artifact(
            link=deployment_url(deployment_id),
            link_text=f"一键回退 Roll back {system_id}",
            key=_key("rollback-deployment", system_id),
            description="The one-click rollback deployment of this system: open it and press Run → Quick run.",
        )
    return deployment_id


def find_rollback_deployment(system_id: str) -> UUID | None:
    """The id of the system's rollback deployment, or None when the server has none."""
    with get_client(sync_client=True) as client:
        try:
            return client.read_deployment_by_name(rollback_deployment_name(system_id)).id
        except ObjectNotFound:
            return None


def remove_rollback_deployment(system_id: str) -> bool:
    """Delete the system's rollback deployment; False when there was none."""
    deployment_id = find_rollback_deployment(system_id)
    if deployment_id is None:
        return False
    with get_client(sync_client=True) as client:
        try:
            client.delete_deployment(deployment_id)
        except ObjectNotFound:
            return False
    return True


def ensure_decommission_deployment(*, work_pool: str = DEFAULT_POOL) -> UUID:
    """The ``decommission/decommission`` deployment (the sign-off suspends, which needs one)."""
    from flows.decommission import decommission_flow

    return _apply(
        decommission_flow,
        name="decommission",
        work_pool=work_pool,
        parameters={},
        description="服务退出 Decommission a retained original after its window, signed by both parties.",
        tags=["cutover", "decommission"],
    )


def ensure_signoff_deadline_deployment(*, work_pool: str = DEFAULT_POOL) -> UUID:
    """The ``signoff-deadline/signoff-deadline`` deployment that wakes sign-offs left past their deadline."""
    from flows.signoff_deadline import signoff_deadline

    return _apply(
        signoff_deadline,
        name="signoff-deadline",
        work_pool=work_pool,
        parameters={},
        description="签认截止 Ends a joint sign-off still waiting at its deadline, recording who did not sign.",
        tags=["cutover", "signoff"],
        concurrency_limit=None,
    )


def ensure_watch_deployment(
    *, every: timedelta = timedelta(minutes=5), work_pool: str = DEFAULT_POOL, paused: bool = False
) -> UUID:
    """The scheduled ``watch-retention/watch`` deployment: every ``every``, a run that watches for ``every``."""
    from flows.watch import watch_retention

    return _apply(
        watch_retention,
        name="watch",
        work_pool=work_pool,
        parameters={"duration_s": every.total_seconds()},
        description="保留期监控 Watch every retained system; roll back after K failed checks.",
        tags=["cutover", "watch"],
        interval=every,
        paused=paused,
    )


def ensure_work_pool(name: str = DEFAULT_POOL) -> None:
    """Create the work pool (type ``cutover``, the process job template) if the server lacks it."""
    from cutover.worker import WORKER_TYPE, CutoverWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            template = CutoverWorker.get_default_base_job_template()
            pool = WorkPoolCreate(name=name, type=WORKER_TYPE, base_job_template=template)
            client.create_work_pool(pool, overwrite=False)


def deployment_url(deployment_id: UUID) -> str:
    """The deployment's page in the Prefect UI."""
    return f"{_ui()}/deployments/deployment/{deployment_id}"


def flow_run_url(flow_run_id: UUID) -> str:
    """The flow run's page in the Prefect UI."""
    return f"{_ui()}/runs/flow-run/{flow_run_id}"


def _apply(
    flow: Flow[Any, Any],
    *,
    name: str,
    work_pool: str,
    parameters: dict[str, Any],
    description: str,
    tags: list[str],
    interval: timedelta | None = None,
    paused: bool = False,
    concurrency_limit: int | None = 1,
) -> UUID:
    ensure_work_pool(work_pool)
    deployment = cast(
        RunnerDeployment,
        flow.to_deployment(
            name=name,
            parameters=parameters,
            description=description,
            tags=tags,
            interval=interval,
            paused=paused,
            concurrency_limit=concurrency_limit,
            entrypoint_type=EntrypointType.MODULE_PATH,
        ),
    )
    return cast(UUID, deployment.apply(work_pool_name=work_pool))


def _in_a_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def _ui() -> str:
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    ui = PREFECT_UI_URL.value() or (PREFECT_API_URL.value() or "http://127.0.0.1:4200/api").removesuffix("/api")
    return str(ui).rstrip("/")


def _key(prefix: str, system_id: str) -> str:
    return f"{prefix}-" + "".join(c if c.isalnum() else "-" for c in system_id.lower())
