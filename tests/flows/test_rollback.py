"""The one-click rollback flow (flows/rollback.py): it says first how much it carries back, and who asked."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest
from prefect import get_client
from prefect._internal.schemas.fields import CreatedBy
from prefect.settings import PREFECT_API_URL, temporary_settings

from cutover.ledger import RunKind
from cutover.runtime import find_spec, open_ledger, register
from cutover.settings import get_settings
from flows.deployments import VIA_PREFECT, rollback_deployment
from flows.rollback import (
    FROM_PREFECT_API,
    FROM_PREFECT_UI,
    REFUSED,
    first_state_message,
    requested_by,
    requester,
    rollback_flow,
)
from tasks.divergence import Divergence, Method, TableChange
from tests.fixtures.prefect_server import PrefectServer

ROOT = Path(__file__).resolve().parents[2]
HRSS = "hrss-social-insurance"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private ledger (SQLite) and a copy of the example specs; HRSS registered, not in retention."""
    shutil.copytree(ROOT / "cutover_specs", tmp_path / "specs", ignore=shutil.ignore_patterns("*.json"))
    monkeypatch.setenv("CUTOVER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CUTOVER_SPECS_DIR", str(tmp_path / "specs"))
    monkeypatch.delenv("CUTOVER_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    register(open_ledger(), find_spec(HRSS)[1], actor="test")
    yield tmp_path
    get_settings.cache_clear()


def notices(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "this rollback carries back" in r.getMessage()]


def test_a_rollback_before_any_divergence_sample_says_the_amount_is_unknown(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cutover")

    state = rollback_flow.fn(system_id=HRSS, actor="test")

    assert notices(caplog) == [
        "this rollback carries back an unknown number of changed rows: unknown, no divergence sample yet"
    ]
    assert getattr(state, "name", None) == REFUSED  # not in retention: nothing was done after the notice


def test_a_rollback_says_how_many_changed_rows_it_carries_back_and_how_far_behind_the_original_is(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cutover")
    ledger = open_ledger()
    run = ledger.create_run(HRSS, RunKind.CUTOVER)
    ledger.open_retention_window(HRSS, run.id, ledger.now() + timedelta(days=92))
    found = Divergence([TableChange("payments", Method.COUNTERS, 40, 2, 0)], behind_s=3600.0)
    ledger.record_divergence(found.record(HRSS, run.id))

    rollback_flow.fn(system_id=HRSS, actor="test")

    [notice] = notices(caplog)
    assert notice.startswith(
        "this rollback carries back 42 changed rows; the original is 3600 seconds behind "
        "(no replication: it stopped at the cutover) (measured "
    )


def test_the_one_click_deployment_passes_the_prefect_actor_not_a_claim_that_it_was_the_ui() -> None:
    parameters = rollback_deployment("hrss").parameters

    assert parameters["actor"] == VIA_PREFECT


def test_a_run_started_through_prefect_without_a_known_creator_says_only_where_it_came_from() -> None:
    assert requested_by(VIA_PREFECT, None) == FROM_PREFECT_API == "prefect cli or api"
    assert requested_by(VIA_PREFECT, None, "Run from the Prefect UI with defaults") == FROM_PREFECT_UI == "prefect ui"
    assert requested_by("ui", None) == FROM_PREFECT_API  # deployments created before VIA_PREFECT say no more


def test_a_run_whose_creator_prefect_knows_is_recorded_with_where_it_came_from_and_that_creator() -> None:
    user = CreatedBy(id=uuid.uuid4(), type="USER", display_value="wang.li")

    assert requested_by(VIA_PREFECT, user, "Run from the Prefect UI") == "prefect ui (user:wang.li)"
    assert requested_by(VIA_PREFECT, user) == "prefect cli or api (user:wang.li)"


def test_an_actor_the_caller_named_is_kept_whatever_prefect_says() -> None:
    schedule = CreatedBy(id=uuid.uuid4(), type="SCHEDULE", display_value="every-5m")

    assert requested_by("cli:ops", schedule, "Run from the Prefect UI") == "cli:ops"  # `cutover rollback`
    assert requested_by("watch", None) == "watch"  # the watch's automatic rollback


# ------------------------------------------------- where a one-click run came from, on a real server
@pytest.fixture
def one_click(prefect_server: PrefectServer) -> tuple[str, UUID]:
    """A system's one-click rollback deployment registered on the server (no worker: runs stay scheduled)."""
    system = f"origin-{uuid.uuid4().hex[:8]}"
    deployment = rollback_deployment(system)
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("rollback")
        deployment_id = client.create_deployment(flow_id, deployment.name, parameters=deployment.parameters)
    return f"rollback/{deployment.name}", deployment_id


def _actor_of(flow_run_id: UUID) -> str:
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
    return requester(str(run.parameters["actor"]), run)


def test_a_one_click_rollback_from_the_prefect_ui_is_recorded_as_the_ui(
    prefect_server: PrefectServer, one_click: tuple[str, UUID]
) -> None:
    _, deployment_id = one_click
    for message in ("Run from the Prefect UI with defaults", "Run from the Prefect UI"):  # quick run, custom run
        with prefect_server.http() as http:  # the request the UI's Run button sends
            response = http.post(
                f"/deployments/{deployment_id}/create_flow_run",
                json={"state": {"type": "SCHEDULED", "message": message}},
            )
        response.raise_for_status()
        assert _actor_of(UUID(response.json()["id"])) == "prefect ui"


def test_a_rollback_started_with_the_prefect_cli_or_api_is_recorded_as_such(
    prefect_server: PrefectServer, one_click: tuple[str, UUID]
) -> None:
    name, deployment_id = one_click
    with get_client(sync_client=True) as client:
        by_api = client.create_flow_run_from_deployment(deployment_id)
    ran = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "prefect"), "deployment", "run", name],
        env={**os.environ, **prefect_server.client_env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    by_cli = UUID(re.search(r"UUID: ([0-9a-f-]{36})", ran.stdout).group(1))  # type: ignore[union-attr]

    assert _actor_of(by_api.id) == "prefect cli or api"
    assert _actor_of(by_cli) == "prefect cli or api"


def test_when_the_prefect_server_cannot_say_where_a_run_came_from_the_rollback_is_recorded_as_cli_or_api(
    prefect_server: PrefectServer,
) -> None:
    assert first_state_message(uuid.uuid4()) is None  # a run the server does not know

    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):  # no server answers there
        assert first_state_message(uuid.uuid4()) is None
    assert requested_by(VIA_PREFECT, None, None) == FROM_PREFECT_API
