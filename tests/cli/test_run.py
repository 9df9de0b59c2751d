"""``cutover run SYSTEM`` (cli/_run.py): starts the cutover deployment, follows the run, says what to do next."""

from __future__ import annotations

import contextlib
import contextvars
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelled, Suspended
from typer.testing import CliRunner, Result

import cli
from cli._run import CUTOVER_DEPLOYMENT
from cutover.ledger import Ledger
from cutover.settings import get_settings
from cutover.spec import Spec
from flows.deployments import ensure_deployment
from tests._polling import wait_until
from tests.fixtures.prefect_server import PrefectServer, free_port
from tests.specbuilder import base_spec, write_spec


@pytest.fixture
def system(tmp_path: Path, isolated_ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A system whose spec is in the CLI's specs directory, with the test's own ledger."""
    spec = Spec.model_validate(base_spec(f"run-{uuid.uuid4().hex[:8]}"))
    write_spec(spec, tmp_path / "specs")
    monkeypatch.setenv("CUTOVER_DATABASE_URL", isolated_ledger.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CUTOVER_SPECS_DIR", str(tmp_path / "specs"))
    monkeypatch.setenv("CUTOVER_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield spec.system.id
    get_settings.cache_clear()


@pytest.fixture
def deployment(prefect_server: PrefectServer) -> Iterator[uuid.UUID]:
    """The cutover deployment on a pool of the test's own that no worker serves: runs stay scheduled."""
    deployment_id = ensure_deployment("cutover", work_pool=f"cutover-run-{uuid.uuid4().hex[:6]}")
    yield deployment_id
    with get_client(sync_client=True) as client:
        for flow_run in runs_of(client, deployment_id):
            client.delete_flow_run(flow_run.id)


def runs_of(client: Any, deployment_id: uuid.UUID) -> list[FlowRun]:
    return list(client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))))


def cutover(*args: str) -> Result:
    return CliRunner().invoke(cli.register_commands(), list(args))


def one_line_error(result: Result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
    return result.stderr


def test_an_unknown_system_exits_1_before_any_server_is_asked(system: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")

    error = one_line_error(cutover("run", "no-such-system"), 1)

    assert "no spec for system 'no-such-system'" in error


def test_an_unreachable_prefect_api_exits_5_saying_how_to_start_it(system: str) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        error = one_line_error(cutover("run", system, "--no-wait"), 5)

    assert "did not answer" in error and "prefect server start" in error


def test_an_unregistered_cutover_deployment_exits_5_saying_to_run_cutover_setup(
    system: str, prefect_server: PrefectServer
) -> None:
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectNotFound):
        client.delete_deployment(client.read_deployment_by_name(CUTOVER_DEPLOYMENT).id)

    error = one_line_error(cutover("run", system), 5)

    assert f"the deployment {CUTOVER_DEPLOYMENT} is not registered" in error
    assert "run `cutover setup`" in error and "prefect worker start --pool cutover-process" in error


def test_no_wait_starts_the_deployment_for_the_system_as_the_cli_user_and_prints_the_runs_page(
    system: str, deployment: uuid.UUID, prefect_server: PrefectServer
) -> None:
    result = cutover("run", system, "--no-wait")

    assert result.exit_code == 0, result.output
    with get_client(sync_client=True) as client:
        (flow_run,) = runs_of(client, deployment)
    assert flow_run.parameters["system_id"] == system and flow_run.parameters["resume"] is False
    assert str(flow_run.parameters["actor"]).startswith("cli:")
    assert f"cutover of {system} started: {prefect_server.base_url}/runs/flow-run/{flow_run.id}" in result.stdout


def when_the_run_appears(deployment_id: uuid.UUID, then: Any) -> threading.Thread:
    """In the background: once the command has created its run, force it into the state ``then()``."""

    def act() -> None:
        with get_client(sync_client=True) as client:
            wait_until(lambda: runs_of(client, deployment_id), what="the cutover run", timeout_s=120)
            (flow_run,) = runs_of(client, deployment_id)
            client.set_flow_run_state(flow_run.id, then(), force=True)

    context = contextvars.copy_context()  # the test's Prefect settings (which server) are context variables
    thread = threading.Thread(target=context.run, args=(act,), daemon=True)
    thread.start()
    return thread


def test_waiting_for_the_sign_off_is_reported_with_who_must_sign_and_how_then_exits_0(
    system: str, deployment: uuid.UUID
) -> None:
    thread = when_the_run_appears(deployment, lambda: Suspended(timeout_seconds=3600, pause_key="signoff-1"))

    result = cutover("run", system)
    thread.join(timeout=60)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "state: Scheduled" in out and "state: Suspended" in out
    assert "department must sign: one of wang.li" in out and "cloud_provider must sign: one of zhao.min" in out
    assert f"cutover sign {system} --as <approver id>" in out and "Resume" in out


def test_a_run_that_ends_without_completing_exits_4_naming_how_it_ended(system: str, deployment: uuid.UUID) -> None:
    thread = when_the_run_appears(deployment, lambda: Cancelled(message="cancelled by the operator"))

    result = cutover("run", system)
    thread.join(timeout=60)

    error = one_line_error(result, 4)
    assert f"the cutover of {system} ended Cancelled: cancelled by the operator" in error
