"""The portfolio's views, each a title, headers and rows: one home for the terminal, the XLSX and the artifacts.

:func:`views` gives, in order: the summary, the departments, what is overdue, the retention
windows ending soon, the decommissions due, the exemptions, and the two finance lists (clause 六).
:func:`attachment_rows` gives the attachment-2 table of the systems in the portfolio, from the
ledger (plan entries, states, roadmaps). :func:`write_workbook` writes them all as XLSX, one sheet each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cutover.ledger import Ledger
from cutover.plan import PlanRow, fill_sheet, system_rows
from cutover.portfolio import STAGE_LABELS, Entry, Portfolio, Stage
from cutover.spec import SystemInfo

if TYPE_CHECKING:  # openpyxl is imported where the workbook is written (`cutover portfolio` starts faster)
    from openpyxl import Workbook

Cell = str | int
_SYSTEM = ("部门 department", "系统 system", "名称 name")


@dataclass(frozen=True)
class View:
    """One view: its key (artifact key, sheet order), sheet name, title, headers and rows."""

    key: str
    sheet: str
    title: str
    headers: tuple[str, ...]
    rows: list[tuple[Cell, ...]]
    note: str = ""


def views(portfolio: Portfolio) -> list[View]:
    """Every view of ``portfolio``, in the order the office reads them."""
    return [
        summary(portfolio),
        departments(portfolio),
        overdue(portfolio),
        retention_soon(portfolio),
        decommission_due(portfolio),
        exemptions(portfolio),
        on_cloud(portfolio),
        stop_payment(portfolio),
    ]


def _who(entry: Entry) -> tuple[Cell, ...]:
    return entry.system.department, entry.system.id, entry.system.name


def _day(value: object) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else ""


def scope(portfolio: Portfolio) -> str:
    """Which systems and which day, e.g. ``全部 all departments, 2026-12-07 (deadline 2019-12-31)``."""
    who = portfolio.department or "全部部门 all departments"
    return f"{who}, {portfolio.today.isoformat()} (全省上云期限 programme deadline {portfolio.deadline.isoformat()})"


def summary(portfolio: Portfolio) -> View:
    """Counts by stage, and what needs the office's attention."""
    tally = portfolio.overall
    rows: list[tuple[Cell, ...]] = [(STAGE_LABELS[stage], tally.stages[stage]) for stage in Stage]
    rows += [
        ("合计 total", tally.total),
        ("已上云 on the cloud", tally.on_cloud),
        ("已完成 settled (on the cloud, consolidated, retired, exempt)", tally.settled),
        ("逾期 overdue", len(portfolio.overdue)),
        (
            f"保留期 {portfolio.soon_days} 天内到期 retention ending within {portfolio.soon_days} days",
            len(portfolio.retention_soon),
        ),
        ("待服务退出 decommissions due", len(portfolio.decommission_due)),
        ("待专家认定 exemptions pending", tally.stages[Stage.EXEMPTION_PENDING]),
        ("可核减机房和硬件运维经费 maintenance to cut", len(portfolio.on_cloud)),
        ("停止拨付运维经费 maintenance payments to stop", len(portfolio.stop_payment)),
    ]
    return View("summary", "总览", f"迁移进度总览 Portfolio — {scope(portfolio)}", ("项目 item", "数量 count"), rows)


def departments(portfolio: Portfolio) -> View:
    """Per department: counts by stage, the settled share, how many are overdue."""
    headers = ("部门 department", "合计 total", *(STAGE_LABELS[s] for s in Stage), "进度 progress", "逾期 overdue")
    rows: list[tuple[Cell, ...]] = [
        (t.department, t.total, *(t.stages[s] for s in Stage), f"{t.progress:.0%}", t.overdue)
        for t in [*portfolio.departments, portfolio.overall]
    ]
    return View("departments", "各部门", "各部门进度 Departments", headers, rows)


def overdue(portfolio: Portfolio) -> View:
    """Systems behind their roadmap or the programme deadline, the longest overdue first."""
    headers = (*_SYSTEM, "阶段 stage", "逾期事项 missed", "应完成于 due", "逾期天数 days late")
    rows = [
        (*_who(o.entry), STAGE_LABELS[o.entry.stage], "; ".join(o.missed), o.since.isoformat(), o.days)
        for o in portfolio.overdue
    ]
    return View("overdue", "逾期", "逾期 Overdue (against the roadmap or the programme deadline)", headers, rows)


def retention_soon(portfolio: Portfolio) -> View:
    """Retention windows ending within the next days: decommission (or keep) decisions ahead."""
    rows = [(*_who(e), _day(e.retention_ends)) for e in portfolio.retention_soon]
    title = f"保留期将满 Retention windows ending within {portfolio.soon_days} days"
    return View("retention", "保留期将满", title, (*_SYSTEM, "保留期结束 retention ends"), rows)


