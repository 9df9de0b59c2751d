"""The cutover worker: flow runs start in warm, pre-imported processes (worker/__init__.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import anyio
import pytest
from prefect import get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments.runner import RunnerDeployment
from prefect.states import Cancelling
from prefect.types.entrypoint import EntrypointType

from flows.deployments import ensure_work_pool
from tests._polling import wait_until
from tests.fixtures.prefect_server import (
    REPO_ROOT,
    PrefectServer,
    kill_group,
    start_cutover_worker,
    wait_for_final_run,
    wait_for_worker,
)
from tests.fixtures.probe_flow import probe
from tests.worker.rollback_probe import rollback_probe
from worker import WORKER_TYPE
from worker._warm import WarmProcess, WarmProcesses, zygote_command
from worker._zygote import PRELOAD

OWN_PACKAGES = {"cutover", "tasks", "flows", "rollback", "demo", "loadtests", "tests"}
FLOW_MODULES = ["flows.cutover", "flows.watch", "flows.decommission", "flows.rollback"]


def test_the_preload_covers_every_third_party_library_the_flows_import() -> None:
    script = (
        "import sys, importlib\n"
        f"for name in {list(PRELOAD)!r}: importlib.import_module(name)\n"
        "before = set(sys.modules)\n"
        f"for name in {FLOW_MODULES!r}: importlib.import_module(name)\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    third_party = {
        name
        for name in loaded.stdout.split()
        if (top := name.split(".")[0]) not in OWN_PACKAGES and top not in sys.stdlib_module_names and top[0] != "_"
    }
    assert third_party == set(), f"add these to worker._zygote.PRELOAD: {sorted(third_party)}"


def test_a_warm_process_told_nothing_exits_cleanly() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker._zygote"], input="", capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr


def test_taking_a_warm_process_starts_its_replacement_and_close_ends_them() -> None:
    async def scenario() -> None:
        warm = WarmProcesses(size=1)
        await warm.fill()
        first_pid = warm.pids()[0]
        taken = await warm.take()
        await warm.filled()
        assert taken.process.pid == first_pid and warm.pids() != [first_pid] and len(warm.pids()) == 1
        await taken.retire()
        assert taken.process.returncode is not None
        replacement = warm.pids()[0]
        await warm.close()
        assert warm.pids() == []
        with pytest.raises(ProcessLookupError):
            os.kill(replacement, 0)

    anyio.run(scenario)


def test_a_rollback_takes_the_reserved_warm_process_which_other_runs_never_take() -> None:
    async def scenario() -> None:
        warm = WarmProcesses(size=1, reserved=1)
        await warm.fill()
        reserved = warm.reserved_pids()
        busy = [await warm.take("watch-retention"), await warm.take("cutover")]
        assert reserved and not {w.process.pid for w in busy} & set(reserved)
        rollback = await warm.take("rollback")
        await warm.filled()
        assert [rollback.process.pid] == reserved
        assert len(warm.reserved_pids()) == 1 and warm.reserved_pids() != reserved  # refilled at once
        for taken in (*busy, rollback):
            await taken.retire()
        await warm.close()

    anyio.run(scenario)


def test_a_dead_or_old_warm_process_is_replaced_on_refresh() -> None:
    async def scenario() -> None:
        warm = WarmProcesses(size=1, max_age_s=3600)
        await warm.fill()
        dead = warm.pids()[0]
        os.kill(dead, 9)
        await anyio.sleep(0.2)
        await warm.refresh()
        assert warm.pids() and warm.pids() != [dead]
        warm.max_age_s = 0
        old = warm.pids()[0]
        await warm.refresh()
        assert warm.pids() and warm.pids() != [old]
        await warm.close()

    anyio.run(scenario)


def test_a_run_handed_to_a_warm_process_that_died_goes_to_a_new_one(tmp_path: Path) -> None:
    async def scenario() -> None:
        warm = WarmProcesses(size=1)
        await warm.fill()
        os.kill(warm.pids()[0], 9)
        await anyio.sleep(0.2)
        env = {**os.environ, "PREFECT__FLOW_RUN_ID": "not-a-uuid"}
        given = await warm.hand_over(tmp_path, {k: v for k, v in env.items()})
        await given.process.wait()
        assert given.process.returncode == 1  # it ran the engine, which refused the bad run id
        await warm.close()

    anyio.run(scenario)


def test_a_quiet_run_writes_nothing_to_the_workers_output(tmp_path: Path) -> None:
    async def scenario() -> None:
        env = {**os.environ, "PREFECT__FLOW_RUN_ID": "not-a-uuid"}
        for quiet in (False, True):
            with (tmp_path / f"quiet-{quiet}.log").open("wb") as log:
                process = await anyio.open_process(zygote_command(), stdin=-1, stdout=log, stderr=log)
                await WarmProcess(process).give(tmp_path, env, quiet=quiet)
                await process.wait()

    anyio.run(scenario)
    assert "Invalid flow run id" in (tmp_path / "quiet-False.log").read_text(errors="replace")
    assert (tmp_path / "quiet-True.log").read_text(errors="replace") == ""


@pytest.fixture
def probe_module(tmp_path: Path) -> Path:
    """A module the probe flow imports; the test rewrites it between runs."""
    path = tmp_path / "probe_version.py"
    path.write_text('VERSION = "v1"\n', encoding="utf-8")
    return path


@pytest.fixture
def warm_worker(prefect_server: PrefectServer, probe_module: Path, tmp_path: Path) -> Iterator[str]:
    """A cutover worker on a pool of this test's own, online; yields the pool name."""
    pool = f"warm-test-{uuid.uuid4().hex[:6]}"
    ensure_work_pool(pool)
    env = {
        **prefect_server.client_env(),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(probe_module.parent)]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    process = start_cutover_worker(pool, env, tmp_path / "worker.log")
    try:
        wait_for_worker(pool, process, tmp_path / "worker.log")
        yield pool
    finally:
        kill_group(process)


