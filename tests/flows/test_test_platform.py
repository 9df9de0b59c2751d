"""The test-platform stage: stress and internal tests, the trial-run period, the report."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cutover import audit, lifecycle
from cutover.claims import claim
from cutover.errors import StressTestFailed, TestPlatformError, TrialRunNotOver
from cutover.ledger import (
    Decision,
    Ledger,
    LifecycleState,
    Party,
    Report,
    ReportKind,
    RunKind,
    StepPhase,
    StepStatus,
)
from cutover.runtime import register
from cutover.settings import Settings
from cutover.spec import Spec
from demo.specs import demo_spec
from flows._context import RunContext
from flows._test_platform import test_on_test_platform as run_stage
from tests.cutover_harness import in_flow
from tests.specbuilder import unique_id, write_spec


@dataclass
class MovableClock:
    """UTC wall time plus an offset the test moves forward instead of sleeping."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance_to(self, moment: datetime) -> None:
        self.offset += max(timedelta(0), moment - self())


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def ledger(tmp_path: Path, clock: MovableClock) -> Iterator[Ledger]:
    instance = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", clock=clock)
    instance.migrate()
    yield instance
    instance.dispose()


def context(estate: Any, ledger: Ledger, tmp_path: Path, **platform: Any) -> RunContext:
    data = demo_spec(estate, system_id=unique_id("tp"), stress_seconds=2)
    data["test_platform"]["stress"]["users"] = 4
    for key, value in platform.items():
        if key == "thresholds":
            data["test_platform"]["stress"]["thresholds"].update(value)
        else:
            data["test_platform"][key] = value
    spec = Spec.model_validate(data)
    register(ledger, spec, actor="test")
    run = claim(ledger, spec.system.id, RunKind.CUTOVER, flow_run_id=None, resume=False, actor="test").run
    return RunContext(
        spec=spec,
        spec_path=write_spec(spec, tmp_path / "specs"),
        ledger=ledger,
        run=run,
        actor="test",
        settings=Settings(home=tmp_path / "home"),
    )


def test_passing_tests_issue_the_report_and_make_the_system_report_ready(
    estate: Any, ledger: Ledger, tmp_path: Path, prefect_server: Any
) -> None:
    rc = context(estate, ledger, tmp_path, thresholds={"min_rps": 1})
    report = in_flow(lambda: run_stage(rc))
    assert lifecycle.current_state(ledger, rc.system_id) is LifecycleState.REPORT_READY
    assert report.digest.startswith("sm3:") and "试运行结果报告" in report.content
    stored = ledger.latest_report(rc.system_id, ReportKind.TRIAL_RUN)
    assert stored is not None and stored.digest == report.digest
    assert (rc.workdir / "report").is_dir()
    again = in_flow(lambda: run_stage(rc))
    assert again.digest == report.digest  # not tested again


def on_cloud_test(step_id: str, *run: str) -> dict[str, Any]:
    """A preparation step on the test platform's host."""
    return {"kind": "ssh", "id": step_id, "name": step_id, "host": "cloud_test", "run": list(run)}


def test_preparation_copies_the_data_and_starts_the_app_before_the_stress_test(
    clean_estate: Any, ledger: Ledger, tmp_path: Path, prefect_server: Any
) -> None:
    stopped = clean_estate.run("cloud_test", "appctl", "stop")
    assert stopped.returncode == 0, stopped.stderr
    marker = unique_id("prepared")
    prepare = [
        on_cloud_test("count", "count-calls", marker),
        on_cloud_test("copy-data", "pull-from", "legacy"),
        on_cloud_test("start-app", "appctl", "start"),
    ]
    rc = context(clean_estate, ledger, tmp_path, thresholds={"min_rps": 1}, prepare=prepare)

    in_flow(lambda: run_stage(rc))  # the stress test passed against the app the preparation started

    assert lifecycle.current_state(ledger, rc.system_id) is LifecycleState.REPORT_READY
    steps = [s for s in ledger.list_steps(rc.run.id) if s.phase is StepPhase.STRESS_TEST]
    assert [(s.step_id, s.status) for s in steps] == [
        ("count", StepStatus.SUCCEEDED),
        ("copy-data", StepStatus.SUCCEEDED),
        ("start-app", StepStatus.SUCCEEDED),
    ]
    stress = ledger.latest_stress_result(rc.system_id)
    assert stress is not None and all(s.started_at <= stress.created_at for s in steps)
    assert clean_estate.calls("cloud_test", marker) == 1