def decommission_due(portfolio: Portfolio) -> View:
    """Cut over, the retention window over, not decommissioned yet."""
    rows = [(*_who(e), _day(e.retention_ends)) for e in portfolio.decommission_due]
    title = "待服务退出 Decommissions due (retention over)"
    return View("decommission", "待服务退出", title, (*_SYSTEM, "保留期结束 retention ended"), rows)


def exemptions(portfolio: Portfolio) -> View:
    """Systems declared unable to migrate: the reason and the panel's ruling (or pending)."""
    headers = (*_SYSTEM, "原因 reason", "认定 ruling", "日期 date", "专家 panel", "文号 document")
    rows = []
    for e in portfolio.exemptions:
        reason = (e.roadmap.exemption_reason if e.roadmap else None) or (e.ruling.reason if e.ruling else "")
        if e.ruling is None:
            rows.append((*_who(e), reason, "待认定 pending", "", "", ""))
            continue
        ruling = "认定不迁移 accepted" if e.ruling.decision.value == "accepted" else "不予认定，纳入迁移 refused"
        rows.append(
            (*_who(e), reason, ruling, e.ruling.ruled_on.isoformat(), "、".join(e.ruling.panel), e.ruling.document)
        )
    return View("exemptions", "不迁移认定", "不迁移认定 Exemptions ruled by experts", headers, rows)


def on_cloud(portfolio: Portfolio) -> View:
    """Finance list 1: on the cloud; the original's machine room and hardware maintenance can be cut."""
    headers = (*_SYSTEM, "阶段 stage", "割接日期 cut over", "原系统保留至 original kept until")
    rows = [
        (
            *_who(e),
            STAGE_LABELS[e.stage],
            _day(e.window.opened_at.date() if e.window else (e.roadmap.cutover_on if e.roadmap else None)),
            _day(e.retention_ends) if e.stage is not Stage.DECOMMISSIONED else "已服务退出",
        )
        for e in portfolio.on_cloud
    ]
    title = "已上云：可核减机房、网络和硬件运维经费 On the cloud: machine-room and hardware maintenance can be cut"
    return View("finance-on-cloud", "可核减运维经费", title, headers, rows)


def stop_payment(portfolio: Portfolio) -> View:
    """Finance list 2: should be on the cloud and are not, past the deadline: maintenance payments to stop."""
    headers = (*_SYSTEM, "阶段 stage", "计划迁移时间 planned cutover", "逾期天数 days past the deadline")
    late = (portfolio.today - portfolio.deadline).days
    rows = [
        (*_who(e), STAGE_LABELS[e.stage], _day(e.roadmap.cutover_on if e.roadmap else None), late)
        for e in portfolio.stop_payment
    ]
    note = "" if portfolio.past_deadline else f"the programme deadline {portfolio.deadline.isoformat()} has not passed"
    title = "应纳入而未纳入：停止拨付运维经费 Should be on the cloud and are not: maintenance payments to stop"
    return View("finance-stop-payment", "停拨运维经费", title, headers, rows, note)


def attachment_rows(ledger: Ledger, portfolio: Portfolio) -> list[PlanRow]:
    """The attachment-2 table of the portfolio's systems, from their plan entries, states and roadmaps."""
    wanted = {e.system.id: e for e in portfolio.entries}
    systems = [
        SystemInfo.model_validate(entry.fields) for entry in ledger.list_plan_entries() if entry.system_id in wanted
    ]
    states = {key: e.system.state.value for key, e in wanted.items()}
    roadmaps = {key: e.roadmap for key, e in wanted.items() if e.roadmap is not None}
    return system_rows(systems, states, roadmaps)


def write_workbook(portfolio: Portfolio, plan_rows: Sequence[PlanRow], path: Path) -> Path:
    """The workbook: a sheet per view, then the attachment-2 table (迁移计划表)."""
    from openpyxl import Workbook

    path.parent.mkdir(parents=True, exist_ok=True)
    book = Workbook()
    first = book.active
    assert first is not None
    book.remove(first)
    for view in views(portfolio):
        _sheet(book, view)
    fill_sheet(book.create_sheet(), plan_rows)
    book.save(path)
    return path


def _sheet(book: Workbook, view: View) -> None:
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    sheet = book.create_sheet(view.sheet)
    sheet.append([view.title])
    sheet["A1"].font = Font(bold=True, size=13)
    sheet.append(list(view.headers))
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in view.rows:
        sheet.append(list(row))
    if view.note:
        sheet.append([view.note])
    for index, header in enumerate(view.headers, 1):
        sheet.column_dimensions[get_column_letter(index)].width = max(10, min(40, len(header) + 4))
    sheet.freeze_panes = "A3"
