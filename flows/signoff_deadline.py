"""The sign-off deadline wake-up: ends a sign-off nobody finished, through the run's own path.

Scheduled by :func:`tasks._signoff_deadline.schedule_wakeup` for just after a sign-off's deadline.
If the run is still suspended on a sign-off form, it is resumed with the wake-up answer; the run
then records ``signoff.expired`` (who did not sign) and ends without cutover, saying why. If the
run already went on (both signed, a party rejected, it was cancelled), there is nothing to do.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from uuid import UUID

from prefect import flow, get_client
from prefect.flow_runs import resume_flow_run
from prefect.logging import get_run_logger

from tasks._signoff_deadline import wakeup_input

_MAX_EARLY_S = 120.0


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
        f"the {kind} sign-off deadline of {system_id} ({deadline:%Y-%m-%d %H:%M:%S} UTC) passed without both "
        f"signatures: flow run {flow_run_id} woken to end without cutover and record why"
    )
    logger.warning(message)
    return message


def _still_waiting(flow_run_id: str) -> bool:
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(flow_run_id)).state
    key = state.state_details.pause_key if state is not None else None
    return state is not None and state.is_paused() and bool(key) and str(key).startswith("signoff-")
