"""Reading a migration plan table (attachment 2) back: the layout :mod:`cutover.plan` exports.

A table is an XLSX workbook (the sheet 迁移计划表, else the first) or a CSV file (UTF-8, with or
without BOM). The header row is found by its 系统名称 cell (a title row above it is skipped); the
columns are found by their Chinese headers, in any order. Every cell is checked and every problem
named by the row number the spreadsheet shows and the column's header; :func:`read_plan_table`
returns the rows only when there is none.
"""

from __future__ import annotations

import calendar
import csv
import re
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError

from pydantic import ValidationError

from cutover._xlsx_rows import excel_date, sheet_rows
from cutover.errors import PlanTableInvalid, TableProblem
from cutover.ledger import RoadmapStatus
from cutover.plan import (
    BASE_HEADERS,
    CONSOLIDATE_PREFIX,
    DISPOSITION_LABELS,
    HOSTING_OWN,
    HOSTING_TELECOM,
    ROADMAP_DATE_HEADERS,
    ROADMAP_STATUS_HEADERS,
    STATUS_LABELS,
)
from cutover.spec import Disposition, SystemInfo

_NUMBER, DEPARTMENT, SYSTEM, HOSTING, DISPOSITION, TARGET, CUTOVER, REASON, _STATUS = BASE_HEADERS
REQUIRED = (DEPARTMENT, SYSTEM, HOSTING, DISPOSITION, CUTOVER)
_TEST, _SIGNOFF, _RETENTION, _DECOMMISSION = ROADMAP_DATE_HEADERS
_DATE_FIELDS = dict(
    zip(ROADMAP_DATE_HEADERS, ("test_on", "signoff_on", "retention_ends_on", "decommission_on"), strict=True)
)
_STATUS_FIELDS = dict(
    zip(ROADMAP_STATUS_HEADERS, ("network_move", "code_optimisation", "database_update", "os_upgrade"), strict=True)
)
_SYSTEM_CELL = re.compile(r"^(?P<name>.+?)\s*[（(]\s*(?P<id>[a-z0-9][a-z0-9._-]{0,63})\s*[）)]$")
_TELECOM_CELL = re.compile(rf"^{HOSTING_TELECOM}\s*[（(]\s*(?P<operator>[^）)]+?)\s*[）)]$")
_DISPOSITIONS = {label: d for d, label in DISPOSITION_LABELS.items()} | {d.value: d for d in Disposition}
_STATUSES = {label: s for s, label in STATUS_LABELS.items()} | {s.value: s for s in RoadmapStatus}
_RETENTION_MONTHS = 3
_HEADER_SEARCH_ROWS = 5


@dataclass(frozen=True)
class TableRow:
    """One good row: the system as a spec would describe it, and its roadmap's fields."""

    row: int
    system: SystemInfo
    roadmap: Mapping[str, Any]


@dataclass
class _Cells:
    """One row's cells by header, and the problems found in them."""

    row: int
    values: Mapping[str, Any]
    problems: list[TableProblem] = field(default_factory=list)

    def text(self, header: str) -> str:
        value = self.values.get(header)
        return "" if value is None else str(value).strip()

    def problem(self, header: str, message: str) -> None:
        self.problems.append(TableProblem(self.row, header, message))


def read_plan_table(path: Path) -> list[TableRow]:
    """The rows of the plan table at ``path``; PlanTableInvalid naming every bad cell (row, column)."""
    header_row, headers, raw = _read(path)
    missing = [h for h in REQUIRED if h not in headers]
    if missing:
        raise PlanTableInvalid(
            str(path), [TableProblem(header_row, h, "the header row has no such column") for h in missing]
        )
    rows: list[TableRow] = []
    problems: list[TableProblem] = []
    seen: dict[str, int] = {}
    for number, values in raw:
        cells = _Cells(number, dict(zip(headers, values, strict=False)))
        parsed = _parse(cells)
        if parsed is not None and parsed.system.id in seen:
            cells.problem(SYSTEM, f"system id {parsed.system.id!r} is also on row {seen[parsed.system.id]}")
        elif parsed is not None:
            seen[parsed.system.id] = number
            rows.append(parsed)
        problems += cells.problems
    if problems:
        raise PlanTableInvalid(str(path), problems)
    return rows


