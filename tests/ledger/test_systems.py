"""Tests of systems and plan entries (cutover/ledger/_systems.py)."""

from __future__ import annotations

from collections.abc import Callable

from cutover.ledger import Disposition, Ledger, LifecycleState

NewSystem = Callable[[Ledger], str]


def test_a_plan_entry_is_stored_and_replaced(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)

    ledger.set_plan_entry(system_id, {"序号": 1, "迁移方式": "整体迁移"})
    ledger.set_plan_entry(system_id, {"序号": 1, "迁移方式": "整合"})

    entry = ledger.get_plan_entry(system_id)
    assert entry is not None and entry.fields == {"序号": 1, "迁移方式": "整合"}
    assert system_id in [e.system_id for e in ledger.list_plan_entries()]


def test_systems_are_listed_by_state(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)

    planned = [s.id for s in ledger.list_systems(state=LifecycleState.PLANNED)]

    assert system_id in planned
    assert system_id not in [s.id for s in ledger.list_systems(state=LifecycleState.TESTED)]


def test_upserting_a_system_reports_what_changed(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)

    result = ledger.upsert_system(
        system_id=system_id,
        name="社会保险信息系统",
        department="省人力资源和社会保障厅",
        disposition=Disposition.RETIRE,
        spec_digest="sm3:abc",
    )

    assert (result.created, result.changed) == (False, ("disposition", "spec_digest"))
    assert result.system.state is LifecycleState.PLANNED
