"""Every command that reads or writes the ledger migrates it first: each one, run first thing against
an empty ``CUTOVER_HOME`` (the default SQLite ledger not yet created), answers as it would on a
ledger in use, never "no such table"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli
from cutover import sm2
from cutover.settings import get_settings
from cutover.spec import Spec
from tests.specbuilder import base_spec, write_spec

SYSTEM = "fresh-ledger-system"

#: Each ledger-using command, its arguments ({dir} is the test's directory) and the code it must exit with.
COMMANDS: list[tuple[str, list[str], int]] = [
    ("plan", ["plan", "--out", "{dir}/plan"], 0),
    ("status", ["status"], 0),
    ("audit verify", ["audit", "verify"], 0),
    ("audit export", ["audit", "export", "--out", "{dir}/audit.jsonl"], 0),
    (
        "approver enroll",
        ["approver", "enroll", "wang.li", "--name", "王丽", "--party", "department", "--key", "{dir}/wang.li.pub"],
        0,
    ),
    ("approver enroll --totp", ["approver", "enroll", "zhao.min", "--name", "赵敏", "--totp"], 0),
    ("approver list", ["approver", "list"], 0),
    ("approver revoke", ["approver", "revoke", "wang.li"], 1),  # not enrolled: an unknown id
    ("runs", ["runs", SYSTEM], 1),
    ("sign", ["sign", SYSTEM, "--as", "wang.li", "--key", "{dir}/wang.li"], 1),
    ("withdraw", ["withdraw", SYSTEM, "--as", "wang.li", "--key", "{dir}/wang.li"], 1),
    ("rollback (no Prefect server)", ["rollback", SYSTEM], 3),
    ("decommission", ["decommission", SYSTEM], 1),
    ("resolve", ["resolve", SYSTEM], 1),
]


@pytest.fixture
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty CUTOVER_HOME (its default SQLite ledger not yet made), a spec, a key pair; no Prefect server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    write_spec(Spec.model_validate(base_spec(SYSTEM)), tmp_path / "specs")
    key = sm2.generate_key()
    sm2.write_private_key(tmp_path / "wang.li", key, None)
    (tmp_path / "wang.li.pub").write_text(sm2.public_key_pem(key), encoding="ascii")
    monkeypatch.delenv("CUTOVER_DATABASE_URL", raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("CUTOVER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CUTOVER_SPECS_DIR", str(tmp_path / "specs"))
    get_settings.cache_clear()
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        yield tmp_path / "home"
    get_settings.cache_clear()


@pytest.mark.parametrize(("args", "code"), [(args, code) for _, args, code in COMMANDS], ids=[c[0] for c in COMMANDS])
def test_a_ledger_command_run_first_on_an_empty_home_migrates_the_ledger_and_answers(
    empty_home: Path, tmp_path: Path, args: list[str], code: int
) -> None:
    assert not empty_home.exists()
    argv = [arg.replace("{dir}", str(tmp_path)) for arg in args]

    result = CliRunner().invoke(cli.register_commands(), argv, input="n\n")

    assert "no such table" not in result.output and "migrate" not in result.output, result.output
    assert result.exit_code == code, result.output
    assert (empty_home / "ledger.db").exists()
