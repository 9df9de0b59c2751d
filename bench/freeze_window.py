"""Benchmark: the write-freeze window of a PostgreSQL system with logical replication, against a dump-and-restore.

Two clusters of our own (initdb, wal_level=logical, loopback; tests/fixtures/pg_cluster.py), a
payments table of ROWS rows on the original, an empty copy of the schema on the cloud. The cloud
copy subscribes (start_forward) and copies the table before any freeze. A steady, bounded write load
(RATE inserts per second) runs on the original; the freeze stops it, and the window is freeze ->
``wait_caught_up`` returned (the switch point). The direction is then turned (``turn_around``),
timed on its own. Baseline, same run: with writes frozen, ``pg_dump -t payments | psql`` into a
fresh database of the cloud cluster (today's final copy, without its verification). Prints both
windows (median of ROUNDS freezes) and their ratio.

Usage: .venv/bin/python bench/freeze_window.py [ROWS] [ROUNDS] [RATE]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.replication import drop_all, start_forward, turn_around, wait_caught_up
from tests.fixtures.pg_cluster import PG_BIN, PgPair, start_pair, stop_pair

SCHEMA = (
    "CREATE TABLE payments (id bigserial PRIMARY KEY, insured_id bigint NOT NULL, amount numeric(12,2) NOT NULL, "
    "paid_at timestamptz NOT NULL, note text)"
)
FILL = (
    "INSERT INTO payments (insured_id, amount, paid_at, note) SELECT g %% 50000, (g %% 100000) / 100.0, "
    "timestamptz '2026-01-01' + g * interval '1 second', 'payment ' || g FROM generate_series(1, %s) g"
)
TABLES = ["public.payments"]


class Load:
    """RATE inserts per second on the original, one commit each, until frozen."""

    def __init__(self, conninfo: str, rate: float) -> None:
        self.conninfo, self.rate, self.written = conninfo, rate, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def freeze(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as connection:
            started = time.monotonic()
            while not self._stop.is_set():
                connection.execute(
                    "INSERT INTO payments (insured_id, amount, paid_at, note) VALUES (1, 1.00, now(), 'load')"
                )
                self.written += 1
                self._stop.wait(max(0.0, started + self.written / self.rate - time.monotonic()))


def count(conninfo: str) -> int:
    with psycopg.connect(conninfo) as connection:
        row = connection.execute("SELECT count(*) FROM payments").fetchone()
    return int(row[0]) if row else -1


def database(pair: PgPair, side: str, rows: int) -> tuple[str, str]:
    cluster = getattr(pair, side)
    name = cluster.create_database(f"bench_{side}")
    with psycopg.connect(cluster.conninfo(name), autocommit=True) as connection:
        connection.execute(SCHEMA)
        if rows:
            connection.execute(FILL, [rows])
            connection.execute("VACUUM ANALYZE payments")
    return cluster.url(name), cluster.conninfo(name)


def replicated_window(pair: PgPair, rows: int, rounds: int, rate: float) -> tuple[list[float], float, float]:
    system = f"bench-{uuid.uuid4().hex[:8]}"
    (original_url, original), (cloud_url, cloud_info) = database(pair, "original", rows), database(pair, "cloud", 0)
    started = time.perf_counter()
    start_forward(system, original_url, cloud_url, TABLES)
    wait_caught_up(system, original_url, cloud_url, timeout_s=1800)
    initial_s = time.perf_counter() - started
    windows = []
    try:
        for _ in range(rounds):
            load = Load(original, rate).start()
            time.sleep(3)  # the load runs a while before the freeze
            frozen = time.perf_counter()
            load.freeze()
            wait_caught_up(system, original_url, cloud_url, timeout_s=300)
            windows.append(time.perf_counter() - frozen)
            assert count(original) == count(cloud_info), "the cloud copy misses rows after catch-up"
        started = time.perf_counter()
        turn_around(system, original_url, cloud_url, TABLES)
        turn_s = time.perf_counter() - started
    finally:
        drop_all(system, original_url, cloud_url)
    return windows, initial_s, turn_s


def dump_restore_window(pair: PgPair, rows: int, rounds: int) -> list[float]:
    _, original = database(pair, "original", rows)
    windows = []
    for _ in range(rounds):
        target = pair.cloud.create_database("bench_restore")
        started = time.perf_counter()
        dump = subprocess.Popen([str(PG_BIN / "pg_dump"), "-t", "payments", "-d", original], stdout=subprocess.PIPE)
        subprocess.run(
            [str(PG_BIN / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-d", pair.cloud.conninfo(target)],
            stdin=dump.stdout,
            stdout=subprocess.DEVNULL,
            check=True,
        )
        assert dump.wait() == 0
        windows.append(time.perf_counter() - started)
    return windows


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    rate = float(sys.argv[3]) if len(sys.argv) > 3 else 200.0
    pair = start_pair()
    try:
        windows, initial_s, turn_s = replicated_window(pair, rows, rounds, rate)
        baseline = dump_restore_window(pair, rows, rounds)
    finally:
        stop_pair(pair)
    w, b = statistics.median(windows), statistics.median(baseline)
    print(f"rows: {rows:,}; rounds: {rounds}; write load: {rate:g} inserts/s on the original until the freeze")
    print(f"initial copy by the subscription (before any freeze, not in the window): {initial_s:.1f} s")
    print(
        f"freeze window with logical replication (freeze -> caught up): median {w:.3f} s "
        f"(all: {', '.join(f'{x:.3f}' for x in windows)}); target <= 5 s"
    )
    print(f"turn_around after the switch (reverse slot, drop forward, sequences, subscribe): {turn_s:.3f} s")
    print(f"baseline pg_dump -t payments | psql (writes frozen): median {b:.2f} s")
    print(f"ratio baseline/replication: {b / w:,.0f}x")


if __name__ == "__main__":
    main()
