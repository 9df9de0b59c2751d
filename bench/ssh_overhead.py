"""Benchmark: orchestration overhead per SSH step, and fan-out speed-up.

A 30-step runbook of trivial commands on one real sshd host (the demo estate's, on loopback):
through our task layer inside a Prefect flow (each step a Prefect task, recorded in the SQLite
ledger before and after) versus a raw paramiko loop over one reused connection, alternating,
several rounds. Prints the median ratio (target <= 1.3x). Then a 20-host fan-out at concurrency
10 against the same 20 hosts one after another.

Usage: .venv/bin/python bench/ssh_overhead.py [ROUNDS]
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

STEPS = 30
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import paramiko  # noqa: E402
from prefect import flow  # noqa: E402
from prefect.utilities.annotations import quote  # noqa: E402

from cutover import lifecycle  # noqa: E402
from cutover.ledger import Ledger, RunKind, StepPhase  # noqa: E402
from cutover.settings import Settings  # noqa: E402
from cutover.spec import Spec, SshStep  # noqa: E402
from demo.estate import Estate  # noqa: E402
from tasks.ssh import ConnectionPool, StepContext, fan_out, ssh_step_task  # noqa: E402
from tests.fixtures.estate import make_estate_root, start_test_estate  # noqa: E402
from tests.specbuilder import spec_for  # noqa: E402


def raw_loop(estate: Estate, *, nodelay: bool) -> float:
    """Plain paramiko, one reused connection; ``nodelay`` applies the same socket option our layer sets."""
    host = estate.hosts["legacy"]
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.get_host_keys().add(f"[{host.address}]:{host.port}", "ssh-ed25519", _server_key(host))
    sock = socket.create_connection((host.address, host.port), timeout=5)
    if nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.connect(
        host.address,
        host.port,
        host.user,
        key_filename=str(host.client_key_path),
        allow_agent=False,
        look_for_keys=False,
        timeout=5,
        sock=sock,
    )
    started = time.perf_counter()
    for _ in range(STEPS):
        _, stdout, _ = client.exec_command("true", timeout=60)
        stdout.read()
        assert stdout.channel.recv_exit_status() == 0
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def _server_key(host: object) -> paramiko.PKey:
    import base64

    _kind, blob = host.host_public_key.split()[:2]  # type: ignore[attr-defined]
    return paramiko.Ed25519Key(data=base64.b64decode(blob))


@flow(name="bench-ssh-runbook", persist_result=False)
def runbook(ctx: StepContext, steps: list[SshStep]) -> float:
    started = time.perf_counter()
    for step in steps:
        ssh_step_task.with_options(task_run_name=step.id)(quote(ctx), step, "legacy", "run", StepPhase.CUTOVER)
    return time.perf_counter() - started


def ours(estate: Estate, spec: Spec, ledger: Ledger, home: Path) -> float:
    run = ledger.create_run(spec.system.id, RunKind.CUTOVER)
    ctx = StepContext(spec=spec, ledger=ledger, run_id=run.id, pool=ConnectionPool(), settings=Settings(home=home))
    steps = [
        SshStep(kind="ssh", id=f"s{i:02d}", name=f"step {i}", host="legacy", run=["true"], changes_state=False)
        for i in range(STEPS)
    ]
    ctx.pool.get(
        __import__("tasks.ssh", fromlist=["host_target"]).host_target(spec, "legacy", ctx.settings)
    )  # connect outside the timing, as the raw loop does
    elapsed = runbook(ctx, steps)
    ledger.finish_run(run.id, __import__("cutover.ledger", fromlist=["RunState"]).RunState.SUCCEEDED)
    ctx.pool.close_all()
    return elapsed


def fan(estate: Estate, ledger: Ledger, home: Path, concurrency: int) -> float:
    nodes = estate.extra_hosts(20)
    spec = spec_for(estate, hosts={n.name: n.spec_entry() for n in nodes})
    lifecycle.register_system(
        ledger, system_id=spec.system.id, name="b", department="d", disposition="migrate", actor="bench"
    )
    run = ledger.create_run(spec.system.id, RunKind.CUTOVER)
    ctx = StepContext(spec=spec, ledger=ledger, run_id=run.id, pool=ConnectionPool(), settings=Settings(home=home))
    step = SshStep(
        kind="ssh",
        id="fan",
        name="fan",
        hosts=[n.name for n in nodes],
        run=["sleep", "0.2"],
        changes_state=False,
        concurrency=concurrency,
    )
    started = time.perf_counter()
    result = fan_out(ctx, step)
    elapsed = time.perf_counter() - started
    assert result.ok, result.errors
    ctx.pool.close_all()
    return elapsed


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    root = make_estate_root("bench-estate-")
    home = Path(tempfile.mkdtemp(prefix="bench-home-"))
    estate = start_test_estate(root, hosts=("legacy",), seed_rows=0)
    try:
        ledger = Ledger(f"sqlite:///{home / 'ledger.db'}")
        ledger.migrate()
        spec = spec_for(estate)
        lifecycle.register_system(
            ledger, system_id=spec.system.id, name="b", department="d", disposition="migrate", actor="bench"
        )
        ours(estate, spec, ledger, home)  # warm-up: Prefect's local server, imports, connections
        naive, tuned, orchestrated = [], [], []
        for _ in range(rounds):
            naive.append(raw_loop(estate, nodelay=False))
            tuned.append(raw_loop(estate, nodelay=True))
            orchestrated.append(ours(estate, spec, ledger, home))
        print(f"30-step runbook of `true`, {rounds} rounds (alternating)")
        for label, series in (
            ("raw paramiko, default socket", naive),
            ("raw paramiko, TCP_NODELAY", tuned),
            ("our task layer in a Prefect flow", orchestrated),
        ):
            print(
                f"  {label:34s} median {statistics.median(series) * 1000:6.0f} ms ({statistics.median(series) / STEPS * 1000:5.1f} ms/step)"
            )
        ratio_naive = statistics.median([o / r for o, r in zip(orchestrated, naive, strict=True)])
        ratio_tuned = statistics.median([o / r for o, r in zip(orchestrated, tuned, strict=True)])
        print(f"median ratio vs raw paramiko loop (default socket): {ratio_naive:.2f}x (target <= 1.3x)")
        print(f"median ratio vs raw paramiko loop with TCP_NODELAY: {ratio_tuned:.2f}x (pure orchestration overhead)")
        sequential = fan(estate, ledger, home, 1)
        parallel = fan(estate, ledger, home, 10)
        print(
            f"20-host fan-out of 'sleep 0.2': sequential {sequential:.2f} s, concurrency 10 {parallel:.2f} s ({sequential / parallel:.1f}x faster)"
        )
    finally:
        estate.stop()


if __name__ == "__main__":
    main()
