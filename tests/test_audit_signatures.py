"""`cutover audit verify` re-verifies every SM2 sign-off signature from the audit trail alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

import cli
from cutover import audit, sm2
from cutover.approvers import enroll_key, revoke
from cutover.errors import AuditChainBroken
from cutover.ledger import AuditChainHead, AuditEvent, Ledger, Party
from cutover.settings import get_settings
from cutover.statement import Statement

RUN_ID = "0b6c7a5e-1f2d-4c3b-9a8e-7d6c5b4a3f2e"


def _enroll(ledger: Ledger, approver_id: str, party: Party = Party.DEPARTMENT) -> sm2.PrivateKey:
    key = sm2.generate_key()
    enroll_key(ledger, approver_id, approver_id, party, sm2.public_key_pem(key).encode(), actor="admin", source="k")
    return key


def _record(
    ledger: Ledger,
    approver_id: str,
    key: sm2.PrivateKey,
    *,
    action: str = "signoff.signed",
    decision: str = "approve",
    detail: dict[str, Any] | None = None,
    signed: dict[str, Any] | None = None,
) -> int:
    """Append a sign-off event as the flow records it, signed by ``key``; returns its seq."""
    fields: dict[str, Any] = {
        "system_id": "hrss",
        "report_kind": "trial_run",
        "report_digest": "sm3:" + "ab" * 32,
        "spec_digest": "sm3:" + "cd" * 32,
        "decision": decision,
        "comment": "同意",
        "signed_at": datetime(2026, 12, 2, 11, 50, tzinfo=UTC),
        "run_id": RUN_ID,
        "approver_id": approver_id,
    }
    statement = Statement.model_validate({**fields, **(signed or {})})
    recorded = {
        "kind": statement.report_kind,
        "flow_run_id": statement.run_id,
        "decision": statement.decision,
        "report_digest": statement.report_digest,
        "spec_digest": statement.spec_digest,
        "approver_id": approver_id,
        "proof": "sm2",
        "statement": statement.text(),
        "signature": sm2.sign(key, statement.message()),
        "key_fingerprint": sm2.fingerprint(sm2.public_key_pem(key)),
        **(detail or {}),
    }
    with ledger.session() as session:
        event = audit.append(session, actor=approver_id, action=action, object="system:hrss", detail=recorded)
        return event.seq


def test_every_sm2_signature_and_withdrawal_is_re_verified_and_counted(isolated_ledger: Ledger) -> None:
    wang, zhao = _enroll(isolated_ledger, "wang.li"), _enroll(isolated_ledger, "zhao.min", Party.CLOUD_PROVIDER)
    _record(isolated_ledger, "wang.li", wang)
    _record(isolated_ledger, "zhao.min", zhao)
    _record(isolated_ledger, "wang.li", wang, action="signoff.withdrawn", decision="withdraw")
    with isolated_ledger.session() as session:  # a TOTP sign-off carries nothing to re-check
        audit.append(session, actor="li.si", action="signoff.signed", object="system:hrss", detail={"proof": "totp"})

    result = audit.verify(isolated_ledger)

    assert (result.ok, result.signatures_checked, result.signature) == (True, 3, None)


def test_a_signature_made_with_a_key_replaced_later_still_verifies(isolated_ledger: Ledger) -> None:
    old = _enroll(isolated_ledger, "wang.li")
    _record(isolated_ledger, "wang.li", old)
    new = _enroll(isolated_ledger, "wang.li")
    _record(isolated_ledger, "wang.li", new, signed={"comment": "再次同意"})

    assert audit.verify(isolated_ledger).signatures_checked == 2


def test_a_forged_event_whose_signature_does_not_verify_is_named_with_its_seq(isolated_ledger: Ledger) -> None:
    wang = _enroll(isolated_ledger, "wang.li")
    _record(isolated_ledger, "wang.li", wang)
    forged = _record(isolated_ledger, "wang.li", sm2.generate_key(), detail={"key_fingerprint": "x"})
    forged_sig = _record(isolated_ledger, "wang.li", wang, detail={"signature": sm2.sign(sm2.generate_key(), b"other")})

    result = audit.verify(isolated_ledger)

    assert (result.ok, result.broken_seq, result.signatures_checked) == (False, forged, 1)
    assert result.reason == "no approver.enrolled event records its key x"
    assert result.signature == "signoff.signed by wang.li on system:hrss"
    with pytest.raises(AuditChainBroken, match=f"signature at seq {forged}"):
        result.raise_if_broken()
    assert forged_sig > forged


def test_an_event_claiming_another_report_than_the_signed_statement_is_caught(isolated_ledger: Ledger) -> None:
    wang = _enroll(isolated_ledger, "wang.li")
    seq = _record(isolated_ledger, "wang.li", wang, detail={"report_digest": "sm3:" + "ef" * 32})

    result = audit.verify(isolated_ledger)

    assert (result.ok, result.broken_seq) == (False, seq)
    assert result.reason is not None and result.reason.startswith("the event's report_digest is 'sm3:efef")


def test_a_signature_by_a_key_enrolled_for_someone_else_is_caught(isolated_ledger: Ledger) -> None:
    zhao = _enroll(isolated_ledger, "zhao.min", Party.CLOUD_PROVIDER)
    mallory = _record(isolated_ledger, "mallory", zhao)

    result = audit.verify(isolated_ledger)

    assert (result.broken_seq, result.reason) == (
        mallory,
        "its key was enrolled for zhao.min, not for mallory who the statement names",
    )


def test_a_signature_recorded_after_its_key_was_revoked_is_caught(isolated_ledger: Ledger) -> None:
    wang = _enroll(isolated_ledger, "wang.li")
    revoke(isolated_ledger, "wang.li", actor="admin")
    late = _record(isolated_ledger, "wang.li", wang)

    result = audit.verify(isolated_ledger)

    assert (result.ok, result.broken_seq) == (False, late)
    assert result.reason is not None and result.reason.startswith("its key was revoked (or replaced) at seq")


def _drop_audit_triggers(ledger: Ledger) -> None:
    with ledger.engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("DROP TRIGGER audit_events_refuse_update")
        else:
            connection.exec_driver_sql("ALTER TABLE audit_events DISABLE TRIGGER USER")


def test_a_dba_who_rewrites_a_signed_event_and_re_chains_every_digest_is_still_caught(isolated_ledger: Ledger) -> None:
    wang = _enroll(isolated_ledger, "wang.li")
    seq = _record(isolated_ledger, "wang.li", wang, decision="reject")
    _record(isolated_ledger, "wang.li", wang, signed={"comment": "later"})
    _drop_audit_triggers(isolated_ledger)

    with isolated_ledger.session() as session:  # turn the rejection into an approval, then re-chain
        events = list(session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)))
        prev = events[0].prev_digest
        for event in events:
            if event.seq == seq:
                text = event.detail["statement"].replace("decision: reject", "decision: approve")
                event.detail = {**event.detail, "decision": "approve", "statement": text}
            event.prev_digest = prev
            event.digest = prev = audit.event_digest(event, isolated_ledger.digest)
        head = session.get(AuditChainHead, 1)
        assert head is not None
        head.digest = prev

    result = audit.verify(isolated_ledger)

    assert (result.ok, result.checked, result.broken_seq) == (False, len(events), seq)
    assert result.reason is not None and "signature does not verify over its statement" in result.reason


@pytest.fixture
def cli_env(isolated_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CUTOVER_DATABASE_URL", isolated_db_url)
    monkeypatch.setenv("CUTOVER_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_audit_verify_prints_how_many_signatures_it_re_verified_and_names_a_bad_one(
    cli_env: None, isolated_ledger: Ledger
) -> None:
    wang = _enroll(isolated_ledger, "wang.li")
    _record(isolated_ledger, "wang.li", wang)
    _record(isolated_ledger, "wang.li", wang, action="signoff.withdrawn", decision="withdraw")

    intact = CliRunner().invoke(cli.register_commands(), ["audit", "verify"])
    assert intact.exit_code == 0, intact.output
    assert "2 signatures re-verified" in intact.output

    bad = _record(isolated_ledger, "wang.li", wang, detail={"decision": "approve"}, decision="reject")
    broken = CliRunner().invoke(cli.register_commands(), ["audit", "verify"])
    assert broken.exit_code == 1
    assert f"signature at seq {bad} (signoff.signed by wang.li on system:hrss) does not re-verify" in broken.output
    assert "decision is 'approve' but the signed statement says 'reject'" in broken.output
