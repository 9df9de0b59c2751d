"""Watching during retention: every retained system's health, its original's readiness, automatic rollback.

Deployed as ``watch-retention/watch`` (see :func:`flows.deployments.ensure_watch_deployment`):
scheduled every 5 minutes, two runs at a time, each run watching for 5 minutes plus
``handover_s`` — sweeping at the shortest ``retention.watch.interval`` of the retained systems,
each system probed at its own interval. With ``duration_s=0`` a run is a single sweep.

No blind spot at the hand-over: the next run starts before the previous one ends, and the two
share the work through the ledger (:meth:`cutover.ledger.Ledger.claim_probes`), each check
probed by one of them per interval, its failure count carried in the ledger's row. A run that
finds its checks taken by another sweeps twice as often, so it takes them over within about half
an interval once the other ends. Past ``duration_s - handover_s`` a run yields: it probes a check
only when nobody has for 1.25 intervals (the newer run claims at 0.9), and it ends as soon as a
sweep finds every due check taken by the newer run. A watch run killed with its worker is replaced
by the next worker as it starts, without waiting for Prefect's zombie detection
(:mod:`flows.watch_guard`). What a sweep does and decides is in
:mod:`flows._watch_sweep`; what it does about it (rollback, alert) in :mod:`flows._watch_hooks`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from prefect import flow

from cutover.ledger import Ledger
from cutover.runtime import open_ledger
from cutover.settings import Settings, get_settings
from flows._context import current_flow_run_id, run_logger
from flows._watch_hooks import prefect_hooks
from flows._watch_sweep import SpecIndex, SweepReport, WatchHooks, WatchState, sweep_once

__all__ = ["watch_loop", "watch_retention"]

MIN_TICK_S, MAX_TICK_S = 0.5, 60.0


@flow(name="watch-retention", persist_result=False, log_prints=False)
async def watch_retention(
    duration_s: float = 0.0, readiness_every_s: float = 300.0, concurrency: int = 32, handover_s: float = 0.0
) -> str:
    """Sweep every retained system (once, or for ``duration_s``); roll back after K failed checks."""
    settings = get_settings()
    ledger = open_ledger(settings)
    state = WatchState(readiness_every=timedelta(seconds=readiness_every_s))
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="rollback") as executor:
        hooks = prefect_hooks(executor, watch_key=current_flow_run_id() or uuid.uuid4().hex)
        reports = await watch_loop(
            ledger,
            SpecIndex(settings.specs_dir),
            hooks,
            state,
            settings=settings,
            duration_s=duration_s,
            concurrency=concurrency,
            handover_s=handover_s,
        )
    requested = {s: r for report in reports for s, r in report.rollbacks.items()}
    return f"{len(reports)} sweeps; rollbacks requested: {requested or 'none'}"


async def watch_loop(
    ledger: Ledger,
    index: SpecIndex,
    hooks: WatchHooks,
    state: WatchState,
    *,
    settings: Settings,
    duration_s: float,
    concurrency: int = 32,
    handover_s: float = 0.0,
) -> list[SweepReport]:
    """Sweep every tick (measured from one sweep's start to the next), until ``duration_s`` has passed.

    Past ``duration_s - handover_s`` (the newer run has started), a sweep that lost every due
    check to another watcher ends the loop: the hand-over is done.
    """
    end = time.monotonic() + duration_s
    handing_over = end - handover_s
    reports: list[SweepReport] = []
    while True:
        swept = time.monotonic()
        state.yielding = swept > handing_over
        specs = await asyncio.to_thread(index.specs)
        report = await sweep_once(ledger, specs, hooks, state, settings=settings, concurrency=concurrency)
        reports.append(report)
        run_logger().info("sweep: %s", report.describe())
        intervals = [s.retention.watch.interval.total_seconds() for s in specs.values()] or [MAX_TICK_S]
        tick = min(max(min(intervals), MIN_TICK_S), MAX_TICK_S) / (2 if report.lost else 1)
        if time.monotonic() + tick > end or (report.lost and not report.probes and state.yielding):
            return reports
        await asyncio.sleep(max(0.0, swept + tick - time.monotonic()))  # a sweep's own time is not added