def test_a_rerun_of_the_same_run_does_not_repeat_the_preparation_it_completed(
    estate: Any, ledger: Ledger, tmp_path: Path, prefect_server: Any
) -> None:
    marker = unique_id("prepared")
    prepare = [on_cloud_test("count", "count-calls", marker)]
    rc = context(estate, ledger, tmp_path, thresholds={"p95_ms": 0.001, "min_rps": 1}, prepare=prepare)
    with pytest.raises(StressTestFailed):
        in_flow(lambda: run_stage(rc))

    with pytest.raises(StressTestFailed):
        in_flow(lambda: run_stage(rc))

    assert estate.calls("cloud_test", marker) == 1
    runs = [(s.attempt, s.status) for s in ledger.list_steps(rc.run.id) if s.step_id == "count"]
    assert runs == [(1, StepStatus.SUCCEEDED)]


def test_a_failed_preparation_stops_before_the_stress_test_naming_the_step(
    estate: Any, ledger: Ledger, tmp_path: Path, prefect_server: Any
) -> None:
    rc = context(estate, ledger, tmp_path, prepare=[on_cloud_test("start-app", "appctl", "no-such-action")])

    with pytest.raises(TestPlatformError, match="preparing the test platform failed at step start-app"):
        in_flow(lambda: run_stage(rc))

    assert ledger.latest_stress_result(rc.system_id) is None
    assert lifecycle.current_state(ledger, rc.system_id) is LifecycleState.PLANNED


def test_a_missed_threshold_stops_before_sign_off_and_the_lifecycle_stays(
    estate: Any, ledger: Ledger, tmp_path: Path, prefect_server: Any
) -> None:
    rc = context(estate, ledger, tmp_path, thresholds={"p95_ms": 0.001, "min_rps": 1})
    with pytest.raises(StressTestFailed, match="p95"):
        in_flow(lambda: run_stage(rc))
    assert lifecycle.current_state(ledger, rc.system_id) is LifecycleState.PLANNED
    assert ledger.latest_report(rc.system_id, ReportKind.TRIAL_RUN) is None


def test_the_report_waits_for_the_trial_run_period_and_counts_its_health_checks(
    estate: Any, ledger: Ledger, clock: MovableClock, tmp_path: Path, prefect_server: Any
) -> None:
    rc = context(estate, ledger, tmp_path, thresholds={"min_rps": 1}, trial_run="7d")
    with pytest.raises(TrialRunNotOver) as waiting:
        in_flow(lambda: run_stage(rc))
    assert lifecycle.current_state(ledger, rc.system_id) is LifecycleState.TESTED
    assert ledger.latest_report(rc.system_id, ReportKind.TRIAL_RUN) is None
    clock.advance_to(waiting.value.until)
    report = in_flow(lambda: run_stage(rc))
    assert lifecycle.current_state(ledger, rc.system_id) is LifecycleState.REPORT_READY
    assert "试运行" in report.content
    sampled = [h for h in ledger.health_history(rc.system_id) if h.check_name.startswith("trial:")]
    assert sum(h.checks for h in sampled) >= 5


