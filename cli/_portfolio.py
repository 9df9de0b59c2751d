"""``cutover portfolio``: the leading-group office's view of every department's systems (clauses 一, 六, 七)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli._console import ExitCode, console, fail
from cutover import portfolio as portfolio_
from cutover.portfolio_views import View, attachment_rows, scope, views, write_workbook
from cutover.runtime import open_ledger
from cutover.settings import get_settings

_SHOWN = 20  # rows of each list in the terminal unless --all
_ALWAYS_WHOLE = ("summary", "departments")


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not a date: write YYYY-MM-DD", ExitCode.USAGE)


def portfolio(
    department: Annotated[str | None, typer.Option(help="One department only (its name as in the plan).")] = None,
    xlsx: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Also write the workbook: a sheet per view and attachment 2.")
    ] = None,
    deadline: Annotated[
        str | None,
        typer.Option(metavar="YYYY-MM-DD", help="The programme deadline (default: CUTOVER_PROGRAMME_DEADLINE)."),
    ] = None,
    today: Annotated[
        str | None, typer.Option(metavar="YYYY-MM-DD", help="The day to look from (default: today).")
    ] = None,
    all_rows: Annotated[
        bool, typer.Option("--all", help=f"Show every row of each list (else the first {_SHOWN}).")
    ] = False,
) -> None:
    """Every department's systems by stage, what is overdue, what is due, the exemptions and the finance lists."""
    settings = get_settings()
    ledger = open_ledger(settings)
    built = portfolio_.build(
        ledger,
        today=_day(today, "--today") or date.today(),
        deadline=_day(deadline, "--deadline") or settings.programme_deadline,
        soon_days=settings.portfolio_soon_days,
        department=department,
    )
    if department is not None and not built.entries:
        fail(
            f"no system of department {department!r} is in the ledger; `cutover portfolio` lists the departments",
            ExitCode.INVALID,
        )
    console.print(f"[bold]迁移进度 portfolio[/]: {scope(built)}", soft_wrap=True)
    for view in views(built):
        _print(view, all_rows or view.key in _ALWAYS_WHOLE)
    if xlsx is not None:
        write_workbook(built, attachment_rows(ledger, built), xlsx)
        console.print(f"wrote {xlsx}")


def _print(view: View, whole: bool) -> None:
    headers = [h.split(" ")[0] for h in view.headers] if view.key == "departments" else view.headers
    table = Table(*headers, title=f"{view.title} ({len(view.rows)})")
    table.columns[0].no_wrap = True
    shown = view.rows if whole else view.rows[:_SHOWN]
    for row in shown:
        table.add_row(*(str(cell) for cell in row))
    console.print(table)
    if len(shown) < len(view.rows):
        console.print(f"… {len(view.rows) - len(shown)} more (--all shows them, --xlsx writes them)")
    if view.note:
        console.print(view.note)
