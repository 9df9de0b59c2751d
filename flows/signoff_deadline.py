"""The sign-off deadline wake-up: ends a sign-off nobody finished, through the run's own path.

Scheduled by :func:`schedule_wakeup` (which the flows hand to :func:`tasks.signoff.collect_signoff`)
for just after a sign-off's deadline.
If the run is still suspended on a sign-off form, it is resumed with the wake-up answer; the run
then records ``signoff.expired`` (who did not sign) and ends without cutover, saying why. If the
run already went on (both signed, a party rejected, it was cancelled), there is nothing to do.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
from prefect import flow, get_client
from prefect.context import FlowRunContext
from prefect.exceptions import PrefectException
from prefect.flow_runs import resume_flow_run
from prefect.logging import get_run_logger
from prefect.states import Scheduled

from flows.deployments import ensure_signoff_deadline_deployment
from tasks.signoff import WakeupRequest, wakeup_input

__all__ = ["schedule_wakeup", "signoff_deadline"]

_MAX_EARLY_S = 120.0
_WAKE_AFTER = timedelta(seconds=2)


def schedule_wakeup(request: WakeupRequest) -> bool:
    """Schedule the wake-up for just after the deadline (idempotent per run and deadline); False if it cannot be.

    It cannot when the run is not on a work pool (e.g. a ``serve()``d deployment) or the API refuses;
    then Prefect's suspend timeout at the deadline ends the run, without our record.
    """
    context = FlowRunContext.get()
    pool = context.flow_run.work_pool_name if context is not None and context.flow_run is not None else None
    if not pool:
        return False
    try:
        # (Re)applied on this run's pool, so the wake-up runs wherever the sign-off runs.
        deployment_id = ensure_signoff_deadline_deployment(work_pool=pool)
        with get_client(sync_client=True) as client:
            client.create_flow_run_from_deployment(
                deployment_id,
                parameters={
                    "flow_run_id": request.flow_run_id,
                    "system_id": request.system_id,
                    "kind": request.kind,
                    "deadline": request.deadline,
                },
                state=Scheduled(scheduled_time=request.deadline + _WAKE_AFTER),
                idempotency_key=f"signoff-deadline:{request.flow_run_id}:{request.kind}:{request.deadline.isoformat()}",
            )
    except (PrefectException, httpx.HTTPError) as exc:
        get_run_logger().warning(
            "could not schedule the deadline wake-up of the %s sign-off of %s (%s); at the deadline "
            "Prefect fails the run by itself, without a ledger record",
            request.kind,
            request.system_id,
            exc,
        )
        return False
    return True


@flow(name="signoff-deadline", flow_run_name="signoff-deadline-{system_id}", persist_result=False)
def signoff_deadline(flow_run_id: str, system_id: str, kind: str, deadline: datetime) -> str:
    """Wake the run ``flow_run_id`` if it still waits for signatures after ``deadline``."""
    logger = get_run_logger()
    if not _still_waiting(flow_run_id):
        message = f"the {kind} sign-off of {system_id} (flow run {flow_run_id}) is no longer waiting: nothing to do"
        logger.info(message)
        return message
    early = (deadline - datetime.now(UTC)).total_seconds()
    if early > 0:  # started a little early (clocks): wait for the deadline itself
        time.sleep(min(early, _MAX_EARLY_S))
    resume_flow_run(UUID(flow_run_id), run_input=wakeup_input())
    message = (
        f"the {kind} sign-off of {system_id} reached its wake-up time ({deadline:%Y-%m-%d %H:%M:%S} UTC: the "
        f"sign-off deadline, or the cutover window opening): flow run {flow_run_id} woken to go on or end and say why"
    )
    logger.warning(message)
    return message


def _still_waiting(flow_run_id: str) -> bool:
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(flow_run_id)).state
    key = state.state_details.pause_key if state is not None else None
    return state is not None and state.is_paused() and bool(key) and str(key).startswith("signoff-")
