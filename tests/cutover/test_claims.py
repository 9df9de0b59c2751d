"""Claiming a system for a run (cutover/claims.py): one run at a time, a dead holder continued, a live one never."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cutover import audit
from cutover.claims import HolderState, claim
from cutover.errors import ConcurrencyRefused
from cutover.ledger import Ledger, RunKind


def _lookup(state: HolderState | None) -> Callable[[str], HolderState | None]:
    return lambda _flow_run_id: state


def _first_run(ledger: Ledger, system_id: str) -> str:
    return claim(ledger, system_id, RunKind.ROLLBACK, actor="test", flow_run_id="flow-run-1").run.id


def test_a_second_request_is_refused_while_the_holders_flow_run_is_alive_even_with_resume(
    ledger: Ledger, new_system: Callable[[Ledger], str]
) -> None:
    system_id = new_system(ledger)
    run_id = _first_run(ledger, system_id)
    alive = _lookup(HolderState(alive=True, state="Running"))
    with pytest.raises(ConcurrencyRefused, match=f"run {run_id} .*Running.*it is alive, so it is never taken over"):
        claim(
            ledger, system_id, RunKind.ROLLBACK, actor="test", flow_run_id="flow-run-2", resume=True, holder_state=alive
        )
    refusals = [e for e in audit.events(ledger, object=f"system:{system_id}") if e.action == "rollback.refused"]
    assert len(refusals) == 1


def test_a_request_finding_a_crashed_holder_continues_its_run_instead_of_refusing(
    ledger: Ledger, new_system: Callable[[Ledger], str]
) -> None:
    system_id = new_system(ledger)
    run_id = _first_run(ledger, system_id)
    crashed = _lookup(HolderState(alive=False, state="Crashed"))
    taken = claim(ledger, system_id, RunKind.ROLLBACK, actor="ui", flow_run_id="flow-run-2", holder_state=crashed)
    assert taken.taken_over and taken.run.id == run_id
    assert ledger.get_run(run_id).flow_run_id == "flow-run-2"  # type: ignore[union-attr]  # its restarts find it
    resumed = [e for e in audit.events(ledger, object=f"system:{system_id}") if e.action == "rollback.resumed"]
    assert resumed[0].detail["previous_state"] == "Crashed" and resumed[0].detail["previous_flow_run"] == "flow-run-1"


def test_without_a_way_to_ask_prefect_only_resume_takes_a_running_run_over(
    ledger: Ledger, new_system: Callable[[Ledger], str]
) -> None:
    system_id = new_system(ledger)
    run_id = _first_run(ledger, system_id)
    with pytest.raises(ConcurrencyRefused, match="resume=true"):
        claim(ledger, system_id, RunKind.ROLLBACK, actor="test", flow_run_id="flow-run-2", holder_state=_lookup(None))
    taken = claim(ledger, system_id, RunKind.ROLLBACK, actor="test", flow_run_id="flow-run-2", resume=True)
    assert taken.taken_over and taken.run.id == run_id


def test_the_same_flow_run_restarted_after_a_suspend_finds_its_own_run(
    ledger: Ledger, new_system: Callable[[Ledger], str]
) -> None:
    system_id = new_system(ledger)
    run_id = _first_run(ledger, system_id)
    again = claim(ledger, system_id, RunKind.ROLLBACK, actor="test", flow_run_id="flow-run-1")
    assert again.restarted and again.run.id == run_id
