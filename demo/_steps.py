"""The steps of ``python -m demo.run up|failure|stop`` (see :mod:`demo.run`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import httpx

from demo._procs import load_state, prefect_cli, save_state, spawn, stop_group, wait_http
from demo.run import (
    APPROVERS,
    KEYS,
    LOGS,
    PG_LEDGER_DB,
    PG_PREFECT_DB,
    PG_SERVER,
    POOL,
    REPO,
    STATE_DIR,
    STATE_FILE,
    SYSTEM,
    UI,
    base_env,
    estate_root,
    production_topology,
    say,
    wipe_state,
)

_WAIT_FOR_CUTOVER_S = 600


# ------------------------------------------------------------------------------------- up
def up(args: list[str]) -> int:
    """Start everything, trigger the cutover, follow it to the retention window."""
    auto = os.environ.get("AUTO_SIGN") == "1" or "--auto-sign" in args
    started = time.monotonic()
    stop([], quiet=True)
    _require_free_port(4200)
    wipe_state()
    _fresh_databases()
    store = "PostgreSQL" if production_topology() else "SQLite"
    say(f"== 1/6 Prefect server ({store}) on 127.0.0.1:4200 and the demo estate on loopback")
    server = spawn(
        "server",
        [*prefect_cli(), "server", "start", "--host", "127.0.0.1", "--port", "4200"],
        env=os.environ,
        logs=LOGS,
        cwd=STATE_DIR,
    )
    save_state(STATE_FILE, {"server": server, "estate_root": str(estate_root())})
    estate = _start_estate()
    wait_http(f"{UI}/api/health", timeout_s=120, what="the Prefect server", log=LOGS / "server.log")
    _write_env_file(estate)
    say(
        f"   estate: gateway {estate.gateway_url} -> legacy; hosts {', '.join(f'{n} {h.address}' for n, h in estate.hosts.items())}"
    )
    say("== 2/6 spec, approvers, deployments (prefect.yaml) and cutover workers")
    _prepare(estate)
    workers = [
        spawn(
            f"worker-{n}",
            [*prefect_cli(), "worker", "start", "--pool", POOL, "--type", "cutover", "--limit", "6"],
            env=os.environ,
            logs=LOGS,
            cwd=REPO,
        )
        for n in range(1, 3 if production_topology() else 2)
    ]
    save_state(STATE_FILE, {**load_state(STATE_FILE), "workers": workers})
    say(
        f"   {len(workers)} cutover worker(s) on pool {POOL}"
        + ("; Prefect server and ledger on PostgreSQL" if production_topology() else "")
    )
    say("== 3/6 cutover of 社会保险信息系统: stress test, internal tests, trial-run report")
    run_id = _trigger()
    final = _follow(run_id, auto)
    return _conclude(estate, final, started)


def _fresh_databases() -> None:
    """In the production topology, new PostgreSQL databases for the Prefect server and the ledger."""
    if not production_topology():
        return
    import sqlalchemy as sa

    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in (PG_PREFECT_DB, PG_LEDGER_DB):
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def _require_free_port(port: int) -> None:
    from demo._proc import port_is_free

    if not port_is_free("127.0.0.1", port):
        raise SystemExit(f"127.0.0.1:{port} is taken (another Prefect server?); stop it, then run make demo again")


def _start_estate() -> Any:
    """Start the estate on the default ports, or the next free ones if something holds them."""
    from demo._proc import free_port
    from demo.estate import APP_HOSTS, DEFAULT_ADDRESSES, GATEWAY_HOST, Estate

    root = estate_root()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    root.chmod(0o755)
    return Estate.start(
        root,
        port=free_port(list(DEFAULT_ADDRESSES.values()), 2222),
        app_port=free_port([DEFAULT_ADDRESSES[name] for name in APP_HOSTS], 8000),
        gateway_port=free_port([DEFAULT_ADDRESSES[GATEWAY_HOST]], 8080),
    )


def _write_env_file(estate: Any) -> None:
    from demo.specs import secret_env

    os.environ.update(secret_env(estate))
    lines = [f"export {k}={v}" for k, v in {**base_env(), **secret_env(estate)}.items()]
    (STATE_DIR / "env").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _prepare(estate: Any) -> None:
    from cutover.runtime import open_ledger, register
    from demo.portfolio import register_demo_portfolio
    from demo.specs import write_demo_spec
    from flows.deployments import ensure_work_pool

    spec_path = write_demo_spec(estate, STATE_DIR / "specs")
    from cutover.spec_loader import load_spec

    ledger = open_ledger()
    register(ledger, load_spec(spec_path), actor="demo")
    table = register_demo_portfolio(ledger, STATE_DIR / "plan")
    _enroll_demo_approvers(ledger)
    ensure_work_pool(POOL)
    deployed = subprocess.run(
        [*prefect_cli(), "--no-prompt", "deploy", "--all"], cwd=REPO, env=os.environ, capture_output=True, text=True
    )
    (LOGS / "deploy.log").write_text(deployed.stdout + deployed.stderr, encoding="utf-8")
    if deployed.returncode != 0:
        raise SystemExit(f"prefect deploy --all failed (exit {deployed.returncode}); see {LOGS / 'deploy.log'}")
    _publish_portfolio_now()
    say(
        f"   portfolio: 12 more systems in 4 departments from {table.relative_to(REPO)}; "
        f"the office's view: {UI}/artifacts/key/portfolio-summary (and `cutover portfolio`)"
    )
    say(
        f"   spec {spec_path.relative_to(REPO)}; approvers enrolled with SM2 keys "
        f"(their private keys, as on their own machines: {KEYS.relative_to(REPO)}/<id>.key)"
    )


def _publish_portfolio_now() -> None:
    """A run of the daily portfolio deployment now, so its artifacts are there from the start."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("portfolio/portfolio")
        client.create_flow_run_from_deployment(deployment.id)


