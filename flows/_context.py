"""What every stage of a flow run needs: the spec, the ledger, the run, logging, the clock."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from cutover.claims import HolderState
from cutover.ledger import Ledger, Run
from cutover.secrets import install_log_redaction, redact
from cutover.settings import Settings, get_settings
from cutover.spec import Spec
from tasks.ssh import StepContext, pool_for


def run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """Prefect's run logger inside a run, else the ``cutover`` logger."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("cutover")


def current_flow_run_id() -> str | None:
    """The id of the flow run we are in, if any."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return str(context.flow_run.id) if context and context.flow_run else None


def holder_state(flow_run_id: str) -> HolderState | None:
    """What Prefect says of the flow run ``flow_run_id``: alive until it is in a final state.

    Suspended (waiting for a sign-off), scheduled, pending and running runs are alive; crashed,
    failed, cancelled, completed and deleted ones are not. None when the API cannot tell.
    """
    import httpx
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound, PrefectException

    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(flow_run_id)).state
    except ObjectNotFound:
        return HolderState(alive=False, state="missing")
    except (PrefectException, httpx.HTTPError, ValueError):
        return None
    if state is None:
        return HolderState(alive=True, state="no state yet")
    return HolderState(alive=not state.is_final(), state=state.name or state.type.value)


@dataclass
class RunContext:
    """One flow run's view of one system."""

    spec: Spec
    spec_path: Path
    ledger: Ledger
    run: Run
    actor: str
    settings: Settings = field(default_factory=get_settings)

    def __post_init__(self) -> None:
        install_log_redaction()

    @property
    def system_id(self) -> str:
        return self.spec.system.id

    @property
    def workdir(self) -> Path:
        path = self.settings.home / "runs" / self.run.id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log(self, message: str) -> None:
        run_logger().info(redact(message))

    def steps(self) -> StepContext:
        """The context the step runners need, sharing this run's SSH connections."""
        return StepContext(
            spec=self.spec,
            ledger=self.ledger,
            run_id=self.run.id,
            pool=pool_for(self.run.id),
            actor=self.actor,
            settings=self.settings,
            log=self.log,
        )
