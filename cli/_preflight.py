"""``cutover preflight SYSTEM``: the checks a cutover runs before anything changes, on demand.

Registered by :func:`cli.register_commands`. It changes nothing and needs no ledger: it reads the
system's spec, runs :func:`tasks.preflight.run_preflight` (hosts and their pinned keys, programs,
secrets, databases, health URLs, the original's readiness) and prints one row per check. Exit 0
when every check passed, 1 when one failed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from cli._console import ExitCode, console, fail
from cutover.runtime import find_spec
from cutover.settings import get_settings

if TYPE_CHECKING:
    from tasks.preflight import PreflightReport

__all__ = ["preflight"]

_STYLES = {"passed": "green", "failed": "bold red", "not_checked": "yellow"}  # by Outcome value


def preflight(
    system: Annotated[str, typer.Argument(help="The system to check, e.g. hrss-social-insurance.")],
    timeout: Annotated[float, typer.Option(min=1.0, help="Seconds each check may take.")] = 20.0,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Checks run at once.")] = 16,
) -> None:
    """Check, changing nothing, that SYSTEM's cutover can run: hosts, keys, programs, secrets, databases, URLs."""
    from tasks.preflight import PreflightLimits, run_preflight  # Prefect tasks: imported only when run

    _, spec = find_spec(system)
    limits = PreflightLimits(concurrency=concurrency, timeout_s=timeout)
    report = run_preflight(spec, get_settings(), limits=limits)
    console.print(_table(report, f"preflight of {spec.system.id} ({spec.system.name})"))
    if not report.ok:
        fail(f"{report.summary()}; nothing was changed. Fix what failed before the cutover.", ExitCode.INVALID)
    console.print(f"[green]{report.summary()}[/] in {report.duration_s:.1f} s; nothing was changed")


def _table(report: PreflightReport, title: str) -> Table:
    table = Table("check", "target", "result", "detail", "time", title=title)
    for item in report.items:
        target = f"{item.target} on {item.host}" if item.host else item.target
        detail = f"{item.detail}; {item.advice}" if item.advice and not item.passed else item.detail
        result = Text(item.outcome.value.replace("_", " "), style=_STYLES[item.outcome.value])
        table.add_row(item.kind.value, Text(target), result, Text(detail), f"{item.duration_s * 1000:.0f} ms")
    return table
