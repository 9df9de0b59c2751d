"""The test-platform stage: stress and internal tests, the trial-run period, the report."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cutover import lifecycle
from cutover.claims import claim
from cutover.errors import StressTestFailed, TrialRunNotOver
from cutover.ledger import Ledger, LifecycleState, ReportKind, RunKind
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