def _read(path: Path) -> tuple[int, list[str], list[tuple[int, Sequence[Any]]]]:
    """(header row number, headers, [(row number, cells)]) of the table; blank rows skipped."""
    suffix = path.suffix.lower()
    if suffix not in (".xlsx", ".csv"):
        raise PlanTableInvalid(str(path), [TableProblem(0, "—", "not a plan table: give an .xlsx or .csv file")])
    if not path.is_file():
        raise PlanTableInvalid(str(path), [TableProblem(0, "—", "no such file")])
    lines = list(_xlsx_rows(path) if suffix == ".xlsx" else _csv_rows(path))
    for index, (number, cells) in enumerate(lines[:_HEADER_SEARCH_ROWS]):
        headers = [("" if c is None else str(c).strip()) for c in cells]
        if SYSTEM in headers:
            body = [(n, c) for n, c in lines[index + 1 :] if any(v not in (None, "") for v in c)]
            return number, headers, body
    raise PlanTableInvalid(str(path), [TableProblem(1, SYSTEM, "no header row with 系统名称 in the first rows")])


def _xlsx_rows(path: Path) -> Iterator[tuple[int, Sequence[Any]]]:
    try:
        yield from sheet_rows(path, prefer="迁移计划表")
    except (zipfile.BadZipFile, KeyError, IndexError, ParseError) as exc:
        raise PlanTableInvalid(str(path), [TableProblem(0, "—", f"not a readable XLSX workbook ({exc})")]) from exc


