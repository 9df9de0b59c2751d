"""Benchmark: the office's portfolio of 2,000 systems in 60 departments, every stage.

Prints medians of 5: `cutover portfolio` and `cutover portfolio --xlsx` as whole commands beside
the baseline `cutover --help` (the same process start and imports, doing nothing), the same work in
process (build + terminal tables; the workbook), and `cutover plan import` of the 2,000-row XLSX
into a fresh ledger. Targets: portfolio ≤ 2 s, XLSX ≤ 5 s, import ≤ 5 s. The load average is
printed beside the figures (the machine is shared).
Usage: .venv/bin/python bench/portfolio.py [SYSTEMS] [DEPARTMENTS] [ROUNDS]
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cutover.ledger import Ledger
from cutover.plan_import import import_plan
from cutover.portfolio import build
from cutover.portfolio_views import attachment_rows, views, write_workbook
from demo.portfolio import generate, place, write_table

CUTOVER = str(Path(sys.executable).with_name("cutover"))


def median(rounds: int, action: Callable[[int], object]) -> float:
    times = []
    for n in range(rounds):
        started = time.perf_counter()
        action(n)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def fresh_ledger(root: Path, name: str) -> Ledger:
    ledger = Ledger(f"sqlite:///{root / name}.db")
    ledger.migrate()
    return ledger


def command(home: Path, *args: str) -> None:
    env = os.environ | {"CUTOVER_HOME": str(home)}
    env.pop("CUTOVER_DATABASE_URL", None)
    subprocess.run([CUTOVER, *args], env=env, check=True, stdout=subprocess.DEVNULL)


def render(ledger: Ledger, today: date) -> None:
    portfolio = build(ledger, today=today, deadline=date(2019, 12, 31))
    console = Console(file=io.StringIO(), width=160)
    for view in views(portfolio):
        table = Table(*view.headers)
        for row in view.rows[:20]:
            table.add_row(*(str(c) for c in row))
        console.print(table)


def main(systems: int, departments: int, rounds: int) -> None:
    today = date.today()
    root = Path(tempfile.mkdtemp(prefix="bench-portfolio-"))
    try:
        made = generate(systems, departments, today=today)
        table = write_table(made, root / "plan.xlsx")
        print(
            f"{systems} systems in {departments} departments; plan table {table.stat().st_size // 1024} KiB; {load()}"
        )
        ledgers = [fresh_ledger(root, f"import-{n}") for n in range(rounds)]
        imported = median(rounds, lambda n: import_plan(ledgers[n], table, actor="bench"))
        print(f"plan import of the {systems}-row XLSX: {imported:.2f} s (target ≤ 5 s); {load()}")
        home = root / "home"
        home.mkdir()
        ledger = fresh_ledger(home, "ledger")
        import_plan(ledger, table, actor="bench")
        place(ledger, made, today=today)
        in_process = median(rounds, lambda _: render(ledger, today))
        portfolio = build(ledger, today=today, deadline=date(2019, 12, 31))
        rows = attachment_rows(ledger, portfolio)
        workbook = median(rounds, lambda n: write_workbook(portfolio, rows, root / f"p{n}.xlsx"))
        baseline = median(rounds, lambda _: command(home, "--help"))
        whole = median(rounds, lambda _: command(home, "portfolio"))
        whole_xlsx = median(rounds, lambda n: command(home, "portfolio", "--xlsx", str(root / f"c{n}.xlsx")))
        print(
            f"portfolio in process (build + tables): {in_process:.2f} s; workbook in process: {workbook:.2f} s; {load()}"
        )
        print(
            f"`cutover portfolio`: {whole:.2f} s (target ≤ 2 s); `--xlsx`: {whole_xlsx:.2f} s (target ≤ 5 s); "
            f"baseline `cutover --help` {baseline:.2f} s (process start and imports); "
            f"the portfolio's own share {whole - baseline:.2f} s and {whole_xlsx - baseline:.2f} s; {load()}"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:4]]
    main(*(arguments + [2000, 60, 5][len(arguments) :]))
