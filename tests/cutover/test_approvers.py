"""Approvers: TOTP enrollment, encryption at rest, code checks and anti-replay; SM2 keys and statements."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
import typer
from pydantic import SecretStr
from typer.testing import CliRunner

import cli
from cutover import _totp, audit, sm2
from cutover.approvers import (
    active_key,
    approver_party,
    enroll,
    enroll_key,
    revoke,
    verify_code,
    verify_statement,
)
from cutover.errors import ConfigurationError, SignatureInvalid, UnknownApprover
from cutover.ledger import Decision, Ledger, Party, RunKind, Signature
from cutover.lifecycle import register_system
from cutover.settings import Settings, get_settings
from cutover.statement import Statement
from tests.fixtures.totp import new_totp_key
from tests.specbuilder import unique_id

AT = datetime(2026, 11, 26, 10, 0, 7, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path, totp_key: str) -> Settings:
    return Settings(home=tmp_path / "home", totp_key=SecretStr(totp_key))


def _secret(uri: str) -> str:
    return str(pyotp.parse_uri(uri).secret)


def _code(uri: str, at: datetime) -> str:
    return str(pyotp.parse_uri(uri).at(at))


def test_enrolling_returns_an_otpauth_uri_and_a_terminal_qr_code(ledger: Ledger, settings: Settings) -> None:
    enrollment = enroll(ledger, "wang.li", "王丽", settings=settings)
    assert enrollment.uri.startswith("otpauth://totp/govcloud-cutover:wang.li?")
    totp = pyotp.parse_uri(enrollment.uri)
    assert (totp.issuer, totp.digits, totp.interval, totp.name) == ("govcloud-cutover", 6, 30, "wang.li")
    assert set(enrollment.qr) & {"▀", "▄", "█"} and len(enrollment.qr.splitlines()) > 20
    assert enrollment.key_file_created is None


def test_the_secret_is_encrypted_at_rest_and_masked_in_reprs(ledger: Ledger, settings: Settings) -> None:
    enrollment = enroll(ledger, "wang.li", "王丽", settings=settings)
    secret = _secret(enrollment.uri)
    row = ledger.get_approver("wang.li")
    assert row is not None and secret.encode() not in row.totp_secret_encrypted
    assert secret not in repr(enrollment) and secret not in str(enrollment)
    assert secret not in repr(_totp.load_cipher(settings))
    assert all(secret not in str(e.detail) for e in audit.events(ledger, object="approver:wang.li"))


def test_without_a_configured_key_one_is_generated_once_with_mode_0600(ledger: Ledger, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", totp_key=None)
    first = enroll(ledger, "wang.li", "王丽", settings=settings)
    assert first.key_file_created == tmp_path / "home" / "totp.key"
    assert stat.S_IMODE(first.key_file_created.stat().st_mode) == 0o600
    second = enroll(ledger, "zhao.min", "赵敏", settings=settings)
    assert second.key_file_created is None
    verify_code(ledger, "zhao.min", _code(second.uri, AT), at=AT, settings=settings)


def test_a_current_code_is_accepted_once_and_returns_its_time_step(ledger: Ledger, settings: Settings) -> None:
    uri = enroll(ledger, "wang.li", "王丽", settings=settings).uri
    assert verify_code(ledger, "wang.li", _code(uri, AT), at=AT, settings=settings) == int(AT.timestamp()) // 30
    with pytest.raises(SignatureInvalid, match="already used"):
        verify_code(ledger, "wang.li", _code(uri, AT), at=AT, settings=settings)


def test_codes_one_step_either_side_are_tolerated_but_never_an_older_one_after_a_newer(
    ledger: Ledger, settings: Settings
) -> None:
    uri = enroll(ledger, "wang.li", "王丽", settings=settings).uri
    step = timedelta(seconds=30)
    verify_code(ledger, "wang.li", _code(uri, AT + step), at=AT, settings=settings)
    with pytest.raises(SignatureInvalid, match="already used"):
        verify_code(ledger, "wang.li", _code(uri, AT), at=AT, settings=settings)
    with pytest.raises(SignatureInvalid, match="not valid"):
        verify_code(ledger, "wang.li", _code(uri, AT + 3 * step), at=AT, settings=settings)


def test_a_wrong_code_says_what_and_when_and_what_to_do(ledger: Ledger, settings: Settings) -> None:
    uri = enroll(ledger, "wang.li", "王丽", settings=settings).uri
    wrong = "000000" if _code(uri, AT) != "000000" else "111111"
    message = "code for wang.li is not valid at 2026-11-26 10:00 UTC; use the current code from your authenticator app"
    for code in (wrong, "12345", "abcdef", ""):
        with pytest.raises(SignatureInvalid) as refused:
            verify_code(ledger, "wang.li", code, at=AT, settings=settings)
        assert str(refused.value) == message


def test_codes_typed_with_spaces_are_accepted(ledger: Ledger, settings: Settings) -> None:
    uri = enroll(ledger, "wang.li", "王丽", settings=settings).uri
    code = _code(uri, AT)
    step = verify_code(ledger, "wang.li", f" {code[:3]} {code[3:]} ", at=AT, settings=settings)
    assert step == int(AT.timestamp()) // 30
    with pytest.raises(SignatureInvalid, match="already used"):  # it was taken as that very code
        verify_code(ledger, "wang.li", code, at=AT, settings=settings)


def test_an_approver_who_never_enrolled_is_told_how_to_enroll(ledger: Ledger, settings: Settings) -> None:
    with pytest.raises(SignatureInvalid, match=r"cutover approver enroll li\.si"):
        verify_code(ledger, "li.si", "123456", at=AT, settings=settings)


def test_re_enrolling_replaces_the_secret(ledger: Ledger, settings: Settings) -> None:
    old = enroll(ledger, "wang.li", "王丽", settings=settings).uri
    new = enroll(ledger, "wang.li", "王丽", settings=settings).uri
    assert _secret(old) != _secret(new)
    if _code(old, AT) != _code(new, AT):
        with pytest.raises(SignatureInvalid):
            verify_code(ledger, "wang.li", _code(old, AT), at=AT, settings=settings)


def test_a_changed_key_is_a_configuration_error_naming_the_approver(ledger: Ledger, settings: Settings) -> None:
    uri = enroll(ledger, "wang.li", "王丽", settings=settings).uri
    other = Settings(home=settings.home, totp_key=SecretStr(new_totp_key()))
    with pytest.raises(ConfigurationError, match=r"cannot decrypt the secret of approver 'wang\.li'"):
        verify_code(ledger, "wang.li", _code(uri, AT), at=AT, settings=other)


def test_a_malformed_key_or_id_is_refused(ledger: Ledger, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a Fernet key"):
        enroll(ledger, "wang.li", "王丽", settings=Settings(home=tmp_path, totp_key=SecretStr("short")))
    with pytest.raises(ConfigurationError, match="approver id 'Wang Li' is not valid"):
        enroll(ledger, "Wang Li", "王丽", settings=Settings(home=tmp_path, totp_key=None))


# ------------------------------------------------------------------------------------ CLI
@pytest.fixture
def cli_env(db_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    assert settings.totp_key is not None
    env = {
        "CUTOVER_DATABASE_URL": db_url,
        "CUTOVER_TOTP_KEY": settings.totp_key.get_secret_value(),
        "CUTOVER_HOME": str(settings.home),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


def _app() -> typer.Typer:
    return cli.register_commands()


def test_cli_enroll_with_totp_prints_the_qr_code_and_uri(cli_env: dict[str, str], ledger: Ledger) -> None:
    result = CliRunner().invoke(_app(), ["approver", "enroll", "wang.li", "--name", "王丽", "--totp"])
    assert result.exit_code == 0, result.output
    assert "otpauth://totp/govcloud-cutover:wang.li" in result.output and "▀" in result.output
    assert ledger.get_approver("wang.li") is not None


def test_cli_sign_without_a_waiting_form_says_so(cli_env: dict[str, str], ledger: Ledger) -> None:
    system_id = unique_id("sign")
    register_system(ledger, system_id=system_id, name="测试", department="省测试厅", disposition="migrate", actor="t")
    result = CliRunner().invoke(_app(), ["sign", system_id, "--as", "wang.li"])
    assert result.exit_code == 3
    assert f"no sign-off form was ever shown for system {system_id!r}" in result.output


# ------------------------------------------------------------------------------- SM2 keys
def _key_pem(key: sm2.PrivateKey) -> bytes:
    return sm2.public_key_pem(key).encode()


def _signed(approver_id: str, key: sm2.PrivateKey, **changes: object) -> tuple[Statement, str]:
    fields: dict[str, object] = {
        "system_id": "hrss",
        "report_kind": "trial_run",
        "report_digest": "sm3:" + "ab" * 32,
        "spec_digest": "sm3:" + "cd" * 32,
        "decision": "approve",
        "comment": "同意",
        "signed_at": AT,
        "run_id": "0b6c7a5e-1f2d-4c3b-9a8e-7d6c5b4a3f2e",
        "approver_id": approver_id,
    }
    statement = Statement.model_validate({**fields, **changes})
    return statement, sm2.sign(key, statement.message())


def test_enrolling_a_key_records_the_public_key_and_the_enrolling_admin_as_the_actor(ledger: Ledger) -> None:
    approver_id, key = unique_id("wang"), sm2.generate_key()
    enrolled = enroll_key(
        ledger, approver_id, "王丽", Party.DEPARTMENT, _key_pem(key), actor="admin.zhang", source="wang.pub"
    )

    public = sm2.public_key_pem(key)
    assert (enrolled.approver_id, enrolled.party, enrolled.enrolled_by) == (
        approver_id,
        Party.DEPARTMENT,
        "admin.zhang",
    )
    assert enrolled.fingerprint == sm2.fingerprint(public) and enrolled.replaced is None
    assert approver_party(ledger, approver_id) is Party.DEPARTMENT
    stored = active_key(ledger, approver_id)
    assert stored is not None and stored.public_key_pem == public and stored.source == "wang.pub"
    row = ledger.get_approver(approver_id)
    assert row is not None and row.totp_secret_encrypted is None
    (event,) = audit.events(ledger, object=f"approver:{approver_id}")
    assert (event.action, event.actor) == ("approver.enrolled", "admin.zhang")
    assert event.detail == {
        "name": "王丽",
        "party": "department",
        "proof": "sm2",
        "public_key": public,
        "fingerprint": enrolled.fingerprint,
        "source": "wang.pub",
        "replaced": None,
    }


def test_a_signature_over_the_statement_verifies_with_the_active_key_and_names_it(ledger: Ledger) -> None:
    approver_id, key = unique_id("wang"), sm2.generate_key()
    enrolled = enroll_key(ledger, approver_id, "王丽", Party.DEPARTMENT, _key_pem(key), actor="admin", source="k")
    statement, signature = _signed(approver_id, key)

    assert verify_statement(ledger, statement, signature) == enrolled.fingerprint
    other, _ = _signed(approver_id, key, report_digest="sm3:" + "ef" * 32)
    with pytest.raises(SignatureInvalid, match="distid:1234567812345678") as refused:
        verify_statement(ledger, other, signature)
    assert f"does not verify with their enrolled key {enrolled.fingerprint}" in str(refused.value)


def test_a_replaced_key_is_kept_revoked_and_its_signature_is_refused_saying_so(ledger: Ledger) -> None:
    approver_id, old_key, new_key = unique_id("wang"), sm2.generate_key(), sm2.generate_key()
    old = enroll_key(ledger, approver_id, "王丽", Party.DEPARTMENT, _key_pem(old_key), actor="admin", source="a")
    new = enroll_key(ledger, approver_id, "王丽", Party.DEPARTMENT, _key_pem(new_key), actor="admin", source="b")

    assert new.replaced == old.fingerprint
    kept = ledger.approver_key_by_fingerprint(old.fingerprint)
    assert kept is not None and kept.revoked_at is not None and kept.revoked_by == "admin"
    assert [k.fingerprint for k in ledger.approver_keys(approver_id)] == [old.fingerprint, new.fingerprint]
    statement, old_signature = _signed(approver_id, old_key)
    assert sm2.verify(kept.public_key_pem, statement.message(), old_signature)  # still checkable
    with pytest.raises(SignatureInvalid, match=f"made with their revoked key {old.fingerprint}"):
        verify_statement(ledger, statement, old_signature)
    assert verify_statement(ledger, *_signed(approver_id, new_key)) == new.fingerprint


def test_a_revoked_key_is_refused_until_a_new_key_is_enrolled(ledger: Ledger) -> None:
    approver_id, key = unique_id("zhao"), sm2.generate_key()
    enrolled = enroll_key(ledger, approver_id, "赵敏", Party.CLOUD_PROVIDER, _key_pem(key), actor="admin", source="k")

    assert revoke(ledger, approver_id, actor="admin.li") == enrolled.fingerprint
    assert active_key(ledger, approver_id) is None
    with pytest.raises(SignatureInvalid, match=r"was revoked at .* by admin\.li; they cannot sign until"):
        verify_statement(ledger, *_signed(approver_id, key))
    (revoked, _) = audit.events(ledger, object=f"approver:{approver_id}")
    assert (revoked.action, revoked.actor, revoked.detail["fingerprint"]) == (
        "approver.revoked",
        "admin.li",
        enrolled.fingerprint,
    )
    with pytest.raises(ConfigurationError, match="no active SM2 key to revoke"):
        revoke(ledger, approver_id, actor="admin")
    with pytest.raises(ConfigurationError, match=r"was revoked .* never enrolled again"):
        enroll_key(ledger, approver_id, "赵敏", Party.CLOUD_PROVIDER, _key_pem(key), actor="admin", source="k")


def test_an_approver_without_a_key_is_told_how_to_enroll_and_an_unknown_one_cannot_be_revoked(
    ledger: Ledger, settings: Settings
) -> None:
    approver_id = unique_id("li")
    with pytest.raises(SignatureInvalid, match=r"not enrolled with an SM2 key.*cutover approver keygen"):
        verify_statement(ledger, *_signed(approver_id, sm2.generate_key()))
    with pytest.raises(UnknownApprover, match="is not enrolled; `cutover approver list`"):
        revoke(ledger, approver_id, actor="admin")
    enroll_key(ledger, approver_id, "李四", Party.DEPARTMENT, _key_pem(sm2.generate_key()), actor="a", source="k")
    with pytest.raises(SignatureInvalid, match=r"has no TOTP secret: they sign with an SM2 key"):
        verify_code(ledger, approver_id, "123456", at=AT, settings=settings)


def test_one_key_belongs_to_one_approver_and_enrolling_it_again_changes_nothing(ledger: Ledger) -> None:
    first, second, key = unique_id("wang"), unique_id("zhao"), sm2.generate_key()
    enrolled = enroll_key(ledger, first, "王丽", Party.DEPARTMENT, _key_pem(key), actor="admin", source="k")

    again = enroll_key(ledger, first, "王丽", Party.DEPARTMENT, _key_pem(key), actor="admin", source="k")
    assert again.fingerprint == enrolled.fingerprint and len(ledger.approver_keys(first)) == 1
    assert len(audit.events(ledger, object=f"approver:{first}")) == 1
    with pytest.raises(ConfigurationError, match=f"already enrolled for approver {first}"):
        enroll_key(ledger, second, "赵敏", Party.CLOUD_PROVIDER, _key_pem(key), actor="admin", source="k")
    with pytest.raises(ConfigurationError, match="enrolled for the department party"):
        enroll_key(ledger, first, "王丽", Party.CLOUD_PROVIDER, _key_pem(key), actor="admin", source="k")


def test_a_non_sm2_key_is_refused_naming_where_it_came_from(ledger: Ledger) -> None:
    with pytest.raises(ConfigurationError, match=r"^/keys/wang\.pub: neither an SM2 public key"):
        enroll_key(
            ledger, unique_id("wang"), "王丽", Party.DEPARTMENT, b"ssh-rsa AAAA", actor="a", source="/keys/wang.pub"
        )


def test_a_signed_statement_is_recorded_once_and_a_replay_is_refused(ledger: Ledger, new_system: Any) -> None:
    system_id, approver_id, key = new_system(ledger), unique_id("wang"), sm2.generate_key()
    enroll_key(ledger, approver_id, "王丽", Party.DEPARTMENT, _key_pem(key), actor="admin", source="k")
    run = ledger.create_run(system_id, RunKind.CUTOVER)
    statement, signature = _signed(approver_id, key, system_id=system_id, run_id=run.id)

    def record() -> Signature:
        return ledger.add_signature(
            run_id=run.id,
            system_id=system_id,
            party=Party.DEPARTMENT,
            approver_id=approver_id,
            decision=Decision.APPROVE,
            report_digest=statement.report_digest,
            spec_digest=statement.spec_digest,
            proof="sm2",
            statement=statement.text(),
            signature=signature,
            key_fingerprint=verify_statement(ledger, statement, signature),
        )

    row = record()
    assert row.statement_digest == ledger.statement_digest(statement.text())
    found = ledger.find_signature_by_statement_digest(ledger.statement_digest(statement.text()))
    assert found is not None and (found.id, found.proof, found.signature) == (row.id, "sm2", signature)
    with pytest.raises(SignatureInvalid, match="already accepted once"):
        record()
