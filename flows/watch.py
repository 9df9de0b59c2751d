"""Watching during retention: every retained system's health, its original's readiness, automatic rollback.

Deployed as ``watch-retention/watch`` (see :func:`flows.deployments.ensure_watch_deployment`):
scheduled every 5 minutes, one run at a time, each run watching for ``duration_s`` — sweeping at
the shortest ``retention.watch.interval`` of the retained systems, each system probed at its own
interval. With ``duration_s=0`` a run is a single sweep. What a sweep does and decides is in
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
async def watch_retention(duration_s: float = 0.0, readiness_every_s: float = 300.0, concurrency: int = 32) -> str:
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
) -> list[SweepReport]:
    """Sweep, then sleep until the next system is due, until ``duration_s`` has passed."""
    end = time.monotonic() + duration_s
    reports: list[SweepReport] = []
    while True:
        specs = await asyncio.to_thread(index.specs)
        report = await sweep_once(ledger, specs, hooks, state, settings=settings, concurrency=concurrency)
        reports.append(report)
        run_logger().info("sweep: %s", report.describe())
        intervals = [s.retention.watch.interval.total_seconds() for s in specs.values()] or [MAX_TICK_S]
        tick = min(max(min(intervals), MIN_TICK_S), MAX_TICK_S)
        if time.monotonic() + tick > end:
            return reports
        await asyncio.sleep(tick)
