"""The office's commands from the terminal: plan import, exemption rule and list, portfolio; their exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli
from cutover.settings import get_settings
from tests.office._tables import row, unique, write_csv, write_xlsx

runner = CliRunner()


@pytest.fixture
def office(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private SQLite ledger and an empty specs directory."""
    (tmp_path / "specs").mkdir()
    monkeypatch.setenv("CUTOVER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CUTOVER_SPECS_DIR", str(tmp_path / "specs"))
    monkeypatch.delenv("CUTOVER_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def invoke(*args: str) -> tuple[int, str]:
    cli.register_commands()
    result = runner.invoke(cli.app, list(args))
    return result.exit_code, result.output


def test_plan_import_exits_0_on_a_good_table_and_1_naming_the_bad_row(office: Path) -> None:
    good = write_xlsx(office / "good.xlsx", [row(unique("a")), row(unique("b"))])
    bad = write_csv(office / "bad.csv", [row(unique("c"), 计划迁移时间="下个月")])

    code, output = invoke("plan", "import", str(good))
    assert code == 0 and "2 systems — 2 registered" in output, output

    code, output = invoke("plan", "import", str(bad))
    assert code == 1 and "row 2, column 计划迁移时间" in output and "nothing was imported" in output


def test_plan_with_paths_still_exports_the_table(office: Path) -> None:
    code, output = invoke("plan", str(office / "specs"), "--out", str(office / "out"))
    assert code == 0 and "wrote" in output, output


def test_exemption_rule_exit_codes(office: Path) -> None:
    exempt, migrate = unique("exempt"), unique("migrate")
    rows = [row(exempt, 处置方式="不迁移（报专家认定）", 不迁移原因="专用硬件"), row(migrate)]
    assert invoke("plan", "import", str(write_csv(office / "plan.csv", rows)))[0] == 0
    ruling = ("--date", "2019-03-01", "--panel", "李专家，王专家、张专家", "--document", "青政云认〔2019〕3号")

    assert invoke("exemption", "rule", exempt, "--accepted", "--refused", *ruling)[0] == 2
    assert (
        invoke("exemption", "rule", exempt, "--accepted", "--date", "三月", "--panel", "A", "--document", "x")[0] == 2
    )
    assert invoke("exemption", "rule", "no-such-system", "--accepted", *ruling)[0] == 1
    code, output = invoke("exemption", "rule", migrate, "--accepted", *ruling)
    assert code == 3 and "is not declared unable to migrate" in output
    code, output = invoke("exemption", "rule", exempt, "--refused", *ruling)
    assert code == 0 and "back in the plan" in output and "李专家, 王专家, 张专家" in output
    code, output = invoke("exemption", "list")
    assert code == 0 and exempt in output and "refused" in output


def test_portfolio_in_the_terminal_and_as_a_workbook(office: Path) -> None:
    late, exempt = unique("late"), unique("exempt")
    rows = [row(late), row(exempt, 处置方式="不迁移（报专家认定）", 不迁移原因="专用硬件")]
    assert invoke("plan", "import", str(write_csv(office / "plan.csv", rows)))[0] == 0

    code, output = invoke("portfolio", "--today", "2020-01-02", "--xlsx", str(office / "p.xlsx"))
    assert code == 0, output
    assert "迁移进度总览 Portfolio" in output and "全省上云期限 programme deadline" in output
    assert late in output and exempt in output and (office / "p.xlsx").is_file()

    code, output = invoke(
        "portfolio", "--today", "2019-01-02", "--deadline", "2019-12-31", "--department", "省人力资源和社会保障厅"
    )
    assert code == 0 and "has not passed" in output

    assert invoke("portfolio", "--department", "省不存在厅")[0] == 1
    assert invoke("portfolio", "--today", "明天")[0] == 2
