"""Dead runs resumed by themselves: kill -9 of a worker mid-run, real sshd hosts, a real Prefect server.

These tests wait for Prefect's zombie detection (heartbeats every 30 s, a run silent for
CUTOVER_RECOVERY_SILENCE_S is marked Crashed), so each lasts one to three minutes: they carry the
``faults`` marker and run in `make test-faults` (CI runs it after `make test`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect import get_client
from pydantic import SecretStr

from cutover import audit
from cutover.ledger import AuditEvent, Ledger, LifecycleState, RunKind, RunState
from cutover.lifecycle import current_state
from cutover.settings import Settings
from demo.estate import Estate
from demo.specs import demo_spec, secret_env
from flows.deployments import ensure_rollback_deployment, ensure_work_pool
from flows.rollback import REFUSED
from tests._polling import wait_until
from tests.fixtures.prefect_server import (
    PrefectServer,
    kill_group,
    start_cutover_worker,
    wait_for_final_run,
    wait_for_worker,
)
from tests.flows._signed import signed_for_real
from tests.rollback._retained import cut_over_for_real, pay_through_gateway, payment_ids, unique_system, whoami
from tests.specbuilder import write_spec

pytestmark = [pytest.mark.faults, pytest.mark.timeout(420)]

RECOVERED_WITHIN_S = 180.0
SETTLE_S = 75  # long enough for the run's second heartbeat (HEARTBEAT_S = 30) before the kill


def _settle_once(tag: str) -> str:
    """The settle step's script: the first call waits SETTLE_S (the kill lands there), a re-run returns at once."""
    marker = f"/tmp/cutover-settled-{tag}"
    return f"count-calls {tag}-settle; [ -e {marker} ] && exit 0; touch {marker}; sleep {SETTLE_S}"


def wait_for_heartbeats(server: PrefectServer, flow_run_id: Any, count: int = 2) -> None:
    """Wait until the server has seen ``count`` heartbeats of the run.

    The first heartbeat comes as the run starts, possibly before the server has loaded the
    recovery automation the worker just made (it loads new automations in the background); the
    zombie detection starts from a heartbeat it saw, so the kill must come after a later one.
    """

    def seen() -> int:
        body = {
            "filter": {
                "event": {"name": ["prefect.flow-run.heartbeat"]},
                "resource": {"id": [f"prefect.flow-run.{flow_run_id}"]},
                "occurred": {"since": "2000-01-01T00:00:00Z"},
            },
            "limit": 50,
        }
        with server.http() as http:
            response = http.post("/events/filter", json=body)
            response.raise_for_status()
            return len(response.json()["events"])

    wait_until(seen, ready=lambda n: n >= count, what=f"{count} heartbeats of flow run {flow_run_id}", timeout_s=90)


@pytest.fixture
def worker_env(tmp_path: Path, estate: Estate, prefect_server: PrefectServer, rb_ledger: Ledger) -> dict[str, str]:
    return {
        **prefect_server.client_env(),
        **secret_env(estate),
        "CUTOVER_DATABASE_URL": rb_ledger.safe_url,
        "CUTOVER_SPECS_DIR": str(tmp_path / "specs"),
        "CUTOVER_HOME": str(tmp_path / "home"),
    }


@pytest.fixture
def pool() -> str:
    return f"cutover-recovery-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def workers(pool: str, worker_env: dict[str, str], tmp_path: Path) -> Iterator[list[Any]]:
    """The cutover workers a test starts on its pool; all of them are stopped after it."""
    started: list[Any] = []
    yield started
    for process in started:
        kill_group(process)


def _start_worker(pool: str, env: dict[str, str], log: Path, workers: list[Any]) -> None:
    ensure_work_pool(pool)
    process = start_cutover_worker(pool, env, log)
    workers.append(process)
    wait_for_worker(pool, process, log)


