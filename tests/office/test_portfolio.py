"""The portfolio from the ledger, on an injected day: stages, overdue, retention ending, decommissions, finance lists."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from cutover.ledger import Ledger, LifecycleState
from cutover.plan_import import import_plan
from cutover.portfolio import Portfolio, Stage, build
from tests.office._tables import row, unique, write_csv
from tests.office.conftest import DEADLINE, TODAY


def _ids(entries: list[object]) -> set[str]:
    return {e.system.id for e in entries}  # type: ignore[attr-defined]


def _portfolio(ledger: Ledger, today: date = TODAY, **kwargs: object) -> Portfolio:
    return build(ledger, today=today, deadline=DEADLINE, **kwargs)  # type: ignore[arg-type]


def test_every_stage_is_counted_and_a_refused_exemption_counts_as_planned(one_of_each: Ledger) -> None:
    portfolio = _portfolio(one_of_each)

    assert {stage: portfolio.overall.stages[stage] for stage in Stage} == {
        stage: 2 if stage is Stage.PLANNED else 1 for stage in Stage
    }
    assert [t.total for t in portfolio.departments] == [6, 5] and portfolio.overall.total == 11
    assert portfolio.overall.settled == 6  # cut over, in retention, decommissioned, consolidated, retired, exempt


def test_a_department_alone(one_of_each: Ledger) -> None:
    department = _portfolio(one_of_each).departments[1].department

    portfolio = _portfolio(one_of_each, department=department)

    assert {e.system.department for e in portfolio.entries} == {department} and portfolio.overall.total == 5


def test_the_finance_lists_on_the_cloud_and_to_stop_paying_after_the_deadline(one_of_each: Ledger) -> None:
    before = _portfolio(one_of_each)
    after = _portfolio(one_of_each, today=DEADLINE + timedelta(days=1))

    assert {e.stage for e in before.on_cloud} == {Stage.CUT_OVER, Stage.IN_RETENTION, Stage.DECOMMISSIONED}
    assert before.stop_payment == []
    assert {e.system.id for e in after.stop_payment} == {"each-0001", "each-0002", "each-0003", "each-0011"}
    assert all(e.stage in (Stage.PLANNED, Stage.TESTED, Stage.SIGNED) for e in after.stop_payment)


def test_decommission_is_due_once_the_retention_window_is_over(one_of_each: Ledger) -> None:
    portfolio = _portfolio(one_of_each)

    assert [e.system.id for e in portfolio.decommission_due] == ["each-0004"]
    in_retention = next(e for e in portfolio.entries if e.stage is Stage.IN_RETENTION)
    ends = in_retention.retention_ends
    assert ends is not None
    assert _portfolio(one_of_each, today=ends).decommission_due[-1].system.id == in_retention.system.id


def test_retention_windows_ending_within_the_next_days_are_listed(one_of_each: Ledger) -> None:
    in_retention = next(e for e in _portfolio(one_of_each).entries if e.stage is Stage.IN_RETENTION)
    ends = in_retention.retention_ends
    assert ends is not None

    assert _ids(_portfolio(one_of_each, today=ends - timedelta(days=10), soon_days=30).retention_soon) == {
        in_retention.system.id
    }
    assert _portfolio(one_of_each, today=ends - timedelta(days=40), soon_days=30).retention_soon == []


def test_overdue_against_the_roadmap_and_the_programme_deadline(ledger: Ledger, tmp_path: Path) -> None:
    department = unique("省测试厅")
    late, on_time, tested = unique("late"), unique("ontime"), unique("tested")
    rows = [
        row(late, 部门=department, 计划测试时间="2019-05-10", 计划签认时间="2019-06-20", 计划迁移时间="2019-07-01"),
        row(on_time, 部门=department, 计划测试时间="2019-06-10", 计划签认时间="2019-06-20", 计划迁移时间="2019-07-01"),
        row(tested, 部门=department, 计划测试时间="2019-05-10", 计划签认时间="2019-06-20", 计划迁移时间="2019-07-01"),
    ]
    import_plan(ledger, write_csv(tmp_path / "plan.csv", rows), actor="test")
    with ledger.session() as session:
        ledger.compare_and_set_state(tested, LifecycleState.PLANNED, LifecycleState.TESTED, session=session)

    june = build(ledger, today=date(2019, 6, 1), deadline=DEADLINE, department=department)
    [overdue] = june.overdue
    assert overdue.entry.system.id == late and overdue.missed == ("测试 test",)
    assert (overdue.since, overdue.days) == (date(2019, 5, 10), 22)
    assert june.overall.overdue == 1 and june.departments[0].overdue == 1

    january = build(ledger, today=date(2020, 1, 2), deadline=DEADLINE, department=department)
    by_id = {o.entry.system.id: o.missed for o in january.overdue}
    assert by_id[tested] == (
        "签认 sign-off",
        "割接 cutover",
        "服务退出 decommission",
        "全省上云期限 programme deadline",
    )
    assert by_id[on_time][-1] == "全省上云期限 programme deadline" and len(january.stop_payment) == 3

    later_deadline = build(ledger, today=date(2020, 1, 2), deadline=date(2020, 12, 31), department=department)
    assert "全省上云期限 programme deadline" not in {m for o in later_deadline.overdue for m in o.missed}
    assert later_deadline.stop_payment == []
