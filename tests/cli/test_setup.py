"""``cutover setup``: the work pool, every deployment and the recovery automations in one idempotent
command, on a Prefect server of this module's own; the approvers' notification as an option, never
printing the robot's key."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.actions import DeploymentUpdate
from typer.testing import CliRunner

import cli
from flows.deployments import DEPLOYMENTS
from flows.notify import automation_name, remove_notifications
from flows.recovery import CRASH_ZOMBIES, RESUME_CRASHED
from tests.fixtures.prefect_server import PrefectServer, free_port

pytestmark = pytest.mark.timeout(240)

runner = CliRunner()
KEY = "cli-robot-key-8d2e41"
HOOK = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}"
STATUSES = ("created", "already there", "updated")


@pytest.fixture
def name(fresh_prefect_server: PrefectServer) -> Iterator[str]:
    """A block name of this test's own, removed afterwards."""
    unique = f"approvers-{uuid.uuid4().hex[:10]}"
    yield unique
    remove_notifications(unique)


def invoke(*args: str) -> tuple[int, str]:
    cli.register_commands()
    result = runner.invoke(cli.app, ["setup", *args])
    return result.exit_code, result.output


def statuses(output: str) -> dict[str, str]:
    """Each thing setup reported, by what it is: ``{"deployment 'cutover/cutover'": "created", ...}``."""
    found = {}
    for line in output.splitlines():
        what, _, status = line.rpartition(": ")
        if status in STATUSES:
            found[what] = status
    return found


def test_setup_makes_the_pool_every_deployment_and_both_automations_and_a_second_run_finds_them_all_there(
    fresh_prefect_server: PrefectServer,
) -> None:
    code, first = invoke()
    assert code == 0, first
    code, again = invoke()

    assert code == 0, again
    made = statuses(first)
    assert "work pool 'cutover-process' (type cutover)" in made
    with get_client(sync_client=True) as client:
        for deployment in DEPLOYMENTS.values():
            full_name = f"{deployment.flow().name}/{deployment.name}"
            assert f"deployment {full_name!r}" in made
            assert client.read_deployment_by_name(full_name).work_pool_name == "cutover-process"
        for automation in (CRASH_ZOMBIES, RESUME_CRASHED):
            assert f"automation {automation!r}" in made
            assert len(client.read_automations_by_name(automation)) == 1
    assert len(made) == 1 + len(DEPLOYMENTS) + 2, first
    assert statuses(again) == dict.fromkeys(made, "already there"), again
    assert "prefect worker start --pool cutover-process --type cutover" in again


def test_setup_updates_a_deployment_changed_on_the_server_and_leaves_the_rest(
    fresh_prefect_server: PrefectServer,
) -> None:
    assert invoke()[0] == 0
    with get_client(sync_client=True) as client:
        watch = client.read_deployment_by_name("watch-retention/watch")
        client.update_deployment(watch.id, DeploymentUpdate(description="edited by hand"))

    code, output = invoke()

    assert code == 0, output
    changed = {what: status for what, status in statuses(output).items() if status != "already there"}
    assert changed == {"deployment 'watch-retention/watch'": "updated"}, output
    with get_client(sync_client=True) as client:
        assert client.read_deployment_by_name("watch-retention/watch").description == DEPLOYMENTS["watch"].description


def test_setup_with_an_unreachable_prefect_api_says_so_in_one_line_and_exits_5(
    fresh_prefect_server: PrefectServer,
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        cli.register_commands()
        result = runner.invoke(cli.app, ["setup"])

    assert result.exit_code == 5, result.output
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.output
    assert "did not answer" in result.stderr and "prefect server start" in result.stderr


def test_setup_creates_then_leaves_notifications_as_they_are_and_never_prints_the_key(name: str) -> None:
    code, first = invoke("--notify-webhook", HOOK, "--name", name)
    assert code == 0, first
    assert "created" in first and "send?key=***" in first and KEY not in first
    code, again = invoke("--name", name, "--notify-webhook", HOOK)
    assert code == 0 and "created" not in again and "updated" not in again, again
    assert statuses(again)[f"automation {automation_name(name)!r} (on cutover.signoff.waiting)"] == "already there"
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


def test_setup_refuses_both_notify_webhook_and_no_notify_and_a_url_that_is_not_http(name: str) -> None:
    assert invoke("--no-notify", "--notify-webhook", HOOK)[0] == 2
    code, output = invoke("--notify-webhook", "ftp://robot.example/send?key=abcdef", "--name", name)
    assert code == 5 and "not an http(s) URL" in output and "abcdef" not in output, output
