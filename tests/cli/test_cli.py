"""The `cutover` command: validate, plan, status and audit verify, with their exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

import cli
from cutover import executions, lifecycle
from cutover.ledger import Decision, Ledger, LifecycleState, Party, ReportKind, RunKind, StepPhase
from cutover.plan import HEADERS, TITLE
from cutover.runtime import open_ledger
from cutover.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ledger (SQLite) and a copy of the example specs."""
    specs = tmp_path / "specs"
    shutil.copytree(ROOT / "cutover_specs", specs, ignore=shutil.ignore_patterns("*.json"))
    monkeypatch.setenv("CUTOVER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CUTOVER_SPECS_DIR", str(specs))
    monkeypatch.delenv("CUTOVER_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def invoke(*args: str) -> tuple[int, str]:
    cli.register_commands()
    result = runner.invoke(cli.app, list(args))
    return result.exit_code, result.output


def test_validate_exits_zero_only_when_every_file_is_valid(workdir: Path) -> None:
    code, output = invoke("validate")
    assert code == 0 and "4 valid, 0 invalid" in output
    bad = workdir / "specs" / "broken.yaml"
    bad.write_text((ROOT / "cutover_specs/hrss-social-insurance.yaml").read_text().replace("months: 3", "months: 1"))
    code, output = invoke("validate", str(workdir / "specs"))
    assert code == 1
    assert f"{bad}:" in output and "retention.months is 1" in output and "4 valid, 1 invalid" in output


def test_validate_refuses_an_inline_database_url_with_a_password_and_says_how_to_declare_it(workdir: Path) -> None:
    spec = workdir / "specs" / "hrss-social-insurance.yaml"
    text = spec.read_text(encoding="utf-8")
    spec.write_text(text.replace("source: {secret: legacy-db}", "source: 'postgresql://app:hunter2@db/app'", 1))
    line = next(n for n, row in enumerate(spec.read_text().splitlines(), 1) if "hunter2" in row)
    code, output = invoke("validate", str(spec))
    assert code == 1
    assert f"{spec}:{line}: cutover.steps[2].source: the database URL carries a password" in output
    assert "declare it under secrets: and refer to it as {secret: name}" in output
    assert "hunter2" not in output


def test_plan_exports_the_attachment_2_table_with_chinese_headers(workdir: Path) -> None:
    code, output = invoke("plan", "--out", str(workdir / "out"))
    assert code == 0, output
    book = load_workbook(workdir / "out" / f"{TITLE}.xlsx")
    sheet = book.active
    assert sheet is not None
    assert sheet["A1"].value == TITLE
    assert tuple(c.value for c in sheet[2]) == HEADERS
    rows = {r[2]: r for r in sheet.iter_rows(min_row=3, values_only=True)}
    hrss = rows["社会保险信息系统（hrss-social-insurance）"]
    assert hrss[1] == "省人力资源和社会保障厅" and hrss[3] == "托管在电信运营商机房（中国电信）" and hrss[8] == "计划中"
    agri = rows["农机购置补贴旧版系统（agri-subsidy-legacy）"]
    assert agri[4] == "整合归并" and agri[5] == "并入 agri-subsidy-platform" and "整合归并" in agri[7]
    csv_text = (workdir / "out" / f"{TITLE}.csv").read_text(encoding="utf-8-sig")
    assert csv_text.splitlines()[0] == ",".join(HEADERS)


def test_status_lists_each_registered_system_with_its_state(workdir: Path) -> None:
    code, output = invoke("status")
    assert code == 0 and "no systems registered yet" in output
    invoke("plan", "--out", str(workdir / "out"))
    code, output = invoke("status")
    assert code == 0 and "hrss-social-insurance" in output and "planned" in output


def test_audit_verify_reports_an_intact_chain(workdir: Path) -> None:
    invoke("plan", "--out", str(workdir / "out"))
    code, output = invoke("audit", "verify")
    assert code == 0 and "audit chain intact" in output


def test_help_is_clean_and_lists_the_commands() -> None:
    code, output = invoke("--help")
    assert code == 0
    for command in ("validate", "plan", "status", "audit", "schema"):
        assert command in output


HRSS = "hrss-social-insurance"


def _signed(workdir: Path) -> Ledger:
    """``cutover plan``, then hrss walked to ``signed`` on a report both parties approved."""
    invoke("plan", "--out", str(workdir / "out"))
    ledger = open_ledger()
    run = ledger.create_run(HRSS, RunKind.CUTOVER)
    for state in (LifecycleState.TESTED, LifecycleState.REPORT_READY):
        lifecycle.transition(ledger, HRSS, state, actor="test", reason="test set-up")
    report = ledger.create_report(run.id, HRSS, ReportKind.TRIAL_RUN, "试运行报告")
    spec_digest = ledger.require_system(HRSS).spec_digest or ""
    for party, approver in ((Party.DEPARTMENT, "wang.li"), (Party.CLOUD_PROVIDER, "zhao.min")):
        ledger.enroll_approver(approver, approver, b"encrypted")
        ledger.add_signature(
            run_id=run.id,
            system_id=HRSS,
            party=party,
            approver_id=approver,
            decision=Decision.APPROVE,
            report_digest=report.digest,
            spec_digest=spec_digest,
        )
    lifecycle.transition(ledger, HRSS, LifecycleState.SIGNED, actor="test", reason="test set-up")
    return ledger


def _status_of(output: str, system_id: str) -> str:
    return next(line for line in output.splitlines() if system_id in line)


def test_status_shows_a_signed_system_planned_once_its_spec_changed(workdir: Path) -> None:
    ledger = _signed(workdir)
    assert "signed" in _status_of(invoke("status")[1], HRSS)
    spec = workdir / "specs" / f"{HRSS}.yaml"
    spec.write_text(spec.read_text().replace("months: 3", "months: 4"))

    code, output = invoke("status")

    assert code == 0 and f"{HRSS}: its spec changed since it was registered" in output
    assert "planned" in _status_of(output.split("govcloud-cutover status")[1], HRSS)
    assert ledger.signatures_for(HRSS) == [] and ledger.latest_report(HRSS, ReportKind.TRIAL_RUN) is None


def test_status_says_when_a_signed_systems_signatures_were_voided(workdir: Path) -> None:
    ledger = _signed(workdir)
    ledger.void_signatures(HRSS)

    code, output = invoke("status")

    assert code == 0
    assert "signed 双方已签认 — signatures voided: sign again" in _status_of(output, HRSS)


def test_audit_verify_names_a_step_execution_changed_behind_the_ledgers_back(workdir: Path) -> None:
    invoke("plan", "--out", str(workdir / "out"))
    ledger = open_ledger()
    run = ledger.create_run(HRSS, RunKind.CUTOVER)
    executions.begin(ledger, run.id, "freeze", step_digest="sm3:freeze", phase=StepPhase.CUTOVER, actor="test")
    assert "1 step executions match them" in invoke("audit", "verify")[1]
    with ledger.engine.begin() as connection:  # "it succeeded", says someone with the database password
        connection.exec_driver_sql("UPDATE step_executions SET status = 'succeeded', finished_at = started_at")

    code, output = invoke("audit", "verify")

    assert code == 1
    assert f"step execution run:{run.id}/step:freeze attempt 1 does not match the audit trail" in output


def _retained_with_divergence(workdir: Path) -> Ledger:
    """HRSS cut over, its window open, and one divergence sample from the watch."""
    from datetime import timedelta

    from tasks.divergence import Divergence, Method, TableChange

    invoke("plan", "--out", str(workdir / "out"))
    ledger = open_ledger()
    run = ledger.create_run(HRSS, RunKind.CUTOVER)
    ledger.open_retention_window(HRSS, run.id, ledger.now() + timedelta(days=92))
    found = Divergence([TableChange("payments", Method.COUNTERS, 4, 2, 1)], behind_s=12.0)
    ledger.record_divergence(found.record(HRSS, run.id))
    return ledger


def test_status_of_all_systems_has_a_one_line_divergence_column(workdir: Path) -> None:
    _retained_with_divergence(workdir)

    code, output = invoke("status")

    assert code == 0 and "divergence" in output
    assert "7 changed" in _status_of(output, HRSS)


def test_status_of_one_system_shows_its_divergence_per_table_and_how_far_behind_the_original_is(
    workdir: Path,
) -> None:
    _retained_with_divergence(workdir)

    code, output = invoke("status", HRSS)

    assert code == 0, output
    assert "payments" in output and "postgresql-counters" in output
    assert "7 changed rows; the original is 12 seconds behind (no replication: it stopped at the cutover)" in output


def test_status_of_an_unknown_system_says_so(workdir: Path) -> None:
    invoke("plan", "--out", str(workdir / "out"))

    code, output = invoke("status", "no-such-system")

    assert code == 1 and "'no-such-system' is not registered" in output
