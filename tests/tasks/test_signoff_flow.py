"""Joint sign-off on a real Prefect server: the run suspends for each form and resumes on a signature.

The tests share one served ``signoff-demo`` deployment per module (tests/tasks/conftest.py: a runner
in a subprocess, so a resumed run starts in a fresh process) and give every test its own system,
ledger and approvers.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from prefect import get_client
from prefect.client.schemas.objects import StateType
from prefect.exceptions import FlowPauseTimeout, NotPausedError
from prefect.flow_runs import resume_flow_run

from cutover.ledger import AuditOutcome, Decision, Party
from tests._polling import wait_until
from tests.fixtures.prefect_server import PrefectServer
from tests.tasks._signoff_estate import (
    Estate,
    deadline_margin,
    events,
    form_key,
    refusals,
    sign,
    start_run,
    wait_final,
    wait_for_form,
)

pytestmark = pytest.mark.timeout(900)  # a backstop: every wait inside ends as soon as its condition holds


def test_two_approvers_sign_and_the_flow_continues(
    served: tuple[str, Estate], tmp_path_factory: pytest.TempPathFactory
) -> None:
    deployment, estate = served
    run = start_run(deployment, estate.parameters())
    wait_for_form(run, 1)
    sign(run, estate, estate.department)
    wait_for_form(run, 2)
    started = time.monotonic()
    sign(run, estate, estate.cloud)
    wait_until(
        lambda: len(estate.ledger.signatures_for(estate.system_id)) >= 2,
        what="both signatures in the ledger",
        timeout_s=300,
        interval_s=0.05,
    )
    checked = time.monotonic() - started
    final = wait_final(run)
    completed = time.monotonic() - started
    assert final.state is not None and final.state.type == StateType.COMPLETED, final.state
    rows = estate.ledger.signatures_for(estate.system_id)
    assert [(r.party, r.approver_id, r.decision) for r in rows] == [
        (Party.DEPARTMENT, estate.department, Decision.APPROVE),
        (Party.CLOUD_PROVIDER, estate.cloud, Decision.APPROVE),
    ]
    assert {r.report_digest for r in rows} == {estate.report_digest()}
    latency = {"resume_to_signature_recorded_s": round(checked, 2), "resume_to_flow_completed_s": round(completed, 2)}
    (tmp_path_factory.getbasetemp() / "signoff-latency.json").write_text(json.dumps(latency))
    print(f"\nsign-off resume latency (1 s polling): {latency}")


def test_a_wrong_signature_is_refused_and_the_form_is_asked_again(served: tuple[str, Estate]) -> None:
    deployment, estate = served
    run = start_run(deployment, estate.parameters())
    wait_for_form(run, 1)
    sign(run, estate, estate.department, signer=estate.cloud)
    wait_for_form(run, 2)
    assert estate.ledger.signatures_for(estate.system_id) == []
    assert "1234567812345678" in refusals(estate)[0]
    with get_client(sync_client=True) as client:
        description = client.read_flow_run_input(run, f"suspended-{form_key(2)}-description")
    assert "refused" in description.split("###")[0] and "1234567812345678" in description


def test_a_withdrawn_signature_sends_the_run_back_to_that_party_and_cannot_be_replayed(
    served: tuple[str, Estate],
) -> None:
    deployment, estate = served
    run = start_run(deployment, estate.parameters())
    wait_for_form(run, 1)
    signed = sign(run, estate, estate.department)
    wait_for_form(run, 2)
    sign(run, estate, estate.department, "withdraw", comment="the report's p95 needs a second look")
    wait_for_form(run, 3)
    assert estate.ledger.signatures_for(estate.system_id) == []
    withdrawn = events(estate, "signoff.withdrawn")[0]
    assert (withdrawn.actor, withdrawn.detail["proof"]) == (estate.department, "sm2")
    resume_flow_run(run, run_input=signed)  # the captured first signature, submitted again
    wait_for_form(run, 4)
    assert "already accepted once" in refusals(estate)[0]
    assert estate.ledger.signatures_for(estate.system_id) == []


def test_an_approver_not_on_the_roster_never_signs(served: tuple[str, Estate]) -> None:
    deployment, estate = served
    run = start_run(deployment, estate.parameters())
    wait_for_form(run, 1)
    sign(run, estate, estate.department, approver_id="mallory")
    wait_for_form(run, 2)
    assert "not on either party's roster" in refusals(estate)[0]
    assert events(estate, "signoff.refused")[0].detail["claimed_approver_id"] == "mallory"
    assert estate.ledger.signatures_for(estate.system_id) == []


def test_the_same_person_cannot_sign_twice(served: tuple[str, Estate]) -> None:
    deployment, estate = served
    run = start_run(deployment, estate.parameters())
    wait_for_form(run, 1)
    sign(run, estate, estate.department)
    wait_for_form(run, 2)
    sign(run, estate, estate.department)
    wait_for_form(run, 3)
    assert "two different people" in refusals(estate)[0]
    assert len(estate.ledger.signatures_for(estate.system_id)) == 1


def test_a_rejection_ends_the_sign_off(served: tuple[str, Estate]) -> None:
    deployment, estate = served
    run = start_run(deployment, estate.parameters())
    wait_for_form(run, 1)
    sign(run, estate, estate.cloud, "reject", comment="p95 too high on the payments endpoint")
    final = wait_final(run)
    assert final.state is not None and final.state.type == StateType.FAILED
    assert "rejected" in (final.state.message or "") or final.state.type == StateType.FAILED
    rows = estate.ledger.signatures_for(estate.system_id)
    assert [(r.party, r.decision, r.comment) for r in rows] == [
        (Party.CLOUD_PROVIDER, Decision.REJECT, "p95 too high on the payments endpoint")
    ]


def test_a_report_changed_between_signatures_voids_them_and_asks_again(served: tuple[str, Estate]) -> None:
    deployment, estate = served
    run = start_run(deployment, estate.parameters())
    wait_for_form(run, 1)
    sign(run, estate, estate.department)
    wait_for_form(run, 2)
    new_digest = estate.new_report("# trial-run report, corrected\n")
    sign(run, estate, estate.cloud)
    wait_for_form(run, 3)
    assert "changed after this form was shown" in refusals(estate)[0]
    assert estate.ledger.signatures_for(estate.system_id) == []
    assert events(estate, "signoff.voided")[0].detail["signatures"][0]["approver_id"] == estate.department
    voided = estate.ledger.signatures_for(estate.system_id, valid_only=False)
    assert [(r.approver_id, r.valid) for r in voided] == [(estate.department, False)]
    with get_client(sync_client=True) as client:
        description = client.read_flow_run_input(run, f"suspended-{form_key(3)}-description")
    assert new_digest in description and "*awaited 待签*" in description  # both parties sign the new report
    assert "Signatures voided" in description.split("##")[0]  # said first: why the earlier signature is gone


def test_a_deadline_already_passed_fails_with_sign_off_expired(served: tuple[str, Estate]) -> None:
    deployment, estate = served
    run = start_run(deployment, estate.parameters(deadline=datetime.now(UTC) - timedelta(minutes=1)))
    final = wait_final(run)
    assert final.state is not None and final.state.type == StateType.FAILED
    expired = events(estate, "signoff.expired")
    assert expired and expired[0].outcome == AuditOutcome.FAILED
    assert "owning department" in expired[0].detail["missing"]


def test_a_signature_after_the_deadline_is_refused_by_the_server(served: tuple[str, Estate]) -> None:
    deployment, estate = served
    deadline = datetime.now(UTC) + deadline_margin(deployment, estate)
    run = start_run(deployment, estate.parameters(deadline=deadline))
    wait_for_form(run, 1)
    final = wait_final(run, timeout_s=(deadline - datetime.now(UTC)).total_seconds() + 120)
    assert final.state is not None and final.state.type == StateType.FAILED
    with pytest.raises((FlowPauseTimeout, NotPausedError, RuntimeError)):
        sign(run, estate, estate.department)
    assert estate.ledger.signatures_for(estate.system_id) == []


def test_empty_or_forged_input_never_proceeds(served: tuple[str, Estate], prefect_server: PrefectServer) -> None:
    deployment, estate = served
    run = start_run(deployment, estate.parameters())
    wait_for_form(run, 1)
    forged = [
        None,
        {},
        {"approver_id": estate.department},
        {**estate.signature_input(estate.department), "decision": "maybe"},
        {**estate.signature_input(estate.department), "role": "admin"},
        estate.totp_input(estate.department),  # a pilot-mode answer: no signature at all
    ]
    with prefect_server.http() as http:
        for body in forged:
            response = http.post(f"/flow_runs/{run}/resume", json={} if body is None else {"run_input": body})
            assert response.json()["status"] == "REJECT", (body, response.text)
    with pytest.raises(RuntimeError):
        resume_flow_run(run)
    wait_for_form(run, 1)
    assert not events(estate, "signoff.refused")
    sign(run, estate, estate.department, signature="bm90IGEgc2lnbmF0dXJl")
    wait_for_form(run, 2)
    assert estate.ledger.signatures_for(estate.system_id) == []
    assert "1234567812345678" in refusals(estate)[0]
