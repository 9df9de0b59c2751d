"""Tests of runs and step executions (cutover/ledger/_runs.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from cutover.errors import LedgerError
from cutover.ledger import Ledger, RunKind, RunState, StepClaim, StepExecution, StepPhase, StepStatus
from cutover.ledger._runs import OUTPUT_TAIL_CHARS

NewSystem = Callable[[Ledger], str]
V1 = "sm3:" + "1" * 64  # the digest of a step definition
V2 = "sm3:" + "2" * 64  # the digest of the same step, edited


@pytest.fixture
def ledger(isolated_ledger: Ledger) -> Ledger:
    """These tests write step rows below the audit layer (no audit events): a database of their own,
    so the shared ledger's audit chain, which other tests verify, never sees them."""
    return isolated_ledger


@pytest.fixture
def run_id(ledger: Ledger, new_system: NewSystem) -> str:
    return ledger.create_run(new_system(ledger), RunKind.CUTOVER, flow_run_id="f-1").id


def test_begin_step_records_started_before_the_step_acts(ledger: Ledger, run_id: str) -> None:
    claim = ledger.begin_step(
        run_id, "freeze-writes", step_digest=V1, phase=StepPhase.CUTOVER, host="legacy", detail={"n": 1}
    )

    stored = ledger.get_step(run_id, "freeze-writes")
    assert claim.is_new and stored is not None
    assert (stored.status, stored.host, stored.detail, stored.finished_at) == (
        StepStatus.STARTED,
        "legacy",
        {"n": 1},
        None,
    )


def test_beginning_a_step_again_under_the_same_definition_returns_its_result(ledger: Ledger, run_id: str) -> None:
    first = ledger.begin_step(run_id, "sync", step_digest=V1, phase=StepPhase.CUTOVER)
    ledger.finish_step(run_id, "sync", status=StepStatus.SUCCEEDED, exit_status=0)

    again = ledger.begin_step(run_id, "sync", step_digest=V1, phase=StepPhase.CUTOVER)

    assert not again.is_new and again.done and again.record.id == first.record.id
    assert again.record.status is StepStatus.SUCCEEDED
    assert [step.step_id for step in ledger.list_steps(run_id)] == ["sync"]


def test_finish_step_records_the_outcome_and_keeps_only_the_output_tail(ledger: Ledger, run_id: str) -> None:
    ledger.begin_step(run_id, "switch", step_digest=V1, phase=StepPhase.CUTOVER, detail={"command": "route cloud"})

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
    ledger.begin_step(run_id, "s", step_digest=V1, phase=StepPhase.UNDO)

    with pytest.raises(LedgerError, match="needs an outcome"):
        ledger.finish_step(run_id, "s", status=StepStatus.STARTED)


def test_beginning_a_step_of_an_unknown_run_is_refused(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="run nope is not in the ledger; create it with create_run first"):
        ledger.begin_step("nope", "s", step_digest=V1, phase=StepPhase.CUTOVER)


def test_two_workers_beginning_the_same_step_get_one_record(db_url: str, new_system: NewSystem) -> None:
    ledgers = [Ledger(db_url) for _ in range(2)]
    run = ledgers[0].create_run(new_system(ledgers[0]), RunKind.ROLLBACK)
    claims: list[StepClaim] = []

    def begin(ledger: Ledger) -> None:
        claims.append(ledger.begin_step(run.id, "reverse-sync", step_digest=V1, phase=StepPhase.ROLLBACK))

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


def _attempts(ledger: Ledger, run_id: str, key: str) -> list[tuple[int, str | None, StepStatus]]:
    return [(s.attempt, s.step_digest, s.status) for s in ledger.list_steps(run_id) if s.step_id == key]


def test_a_result_recorded_under_another_step_definition_does_not_count(ledger: Ledger, run_id: str) -> None:
    ledger.begin_step(run_id, "selftest", step_digest=V1, phase=StepPhase.INTERNAL_TEST)
    ledger.finish_step(run_id, "selftest", status=StepStatus.SUCCEEDED)

    edited = ledger.begin_step(run_id, "selftest", step_digest=V2, phase=StepPhase.INTERNAL_TEST)

    assert edited.is_new and not edited.done and edited.closed is None
    assert (edited.record.attempt, edited.record.status) == (2, StepStatus.STARTED)
    assert _attempts(ledger, run_id, "selftest") == [(1, V1, StepStatus.SUCCEEDED), (2, V2, StepStatus.STARTED)]
    current = ledger.get_step(run_id, "selftest")
    assert current is not None and current.attempt == 2


