"""`cutover approver keygen | enroll | revoke | list` (cli/_approver.py)."""

from __future__ import annotations

import getpass
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import cli
from cutover import audit, sm2
from cutover.ledger import Ledger, Party
from cutover.settings import get_settings
from tests.specbuilder import unique_id


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CUTOVER_DATABASE_URL", db_url)
    monkeypatch.setenv("CUTOVER_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _app() -> typer.Typer:
    return cli.register_commands()


def _keygen(out: Path, *extra: str) -> str:
    result = CliRunner().invoke(_app(), ["approver", "keygen", "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result.output


def test_keygen_writes_a_0600_private_key_and_a_pub_file_and_says_what_to_do_next(tmp_path: Path) -> None:
    out = tmp_path / "wang.li.pem"
    output = _keygen(out)

    public = Path(f"{out}.pub").read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert sm2.public_key_pem(sm2.load_private_key(out, None)) == public
    assert sm2.fingerprint(public) in output
    assert "send wang.li.pem.pub to the administrator" in output and "cutover approver enroll" in output
    assert "-pkeyopt distid:1234567812345678" in output


def test_keygen_with_a_passphrase_file_encrypts_the_key_and_never_overwrites(tmp_path: Path) -> None:
    out, secret = tmp_path / "zhao.pem", tmp_path / "passphrase"
    secret.write_text("赵敏的口令\n")
    _keygen(out, "--passphrase-file", str(secret))

    assert b"ENCRYPTED PRIVATE KEY" in out.read_bytes()
    sm2.load_private_key(out, "赵敏的口令")
    again = CliRunner().invoke(_app(), ["approver", "keygen", "--out", str(out)])
    assert again.exit_code == 3 and "already exists; refusing to overwrite" in again.output


def test_keygen_asks_for_the_passphrase_twice_when_told_to(tmp_path: Path) -> None:
    out = tmp_path / "li.pem"
    result = CliRunner().invoke(
        _app(), ["approver", "keygen", "--out", str(out), "--ask-passphrase"], input="pass 1\npass 1\n"
    )
    assert result.exit_code == 0, result.output
    sm2.load_private_key(out, "pass 1")


def test_enroll_list_and_revoke_a_key_record_the_admin_as_the_actor(
    cli_env: None, ledger: Ledger, tmp_path: Path
) -> None:
    approver_id, out = unique_id("wang"), tmp_path / "wang.pem"
    _keygen(out)
    fingerprint = sm2.fingerprint(Path(f"{out}.pub").read_text())

    enroll = ["approver", "enroll", approver_id, "--name", "王丽", "--party", "department", "--key", f"{out}.pub"]
    result = CliRunner().invoke(_app(), [*enroll, "--actor", "admin.zhang"])
    assert result.exit_code == 0, result.output
    assert fingerprint in result.output and "by admin.zhang" in result.output
    (event,) = audit.events(ledger, object=f"approver:{approver_id}")
    assert (event.actor, event.detail["fingerprint"], event.detail["party"]) == (
        "admin.zhang",
        fingerprint,
        "department",
    )

    listed = CliRunner().invoke(_app(), ["approver", "list", approver_id])
    assert listed.exit_code == 0 and approver_id in listed.output and fingerprint in listed.output

    revoked = CliRunner().invoke(_app(), ["approver", "revoke", approver_id, "--actor", "admin.li"])
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked the key {fingerprint}" in revoked.output
    key = ledger.approver_key_by_fingerprint(fingerprint)
    assert key is not None and key.revoked_by == "admin.li"
    again = CliRunner().invoke(_app(), ["approver", "revoke", approver_id])
    assert again.exit_code == 5 and "no active SM2 key to revoke" in again.output


def test_enroll_takes_an_sm2_certificate_and_defaults_the_actor_to_the_os_user(
    cli_env: None, ledger: Ledger, tmp_path: Path
) -> None:
    approver_id, key, certificate = unique_id("zhao"), tmp_path / "k.pem", tmp_path / "zhao.crt"
    subprocess.run(["openssl", "genpkey", "-algorithm", "SM2", "-out", str(key)], check=True, timeout=30)
    subprocess.run(
        ["openssl", "req", "-x509", "-new", "-key", str(key), "-sm3", "-subj", "/CN=zhao", "-days", "30",
         "-sigopt", "distid:1234567812345678", "-out", str(certificate)],
        check=True, timeout=30, capture_output=True,
    )  # fmt: skip
    enroll = [
        "approver",
        "enroll",
        approver_id,
        "--name",
        "赵敏",
        "--party",
        "cloud_provider",
        "--key",
        str(certificate),
    ]
    result = CliRunner().invoke(_app(), enroll)

    assert result.exit_code == 0, result.output
    stored = ledger.active_approver_key(approver_id)
    assert stored is not None and stored.party is Party.CLOUD_PROVIDER and stored.source == str(certificate)
    assert stored.fingerprint == sm2.fingerprint(sm2.public_key_pem(sm2.load_private_key(key, None)))
    assert stored.enrolled_by == getpass.getuser()


def test_enroll_refuses_a_non_sm2_key_naming_the_file_and_needs_party_and_key(
    cli_env: None, ledger: Ledger, tmp_path: Path
) -> None:
    p256 = tmp_path / "p256.pub"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(tmp_path / "p")],
        check=True, timeout=30,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "pkey", "-in", str(tmp_path / "p"), "-pubout", "-out", str(p256)], check=True, timeout=30
    )
    approver_id = unique_id("li")

    refused = CliRunner().invoke(
        _app(), ["approver", "enroll", approver_id, "--name", "李", "--party", "department", "--key", str(p256)]
    )
    assert refused.exit_code == 5 and f"{p256}: an EC key on curve secp256r1, not SM2" in refused.output
    missing = CliRunner().invoke(_app(), ["approver", "enroll", approver_id, "--name", "李"])
    assert missing.exit_code == 2 and "needs --party" in missing.output
    assert ledger.get_approver(approver_id) is None


def test_keygen_into_a_missing_folder_exits_1_saying_to_create_it(tmp_path: Path) -> None:
    out = tmp_path / "no-such-folder" / "wang.li.key"
    result = CliRunner().invoke(_app(), ["approver", "keygen", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "is not a folder: create it (mkdir -p" in " ".join(result.output.split())
    assert not out.parent.exists()


@pytest.mark.usefixtures("cli_env")
def test_revoking_an_approver_never_enrolled_exits_1_naming_the_list_command() -> None:
    result = CliRunner().invoke(_app(), ["approver", "revoke", unique_id("nobody")])
    assert result.exit_code == 1, result.output
    assert "is not enrolled; `cutover approver list` shows who is" in " ".join(result.output.split())
