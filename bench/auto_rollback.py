"""Benchmark: automatic rollback — from the first failed check to traffic restored, on a demo estate.

Starts its own estate on loopback, cuts the demo system over (gateway → cloud), then makes the
cloud copy unhealthy and runs the watcher's sweeps at the spec's interval (2 s, K = 3). The
rollback hook runs the rollback in the watcher's process (on a thread), as the watch flow does
when no rollback deployment exists. Measured: from the fault to the gateway answering from
``legacy`` and the rollback recorded as succeeded. Target ≤ interval × K + 5 s (11 s).

``--real``: the same on the real set-up (bench/_real_rollback.py): the scheduled watch deployment's
runs probe the system on a cutover worker, the rollback is a run of the system's rollback
deployment in the warm process kept for rollbacks. Measured from the fault (the first failed
probe is at most one interval later, so this overstates by up to one interval) to the gateway
answering from ``legacy``; ``--loaded`` runs ``stress-ng --cpu 2`` from after the warm-up round to the end.

Usage: .venv/bin/python bench/auto_rollback.py [ROUNDS] [--real [--loaded]]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from cutover.ledger import Ledger
from cutover.settings import Settings
from cutover.spec import Spec
from demo.estate import Estate
from demo.specs import secret_env
from flows._watch_sweep import WatchHooks, WatchState, sweep_once
from rollback import RollbackOutcome, run_rollback
from tests.fixtures.estate import make_estate_root, start_test_estate
from tests.rollback._retained import cut_over_for_real, estate_spec, whoami


def one_round(estate: Estate, ledger: Ledger, settings: Settings, executor: ThreadPoolExecutor) -> float:
    spec = estate_spec(estate)
    cut_over_for_real(estate, ledger, spec, settings)
    started: list[Future[RollbackOutcome]] = []

    def rollback(target: Spec, reason: str) -> str:
        started.append(executor.submit(run_rollback, target, ledger, actor="watch", settings=settings))
        return "in-process rollback"

    hooks = WatchHooks(rollback=rollback, alert=lambda spec, seen: None)
    state = WatchState(readiness_every=timedelta(hours=1))
    asyncio.run(sweep_once(ledger, {spec.system.id: spec}, hooks, state, settings=settings))  # healthy baseline
    httpx.post(f"{estate.app_url('cloud')}/admin/faults", json={"healthy": False}, trust_env=False).raise_for_status()
    fault = time.perf_counter()
    interval = spec.retention.watch.interval.total_seconds()
    deadline = fault + 60
    while not started and time.perf_counter() < deadline:
        asyncio.run(sweep_once(ledger, {spec.system.id: spec}, hooks, state, settings=settings))
        if not started:
            time.sleep(interval)
    outcome = started[0].result(timeout=60)
    assert whoami(estate) == "legacy", outcome.summary()
    elapsed = time.perf_counter() - fault
    estate.reset()
    return elapsed


def main(rounds: int = 3) -> None:
    root = make_estate_root("bench-auto-")
    estate = start_test_estate(root)
    try:
        os.environ.update(secret_env(estate))
        with tempfile.TemporaryDirectory() as home, ThreadPoolExecutor(2) as executor:
            ledger = Ledger(f"sqlite:///{home}/ledger.db", digest="sm3")
            ledger.migrate()
            settings = Settings(home=Path(home))
            times = []
            for n in range(rounds):
                times.append(one_round(estate, ledger, settings, executor))
                print(f"  round {n + 1}: fault → traffic restored and verified in {times[-1]:.2f} s")
            print(
                f"automatic rollback: median {statistics.median(times):.2f} s over {rounds} (interval 2 s × K 3 + 5 s = 11 s target)"
            )
    finally:
        estate.stop()


def real(rounds: int = 3, stress: bool = False) -> None:
    from bench._real_rollback import SETTLE_S, load, loaded, real_setup

    with real_setup("bench-auto") as setup, contextlib.ExitStack() as hogs:
        times: list[float] = []
        for n in range(rounds + 1):
            if n == 1:  # the hogs run from after the warm-up round to the end: settling and cutting over too
                hogs.enter_context(loaded(stress))
            time.sleep(SETTLE_S if n > 0 else 0)
            spec, _ = setup.retained_system()
            setup.wait_watched(spec)
            target = spec.retention.watch.interval.total_seconds() * spec.retention.watch.failures_to_rollback + 5
            url = f"{setup.estate.app_url('cloud')}/admin/faults"
            httpx.post(url, json={"healthy": False}, trust_env=False).raise_for_status()
            fault = time.perf_counter()
            elapsed = setup.wait_gateway("legacy", timeout_s=180) - fault
            figures = f"{elapsed:.2f} s (target ≤ {target:g} s); {load()}"
            setup.wait_rolled_back(spec)
            setup.estate.reset()
            if n == 0:
                print(f"  warm-up round (worker just started): {figures}")
                continue
            times.append(elapsed)
            print(f"  round {n}: fault → gateway answering from the original in {figures}")
        print(
            f"automatic rollback, real worker{' (loaded: stress-ng --cpu 2)' if stress else ''}: median "
            f"{statistics.median(times):.2f} s over {rounds} (target ≤ interval × K + 5 s = {target:g} s); {load()}"
        )


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[1:] if not a.startswith("--")][:1]
    if "--real" in sys.argv:
        real(*numbers, stress="--loaded" in sys.argv)
    else:
        main(*numbers)