def test_a_step_that_did_not_succeed_begins_again_as_a_new_attempt_keeping_the_failed_one(
    ledger: Ledger, run_id: str
) -> None:
    ledger.begin_step(run_id, "sync", step_digest=V1, phase=StepPhase.CUTOVER)
    ledger.finish_step(run_id, "sync", status=StepStatus.FAILED, exit_status=1)

    again = ledger.begin_step(run_id, "sync", step_digest=V1, phase=StepPhase.CUTOVER)

    assert again.is_new and again.record.attempt == 2
    assert _attempts(ledger, run_id, "sync") == [(1, V1, StepStatus.FAILED), (2, V1, StepStatus.STARTED)]


def test_an_attempt_left_started_under_another_definition_is_closed_unknown_when_superseded(
    ledger: Ledger, run_id: str
) -> None:
    ledger.begin_step(run_id, "switch", step_digest=V1, phase=StepPhase.CUTOVER)  # then the worker died

    unchanged = ledger.begin_step(run_id, "switch", step_digest=V1, phase=StepPhase.CUTOVER)
    edited = ledger.begin_step(run_id, "switch", step_digest=V2, phase=StepPhase.CUTOVER)

    assert not unchanged.is_new and not unchanged.done and unchanged.record.attempt == 1
    assert edited.is_new and edited.closed is not None and edited.closed.attempt == 1
    assert edited.closed.detail["superseded"] == f"the step definition changed to {V2}"
    assert _attempts(ledger, run_id, "switch") == [(1, V1, StepStatus.UNKNOWN), (2, V2, StepStatus.STARTED)]


def test_a_finished_step_execution_is_never_finished_again(ledger: Ledger, run_id: str) -> None:
    ledger.begin_step(run_id, "freeze", step_digest=V1, phase=StepPhase.CUTOVER)
    ledger.finish_step(run_id, "freeze", status=StepStatus.SUCCEEDED)

    with pytest.raises(LedgerError, match=r"attempt 1 already finished as 'succeeded'.*begin the step again"):
        ledger.finish_step(run_id, "freeze", status=StepStatus.FAILED)


def _raw(ledger: Ledger, statement: str, **params: object) -> None:
    with ledger.engine.begin() as connection:
        connection.execute(sa.text(statement), params)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE step_executions SET status = 'failed' WHERE id = :id",
        "UPDATE step_executions SET output_tail = 'all good' WHERE id = :id",
        "DELETE FROM step_executions WHERE id = :id",
    ],
)
def test_the_database_refuses_changing_or_deleting_a_finished_step_execution(
    ledger: Ledger, run_id: str, statement: str
) -> None:
    ledger.begin_step(run_id, "verify-rows", step_digest=V1, phase=StepPhase.CUTOVER)
    record = ledger.finish_step(run_id, "verify-rows", status=StepStatus.SUCCEEDED, detail={"rows": 1000})

    with pytest.raises(sa.exc.DBAPIError, match=r"step_executions: (UPDATE|DELETE) refused"):
        _raw(ledger, statement, id=record.id)

    stored = ledger.get_step(run_id, "verify-rows")
    assert stored is not None and (stored.status, stored.output_tail) == (StepStatus.SUCCEEDED, "")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE step_executions SET step_digest = 'sm3:forged' WHERE id = :id",
        "UPDATE step_executions SET attempt = 7, finished_at = started_at, status = 'succeeded' WHERE id = :id",
        "UPDATE step_executions SET output_tail = 'still running' WHERE id = :id",
    ],
)
def test_the_database_lets_a_started_step_execution_only_be_finished_as_itself(
    ledger: Ledger, run_id: str, statement: str
) -> None:
    record = ledger.begin_step(run_id, "final-sync", step_digest=V1, phase=StepPhase.CUTOVER).record

    with pytest.raises(sa.exc.DBAPIError, match="step_executions: UPDATE refused"):
        _raw(ledger, statement, id=record.id)

    finished = ledger.finish_step(run_id, "final-sync", status=StepStatus.SUCCEEDED)
    assert isinstance(finished, StepExecution) and finished.finished_at is not None
