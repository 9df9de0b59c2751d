"""The hand-over between two watch runs (flows/watch.py): no blind spot, the failure count goes on.

Watch runs overlap (the next starts before the previous ends) and share the probes through the
ledger's claims (``Ledger.claim_probes``). Each run here is a :func:`flows.watch.watch_loop` with a
ledger of its own on one SQLite file, as two flow runs in two processes would be; the health check
is a real HTTP endpoint that records when it was probed. ``watch_with_handovers`` is also what
bench/watch_gap.py measures.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cutover.ledger import Ledger, LifecycleState, RunKind
from cutover.retention import window_end
from cutover.settings import Settings
from cutover.spec import Spec
from flows._watch_sweep import SpecIndex, SweepReport, WatchHooks, WatchState
from flows.watch import watch_loop
from tests.rollback._retained import sqlite_ledger
from tests.specbuilder import base_spec


class ProbedEndpoint:
    """An HTTP server on loopback answering ``/h/<system id>``: 200, or 500 while the system fails.

    It records when (``time.monotonic()``) each system was probed.
    """

    def __init__(self) -> None:
        self.seen: dict[str, list[float]] = defaultdict(list)
        self.failing: set[str] = set()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the watch's connection pools expect

            def do_GET(self) -> None:
                system_id = self.path.rsplit("/", 1)[-1]
                endpoint.seen[system_id].append(time.monotonic())
                self.send_response(500 if system_id in endpoint.failing else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                return

        ThreadingHTTPServer.request_queue_size = 256
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ProbedEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def largest_gap(self, system_id: str) -> float:
        times = self.seen[system_id]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def smallest_gap(self, system_id: str) -> float:
        times = self.seen[system_id]
        return min((b - a for a, b in itertools.pairwise(times)), default=float("inf"))


class FixedSpecs(SpecIndex):
    """The watched specs, given instead of read from a directory."""

    def __init__(self, specs: dict[str, Spec]) -> None:
        super().__init__(Path("."))
        self._specs = specs

    def specs(self) -> dict[str, Spec]:
        return dict(self._specs)


def retained_system(ledger: Ledger, endpoint: ProbedEndpoint, *, interval_s: float, failures_to_rollback: int) -> Spec:
    """A system in retention whose one health check is ``endpoint``'s ``/h/<system id>``."""
    data = base_spec()
    system_id = data["system"]["id"]
    data["cutover"]["health"] = [
        {"kind": "http_check", "id": "health", "name": "h", "url": f"{endpoint.url}/h/{system_id}"}
    ]
    data["retention"] = {
        "months": 3,
        "watch": {"interval": f"{interval_s}s", "failures_to_rollback": failures_to_rollback},
    }
    spec = Spec.model_validate(data)
    ledger.upsert_system(system_id=system_id, name="n", department="d", disposition="migrate")
    with ledger.session() as session:
        ledger.compare_and_set_state(system_id, LifecycleState.PLANNED, LifecycleState.RETAINED, session=session)
        run = ledger.create_run(system_id, RunKind.CUTOVER, session=session)
        ledger.open_retention_window(system_id, run.id, window_end(ledger.now(), 3), session=session)
    return spec


@dataclass
class WatchRun:
    """One watch run of the scenario: when it started and what each of its sweeps did."""

    number: int
    started: float = 0.0
    reports: list[SweepReport] = field(default_factory=list)

    @property
    def probes(self) -> int:
        return sum(r.probes for r in self.reports)


