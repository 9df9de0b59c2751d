"""Benchmark: one-click rollback — from the click (a run of the rollback deployment created, what the
UI's Quick run and the API do) to the gateway answering from the original, with the watch running.
Target: median ≤ 10 s loaded; the idle figure beside it.

The set-up is real (bench/_real_rollback.py): a PostgreSQL-backed Prefect server and ledger, the
demo estate on loopback, a cutover worker (warm processes, one kept for rollbacks) and the
scheduled watch deployment on its pool, whose runs hold the shared warm process. A first, untimed
round lets the just-started worker finish warming up, as a long-running worker has. Each round
cuts a fresh system over (gateway → cloud), waits until the watch probes it, then "clicks". Two
figures per round: the gateway answering from ``legacy``, and the run Completed (verified, recorded).
``--loaded`` runs ``stress-ng --cpu 2`` from after the warm-up round to the end; the load average is printed.

Usage: .venv/bin/python bench/rollback_click.py [ROUNDS] [--loaded]
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect import get_client

from bench._real_rollback import SETTLE_S, RealSetup, load, loaded, real_setup
from tests._polling import wait_until


def click(setup: RealSetup, deployment_id: object) -> tuple[float, float]:
    """(seconds to the gateway answering from the original, seconds to the run Completed)."""
    with get_client(sync_client=True) as client:
        started = time.perf_counter()
        run = client.create_flow_run_from_deployment(deployment_id)  # type: ignore[arg-type]
        back = setup.wait_gateway("legacy") - started
        state = wait_until(
            lambda: client.read_flow_run(run.id).state,
            ready=lambda state: state is not None and state.is_final(),
            what=f"rollback run {run.id} to finish",
            timeout_s=300,
            interval_s=0.1,
        )
    assert state is not None and state.is_completed(), f"{state.name if state else None}: {state and state.message}"
    return back, time.perf_counter() - started


def main(rounds: int = 3, stress: bool = False) -> None:
    with real_setup("bench-click") as setup, contextlib.ExitStack() as hogs:
        backs: list[float] = []
        for n in range(rounds + 1):
            if n == 1:  # the hogs run from after the warm-up round to the end: settling and cutting over too
                hogs.enter_context(loaded(stress))
            time.sleep(SETTLE_S if n > 0 else 0)
            spec, deployment_id = setup.retained_system()
            setup.wait_watched(spec)
            back, done = click(setup, deployment_id)
            figures = f"{back:.2f} s to the original serving, {done:.2f} s to the run completed; {load()}"
            setup.estate.reset()
            if n == 0:  # the worker has just started: its warm processes may still be importing
                print(f"  warm-up round (worker just started): {figures}")
                continue
            backs.append(back)
            print(f"  round {n} ({setup.watch_runs_running()} watch runs running): {figures}")
        print(
            f"one-click rollback{' (loaded: stress-ng --cpu 2)' if stress else ''}: median "
            f"{statistics.median(backs):.2f} s over {rounds} (target ≤ 10 s); {load()}"
        )


if __name__ == "__main__":
    numbers = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(*(int(a) for a in numbers[:1]), stress="--loaded" in sys.argv)
