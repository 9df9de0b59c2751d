"""``cutover run SYSTEM``: start the system's cutover through its deployment and follow it.

Registered by :func:`cli.register_commands`. It starts a run of the deployment ``cutover/cutover``
(see :data:`flows.deployments.DEPLOYMENTS`) with the system id and ``cli:<user>`` as its actor,
prints the run's page in the Prefect UI and, with ``--wait`` (the default), follows it: each state
change and log line, until the run suspends for the joint sign-off (it then says who must sign and
how, and exits 0: the run holds no worker while it waits) or ends.

Exit codes: 0 started, waiting for signatures or completed; 1 no spec for the system; 4 the run
ended Failed, Crashed or Cancelled; 5 the Prefect API did not answer, or the deployment is not
registered (the message says how to register it).
"""

from __future__ import annotations

import getpass
import time
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer
from rich.markup import escape

from cli._console import ExitCode, console, fail, require_prefect_api
from cutover.ledger import Decision, Ledger, Party, ReportKind
from cutover.runtime import find_spec, open_ledger
from cutover.spec import Spec

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import State

__all__ = ["CUTOVER_DEPLOYMENT", "run"]

CUTOVER_DEPLOYMENT = "cutover/cutover"
_POLL_S = 1.0
_NO_WORKER_HINT_S = 30.0  # scheduled this long without a worker taking it: say how to start one


def run(
    system: Annotated[str, typer.Argument(help="The system id, as in its spec.")],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the system's unfinished run (its completed steps are kept).")
    ] = False,
    wait: Annotated[
        bool, typer.Option(help="Follow the run until it waits for signatures or ends (else print its URL).")
    ] = True,
) -> None:
    """Start SYSTEM's cutover (test, report, joint sign-off, cutover, retention) and follow it."""
    _, spec = find_spec(system)  # an unknown id stops here, before the Prefect server is asked
    from prefect import get_client

    from flows.deployments import flow_run_url

    require_prefect_api("start the cutover on")
    with get_client(sync_client=True) as client:
        deployment_id = _cutover_deployment(client)
        flow_run = client.create_flow_run_from_deployment(
            deployment_id, parameters={"system_id": system, "resume": resume, "actor": _actor()}
        )
        console.print(f"cutover of {system} started: {flow_run_url(flow_run.id)}", markup=False, soft_wrap=True)
        if not wait:
            return
        final = _follow(client, flow_run.id)
    _conclude(spec, final, flow_run.id)


def _cutover_deployment(client: SyncPrefectClient) -> UUID:
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(CUTOVER_DEPLOYMENT).id
    except ObjectNotFound:
        fail(
            f"the deployment {CUTOVER_DEPLOYMENT} is not registered on this Prefect server; run `cutover setup` "
            "(it creates the work pool, the deployments and the recovery automations) and start a worker "
            "(`prefect worker start --pool cutover-process --type cutover`)",
            ExitCode.CONFIG,
        )


def _follow(client: SyncPrefectClient, flow_run_id: UUID) -> State[Any]:
    """Print state changes and log lines until the run pauses (sign-off) or ends; that state."""
    shown, last, started, hinted = 0, "", time.monotonic(), False
    while True:
        shown = _print_logs(client, flow_run_id, shown)
        state = client.read_flow_run(flow_run_id).state
        name = (state.name or state.type.value) if state is not None else "no state yet"
        if name != last:
            console.print(f"  state: {name}", markup=False)
            last = name
        if state is not None and (state.is_final() or state.is_paused()):
            _print_logs(client, flow_run_id, shown)
            return state
        if not hinted and state is not None and state.is_scheduled() and time.monotonic() - started > _NO_WORKER_HINT_S:
            hinted = True
            console.print(
                "  no worker has taken the run yet: is one serving the pool? "
                "`prefect worker start --pool cutover-process --type cutover`",
                markup=False,
            )
        time.sleep(_POLL_S)


def _print_logs(client: SyncPrefectClient, flow_run_id: UUID, shown: int) -> int:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    logs = client.read_logs(
        log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
        offset=shown,
        limit=200,
        sort=LogSort.TIMESTAMP_ASC,
    )
    for log in logs:
        console.print(f"  {log.timestamp:%H:%M:%S} {log.message}", markup=False, soft_wrap=True)
    return shown + len(logs)


def _conclude(spec: Spec, state: State[Any], flow_run_id: UUID) -> None:
    from flows.deployments import flow_run_url

    system = spec.system.id
    if state.is_paused():
        console.print(_waiting(spec, open_ledger(), flow_run_url(flow_run_id)), markup=False, soft_wrap=True)
        return
    if not state.is_completed():
        fail(f"the cutover of {system} ended {state.name}: {state.message or ''}", ExitCode.FAILED)
    console.print(f"[green]{escape(state.message or f'the cutover run of {system} completed')}[/]", soft_wrap=True)


def _waiting(spec: Spec, ledger: Ledger, url: str) -> str:
    """Who must still sign (or that the run waits for its window), and how to sign."""
    system = spec.system.id
    report = ledger.latest_report(system, ReportKind.TRIAL_RUN)
    signed = set()
    if report is not None:
        signatures = ledger.signatures_for(system, report_digest=report.digest)
        signed = {s.party for s in signatures if s.decision is Decision.APPROVE}
    missing = [party for party in Party if party not in signed]
    if not missing:
        return f"{system}: both parties signed; the run is suspended until its cutover window opens ({url})"
    lines = [f"{system} waits for the joint sign-off (共同认可); the run is suspended and holds no worker."]
    for party in missing:
        approvers = getattr(spec.parties, party.value).approvers
        lines.append(f"  {party.value} must sign: one of {', '.join(a.id for a in approvers)}")
    lines.append(f"  sign in a terminal: cutover sign {system} --as <approver id> [--key <SM2 key file>]")
    lines.append(f"  or in the Prefect UI: {url}  (⋮ menu → Resume → fill in the form)")
    return "\n".join(lines)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"