async def watch_with_handovers(
    ledgers: Callable[[], Ledger],
    specs: dict[str, Spec],
    hooks: Callable[[int], WatchHooks],
    settings: Settings,
    *,
    runs: int,
    every_s: float,
    handover_s: float,
    start_delay_s: float = 0.0,
) -> list[WatchRun]:
    """``runs`` watch runs as the schedule starts them: one every ``every_s``, each watching for
    ``every_s + handover_s``; a run begins sweeping ``start_delay_s`` after it is due (its start-up).
    Each run has a ledger of its own (``ledgers()``) and its own hooks (``hooks(n)``).
    """
    begin = time.monotonic()

    async def one(n: int) -> WatchRun:
        run = WatchRun(n)
        await asyncio.sleep(max(0.0, begin + n * every_s + start_delay_s - time.monotonic()))
        run.started = time.monotonic()
        ledger = ledgers()
        try:
            state = WatchState(readiness_every=timedelta(days=1))
            run.reports = await watch_loop(
                ledger,
                FixedSpecs(specs),
                hooks(n),
                state,
                settings=settings,
                duration_s=every_s + handover_s - start_delay_s,
                handover_s=handover_s - start_delay_s,
            )
        finally:
            ledger.dispose()
        return run

    return list(await asyncio.gather(*(one(n) for n in range(runs))))


def _quiet_hooks(_: int) -> WatchHooks:
    return WatchHooks(rollback=lambda spec, reason: None, alert=lambda spec, seen: None)


@pytest.fixture
def endpoint() -> Iterator[ProbedEndpoint]:
    with ProbedEndpoint() as served:
        yield served


@pytest.fixture
def ledger_file(tmp_path: Path, sqlite_template: Path) -> Callable[[], Ledger]:
    """Ledgers on one fresh SQLite file: one per watch run, as separate processes would have."""
    path = sqlite_ledger(tmp_path, sqlite_template).engine.url.database
    return lambda: Ledger(f"sqlite:///{path}", digest="sm3")


def test_across_watch_run_handovers_a_system_is_probed_at_least_every_two_intervals(
    endpoint: ProbedEndpoint, ledger_file: Callable[[], Ledger], settings: Settings
) -> None:
    interval = 1.0
    ledger = ledger_file()
    spec = retained_system(ledger, endpoint, interval_s=interval, failures_to_rollback=3)

    runs = asyncio.run(
        watch_with_handovers(
            ledger_file, {spec.system.id: spec}, _quiet_hooks, settings,
            runs=3, every_s=4 * interval, handover_s=2 * interval, start_delay_s=0.5 * interval,
        )
    )  # fmt: skip

    assert all(run.probes > 0 for run in runs), [run.probes for run in runs]  # every run took over
    assert endpoint.largest_gap(spec.system.id) <= 2 * interval, endpoint.seen[spec.system.id]
    assert endpoint.smallest_gap(spec.system.id) >= 0.5 * interval, "two runs probed in one interval"
    assert sum(run.probes for run in runs) == len(endpoint.seen[spec.system.id])
    ledger.dispose()


def test_a_handover_keeps_the_failure_count_so_the_newer_run_rolls_back_after_k_failures_in_all(
    endpoint: ProbedEndpoint, ledger_file: Callable[[], Ledger], settings: Settings
) -> None:
    interval, k = 1.5, 4  # wide enough that a busy machine still probes each run's share in time
    ledger = ledger_file()
    spec = retained_system(ledger, endpoint, interval_s=interval, failures_to_rollback=k)
    endpoint.failing.add(spec.system.id)
    requested: list[tuple[int, int, int]] = []  # (watch run, failed probes seen by the app, ledger count)

    def hooks(n: int) -> WatchHooks:
        def rollback(spec: Spec, reason: str) -> str:
            seen = len(endpoint.seen[spec.system.id])
            requested.append((n, seen, ledger.consecutive_failures(spec.system.id, "health")))
            with ledger.session() as session:
                ledger.compare_and_set_state(
                    spec.system.id, LifecycleState.RETAINED, LifecycleState.ROLLED_BACK, session=session
                )
            return f"rollback requested by run {n}"

        return WatchHooks(rollback=rollback, alert=lambda spec, seen: None)

    runs = asyncio.run(
        watch_with_handovers(
            ledger_file, {spec.system.id: spec}, hooks, settings,
            runs=2, every_s=2.2 * interval, handover_s=1.5 * interval,
        )
    )  # fmt: skip

    assert runs[0].probes in range(1, k), "the first run must hand over mid-streak"
    assert requested == [(1, k, k)], (requested, [run.probes for run in runs])
    ledger.dispose()
