"""Waking a suspended sign-off at its deadline, so the run ends itself and says why: the answer.

A suspended run holds no process, so nothing of ours would notice its sign-off deadline passing:
Prefect would fail the run at the suspend timeout with a message of its own, and the ledger would
never learn why. Instead, when the sign-off first asks for a signature, a run of the small
``signoff-deadline`` deployment is scheduled for just after the deadline on the same work pool
(:func:`flows.signoff_deadline.schedule_wakeup`, handed to the sign-off by the flows). At that time it resumes the run — if it is still waiting — with
the wake-up answer below; the sign-off then records ``signoff.expired`` naming the parties that did
not sign, and the run ends without cutover through the flow's own path (lifecycle, ledger run,
lock). Prefect's suspend timeout stays as the backstop, ``GRACE`` after the deadline.

The wake-up answer has no power: its approver id can never be on a roster (ids start with a letter
or digit), and before the deadline it is refused like any other unknown approver.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["GRACE", "WAKEUP_APPROVER", "WakeupRequest", "wakeup_input"]

WAKEUP_APPROVER = "__deadline__"
GRACE = timedelta(minutes=10)


@dataclass(frozen=True)
class WakeupRequest:
    """Which waiting sign-off to wake, and when its deadline is."""

    flow_run_id: str
    system_id: str
    kind: str
    deadline: datetime


def wakeup_input(proof: str | None = None) -> dict[str, str]:
    """The answer the wake-up resumes a sign-off with (valid for the schema of the ``proof`` mode's form)."""
    if proof is None:
        from cutover.settings import get_settings

        proof = get_settings().signoff_proof
    answer = {"approver_id": WAKEUP_APPROVER, "decision": "reject", "comment": "automatic wake-up"}
    if proof == "totp":
        return {**answer, "code": "-"}
    return {**answer, "signed_at": "-", "signature": "-"}
