"""``cutover runs SYSTEM``: the system's runs from the ledger, newest first, and one run's steps.

Registered by :func:`cli.register_commands`. Each run shows its kind (cutover, rollback,
decommission), state, start and end, and who started it (the actor of its ``<kind>.started``
audit event: ``cli:<user>``, ``watch`` for an automatic rollback, ``prefect ui`` or ``prefect cli or
api`` for a run started through Prefect itself, see :func:`flows.rollback.requested_by`). Then the steps of ``--steps RUN_ID``, or of the newest run: id,
host, phase, status, duration and exit code. Read-only: it changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cli._console import ExitCode, console, fail
from cutover import audit
from cutover.errors import UnknownSystem
from cutover.ledger import Ledger, Run, StepExecution
from cutover.runtime import open_ledger

__all__ = ["runs"]

_EVENTS_SCANNED = 100_000  # a system's own audit events: far more than any system has


def runs(
    system: Annotated[str, typer.Argument(help="The system id, as in its spec.")],
    steps: Annotated[
        str | None, typer.Option("--steps", help="The run whose steps to show (default: the newest run).")
    ] = None,
) -> None:
    """SYSTEM's runs, newest first (kind, state, start, end, actor), and the steps of one of them."""
    ledger = open_ledger()
    if ledger.get_system(system) is None:
        raise UnknownSystem(
            f"system {system!r} is not in the ledger; check the id (`cutover status` lists the systems) "
            "or register its spec (`cutover plan`)"
        )
    found = list(reversed(ledger.list_runs(system)))
    if not found:
        console.print(f"{system} has no runs yet; start its cutover with `cutover run {system}`", markup=False)
        return
    console.print(_runs_table(system, found, _actors(ledger, system)), soft_wrap=True)
    shown = _chosen(system, found, steps)
    console.print(_steps_table(shown, ledger.list_steps(shown.id)))


def _actors(ledger: Ledger, system: str) -> dict[str, str]:
    """The actor who started each run: from the ``<kind>.started`` audit events about the system."""
    events = audit.events(ledger, object=f"system:{system}", limit=_EVENTS_SCANNED)
    return {
        str(e.detail["run_id"]): e.actor
        for e in reversed(events)
        if e.action.endswith(".started") and "run_id" in e.detail
    }


def _chosen(system: str, found: list[Run], run_id: str | None) -> Run:
    if run_id is None:
        return found[0]
    for run in found:
        if run.id == run_id or run.id.startswith(run_id):
            return run
    fail(f"{system} has no run {run_id!r}; `cutover runs {system}` lists its runs", ExitCode.INVALID)


def _runs_table(system: str, found: list[Run], actors: dict[str, str]) -> Table:
    table = Table(
        "run", "kind", "state", "started (UTC)", "ended (UTC)", "took", "actor", title=f"runs of {system}, newest first"
    )
    for run in found:
        table.add_row(
            run.id,
            run.kind.value,
            run.state.value,
            _at(run.started_at),
            _at(run.finished_at),
            _took(run),
            escape(actors.get(run.id, "—")),
        )
    return table


def _steps_table(run: Run, executed: list[StepExecution]) -> Table:
    table = Table(
        "step", "host", "phase", "status", "duration", "exit", title=f"steps of {run.kind.value} run {run.id}"
    )
    for step in executed:
        duration = f"{step.duration_s:.1f} s" if step.duration_s is not None else "—"
        exit_status = str(step.exit_status) if step.exit_status is not None else "—"
        attempt = f" (attempt {step.attempt})" if step.attempt > 1 else ""
        table.add_row(
            escape(step.step_id + attempt),
            escape(step.host or "—"),
            step.phase.value,
            step.status.value,
            duration,
            exit_status,
        )
    if not executed:
        table.caption = "no steps recorded"
    return table


def _at(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "—"


def _took(run: Run) -> str:
    if run.finished_at is None:
        return "—"
    seconds = (run.finished_at - run.started_at).total_seconds()
    return f"{seconds:.0f} s" if seconds < 600 else f"{seconds / 60:.0f} min"
