"""A sign-off still waiting at its deadline is woken and ends itself, recording who did not sign
(tasks/_signoff_deadline.py, flows/signoff_deadline.py), on a real server with a cutover worker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.flow_runs import resume_flow_run
from prefect.states import Cancelled

from cutover import audit
from cutover.ledger import AuditOutcome
from tasks._signoff_deadline import WAKEUP_APPROVER
from tasks.signoff import wakeup_input
from tests.fixtures.prefect_server import PrefectServer
from tests.tasks._signoff_estate import (
    Estate,
    deadline_margin,
    make_estate,
    pooled_deployment,
    sqlite_copy,
    start_run,
    wait_final,
    wait_for_form,
)

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def deployment(prefect_server: PrefectServer, totp_key: str, tmp_path: Path) -> Iterator[UUID]:
    """The signoff-demo flow deployed on a pool of its own, with a cutover worker polling it."""
    for deployment_id in pooled_deployment(prefect_server, totp_key, tmp_path):
        yield UUID(deployment_id)


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
    deployment: UUID, estate: Estate
) -> None:
    deadline = datetime.now(UTC) + deadline_margin(str(deployment), estate)
    run = start_run(str(deployment), estate.parameters(deadline=deadline))
    wait_for_form(run, 1, timeout_s=300)
    assert datetime.now(UTC) < deadline, "the form came after the deadline: the margin is too small"
    wakeups = _wakeup_runs(run)
    assert len(wakeups) == 1 and wakeups[0].expected_start_time is not None
    assert wakeups[0].expected_start_time >= deadline

    final = wait_final(run, timeout_s=(deadline - datetime.now(UTC)).total_seconds() + 120)

    assert final.state is not None and final.state.type == StateType.FAILED
    assert "sign-off deadline" in (final.state.message or ""), final.state.message
    expired = _events(estate, "signoff.expired")
    assert len(expired) == 1 and expired[0].outcome == AuditOutcome.FAILED
    assert "owning department" in str(expired[0].detail["missing"])
    assert "cloud service provider" in str(expired[0].detail["missing"])
    assert not _events(estate, "signoff.refused")  # the wake-up is not a refused signature
    assert estate.ledger.signatures_for(estate.system_id) == []


def test_the_wake_up_answer_before_the_deadline_is_refused_like_an_unknown_approver(
    deployment: UUID, estate: Estate
) -> None:
    run = start_run(str(deployment), estate.parameters(deadline=datetime.now(UTC) + timedelta(hours=1)))
    wait_for_form(run, 1, timeout_s=300)

    resume_flow_run(run, run_input=wakeup_input())

    wait_for_form(run, 2, timeout_s=300)
    refused = _events(estate, "signoff.refused")
    assert [e.detail["claimed_approver_id"] for e in refused] == [WAKEUP_APPROVER]
    assert not _events(estate, "signoff.expired")
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run, state=Cancelled(message="test over"), force=True)
