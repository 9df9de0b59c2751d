"""Joint sign-off from the terminal (`cutover sign`), within a cutover window, and against forgery,
on a real Prefect server (the served deployment: tests/tasks/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.objects import StateType

from cutover import sm2
from cutover.spec_loader import load_spec
from cutover.window import SHANGHAI
from tasks.signoff import (
    StatementFields,
)
from tests.fixtures.prefect_server import REPO_ROOT, PrefectServer
from tests.tasks._signoff_estate import (
    Estate,
    events,
    form_key,
    refusals,
    sign,
    start_run,
    wait_final,
    wait_for_form,
)

pytestmark = pytest.mark.timeout(900)  # a backstop: every wait inside ends as soon as its condition holds


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
            ["sign", estate.system_id, "--as", estate.department, "--key", str(key_file), "--wait", "300"],
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
    sign(run, estate, estate.cloud)
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
    assert "error: the signature was refused: " in output and refusals(estate)[0] in " ".join(output.split())
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
    sign(run, estate, estate.department)
    wait_for_form(run, 2)
    sign(run, estate, estate.cloud)
    waiting = wait_for_form(run, 3)
    assert waiting.state is not None and waiting.state.name == "Suspended"  # holds no worker, no process
    assert len(estate.ledger.signatures_for(estate.system_id)) == 2
    with get_client(sync_client=True) as client:
        description = client.read_flow_run_input(run, f"suspended-{form_key(3)}-description")
    assert "Both parties have signed" in description and "北京时间" in description
    sign(run, estate, estate.cloud, "withdraw", comment="a change freeze was announced")
    wait_for_form(run, 4)
    rows = estate.ledger.signatures_for(estate.system_id)
    assert [r.approver_id for r in rows] == [estate.department]  # the cloud provider signs again


def test_a_sign_off_that_would_expire_before_the_window_is_refused(served: tuple[str, Estate]) -> None:
    deployment, estate = served
    _with_window(estate, valid_for="1h")
    run = start_run(deployment, estate.parameters())
    wait_for_form(run, 1)
    sign(run, estate, estate.department)
    wait_for_form(run, 2)
    sign(run, estate, estate.cloud)
    final = wait_final(run)
    assert final.state is not None and final.state.type == StateType.FAILED
    expired = events(estate, "signoff.expired")
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
        timeout=300,
        check=True,
    )
    tries = [json.loads(line) for line in forger.stdout.splitlines()]
    assert tries[0]["found"] == []  # no private key anywhere under the worker's home
    assert [t["server"] for t in tries[1:]] == ["REJECT", *["ACCEPT"] * 5]  # the flow itself must refuse these five
    wait_for_form(run, 6)
    assert estate.ledger.signatures_for(estate.system_id) == []
    reasons = refusals(estate)
    assert len(reasons) == 5 and all("1234567812345678" in r for r in reasons), reasons
    sign(run, estate, estate.department)  # the approver, with their own key, still can
    wait_for_form(run, 7)
    assert [r.approver_id for r in estate.ledger.signatures_for(estate.system_id)] == [estate.department]


def _captured(estate: Estate, fields: StatementFields) -> dict[str, str]:
    return estate.keyring.answer(estate.department, "approve", fields, "")
