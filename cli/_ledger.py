"""CLI commands that read and write the ledger: status (with divergence), audit verify."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli._audit_against import check_against
from cli._console import ExitCode, console, fail
from cli.app import _paths, app
from cutover import audit
from cutover.ledger import Decision, Ledger, LifecycleState, Party, ReportKind, System
from cutover.plan import STATE_LABELS
from cutover.runtime import open_ledger, register
from cutover.spec_loader import load_many
from tasks.divergence import Divergence, current, current_by_system, summary

audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


def actor() -> str:
    """Who runs the command, for the audit trail."""
    return f"cli:{getpass.getuser()}"


@app.command()
def status(
    system_id: Annotated[
        str | None, typer.Argument(help="One system: its state and its divergence since the cutover, per table.")
    ] = None,
) -> None:
    """Each registered system's lifecycle state, retention window end date and divergence since the cutover.

    A registered system whose spec in the specs directory changed since it was registered is
    registered again first (which voids a report and signatures made under the old spec), so the
    table shows the state after voiding; a state whose report or signatures were voided says so.
    The divergence is what the watch last measured: rows the cloud copy changed since the cutover
    and how far behind the original is.
    """
    ledger = open_ledger()
    systems = ledger.list_systems()
    if not systems:
        console.print("no systems registered yet; run `cutover plan` first")
        return
    if _register_changed_specs(ledger, systems):
        systems = ledger.list_systems()
    if system_id is not None:
        systems = [s for s in systems if s.id == system_id]
        if not systems:
            fail(f"system {system_id!r} is not registered; run `cutover plan` first", ExitCode.INVALID)
    samples = current_by_system(ledger)
    table = Table(
        "system", "name", "department", "state", "retention ends", "divergence", title="govcloud-cutover status"
    )
    for system in systems:
        window = ledger.current_retention_window(system.id)
        ends = window.ends_at.date().isoformat() if window is not None else "—"
        table.add_row(
            system.id,
            system.name,
            system.department,
            _state_label(ledger, system),
            ends,
            summary(samples.get(system.id)),
        )
    console.print(table)
    if system_id is not None:
        _print_divergence(ledger, system_id)


def _print_divergence(ledger: Ledger, system_id: str) -> None:
    """The system's divergence since the cutover: a row per table, the lag, what could not be measured."""
    found = current(ledger, system_id)
    if found is None:
        console.print(f"{system_id}: no divergence measured yet (the watch measures it each readiness round)")
        return
    divergence = Divergence.from_sample(found)
    table = Table(
        "table",
        "inserted",
        "updated",
        "deleted",
        "counted by",
        title=f"divergence since the cutover (measured {found.taken_at:%Y-%m-%d %H:%M:%S} UTC)",
    )
    for cells in divergence.table_rows():
        table.add_row(*cells)
    console.print(table)
    console.print(divergence.describe(), soft_wrap=True)
    if divergence.approximate:
        console.print("≈: lower bounds from the chunked checksums recorded at cutover", soft_wrap=True)
    for problem in divergence.problems:
        console.print(f"[yellow]not measured[/]: {problem}", soft_wrap=True)


def _register_changed_specs(ledger: Ledger, systems: list[System]) -> bool:
    """Register again each registered system whose spec changed; True if there was one."""
    recorded = {system.id: system.spec_digest for system in systems}
    specs, _invalid = load_many(_paths(None))  # `cutover validate` reports invalid files
    changed = [spec for spec in specs if recorded.get(spec.system.id) not in (None, spec.digest(ledger.digest))]
    for spec in changed:
        state = register(ledger, spec, actor=actor())
        console.print(
            f"[yellow]{spec.system.id}[/]: its spec changed since it was registered; registered anew, now "
            f"{state.value} (a report and signatures made under the old spec are void)"
        )
    return bool(changed)


def _state_label(ledger: Ledger, system: System) -> str:
    """The state and its Chinese label, and whether the evidence the state rests on was voided."""
    label = f"{system.state.value} {STATE_LABELS.get(system.state.value, '')}"
    if system.state not in (LifecycleState.REPORT_READY, LifecycleState.SIGNED):
        return label
    report = ledger.latest_report(system.id, ReportKind.TRIAL_RUN)
    if report is None:
        return f"{label} — report voided: test again"
    approved = {
        s.party for s in ledger.signatures_for(system.id, report_digest=report.digest) if s.decision is Decision.APPROVE
    }
    if system.state is LifecycleState.SIGNED and approved != set(Party):
        return f"{label} — signatures voided: sign again"
    return label


@audit_app.command("verify")
def audit_verify(
    against: Annotated[
        Path | None,
        typer.Option(
            "--against",
            metavar="FILE",
            help="An earlier `cutover audit export` (JSON Lines or CSV): each of its events must still be in "
            "the ledger, unchanged (detects a trail truncated after the export, or another chain).",
        ),
    ] = None,
) -> None:
    """Walk the audit chain, check the step executions and re-verify every SM2 signature; exit 1 if one fails."""
    ledger = open_ledger()
    if against is not None:
        console.print(check_against(ledger, against), markup=False, soft_wrap=True)
    result = audit.verify(ledger)
    if result.ok:
        console.print(
            f"[green]audit chain intact[/]: {result.checked} events verified, "
            f"{result.steps_checked} step executions match them, "
            f"{result.signatures_checked} signatures re-verified"
        )
        return
    if result.step is not None:
        fail(f"step execution {result.step} does not match the audit trail: {result.reason}", ExitCode.INVALID)
    if result.signature is not None:
        fail(
            f"signature at seq {result.broken_seq} ({result.signature}) does not re-verify: {result.reason} "
            f"({result.signatures_checked} signatures re-verified before it); preserve the database as evidence",
            ExitCode.INVALID,
        )
    fail(
        f"audit chain broken at seq {result.broken_seq}: {result.reason} ({result.checked} events checked before it)",
        ExitCode.INVALID,
    )
