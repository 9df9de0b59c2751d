"""`cutover plan import`: a department's systems from its plan table, all rows or none (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from cutover.errors import PlanTableInvalid
from cutover.ledger import AuditEvent, Disposition, Ledger, LifecycleState, RoadmapStatus
from cutover.plan import HEADERS
from cutover.plan_import import import_plan
from cutover.runtime import register
from cutover.spec import Spec
from tests.office._tables import row, unique, write_csv, write_xlsx
from tests.specbuilder import base_spec


def _events(ledger: Ledger, action: str) -> list[AuditEvent]:
    import sqlalchemy as sa

    with ledger.session() as s:
        return list(s.scalars(sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)))


@pytest.mark.parametrize("write", [write_xlsx, write_csv], ids=["xlsx", "csv"])
def test_a_good_table_registers_each_system_in_planned_with_its_roadmap(
    ledger: Ledger, tmp_path: Path, write: object
) -> None:
    migrate, retire = unique("hrss"), unique("old")
    rows = [
        row(migrate),
        row(
            retire,
            处置方式="淘汰",
            不迁移原因="已停止使用",
            当前托管方式="自有机房",
            系统名称=f"旧版考勤系统（{retire}）",
        ),
    ]
    path = write(tmp_path / f"plan{'.xlsx' if write is write_xlsx else '.csv'}", rows)  # type: ignore[operator]

    result = import_plan(ledger, path, actor="cli:office")

    assert set(result.created) == {migrate, retire} and result.rows == 2
    system = ledger.require_system(migrate)
    assert system.state is LifecycleState.PLANNED and system.spec_digest is None
    assert ledger.require_system(retire).disposition is Disposition.RETIRE
    roadmap = ledger.get_roadmap(migrate)
    assert roadmap is not None and roadmap.source == "plan-table"
    assert (roadmap.test_on, roadmap.signoff_on, roadmap.cutover_on) == (
        date(2019, 5, 10),
        date(2019, 6, 1),
        date(2019, 6, 30),
    )
    assert (roadmap.retention_ends_on, roadmap.decommission_on) == (date(2019, 10, 15), date(2019, 11, 1))
    assert roadmap.network_move is RoadmapStatus.IN_PROGRESS and roadmap.code_optimisation is RoadmapStatus.DONE
    assert roadmap.database_update is RoadmapStatus.NOT_STARTED and roadmap.os_upgrade is RoadmapStatus.NOT_NEEDED
    assert roadmap.operator == "中国电信"
    entry = ledger.get_plan_entry(migrate)
    assert entry is not None and entry.fields["hosting"] == {"current": "telecom-operator", "operator": "中国电信"}
    event = next(e for e in _events(ledger, "plan.imported") if migrate in e.detail["created"])
    assert event.actor == "cli:office" and event.detail["file"] == path.name


def test_importing_the_same_table_again_changes_nothing(ledger: Ledger, tmp_path: Path) -> None:
    system_id = unique("hrss")
    path = write_xlsx(tmp_path / "plan.xlsx", [row(system_id)])
    import_plan(ledger, path, actor="test")

    again = import_plan(ledger, path, actor="test")

    assert again.unchanged == (system_id,) and not again.created and not again.updated


BAD_ROWS = [
    pytest.param({"部门": ""}, "部门", "is empty", id="no department"),
    pytest.param(
        {"系统名称": "社会保险信息系统"}, "系统名称", "does not name the system and its id", id="no system id"
    ),
    pytest.param(
        {"当前托管方式": "托管在电信运营商机房"}, "当前托管方式", "names no operator", id="telecom without operator"
    ),
    pytest.param({"当前托管方式": "别人家"}, "当前托管方式", "is not 自有机房", id="unknown hosting"),
    pytest.param({"处置方式": "搬走"}, "处置方式", "is not one of", id="unknown disposition"),
    pytest.param(
        {"处置方式": "整合归并", "不迁移原因": "功能重复", "迁移目标": "省级政务云"},
        "迁移目标",
        "does not name the system it is consolidated into",
        id="consolidate without target",
    ),
    pytest.param({"处置方式": "不迁移（报专家认定）"}, "不迁移原因", "says why", id="exempt without reason"),
    pytest.param({"计划迁移时间": "明年"}, "计划迁移时间", "is not a date", id="bad date"),
    pytest.param({"计划迁移时间": ""}, "计划迁移时间", "is empty", id="no cutover date"),
    pytest.param({"代码优化": "差不多"}, "代码优化", "is not one of", id="unknown status"),
    pytest.param({"计划签认时间": "2019-07-01"}, "计划迁移时间", "is before 计划签认时间", id="sign-off after cutover"),
    pytest.param(
        {"保留期结束时间": "2019-08-01"}, "保留期结束时间", "less than 3 months", id="retention under 3 months"
    ),
]


@pytest.mark.parametrize(("cells", "column", "message"), BAD_ROWS)
@pytest.mark.parametrize("write", [write_xlsx, write_csv], ids=["xlsx", "csv"])
def test_a_bad_row_is_refused_with_its_row_and_column_and_nothing_is_written(
    ledger: Ledger, tmp_path: Path, write: object, cells: dict[str, str], column: str, message: str
) -> None:
    good, bad = unique("good"), unique("bad")
    suffix = ".xlsx" if write is write_xlsx else ".csv"
    path = write(tmp_path / f"plan{suffix}", [row(good), row(bad, **cells)])  # type: ignore[operator]
    bad_row = 4 if write is write_xlsx else 3  # the xlsx has a title row above the headers

    with pytest.raises(PlanTableInvalid) as refused:
        import_plan(ledger, path, actor="test")

    [problem] = refused.value.problems
    assert (problem.row, problem.column) == (bad_row, column) and message in problem.message
    assert f"row {bad_row}, column {column}" in str(refused.value) and "nothing was imported" in str(refused.value)
    assert ledger.get_system(good) is None and ledger.get_system(bad) is None


def test_a_system_twice_in_the_table_is_refused_on_its_second_row(ledger: Ledger, tmp_path: Path) -> None:
    system_id = unique("twice")
    path = write_csv(tmp_path / "plan.csv", [row(system_id), row(system_id)])

    with pytest.raises(PlanTableInvalid, match=r"row 3, column 系统名称: system id .* is also on row 2"):
        import_plan(ledger, path, actor="test")


def test_a_table_without_a_required_column_is_refused_naming_it(ledger: Ledger, tmp_path: Path) -> None:
    headers = tuple(h for h in HEADERS if h != "处置方式")
    path = write_xlsx(tmp_path / "plan.xlsx", [row(unique("x"))], headers=headers)

    with pytest.raises(PlanTableInvalid, match=r"row 2, column 处置方式: the header row has no such column"):
        import_plan(ledger, path, actor="test")


def test_a_file_that_is_not_a_table_is_refused(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "plan.txt"
    path.write_text("x")

    with pytest.raises(PlanTableInvalid, match=r"give an \.xlsx or \.csv file"):
        import_plan(ledger, path, actor="test")


def test_a_later_spec_for_the_same_system_takes_over_its_entry(ledger: Ledger, tmp_path: Path) -> None:
    system_id = unique("hrss")
    import_plan(ledger, write_xlsx(tmp_path / "plan.xlsx", [row(system_id)]), actor="test")
    spec = Spec.model_validate(base_spec(system_id))

    register(ledger, spec, actor="test")

    system = ledger.require_system(system_id)
    assert system.spec_digest == spec.digest(ledger.digest) and system.name == "测试系统"
    roadmap = ledger.get_roadmap(system_id)
    assert roadmap is not None and roadmap.source == "spec" and roadmap.cutover_on == date(2027, 1, 1)
    assert roadmap.test_on == date(2019, 5, 10) and roadmap.code_optimisation is RoadmapStatus.DONE
    entry = ledger.get_plan_entry(system_id)
    assert entry is not None and entry.fields["name"] == "测试系统"


def test_a_table_imported_after_the_spec_updates_only_the_rest_of_the_roadmap(ledger: Ledger, tmp_path: Path) -> None:
    system_id = unique("hrss")
    register(ledger, Spec.model_validate(base_spec(system_id)), actor="test")

    result = import_plan(ledger, write_csv(tmp_path / "plan.csv", [row(system_id, 部门="别的厅")]), actor="test")

    assert result.spec_governed == (system_id,)
    assert ledger.require_system(system_id).department == "省测试厅"
    roadmap = ledger.get_roadmap(system_id)
    assert roadmap is not None and roadmap.cutover_on == date(2027, 1, 1) and roadmap.test_on == date(2019, 5, 10)