def _enroll_demo_approvers(ledger: Any) -> None:
    """Generate each demo approver's SM2 key under .demo/keys (as on their machine); an admin enrolls the public half."""
    from cutover import sm2
    from cutover.approvers import enroll_key
    from cutover.ledger import Party

    KEYS.mkdir(parents=True, exist_ok=True)
    for approver_id, name, party in APPROVERS:
        key_file = KEYS / f"{approver_id}.key"
        if key_file.exists():
            key = sm2.load_private_key(key_file, None)
        else:
            key = sm2.generate_key()
            sm2.write_private_key(key_file, key, None)
        public = sm2.public_key_pem(key).encode()
        enroll_key(ledger, approver_id, name, Party(party.split()[0]), public, actor="demo-admin", source="demo keygen")


def _trigger() -> UUID:
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    run = cast(FlowRun, run_deployment("cutover/cutover", parameters={"system_id": SYSTEM, "actor": "demo"}, timeout=0))
    say(f"   flow run: {UI}/runs/flow-run/{run.id}")
    return run.id


# ------------------------------------------------------------------------ follow the run
def _follow(run_id: UUID, auto: bool) -> Any:
    from prefect import get_client

    shown, announced = 0, set()
    deadline = time.monotonic() + _WAIT_FOR_CUTOVER_S if auto else float("inf")
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            shown = _print_logs(client, run_id, shown)
            state = client.read_flow_run(run_id).state
            if state is not None and state.is_final():
                _print_logs(client, run_id, shown)
                return state
            key = state.state_details.pause_key if state is not None and state.is_paused() else None
            if key and key not in announced and _form_ready(client, run_id, state, key):
                announced.add(key)
                _announce(run_id, key, len(announced))
                if auto:
                    _sign_next(run_id)
            time.sleep(1)
    raise SystemExit(
        f"the cutover did not finish within {_WAIT_FOR_CUTOVER_S} s; see {UI}/runs/flow-run/{run_id} and {LOGS}"
    )