def _slow_rollback_spec(estate: Estate, tag: str) -> Any:
    """The demo spec whose rollback settles after carrying the data back (the kill lands there)."""
    from cutover.spec import Spec

    data = demo_spec(estate, system_id=unique_system("rec"))
    steps = data["rollback"]["steps"]
    settle = {
        "kind": "ssh",
        "id": "settle",
        "name": "settle",
        "host": "legacy",
        "run": ["sh", "-c", _settle_once(tag)],
        "changes_state": False,
    }
    after = next(i for i, step in enumerate(steps) if step["id"] == "reverse-sync") + 1
    steps[after - 1]["run"] = ["sh", "-c", f"count-calls {tag}-reverse && pull-from cloud"]
    data["rollback"]["steps"] = [*steps[:after], settle, *steps[after:]]
    return Spec.model_validate(data)


def _events(ledger: Ledger, action: str, system_id: str) -> list[AuditEvent]:
    return [e for e in audit.events(ledger, object=f"system:{system_id}") if e.action == action]


def test_a_worker_killed_mid_rollback_is_continued_by_itself_and_a_click_meanwhile_is_not_refused(
    clean_estate: Estate,
    rb_ledger: Ledger,
    settings: Settings,
    worker_env: dict[str, str],
    pool: str,
    workers: list[Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    prefect_server: PrefectServer,
) -> None:
    for name, value in secret_env(clean_estate).items():
        monkeypatch.setenv(name, value)
    tag = uuid.uuid4().hex[:6]
    spec = _slow_rollback_spec(clean_estate, tag)
    write_spec(spec, Path(worker_env["CUTOVER_SPECS_DIR"]))
    retained = cut_over_for_real(clean_estate, rb_ledger, spec, settings)
    written = set(pay_through_gateway(clean_estate, 3))
    _start_worker(pool, worker_env, tmp_path / "worker-1.log", workers)
    deployment_id = ensure_rollback_deployment(retained.system_id, work_pool=pool)
    with get_client(sync_client=True) as client:
        first = client.create_flow_run_from_deployment(deployment_id).id

    wait_until(
        lambda: clean_estate.calls("legacy", f"{tag}-settle") >= 1,
        what="the rollback to carry the data back and start settling",
        timeout_s=90,
    )
    wait_for_heartbeats(prefect_server, first)
    kill_group(workers.pop(), hard=True)
    killed_at = time.monotonic()
    with get_client(sync_client=True) as client:
        click = client.create_flow_run_from_deployment(deployment_id).id  # one click while the run is a zombie
    clicked_at = time.monotonic()
    wait_until(lambda: time.monotonic() - killed_at >= 10, what="10 s after the kill", timeout_s=15)
    _start_worker(pool, worker_env, tmp_path / "worker-2.log", workers)

    wait_until(
        lambda: current_state(rb_ledger, retained.system_id) is LifecycleState.ROLLED_BACK,
        what=f"{retained.system_id} rolled back with no person acting",
        timeout_s=RECOVERED_WITHIN_S - (time.monotonic() - killed_at),
        interval_s=1,
    )
    recovered_s = time.monotonic() - killed_at
    clicked = wait_for_final_run(click, timeout_s=60)
    click_s = time.monotonic() - clicked_at
    with get_client(sync_client=True) as client:
        killed = client.read_flow_run(first)
    print(f"kill -> rolled back in {recovered_s:.1f} s")  # the closing note's measurements
    print(f"click made 0 s after the kill -> {clicked.state.name if clicked.state else '?'} in {click_s:.1f} s")

    assert killed.state is not None and killed.state.name == "Crashed"
    assert clicked.state is not None and clicked.state.name != REFUSED, clicked.state.message
    assert whoami(clean_estate) == "legacy" and written <= payment_ids(clean_estate, "legacy")
    assert clean_estate.calls("legacy", f"{tag}-reverse") == 1  # the data step is not repeated
    rollbacks = [r for r in rb_ledger.list_runs(retained.system_id) if r.kind is RunKind.ROLLBACK]
    assert [r.state for r in rollbacks] == [RunState.SUCCEEDED]
    assert _events(rb_ledger, "rollback.resumed", retained.system_id)


def _settling_cutover_spec(estate: Estate, tag: str) -> Any:
    """The demo spec whose cutover counts its state-changing steps and settles after the freeze."""
    from cutover.spec import Spec

    data = demo_spec(estate, system_id=unique_system("rec"))
    steps = {step["id"]: step for step in data["cutover"]["steps"]}
    steps["freeze"]["run"] = ["sh", "-c", f"count-calls {tag}-freeze && appctl freeze"]
    steps["final-sync"]["run"] = ["sh", "-c", f"count-calls {tag}-sync && pull-from legacy"]
    steps["switch-traffic"]["run"] = ["sh", "-c", f"count-calls {tag}-switch && route cloud"]
    settle = {
        "kind": "ssh",
        "id": "settle",
        "name": "settle",
        "host": "legacy",
        "run": ["sh", "-c", _settle_once(tag)],
        "changes_state": False,
    }
    data["cutover"]["steps"].insert(1, settle)
    return Spec.model_validate(data)


def test_a_worker_killed_after_the_freeze_is_replaced_and_the_cutover_finishes_with_no_step_run_twice(
    clean_estate: Estate,
    rb_ledger: Ledger,
    worker_env: dict[str, str],
    pool: str,
    workers: list[Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    prefect_server: PrefectServer,
    totp_key: str,
) -> None:
    from flows.deployments import ensure_deployment

    for name, value in secret_env(clean_estate).items():
        monkeypatch.setenv(name, value)
    clean_estate.reset(reseed=True)
    tag = uuid.uuid4().hex[:6]
    spec = _settling_cutover_spec(clean_estate, tag)
    write_spec(spec, Path(worker_env["CUTOVER_SPECS_DIR"]))
    signed_for_real(rb_ledger, spec, Settings(home=tmp_path / "home", totp_key=SecretStr(totp_key)))
    _start_worker(pool, worker_env, tmp_path / "worker-1.log", workers)
    deployment_id = ensure_deployment("cutover", work_pool=pool)
    with get_client(sync_client=True) as client:
        first = client.create_flow_run_from_deployment(deployment_id, parameters={"system_id": spec.system.id}).id

    wait_until(
        lambda: clean_estate.calls("legacy", f"{tag}-settle") >= 1,
        what="the freeze to succeed and the cutover to settle",
        timeout_s=120,
    )
    wait_for_heartbeats(prefect_server, first)
    kill_group(workers.pop(), hard=True)
    killed_at = time.monotonic()
    wait_until(lambda: time.monotonic() - killed_at >= 10, what="10 s after the kill", timeout_s=15)
    _start_worker(pool, worker_env, tmp_path / "worker-2.log", workers)

    wait_until(
        lambda: current_state(rb_ledger, spec.system.id) in {LifecycleState.RETAINED, LifecycleState.COMPENSATED},
        what=f"{spec.system.id} retained (or compensated) with no person acting",
        timeout_s=RECOVERED_WITHIN_S - (time.monotonic() - killed_at),
        interval_s=1,
    )
    recovered_s = time.monotonic() - killed_at
    with get_client(sync_client=True) as client:
        killed = client.read_flow_run(first)
    print(f"kill -> {current_state(rb_ledger, spec.system.id).value} in {recovered_s:.1f} s")

    assert killed.state is not None and killed.state.name == "Crashed"
    assert current_state(rb_ledger, spec.system.id) is LifecycleState.RETAINED
    counts = [clean_estate.calls("legacy", f"{tag}-freeze"), clean_estate.calls("cloud", f"{tag}-sync")]
    assert [*counts, clean_estate.calls("gateway", f"{tag}-switch")] == [1, 1, 1]
    cutovers = [r for r in rb_ledger.list_runs(spec.system.id) if r.kind is RunKind.CUTOVER]
    assert [r.state for r in cutovers] == [RunState.SUCCEEDED, RunState.SUCCEEDED]  # the report's, then this one
    assert _events(rb_ledger, "cutover.resumed", spec.system.id)
    assert whoami(clean_estate) == "cloud"
