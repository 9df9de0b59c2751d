"""The migration plan table, the notice's attachment 2: 省直部门信息系统迁移计划表.

Rows come from the specs (and each system's lifecycle state from the ledger); the table is
exported as CSV (UTF-8 with BOM, so spreadsheet programs show the Chinese) and XLSX.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from cutover.spec import Disposition, HostingKind, Spec

TITLE = "省直部门信息系统迁移计划表"
HEADERS = ("序号", "部门", "系统名称", "当前托管方式", "处置方式", "迁移目标", "计划迁移时间", "不迁移原因", "状态")

_DISPOSITION = {
    Disposition.MIGRATE: "迁移上云",
    Disposition.CONSOLIDATE: "整合归并",
    Disposition.RETIRE: "淘汰",
    Disposition.EXEMPT: "不迁移（报专家认定）",
}
STATE_LABELS = {
    "planned": "计划中",
    "tested": "已测试",
    "report_ready": "试运行报告待签",
    "signed": "双方已签认",
    "rejected": "签认被拒",
    "cutting_over": "割接中",
    "retained": "已割接（原系统保留期）",
    "rolled_back": "已回退",
    "decommissioned": "已服务退出",
    "compensated": "割接已撤销",
    "rollback_incomplete": "回退未完成（需人工处理）",
}


@dataclass(frozen=True)
class PlanRow:
    number: int
    department: str
    system: str
    hosting: str
    disposition: str
    target: str
    planned_date: str
    reason: str
    status: str


def plan_rows(specs: Sequence[Spec], states: Mapping[str, str]) -> list[PlanRow]:
    """One row per system, ordered by department then system id."""
    ordered = sorted(specs, key=lambda s: (s.system.department, s.system.id))
    return [_row(n, spec, states.get(spec.system.id, "planned")) for n, spec in enumerate(ordered, 1)]


def _row(number: int, spec: Spec, state: str) -> PlanRow:
    system = spec.system
    return PlanRow(
        number=number,
        department=system.department,
        system=f"{system.name}（{system.id}）",
        hosting=_hosting(spec),
        disposition=_DISPOSITION[system.disposition],
        target=_target(spec),
        planned_date=system.planned_date.isoformat(),
        reason="" if system.disposition is Disposition.MIGRATE else (system.reason or ""),
        status=STATE_LABELS.get(state, state),
    )


def _hosting(spec: Spec) -> str:
    hosting = spec.system.hosting
    if hosting.current is HostingKind.TELECOM_OPERATOR:
        return f"托管在电信运营商机房（{hosting.operator}）"
    return "自有机房"


def _target(spec: Spec) -> str:
    system = spec.system
    if system.disposition is Disposition.MIGRATE:
        return "省级政务云（电子政务外网）"
    if system.disposition is Disposition.CONSOLIDATE:
        return f"并入 {system.consolidate_into}"
    return "—"


def write_csv(rows: Sequence[PlanRow], path: Path) -> Path:
    """Write the table as CSV (UTF-8 with BOM) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADERS)
        writer.writerows(astuple(row) for row in rows)
    return path


def write_xlsx(rows: Sequence[PlanRow], path: Path) -> Path:
    """Write the table as an XLSX workbook with a title row and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "迁移计划表"
    sheet.append([TITLE])
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(HEADERS))
    sheet["A1"].font = Font(bold=True, size=14)
    sheet["A1"].alignment = Alignment(horizontal="center")
    sheet.append(list(HEADERS))
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(list(astuple(row)))
    for index, width in enumerate((6, 24, 30, 28, 14, 24, 14, 40, 18), 1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A3"
    book.save(path)
    return path


assert len(HEADERS) == len(fields(PlanRow))
