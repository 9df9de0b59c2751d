"""Tests of cutover/executions.py: step executions keyed by what ran, in the ledger and the audit trail."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from cutover import audit, executions
from cutover.digest import digest_json
from cutover.errors import LedgerError
from cutover.ledger import Ledger, RunKind, StepPhase, StepStatus, step_record_digest
from cutover.lifecycle import register_system
from cutover.spec import SshStep


def _step(**changes: object) -> SshStep:
    fields: dict[str, object] = {
        "kind": "ssh",
        "id": "selftest",
        "name": "自检",
        "host": "cloud_test",
        "run": ["selftest"],
    }
    return SshStep.model_validate({**fields, **changes})


def _run(ledger: Ledger) -> str:
    register_system(ledger, system_id="hrss", name="社保", department="人社厅", disposition="migrate", actor="t")
    return ledger.create_run("hrss", RunKind.CUTOVER).id


def test_a_step_digest_is_the_digest_of_its_spec_entry_and_changes_with_it() -> None:
    step = _step()

    assert executions.definition_digest(step) == digest_json(step.model_dump(mode="json", by_alias=True))
    assert executions.definition_digest(_step()) == executions.definition_digest(step)
    assert executions.definition_digest(_step(run=["selftest", "--full"])) != executions.definition_digest(step)
    assert executions.definition_digest(step, "sha256").startswith("sha256:")


def test_beginning_and_finishing_a_step_append_its_audit_events_with_the_rows_digest(
    isolated_ledger: Ledger,
) -> None:
    run_id = _run(isolated_ledger)
    digest = executions.definition_digest(_step(), isolated_ledger.digest)

    executions.begin(
        isolated_ledger, run_id, "selftest", step_digest=digest, phase=StepPhase.INTERNAL_TEST, actor="ops", host="h"
    )
    executions.finish(
        isolated_ledger, run_id, "selftest", status=StepStatus.SUCCEEDED, actor="ops", exit_status=0, output_tail="OK"
    )

    record = isolated_ledger.get_step(run_id, "selftest")
    assert record is not None
    finished, started = audit.events(isolated_ledger, object=executions.step_object(run_id, "selftest"))
    assert (started.action, finished.action, finished.actor) == ("step.started", "step.finished", "ops")
    assert finished.detail == {
        "attempt": 1,
        "status": "succeeded",
        "phase": "internal_test",
        "step_digest": digest,
        "host": "h",
        "exit_status": 0,
        "record": step_record_digest(record, "sm3"),
    }
    assert audit.verify(isolated_ledger).steps_checked == 1


def test_a_superseded_attempt_left_started_is_finished_in_the_audit_trail_too(isolated_ledger: Ledger) -> None:
    run_id = _run(isolated_ledger)
    executions.begin(isolated_ledger, run_id, "s", step_digest="sm3:v1", phase=StepPhase.CUTOVER, actor="ops")

    claim = executions.begin(isolated_ledger, run_id, "s", step_digest="sm3:v2", phase=StepPhase.CUTOVER, actor="ops")

    assert claim.is_new and claim.closed is not None
    events = audit.events(isolated_ledger, object=executions.step_object(run_id, "s"))
    assert [(e.action, e.detail["attempt"], e.detail["status"]) for e in events] == [
        ("step.started", 2, "started"),
        ("step.finished", 1, "unknown"),
        ("step.started", 1, "started"),
    ]
    assert audit.verify(isolated_ledger).ok


def test_a_step_whose_audit_event_cannot_be_written_is_not_recorded(isolated_ledger: Ledger) -> None:
    run_id = _run(isolated_ledger)
    with isolated_ledger.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM audit_chain_head"))

    with pytest.raises(LedgerError, match="chain head row is missing"):
        executions.begin(isolated_ledger, run_id, "s", step_digest="sm3:v1", phase=StepPhase.CUTOVER, actor="ops")

    assert isolated_ledger.get_step(run_id, "s") is None
