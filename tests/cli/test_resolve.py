"""``cutover resolve SYSTEM`` (cli/_resolve.py): the way out of rollback_incomplete, without Python."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import cli
from cutover import audit, lifecycle
from cutover.ledger import Ledger, LifecycleState, RunKind, RunState
from cutover.lifecycle import register_system
from cutover.settings import get_settings
from demo.estate import Estate
from demo.specs import secret_env
from rollback import RollbackState, run_rollback
from tests._incomplete import Incomplete, compensation_failed, rollback_failed
from tests.rollback._retained import cut_over_for_real, estate_spec, unique_system, whoami
from tests.specbuilder import write_spec

Given = Callable[[Ledger, str], Incomplete]


@pytest.fixture
def specs(tmp_path: Path, isolated_ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The CLI's settings point at the test's own ledger and specs directory (no Prefect server)."""
    directory = tmp_path / "specs"
    monkeypatch.setenv("CUTOVER_DATABASE_URL", isolated_ledger.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CUTOVER_SPECS_DIR", str(directory))
    monkeypatch.setenv("CUTOVER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    get_settings.cache_clear()
    yield directory
    get_settings.cache_clear()


def cutover(*args: str) -> Result:
    return CliRunner().invoke(cli.register_commands(), list(args))


def a_system(ledger: Ledger) -> str:
    system_id = unique_system("rs")
    register_system(ledger, system_id=system_id, name="社保", department="省人社厅", disposition="migrate", actor="t")
    return system_id


OUTCOMES: dict[str, tuple[Given, bool]] = {  # the state, how the system got stuck, the window open after
    "compensated": (compensation_failed, False),
    "retained": (rollback_failed, True),
    "rolled_back": (rollback_failed, False),
}


@pytest.mark.usefixtures("specs")
@pytest.mark.parametrize("state", OUTCOMES)
def test_a_manual_resolution_takes_a_rollback_incomplete_system_to_the_state_given_and_audits_it(
    state: str, isolated_ledger: Ledger
) -> None:
    given, window_open = OUTCOMES[state]
    incomplete = given(isolated_ledger, a_system(isolated_ledger))
    note = "gateway routed to legacy and legacy unfrozen by hand (ticket OPS-1234)"

    result = cutover("resolve", incomplete.system_id, "--manual", "--state", state, "--note", note)

    assert result.exit_code == 0, result.output
    assert f"rollback_incomplete -> {state}" in result.stdout
    assert lifecycle.current_state(isolated_ledger, incomplete.system_id) is LifecycleState(state)
    assert (isolated_ledger.current_retention_window(incomplete.system_id) is not None) is window_open
    events = audit.events(isolated_ledger, object=f"system:{incomplete.system_id}", limit=2)
    assert [e.action for e in events] == ["resolve.manual", "lifecycle.transition"]
    manual, moved = events
    assert manual.actor.startswith("cli:") and manual.actor == moved.actor
    assert (manual.detail["from"], manual.detail["to"], manual.detail["note"]) == ("rollback_incomplete", state, note)
    assert note in moved.detail["reason"]
    verified = cutover("audit", "verify")
    assert verified.exit_code == 0 and "audit chain intact" in verified.stdout, verified.output


@pytest.mark.usefixtures("specs")
def test_resolving_a_system_that_needs_nothing_is_refused_in_one_line_with_exit_code_3(
    isolated_ledger: Ledger,
) -> None:
    system_id = a_system(isolated_ledger)

    retried = cutover("resolve", system_id)
    manual = cutover("resolve", system_id, "--manual", "--state", "rolled_back", "--note", "routed back")

    for result in (retried, manual):
        assert result.exit_code == 3, result.output
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
        assert f"system {system_id} is planned: nothing to resolve" in result.stderr
    assert lifecycle.current_state(isolated_ledger, system_id) is LifecycleState.PLANNED


@pytest.mark.usefixtures("specs")
def test_a_manual_resolution_without_a_note_is_a_usage_error_that_changes_nothing(isolated_ledger: Ledger) -> None:
    incomplete = rollback_failed(isolated_ledger, a_system(isolated_ledger))

    result = cutover("resolve", incomplete.system_id, "--manual", "--state", "rolled_back")

    assert result.exit_code == 2 and "--note" in result.stderr, result.output
    assert lifecycle.current_state(isolated_ledger, incomplete.system_id) is LifecycleState.ROLLBACK_INCOMPLETE


@pytest.mark.usefixtures("specs")
def test_a_state_the_retention_window_contradicts_is_refused(isolated_ledger: Ledger) -> None:
    incomplete = compensation_failed(isolated_ledger, a_system(isolated_ledger))

    result = cutover("resolve", incomplete.system_id, "--manual", "--state", "retained", "--note", "kept the cloud")

    assert result.exit_code == 3 and "no open retention window" in result.stderr, result.output


def test_resolve_retries_a_failed_rollback_once_its_cause_is_fixed_without_repeating_completed_steps(
    specs: Path, clean_estate: Estate, isolated_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in secret_env(clean_estate).items():
        monkeypatch.setenv(name, value)
    spec = estate_spec(clean_estate)
    retained = cut_over_for_real(clean_estate, isolated_ledger, spec, get_settings())
    assert spec.rollback is not None
    rollback = spec.rollback.model_dump(mode="json", exclude_none=True)
    next(step for step in rollback["steps"] if step["id"] == "route-back")["run"] = ["route", "nowhere"]
    broken = estate_spec(clean_estate, system_id=spec.system.id, rollback=rollback)
    first = run_rollback(broken, isolated_ledger, actor="watch")
    assert first.state is RollbackState.INCOMPLETE and first.failed_step == "route-back"

    write_spec(broken, specs)
    still = cutover("resolve", spec.system.id)

    assert still.exit_code == 4 and "ROLLBACK INCOMPLETE" in still.stderr, still.output
    assert "its rollback of cutover run" in still.stdout and "route-back (failed)" in still.stdout

    write_spec(spec, specs)  # the cause is fixed
    fixed = cutover("resolve", spec.system.id)

    assert fixed.exit_code == 0, fixed.output
    assert f"reverse-sync: run: done in run {first.run_id}" in fixed.stdout
    assert lifecycle.current_state(isolated_ledger, spec.system.id) is LifecycleState.ROLLED_BACK
    assert whoami(clean_estate) == "legacy" and isolated_ledger.current_retention_window(spec.system.id) is None
    rollbacks = [r for r in isolated_ledger.list_runs(spec.system.id) if r.kind is RunKind.ROLLBACK]
    assert [r.state for r in rollbacks] == [RunState.INCOMPLETE, RunState.INCOMPLETE, RunState.SUCCEEDED]
    assert {r.reverses_run_id for r in rollbacks} == {retained.cutover_run_id}
    retried = [
        e for e in audit.events(isolated_ledger, object=f"system:{spec.system.id}") if e.action == "resolve.retried"
    ]
    assert [e.detail["run_id"] for e in retried] == [rollbacks[2].id, rollbacks[1].id]
    assert cutover("audit", "verify").exit_code == 0
