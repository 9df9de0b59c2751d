"""A worker restarted while a watch run holds a retained system: the new worker takes the watch over
at once (flows/watch_guard.py), without waiting for Prefect's zombie detection or the schedule.

Real parts: a Prefect server of this module's own (the watch deployment is one per server), a
PostgreSQL ledger, a cutover worker stopped by SIGTERM to its process group (as systemd stops a
unit) or ``kill -9`` of the group, and a health endpoint on loopback recording each probe. The
watch is scheduled every 10 minutes, so a probe after the restart comes from the watch run the new
worker started. These tests wait for real processes to start: they carry the ``faults`` marker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

from cutover.ledger import Ledger
from flows.deployments import ensure_watch_deployment, ensure_work_pool
from tests._polling import wait_until
from tests.fixtures.prefect_server import PrefectServer, kill_group, start_cutover_worker
from tests.flows.test_watch_handover import ProbedEndpoint, retained_system
from tests.specbuilder import write_spec

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

INTERVAL_S = 10.0
TAKE_OVER_WITHIN_S = 300.0  # a bound for a busy machine, not a speed claim (bench/watch_gap.py --real measures)


@pytest.fixture
def pg_ledger(postgres_url: str) -> Iterator[Ledger]:
    ledger = Ledger(postgres_url, digest="sm3")
    yield ledger
    ledger.dispose()


@pytest.fixture
def workers() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for process in started:
        kill_group(process, hard=True)


@pytest.mark.parametrize("how", ["SIGTERM", "kill -9"])
def test_a_restarted_worker_starts_a_watch_run_at_once_and_the_probes_go_on(
    how: str, fresh_prefect_server: PrefectServer, pg_ledger: Ledger, tmp_path: Path, workers: list[Any]
) -> None:
    pool = f"restart-{uuid.uuid4().hex[:6]}"
    with ProbedEndpoint() as endpoint:
        spec = retained_system(pg_ledger, endpoint, interval_s=INTERVAL_S, failures_to_rollback=3)
        system_id = spec.system.id
        write_spec(spec, tmp_path / "specs")
        ensure_work_pool(pool)
        deployment_id = ensure_watch_deployment(
            every=timedelta(minutes=10), handover=timedelta(minutes=1), work_pool=pool
        )
        env = {
            **fresh_prefect_server.client_env(),
            "CUTOVER_DATABASE_URL": pg_ledger.safe_url,
            "CUTOVER_SPECS_DIR": str(tmp_path / "specs"),
            "CUTOVER_HOME": str(tmp_path / "home"),
        }
        workers.append(start_cutover_worker(pool, env, tmp_path / "worker-1.log"))
        wait_until(
            lambda: len(endpoint.seen[system_id]),
            ready=lambda n: n >= 2,
            what="the watch to probe twice",
            timeout_s=TAKE_OVER_WITHIN_S,
        )

        restarted_at = datetime.now(UTC)
        kill_group(workers[0], hard=how == "kill -9")
        stopped = time.monotonic()
        workers.append(start_cutover_worker(pool, env, tmp_path / "worker-2.log"))

        wait_until(
            lambda: [t for t in endpoint.seen[system_id] if t > stopped],
            what=f"a probe of {system_id} after the worker's restart ({how})",
            timeout_s=TAKE_OVER_WITHIN_S,
        )
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
    replacements = [
        r
        for r in runs
        if r.created is not None
        and r.created >= restarted_at
        and (r.idempotency_key or "").startswith(("keep-watching:", "recover:"))  # the worker's, or the recover flow's
    ]
    assert replacements, [(r.name, r.idempotency_key, r.state_name, r.created) for r in runs]
