"""The whole cutover also runs on Prefect's own process worker (the fallback when the cutover worker
refuses an untested Prefect version): real sshd hosts, a real Prefect server, the cutover deployment."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect import get_client
from pydantic import SecretStr

from cutover.ledger import Ledger, LifecycleState
from cutover.lifecycle import current_state
from cutover.settings import Settings
from demo.estate import Estate
from demo.specs import demo_spec, secret_env
from flows.deployments import ensure_deployment, ensure_work_pool
from tests._polling import wait_until
from tests.fixtures.prefect_server import PrefectServer, kill_group, start_cutover_worker, wait_for_worker
from tests.flows._signed import signed_for_real
from tests.rollback._retained import unique_system, whoami
from tests.specbuilder import write_spec

pytestmark = pytest.mark.timeout(300)


def test_a_signed_system_is_cut_over_by_the_plain_process_worker(
    clean_estate: Estate,
    rb_ledger: Ledger,
    prefect_server: PrefectServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    totp_key: str,
) -> None:
    from cutover.spec import Spec

    for name, value in secret_env(clean_estate).items():
        monkeypatch.setenv(name, value)
    clean_estate.reset(reseed=True)
    spec = Spec.model_validate(demo_spec(clean_estate, system_id=unique_system("pw")))
    env = {
        **prefect_server.client_env(),
        **secret_env(clean_estate),
        "CUTOVER_DATABASE_URL": rb_ledger.safe_url,
        "CUTOVER_SPECS_DIR": str(tmp_path / "specs"),
        "CUTOVER_HOME": str(tmp_path / "home"),
    }
    write_spec(spec, Path(env["CUTOVER_SPECS_DIR"]))
    signed_for_real(rb_ledger, spec, Settings(home=tmp_path / "home", totp_key=SecretStr(totp_key)))
    pool = f"cutover-plain-{uuid.uuid4().hex[:6]}"
    ensure_work_pool(pool)
    worker: Any = start_cutover_worker(pool, env, tmp_path / "worker.log", worker_type="process")
    try:
        wait_for_worker(pool, worker, tmp_path / "worker.log")
        deployment_id = ensure_deployment("cutover", work_pool=pool)
        with get_client(sync_client=True) as client:
            client.create_flow_run_from_deployment(deployment_id, parameters={"system_id": spec.system.id})
        wait_until(
            lambda: current_state(rb_ledger, spec.system.id),
            ready=lambda state: state in {LifecycleState.RETAINED, LifecycleState.COMPENSATED},
            what=f"{spec.system.id} cut over by the process worker",
            timeout_s=240,
            interval_s=1,
        )
    finally:
        kill_group(worker)
    assert current_state(rb_ledger, spec.system.id) is LifecycleState.RETAINED
    assert whoami(clean_estate) == "cloud"
