"""Waking a suspended sign-off at its deadline, so the run ends itself and says why.

A suspended run holds no process, so nothing of ours would notice its sign-off deadline passing:
Prefect would fail the run at the suspend timeout with a message of its own, and the ledger would
never learn why. Instead, when the sign-off first asks for a signature, a run of the small
``signoff-deadline`` deployment (:mod:`flows.signoff_deadline`) is scheduled for just after the
deadline on the same work pool. At that time it resumes the run — if it is still waiting — with
the wake-up answer below; the sign-off then records ``signoff.expired`` naming the parties that did
not sign, and the run ends without cutover through the flow's own path (lifecycle, ledger run,
lock). Prefect's suspend timeout stays as the backstop, ``GRACE`` after the deadline.

The wake-up answer has no power: its approver id can never be on a roster (ids start with a letter
or digit), and before the deadline it is refused like any other unknown approver.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
from prefect import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import PrefectException
from prefect.logging import get_run_logger
from prefect.states import Scheduled

__all__ = ["GRACE", "WAKEUP_APPROVER", "schedule_wakeup", "wakeup_input"]

WAKEUP_APPROVER = "__deadline__"
GRACE = timedelta(minutes=10)
_WAKE_AFTER = timedelta(seconds=2)


def wakeup_input() -> dict[str, str]:
    """The answer the deadline wake-up resumes a sign-off with (valid for the form's schema)."""
    return {
        "approver_id": WAKEUP_APPROVER,
        "decision": "reject",
        "comment": "the sign-off deadline passed (automatic wake-up)",
        "code": "-",
    }


def schedule_wakeup(*, flow_run_id: str, system_id: str, kind: str, deadline: datetime) -> bool:
    """Schedule the wake-up for just after ``deadline`` (idempotent per run and deadline); False if it cannot be.

    It cannot when the run is not on a work pool (e.g. a ``serve()``d deployment) or the API refuses;
    then Prefect's suspend timeout at the deadline ends the run, without our record.
    """
    context = FlowRunContext.get()
    pool = context.flow_run.work_pool_name if context is not None and context.flow_run is not None else None
    if not pool:
        return False
    try:
        from rollback.deployments import ensure_signoff_deadline_deployment

        # (Re)applied on this run's pool, so the wake-up runs wherever the sign-off runs.
        deployment_id = ensure_signoff_deadline_deployment(work_pool=pool)
        with get_client(sync_client=True) as client:
            client.create_flow_run_from_deployment(
                deployment_id,
                parameters={"flow_run_id": flow_run_id, "system_id": system_id, "kind": kind, "deadline": deadline},
                state=Scheduled(scheduled_time=deadline + _WAKE_AFTER),
                idempotency_key=f"signoff-deadline:{flow_run_id}:{kind}:{deadline.isoformat()}",
            )
    except (PrefectException, httpx.HTTPError) as exc:
        get_run_logger().warning(
            "could not schedule the deadline wake-up of the %s sign-off of %s (%s); at the deadline "
            "Prefect fails the run by itself, without a ledger record",
            kind,
            system_id,
            exc,
        )
        return False
    return True
