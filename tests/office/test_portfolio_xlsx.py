"""The portfolio workbook, read back with openpyxl: a sheet per view and the attachment-2 table."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from openpyxl import load_workbook

from cutover.ledger import Ledger
from cutover.plan import HEADERS, TITLE
from cutover.plan_import import import_plan
from cutover.portfolio import build
from cutover.portfolio_views import attachment_rows, write_workbook
from tests.office.conftest import DEADLINE, TODAY


def test_the_workbook_has_a_sheet_per_view_with_the_portfolio_s_numbers(one_of_each: Ledger, tmp_path: Path) -> None:
    portfolio = build(one_of_each, today=DEADLINE + timedelta(days=1), deadline=DEADLINE)

    book = load_workbook(write_workbook(portfolio, attachment_rows(one_of_each, portfolio), tmp_path / "p.xlsx"))

    assert book.sheetnames == [
        "总览", "各部门", "逾期", "保留期将满", "待服务退出", "不迁移认定", "可核减运维经费", "停拨运维经费", "迁移计划表",
    ]  # fmt: skip
    summary = {row[0]: row[1] for row in book["总览"].iter_rows(min_row=3, values_only=True)}
    assert summary["合计 total"] == 11 and summary["已上云 on the cloud"] == 3
    assert summary["停止拨付运维经费 maintenance payments to stop"] == 4
    departments = list(book["各部门"].iter_rows(min_row=3, values_only=True))
    assert [row[1] for row in departments] == [6, 5, 11]
    stop = {row[1] for row in book["停拨运维经费"].iter_rows(min_row=3, values_only=True)}
    assert stop == {"each-0001", "each-0002", "each-0003", "each-0011"}
    on_cloud = {row[1] for row in book["可核减运维经费"].iter_rows(min_row=3, values_only=True)}
    assert on_cloud == {"each-0004", "each-0005", "each-0006"}
    exemptions = {row[1]: row[4] for row in book["不迁移认定"].iter_rows(min_row=3, values_only=True)}
    assert exemptions["each-0010"] == "待认定 pending" and exemptions["each-0009"] == "认定不迁移 accepted"
    plan = book["迁移计划表"]
    assert plan["A1"].value == TITLE and tuple(c.value for c in plan[2]) == HEADERS
    assert plan.max_row == 2 + 11


def test_the_attachment_2_sheet_imports_back(one_of_each: Ledger, tmp_path: Path) -> None:
    portfolio = build(one_of_each, today=TODAY, deadline=DEADLINE)
    path = write_workbook(portfolio, attachment_rows(one_of_each, portfolio), tmp_path / "p.xlsx")

    again = import_plan(one_of_each, path, actor="test")

    assert again.rows == 11 and not again.created