def _print_logs(client: Any, run_id: UUID, shown: int) -> int:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    logs = client.read_logs(
        log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])),
        offset=shown,
        limit=200,
        sort=LogSort.TIMESTAMP_ASC,
    )
    for log in logs:
        say(f"   {log.timestamp:%H:%M:%S} {log.message}")
    return shown + len(logs)


def _form_ready(client: Any, run_id: UUID, state: Any, key: str) -> bool:
    """The form is saved a moment after the run suspends; resuming before that is refused."""
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    try:
        client.read_flow_run_input(run_id, f"{(state.name or '').lower()}-{key}-description")
    except (ObjectNotFound, PrefectHTTPStatusError):
        return False
    return True


def _announce(run_id: UUID, key: str, n: int) -> None:
    say(f"== 4/6 joint sign-off (共同认可), signature {n} of 2 — the run is suspended and holds no worker")
    say(f"   sign in the Prefect UI: {UI}/v2/runs/flow-run/{run_id}  (⋮ menu → Resume → fill in the form)")
    say(
        f"   or in a terminal: source .demo/env && .venv/bin/cutover sign {SYSTEM} --as wang.li   (zhao.min for the cloud provider)"
    )
    say("   the demo approvers' private keys: .demo/keys/wang.li.key and .demo/keys/zhao.min.key (add --key <file>)")


def _sign_next(run_id: UUID) -> None:
    from prefect.flow_runs import resume_flow_run

    from cutover import signoff_store, sm2
    from cutover.runtime import open_ledger
    from tasks.signoff import fields_shown, sign_answer

    ledger = open_ledger()
    signed = {s.approver_id for s in ledger.signatures_for(SYSTEM)}
    approver = next(a_id for a_id, _, _ in APPROVERS if a_id not in signed)
    request = signoff_store.latest_request(ledger, SYSTEM)
    assert request is not None, "a form is waiting, so its request is in the audit trail"
    key = sm2.load_private_key(KEYS / f"{approver}.key", None)
    fields = fields_shown(SYSTEM, request.detail)
    _, answer = sign_answer(fields, approver, "approve", "AUTO_SIGN demo 同意", key, datetime.now(UTC))
    resume_flow_run(run_id, run_input=answer)
    say(f"   AUTO_SIGN: signed as {approver} with {KEYS.relative_to(REPO)}/{approver}.key (SM2)")


# ------------------------------------------------------------------------------ conclude
def _conclude(estate: Any, final: Any, started: float) -> int:
    from cutover.runtime import open_ledger
    from flows.deployments import deployment_url, find_rollback_deployment

    if not final.is_completed():
        say(f"!! the cutover run ended {final.name}: {final.message}; see {LOGS}")
        return 1
    who = httpx.get(f"{estate.gateway_url}/api/whoami", timeout=5, trust_env=False).json()["name"]
    window = open_ledger().current_retention_window(SYSTEM)
    say(
        f"== 5/6 cut over in {time.monotonic() - started:.0f} s: the gateway {estate.gateway_url} is now answered by '{who}'"
    )
    if window is not None:
        say(
            f"   retention window (原系统保留期) ends {window.ends_at:%Y-%m-%d %H:%M} UTC; the original stays ready until then"
        )
    deployment = find_rollback_deployment(SYSTEM)
    say("== 6/6 the way back")
    if deployment is not None:
        say(f"   one click: {deployment_url(deployment)}  (Run → Quick run)")
    say(f"   CLI:       source .demo/env && .venv/bin/cutover rollback {SYSTEM}")
    say("   automatic: make demo-failure   (breaks the cloud copy; the watch rolls back)    stop: make demo-stop")
    return 0 if who == "cloud" else 1


