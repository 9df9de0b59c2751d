"""Approvers: TOTP enrollment, encryption at rest, code checks and anti-replay; the CLI commands."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
import typer
from pydantic import SecretStr
from typer.testing import CliRunner

import cli
from cutover import _totp, audit
from cutover.approvers import enroll, verify_code
from cutover.errors import ConfigurationError, SignatureInvalid
from cutover.ledger import Ledger
from cutover.lifecycle import register_system
from cutover.settings import Settings, get_settings
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


def test_cli_enroll_prints_the_qr_code_and_uri(cli_env: dict[str, str], ledger: Ledger) -> None:
    result = CliRunner().invoke(_app(), ["approver", "enroll", "wang.li", "--name", "王丽"])
    assert result.exit_code == 0, result.output
    assert "otpauth://totp/govcloud-cutover:wang.li" in result.output and "▀" in result.output
    assert ledger.get_approver("wang.li") is not None


def test_cli_sign_without_a_waiting_form_says_so(cli_env: dict[str, str], ledger: Ledger) -> None:
    system_id = unique_id("sign")
    register_system(ledger, system_id=system_id, name="测试", department="省测试厅", disposition="migrate", actor="t")
    result = CliRunner().invoke(_app(), ["sign", system_id, "--as", "wang.li"])
    assert result.exit_code == 3
    assert f"no sign-off form was ever shown for system {system_id!r}" in result.output