def _csv_rows(path: Path) -> Iterator[tuple[int, Sequence[Any]]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        yield from enumerate(csv.reader(handle), 1)


def _parse(cells: _Cells) -> TableRow | None:
    """The row as a TableRow, or None with its problems recorded on ``cells``."""
    department = cells.text(DEPARTMENT)
    if not department:
        cells.problem(DEPARTMENT, "is empty: name the owning department")
    identity = _system(cells)
    hosting = _hosting(cells)
    disposition = _disposition(cells)
    cutover = _date(cells, CUTOVER, required=True)
    roadmap: dict[str, Any] = {name: _date(cells, header) for header, name in _DATE_FIELDS.items()}
    roadmap |= {name: _status(cells, header) for header, name in _STATUS_FIELDS.items()}
    _check_order(cells, cutover, roadmap)
    extra = _disposition_fields(cells, disposition)
    if cells.problems or not (department and identity and hosting and disposition and cutover):
        return None
    name, system_id = identity
    network = "business-private" if roadmap["network_move"] is not RoadmapStatus.NOT_NEEDED else "e-gov-extranet"
    document = {
        "id": system_id,
        "name": name,
        "department": department,
        "classification": "non-classified",
        "disposition": disposition.value,
        "hosting": hosting,
        "network": {"from": network, "to": "e-gov-extranet"},
        "adaptation": [
            n.replace("_", "-")
            for n in ("code_optimisation", "database_update", "os_upgrade")
            if roadmap[n] is not RoadmapStatus.NOT_NEEDED
        ],
        "planned_date": cutover.isoformat(),
        **extra,
    }
    try:
        system = SystemInfo.model_validate(document)
    except ValidationError as exc:
        for error in exc.errors():
            cells.problem(_column_of(error["loc"]), error["msg"])
        return None
    roadmap |= {
        "cutover_on": cutover,
        "operator": hosting.get("operator"),
        "exemption_reason": extra.get("reason") if disposition is Disposition.EXEMPT else None,
    }
    return TableRow(cells.row, system, roadmap)


def _system(cells: _Cells) -> tuple[str, str] | None:
    text = cells.text(SYSTEM)
    found = _SYSTEM_CELL.match(text)
    if found is None:
        cells.problem(
            SYSTEM,
            f"{text!r} does not name the system and its id: write 名称（id）, e.g. 社会保险信息系统（hrss-social-insurance）",
        )
        return None
    return found["name"], found["id"]


def _hosting(cells: _Cells) -> dict[str, str] | None:
    text = cells.text(HOSTING)
    if text == HOSTING_OWN:
        return {"current": "own-machine-room"}
    found = _TELECOM_CELL.match(text)
    if found is not None:
        return {"current": "telecom-operator", "operator": found["operator"]}
    if text.startswith(HOSTING_TELECOM):
        cells.problem(
            HOSTING,
            f"{text!r} names no operator: write {HOSTING_TELECOM}（运营商）, e.g. {HOSTING_TELECOM}（中国电信）",
        )
    else:
        cells.problem(HOSTING, f"{text!r} is not {HOSTING_OWN} nor {HOSTING_TELECOM}（运营商）")
    return None


def _disposition(cells: _Cells) -> Disposition | None:
    text = cells.text(DISPOSITION)
    found = _DISPOSITIONS.get(text)
    if found is None:
        allowed = "、".join(DISPOSITION_LABELS.values())
        cells.problem(DISPOSITION, f"{text!r} is not one of: {allowed}")
    return found


def _disposition_fields(cells: _Cells, disposition: Disposition | None) -> dict[str, str]:
    """The reason (any disposition but migrate) and the system consolidated into."""
    extra: dict[str, str] = {}
    if disposition is None or disposition is Disposition.MIGRATE:
        return extra
    reason = cells.text(REASON)
    if not reason:
        cells.problem(REASON, f"is empty: a system to {disposition.value} says why (for the expert panel)")
    extra["reason"] = reason
    if disposition is Disposition.CONSOLIDATE:
        target = cells.text(TARGET)
        into = target.removeprefix(CONSOLIDATE_PREFIX.strip()).strip()
        if not target.startswith(CONSOLIDATE_PREFIX.strip()) or not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", into):
            cells.problem(
                TARGET,
                f"{target!r} does not name the system it is consolidated into: write {CONSOLIDATE_PREFIX}<system id>",
            )
        extra["consolidate_into"] = into
    return extra


def _date(cells: _Cells, header: str, *, required: bool = False) -> date | None:
    value = cells.values.get(header)
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and 1 <= value < 2958466:
        return excel_date(value)  # a date cell of the workbook: an Excel serial day number
    text = cells.text(header)
    if not text:
        if required:
            cells.problem(header, "is empty: give the planned date as YYYY-MM-DD")
        return None
    try:
        return date.fromisoformat(text.replace("/", "-"))
    except ValueError:
        cells.problem(header, f"{text!r} is not a date: write YYYY-MM-DD")
        return None


def _status(cells: _Cells, header: str) -> RoadmapStatus:
    text = cells.text(header)
    if not text:
        return RoadmapStatus.NOT_NEEDED
    found = _STATUSES.get(text)
    if found is None:
        cells.problem(header, f"{text!r} is not one of: {'、'.join(STATUS_LABELS.values())}")
        return RoadmapStatus.NOT_NEEDED
    return found


def _check_order(cells: _Cells, cutover: date | None, roadmap: Mapping[str, Any]) -> None:
    """Test, sign-off, cutover, end of retention and decommission come in that order; retention ≥ 3 months."""
    sequence = [(_TEST, roadmap["test_on"]), (_SIGNOFF, roadmap["signoff_on"]), (CUTOVER, cutover)]
    sequence += [(_RETENTION, roadmap["retention_ends_on"]), (_DECOMMISSION, roadmap["decommission_on"])]
    given = [(header, value) for header, value in sequence if value is not None]
    for (before, earlier), (header, later) in pairwise(given):
        if later < earlier:
            cells.problem(header, f"{later.isoformat()} is before {before} ({earlier.isoformat()})")
    ends = roadmap["retention_ends_on"]
    if cutover is not None and ends is not None and ends < add_months(cutover, _RETENTION_MONTHS):
        cells.problem(
            _RETENTION,
            f"{ends.isoformat()} keeps the original less than 3 months after the cutover (原系统至少保留3个月以上)",
        )


def add_months(day: date, months: int) -> date:
    """``day`` ``months`` months later (the last day of the month when it has fewer days)."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def _column_of(location: tuple[int | str, ...]) -> str:
    head = str(location[0]) if location else ""
    return {"name": SYSTEM, "id": SYSTEM, "department": DEPARTMENT, "hosting": HOSTING, "reason": REASON}.get(
        head, TARGET if head == "consolidate_into" else SYSTEM
    )
