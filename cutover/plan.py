"""The migration plan table, the notice's attachment 2: 省直部门信息系统迁移计划表.

Rows come from the specs (or the plan entries in the ledger), each system's lifecycle state and
its roadmap (the timetable and roadmap clause 七 asks for: planned dates, the network move, each
adaptation item); the table is exported as CSV (UTF-8 with BOM, so spreadsheet programs show the
Chinese) and XLSX, and ``cutover plan import`` reads the same layout back (:mod:`cutover._plan_table`).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from cutover.ledger import Roadmap, RoadmapStatus
from cutover.spec import Adaptation, Disposition, HostingKind, Spec, SystemInfo

if TYPE_CHECKING:  # openpyxl is imported where a workbook is written: commands that write none start faster
    from openpyxl.worksheet.worksheet import Worksheet

TITLE = "省直部门信息系统迁移计划表"
BASE_HEADERS = (
    "序号",
    "部门",
    "系统名称",
    "当前托管方式",
    "处置方式",
    "迁移目标",
    "计划迁移时间",
    "不迁移原因",
    "状态",
)
#: The roadmap's columns, after the base ones: planned dates (计划迁移时间 is the cutover date), then statuses.
ROADMAP_DATE_HEADERS = ("计划测试时间", "计划签认时间", "保留期结束时间", "计划服务退出时间")
ROADMAP_STATUS_HEADERS = ("网络迁移（业务专网→电子政务外网）", "代码优化", "数据库更新", "操作系统升级")
HEADERS = BASE_HEADERS + ROADMAP_DATE_HEADERS + ROADMAP_STATUS_HEADERS
STATUS_LABELS = {
    RoadmapStatus.NOT_NEEDED: "不需要",
    RoadmapStatus.NOT_STARTED: "未开始",
    RoadmapStatus.IN_PROGRESS: "进行中",
    RoadmapStatus.DONE: "已完成",
}
HOSTING_OWN = "自有机房"
HOSTING_TELECOM = "托管在电信运营商机房"
TARGET_CLOUD = "省级政务云（电子政务外网）"
CONSOLIDATE_PREFIX = "并入 "

_DISPOSITION = {
    Disposition.MIGRATE: "迁移上云",
    Disposition.CONSOLIDATE: "整合归并",
    Disposition.RETIRE: "淘汰",
    Disposition.EXEMPT: "不迁移（报专家认定）",
}
DISPOSITION_LABELS = _DISPOSITION
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
    test_date: str
    signoff_date: str
    retention_end_date: str
    decommission_date: str
    network_move: str
    code_optimisation: str
    database_update: str
    os_upgrade: str


def plan_rows(
    specs: Sequence[Spec], states: Mapping[str, str], roadmaps: Mapping[str, Roadmap] | None = None
) -> list[PlanRow]:
    """One row per system, ordered by department then system id."""
    return system_rows([spec.system for spec in specs], states, roadmaps or {})


def system_rows(
    systems: Sequence[SystemInfo], states: Mapping[str, str], roadmaps: Mapping[str, Roadmap]
) -> list[PlanRow]:
    """One row per system (from a spec or a plan entry), ordered by department then system id."""
    ordered = sorted(systems, key=lambda s: (s.department, s.id))
    return [
        _row(n, system, states.get(system.id, "planned"), roadmaps.get(system.id))
        for n, system in enumerate(ordered, 1)
    ]


def _row(number: int, system: SystemInfo, state: str, roadmap: Roadmap | None) -> PlanRow:
    return PlanRow(
        number=number,
        department=system.department,
        system=f"{system.name}（{system.id}）",
        hosting=_hosting(system),
        disposition=_DISPOSITION[system.disposition],
        target=_target(system),
        planned_date=system.planned_date.isoformat(),
        reason="" if system.disposition is Disposition.MIGRATE else (system.reason or ""),
        status=STATE_LABELS.get(state, state),
        **_roadmap_cells(system, roadmap),
    )


def _roadmap_cells(system: SystemInfo, roadmap: Roadmap | None) -> dict[str, str]:
    """The roadmap's columns: from the ledger's roadmap, else what the spec says (work not started)."""
    if roadmap is not None:
        dates = (roadmap.test_on, roadmap.signoff_on, roadmap.retention_ends_on, roadmap.decommission_on)
        statuses = (roadmap.network_move, roadmap.code_optimisation, roadmap.database_update, roadmap.os_upgrade)
    else:
        dates = (None, None, None, None)
        statuses = spec_statuses(system)
    names = ("test_date", "signoff_date", "retention_end_date", "decommission_date")
    cells = {name: value.isoformat() if value else "" for name, value in zip(names, dates, strict=True)}
    names = ("network_move", "code_optimisation", "database_update", "os_upgrade")
    cells.update({name: STATUS_LABELS[status] for name, status in zip(names, statuses, strict=True)})
    return cells


def spec_statuses(system: SystemInfo) -> tuple[RoadmapStatus, RoadmapStatus, RoadmapStatus, RoadmapStatus]:
    """Network move, code optimisation, database update, OS upgrade as a spec declares them (none started)."""

    def needed(flag: bool) -> RoadmapStatus:
        return RoadmapStatus.NOT_STARTED if flag else RoadmapStatus.NOT_NEEDED

    work = set(system.adaptation)
    return (
        needed(system.network.from_ == "business-private"),
        needed(Adaptation.CODE_OPTIMISATION in work),
        needed(Adaptation.DATABASE_UPDATE in work),
        needed(Adaptation.OS_UPGRADE in work),
    )


def _hosting(system: SystemInfo) -> str:
    hosting = system.hosting
    if hosting.current is HostingKind.TELECOM_OPERATOR:
        return f"{HOSTING_TELECOM}（{hosting.operator}）"
    return HOSTING_OWN


def _target(system: SystemInfo) -> str:
    if system.disposition is Disposition.MIGRATE:
        return TARGET_CLOUD
    if system.disposition is Disposition.CONSOLIDATE:
        return f"{CONSOLIDATE_PREFIX}{system.consolidate_into}"
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
    from openpyxl import Workbook

    path.parent.mkdir(parents=True, exist_ok=True)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    fill_sheet(sheet, rows)
    book.save(path)
    return path


def fill_sheet(sheet: Worksheet, rows: Sequence[PlanRow]) -> None:
    """Write the table (title row, headers, rows) on ``sheet``, named 迁移计划表."""
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

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
    for index, width in enumerate((6, 24, 30, 28, 14, 24, 14, 40, 18, *([14] * 4), 22, 12, 12, 12), 1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A3"


assert len(HEADERS) == len(fields(PlanRow))
