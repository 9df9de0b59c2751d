"""Production settings: the flows and the CLI's Prefect calls work with basic auth and CSRF protection on."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from prefect import flow, get_client
from prefect.artifacts import create_markdown_artifact

from flows.deployments import ensure_work_pool, find_rollback_deployment


def test_the_hardened_server_refuses_a_client_without_credentials(prefect_server_auth: Any) -> None:
    response = httpx.post(f"{prefect_server_auth.api_url}/flows/filter", json={}, timeout=10)
    assert response.status_code in (401, 403)  # no credentials (and no CSRF token): refused
    assert httpx.get(f"{prefect_server_auth.api_url}/health", timeout=10).status_code == 200  # stays open


def test_a_flow_with_artifacts_runs_with_basic_auth_and_csrf_on(prefect_server_auth: Any) -> None:
    key = f"hardening-{uuid.uuid4().hex[:8]}"

    @flow(name="hardening-check", persist_result=False)
    def check() -> str:
        create_markdown_artifact(markdown="# ok", key=key)
        return "ok"

    state = check(return_state=True)
    assert state.is_completed()
    with get_client(sync_client=True) as client:
        assert client.read_latest_artifacts  # the client authenticates for reads too
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.state is not None and run.state.is_completed()


def test_the_clis_deployment_calls_pass_csrf_protection(prefect_server_auth: Any) -> None:
    pool = f"hardening-{uuid.uuid4().hex[:8]}"
    ensure_work_pool(pool)  # a POST: the Python client fetches and sends the CSRF token
    with get_client(sync_client=True) as client:
        assert client.read_work_pool(pool).name == pool
    assert find_rollback_deployment(f"no-such-{uuid.uuid4().hex[:6]}") is None
