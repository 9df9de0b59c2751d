"""Plan tables (attachment 2) for the office's tests: rows as the export writes them, unique ids."""

from __future__ import annotations

import csv
import uuid
from pathlib import Path
from typing import Any

from openpyxl import Workbook

from cutover.plan import HEADERS, TITLE


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def row(system_id: str, **cells: Any) -> dict[str, Any]:
    """A good row of a system to migrate; ``cells`` (by Chinese header) replace its cells."""
    base: dict[str, Any] = {
        "序号": 1,
        "部门": "省人力资源和社会保障厅",
        "系统名称": f"社会保险信息系统（{system_id}）",
        "当前托管方式": "托管在电信运营商机房（中国电信）",
        "处置方式": "迁移上云",
        "迁移目标": "省级政务云（电子政务外网）",
        "计划迁移时间": "2019-06-30",
        "不迁移原因": "",
        "状态": "计划中",
        "计划测试时间": "2019-05-10",
        "计划签认时间": "2019-06-01",
        "保留期结束时间": "2019-10-15",
        "计划服务退出时间": "2019-11-01",
        "网络迁移（业务专网→电子政务外网）": "进行中",
        "代码优化": "已完成",
        "数据库更新": "未开始",
        "操作系统升级": "不需要",
    }
    return base | cells


def write_xlsx(path: Path, rows: list[dict[str, Any]], headers: tuple[str, ...] = HEADERS) -> Path:
    """The table as `cutover plan` writes it: a title row, the headers, the rows."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "迁移计划表"
    sheet.append([TITLE])
    sheet.append(list(headers))
    for cells in rows:
        sheet.append([cells.get(h) for h in headers])
    book.save(path)
    return path


def write_csv(path: Path, rows: list[dict[str, Any]], headers: tuple[str, ...] = HEADERS) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(headers)
        writer.writerows([[cells.get(h, "") for h in headers] for cells in rows])
    return path
