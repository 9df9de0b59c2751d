"""The form's "how to sign": the OpenSSL command it shows makes a signature the flow accepts."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from cutover import sm2
from tasks._signoff_forms import StatementFields
from tasks._signoff_howto import openssl_command, statement_for

FIELDS = StatementFields("hrss-social-insurance", "trial_run", "sm3:" + "a" * 64, "sm3:" + "b" * 64, "4f1c-run")


def test_the_openssl_command_shown_on_the_form_signs_exactly_the_statement(tmp_path: Path) -> None:
    key = sm2.generate_key()
    sm2.write_private_key(tmp_path / "my-sm2.key", key, None)
    statement = statement_for(FIELDS, "wang.li", "approve", datetime(2026, 12, 2, 12, 0, tzinfo=UTC))

    made = subprocess.run(
        ["bash", "-c", openssl_command(statement)], cwd=tmp_path, capture_output=True, text=True, check=True
    )

    assert sm2.verify(sm2.public_key_pem(key), statement.message(), made.stdout.strip())


def test_the_openssl_command_keeps_each_statement_line_on_a_line_of_its_own() -> None:
    statement = statement_for(FIELDS, "wang.li", "approve", datetime(2026, 12, 2, 12, 0, tzinfo=UTC))
    command = openssl_command(statement)
    assert len(command.splitlines()) == len(statement.text().splitlines()) + 3
    assert max(len(line) for line in command.splitlines()) < 100