# ------------------------------------------------------------------------------- failure
def failure(args: list[str]) -> int:
    """Write a payment on the cloud copy, break it, and show the automatic rollback bring it home."""
    from cutover import lifecycle
    from cutover.ledger import LifecycleState
    from cutover.runtime import find_spec, open_ledger
    from demo.estate import Estate
    from demo.specs import secret_env
    from tasks.divergence import before_rollback

    estate = Estate.load(estate_root())
    os.environ.update(secret_env(estate))
    ledger = open_ledger()
    if lifecycle.current_state(ledger, SYSTEM) is not LifecycleState.RETAINED:
        say(f"{SYSTEM} is not in its retention window (run `make demo` first)")
        return 3
    paid = httpx.post(
        f"{estate.gateway_url}/api/payments", json={"insured_id": 42, "amount": 8800}, timeout=5, trust_env=False
    )
    paid.raise_for_status()
    on_cloud = _payments(estate, "cloud")
    say(f"== a payment written through the gateway during the window (cloud copy now has {on_cloud} payments)")
    say(f"== before any rollback: {before_rollback(ledger, find_spec(SYSTEM)[1], fresh=True)}")
    httpx.post(
        f"{estate.app_url('cloud')}/admin/faults", json={"healthy": False}, timeout=5, trust_env=False
    ).raise_for_status()
    say("== the cloud copy is broken (its /healthz answers 503); the retention watch counts failed checks ...")
    started = time.monotonic()
    _ensure_watching()
    state = _wait_for_rollback(ledger, timeout_s=180)
    who = httpx.get(f"{estate.gateway_url}/api/whoami", timeout=5, trust_env=False).json()["name"]
    on_legacy = _payments(estate, "legacy")
    say(
        f"== automatic rollback finished in {time.monotonic() - started:.0f} s: state {state.value}; the gateway is answered by '{who}'"
    )
    say(
        f"   payments on the original: {on_legacy} (the cloud copy had {on_cloud}) — {'nothing lost' if on_legacy >= on_cloud else 'ROWS MISSING'}"
    )
    httpx.post(f"{estate.app_url('cloud')}/admin/faults", json={"healthy": True}, timeout=5, trust_env=False)
    return 0 if who == "legacy" and on_legacy >= on_cloud else 1


def _payments(estate: Any, instance: str) -> int:
    return int(httpx.get(f"{estate.app_url(instance)}/api/stats", timeout=5, trust_env=False).json()["payments"])


def _ensure_watching() -> None:
    """Start a watch run now (the deployment allows one at a time: a scheduled one already running keeps watching)."""
    from prefect.deployments import run_deployment

    run_deployment("watch-retention/watch", parameters={"duration_s": 150}, timeout=0)


def _wait_for_rollback(ledger: Any, timeout_s: float) -> Any:
    from cutover import lifecycle
    from cutover.ledger import LifecycleState

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = lifecycle.current_state(ledger, SYSTEM)
        if state in (LifecycleState.ROLLED_BACK, LifecycleState.ROLLBACK_INCOMPLETE):
            return state
        time.sleep(1)
    raise SystemExit(f"no automatic rollback within {timeout_s:.0f} s; see {LOGS}/worker.log")


# ---------------------------------------------------------------------------------- stop
def stop(args: list[str], quiet: bool = False) -> int:
    """End the worker, the server and the estate a previous ``up`` started."""
    state = load_state(STATE_FILE)
    workers = state.get("workers")
    for pid in [*(workers if isinstance(workers, list) else []), state.get("server")]:
        if isinstance(pid, int):
            stop_group(pid)
    root = Path(str(state.get("estate_root") or estate_root()))
    if (root / "estate.json").exists():
        from demo.estate import Estate

        Estate.load(root).stop()
    shutil.rmtree(root, ignore_errors=True)
    if not quiet:
        say("demo stopped: worker, Prefect server and estate ended (state kept in .demo/ until the next `make demo`)")
    return 0
