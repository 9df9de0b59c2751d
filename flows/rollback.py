"""The rollback flow: one click (UI or CLI) or the watcher brings a retained system back to its original.

    say what it carries back → claim the system (lock) → reverse data sync → verify → traffic back → original's health → close window

The work lives in :mod:`rollback._run` (usable without Prefect); this flow loads the spec and the
ledger, runs it, and publishes what happened as a Markdown artifact. A refused request (another
rollback holds the system, a cutover is running, the system is not in retention or was
decommissioned) does nothing: its flow run ends ``Completed`` under the name ``Refused``, with the
reason (naming the run that holds the lock) as its message. Before anything, the run logs what
the watch last measured: "this rollback carries back N changed rows; the original is M seconds
behind" (:func:`tasks.divergence.before_rollback`, the line ``cutover rollback`` and the demo print too). An incomplete rollback fails the flow
run, loudly, naming what is left to do.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
from prefect import flow
from prefect._internal.schemas.fields import CreatedBy  # the type of FlowRun.created_by (not re-exported)
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import FlowRun, State
from prefect.states import Completed

from cutover.errors import ConcurrencyRefused, RetentionError, RollbackIncomplete
from cutover.runtime import find_spec, open_ledger
from cutover.secrets import redact
from flows._context import current_flow_run_id, holder_state, run_logger
from flows.deployments import VIA_PREFECT
from rollback import RollbackOutcome, RollbackState, run_rollback
from tasks.divergence import before_rollback
from tasks.report import artifact_key
from tasks.steps import step_table

__all__ = [
    "FROM_PREFECT_API",
    "FROM_PREFECT_UI",
    "REFUSED",
    "first_state_message",
    "publish_outcome",
    "report_key",
    "requested_by",
    "requester",
    "rollback_flow",
]

#: The name of the (Completed) state a refused rollback's flow run ends in.
REFUSED = "Refused"


@flow(name="rollback", flow_run_name="rollback-{system_id}", persist_result=False, log_prints=False)
def rollback_flow(
    system_id: str, actor: str = "ops", reason: str = "one-click rollback", resume: bool = False
) -> State[Any] | str:
    """Roll ``system_id`` back to its retained original (refused, doing nothing, when it may not)."""
    logger = run_logger()
    actor = requester(actor, _current_run())
    logger.info("rollback of %s requested by %s: %s", system_id, actor, reason)
    _, spec = find_spec(system_id)
    ledger = open_ledger()
    logger.info(before_rollback(ledger, spec))
    try:
        outcome = run_rollback(
            spec,
            ledger,
            actor=actor,
            flow_run_id=current_flow_run_id(),
            resume=resume,
            log=lambda line: logger.info(line),
            holder_state=holder_state,
        )
    except (ConcurrencyRefused, RetentionError) as exc:
        logger.warning("rollback refused: %s", exc)
        return Completed(name=REFUSED, message=redact(str(exc)))
    publish_outcome(outcome)
    if outcome.state is RollbackState.INCOMPLETE:
        logger.error(outcome.summary())
        raise RollbackIncomplete(outcome.summary())
    logger.info(outcome.summary())
    return outcome.summary()


#: Where a rollback started through Prefect itself came from, as its actor says. The Prefect UI gives
#: the runs it creates a first state with the message "Run from the Prefect UI" (or "... with
#: defaults"); ``prefect deployment run`` and the API give none.
FROM_PREFECT_UI = "prefect ui"
FROM_PREFECT_API = "prefect cli or api"
_UI_MESSAGE = "Run from the Prefect UI"
_VIA_PREFECT = frozenset({VIA_PREFECT, "ui"})  # "ui": what rollback deployments created before VIA_PREFECT passed


def requested_by(actor: str, created_by: CreatedBy | None, first_message: str | None = None) -> str:
    """Who asked for the rollback: ``actor`` as passed (``cli:<user>`` from ``cutover rollback``,
    ``watch``), or, for a run started through Prefect itself (the one-click deployment's own actor),
    the Prefect UI or the Prefect CLI/API, told apart by the run's first state message, with the
    creator Prefect knows of, if any."""
    if actor not in _VIA_PREFECT:
        return actor
    origin = FROM_PREFECT_UI if (first_message or "").startswith(_UI_MESSAGE) else FROM_PREFECT_API
    if created_by is None or not (created_by.display_value or created_by.id):
        return origin
    return f"{origin} ({(created_by.type or 'user').lower()}:{created_by.display_value or created_by.id})"


def requester(actor: str, run: FlowRun | None) -> str:
    """``actor``, or for ``run`` started through Prefect, where it came from (asked of the server)."""
    if actor not in _VIA_PREFECT or run is None:
        return requested_by(actor, None)
    return requested_by(actor, run.created_by, first_state_message(run.id))


def _current_run() -> FlowRun | None:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return context.flow_run if context else None


def first_state_message(flow_run_id: UUID) -> str | None:
    """The message of a flow run's first state: how the Prefect UI marks a run it created.

    None when the server cannot say: the rollback goes on, recorded as started through the CLI or API.
    """
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            states = client.read_flow_run_states(flow_run_id)
    except (httpx.HTTPError, ObjectNotFound) as exc:
        run_logger().warning("where this rollback was started from is unknown: %s", redact(str(exc)))
        return None
    return min(states, key=lambda state: state.timestamp).message if states else None


def report_key(system_id: str) -> str:
    """The artifact key of a system's rollback report (lower-case letters, digits, dashes)."""
    return artifact_key("rollback", system_id)


def publish_outcome(outcome: RollbackOutcome) -> None:
    """A Markdown artifact a person reads: every step, the outcome, what is left to do."""
    icon = "✅" if outcome.state is RollbackState.SUCCEEDED else "⚠️"
    lines = [
        f"# 回退 Rollback — {outcome.system_id}",
        "",
        f"**{icon} {outcome.state.value}** — {outcome.summary()}",
        "",
        f"Rollback run `{outcome.run_id}` reverses cutover run `{outcome.reverses_run_id}`.",
        "",
        *step_table(outcome.steps),
    ]
    if outcome.remaining:
        lines += ["", "## ⚠ Left to do 待处理", *(f"- {item}" for item in outcome.remaining)]
    create_markdown_artifact(
        markdown=redact("\n".join(lines)), key=report_key(outcome.system_id), description="回退 rollback report"
    )
