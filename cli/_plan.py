"""``cutover plan``: export the migration plan table (attachment 2), or import one.

``cutover plan [PATH ...] [--out DIR]`` registers the systems of the specs and exports the table;
``cutover plan import FILE.xlsx|csv`` registers a department's systems from its table, before any
spec is written (:mod:`cutover.plan_import`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from cli._console import ExitCode, console, err_console, fail
from cli._ledger import actor
from cli.app import SpecPaths, _paths
from cutover.plan import TITLE, plan_rows, write_csv, write_xlsx
from cutover.plan_import import import_plan
from cutover.runtime import open_ledger, register
from cutover.spec_loader import load_many


class _PlanGroup(TyperGroup):
    """A command with one subcommand: ``plan [PATH ...]`` exports, ``plan import FILE`` imports."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """A leading subcommand name goes to the subcommand; anything else is the export's."""
        if args[:1] and args[0] in self.commands:
            super().parse_args(ctx, [])
            ctx._protected_args, ctx.args = args[:1], args[1:]
            return list(ctx.args)
        return super().parse_args(ctx, args)


plan_app = typer.Typer(
    cls=_PlanGroup,
    invoke_without_command=True,
    add_completion=False,
    context_settings={"allow_interspersed_args": True},
)


@plan_app.callback()
def plan(
    ctx: typer.Context,
    paths: SpecPaths = None,
    out: Annotated[Path, typer.Option(help="Directory for 迁移计划表.csv and .xlsx.")] = Path("plan"),
) -> None:
    """Register the systems and export the migration plan table (attachment 2) as CSV and XLSX.

    `cutover plan import FILE` registers a department's systems from its plan table instead.
    """
    if ctx.invoked_subcommand is not None:
        return
    specs, errors = load_many(_paths(paths))
    for error in errors:
        for problem in error.problems:
            err_console.print(f"[red]invalid[/] {problem}", soft_wrap=True)
    ledger = open_ledger()
    states = {spec.system.id: register(ledger, spec, actor=actor()).value for spec in specs}
    roadmaps = {r.system_id: r for r in ledger.list_roadmaps()}
    rows = plan_rows(specs, states, roadmaps)
    csv_path = write_csv(rows, out / f"{TITLE}.csv")
    xlsx_path = write_xlsx(rows, out / f"{TITLE}.xlsx")
    table = Table("序号", "部门", "系统名称", "处置方式", "计划迁移时间", "状态", title=TITLE)
    for row in rows:
        table.add_row(str(row.number), row.department, row.system, row.disposition, row.planned_date, row.status)
    console.print(table)
    console.print(f"wrote {csv_path} and {xlsx_path}")
    if errors:
        fail(f"{len(errors)} spec file(s) are invalid and are not in the plan", ExitCode.INVALID)


@plan_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="The plan table: XLSX or CSV, in the layout `cutover plan` exports.")],
) -> None:
    """Register a department's systems and roadmaps from its plan table (attachment 2); all rows or none.

    A bad row is refused with its row number and column, and nothing is written. A system whose
    spec is registered keeps what its spec says; only the rest of its roadmap is updated.
    """
    result = import_plan(open_ledger(), file, actor=actor())
    console.print(
        f"{file}: {result.rows} systems — {len(result.created)} registered, {len(result.updated)} updated, "
        f"{len(result.unchanged)} unchanged, {len(result.spec_governed)} governed by their spec (roadmap updated)",
        soft_wrap=True,
    )
