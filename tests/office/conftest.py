"""The office's fixtures: a portfolio with one system at each stage."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from cutover.ledger import Ledger
from cutover.plan_import import import_plan
from demo.portfolio import STAGE_WEIGHTS, generate, place, write_table

TODAY = date(2019, 6, 1)
DEADLINE = date(2019, 12, 31)


@pytest.fixture
def one_of_each(isolated_ledger: Ledger, tmp_path: Path) -> Ledger:
    """One system at each generated stage (eleven, two departments), imported from a plan table and placed."""
    made = generate(len(STAGE_WEIGHTS), 2, today=TODAY, prefix="each")
    import_plan(isolated_ledger, write_table(made, tmp_path / "plan.xlsx"), actor="test")
    place(isolated_ledger, made, today=TODAY)
    return isolated_ledger
