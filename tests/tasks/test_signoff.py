"""Joint sign-off: the checks on their own, then suspend/resume on a real Prefect server.

The Prefect tests share one served ``signoff-demo`` deployment (a runner in a subprocess, so a
resumed run starts in a fresh process) and give every test its own system, ledger and approvers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.objects import StateType
from prefect.exceptions import FlowPauseTimeout, NotPausedError
from prefect.flow_runs import resume_flow_run

from cutover import audit, sm2
from cutover.errors import SignatureInvalid, SignOffError
from cutover.ledger import AuditOutcome, Decision, Party, ReportKind
from cutover.spec import Approver, Spec
from cutover.spec_loader import load_spec
from cutover.window import SHANGHAI
from tasks._signoff_text import FormContext, SignedLine
from tasks.signoff import (
    ShownForm,
    SignatureCheck,
    SignatureRecord,
    SignOffInput,
    SignOffRequest,
    StatementFields,
    TotpSignOffInput,
    check_signature,
    collect_signoff,
    signoff_description,
)
from tests._polling import wait_until
from tests.fixtures.prefect_server import REPO_ROOT, PrefectServer
from tests.tasks._signoff_estate import (
    UNIT_RUN,
    Estate,
    deadline_margin,
    form_key,
    make_estate,
    served_deployment,
    sqlite_copy,
    start_run,
    wait_final,
    wait_for_form,
)

pytestmark = pytest.mark.timeout(400)  # a backstop: every wait inside ends as soon as its condition holds


# =================================================================== the checks, without Prefect
@pytest.fixture
def estate(tmp_path: Path, db_url: str, totp_key: str) -> Iterator[Estate]:
    """A system ready for sign-off on the ledger engine under test (SQLite, PostgreSQL)."""
    built = make_estate(tmp_path, db_url, totp_key)
    yield built
    built.ledger.dispose()


def _check(
    estate: Estate,
    submitted: dict[str, str],
    *,
    others: list[SignatureRecord] | None = None,
    spec: Spec | None = None,
    report_digest: str | None = None,
) -> SignatureRecord:
    current = estate.report_digest()
    shown_spec = spec or estate.spec
    form = TotpSignOffInput if "code" in submitted else SignOffInput
    check = SignatureCheck(
        spec=shown_spec,
        submitted=form(**submitted),
        shown=ShownForm(ReportKind.TRIAL_RUN, report_digest or current, shown_spec.digest(), {"flow_run_id": UNIT_RUN}),
        current_report_digest=current,
        current_spec_digest=shown_spec.digest(),
        other_signatures=others or [],
        now=datetime.now(UTC),
    )
    return check_signature(estate.ledger, check, settings=estate.settings)


def test_a_valid_signature_is_recorded_in_the_ledger_and_the_audit_chain(estate: Estate) -> None:
    record = _check(estate, estate.signature_input(estate.department))
    assert (record.party, record.approver_id, record.decision) == (
        Party.DEPARTMENT,
        estate.department,
        Decision.APPROVE,
    )
    rows = estate.ledger.signatures_for(estate.system_id)
    assert [(r.approver_id, r.report_digest, r.spec_digest) for r in rows] == [
        (estate.department, estate.report_digest(), estate.spec.digest())
    ]
    signed = [
        e for e in audit.events(estate.ledger, object=f"system:{estate.system_id}") if e.action == "signoff.signed"
    ]
    assert signed[0].actor == estate.department and signed[0].detail["signature_id"] == record.signature_id
    assert signed[0].detail["proof"] == "sm2" and signed[0].detail["statement"].startswith("govcloud-cutover")
    assert "code" not in json.dumps(signed[0].detail)
    if estate.ledger.engine.dialect.name == "sqlite":  # a ledger of its own; the PostgreSQL one is shared
        audit.verify(estate.ledger).raise_if_broken()


def test_an_approver_not_on_the_roster_is_refused(estate: Estate) -> None:
    with pytest.raises(SignatureInvalid, match="not on either party's roster"):
        _check(estate, {**estate.signature_input(estate.department), "approver_id": "mallory"})
    assert estate.ledger.signatures_for(estate.system_id) == []


def test_a_signature_made_with_another_key_is_refused_with_what_to_do(estate: Estate) -> None:
    with pytest.raises(SignatureInvalid, match="1234567812345678"):
        _check(estate, estate.signature_input(estate.department, signer=estate.cloud))
    assert estate.ledger.signatures_for(estate.system_id) == []


def test_a_signature_over_another_decision_or_comment_is_refused(estate: Estate) -> None:
    signed = estate.signature_input(estate.department, "reject", comment="no")
    with pytest.raises(SignatureInvalid, match="1234567812345678"):
        _check(estate, {**signed, "decision": "approve"})
    with pytest.raises(SignatureInvalid, match="1234567812345678"):
        _check(estate, {**signed, "comment": "yes"})


def test_a_statement_signed_in_the_future_is_refused(estate: Estate) -> None:
    with pytest.raises(SignatureInvalid, match="check your computer's clock"):
        _check(estate, {**estate.signature_input(estate.department), "signed_at": "2099-01-01T00:00:00Z"})


def test_the_same_statement_is_accepted_once(estate: Estate) -> None:
    answer = estate.signature_input(estate.department)
    _check(estate, answer)
    estate.ledger.void_signatures(estate.system_id)
    with pytest.raises(SignatureInvalid, match="already accepted once"):
        _check(estate, answer)


def _pinning(estate: Estate, key: str) -> Spec:
    """The estate's spec with the department approver's key pinned to ``key``."""
    department = estate.spec.parties.department.model_copy(
        update={"approvers": [Approver(id=estate.department, name="王丽", key=key)]}
    )
    return estate.spec.model_copy(update={"parties": estate.spec.parties.model_copy(update={"department": department})})


def test_a_key_enrolled_in_the_ledger_but_not_the_one_the_spec_pins_is_refused(estate: Estate) -> None:
    spec = _pinning(estate, "sm3:" + "0" * 64)  # e.g. someone with ledger access enrolled a key of their own
    with pytest.raises(SignatureInvalid, match="the spec pins"):
        _check(estate, estate.signature_input(estate.department, spec=spec), spec=spec)
    assert estate.ledger.signatures_for(estate.system_id) == []


def test_the_key_the_spec_pins_signs(estate: Estate) -> None:
    from cutover.approvers import active_key

    enrolled = active_key(estate.ledger, estate.department)
    assert enrolled is not None
    spec = _pinning(estate, enrolled.fingerprint)
    assert (
        _check(estate, estate.signature_input(estate.department, spec=spec), spec=spec).approver_id == estate.department
    )


def test_in_pilot_mode_a_wrong_code_is_refused_with_what_to_do(estate: Estate) -> None:
    wrong = "000000" if estate.phone.code(estate.department) != "000000" else "111111"
    with pytest.raises(
        SignatureInvalid, match=f"code for {estate.department} is not valid at .* UTC; use the current code"
    ):
        _check(estate, estate.totp_input(estate.department, code=wrong))


def test_in_pilot_mode_a_valid_code_signs(estate: Estate) -> None:
    record = _check(estate, estate.totp_input(estate.department))
    assert (record.approver_id, record.decision) == (estate.department, Decision.APPROVE)


def test_a_form_showing_an_older_report_is_refused(estate: Estate) -> None:
    old = estate.report_digest()
    estate.new_report("a changed report")
    with pytest.raises(SignatureInvalid, match=r"report of .* changed after this form was shown"):
        _check(estate, estate.signature_input(estate.department), report_digest=old)


def test_the_same_person_cannot_sign_for_both_parties(estate: Estate) -> None:
    both = estate.spec.parties.model_copy(
        update={
            "cloud_provider": estate.spec.parties.cloud_provider.model_copy(
                update={"approvers": [Approver(id=estate.department, name="王丽")]}
            )
        }
    )
    spec = estate.spec.model_copy(update={"parties": both})  # the spec rules refuse this; the check must too
    first = _check(estate, estate.signature_input(estate.department, spec=spec), spec=spec)
    with pytest.raises(SignatureInvalid, match="two different people"):
        _check(estate, estate.signature_input(estate.department, spec=spec), spec=spec, others=[first])


def test_one_signature_per_party(estate: Estate) -> None:
    first = _check(estate, estate.signature_input(estate.department))
    forged = SignatureRecord(**{**first.__dict__, "approver_id": "someone.else"})
    with pytest.raises(SignatureInvalid, match="one signature per party"):
        _check(estate, estate.signature_input(estate.department), others=[forged])


def test_the_description_shows_digest_link_verdicts_and_who_signed(estate: Estate) -> None:
    text = signoff_description(
        FormContext(
            estate.spec,
            estate.ledger.latest_report(estate.system_id, "trial_run").kind,  # type: ignore[union-attr, arg-type]
            estate.report_digest(),
            estate.spec.digest(),
            "http://127.0.0.1/r/1",
            datetime(2026, 12, 1, tzinfo=UTC),
            2,
            [SignedLine(Party.DEPARTMENT, estate.department, "approve", datetime(2026, 11, 26, 10, tzinfo=UTC))],
            {"stress test 压力测试": "passed 通过"},
            "code for x is not valid",
        )
    )
    for expected in (
        estate.report_digest(),
        "](http://127.0.0.1/r/1)",
        "| stress test 压力测试 | passed 通过 |",
        f"approve by `{estate.department}`",
        "*awaited 待签*",
        "code for x is not valid",
        f"cutover sign {estate.system_id} --as",
    ):
        assert expected in text


def test_the_form_has_required_fields_with_bilingual_titles_and_no_defaults() -> None:
    schema = SignOffInput.with_initial_data(description="x").model_json_schema()
    assert set(schema["required"]) >= {"approver_id", "decision", "comment", "signed_at", "signature"}
    assert schema["properties"]["approver_id"]["title"] == "Approver id 审批人账号"
    assert all("default" not in p for p in schema["properties"].values())
    answer = SignOffInput(approver_id="a", decision="approve", comment="", signed_at="x", signature="c2lnbmF0dXJl")
    assert "c2lnbmF0dXJl" not in repr(answer)


# ============================================================== suspend/resume on a real server
@pytest.fixture(scope="module")
def deployment_id(
    prefect_server_session: PrefectServer, totp_key: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The served signoff-demo deployment shared by this module's Prefect tests."""
    yield from served_deployment(prefect_server_session, totp_key, tmp_path_factory.mktemp("runner"))


