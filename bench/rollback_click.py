"""Benchmark: one-click rollback — from the click (a run of the rollback deployment created) to the
traffic answered by the original, with the rollback verified and recorded. Target ≤ 10 s.

Starts a Prefect server (SQLite, 1 s polling), a cutover worker (``--type cutover``: runs start in
a warm process) on the ``cutover-process`` pool, and a demo estate, all on loopback. A first,
untimed round lets the just-started worker finish warming up, as a long-running worker has. Each
round cuts a fresh system over (gateway → cloud), creates its rollback deployment, then "clicks":
``create_flow_run_from_deployment`` — what the UI's Quick run does. The clock stops when the gateway answers from ``legacy`` and the flow run is Completed.

Usage: .venv/bin/python bench/rollback_click.py [ROUNDS]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect import get_client

from cutover.ledger import Ledger
from cutover.settings import Settings
from demo.specs import secret_env
from flows.deployments import DEFAULT_POOL, ensure_rollback_deployment
from tests._polling import wait_until
from tests.fixtures.estate import make_estate_root, start_test_estate
from tests.fixtures.prefect_server import kill_group, running_prefect_server, start_cutover_worker, using_server
from tests.rollback._retained import cut_over_for_real, estate_spec, whoami
from tests.specbuilder import write_spec


def click(deployment_id: object, estate: object) -> float:
    with get_client(sync_client=True) as client:
        started = time.perf_counter()
        run = client.create_flow_run_from_deployment(deployment_id)  # type: ignore[arg-type]
        state = wait_until(
            lambda: client.read_flow_run(run.id).state,
            ready=lambda state: state.is_final(),
            what=f"rollback run {run.id} to finish",
            timeout_s=300,
            interval_s=0.1,
        )
    assert state.is_completed(), f"{state.name}: {state.message}"
    assert whoami(estate) == "legacy"  # type: ignore[arg-type]
    return time.perf_counter() - started


def main(rounds: int = 3) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-click-"))
    estate = start_test_estate(make_estate_root("bench-click-estate-"))
    ledger = Ledger(f"sqlite:///{work}/ledger.db", digest="sm3")
    ledger.migrate()
    settings = Settings(home=work / "home")
    os.environ.update(secret_env(estate))
    try:
        with running_prefect_server(work / "prefect") as server, using_server(server):
            env = {
                **os.environ,
                **server.client_env(),
                "CUTOVER_DATABASE_URL": ledger.safe_url,
                "CUTOVER_SPECS_DIR": str(work / "specs"),
                "CUTOVER_HOME": str(work / "home"),
            }
            ensure_rollback_deployment("warm-up", work_pool=DEFAULT_POOL, link=False)
            worker = start_cutover_worker(DEFAULT_POOL, env, work / "worker.log")
            try:
                times = []
                for n in range(rounds + 1):
                    spec = estate_spec(estate)
                    write_spec(spec, work / "specs")
                    cut_over_for_real(estate, ledger, spec, settings)
                    deployment_id = ensure_rollback_deployment(spec.system.id, work_pool=DEFAULT_POOL, link=False)
                    elapsed = click(deployment_id, estate)
                    estate.reset()
                    if n == 0:  # the worker has just started: its warm process may still be importing
                        print(f"  warm-up round (worker just started): {elapsed:.2f} s")
                        continue
                    times.append(elapsed)
                    print(f"  round {n}: click → original serving, verified, in {elapsed:.2f} s")
                print(f"one-click rollback: median {statistics.median(times):.2f} s over {rounds} (target ≤ 10 s)")
            finally:
                kill_group(worker)
    finally:
        estate.stop()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