def _run_probe(deployment_id: UUID, out: Path) -> tuple[FlowRun, dict[str, object]]:
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(deployment_id, parameters={"out": str(out)})
    run = wait_for_final_run(run.id)
    assert run.state is not None and run.state.is_completed(), run.state
    return run, json.loads(out.read_text(encoding="utf-8"))


def test_the_worker_runs_flows_in_processes_started_before_the_run_with_fresh_project_code(
    warm_worker: str, probe_module: Path, tmp_path: Path
) -> None:
    deployment = probe.to_deployment(name="warm-probe", entrypoint_type=EntrypointType.MODULE_PATH)
    assert isinstance(deployment, RunnerDeployment)
    deployment_id = deployment.apply(work_pool_name=warm_worker)

    first_run, first = _run_probe(deployment_id, tmp_path / "first.json")
    probe_module.write_text('VERSION = "second"\n', encoding="utf-8")
    second_run, second = _run_probe(deployment_id, tmp_path / "second.json")

    assert first_run.created is not None and second_run.created is not None
    assert float(str(first["started_at"])) < first_run.created.timestamp()
    assert float(str(second["started_at"])) < second_run.created.timestamp()
    assert first["pid"] != second["pid"]
    assert (first["version"], second["version"]) == ("v1", "second")


def test_a_run_in_a_warm_process_is_cancelled_from_the_api_and_its_process_ends(
    warm_worker: str, tmp_path: Path
) -> None:
    deployment = probe.to_deployment(name="warm-probe-cancel", entrypoint_type=EntrypointType.MODULE_PATH)
    assert isinstance(deployment, RunnerDeployment)
    deployment_id = deployment.apply(work_pool_name=warm_worker)
    out = tmp_path / "long.json"
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(deployment_id, parameters={"out": str(out), "sleep_s": 120})
        wait_until(out.exists, what="the long run to start", timeout_s=120)
        client.set_flow_run_state(run.id, state=Cancelling(message="cancelled by the test"))
    final = wait_for_final_run(run.id)
    assert final.state is not None and final.state.type == StateType.CANCELLED, final.state
    pid = json.loads(out.read_text(encoding="utf-8"))["pid"]
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), what=f"process {pid} to end", timeout_s=120)


def test_a_rollback_run_starts_in_a_warm_process_while_watch_and_cutover_runs_hold_the_others(
    warm_worker: str, tmp_path: Path
) -> None:
    busy_deployment = probe.to_deployment(name="warm-busy", entrypoint_type=EntrypointType.MODULE_PATH)
    rollback_deployment = rollback_probe.to_deployment(name="warm-rollback", entrypoint_type=EntrypointType.MODULE_PATH)
    assert isinstance(busy_deployment, RunnerDeployment) and isinstance(rollback_deployment, RunnerDeployment)
    busy_id, rollback_id = (
        busy_deployment.apply(work_pool_name=warm_worker),
        rollback_deployment.apply(work_pool_name=warm_worker),
    )
    with get_client(sync_client=True) as client:
        busy = [
            client.create_flow_run_from_deployment(
                busy_id, parameters={"out": str(tmp_path / f"busy-{n}.json"), "sleep_s": 120}
            )
            for n in range(2)
        ]
        for n in range(2):
            wait_until((tmp_path / f"busy-{n}.json").exists, what=f"busy run {n} to start", timeout_s=120)
        try:
            run, seen = _run_probe(rollback_id, tmp_path / "rollback.json")
        finally:
            for held in busy:
                client.set_flow_run_state(held.id, state=Cancelling(message="end of the test"))
    first_busy = min(held.created.timestamp() for held in busy if held.created is not None)
    # The shared warm processes the busy runs left were started after the first of them was picked
    # up; the rollback's process was started with the worker, before any of them existed.
    assert float(str(seen["started_at"])) < first_busy, (seen, first_busy)
    assert run.state is not None and run.state.is_completed()


def test_the_work_pool_is_created_with_the_cutover_worker_type(prefect_server: PrefectServer) -> None:
    pool = f"type-test-{uuid.uuid4().hex[:6]}"
    ensure_work_pool(pool)
    with get_client(sync_client=True) as client:
        created = client.read_work_pool(pool)
    assert created.type == WORKER_TYPE
    assert "command" in created.base_job_template["variables"]["properties"]
