"""A generated portfolio: provincial departments' systems at every stage, for the demo, tests and benchmarks.

:func:`generate` makes the plan table rows (attachment 2) of ``count`` systems in ``departments``
departments, with realistic Chinese names, roadmaps around ``today`` and a target stage each;
:func:`write_table` writes them as the XLSX ``cutover plan import`` reads; :func:`place` moves the
imported systems to their stages. Stages are set directly in the ledger (no runs are made, only
the cutover run a retention window refers to): a portfolio to look at, not a history to audit.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from cutover import exemptions
from cutover.ledger import ExemptionDecision, Ledger, LifecycleState, RunKind, RunState
from cutover.plan import PlanRow, write_xlsx
from cutover.plan_import import import_plan

DEPARTMENTS = (
    "省发展和改革委员会", "省教育厅", "省科学技术厅", "省工业和信息化厅", "省民族宗教事务委员会", "省公安厅",
    "省民政厅", "省司法厅", "省财政厅", "省人力资源和社会保障厅", "省自然资源厅", "省生态环境厅",
    "省住房和城乡建设厅", "省交通运输厅", "省水利厅", "省农业农村厅", "省商务厅", "省文化和旅游厅",
    "省卫生健康委员会", "省退役军人事务厅", "省应急管理厅", "省审计厅", "省人民政府外事办公室",
    "省国有资产监督管理委员会", "省市场监督管理局", "省广播电视局", "省体育局", "省统计局", "省林业和草原局",
    "省医疗保障局", "省地方金融监督管理局", "省乡村振兴局", "省机关事务管理局", "省信访局",
    "省粮食和物资储备局", "省能源局", "省药品监督管理局", "省知识产权局", "省政务服务监督管理局", "省地震局",
    "省气象局", "省档案局", "省人民防空办公室", "省供销合作社联合社", "省住房公积金管理中心",
    "省社会保险服务局", "省就业服务局", "省不动产登记中心", "省公共资源交易中心", "省疾病预防控制中心",
    "省水文水资源测报中心", "省三江源国家公园管理局", "省总工会", "共青团省委", "省妇女联合会",
    "省残疾人联合会", "省科学技术协会", "省文学艺术界联合会", "省红十字会", "省地质矿产勘查开发局",
)  # fmt: skip
_TOPICS = (
    "行政审批", "办公自动化", "公文交换", "档案管理", "统计上报", "财务核算", "资产管理", "人事工资", "门户网站",
    "电子证照", "视频会议", "信访受理", "执法监督", "项目管理", "应急指挥", "数据交换", "综合业务", "移动办公",
    "地理信息", "在线监测", "业务培训", "政务公开", "信用信息", "投诉举报", "许可备案", "监督检查",
)  # fmt: skip
_KINDS = ("系统", "管理系统", "信息平台", "服务平台", "监管平台", "业务系统", "数据库")
_OPERATORS = ("中国电信", "中国联通", "中国移动")
_REASONS = {
    "consolidate": "功能与新平台重复，整合归并",
    "retire": "已停止使用，及时淘汰",
    "exempt": "依赖专用硬件，政务云暂不支持",
}
#: The share of each target stage in a generated portfolio (every stage present).
STAGE_WEIGHTS = {
    "planned": 20,
    "tested": 10,
    "signed": 8,
    "cut_over": 6,
    "in_retention": 14,
    "decommissioned": 18,
    "consolidated": 8,
    "retired": 6,
    "exempt": 4,
    "exemption_pending": 3,
    "exemption_refused": 3,
}
_DISPOSITION = {"consolidated": "整合归并", "retired": "淘汰"}
_EXEMPT_LABEL = "不迁移（报专家认定）"


@dataclass(frozen=True)
class Generated:
    """One generated system: its plan table row and the stage it is to be placed in."""

    row: PlanRow
    system_id: str
    stage: str


def generate(
    count: int, departments: int, *, today: date, seed: int = 17, prefix: str = "gen", deadline: date | None = None
) -> list[Generated]:
    """``count`` systems spread over the first ``departments`` departments (at most 60), every stage present."""
    rng = random.Random(seed)
    names = DEPARTMENTS[: max(1, min(departments, len(DEPARTMENTS)))]
    stages = list(STAGE_WEIGHTS)
    chosen = stages[:count] + rng.choices(stages, weights=list(STAGE_WEIGHTS.values()), k=max(0, count - len(stages)))
    made = []
    for n, stage in enumerate(chosen, 1):
        department = names[(n - 1) % len(names)]
        system_id = f"{prefix}-{n:04d}"
        made.append(Generated(_row(rng, n, system_id, department, stage, today), system_id, stage))
    return made


def _row(rng: random.Random, n: int, system_id: str, department: str, stage: str, today: date) -> PlanRow:
    name = f"{department.removeprefix('省')[:4]}{rng.choice(_TOPICS)}{rng.choice(_KINDS)}"
    cutover = today + timedelta(days=_cutover_offset(rng, stage))
    telecom = rng.random() < 0.3
    disposition = _DISPOSITION.get(
        stage, _EXEMPT_LABEL if stage.startswith("exemption") or stage == "exempt" else "迁移上云"
    )
    reason = {"整合归并": _REASONS["consolidate"], "淘汰": _REASONS["retire"], _EXEMPT_LABEL: _REASONS["exempt"]}.get(
        disposition, ""
    )
    statuses = ("不需要", "未开始", "进行中", "已完成")
    return PlanRow(
        number=n,
        department=department,
        system=f"{name}（{system_id}）",
        hosting=f"托管在电信运营商机房（{rng.choice(_OPERATORS)}）" if telecom else "自有机房",
        disposition=disposition,
        target="并入 " + system_id.rsplit("-", 1)[0] + "-platform"
        if disposition == "整合归并"
        else "省级政务云（电子政务外网）",
        planned_date=cutover.isoformat(),
        reason=reason,
        status="计划中",
        test_date=(cutover - timedelta(days=45)).isoformat(),
        signoff_date=(cutover - timedelta(days=10)).isoformat(),
        retention_end_date=(cutover + timedelta(days=100)).isoformat(),
        decommission_date=(cutover + timedelta(days=120)).isoformat(),
        network_move=rng.choice(statuses),
        code_optimisation=rng.choice(statuses),
        database_update=rng.choice(statuses),
        os_upgrade=rng.choice(statuses),
    )


def _cutover_offset(rng: random.Random, stage: str) -> int:
    """Days from today to the planned cutover: behind for systems cut over, mixed for the rest."""
    if stage in ("in_retention",):
        return -rng.randint(5, 95)
    if stage in ("cut_over", "decommissioned"):
        return -rng.randint(130, 400)
    return rng.randint(-60, 240)


def write_table(generated: Sequence[Generated], path: Path) -> Path:
    """The plan table (XLSX) of the generated systems."""
    return write_xlsx([g.row for g in generated], path)


def place(ledger: Ledger, generated: Sequence[Generated], *, today: date, actor: str = "demo") -> None:
    """Move each imported system to its stage (states set directly; see the module's docstring)."""
    for item in generated:
        _place(ledger, item, today, actor)


_STATES = {
    "tested": LifecycleState.TESTED,
    "signed": LifecycleState.SIGNED,
    "decommissioned": LifecycleState.DECOMMISSIONED,
    "cut_over": LifecycleState.RETAINED,
    "in_retention": LifecycleState.RETAINED,
}


def _place(ledger: Ledger, item: Generated, today: date, actor: str) -> None:
    if item.stage in ("exempt", "exemption_refused"):
        decision = ExemptionDecision.ACCEPTED if item.stage == "exempt" else ExemptionDecision.REFUSED
        exemptions.rule(
            ledger,
            item.system_id,
            decision=decision,
            ruled_on=min(today, ledger.now().date()),
            panel=["李明（专家）", "王芳（专家）", "张强（专家）"],
            document=f"青政云认〔{today.year}〕{int(item.system_id.rsplit('-', 1)[1])}号",
            actor=actor,
        )
        return
    state = _STATES.get(item.stage)
    if state is None:
        return
    with ledger.session() as session:
        ledger.compare_and_set_state(item.system_id, LifecycleState.PLANNED, state, session=session)
        if item.stage in ("cut_over", "in_retention"):
            run = ledger.create_run(item.system_id, RunKind.CUTOVER, run_id=str(uuid.uuid4()), session=session)
            ledger.finish_run(run.id, RunState.SUCCEEDED, session=session)
            cutover = date.fromisoformat(item.row.planned_date)
            ends = cutover + timedelta(days=100)
            if item.stage == "in_retention":
                ends = max(ends, today + timedelta(days=1))
            else:
                ends = min(ends, today - timedelta(days=1))
            ledger.open_retention_window(
                item.system_id, run.id, datetime.combine(ends, time(12), tzinfo=UTC), session=session
            )


def register_demo_portfolio(ledger: Ledger, directory: Path, *, today: date | None = None) -> Path:
    """The demo's small portfolio beside its system: a dozen systems in four departments, at different stages.

    Writes their plan table to ``directory`` (as a department would send it), imports it and
    places each system; returns the table's path.
    """
    today = today or date.today()
    made = generate(12, 4, today=today, prefix="demo")
    directory.mkdir(parents=True, exist_ok=True)
    table = write_table(made, directory / "省直部门信息系统迁移计划表-示例.xlsx")
    import_plan(ledger, table, actor="demo")
    place(ledger, made, today=today, actor="demo")
    return table
