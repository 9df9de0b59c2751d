"""``bench/watch_gap.py --real``: the largest probe gap with a real worker, a real server, real restarts.

A PostgreSQL-backed Prefect server, a PostgreSQL ledger, a cutover worker (``--type cutover``) on
its own pool, the scheduled ``watch-retention/watch`` deployment (a run every ``every`` seconds,
each watching ``every + handover``), and SYSTEMS retained systems whose health check is a
loopback endpoint recording when it was probed. During ``minutes``, the worker is restarted
``restarts`` times at even spacing, alternately with SIGTERM to its process group (as systemd
stops a unit) and ``kill -9`` of the group; a new worker is started at once each time. Printed:
the largest gap between two probes of one system, over the interval (target ≤ 2), the gaps
around each restart, and the load average.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

import tests.fixtures.prefect_server as _servers
from cutover.ledger import Ledger
from flows.deployments import ensure_watch_deployment, ensure_work_pool
from tests.fixtures.ledger import POSTGRES_SERVER, create_database, drop_database
from tests.fixtures.prefect_server import kill_group, postgres_backed_server, start_cutover_worker, using_server
from tests.flows.test_watch_handover import ProbedEndpoint, retained_system
from tests.specbuilder import write_spec

_servers.START_TIMEOUT_S = 300.0  # a benchmark on a busy machine: the server may take minutes to start


@contextmanager
def _pg_ledger() -> Iterator[Ledger]:
    admin = sa.create_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = create_database(admin, prefix="bench_watch_gap")
    ledger = Ledger(f"{POSTGRES_SERVER}/{name}", digest="sm3")
    try:
        ledger.migrate()
        yield ledger
    finally:
        ledger.dispose()
        drop_database(admin, name)
        admin.dispose()


def _gaps(times: list[float], start: float) -> list[tuple[float, float]]:
    """(gap, when it ended) between consecutive probes after ``start``."""
    after = [t for t in times if t >= start]
    return [(b - a, b) for a, b in itertools.pairwise(after)]


def run(minutes: float, restarts: int, systems: int, interval_s: float, every_s: float, handover_s: float) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-watch-gap-real-"))
    pool = "bench-watch-gap"
    with (
        _pg_ledger() as ledger,
        ProbedEndpoint() as endpoint,
        postgres_backed_server(work / "prefect") as server,
        using_server(server),
    ):
        specs = [
            retained_system(ledger, endpoint, interval_s=interval_s, failures_to_rollback=3) for _ in range(systems)
        ]
        for spec in specs:
            write_spec(spec, work / "specs")
        env = {
            **server.client_env(),
            "PREFECT_WORKER_QUERY_SECONDS": os.environ.get("PREFECT_WORKER_QUERY_SECONDS", "5"),
            "CUTOVER_DATABASE_URL": ledger.safe_url,  # no password on the local PostgreSQL
            "CUTOVER_SPECS_DIR": str(work / "specs"),
            "CUTOVER_HOME": str(work / "home"),
        }
        ensure_work_pool(pool)
        ensure_watch_deployment(
            every=timedelta(seconds=every_s), handover=timedelta(seconds=handover_s), work_pool=pool
        )
        worker = start_cutover_worker(pool, env, work / "worker.log")
        ids = [s.system.id for s in specs]
        try:
            deadline = time.monotonic() + 300
            while not all(endpoint.seen[i] for i in ids) and time.monotonic() < deadline:
                time.sleep(0.5)
            start = max(endpoint.seen[i][0] for i in ids)
            print(f"  first probes {start - (deadline - 300):.1f} s after the worker started; watching {minutes:g} min")
            end = start + minutes * 60
            marks = [start + (n + 1) * (end - start) / (restarts + 1) for n in range(restarts)]
            kills: list[tuple[float, str]] = []
            for n, mark in enumerate(marks):
                time.sleep(max(0.0, mark - time.monotonic()))
                how = "SIGTERM" if n % 2 == 0 else "kill -9"
                kills.append((time.monotonic(), how))
                kill_group(worker, hard=how == "kill -9")
                worker = start_cutover_worker(pool, env, work / "worker.log")
            time.sleep(max(0.0, end - time.monotonic()))
        finally:
            kill_group(worker)
        _report(endpoint, ids, start, end, kills, interval_s, work)


def _report(
    endpoint: ProbedEndpoint,
    ids: list[str],
    start: float,
    end: float,
    kills: list[tuple[float, str]],
    interval_s: float,
    work: Path,
) -> None:
    # the end counts as a probe: a system no longer probed at all shows as one long gap, not none
    gaps = [g for i in ids for g in _gaps([*(t for t in endpoint.seen[i] if t <= end), end], start)]
    largest = max((g for g, _ in gaps), default=0.0)
    load = os.getloadavg()
    print(
        f"  largest gap between two probes of one system: {largest:.1f} s = {largest / interval_s:.2f} × interval "
        f"(target ≤ 2 × {interval_s:g} s: {'ok' if largest <= 2 * interval_s else 'OVER'}); "
        f"{sum(len(endpoint.seen[i]) for i in ids)} probes; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    for at, how in kills:
        around = max((g for g, ended in gaps if ended >= at and ended - g <= at), default=0.0)  # the gap spanning it
        print(
            f"  restart by {how} at +{at - start:.0f} s: the gap across it {around:.1f} s = {around / interval_s:.2f} ×"
        )
    print(f"  (worker log: {work / 'worker.log'})")
