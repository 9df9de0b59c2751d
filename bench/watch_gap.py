"""Benchmark: the largest gap between two probes of one system across N watch-run hand-overs.

Target: ≤ 2 × the system's watch interval (issue 15, part 4). Watch runs start as the schedule
starts them — one every ``EVERY`` intervals — and begin sweeping ``START_DELAY`` intervals later
(their start-up, scaled like a cold start). Each run is a :func:`flows.watch.watch_loop` with a
ledger of its own on one SQLite file, as flow runs in separate processes would have; every system's
health check is a real HTTP endpoint on loopback that records when it was probed.

Two designs, in the same run:
- baseline (before issue 15): one run at a time, each watching exactly ``EVERY`` intervals; the
  next one, queued behind it, starts ``START_DELAY`` after it ends: blind for its start-up;
- hand-over: a run watches ``EVERY + HANDOVER`` intervals, two runs at a time, sharing the probes
  through the ledger's claims (the newer one takes over, the older one yields and ends).

Usage: .venv/bin/python bench/watch_gap.py [HANDOVERS] [SYSTEMS] [INTERVAL_S]

``--real``: the same figure with a real cutover worker, a real Prefect server (PostgreSQL), the
scheduled watch deployment and real worker restarts (SIGTERM and kill -9), see bench/_watch_gap_real.py::

    .venv/bin/python bench/watch_gap.py --real [--minutes 5] [--restart 2] [--systems 3] [--interval 10]
        [--every 60] [--handover 20]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from cutover.ledger import Ledger
from cutover.settings import Settings
from cutover.spec import Spec
from flows._watch_sweep import WatchHooks, WatchState
from flows.watch import watch_loop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.flows.test_watch_handover import FixedSpecs, ProbedEndpoint, retained_system, watch_with_handovers

EVERY, HANDOVER, START_DELAY = 5.0, 3.0, 1.5  # in watch intervals


def _hooks(_: int) -> WatchHooks:
    return WatchHooks(rollback=lambda spec, reason: None, alert=lambda spec, seen: None)


async def _one_at_a_time(
    ledgers: Callable[[], Ledger], specs: dict[str, Spec], settings: Settings, *, runs: int, interval_s: float
) -> None:
    """Before issue 15: each run starts up after the previous one ended, then watches ``EVERY``."""
    for _ in range(runs):
        await asyncio.sleep(START_DELAY * interval_s)
        ledger = ledgers()
        state = WatchState()
        await watch_loop(ledger, FixedSpecs(specs), _hooks(0), state, settings=settings, duration_s=EVERY * interval_s)
        ledger.dispose()


def _measure(handovers: int, systems: int, interval_s: float, *, overlap: bool) -> tuple[float, float, int]:
    """(largest gap, smallest gap, probes) over all systems for one design."""
    with tempfile.TemporaryDirectory() as home, ProbedEndpoint() as endpoint:
        url = f"sqlite:///{home}/ledger.db"
        setup = Ledger(url, digest="sm3")
        setup.migrate()
        specs: dict[str, Spec] = {}
        for _ in range(systems):
            spec = retained_system(setup, endpoint, interval_s=interval_s, failures_to_rollback=3)
            specs[spec.system.id] = spec
        setup.dispose()
        ledgers: Callable[[], Ledger] = lambda: Ledger(url, digest="sm3")  # noqa: E731
        settings = Settings(home=Path(home))
        if not overlap:
            asyncio.run(_one_at_a_time(ledgers, specs, settings, runs=handovers + 1, interval_s=interval_s))
        else:
            asyncio.run(
                watch_with_handovers(
                    ledgers,
                    specs,
                    _hooks,
                    settings,
                    runs=handovers + 1,
                    every_s=EVERY * interval_s,
                    handover_s=HANDOVER * interval_s,
                    start_delay_s=START_DELAY * interval_s,
                )
            )
        largest = max(endpoint.largest_gap(s) for s in specs)
        smallest = min(endpoint.smallest_gap(s) for s in specs)
        return largest, smallest, sum(len(endpoint.seen[s]) for s in specs)


def main(handovers: int = 10, systems: int = 20, interval_s: float = 1.0) -> None:
    print(
        f"{handovers} hand-overs, {systems} systems, interval {interval_s:g} s, a run every "
        f"{EVERY:g} intervals starting {START_DELAY:g} intervals late"
    )
    for name, overlap in (("baseline (one run at a time)", False), ("hand-over (overlap + ledger claims)", True)):
        largest, smallest, probes = _measure(handovers, systems, interval_s, overlap=overlap)
        verdict = "ok" if largest <= 2 * interval_s else "OVER"
        print(
            f"  {name}: largest probe gap {largest:.2f} s = {largest / interval_s:.2f} × interval "
            f"(target ≤ 2 × = {2 * interval_s:g} s: {verdict}); smallest {smallest:.2f} s; {probes} probes"
        )


def real(argv: list[str]) -> None:
    import argparse

    from bench._watch_gap_real import run

    parser = argparse.ArgumentParser(prog="watch_gap.py --real")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--restart", type=int, default=2, help="worker restarts, alternately SIGTERM and kill -9")
    parser.add_argument("--systems", type=int, default=3)
    parser.add_argument("--interval", type=float, default=10.0, help="the systems' watch interval, seconds")
    parser.add_argument("--every", type=float, default=60.0, help="a scheduled watch run every ... seconds")
    parser.add_argument("--handover", type=float, default=20.0, help="... each watching this much longer")
    args = parser.parse_args(argv)
    print(
        f"real worker: {args.minutes:g} min, {args.restart} restarts, {args.systems} systems, interval "
        f"{args.interval:g} s, a watch run every {args.every:g} s (+{args.handover:g} s hand-over)"
    )
    run(args.minutes, args.restart, args.systems, args.interval, args.every, args.handover)


if __name__ == "__main__":
    if "--real" in sys.argv:
        real([a for a in sys.argv[1:] if a != "--real"])
    else:
        args = sys.argv[1:4]
        main(*(int(a) for a in args[:2]), *(float(a) for a in args[2:3]))
