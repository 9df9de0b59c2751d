"""CLI commands that read and write the ledger: plan, status, audit verify."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli._console import ExitCode, console, err_console, fail
from cli.app import SpecPaths, _paths, app
from cutover import audit
from cutover.errors import ConfigurationError, LedgerError
from cutover.ledger import Ledger
from cutover.plan import STATE_LABELS, TITLE, plan_rows, write_csv, write_xlsx
from cutover.runtime import open_ledger, register
from cutover.spec_loader import load_many

audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


def actor() -> str:
    """Who runs the command, for the audit trail."""
    return f"cli:{getpass.getuser()}"


def _ledger() -> Ledger:
    try:
        return open_ledger()
    except (ConfigurationError, LedgerError) as exc:
        fail(str(exc), ExitCode.CONFIG)


@app.command()
def plan(
    paths: SpecPaths = None,
    out: Annotated[Path, typer.Option(help="Directory for 迁移计划表.csv and .xlsx.")] = Path("plan"),
) -> None:
    """Register the systems and export the migration plan table (attachment 2) as CSV and XLSX."""
    specs, errors = load_many(_paths(paths))
    for error in errors:
        for problem in error.problems:
            err_console.print(f"[red]invalid[/] {problem}", soft_wrap=True)
    ledger = _ledger()
    states = {spec.system.id: register(ledger, spec, actor=actor()).value for spec in specs}
    rows = plan_rows(specs, states)
    csv_path = write_csv(rows, out / f"{TITLE}.csv")
    xlsx_path = write_xlsx(rows, out / f"{TITLE}.xlsx")
    table = Table("序号", "部门", "系统名称", "处置方式", "计划迁移时间", "状态", title=TITLE)
    for row in rows:
        table.add_row(str(row.number), row.department, row.system, row.disposition, row.planned_date, row.status)
    console.print(table)
    console.print(f"wrote {csv_path} and {xlsx_path}")
    if errors:
        fail(f"{len(errors)} spec file(s) are invalid and are not in the plan", ExitCode.INVALID)


@app.command()
def status() -> None:
    """Each registered system's lifecycle state and retention window end date."""
    ledger = _ledger()
    systems = ledger.list_systems()
    if not systems:
        console.print("no systems registered yet; run `cutover plan` first")
        return
    table = Table("system", "name", "department", "state", "retention ends", title="govcloud-cutover status")
    for system in systems:
        window = ledger.current_retention_window(system.id)
        ends = window.ends_at.date().isoformat() if window is not None else "—"
        label = f"{system.state.value} {STATE_LABELS.get(system.state.value, '')}"
        table.add_row(system.id, system.name, system.department, label, ends)
    console.print(table)


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the audit chain and name the first broken link; exit 1 if it is broken."""
    result = audit.verify(_ledger())
    if result.ok:
        console.print(f"[green]audit chain intact[/]: {result.checked} events verified")
        return
    fail(
        f"audit chain broken at seq {result.broken_seq}: {result.reason} ({result.checked} events checked before it)",
        ExitCode.INVALID,
    )
