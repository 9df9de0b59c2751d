"""A sign-off still waiting at its deadline is woken and ends itself, recording who did not sign
(tasks/_signoff_deadline.py, flows/signoff_deadline.py), on a real server with a cutover worker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments.runner import RunnerDeployment
from prefect.flow_runs import resume_flow_run
from prefect.states import Cancelled
from prefect.types.entrypoint import EntrypointType

from cutover import audit
from cutover.ledger import AuditOutcome
from flows._signoff_demo import signoff_demo
from flows.deployments import ensure_work_pool
from tasks._signoff_deadline import WAKEUP_APPROVER
from tasks.signoff import wakeup_input
from tests.fixtures.prefect_server import PrefectServer, kill_group, start_cutover_worker, wait_for_worker
from tests.tasks._signoff_estate import (
    Estate,
    make_estate,
    sqlite_copy,
    start_run,
    wait_final,
    wait_for_form,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def pooled_deployment(prefect_server: PrefectServer, totp_key: str, tmp_path: Path) -> Iterator[UUID]:
    """The signoff-demo flow deployed on a pool of its own, with a cutover worker polling it."""
    pool = f"deadline-test-{uuid.uuid4().hex[:6]}"
    ensure_work_pool(pool)
    deployment = signoff_demo.to_deployment(name=pool, entrypoint_type=EntrypointType.MODULE_PATH)
    assert isinstance(deployment, RunnerDeployment)
    deployment_id = deployment.apply(work_pool_name=pool)
    env = {**prefect_server.client_env(), "CUTOVER_TOTP_KEY": totp_key, "CUTOVER_HOME": str(tmp_path / "home")}
    worker = start_cutover_worker(pool, env, tmp_path / "worker.log")
    wait_for_worker(pool, worker, tmp_path / "worker.log")
    try:
        yield deployment_id
    finally:
        kill_group(worker)


@pytest.fixture
def estate(tmp_path: Path, sqlite_template: Path, totp_key: str) -> Iterator[Estate]:
    built = make_estate(tmp_path, sqlite_copy(tmp_path, sqlite_template), totp_key)
    yield built
    built.ledger.dispose()


def _events(estate: Estate, action: str) -> list[audit.AuditEvent]:
    return [e for e in audit.events(estate.ledger, object=f"system:{estate.system_id}") if e.action == action]


def _wakeup_runs(flow_run_id: UUID) -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["signoff-deadline"]))
        )
    return [r for r in runs if r.parameters.get("flow_run_id") == str(flow_run_id)]


def test_a_sign_off_still_waiting_at_its_deadline_ends_itself_and_records_who_did_not_sign(
    pooled_deployment: UUID, estate: Estate
) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=30)  # the form is asked well before it, even when busy
    run = start_run(str(pooled_deployment), estate.parameters(deadline=deadline))
    wait_for_form(run, 1, timeout_s=60)
    wakeups = _wakeup_runs(run)
    assert len(wakeups) == 1 and wakeups[0].expected_start_time is not None
    assert wakeups[0].expected_start_time >= deadline

    final = wait_final(run, timeout_s=90)

    assert final.state is not None and final.state.type == StateType.FAILED
    assert "sign-off deadline" in (final.state.message or ""), final.state.message
    expired = _events(estate, "signoff.expired")
    assert len(expired) == 1 and expired[0].outcome == AuditOutcome.FAILED
    assert "owning department" in str(expired[0].detail["missing"])
    assert "cloud service provider" in str(expired[0].detail["missing"])
    assert not _events(estate, "signoff.refused")  # the wake-up is not a refused signature
    assert estate.ledger.signatures_for(estate.system_id) == []


def test_the_wake_up_answer_before_the_deadline_is_refused_like_an_unknown_approver(
    pooled_deployment: UUID, estate: Estate
) -> None:
    run = start_run(str(pooled_deployment), estate.parameters(deadline=datetime.now(UTC) + timedelta(hours=1)))
    wait_for_form(run, 1, timeout_s=60)

    resume_flow_run(run, run_input=wakeup_input())

    wait_for_form(run, 2, timeout_s=60)
    refused = _events(estate, "signoff.refused")
    assert [e.detail["claimed_approver_id"] for e in refused] == [WAKEUP_APPROVER]
    assert not _events(estate, "signoff.expired")
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run, state=Cancelled(message="test over"), force=True)
