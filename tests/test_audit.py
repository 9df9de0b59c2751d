"""Tests of cutover/audit.py: the hash-chained, append-only audit trail, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from cutover import audit, executions
from cutover.errors import AuditChainBroken, ConfigurationError, LedgerError, PurgeRefused
from cutover.ledger import AuditOutcome, Ledger, RunKind, StepPhase, StepStatus
from cutover.lifecycle import register_system
from cutover.settings import Settings
from tests.fixtures.ledger import as_dba


def _append(ledger: Ledger, count: int, *, actor: str = "wang.li") -> None:
    for index in range(count):
        with ledger.session() as session:
            audit.append(
                session,
                actor=actor,
                action="test.event",
                object="system:hrss",
                outcome=AuditOutcome.SUCCEEDED,
                detail={"index": index, "note": "社会保险"},
            )


def _without_sm3(monkeypatch: pytest.MonkeyPatch) -> None:
    real_new = hashlib.new

    def new(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.lower() == "sm3":
            raise ValueError(f"unsupported hash type {name}")
        return real_new(name, *args, **kwargs)

    monkeypatch.setattr(hashlib, "new", new)


def test_appended_events_form_a_chain_that_verifies(isolated_ledger: Ledger) -> None:
    _append(isolated_ledger, 3)

    result = audit.verify(isolated_ledger)

    assert result == audit.VerifyResult(ok=True, checked=3)
    newest = audit.events(isolated_ledger, object="system:hrss")
    assert [event.seq for event in newest] == [3, 2, 1]
    assert newest[0].prev_digest == newest[1].digest
    assert newest[0].digest.startswith("sm3:")
    assert newest[2].at.tzinfo is not None


def test_an_empty_chain_verifies(isolated_ledger: Ledger) -> None:
    assert audit.verify(isolated_ledger).ok


def test_an_edited_audit_event_is_named_as_the_first_broken_link(isolated_ledger: Ledger) -> None:
    _append(isolated_ledger, 4)
    as_dba(isolated_ledger, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")

    result = audit.verify(isolated_ledger)

    assert (result.ok, result.broken_seq, result.checked) == (False, 2, 1)
    assert result.reason is not None and "edited" in result.reason
    with pytest.raises(AuditChainBroken, match="broken at seq 2"):
        result.raise_if_broken()


def test_a_deleted_audit_event_is_named_as_a_gap(isolated_ledger: Ledger) -> None:
    _append(isolated_ledger, 4)
    as_dba(isolated_ledger, "DELETE FROM audit_events WHERE seq = 2")

    result = audit.verify(isolated_ledger)

    assert (result.ok, result.broken_seq) == (False, 3)
    assert result.reason == "seq 2 missing before seq 3: events were deleted"


def test_reordered_audit_events_are_named(isolated_ledger: Ledger) -> None:
    _append(isolated_ledger, 4)
    as_dba(
        isolated_ledger,
        "UPDATE audit_events SET seq = -1 WHERE seq = 2",
        "UPDATE audit_events SET seq = 2 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = -1",
    )

    result = audit.verify(isolated_ledger)

    assert (result.ok, result.broken_seq) == (False, 2)
    assert result.reason is not None and "reordered" in result.reason


def test_deleting_the_newest_events_is_detected_through_the_chain_head(isolated_ledger: Ledger) -> None:
    _append(isolated_ledger, 3)
    as_dba(isolated_ledger, "DELETE FROM audit_events WHERE seq = 3")

    result = audit.verify(isolated_ledger)

    assert (result.ok, result.broken_seq, result.checked) == (False, 3, 2)
    assert result.reason is not None and "newest events were deleted" in result.reason


def test_a_dba_purge_that_records_its_anchor_still_verifies(isolated_ledger: Ledger) -> None:
    _append(isolated_ledger, 4)
    second = audit.events(isolated_ledger)[2]
    as_dba(
        isolated_ledger,
        "DELETE FROM audit_events WHERE seq <= 2",
        f"UPDATE audit_chain_head SET anchor_seq = 2, anchor_digest = '{second.digest}'",
    )

    assert audit.verify(isolated_ledger) == audit.VerifyResult(ok=True, checked=2)


@pytest.mark.parametrize("statement", ["UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events"])
def test_the_database_refuses_to_change_or_remove_audit_rows(ledger: Ledger, statement: str) -> None:
    _append(ledger, 1)

    with pytest.raises(sa.exc.IntegrityError, match="append-only"), ledger.engine.begin() as connection:
        connection.exec_driver_sql(statement)
    with pytest.raises(LedgerError, match="append-only"), ledger.session() as session:
        session.execute(sa.text(statement))


def test_postgres_refuses_truncating_the_audit_trail(postgres_url: str) -> None:
    ledger = Ledger(postgres_url)
    try:
        with pytest.raises(sa.exc.IntegrityError, match="append-only"), ledger.engine.begin() as connection:
            connection.exec_driver_sql("TRUNCATE audit_events")
    finally:
        ledger.dispose()


def test_an_event_appended_in_a_rolled_back_transaction_leaves_no_trace(isolated_ledger: Ledger) -> None:
    _append(isolated_ledger, 1)
    with pytest.raises(RuntimeError), isolated_ledger.session() as session:
        audit.append(session, actor="a", action="b", object="system:x")
        raise RuntimeError("the change this event records failed")

    _append(isolated_ledger, 1)

    assert audit.verify(isolated_ledger) == audit.VerifyResult(ok=True, checked=2)


def test_concurrent_writers_never_fork_the_chain(isolated_db_url: str) -> None:
    ledgers = [Ledger(isolated_db_url) for _ in range(2)]
    errors: list[BaseException] = []

    def write(ledger: Ledger, actor: str) -> None:
        try:
            _append(ledger, 15, actor=actor)
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(ledger, f"w{i}")) for i, ledger in enumerate(ledgers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    try:
        assert errors == []
        assert audit.verify(ledgers[0]) == audit.VerifyResult(ok=True, checked=30)
    finally:
        for ledger in ledgers:
            ledger.dispose()


def test_detail_is_stored_as_the_plain_json_that_was_digested(isolated_ledger: Ledger) -> None:
    when = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    with isolated_ledger.session() as session:
        audit.append(session, actor="a", action="b", object="system:x", detail={"when": when, "n": 1.5})

    (event,) = audit.events(isolated_ledger)
    assert event.detail == {"when": "2026-11-26 08:00:00+00:00", "n": 1.5}
    assert audit.verify(isolated_ledger).ok


def test_sha256_is_selectable_and_named_in_each_digest(isolated_db_url: str) -> None:
    ledger = Ledger(isolated_db_url, digest="sha256")
    try:
        _append(ledger, 2)
        assert all(event.digest.startswith("sha256:") for event in audit.events(ledger))
        assert audit.verify(ledger).ok
    finally:
        ledger.dispose()


def test_sm3_configured_but_unavailable_refuses_to_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    _without_sm3(monkeypatch)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"

    with pytest.raises(ConfigurationError, match="'sm3' is configured but"):
        Ledger(url)
    with pytest.raises(ConfigurationError, match="never falls back"):
        Ledger.from_settings(Settings(_env_file=None, database_url=url, digest="sm3"))
    Ledger(url, digest="sha256").dispose()


def test_a_ledger_whose_sm3_disappears_appends_nothing(
    isolated_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    _append(isolated_ledger, 1)
    _without_sm3(monkeypatch)

    with pytest.raises(ConfigurationError), isolated_ledger.session() as session:
        audit.append(session, actor="a", action="b", object="system:x")

    assert len(audit.events(isolated_ledger)) == 1


def _ledger_at(url: str, when: datetime) -> Ledger:
    clock: Callable[[], datetime] = lambda: when  # noqa: E731
    return Ledger(url, clock=clock)


def test_purging_events_younger_than_the_floor_is_refused(ledger: Ledger) -> None:
    cutoff = ledger.now() - timedelta(days=182)

    with pytest.raises(PurgeRefused, match="younger than the 183-day floor"):
        audit.purge_before(ledger, cutoff, settings=Settings(_env_file=None))


def test_a_stricter_configured_floor_is_respected(ledger: Ledger) -> None:
    settings = Settings(_env_file=None, audit_purge_floor_days=365)

    with pytest.raises(PurgeRefused, match="365-day floor"):
        audit.purge_before(ledger, ledger.now() - timedelta(days=200), settings=settings)


def test_purging_old_events_is_refused_with_the_dba_procedure(isolated_db_url: str) -> None:
    now = datetime.now(UTC)
    past, present = _ledger_at(isolated_db_url, now - timedelta(days=400)), _ledger_at(isolated_db_url, now)
    try:
        _append(past, 2)
        _append(present, 1)
        with pytest.raises(PurgeRefused, match=r"seq \.\.2 are older .* DBA procedure"):
            audit.purge_before(present, now - timedelta(days=200), settings=Settings(_env_file=None))
        assert len(audit.events(present)) == 3
    finally:
        past.dispose()
        present.dispose()


def test_purging_when_nothing_is_old_enough_does_nothing(isolated_ledger: Ledger) -> None:
    _append(isolated_ledger, 1)

    audit.purge_before(isolated_ledger, isolated_ledger.now() - timedelta(days=400))

    assert len(audit.events(isolated_ledger)) == 1


# ------------------------------------------------------------------ step executions in the chain
def _stepsas_dba(ledger: Ledger, *statements: str) -> None:
    """Run ``statements`` on step_executions the way a DBA would: its triggers out of the way."""
    with ledger.engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("DROP TRIGGER step_executions_refuse_update")
            connection.exec_driver_sql("DROP TRIGGER step_executions_refuse_delete")
        else:
            connection.exec_driver_sql("ALTER TABLE step_executions DISABLE TRIGGER USER")
        for statement in statements:
            connection.exec_driver_sql(statement)


def _run_steps(ledger: Ledger, *, finish: bool = True) -> str:
    """A cutover run with steps 'freeze' (finished unless ``finish`` is False) and 'sync' (failed)."""
    register_system(ledger, system_id="hrss", name="社保", department="人社厅", disposition="migrate", actor="t")
    run_id = ledger.create_run("hrss", RunKind.CUTOVER).id
    for key, status in (("freeze", StepStatus.SUCCEEDED), ("sync", StepStatus.FAILED)):
        executions.begin(ledger, run_id, key, step_digest=f"sm3:{key}", phase=StepPhase.CUTOVER, actor="ops")
        if finish or key == "sync":
            executions.finish(ledger, run_id, key, status=status, actor="ops", exit_status=0, output_tail="ok")
    return run_id


def test_step_executions_are_verified_against_their_audit_events(isolated_ledger: Ledger) -> None:
    run_id = _run_steps(isolated_ledger)

    result = audit.verify(isolated_ledger)

    assert (result.ok, result.steps_checked) == (True, 2)
    actions = [(e.action, e.outcome.value) for e in audit.events(isolated_ledger, object=f"run:{run_id}/step:sync")]
    assert actions == [("step.finished", "failed"), ("step.started", "started")]


def test_a_finished_step_execution_edited_by_a_dba_is_named_by_verify(isolated_ledger: Ledger) -> None:
    run_id = _run_steps(isolated_ledger)
    _stepsas_dba(isolated_ledger, "UPDATE step_executions SET status = 'succeeded' WHERE step_id = 'sync'")

    result = audit.verify(isolated_ledger)

    assert (result.ok, result.step) == (False, f"run:{run_id}/step:sync attempt 1")
    assert result.reason is not None and "the row was edited" in result.reason
    with pytest.raises(AuditChainBroken, match=f"step execution run:{run_id}/step:sync attempt 1: its content"):
        result.raise_if_broken()


def test_a_started_step_execution_finished_by_raw_sql_is_named_by_verify(isolated_ledger: Ledger) -> None:
    run_id = _run_steps(isolated_ledger, finish=False)
    with isolated_ledger.engine.begin() as connection:  # the triggers let a started row be finished ...
        connection.exec_driver_sql(
            "UPDATE step_executions SET status = 'succeeded', finished_at = started_at WHERE step_id = 'freeze'"
        )

    result = audit.verify(isolated_ledger)  # ... but not without its step.finished event

    assert (result.ok, result.step) == (False, f"run:{run_id}/step:freeze attempt 1")
    assert result.reason is not None and "the row was edited" in result.reason


def test_a_step_execution_recorded_outside_the_audit_trail_is_named_by_verify(isolated_ledger: Ledger) -> None:
    run_id = _run_steps(isolated_ledger)
    isolated_ledger.begin_step(run_id, "switch", step_digest="sm3:switch", phase=StepPhase.CUTOVER)

    result = audit.verify(isolated_ledger)

    assert (result.ok, result.step) == (False, f"run:{run_id}/step:switch attempt 1")
    assert result.reason == "no audit event records it: the row was written outside cutover"


def test_a_step_execution_deleted_by_a_dba_is_named_by_verify(isolated_ledger: Ledger) -> None:
    run_id = _run_steps(isolated_ledger)
    _stepsas_dba(isolated_ledger, "DELETE FROM step_executions WHERE step_id = 'freeze'")

    result = audit.verify(isolated_ledger)

    assert (result.ok, result.step) == (False, f"run:{run_id}/step:freeze attempt 1")
    assert result.reason is not None and "the row was deleted" in result.reason


def test_postgres_refuses_truncating_the_step_executions(postgres_url: str) -> None:
    ledger = Ledger(postgres_url)
    try:
        with pytest.raises(sa.exc.IntegrityError, match="TRUNCATE refused"), ledger.engine.begin() as connection:
            connection.exec_driver_sql("TRUNCATE step_executions")
    finally:
        ledger.dispose()


def test_verify_while_steps_are_being_recorded_sees_one_consistent_moment(isolated_db_url: str) -> None:
    writer, reader = Ledger(isolated_db_url), Ledger(isolated_db_url)
    run_id = _run_steps(writer)
    done = threading.Event()
    errors: list[BaseException] = []

    def record() -> None:
        try:
            for index in range(40):
                key = f"s{index}"
                executions.begin(writer, run_id, key, step_digest="sm3:s", phase=StepPhase.CUTOVER, actor="ops")
                executions.finish(writer, run_id, key, status=StepStatus.SUCCEEDED, actor="ops")
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=record)
    thread.start()
    try:
        results = []
        while not done.is_set():
            results.append(audit.verify(reader))
        thread.join(timeout=30)
        assert errors == [] and results and all(result.ok for result in results), results
        assert audit.verify(reader).steps_checked == 42
    finally:
        writer.dispose()
        reader.dispose()