def test_a_failed_stress_test_ends_the_flow_run_and_frees_the_system(
    estate: Any, tmp_path: Path, prefect_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cutover import runtime
    from cutover.settings import get_settings
    from flows.cutover import cutover

    data = demo_spec(estate, system_id=unique_id("tp"), stress_seconds=2)
    data["test_platform"]["stress"]["users"] = 2
    data["test_platform"]["stress"]["thresholds"].update({"p95_ms": 0.001, "min_rps": 1})
    spec = Spec.model_validate(data)
    specs = tmp_path / "specs"
    write_spec(spec, specs)
    monkeypatch.setenv("CUTOVER_SPECS_DIR", str(specs))
    monkeypatch.setenv("CUTOVER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CUTOVER_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(StressTestFailed):
            cutover(spec.system.id, actor="test")
        ledger = runtime.open_ledger()
        assert ledger.get_lock(spec.system.id) is None
        assert ledger.running_run_for(spec.system.id) is None
        assert lifecycle.current_state(ledger, spec.system.id) is LifecycleState.PLANNED
    finally:
        get_settings.cache_clear()


def _sign(ledger: Ledger, spec: Spec, report: Report) -> None:
    """Both parties approve ``report`` (the form and TOTP checks are the sign-off's own tests)."""
    run = ledger.running_run_for(spec.system.id)
    assert run is not None
    for party, approver in ((Party.DEPARTMENT, "wang.li"), (Party.CLOUD_PROVIDER, "zhao.min")):
        ledger.enroll_approver(approver, approver, b"encrypted")
        ledger.add_signature(
            run_id=run.id,
            system_id=spec.system.id,
            party=party,
            approver_id=approver,
            decision=Decision.APPROVE,
            report_digest=report.digest,
            spec_digest=spec.digest(ledger.digest),
        )
    lifecycle.transition(ledger, spec.system.id, LifecycleState.SIGNED, actor="test", reason="both parties approved")


@pytest.mark.parametrize("plan_in_between", [False, True], ids=["noticed-by-the-cutover", "noticed-by-cutover-plan"])
def test_an_internal_test_edited_after_the_report_voids_report_and_signatures_and_runs_again(
    estate: Any, tmp_path: Path, prefect_server: Any, monkeypatch: pytest.MonkeyPatch, plan_in_between: bool
) -> None:
    from typer.testing import CliRunner

    import cli
    from cutover.settings import get_settings
    from flows.cutover import begin

    old, new = unique_id("selftest"), unique_id("selftest-edited")
    data = demo_spec(estate, system_id=unique_id("tp"), stress_seconds=2)
    data["test_platform"]["stress"]["users"] = 4
    data["test_platform"]["stress"]["thresholds"]["min_rps"] = 1
    selftest = {"kind": "ssh", "id": "selftest", "name": "自检", "host": "cloud_test", "changes_state": False}
    data["test_platform"]["internal_tests"] = [{**selftest, "run": ["count-calls", old]}]
    spec = Spec.model_validate(data)
    specs = tmp_path / "specs"
    write_spec(spec, specs)
    monkeypatch.setenv("CUTOVER_SPECS_DIR", str(specs))
    monkeypatch.setenv("CUTOVER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CUTOVER_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    get_settings.cache_clear()
    try:
        rc = begin(spec.system.id, resume=False, actor="test")
        report = in_flow(lambda: run_stage(rc))
        _sign(rc.ledger, spec, report)
        data["test_platform"]["internal_tests"] = [{**selftest, "run": ["count-calls", new]}]
        edited = Spec.model_validate(data)
        write_spec(edited, specs)
        if plan_in_between:
            cli.register_commands()
            planned = CliRunner().invoke(cli.app, ["plan", str(specs), "--out", str(tmp_path / "plan")])
            assert planned.exit_code == 0, planned.output

        again = begin(spec.system.id, resume=True, actor="test")

        ledger = again.ledger
        assert again.run.id == rc.run.id
        assert lifecycle.current_state(ledger, spec.system.id) is LifecycleState.PLANNED
        assert ledger.latest_report(spec.system.id, ReportKind.TRIAL_RUN) is None
        assert ledger.signatures_for(spec.system.id) == []
        reasons = [e.detail.get("reason", "") for e in audit.events(ledger, object=f"system:{spec.system.id}")]
        assert any(reason.startswith("the spec changed") for reason in reasons)
        cli.register_commands()
        status = CliRunner().invoke(cli.app, ["status"])
        assert status.exit_code == 0 and spec.system.id in status.output and "planned" in status.output

        reissued = in_flow(lambda: run_stage(again))

        assert [estate.calls("cloud_test", old), estate.calls("cloud_test", new)] == [1, 1]
        assert reissued.digest != report.digest
        runs = [(s.attempt, s.status) for s in ledger.list_steps(rc.run.id) if s.step_id == "selftest"]
        assert runs == [(1, StepStatus.SUCCEEDED), (2, StepStatus.SUCCEEDED)]
        assert audit.verify(ledger).ok
    finally:
        get_settings.cache_clear()
