"""The rollback flow: one click (UI or CLI) or the watcher brings a retained system back to its original.

    say what it carries back → claim the system (lock) → reverse data sync → verify → traffic back → original's health → close window

The work lives in :mod:`rollback._run` (usable without Prefect); this flow loads the spec and the
ledger, runs it, and publishes what happened as a Markdown artifact. A refused request (another
rollback holds the system, a cutover is running, the system is not in retention or was
decommissioned) does nothing: its flow run ends ``Completed`` under the name ``Refused``, with the
reason (naming the run that holds the lock) as its message. Before anything, the run logs what
the watch last measured: "this rollback carries back N changed rows; the original is M seconds
behind" (:func:`tasks.divergence.rollback_notice`). An incomplete rollback fails the flow
run, loudly, naming what is left to do.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect._internal.schemas.fields import CreatedBy  # the type of FlowRun.created_by (not re-exported)
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.states import Completed

from cutover.errors import ConcurrencyRefused, CutoverError, RetentionError, RollbackIncomplete
from cutover.runtime import find_spec, open_ledger
from cutover.secrets import redact
from flows._context import current_flow_run_id, holder_state, run_logger
from flows.deployments import VIA_PREFECT
from rollback import RollbackOutcome, RollbackState, run_rollback
from tasks.divergence import current, data_sources, rollback_notice
from tasks.report import artifact_key
from tasks.steps import step_table

__all__ = ["REFUSED", "publish_outcome", "report_key", "requested_by", "rollback_flow"]

#: The name of the (Completed) state a refused rollback's flow run ends in.
REFUSED = "Refused"


@flow(name="rollback", flow_run_name="rollback-{system_id}", persist_result=False, log_prints=False)
def rollback_flow(
    system_id: str, actor: str = "ops", reason: str = "one-click rollback", resume: bool = False
) -> State[Any] | str:
    """Roll ``system_id`` back to its retained original (refused, doing nothing, when it may not)."""
    logger = run_logger()
    actor = requested_by(actor, _created_by())
    logger.info("rollback of %s requested by %s: %s", system_id, actor, reason)
    _, spec = find_spec(system_id)
    ledger = open_ledger()
    try:
        logger.info(redact(rollback_notice(current(ledger, system_id), data_declared=bool(data_sources(spec)))))
    except CutoverError as exc:
        logger.warning("how much this rollback carries back is unknown: %s", redact(str(exc)))
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


#: What a run started through Prefect itself records when Prefect does not say who created it (a
#: Prefect server without accounts cannot tell its UI from ``prefect deployment run`` or the API).
UNKNOWN_PREFECT_USER = "prefect api (ui or cli)"
_LEGACY_UI_ACTOR = "ui"  # what rollback deployments created before VIA_PREFECT passed


def requested_by(actor: str, created_by: CreatedBy | None) -> str:
    """Who asked for the rollback: ``actor`` as passed, or, for a run started through Prefect
    itself (the one-click deployment's own actor), what Prefect knows of its creator and no more."""
    if actor not in (VIA_PREFECT, _LEGACY_UI_ACTOR):
        return actor
    if created_by is None or not (created_by.display_value or created_by.id):
        return UNKNOWN_PREFECT_USER
    kind = (created_by.type or "user").lower()
    return f"prefect {kind}:{created_by.display_value or created_by.id}"


def _created_by() -> CreatedBy | None:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return context.flow_run.created_by if context and context.flow_run else None


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
