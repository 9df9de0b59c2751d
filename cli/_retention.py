"""CLI commands of the retention stage: ``cutover rollback SYSTEM`` and ``cutover decommission SYSTEM``.

Registered by :mod:`cli.app` (``app.command()(rollback)``, ``app.command()(decommission)``).
Both start the same flows the Prefect UI starts, through their deployments, and print the run's
URL; ``rollback`` without a Prefect server (or without the system's rollback deployment) runs
the rollback in this process instead.
"""

from __future__ import annotations

import getpass
import time
from typing import Annotated
from uuid import UUID

import typer

from cli._console import ExitCode, console, err_console, fail
from cutover.runtime import find_spec, open_ledger
from cutover.spec import Spec

__all__ = ["decommission", "rollback"]

_WAIT_LIMIT_S = 3600.0
_POLL_S = 1.0


def rollback(
    system: Annotated[str, typer.Argument(help="The system id, as in its spec.")],
    wait: Annotated[bool, typer.Option(help="Wait for the outcome (else print the run's URL and return).")] = True,
) -> None:
    """Roll SYSTEM back to its retained original: data back, traffic back, the original's health checked."""
    _, spec = find_spec(system)  # an unknown id stops here, before the Prefect server is asked
    _say_what_it_carries_back(spec)
    deployment_id = _rollback_deployment(system)
    if deployment_id is None:
        _rollback_here(spec)
        return
    from prefect import get_client

    from flows.deployments import flow_run_url

    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(
            deployment_id, parameters={"system_id": system, "actor": _actor(), "reason": "cutover rollback (CLI)"}
        )
    console.print(f"rollback of {system} requested: {flow_run_url(run.id)}")
    if wait:
        _report_flow_run(run.id, system)


def _say_what_it_carries_back(spec: Spec) -> None:
    from tasks.divergence import before_rollback

    console.print(before_rollback(open_ledger(), spec), markup=False)


def decommission(system: Annotated[str, typer.Argument(help="The system id, as in its spec.")]) -> None:
    """Decommission SYSTEM's original (service exit) after its window; both parties sign in the UI."""
    from flows.decommission import check_decommission_allowed

    find_spec(system)  # an unknown id stops here, before the Prefect server is asked
    check_decommission_allowed(open_ledger(), system, actor=_actor())
    from prefect import get_client

    from flows.deployments import ensure_decommission_deployment, flow_run_url

    deployment_id = ensure_decommission_deployment()
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(deployment_id, parameters={"system_id": system, "actor": _actor()})
    console.print(
        f"decommission of {system} started: {flow_run_url(run.id)}\n"
        f"It waits for both parties to sign the decommission report: open the run (menu ⋮ → Resume) "
        f"or run `cutover sign {system} --as <approver id>`. A worker must serve the pool (see flows/deployments.py)."
    )


def _rollback_deployment(system: str) -> UUID | None:
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return None
    import httpx  # here, with Prefect: `cutover rollback` without a server imports neither

    from flows.deployments import find_rollback_deployment

    try:
        return find_rollback_deployment(system)
    except httpx.HTTPError as exc:
        err_console.print(f"[yellow]the Prefect server did not answer ({exc}); rolling back in this process[/]")
        return None


def _rollback_here(spec: Spec) -> None:
    from rollback import RollbackState, run_rollback

    outcome = run_rollback(spec, open_ledger(), actor=_actor(), log=lambda line: console.print(line, markup=False))
    if outcome.state is not RollbackState.SUCCEEDED:
        fail(outcome.summary(), ExitCode.FAILED)
    console.print(f"[green]{outcome.summary()}[/]")


def _report_flow_run(flow_run_id: UUID, system: str) -> None:
    from prefect import get_client

    from flows.rollback import REFUSED

    deadline = time.monotonic() + _WAIT_LIMIT_S
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            state = client.read_flow_run(flow_run_id).state
            if state is not None and state.is_final():
                break
            time.sleep(_POLL_S)
        else:
            fail(
                f"the rollback of {system} did not finish within {_WAIT_LIMIT_S:.0f} s; follow its run", ExitCode.FAILED
            )
    message = state.message or ""
    if state.name == REFUSED:
        fail(f"rollback refused: {message}", ExitCode.REFUSED)
    if not state.is_completed():
        fail(f"rollback of {system} ended {state.name}: {message}", ExitCode.FAILED)
    console.print(f"[green]rollback of {system} succeeded[/] — the original serves the traffic again")


def _actor() -> str:
    return f"cli:{getpass.getuser()}"
