"""The leading-group office's portfolio, from the ledger: every system's stage, what is overdue, what is due.

Clauses 一, 六 and 七: departments plan every system (migrate, consolidate, retire, or exempt
after an expert ruling) with a timetable and roadmap, all non-classified systems on the cloud by
the programme deadline; the office tracks progress; the finance department cuts machine-room and
hardware maintenance for what moved and stops maintenance payments for what should have moved and
did not. :func:`build` computes all of it for one day (``today`` is injected); the views of it
(terminal, XLSX, Prefect artifacts) are in :mod:`cutover.portfolio_views`.

A system's stage:

- consolidated / retired: its disposition says so;
- exempt / exemption pending: declared unable to migrate, with an accepted ruling / none yet
  (a refused exemption puts it back on the migration ladder below);
- planned (also rejected, compensated, rolled back), tested (also report ready), signed (also
  cutting over, rollback incomplete), in retention (its window still open), cut over (retained
  and the window over: decommission due), decommissioned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum

from cutover.exemptions import standing_ruling
from cutover.ledger import (
    Disposition,
    ExemptionDecision,
    ExemptionRuling,
    Ledger,
    LifecycleState,
    RetentionWindow,
    Roadmap,
    System,
)

__all__ = [
    "Entry",
    "Overdue",
    "Portfolio",
    "Stage",
    "Tally",
    "build",
    "stage_of",
]


class Stage(StrEnum):
    """Where a system stands in the programme (the portfolio's columns, in this order)."""

    PLANNED = "planned"
    TESTED = "tested"
    SIGNED = "signed"
    CUT_OVER = "cut_over"
    IN_RETENTION = "in_retention"
    DECOMMISSIONED = "decommissioned"
    CONSOLIDATED = "consolidated"
    RETIRED = "retired"
    EXEMPT = "exempt"
    EXEMPTION_PENDING = "exemption_pending"


STAGE_LABELS: Mapping[Stage, str] = {
    Stage.PLANNED: "计划中 planned",
    Stage.TESTED: "已测试 tested",
    Stage.SIGNED: "已签认 signed",
    Stage.CUT_OVER: "已割接 cut over",
    Stage.IN_RETENTION: "保留期 in retention",
    Stage.DECOMMISSIONED: "已服务退出 decommissioned",
    Stage.CONSOLIDATED: "已整合 consolidated",
    Stage.RETIRED: "已淘汰 retired",
    Stage.EXEMPT: "不迁移 exempt",
    Stage.EXEMPTION_PENDING: "待认定 exemption pending",
}
_LADDER = (Stage.PLANNED, Stage.TESTED, Stage.SIGNED, Stage.CUT_OVER, Stage.IN_RETENTION, Stage.DECOMMISSIONED)
#: On the cloud: the original's machine room and hardware maintenance can be cut (clause 六).
ON_CLOUD = frozenset({Stage.CUT_OVER, Stage.IN_RETENTION, Stage.DECOMMISSIONED})
#: To migrate and not on the cloud yet.
TO_MIGRATE = frozenset({Stage.PLANNED, Stage.TESTED, Stage.SIGNED})
#: Settled: nothing left for the programme to do but the decommissions due.
SETTLED = ON_CLOUD | {Stage.CONSOLIDATED, Stage.RETIRED, Stage.EXEMPT}
_BY_STATE = {
    LifecycleState.PLANNED: Stage.PLANNED,
    LifecycleState.REJECTED: Stage.PLANNED,
    LifecycleState.COMPENSATED: Stage.PLANNED,
    LifecycleState.ROLLED_BACK: Stage.PLANNED,
    LifecycleState.TESTED: Stage.TESTED,
    LifecycleState.REPORT_READY: Stage.TESTED,
    LifecycleState.SIGNED: Stage.SIGNED,
    LifecycleState.CUTTING_OVER: Stage.SIGNED,
    LifecycleState.ROLLBACK_INCOMPLETE: Stage.SIGNED,
    LifecycleState.DECOMMISSIONED: Stage.DECOMMISSIONED,
}
#: The roadmap's milestones: (what, the roadmap field, the stage that reaches it).
MILESTONES = (
    ("测试 test", "test_on", Stage.TESTED),
    ("签认 sign-off", "signoff_on", Stage.SIGNED),
    ("割接 cutover", "cutover_on", Stage.CUT_OVER),
    ("服务退出 decommission", "decommission_on", Stage.DECOMMISSIONED),
)


@dataclass(frozen=True)
class Entry:
    """One system in the portfolio: its row, stage, roadmap, open retention window and standing ruling."""

    system: System
    stage: Stage
    roadmap: Roadmap | None
    window: RetentionWindow | None
    ruling: ExemptionRuling | None

    @property
    def retention_ends(self) -> date | None:
        """The day the open retention window ends, else the roadmap's planned end."""
        if self.window is not None:
            return self.window.ends_at.date()
        return self.roadmap.retention_ends_on if self.roadmap is not None else None


@dataclass(frozen=True)
class Overdue:
    """A system behind its roadmap or the programme deadline: what it missed, since when."""

    entry: Entry
    missed: tuple[str, ...]
    since: date
    days: int


@dataclass
class Tally:
    """Counts by stage of one department (or all), and what is left."""

    department: str
    stages: Counter[Stage] = field(default_factory=Counter)
    overdue: int = 0

    @property
    def total(self) -> int:
        return sum(self.stages.values())

    @property
    def settled(self) -> int:
        """On the cloud, consolidated, retired or exempt."""
        return sum(n for stage, n in self.stages.items() if stage in SETTLED)

    @property
    def on_cloud(self) -> int:
        return sum(n for stage, n in self.stages.items() if stage in ON_CLOUD)

    @property
    def progress(self) -> float:
        """The settled share, 0 to 1."""
        return self.settled / self.total if self.total else 0.0


@dataclass(frozen=True)
class Portfolio:
    """Everything the office looks at, for one day."""

    today: date
    deadline: date
    soon_days: int
    department: str | None
    entries: list[Entry]
    overall: Tally
    departments: list[Tally]
    overdue: list[Overdue]
    retention_soon: list[Entry]
    decommission_due: list[Entry]
    exemptions: list[Entry]
    on_cloud: list[Entry]
    stop_payment: list[Entry]

    @property
    def past_deadline(self) -> bool:
        return self.today > self.deadline


def stage_of(system: System, window: RetentionWindow | None, ruling: ExemptionRuling | None, today: date) -> Stage:
    """The system's stage on ``today`` (see the module's docstring)."""
    if system.disposition is Disposition.CONSOLIDATE:
        return Stage.CONSOLIDATED
    if system.disposition is Disposition.RETIRE:
        return Stage.RETIRED
    if system.disposition is Disposition.EXEMPT and (ruling is None or ruling.decision is ExemptionDecision.ACCEPTED):
        return Stage.EXEMPTION_PENDING if ruling is None else Stage.EXEMPT
    if system.state is LifecycleState.RETAINED:
        open_ = window is not None and window.ends_at.date() > today
        return Stage.IN_RETENTION if open_ else Stage.CUT_OVER
    return _BY_STATE[system.state]


def build(
    ledger: Ledger, *, today: date, deadline: date, soon_days: int = 30, department: str | None = None
) -> Portfolio:
    """The portfolio of every system (or one department's) in the ledger, on ``today``."""
    entries = _entries(ledger, today, department)
    overdue = [found for e in entries if (found := _overdue(e, today, deadline)) is not None]
    overdue.sort(key=lambda o: (o.since, o.entry.system.department, o.entry.system.id))
    soon_end = today + timedelta(days=soon_days)
    return Portfolio(
        today=today,
        deadline=deadline,
        soon_days=soon_days,
        department=department,
        entries=entries,
        overall=_tally("全部 all", entries, overdue),
        departments=_departments(entries, overdue),
        overdue=overdue,
        retention_soon=_sorted_by_end(
            e for e in entries if e.stage is Stage.IN_RETENTION and (e.retention_ends or soon_end) <= soon_end
        ),
        decommission_due=_sorted_by_end(e for e in entries if e.stage is Stage.CUT_OVER),
        exemptions=[e for e in entries if e.stage in (Stage.EXEMPT, Stage.EXEMPTION_PENDING) or e.ruling is not None],
        on_cloud=[e for e in entries if e.stage in ON_CLOUD],
        stop_payment=[e for e in entries if e.stage in TO_MIGRATE] if today > deadline else [],
    )


def _entries(ledger: Ledger, today: date, department: str | None) -> list[Entry]:
    systems = [s for s in ledger.list_systems() if department is None or s.department == department]
    roadmaps = {r.system_id: r for r in ledger.list_roadmaps()}
    windows = {w.system_id: w for w in ledger.list_open_retention_windows()}
    rulings: dict[str, list[ExemptionRuling]] = {}
    for row in ledger.exemption_rulings():
        rulings.setdefault(row.system_id, []).append(row)
    entries = []
    for system in sorted(systems, key=lambda s: (s.department, s.id)):
        window, ruling = windows.get(system.id), standing_ruling(rulings.get(system.id, []))
        stage = stage_of(system, window, ruling, today)
        entries.append(Entry(system, stage, roadmaps.get(system.id), window, ruling))
    return entries


def _overdue(entry: Entry, today: date, deadline: date) -> Overdue | None:
    """The milestones the system missed on ``today``, or None."""
    missed: list[tuple[str, date]] = []
    if entry.stage in _LADDER and entry.roadmap is not None:
        reached = _LADDER.index(entry.stage)
        for what, name, stage in MILESTONES:
            due: date | None = getattr(entry.roadmap, name)
            if due is not None and due < today and reached < _LADDER.index(stage):
                missed.append((what, due))
    if entry.stage in TO_MIGRATE and today > deadline:
        missed.append(("全省上云期限 programme deadline", deadline))
    if entry.stage is Stage.EXEMPTION_PENDING and today > deadline:
        missed.append(("专家认定 expert ruling", deadline))
    if not missed:
        return None
    since = min(due for _, due in missed)
    return Overdue(entry, tuple(what for what, _ in missed), since, (today - since).days)


def _tally(department: str, entries: Iterable[Entry], overdue: Iterable[Overdue]) -> Tally:
    tally = Tally(department, Counter(e.stage for e in entries))
    tally.overdue = sum(1 for _ in overdue)
    return tally


def _departments(entries: list[Entry], overdue: list[Overdue]) -> list[Tally]:
    by_department: dict[str, list[Entry]] = {}
    for entry in entries:
        by_department.setdefault(entry.system.department, []).append(entry)
    late = Counter(o.entry.system.department for o in overdue)
    tallies = []
    for name, members in sorted(by_department.items()):
        tally = Tally(name, Counter(e.stage for e in members))
        tally.overdue = late[name]
        tallies.append(tally)
    return tallies


def _sorted_by_end(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (e.retention_ends or date.max, e.system.id))
