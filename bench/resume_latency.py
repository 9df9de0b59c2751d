"""Benchmark: the joint sign-off's resume — from the second valid signature to the flow continuing.

Target ≤ 5 s with the README's polling settings (``PREFECT_WORKER_QUERY_SECONDS=1``).

Starts a Prefect server (SQLite), the ``cutover-process`` pool with one cutover worker
(``prefect worker start --type cutover``), and deploys ``flows._signoff_demo`` — the sign-off stage
of the cutover flow on its own (:func:`tasks.signoff.collect_signoff`: suspend, SM2 signature check, digests,
ledger records). Each round registers a system with a trial-run report and two enrolled approvers,
starts a run, signs as the department, waits for the second form, waits ``GAP`` seconds (a person
opening the form and pasting a signature; default 5 s), then signs as the cloud provider. Two clocks start
at that resume call: until the run is Running again (flow code continuing), and until it has
verified and recorded the second signature and Completed.

Usage: .venv/bin/python bench/resume_latency.py [ROUNDS] [GAP]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect import get_client
from prefect.client.schemas.objects import StateType
from prefect.deployments.runner import RunnerDeployment
from prefect.flow_runs import resume_flow_run
from prefect.types.entrypoint import EntrypointType

from cutover.ledger import Ledger
from flows._signoff_demo import signoff_demo
from flows.deployments import DEFAULT_POOL, ensure_work_pool
from tests._polling import wait_until
from tests.fixtures.prefect_server import kill_group, running_prefect_server, start_cutover_worker, using_server
from tests.fixtures.totp import new_totp_key
from tests.tasks._signoff_estate import Estate, make_estate, start_run, wait_for_form


def deploy() -> UUID:
    ensure_work_pool(DEFAULT_POOL)
    deployment = signoff_demo.to_deployment(name="resume-bench", entrypoint_type=EntrypointType.MODULE_PATH)
    assert isinstance(deployment, RunnerDeployment)
    return deployment.apply(work_pool_name=DEFAULT_POOL)


def running_again(flow_run_id: UUID, since_s: float, timeout_s: float = 60.0) -> float:
    """Seconds from ``since_s`` until the run has left Paused and runs (or ended)."""
    with get_client(sync_client=True) as client:
        wait_until(
            lambda: client.read_flow_run(flow_run_id).state,
            ready=lambda state: state.type == StateType.RUNNING or state.is_final(),
            what=f"run {flow_run_id} to run again",
            timeout_s=timeout_s,
            interval_s=0.05,
        )
        return time.perf_counter() - since_s


def completed(flow_run_id: UUID, since_s: float, timeout_s: float = 60.0) -> float:
    with get_client(sync_client=True) as client:
        state = wait_until(
            lambda: client.read_flow_run(flow_run_id).state,
            ready=lambda state: state.is_final(),
            what=f"run {flow_run_id} to finish",
            timeout_s=timeout_s,
            interval_s=0.05,
        )
        elapsed = time.perf_counter() - since_s
    assert state.type == StateType.COMPLETED, f"{state.name}: {state.message}"
    return elapsed


def one_round(deployment_id: UUID, estate: Estate, gap_s: float) -> tuple[float, float]:
    run = start_run(str(deployment_id), estate.parameters())
    wait_for_form(run, 1, timeout_s=60)
    resume_flow_run(run, run_input=estate.signature_input(estate.department, run=run))
    wait_for_form(run, 2, timeout_s=60)
    time.sleep(gap_s)
    answer = estate.signature_input(estate.cloud, run=run)  # signed on the approver's side, before the clock starts
    started = time.perf_counter()
    resume_flow_run(run, run_input=answer)
    to_running = running_again(run, started)
    to_done = completed(run, started)
    assert len(estate.ledger.signatures_for(estate.system_id)) == 2
    return to_running, to_done


def main(rounds: int = 5, gap_s: float = 5.0) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    totp_key = new_totp_key()
    url = f"sqlite:///{work}/ledger.db"
    Ledger(url, digest="sm3").migrate()
    with running_prefect_server(work / "prefect") as server, using_server(server):
        deployment_id = deploy()
        env = {**server.client_env(), "CUTOVER_TOTP_KEY": totp_key, "CUTOVER_HOME": str(work / "home")}
        worker = start_cutover_worker(DEFAULT_POOL, env, work / "worker.log")
        try:
            print("  warm-up round (worker starting) ...", flush=True)
            one_round(deployment_id, make_estate(_fresh(work, "warm-up"), url, totp_key), gap_s)
            running, done = [], []
            for n in range(rounds):
                to_running, to_done = one_round(deployment_id, make_estate(_fresh(work, f"r{n}"), url, totp_key), gap_s)
                running.append(to_running)
                done.append(to_done)
                print(
                    f"  round {n + 1}: second signature → running {to_running:.2f} s, verified+recorded+completed {to_done:.2f} s"
                )
            print(
                f"resume after the second signature: median {statistics.median(running):.2f} s to running, "
                f"{statistics.median(done):.2f} s to verified and completed, over {rounds} (target ≤ 5 s)"
            )
        finally:
            kill_group(worker)


def _fresh(work: Path, name: str) -> Path:
    path = work / name
    path.mkdir()
    return path


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]), *(float(a) for a in sys.argv[2:3]))
