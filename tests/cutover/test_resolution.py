"""The way out of rollback_incomplete (cutover/resolution.py): what is left, and resolutions by hand."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cutover import audit, lifecycle
from cutover.errors import LifecycleError, RetentionError
from cutover.ledger import Ledger, LifecycleState, RunKind, RunState
from cutover.resolution import Leftover, ManualState, resolve_manually, unresolved
from tests._incomplete import compensation_failed, rollback_failed

NewSystem = Callable[[Ledger], str]


def test_a_failed_undo_of_a_cutover_is_named_as_the_compensation_left_to_do(
    ledger: Ledger, new_system: NewSystem
) -> None:
    incomplete = compensation_failed(ledger, new_system(ledger))

    left = unresolved(ledger, incomplete.system_id)

    assert (left.leftover, left.run_id, left.cutover_run_id) == (
        Leftover.COMPENSATION,
        incomplete.failed_run_id,
        incomplete.cutover_run_id,
    )
    assert left.failed == ("freeze:undo (failed): appctl: permission denied",)
    assert "the undo of its cutover" in left.describe() and "freeze:undo" in left.describe()


def test_a_failed_rollback_is_named_with_its_failed_step(ledger: Ledger, new_system: NewSystem) -> None:
    incomplete = rollback_failed(ledger, new_system(ledger))

    left = unresolved(ledger, incomplete.system_id)

    assert (left.leftover, left.run_id, left.cutover_run_id) == (
        Leftover.ROLLBACK,
        incomplete.failed_run_id,
        incomplete.cutover_run_id,
    )
    assert left.failed == ("route-back (failed): route: no such target",)


def test_a_system_that_needs_nothing_is_refused_with_what_applies_instead(
    ledger: Ledger, new_system: NewSystem
) -> None:
    system_id = new_system(ledger)

    with pytest.raises(LifecycleError, match="is planned: nothing to resolve"):
        unresolved(ledger, system_id)
    with pytest.raises(LifecycleError, match="applies only to a rollback_incomplete system"):
        resolve_manually(ledger, system_id, ManualState.COMPENSATED, actor="ops", note="nothing")
    assert lifecycle.current_state(ledger, system_id) is LifecycleState.PLANNED


def test_retained_is_refused_when_the_cutover_never_opened_a_window(ledger: Ledger, new_system: NewSystem) -> None:
    incomplete = compensation_failed(ledger, new_system(ledger))

    with pytest.raises(RetentionError, match="no open retention window"):
        resolve_manually(ledger, incomplete.system_id, ManualState.RETAINED, actor="ops", note="kept the cloud")
    with pytest.raises(RetentionError, match="resolve it as compensated"):
        resolve_manually(ledger, incomplete.system_id, ManualState.ROLLED_BACK, actor="ops", note="routed back")

    assert lifecycle.current_state(ledger, incomplete.system_id) is LifecycleState.ROLLBACK_INCOMPLETE
    assert "resolve.manual" not in {e.action for e in audit.events(ledger, object=f"system:{incomplete.system_id}")}


def test_compensated_is_refused_while_the_original_is_retained(ledger: Ledger, new_system: NewSystem) -> None:
    incomplete = rollback_failed(ledger, new_system(ledger))

    with pytest.raises(RetentionError, match=r"resolve it as rolled_back \(.*\) or retained"):
        resolve_manually(ledger, incomplete.system_id, ManualState.COMPENSATED, actor="ops", note="undone")

    assert ledger.current_retention_window(incomplete.system_id) is not None


def test_a_resolution_by_hand_without_a_note_is_refused(ledger: Ledger, new_system: NewSystem) -> None:
    incomplete = rollback_failed(ledger, new_system(ledger))

    with pytest.raises(LifecycleError, match="needs a note"):
        resolve_manually(ledger, incomplete.system_id, ManualState.ROLLED_BACK, actor="ops", note="  ")


def test_a_run_left_running_is_ended_and_its_lock_released(ledger: Ledger, new_system: NewSystem) -> None:
    incomplete = rollback_failed(ledger, new_system(ledger))
    dead = ledger.create_run(incomplete.system_id, RunKind.ROLLBACK, reverses_run_id=incomplete.cutover_run_id)
    ledger.acquire_lock(incomplete.system_id, dead.id, RunKind.ROLLBACK)

    resolution = resolve_manually(
        ledger, incomplete.system_id, ManualState.ROLLED_BACK, actor="ops", note="routed back by hand"
    )

    assert resolution.ended_runs == (dead.id,) and resolution.released_lock == dead.id
    run = ledger.get_run(dead.id)
    assert run is not None and run.state is RunState.INCOMPLETE and "resolution by hand" in (run.note or "")
    assert ledger.get_lock(incomplete.system_id) is None
    assert lifecycle.current_state(ledger, incomplete.system_id) is LifecycleState.ROLLED_BACK
    assert ledger.current_retention_window(incomplete.system_id) is None


def test_a_system_resolved_as_compensated_may_start_a_new_cutover(ledger: Ledger, new_system: NewSystem) -> None:
    incomplete = compensation_failed(ledger, new_system(ledger))

    resolve_manually(ledger, incomplete.system_id, ManualState.COMPENSATED, actor="ops", note="unfrozen by hand")

    lifecycle.transition(ledger, incomplete.system_id, LifecycleState.PLANNED, actor="ops", reason="new attempt")
    assert lifecycle.current_state(ledger, incomplete.system_id) is LifecycleState.PLANNED
