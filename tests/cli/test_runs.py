"""``cutover runs SYSTEM`` (cli/_runs.py): a system's runs from the ledger, newest first, and their steps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import cli
from cutover import claims, executions, lifecycle
from cutover.executions import definition_digest
from cutover.ledger import Ledger, LifecycleState, RunKind, RunState, StepPhase, StepStatus
from cutover.retention import window_end
from cutover.settings import get_settings


@pytest.fixture
def ledger_env(tmp_path: Path, isolated_ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    """The CLI reads the test's own ledger (no Prefect server)."""
    monkeypatch.setenv("CUTOVER_DATABASE_URL", isolated_ledger.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CUTOVER_SPECS_DIR", str(tmp_path / "specs"))
    monkeypatch.setenv("CUTOVER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    get_settings.cache_clear()
    yield isolated_ledger
    get_settings.cache_clear()


def cutover(*args: str) -> Result:
    return CliRunner().invoke(cli.register_commands(), list(args))


def step(ledger: Ledger, run_id: str, key: str, host: str, status: StepStatus, exit_status: int, took: float) -> None:
    phase = StepPhase.CUTOVER if key != "route-back" else StepPhase.ROLLBACK
    digest = definition_digest({"key": key})
    executions.begin(ledger, run_id, key, step_digest=digest, phase=phase, actor="test", host=host)
    executions.finish(
        ledger, run_id, key, status=status, actor="test", exit_status=exit_status, duration_s=took, output_tail=""
    )


def cut_over_then_rolled_back_by_the_watch(ledger: Ledger, system_id: str) -> tuple[str, str]:
    for state in (LifecycleState.TESTED, LifecycleState.REPORT_READY, LifecycleState.SIGNED):
        lifecycle.transition(ledger, system_id, state, actor="test", reason="test set-up")
    cut = claims.claim(ledger, system_id, RunKind.CUTOVER, actor="cli:wang").run
    lifecycle.transition(ledger, system_id, LifecycleState.CUTTING_OVER, actor="test", reason="test set-up")
    step(ledger, cut.id, "switch-traffic", "gateway", StepStatus.SUCCEEDED, 0, 1.25)
    ledger.open_retention_window(system_id, cut.id, window_end(ledger.now(), 3))
    ledger.finish_run(cut.id, RunState.SUCCEEDED)
    claims.release(ledger, system_id, cut.id)
    lifecycle.transition(ledger, system_id, LifecycleState.RETAINED, actor="test", reason="test cutover")
    back = claims.claim(ledger, system_id, RunKind.ROLLBACK, actor="watch", reverses_run_id=cut.id).run
    step(ledger, back.id, "route-back", "gateway", StepStatus.FAILED, 3, 0.5)
    ledger.finish_run(back.id, RunState.INCOMPLETE, note="route-back failed")
    return cut.id, back.id


def test_runs_lists_a_systems_runs_newest_first_with_who_started_them_and_the_newest_runs_steps(
    ledger_env: Ledger, new_system: Callable[[Ledger], str]
) -> None:
    system_id = new_system(ledger_env)
    cut_id, back_id = cut_over_then_rolled_back_by_the_watch(ledger_env, system_id)

    result = cutover("runs", system_id)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index(back_id) < out.index(cut_id), "newest first"
    rollback_row = next(line for line in out.splitlines() if back_id in line and "rollback" in line)
    assert "incomplete" in rollback_row and "watch" in rollback_row
    cutover_row = next(line for line in out.splitlines() if cut_id in line and "cutover" in line)
    assert "succeeded" in cutover_row and "cli:wang" in cutover_row
    steps_row = next(line for line in out.splitlines() if "route-back" in line)
    assert all(text in steps_row for text in ("gateway", "rollback", "failed", "0.5 s", "3"))
    assert "switch-traffic" not in out


def test_runs_steps_shows_the_steps_of_the_run_asked_for(
    ledger_env: Ledger, new_system: Callable[[Ledger], str]
) -> None:
    system_id = new_system(ledger_env)
    cut_id, _ = cut_over_then_rolled_back_by_the_watch(ledger_env, system_id)

    result = cutover("runs", system_id, "--steps", cut_id)

    assert result.exit_code == 0, result.output
    steps_row = next(line for line in result.stdout.splitlines() if "switch-traffic" in line)
    assert all(text in steps_row for text in ("gateway", "cutover", "succeeded", "1.2 s", "0"))
    assert "route-back" not in result.stdout


def test_runs_of_an_unknown_system_or_run_exit_1_in_one_line(
    ledger_env: Ledger, new_system: Callable[[Ledger], str]
) -> None:
    system_id = new_system(ledger_env)
    cut_over_then_rolled_back_by_the_watch(ledger_env, system_id)

    unknown_system = cutover("runs", "no-such-system")
    unknown_run = cutover("runs", system_id, "--steps", "no-such-run")

    for result in (unknown_system, unknown_run):
        assert result.exit_code == 1, result.output
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
    assert "cutover status" in unknown_system.stderr and f"cutover runs {system_id}" in unknown_run.stderr


def test_a_system_without_runs_says_how_to_start_one(ledger_env: Ledger, new_system: Callable[[Ledger], str]) -> None:
    system_id = new_system(ledger_env)

    result = cutover("runs", system_id)

    assert result.exit_code == 0 and f"cutover run {system_id}" in result.stdout, result.output
