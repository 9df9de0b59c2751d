"""Tests of runs and step executions (cutover/ledger/_runs.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from cutover.errors import LedgerError
from cutover.ledger import Ledger, RunKind, RunState, StepClaim, StepPhase, StepStatus
from cutover.ledger._runs import OUTPUT_TAIL_CHARS

NewSystem = Callable[[Ledger], str]


@pytest.fixture
def run_id(ledger: Ledger, new_system: NewSystem) -> str:
    return ledger.create_run(new_system(ledger), RunKind.CUTOVER, flow_run_id="f-1").id


def test_begin_step_records_started_before_the_step_acts(ledger: Ledger, run_id: str) -> None:
    claim = ledger.begin_step(run_id, "freeze-writes", phase=StepPhase.CUTOVER, host="legacy", detail={"n": 1})

    stored = ledger.get_step(run_id, "freeze-writes")
    assert claim.is_new and stored is not None
    assert (stored.status, stored.host, stored.detail, stored.finished_at) == (
        StepStatus.STARTED,
        "legacy",
        {"n": 1},
        None,
    )


def test_beginning_a_step_again_returns_the_existing_record(ledger: Ledger, run_id: str) -> None:
    first = ledger.begin_step(run_id, "sync", phase=StepPhase.CUTOVER)
    ledger.finish_step(run_id, "sync", status=StepStatus.SUCCEEDED, exit_status=0)

    again = ledger.begin_step(run_id, "sync", phase=StepPhase.CUTOVER)

    assert not again.is_new and again.record.id == first.record.id
    assert again.record.status is StepStatus.SUCCEEDED
    assert [step.step_id for step in ledger.list_steps(run_id)] == ["sync"]


def test_finish_step_records_the_outcome_and_keeps_only_the_output_tail(ledger: Ledger, run_id: str) -> None:
    ledger.begin_step(run_id, "switch", phase=StepPhase.CUTOVER, detail={"command": "route cloud"})

    record = ledger.finish_step(
        run_id,
        "switch",
        status=StepStatus.FAILED,
        exit_status=3,
        duration_s=1.25,
        output_tail="x" * OUTPUT_TAIL_CHARS + "the end",
        detail={"stderr": "no route"},
    )

    stored = ledger.get_step(run_id, "switch")
    assert stored is not None and stored.finished_at is not None
    assert (stored.status, stored.exit_status, stored.duration_s) == (StepStatus.FAILED, 3, 1.25)
    assert stored.output_tail.endswith("the end") and len(stored.output_tail) == OUTPUT_TAIL_CHARS
    assert stored.detail == record.detail == {"command": "route cloud", "stderr": "no route"}


def test_finishing_a_step_never_begun_says_to_begin_it_first(ledger: Ledger, run_id: str) -> None:
    with pytest.raises(LedgerError, match="has no step 'ghost' in the ledger; call begin_step first"):
        ledger.finish_step(run_id, "ghost", status=StepStatus.SUCCEEDED)


def test_finishing_a_step_as_started_is_refused(ledger: Ledger, run_id: str) -> None:
    ledger.begin_step(run_id, "s", phase=StepPhase.UNDO)

    with pytest.raises(LedgerError, match="needs an outcome"):
        ledger.finish_step(run_id, "s", status=StepStatus.STARTED)


def test_beginning_a_step_of_an_unknown_run_is_refused(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="run nope is not in the ledger; create it with create_run first"):
        ledger.begin_step("nope", "s", phase=StepPhase.CUTOVER)


def test_two_workers_beginning_the_same_step_get_one_record(db_url: str, new_system: NewSystem) -> None:
    ledgers = [Ledger(db_url) for _ in range(2)]
    run = ledgers[0].create_run(new_system(ledgers[0]), RunKind.ROLLBACK)
    claims: list[StepClaim] = []

    def begin(ledger: Ledger) -> None:
        claims.append(ledger.begin_step(run.id, "reverse-sync", phase=StepPhase.ROLLBACK))

    threads = [threading.Thread(target=begin, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    for ledger in ledgers:
        ledger.dispose()

    assert sorted(claim.is_new for claim in claims) == [False, True]
    assert len({claim.record.id for claim in claims}) == 1


def test_a_run_is_created_running_and_finished_once(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    cutover = ledger.create_run(system_id, RunKind.CUTOVER)
    rollback = ledger.create_run(system_id, RunKind.ROLLBACK, reverses_run_id=cutover.id)

    ledger.finish_run(rollback.id, RunState.SUCCEEDED, note="traffic back on the original")
    ledger.finish_run(rollback.id, RunState.SUCCEEDED)

    stored = ledger.get_run(rollback.id)
    assert stored is not None and stored.finished_at is not None
    assert (stored.state, stored.note, stored.reverses_run_id) == (
        RunState.SUCCEEDED,
        "traffic back on the original",
        cutover.id,
    )
    with pytest.raises(LedgerError, match="already finished as 'succeeded'; it cannot be finished again as 'failed'"):
        ledger.finish_run(rollback.id, RunState.FAILED)


def test_running_run_for_finds_only_runs_still_running(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    done = ledger.create_run(system_id, RunKind.CUTOVER)
    ledger.finish_run(done.id, RunState.COMPENSATED)
    assert ledger.running_run_for(system_id) is None

    running = ledger.create_run(system_id, RunKind.ROLLBACK)

    found = ledger.running_run_for(system_id)
    assert found is not None and found.id == running.id
    assert ledger.running_run_for(system_id, kind=RunKind.CUTOVER) is None
    assert [run.id for run in ledger.list_runs(system_id)] == [done.id, running.id]