@pytest.fixture
def served(
    prefect_server: PrefectServer, deployment_id: str, tmp_path: Path, sqlite_template: Path, totp_key: str
) -> Iterator[tuple[str, Estate]]:
    """The deployment id and a fresh SQLite estate the deployed flow can reach."""
    built = make_estate(tmp_path, sqlite_copy(tmp_path, sqlite_template), totp_key)
    yield deployment_id, built
    built.ledger.dispose()


def _events(estate: Estate, action: str) -> list[audit.AuditEvent]:
    return [e for e in reversed(audit.events(estate.ledger, object=f"system:{estate.system_id}")) if e.action == action]


def _refusals(estate: Estate) -> list[str]:
    return [str(e.detail["reason"]) for e in _events(estate, "signoff.refused")]


def _sign(
    flow_run_id: UUID,
    estate: Estate,
    who: str,
    decision: str = "approve",
    *,
    comment: str | None = None,
    signer: str | None = None,
    **over: str,
) -> dict[str, str]:
    answer = {**estate.signature_input(who, decision, run=flow_run_id, comment=comment, signer=signer), **over}
    resume_flow_run(flow_run_id, run_input=answer)
    return answer


def test_two_approvers_sign_and_the_flow_continues(
    served: tuple[str, Estate], tmp_path_factory: pytest.TempPathFactory
) -> None:
    deployment, estate = served
    run = start_run(deployment, estate.parameters())
    wait_for_form(run, 1)
    _sign(run, estate, estate.department)
    wait_for_form(run, 2)
    started = time.monotonic()
    _sign(run, estate, estate.cloud)
    wait_until(
        lambda: len(estate.ledger.signatures_for(estate.system_id)) >= 2,
        what="both signatures in the ledger",
        timeout_s=120,
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
    _sign(run, estate, estate.department, signer=estate.cloud)
    wait_for_form(run, 2)
    assert estate.ledger.signatures_for(estate.system_id) == []
    assert "1234567812345678" in _refusals(estate)[0]
    with get_client(sync_client=True) as client:
        description = client.read_flow_run_input(run, f"suspended-{form_key(2)}-description")
    assert "refused" in description.split("###")[0] and "1234567812345678" in description


def test_a_withdrawn_signature_sends_the_run_back_to_that_party_and_cannot_be_replayed(
    served: tuple[str, Estate],
) -> None:
    deployment, estate = served
    run = start_run(deployment, estate.parameters())
    wait_for_form(run, 1)
    signed = _sign(run, estate, estate.department)
    wait_for_form(run, 2)
    _sign(run, estate, estate.department, "withdraw", comment="the report's p95 needs a second look")
    wait_for_form(run, 3)
    assert estate.ledger.signatures_for(estate.system_id) == []
    withdrawn = _events(estate, "signoff.withdrawn")[0]
    assert (withdrawn.actor, withdrawn.detail["proof"]) == (estate.department, "sm2")
    resume_flow_run(run, run_input=signed)  # the captured first signature, submitted again
    wait_for_form(run, 4)
    assert "already accepted once" in _refusals(estate)[0]
    assert estate.ledger.signatures_for(estate.system_id) == []


def test_an_approver_not_on_the_roster_never_signs(served: tuple[str, Estate]) -> None:
    deployment, estate = served
    run = start_run(deployment, estate.parameters())
    wait_for_form(run, 1)
    _sign(run, estate, estate.department, approver_id="mallory")
    wait_for_form(run, 2)
    assert "not on either party's roster" in _refusals(estate)[0]
    assert _events(estate, "signoff.refused")[0].detail["claimed_approver_id"] == "mallory"
    assert estate.ledger.signatures_for(estate.system_id) == []


def test_the_same_person_cannot_sign_twice(served: tuple[str, Estate]) -> None:
    deployment, estate = served
    run = start_run(deployment, estate.parameters())
    wait_for_form(run, 1)
    _sign(run, estate, estate.department)
    wait_for_form(run, 2)
    _sign(run, estate, estate.department)
    wait_for_form(run, 3)
    assert "two different people" in _refusals(estate)[0]
    assert len(estate.ledger.signatures_for(estate.system_id)) == 1


def test_a_rejection_ends_the_sign_off(served: tuple[str, Estate]) -> None:
    deployment, estate = served
    run = start_run(deployment, estate.parameters())
    wait_for_form(run, 1)
    _sign(run, estate, estate.cloud, "reject", comment="p95 too high on the payments endpoint")
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
    _sign(run, estate, estate.department)
    wait_for_form(run, 2)
    new_digest = estate.new_report("# trial-run report, corrected\n")
    _sign(run, estate, estate.cloud)
    wait_for_form(run, 3)
    assert "changed after this form was shown" in _refusals(estate)[0]
    assert estate.ledger.signatures_for(estate.system_id) == []
    assert _events(estate, "signoff.voided")[0].detail["signatures"][0]["approver_id"] == estate.department
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
    expired = _events(estate, "signoff.expired")
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
        _sign(run, estate, estate.department)
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
    assert not _events(estate, "signoff.refused")
    _sign(run, estate, estate.department, signature="bm90IGEgc2lnbmF0dXJl")
    wait_for_form(run, 2)
    assert estate.ledger.signatures_for(estate.system_id) == []
    assert "1234567812345678" in _refusals(estate)[0]


def test_collect_signoff_outside_a_flow_run_says_where_to_call_it(estate: Estate) -> None:
    with pytest.raises(SignOffError, match="outside a flow run"):
        request = SignOffRequest(
            estate.spec, ReportKind.TRIAL_RUN, estate.report_digest(), "", datetime.now(UTC) + timedelta(hours=1)
        )
        collect_signoff(estate.ledger, request)


def _sign_in_terminal(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, key: sm2.PrivateKey, comment: str = "终端签认"
) -> tuple[int, str]:
    """`cutover sign` as the department's approver with ``key``: the exit code and what it printed."""
    from typer.testing import CliRunner

    import cli
    from cutover.settings import get_settings

    key_file = estate.settings.home / "wang.li.key"
    estate.settings.home.mkdir(parents=True, exist_ok=True)
    sm2.write_private_key(key_file, key, None)
    monkeypatch.setenv("CUTOVER_DATABASE_URL", estate.ledger_url)
    monkeypatch.setenv("CUTOVER_HOME", str(estate.settings.home))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            cli.register_commands(),
            ["sign", estate.system_id, "--as", estate.department, "--key", str(key_file), "--wait", "40"],
            input=f"approve\n{comment}\ny\n",
        )
    finally:
        get_settings.cache_clear()
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_an_approver_signs_from_the_terminal_with_cutover_sign(
    served: tuple[str, Estate], monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment, estate = served
    run = start_run(deployment, estate.parameters())
    wait_for_form(run, 1)
    code, output = _sign_in_terminal(estate, monkeypatch, estate.keyring.keys[estate.department])
    assert code == 0, output
    assert estate.report_digest() in output
    rows = estate.ledger.signatures_for(estate.system_id)
    assert [(r.approver_id, r.comment) for r in rows] == [(estate.department, "终端签认")]
    wait_for_form(run, 2)
    _sign(run, estate, estate.cloud)
    final = wait_final(run)
    assert final.state is not None and final.state.type == StateType.COMPLETED


def test_a_signature_the_flow_refuses_exits_3_from_cutover_sign_with_the_reason(
    served: tuple[str, Estate], monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment, estate = served
    run = start_run(deployment, estate.parameters())
    wait_for_form(run, 1)
    code, output = _sign_in_terminal(estate, monkeypatch, estate.keyring.keys[estate.cloud])  # another's key
    assert code == 3, output
    assert "error: the signature was refused: " in output and _refusals(estate)[0] in " ".join(output.split())
    assert estate.ledger.signatures_for(estate.system_id) == []
    wait_for_form(run, 2)  # the form is asked again


# =============================================================== the cutover window and validity
def _with_window(estate: Estate, *, valid_for: str = "7d") -> None:
    """Give the estate's spec a cutover window that opens in three hours (so it is closed now)."""
    opens = datetime.now(SHANGHAI) + timedelta(hours=3)
    data = yaml.safe_load(estate.spec_path.read_text(encoding="utf-8"))
    data["cutover"]["window"] = {
        "days": "daily",
        "from": f"{opens:%H:%M}",
        "until": f"{opens + timedelta(hours=1):%H:%M}",
    }
    data["cutover"]["signoff_valid_for"] = valid_for
    estate.spec_path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    estate.spec = load_spec(estate.spec_path)


def test_after_both_signatures_a_closed_window_keeps_the_run_suspended_and_a_withdrawal_reopens_the_sign_off(
    served: tuple[str, Estate],
) -> None:
    deployment, estate = served
    _with_window(estate)
    run = start_run(deployment, estate.parameters())
    wait_for_form(run, 1)
    _sign(run, estate, estate.department)
    wait_for_form(run, 2)
    _sign(run, estate, estate.cloud)
    waiting = wait_for_form(run, 3)
    assert waiting.state is not None and waiting.state.name == "Suspended"  # holds no worker, no process
    assert len(estate.ledger.signatures_for(estate.system_id)) == 2
    with get_client(sync_client=True) as client:
        description = client.read_flow_run_input(run, f"suspended-{form_key(3)}-description")
    assert "Both parties have signed" in description and "北京时间" in description
    _sign(run, estate, estate.cloud, "withdraw", comment="a change freeze was announced")
    wait_for_form(run, 4)
    rows = estate.ledger.signatures_for(estate.system_id)
    assert [r.approver_id for r in rows] == [estate.department]  # the cloud provider signs again


def test_a_sign_off_that_would_expire_before_the_window_is_refused(served: tuple[str, Estate]) -> None:
    deployment, estate = served
    _with_window(estate, valid_for="1h")
    run = start_run(deployment, estate.parameters())
    wait_for_form(run, 1)
    _sign(run, estate, estate.department)
    wait_for_form(run, 2)
    _sign(run, estate, estate.cloud)
    final = wait_final(run)
    assert final.state is not None and final.state.type == StateType.FAILED
    expired = _events(estate, "signoff.expired")
    assert expired and "expires" in expired[0].detail["reason"]
    assert estate.ledger.signatures_for(estate.system_id) == []  # voided: a new joint sign-off is needed


# ===================================================================== no operator can forge it
def test_an_operator_with_the_workers_environment_home_and_ledger_cannot_forge_a_signature(
    served: tuple[str, Estate], prefect_server: PrefectServer, tmp_path: Path
) -> None:
    deployment, estate = served
    run = start_run(deployment, estate.parameters())
    wait_for_form(run, 1)
    mine = estate.fields(run)
    captured = {  # real signatures of the department's approver, as the Prefect API shows them to anyone
        "another run": _captured(estate, replace(mine, run_id=str(uuid.uuid4()))),
        "another system": _captured(estate, replace(mine, system_id="edu-student-records")),
        "another report digest": _captured(estate, replace(mine, report_digest="sm3:" + "ab" * 32)),
    }
    (tmp_path / "captured.json").write_text(json.dumps(captured), encoding="utf-8")
    env = {
        **os.environ,
        **prefect_server.client_env(),
        "CUTOVER_DATABASE_URL": estate.ledger_url,
        "CUTOVER_HOME": str(estate.settings.home),
        "CUTOVER_TOTP_KEY": estate.settings.totp_key.get_secret_value() if estate.settings.totp_key else "",
    }
    forger = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.tasks._forger",
            str(run),
            estate.system_id,
            estate.department,
            str(tmp_path / "captured.json"),
        ],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    tries = [json.loads(line) for line in forger.stdout.splitlines()]
    assert tries[0]["found"] == []  # no private key anywhere under the worker's home
    assert [t["server"] for t in tries[1:]] == ["REJECT", *["ACCEPT"] * 5]  # the flow itself must refuse these five
    wait_for_form(run, 6)
    assert estate.ledger.signatures_for(estate.system_id) == []
    reasons = _refusals(estate)
    assert len(reasons) == 5 and all("1234567812345678" in r for r in reasons), reasons
    _sign(run, estate, estate.department)  # the approver, with their own key, still can
    wait_for_form(run, 7)
    assert [r.approver_id for r in estate.ledger.signatures_for(estate.system_id)] == [estate.department]


def _captured(estate: Estate, fields: StatementFields) -> dict[str, str]:
    return estate.keyring.answer(estate.department, "approve", fields, "")
