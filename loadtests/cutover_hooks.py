"""Hooks every cutover locustfile should import (the generic one does): ``import loadtests.cutover_hooks``.

1. Locust flushes its CSV files every 5 s by default; this makes it every second so the
   orchestrator can report progress while the run goes on.
2. Locust's own ``<prefix>_stats.csv`` is rewritten once a second, so at exit it can miss the
   last second of requests. When locust quits (after its users have stopped), this writes the
   final statistics and failures, in the same columns, to ``<prefix>_final_stats.csv`` and
   ``<prefix>_final_failures.csv``; the orchestrator prefers those, so the numbers it reports
   match locust's HTML report.
"""

from __future__ import annotations

import csv
from typing import Any

import locust.stats
from locust import events

locust.stats.CSV_STATS_FLUSH_INTERVAL_SEC = 1


def _write_final_stats(environment: Any, **_kwargs: Any) -> None:
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix or environment.runner is None:
        return
    writer = locust.stats.StatsCSV(environment, locust.stats.PERCENTILES_TO_REPORT)
    with open(f"{prefix}_final_stats.csv", "w", newline="", encoding="utf-8") as handle:
        writer.requests_csv(csv.writer(handle))
    with open(f"{prefix}_final_failures.csv", "w", newline="", encoding="utf-8") as handle:
        writer.failures_csv(csv.writer(handle))


events.quitting.add_listener(_write_final_stats)  # type: ignore[no-untyped-call]
