"""Dead runs noticed and resumed by themselves: Prefect's zombie detection, then the ``recover`` flow.

A killed worker leaves its flow run ``Running`` for good and its system claimed in the ledger.
Prefect's own mechanism notices it: every flow run of our deployments sends a heartbeat every
:data:`HEARTBEAT_S` seconds (the deployments set ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` in their job
environment, see :mod:`flows.deployments`), and the automation :data:`CRASH_ZOMBIES` marks a run
``Crashed`` when its heartbeats stop for ``silence`` while it is neither suspended nor finished.
Marking it crashed gives its deployment's concurrency slot back at once.

The automation :data:`RESUME_CRASHED` then starts the ``recover`` deployment for the crashed run.
:func:`recover` looks the run up: a cutover, rollback or decommission run whose ledger run is still
running (its system still claimed by it) is continued by a new run of the same deployment with
``resume=true`` — unless another request of that deployment is already waiting, which continues it
itself (a one-click rollback made meanwhile is not refused). A crashed watch run is replaced at once,
so the watch has no blind spot. A run that is alive is never touched. ``cutover setup`` creates the
``recover`` deployment and both automations (:func:`ensure_recovery`), and every cutover worker
brings them up to date when it starts, idempotently (both read ``CUTOVER_RECOVERY_SILENCE_S``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from prefect import flow, get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.events.actions import ChangeFlowRunState, RunDeployment
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.states import Crashed

from cutover import audit
from cutover.ledger import Ledger, RunKind
from cutover.runtime import open_ledger
from flows._automation_shape import automation_shape
from flows._context import run_logger
from flows.deployments import HEARTBEAT_S, Applied, register_deployment

__all__ = ["CRASH_ZOMBIES", "HEARTBEAT_S", "RESUME_CRASHED", "crash_silent_runs", "ensure_recovery", "recover"]

CRASH_ZOMBIES = "govcloud-cutover: crash runs whose heartbeats stopped"
RESUME_CRASHED = "govcloud-cutover: resume crashed runs"
_TAG = "prefect.tag.cutover"  # every deployment of flows.deployments carries the tag "cutover"
_FINAL = {"Completed", "Failed", "Cancelled", "Crashed"}
_KINDS = {"cutover": RunKind.CUTOVER, "rollback": RunKind.ROLLBACK, "decommission": RunKind.DECOMMISSION}
_WAITING = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING]


def ensure_recovery(work_pool: str, *, silence: timedelta = timedelta(seconds=90)) -> list[Applied]:
    """Create (or bring up to date) the ``recover`` deployment on ``work_pool`` and both automations."""
    deployment = register_deployment("recover", work_pool=work_pool)
    assert deployment.id is not None
    return [deployment, _ensure(_crash_zombies(silence)), _ensure(_resume_crashed(deployment.id))]


def crash_silent_runs(work_pool: str, silence: timedelta, *, now: datetime | None = None) -> list[UUID]:
    """Mark Crashed the Running runs of ``work_pool`` whose heartbeats stopped ``silence`` ago; their ids.

    The same rule as the ``crash runs whose heartbeats stopped`` automation, applied by the workers
    of the pool as they sync with the server, so a dead run does not depend on the server's
    proactive-trigger evaluation alone (seen to miss a run under load). Only a run that has sent
    heartbeats is judged: one that never sent any (heartbeats off) is left alone. Marking it
    Crashed frees its concurrency slot and starts the ``resume crashed runs`` automation.
    """
    at = now or datetime.now(UTC)
    running = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])))
    crashed: list[UUID] = []
    with get_client(sync_client=True) as client:
        pool = WorkPoolFilter(name=WorkPoolFilterName(any_=[work_pool]))
        for run in client.read_flow_runs(flow_run_filter=running, work_pool_filter=pool, limit=200):
            last = _last_heartbeat(client, run.id)
            if last is None or at - last < silence:
                continue
            message = f"no heartbeat for {silence} (last {last:%H:%M:%S} UTC): worker lost"
            client.set_flow_run_state(run.id, Crashed(message=message), force=True)
            crashed.append(run.id)
    return crashed


def _last_heartbeat(client: Any, flow_run_id: UUID) -> datetime | None:
    found = client.read_events(
        filter=EventFilter(
            event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
            resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
        ),
        limit=1,
    )
    return max((event.occurred for event in found.events), default=None)


def _crash_zombies(silence: timedelta) -> AutomationCore:
    return AutomationCore(
        name=CRASH_ZOMBIES,
        description="A flow run of govcloud-cutover that stops sending heartbeats is marked Crashed.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Suspended",
                "prefect.flow-run.Paused",
                *(f"prefect.flow-run.{name}" for name in _FINAL),
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification({"prefect.resource.id": _TAG}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=silence,
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message=f"no heartbeat for {silence}: worker lost")],
    )


def _resume_crashed(recover_deployment: UUID) -> AutomationCore:
    return AutomationCore(
        name=RESUME_CRASHED,
        description="A crashed flow run of govcloud-cutover is continued from the ledger by the recover flow.",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Crashed"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification({"prefect.resource.id": _TAG}),
            for_each={"prefect.resource.id"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            RunDeployment(
                source="selected",
                deployment_id=recover_deployment,
                parameters={"crashed": "{{ event.resource.id }}"},
            )
        ],
    )


def _ensure(wanted: AutomationCore) -> Applied:
    what = f"automation {wanted.name!r}"
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(wanted.name)
        keep = next((found for found in existing if automation_shape(found) == automation_shape(wanted)), None)
        for stale in existing:
            if stale is not keep:
                client.delete_automation(stale.id)  # an older shape, or a twin two workers made at once
        if keep is not None:
            return Applied(what, "already there" if len(existing) == 1 else "updated", keep.id)
        created = client.create_automation(wanted)
    return Applied(what, "updated" if existing else "created", created)


@flow(name="recover", flow_run_name="recover-{crashed}", persist_result=False, log_prints=False)
def recover(crashed: str) -> str:
    """Continue the work of the crashed flow run ``crashed`` (``prefect.flow-run.<id>`` or its id)."""
    flow_run_id = crashed.removeprefix("prefect.flow-run.")
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
        flow_name = client.read_flow(run.flow_id).name
    message = _decide(run, flow_name)
    run_logger().info(message)
    return message


def _decide(run: FlowRun, flow_name: str) -> str:
    if run.state is None or not run.state.is_final():
        return f"flow run {run.id} is alive ({run.state.name if run.state else 'no state'}): it is never taken over"
    if run.deployment_id is None:
        return f"flow run {run.id} did not come from a deployment: nothing to resume"
    if flow_name == "watch-retention":
        return _replace_watch(run)
    kind = _KINDS.get(flow_name)
    if kind is None:
        return f"flow run {run.id} ({flow_name}) holds no system: nothing to resume"
    return _resume(run, kind)


def _replace_watch(run: FlowRun) -> str:
    assert run.deployment_id is not None
    waiting = _waiting_runs(run.deployment_id, exclude=run.id)
    if waiting:
        return f"watch run {run.id} crashed; watch run {waiting[0].id} is already on its way"
    new = _start(run, dict(run.parameters), key=f"recover:{run.id}")
    return f"watch run {run.id} crashed; watch run {new} started in its place"


def _resume(run: FlowRun, kind: RunKind) -> str:
    assert run.deployment_id is not None
    system_id = str(run.parameters.get("system_id", ""))
    ledger = open_ledger()
    held = ledger.running_run_for(system_id, kind=kind) if system_id else None
    if held is None or held.flow_run_id != str(run.id):
        return f"flow run {run.id} ({kind.value} of {system_id or '?'}) holds nothing in the ledger: nothing to resume"
    waiting = _waiting_runs(run.deployment_id, exclude=run.id, system_id=system_id)
    if waiting:
        return f"{kind.value} run {held.id} of {system_id}: request {waiting[0].id} is waiting and will continue it"
    new = _start(run, {**run.parameters, "resume": True}, key=f"recover:{run.id}")
    _audit(ledger, system_id, kind, held.id, str(run.id), new)
    return f"{kind.value} run {held.id} of {system_id} was interrupted (flow run {run.id} crashed); continued by {new}"


def _waiting_runs(deployment_id: UUID, *, exclude: UUID, system_id: str | None = None) -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=_WAITING))),
        )
    return [r for r in runs if r.id != exclude and (system_id is None or r.parameters.get("system_id") == system_id)]


def _start(run: FlowRun, parameters: dict[str, Any], *, key: str) -> UUID:
    assert run.deployment_id is not None
    with get_client(sync_client=True) as client:
        created = client.create_flow_run_from_deployment(run.deployment_id, parameters=parameters, idempotency_key=key)
    return created.id


def _audit(ledger: Ledger, system_id: str, kind: RunKind, run_id: str, crashed: str, new: UUID) -> None:
    with ledger.session() as session:
        audit.append(
            session,
            actor="recovery",
            action=f"{kind.value}.recovery",
            object=f"system:{system_id}",
            detail={"run_id": run_id, "crashed_flow_run": crashed, "new_flow_run": str(new)},
        )
