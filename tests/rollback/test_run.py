"""The rollback on the real estate (rollback/_run.py): data back, traffic back, recorded, retried."""

from __future__ import annotations

import pytest

from cutover.errors import RetentionError
from cutover.ledger import Ledger, LifecycleState, RunKind, RunState, StepStatus
from cutover.lifecycle import current_state
from cutover.settings import Settings
from demo.estate import Estate
from rollback import RollbackState, run_rollback
from tests.rollback._retained import (
    cut_over_for_real,
    estate_spec,
    pay_through_gateway,
    payment_ids,
    whoami,
)

pytestmark = pytest.mark.usefixtures("demo_secrets")


def test_rollback_restores_traffic_and_the_rows_written_on_the_cloud(
    clean_estate: Estate, rb_ledger: Ledger, settings: Settings
) -> None:
    retained = cut_over_for_real(clean_estate, rb_ledger, estate_spec(clean_estate), settings)
    assert whoami(clean_estate) == "cloud"
    written = pay_through_gateway(clean_estate, 5)
    assert not set(written) <= payment_ids(clean_estate, "legacy")

    outcome = run_rollback(retained.spec, rb_ledger, actor="test", settings=settings)

    assert outcome.state is RollbackState.SUCCEEDED, outcome.summary()
    assert whoami(clean_estate) == "legacy" and clean_estate.route_target == "legacy"
    assert set(written) <= payment_ids(clean_estate, "legacy")
    assert current_state(rb_ledger, retained.system_id) is LifecycleState.ROLLED_BACK
    assert rb_ledger.current_retention_window(retained.system_id) is None
    run = rb_ledger.get_run(outcome.run_id)
    assert run is not None and (run.kind, run.state, run.reverses_run_id) == (
        RunKind.ROLLBACK,
        RunState.SUCCEEDED,
        retained.cutover_run_id,
    )
    steps = [(s.step_id, s.status) for s in rb_ledger.list_steps(outcome.run_id)]
    assert [k for k, _ in steps] == [
        "auto-freeze-cloud",  # the demo spec does not freeze the cloud copy: the tool adds it, first
        "unfreeze-legacy",
        "reverse-sync",
        "verify-reverse",
        "route-back",
        "original-health",
    ]
    assert {status for _, status in steps} == {StepStatus.SUCCEEDED}
    assert rb_ledger.get_lock(retained.system_id) is None
    assert outcome.plan_changes == [
        "added step 'auto-freeze-cloud': writes on the cloud copy are frozen first (cutover step 'freeze''s command "
        "on host 'cloud', where the cutover copied the data to), so no write acknowledged during the rollback is "
        "lost; the cloud copy stays frozen afterwards, its data kept for inspection"
    ]
    assert "The tool made the order of the spec's steps safe: added step 'auto-freeze-cloud'" in outcome.summary()


def test_a_rollback_written_in_a_losing_order_runs_safely_and_leaves_the_original_writable_and_serving(
    clean_estate: Estate, rb_ledger: Ledger, settings: Settings
) -> None:
    spec = estate_spec(clean_estate)
    assert spec.rollback is not None
    steps = {s.id: s.model_dump(mode="json", exclude_none=True) for s in spec.rollback.steps}
    backwards = {"steps": [steps["route-back"], steps["reverse-sync"], steps["unfreeze-legacy"]]}
    badly_ordered = estate_spec(clean_estate, system_id=spec.system.id, rollback=backwards)
    retained = cut_over_for_real(clean_estate, rb_ledger, badly_ordered, settings)
    written = pay_through_gateway(clean_estate, 3)
    lines: list[str] = []

    outcome = run_rollback(retained.spec, rb_ledger, actor="test", settings=settings, log=lines.append)

    assert outcome.state is RollbackState.SUCCEEDED, outcome.summary()
    assert [s.step_id for s in rb_ledger.list_steps(outcome.run_id)] == [
        "auto-freeze-cloud",
        "unfreeze-legacy",
        "reverse-sync",
        "auto-verify-rows-back",
        "route-back",
    ]
    assert set(written) <= payment_ids(clean_estate, "legacy")
    assert whoami(clean_estate) == "legacy"
    assert pay_through_gateway(clean_estate, 1)  # the original takes writes again
    said = "\n".join(lines)
    assert "rollback order made safe: moved step 'unfreeze-legacy': the original is made writable before" in said
    assert "moved step 'route-back': the traffic goes back last" in said
    assert "added step 'auto-verify-rows-back': the cutover verified the data (step 'verify-rows')" in said


def test_a_failed_step_ends_incomplete_naming_what_is_left_and_a_retry_repeats_no_completed_step(
    clean_estate: Estate, rb_ledger: Ledger, settings: Settings
) -> None:
    spec = estate_spec(clean_estate)
    retained = cut_over_for_real(clean_estate, rb_ledger, spec, settings)
    assert spec.rollback is not None
    rollback = spec.rollback.model_dump(mode="json", exclude_none=True)
    rollback["steps"][3]["run"] = ["route", "nowhere"]
    broken = estate_spec(clean_estate, system_id=spec.system.id, rollback=rollback)

    first = run_rollback(broken, rb_ledger, actor="test", settings=settings)

    assert first.state is RollbackState.INCOMPLETE and first.failed_step == "route-back"
    assert "step 'route-back'" in first.remaining[0] and "health checks of the original" in first.remaining[-1]
    assert current_state(rb_ledger, retained.system_id) is LifecycleState.ROLLBACK_INCOMPLETE
    assert rb_ledger.current_retention_window(retained.system_id) is not None

    second = run_rollback(spec, rb_ledger, actor="test", settings=settings)

    assert second.state is RollbackState.SUCCEEDED, second.summary()
    outcomes = {s.step_id: s.outcome for s in second.steps}
    assert outcomes["reverse-sync"] == outcomes["unfreeze-legacy"] == f"done in run {first.run_id}"
    assert outcomes["route-back"] == "succeeded" and outcomes["verify-reverse"] == "succeeded"
    assert rb_ledger.get_step(second.run_id, "reverse-sync").status is StepStatus.SKIPPED  # type: ignore[union-attr]
    assert whoami(clean_estate) == "legacy"


def test_a_second_rollback_after_success_is_refused_as_already_done(
    clean_estate: Estate, rb_ledger: Ledger, settings: Settings
) -> None:
    retained = cut_over_for_real(clean_estate, rb_ledger, estate_spec(clean_estate), settings)
    first = run_rollback(retained.spec, rb_ledger, actor="test", settings=settings)

    with pytest.raises(RetentionError, match=f"already rolled back by run {first.run_id}"):
        run_rollback(retained.spec, rb_ledger, actor="test", settings=settings)
    assert [r.id for r in rb_ledger.list_runs(retained.system_id) if r.kind is RunKind.ROLLBACK] == [first.run_id]
