"""The watch is never left without a watcher (flows/watch_guard.py): a worker that finds a retained
system unprobed marks the dead watch runs Crashed and starts one, once, on a real Prefect server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Running

from cutover.ledger import HealthProbe, Ledger
from cutover.spec import Spec
from flows.deployments import ensure_watch_deployment, ensure_work_pool
from flows.watch_guard import keep_watching, next_check_in, silence, stale_after_s
from tests.fixtures.prefect_server import PrefectServer
from tests.flows.test_watch_handover import ProbedEndpoint, retained_system

INTERVAL_S = 10.0


@pytest.fixture
def endpoint() -> Iterator[ProbedEndpoint]:
    with ProbedEndpoint() as serving:
        yield serving


@pytest.fixture
def watched(ledger: Ledger, endpoint: ProbedEndpoint) -> dict[str, Spec]:
    """One retained system, probed just now."""
    spec = retained_system(ledger, endpoint, interval_s=INTERVAL_S, failures_to_rollback=3)
    ledger.record_health([HealthProbe(spec.system.id, "health", True, 1.0)])
    return {spec.system.id: spec}


@pytest.fixture
def watch_deployment(fresh_prefect_server: PrefectServer) -> tuple[str, UUID]:
    """The watch deployment (one per server) on a pool of this test, without runs (paused: its
    schedule starts none by itself)."""
    pool = f"guard-{uuid.uuid4().hex[:6]}"
    ensure_work_pool(pool)
    deployment_id = ensure_watch_deployment(work_pool=pool, paused=True)
    with get_client(sync_client=True) as client:
        for run in watch_runs(deployment_id):
            client.delete_flow_run(run.id)
    return pool, deployment_id


def watch_runs(deployment_id: UUID) -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))


def a_watch_run_left_running(deployment_id: UUID) -> UUID:
    """A watch run whose worker died: Running in Prefect, its process gone."""
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(deployment_id)
        client.set_flow_run_state(run.id, Running(), force=True)
    return run.id


def test_a_system_probed_within_its_interval_is_watched_and_nothing_is_done(
    ledger: Ledger, watched: dict[str, Spec], watch_deployment: tuple[str, UUID]
) -> None:
    pool, deployment_id = watch_deployment

    assert keep_watching(ledger, watched, work_pool=pool) is None
    assert watch_runs(deployment_id) == []


def test_a_watch_run_left_running_by_a_dead_worker_is_crashed_and_one_watch_run_replaces_it(
    ledger: Ledger, watched: dict[str, Spec], watch_deployment: tuple[str, UUID]
) -> None:
    pool, deployment_id = watch_deployment
    dead = a_watch_run_left_running(deployment_id)
    later = ledger.now() + timedelta(minutes=5)  # unprobed for 5 minutes; the dead run started as long ago

    said = keep_watching(ledger, watched, work_pool=pool, now=later)
    again = keep_watching(ledger, watched, work_pool=pool, now=later)  # a second worker, or the next check

    runs = {run.id: run for run in watch_runs(deployment_id)}
    assert said is not None and " started" in said and str(dead) in said, said
    assert runs[dead].state_type is StateType.CRASHED
    [replacement] = [run for run_id, run in runs.items() if run_id != dead]
    assert replacement.state_type is StateType.SCHEDULED
    assert again is not None and f"watch run {replacement.id} is on its way" in again, again


def test_another_pools_watch_is_left_to_that_pools_workers(
    ledger: Ledger, watched: dict[str, Spec], watch_deployment: tuple[str, UUID]
) -> None:
    _, deployment_id = watch_deployment
    later = ledger.now() + timedelta(minutes=5)

    assert keep_watching(ledger, watched, work_pool="another-pool", now=later) is None
    assert watch_runs(deployment_id) == []


def test_the_worker_looks_again_when_the_first_system_would_go_stale(ledger: Ledger, watched: dict[str, Spec]) -> None:
    now: datetime = ledger.now()

    quiet = silence(ledger, watched, now + timedelta(seconds=4))

    assert [round(u.silent_s) for u in quiet] == [4]
    assert next_check_in(quiet) == pytest.approx(stale_after_s(INTERVAL_S) - quiet[0].silent_s)
    assert next_check_in([]) == 30.0
