"""Joint sign-off: the checks on their own, without Prefect (the flow's side: test_signoff_flow.py,
the terminal, the cutover window and forgery: test_signoff_terminal.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cutover import audit
from cutover.errors import SignatureInvalid, SignOffError
from cutover.ledger import Decision, Party, ReportKind
from cutover.spec import Approver, Spec
from tasks._signoff_text import FormContext, SignedLine
from tasks.signoff import (
    ShownForm,
    SignatureCheck,
    SignatureRecord,
    SignOffInput,
    SignOffRequest,
    TotpSignOffInput,
    check_signature,
    collect_signoff,
    signoff_description,
)
from tests.tasks._signoff_estate import (
    UNIT_RUN,
    Estate,
    make_estate,
)


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


def test_collect_signoff_outside_a_flow_run_says_where_to_call_it(estate: Estate) -> None:
    with pytest.raises(SignOffError, match="outside a flow run"):
        request = SignOffRequest(
            estate.spec, ReportKind.TRIAL_RUN, estate.report_digest(), "", datetime.now(UTC) + timedelta(hours=1)
        )
        collect_signoff(estate.ledger, request)
