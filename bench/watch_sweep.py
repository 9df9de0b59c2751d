"""Benchmark: one retention-watch sweep of N retained systems (default 1,000); target ≤ 3 s on 2 cores.

Each system has one health check at its own path (``/h/<system id>``) on one small asyncio HTTP
server (keep-alive, answers 200 ``ok``) running in a separate process on loopback. The ledger is a
fresh SQLite file holding the N systems in retention. A sweep = list the retained systems, probe
every check concurrently (httpx, one pool), fold the probes into the ledger, decide. Prints the
median of several sweeps (readiness over SSH excluded: these systems have no SSH hosts).

Usage: .venv/bin/python bench/watch_sweep.py [SYSTEMS] [ROUNDS]
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from cutover.ledger import Ledger, LifecycleState, RunKind
from cutover.retention import window_end
from cutover.settings import Settings
from cutover.spec import Spec
from flows._watch_sweep import WatchHooks, WatchState, sweep_once

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.specbuilder import base_spec

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


def _serve(port: int, ready: multiprocessing.synchronize.Event, stop: multiprocessing.synchronize.Event) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=2048)
        ready.set()
        async with server:
            while not stop.is_set():
                await asyncio.sleep(0.2)

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _retained(ledger: Ledger, count: int, port: int) -> dict[str, Spec]:
    specs: dict[str, Spec] = {}
    for n in range(count):
        data = base_spec(f"bench-{n:05d}")
        data["cutover"]["health"] = [
            {"kind": "http_check", "id": "health", "name": "h", "url": f"http://127.0.0.1:{port}/h/{n}"}
        ]
        spec = Spec.model_validate(data)
        specs[spec.system.id] = spec
        ledger.upsert_system(system_id=spec.system.id, name="n", department="d", disposition="migrate")
        with ledger.session() as session:
            ledger.compare_and_set_state(
                spec.system.id, LifecycleState.PLANNED, LifecycleState.RETAINED, session=session
            )
            run = ledger.create_run(spec.system.id, RunKind.CUTOVER, session=session)
            ledger.open_retention_window(spec.system.id, run.id, window_end(ledger.now(), 3), session=session)
    return specs


def main(count: int = 1000, rounds: int = 5) -> None:
    port = _free_port()
    ready, stop = multiprocessing.Event(), multiprocessing.Event()
    server = multiprocessing.Process(target=_serve, args=(port, ready, stop), daemon=True)
    server.start()
    ready.wait(10)
    try:
        with tempfile.TemporaryDirectory() as home:
            ledger = Ledger(f"sqlite:///{home}/ledger.db", digest="sm3")
            ledger.migrate()
            started = time.perf_counter()
            specs = _retained(ledger, count, port)
            print(f"set-up: {count} retained systems in {time.perf_counter() - started:.1f} s")
            hooks = WatchHooks(rollback=lambda spec, reason: None, alert=lambda spec, seen: None)
            settings = Settings(home=Path(home))
            times = []
            for _ in range(rounds):
                state = WatchState(readiness_every=timedelta(days=1))
                report = asyncio.run(sweep_once(ledger, specs, hooks, state, settings=settings))
                assert report.probes == count and report.failed == 0, report.describe()
                times.append(report.duration_s)
                print(f"  sweep: {report.describe()}")
            print(
                f"watch sweep of {count} systems: median {statistics.median(times):.2f} s over {rounds} (target ≤ 3 s)"
            )
            ledger.dispose()
    finally:
        stop.set()
        server.join(5)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
