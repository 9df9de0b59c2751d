"""One-click rollback through its Prefect deployment, run by a cutover worker (flows/deployments.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import get_client

from cutover.ledger import Ledger, LifecycleState, RunKind
from cutover.lifecycle import current_state
from cutover.settings import Settings
from demo.estate import Estate
from demo.specs import secret_env
from flows.deployments import (
    ensure_rollback_deployment,
    find_rollback_deployment,
    remove_rollback_deployment,
)
from flows.rollback import REFUSED
from tests.fixtures.prefect_server import PrefectServer, kill_group, start_cutover_worker, wait_for_final_run
from tests.rollback._retained import cut_over_for_real, estate_spec, pay_through_gateway, payment_ids, whoami
from tests.specbuilder import write_spec


@pytest.fixture(params=["postgresql", "sqlite"])
def server(request: pytest.FixtureRequest) -> PrefectServer:
    """The one-click path on both stores a Prefect server keeps: PostgreSQL (production, and the
    tests' default) and SQLite (the store `make demo` embeds)."""
    name = "prefect_server" if request.param == "postgresql" else "prefect_server_sqlite"
    server: PrefectServer = request.getfixturevalue(name)
    return server


@pytest.fixture
def worker_env(tmp_path: Path, estate: Estate, server: PrefectServer, rb_ledger: Ledger) -> dict[str, str]:
    """What a worker needs: the server, the ledger, the specs directory, the demo secrets."""
    return {
        **server.client_env(),
        **secret_env(estate),
        "CUTOVER_DATABASE_URL": rb_ledger.safe_url,
        "CUTOVER_SPECS_DIR": str(tmp_path / "specs"),
        "CUTOVER_HOME": str(tmp_path / "home"),
    }


@pytest.fixture
def worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """A cutover worker on a pool of this test's own; yields the pool name."""
    pool = f"cutover-test-{uuid.uuid4().hex[:6]}"
    process = start_cutover_worker(pool, worker_env, tmp_path / "worker.log")
    try:
        yield pool
    finally:
        kill_group(process)


@pytest.mark.slow
def test_one_click_on_the_deployment_rolls_back_and_a_double_click_is_refused(
    clean_estate: Estate,
    rb_ledger: Ledger,
    settings: Settings,
    worker: str,
    worker_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in secret_env(clean_estate).items():
        monkeypatch.setenv(name, value)
    spec = estate_spec(clean_estate)
    write_spec(spec, Path(worker_env["CUTOVER_SPECS_DIR"]))
    retained = cut_over_for_real(clean_estate, rb_ledger, spec, settings)
    written = pay_through_gateway(clean_estate, 3)

    deployment_id = ensure_rollback_deployment(retained.system_id, work_pool=worker)
    assert find_rollback_deployment(retained.system_id) == deployment_id
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(deployment_id)
        assert deployment.parameters["system_id"] == retained.system_id
        assert deployment.global_concurrency_limit is not None and deployment.global_concurrency_limit.limit == 1
        clicks = [client.create_flow_run_from_deployment(deployment_id).id for _ in range(2)]

    runs = [wait_for_final_run(flow_run_id) for flow_run_id in clicks]

    names = sorted(run.state.name for run in runs if run.state is not None)
    assert names == ["Completed", REFUSED], [(r.state.name, r.state.message) for r in runs if r.state]
    assert whoami(clean_estate) == "legacy" and set(written) <= payment_ids(clean_estate, "legacy")
    assert current_state(rb_ledger, retained.system_id) is LifecycleState.ROLLED_BACK
    assert len([r for r in rb_ledger.list_runs(retained.system_id) if r.kind is RunKind.ROLLBACK]) == 1
    assert remove_rollback_deployment(retained.system_id)
    assert find_rollback_deployment(retained.system_id) is None
