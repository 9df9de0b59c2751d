"""``cutover setup``: configures the approvers' notification once, prints it without the robot's key."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import get_client
from typer.testing import CliRunner

import cli
from flows.notify import automation_name, remove_notifications
from tests.fixtures.prefect_server import PrefectServer

runner = CliRunner()
KEY = "cli-robot-key-8d2e41"
HOOK = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}"


@pytest.fixture
def name(prefect_server: PrefectServer) -> Iterator[str]:
    """A block name of this test's own, removed afterwards."""
    unique = f"approvers-{uuid.uuid4().hex[:10]}"
    yield unique
    remove_notifications(unique)


def invoke(*args: str) -> tuple[int, str]:
    cli.register_commands()
    result = runner.invoke(cli.app, ["setup", *args])
    return result.exit_code, result.output


def test_setup_creates_then_leaves_unchanged_and_never_prints_the_key(name: str) -> None:
    code, first = invoke("--notify-webhook", HOOK, "--name", name)
    assert code == 0, first
    assert "created" in first and "send?key=***" in first and KEY not in first
    code, again = invoke("--name", name, "--notify-webhook", HOOK)
    assert code == 0 and "created" not in again and again.count("unchanged") == 2, again
    with get_client(sync_client=True) as client:
        assert len(client.read_automations_by_name(automation_name(name))) == 1


def test_setup_takes_a_template_file_and_refuses_one_the_block_cannot_fill(name: str, tmp_path: Path) -> None:
    good = tmp_path / "dingtalk.json"
    good.write_text(json.dumps({"msgtype": "markdown", "markdown": {"title": "{{subject}}", "text": "{{body}}"}}))
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"text": "{{message}}"}))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")

    assert invoke("--notify-webhook", HOOK, "--name", name, "--template-file", str(good))[0] == 0
    code, output = invoke("--notify-webhook", HOOK, "--name", name, "--template-file", str(unknown))
    assert code == 5 and "{{message}}" in output and KEY not in output, output
    code, output = invoke("--notify-webhook", HOOK, "--name", name, "--template-file", str(broken))
    assert code == 1 and "broken.json" in output, output


def test_setup_no_notify_removes_it_and_a_second_time_finds_nothing(name: str) -> None:
    assert invoke("--notify-webhook", HOOK, "--name", name)[0] == 0
    code, output = invoke("--no-notify", "--name", name)
    assert code == 0 and "removed notification block" in output and "1 automation(s)" in output, output
    code, output = invoke("--no-notify", "--name", name)
    assert code == 0 and "nothing to remove" in output, output


def test_setup_needs_exactly_one_of_notify_webhook_and_no_notify(prefect_server: PrefectServer) -> None:
    assert invoke()[0] == 2
    assert invoke("--no-notify", "--notify-webhook", HOOK)[0] == 2
    code, output = invoke("--notify-webhook", "ftp://robot.example/send?key=abcdef", "--name", "x")
    assert code == 5 and "not an http(s) URL" in output and "abcdef" not in output, output
