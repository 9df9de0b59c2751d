"""Benchmark: the write-freeze window of a PostgreSQL system with logical replication and verification on
snapshots, against a dump-and-restore plus full verification inside the window.

Two clusters of our own (initdb, wal_level=logical, loopback; tests/fixtures/pg_cluster.py). The original
holds pgbench's tables (``pgbench -i -s ROWS/100000``: pgbench_accounts has ROWS rows) and a table of the
load's writes; the cloud copy has the schema only. The cloud copy subscribes (``start_forward``) and
copies every table before any freeze (timed, not in the window). A steady, bounded write load (RATE
transactions per second: an account's balance moved and the write recorded in bench_writes, one commit
each) runs on the side that takes traffic.

Each round is the cutover's order (:mod:`tasks.replication_steps`), with the library calls the steps make:
the load stops (the freeze starts), ``wait_caught_up``, ``prepare_switch_on_snapshots`` (the snapshots and
the reverse slot), traffic moves to the cloud copy: the window ends. The verification then reads both
snapshots (``verify_databases`` with them) while the load runs on the cloud copy. Every round but the last
then goes back as a cutover compensated before traffic moved would (the load was not sent to the cloud
copy; the reverse slot is dropped; the load resumes on the original), so the next round freezes again
without copying everything again. The last round sends the load to the cloud copy, verifies on the
snapshots under it, turns the direction (``turn_around``), lets the cloud copy take writes, then rolls
back (load stopped, ``settle_on_original``) and checks zero loss: every write the cloud copy acknowledged
is on the original (count and checksum of every table equal on both sides).

Baseline, same run: writes stopped, ``pg_dump | psql`` of the tables into a fresh database of the cloud
cluster plus today's full verification (``verify_databases``) of it against the original, all inside the
window. Prints both windows (median over ROUNDS) with the load average.

Usage: .venv/bin/python bench/freeze_window.py [--rows N] [--rounds R] [--rate TPS] [--stress] [--no-baseline]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.data import verify_databases
from tasks.replication import (
    drop_all,
    prepare_switch_on_snapshots,
    release_snapshots,
    settle_on_original,
    snapshots_held,
    start_forward,
    turn_around,
    unmark_switch,
    wait_caught_up,
)
from tests.fixtures.pg_cluster import PG_BIN, PgCluster, PgPair, start_pair, stop_pair

PGBENCH_TABLES = ["pgbench_accounts", "pgbench_branches", "pgbench_tellers"]
TABLES = [f"public.{t}" for t in [*PGBENCH_TABLES, "bench_writes"]]
WRITES = "CREATE TABLE bench_writes (id bigserial PRIMARY KEY, aid integer NOT NULL, delta integer NOT NULL)"


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)"


# ---------------------------------------------------------------------------------- the load
@dataclass
class Load:
    """RATE transactions per second on the side that takes traffic; ``acknowledged`` holds each write's id
    (its commit returned), by side. ``stop`` is the freeze: it returns once no transaction is in flight."""

    rate: float
    accounts: int
    acknowledged: dict[str, list[int]] = field(default_factory=dict)
    _target: tuple[str, str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _idle: threading.Event = field(default_factory=threading.Event)
    _quit: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def send_to(self, side: str, conninfo: str) -> None:
        with self._lock:
            self._target = (side, conninfo)
            self._idle.clear()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._target = None
        self._idle.wait()

    def quit(self) -> None:
        self.stop()
        self._quit.set()
        if self._thread is not None:
            self._thread.join()

    def count(self, side: str) -> int:
        return len(self.acknowledged.get(side, []))

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._idle.set()  # never leave stop() waiting on a dead thread

    def _loop(self) -> None:
        rng, connection, connected_to = random.Random(7), None, None
        started, sent = time.monotonic(), 0
        while not self._quit.is_set():
            with self._lock:
                target = self._target
            if target is None:
                self._idle.set()
                time.sleep(0.005)
                started, sent = time.monotonic(), 0
                continue
            if connection is None or connected_to != target:
                if connection is not None:
                    connection.close()
                connection, connected_to = psycopg.connect(target[1], autocommit=False), target
            aid, delta = rng.randint(1, self.accounts), rng.randint(-5000, 5000)
            connection.execute("UPDATE pgbench_accounts SET abalance = abalance + %s WHERE aid = %s", [delta, aid])
            row = connection.execute(
                "INSERT INTO bench_writes (aid, delta) VALUES (%s, %s) RETURNING id", [aid, delta]
            ).fetchone()
            connection.commit()
            assert row is not None
            self.acknowledged.setdefault(target[0], []).append(int(row[0]))
            sent += 1
            time.sleep(max(0.0, started + sent / self.rate - time.monotonic()))
        if connection is not None:
            connection.close()


# -------------------------------------------------------------------------------- databases
def pgbench_init(cluster: PgCluster, database: str, scale: int, steps: str) -> None:
    argv = [str(PG_BIN / "pgbench"), "-i", "-q", "-I", steps, "-s", str(scale)]
    argv += ["-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", database]
    subprocess.run(argv, check=True, capture_output=True, timeout=3600)
    with psycopg.connect(cluster.conninfo(database), autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS pgbench_history")  # no primary key: not replicable
        connection.execute(WRITES)


def count_rows(conninfo: str) -> int:
    with psycopg.connect(conninfo) as connection:
        row = connection.execute("SELECT count(*) FROM pgbench_accounts").fetchone()
    return int(row[0]) if row else -1


def written_ids(conninfo: str) -> set[int]:
    with psycopg.connect(conninfo) as connection:
        return {int(r[0]) for r in connection.execute("SELECT id FROM bench_writes").fetchall()}


# ----------------------------------------------------------------------------- replicated
@dataclass
class Round:
    window_s: float
    catch_up_s: float
    snapshots_s: float
    verify_s: float
    writes_during_verify: int


@dataclass
class Replicated:
    rounds: list[Round]
    initial_copy_s: float
    turn_s: float
    zero_loss: str


def replicated(pair: PgPair, original_db: str, scale: int, rounds: int, rate: float) -> Replicated:
    system, key = f"bench-{uuid.uuid4().hex[:8]}", f"bench-run-{uuid.uuid4().hex[:8]}"
    cloud_db = pair.cloud.create_database("bench_cloud")
    pgbench_init(pair.cloud, cloud_db, scale, "dtp")
    original, cloud = pair.original.url(original_db), pair.cloud.url(cloud_db)
    info = {"original": pair.original.conninfo(original_db), "cloud": pair.cloud.conninfo(cloud_db)}
    load = Load(rate, scale * 100_000)
    started = time.perf_counter()
    start_forward(system, original, cloud, TABLES)
    load.send_to("original", info["original"])
    wait_caught_up(system, original, cloud, timeout_s=7200)
    initial_copy_s = time.perf_counter() - started
    done: list[Round] = []
    try:
        for number in range(1, rounds + 1):
            last = number == rounds
            time.sleep(2)  # the load runs a while before the freeze
            done.append(_one_round(system, key, original, cloud, info, load, last=last))
            if not last:  # compensated before traffic moved: the original takes writes again
                release_snapshots(key)
                unmark_switch(system, cloud)
                load.send_to("original", info["original"])
        started = time.perf_counter()
        turn_around(system, original, cloud, TABLES)
        turn_s = time.perf_counter() - started
        zero_loss = _roll_back_and_check(system, original, cloud, info, load)
    finally:
        load.quit()
        release_snapshots(key)
        drop_all(system, original, cloud)
    return Replicated(done, initial_copy_s, turn_s, zero_loss)


def _one_round(
    system: str, key: str, original: str, cloud: str, info: dict[str, str], load: Load, *, last: bool
) -> Round:
    frozen = time.perf_counter()
    load.stop()  # the freeze: no write in flight on the original from here
    wait_caught_up(system, original, cloud, timeout_s=600)
    caught = time.perf_counter()
    prepare_switch_on_snapshots(system, key, original, cloud, TABLES)
    prepared = time.perf_counter()
    if last:
        load.send_to("cloud", info["cloud"])  # traffic on the cloud copy: the window ends
    switched = time.perf_counter()
    before = load.count("cloud")
    snapshots = snapshots_held(key, original, cloud)
    result = verify_databases(
        original, cloud, TABLES, source_snapshot=snapshots.original, target_snapshot=snapshots.cloud
    )
    verified = time.perf_counter()
    assert result.matches, [t.describe() for t in result.tables if not t.matches]
    return Round(
        window_s=switched - frozen,
        catch_up_s=caught - frozen,
        snapshots_s=prepared - caught,
        verify_s=verified - switched,
        writes_during_verify=load.count("cloud") - before,
    )


def _roll_back_and_check(system: str, original: str, cloud: str, info: dict[str, str], load: Load) -> str:
    """The cloud copy takes writes a while, then the rollback: its load stops, the original catches up."""
    target = load.count("cloud") + max(20, int(load.rate * 2))
    deadline = time.monotonic() + 120
    while load.count("cloud") < target and time.monotonic() < deadline:
        time.sleep(0.05)
    load.stop()  # the cloud copy's writes frozen
    settle_on_original(system, original, cloud, TABLES, timeout_s=600)
    acknowledged = set(load.acknowledged.get("cloud", []))
    missing = acknowledged - written_ids(info["original"])
    same = verify_databases(cloud, original, TABLES)
    assert not missing, f"{len(missing)} writes the cloud copy acknowledged are not on the original"
    assert same.matches, [t.describe() for t in same.tables if not t.matches]
    load.send_to("original", info["original"])  # the original takes writes again
    return (
        f"zero loss: all {len(acknowledged)} writes the cloud copy acknowledged are on the original after the "
        f"rollback; every table's count and checksum equal on both sides ({same.rows:,} rows)"
    )


# -------------------------------------------------------------------------------- baseline
def baseline(pair: PgPair, original_db: str, scale: int, rounds: int, rate: float) -> list[tuple[float, float]]:
    """Per round: (dump-and-restore, verification) seconds, writes stopped throughout."""
    info, url = pair.original.conninfo(original_db), pair.original.url(original_db)
    load = Load(rate, scale * 100_000)
    windows = []
    try:
        for _ in range(rounds):
            load.send_to("original", info)
            time.sleep(2)
            target = pair.cloud.create_database("bench_restore")
            started = time.perf_counter()
            load.stop()
            tables = [arg for t in TABLES for arg in ("-t", t)]
            dump = subprocess.Popen([str(PG_BIN / "pg_dump"), *tables, "-d", info], stdout=subprocess.PIPE)
            subprocess.run(
                [str(PG_BIN / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-d", pair.cloud.conninfo(target)],
                stdin=dump.stdout,
                stdout=subprocess.DEVNULL,
                check=True,
            )
            assert dump.wait() == 0
            copied = time.perf_counter()
            result = verify_databases(url, pair.cloud.url(target), TABLES)
            assert result.matches, [t.describe() for t in result.tables if not t.matches]
            windows.append((copied - started, time.perf_counter() - copied))
            with psycopg.connect(pair.cloud.conninfo(), autocommit=True) as connection:
                connection.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(target)))
    finally:
        load.quit()
    return windows


# ----------------------------------------------------------------------------------- main
@contextlib.contextmanager
def cpu_hogs(enabled: bool, seconds: int) -> Iterator[None]:
    """``stress-ng --cpu 2`` during the measurement only, bounded by ``timeout``; stopped by its own pid."""
    if not enabled:
        yield
        return
    if shutil.which("stress-ng") is None:
        raise SystemExit("--stress needs stress-ng (apt-get install stress-ng)")
    hogs = subprocess.Popen(
        ["timeout", str(seconds), "stress-ng", "--cpu", "2", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        hogs.terminate()
        hogs.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="pgbench_accounts rows (pgbench -s rows/100000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=100.0, help="write transactions per second")
    parser.add_argument("--stress", action="store_true", help="two CPU hogs (stress-ng --cpu 2) while measuring")
    parser.add_argument("--no-baseline", action="store_true", help="skip the dump-and-restore baseline")
    args = parser.parse_args()
    scale = max(1, args.rows // 100_000)
    pair = start_pair()
    original_db = pair.original.create_database("bench_original")
    print(
        f"pgbench -s {scale}: {scale * 100_000:,} rows in pgbench_accounts; {args.rounds} round(s); "
        f"write load {args.rate:g} tx/s; {'with' if args.stress else 'without'} stress-ng --cpu 2",
        flush=True,
    )
    try:
        started = time.perf_counter()
        pgbench_init(pair.original, original_db, scale, "dtGvp")
        print(f"pgbench -i: {time.perf_counter() - started:.1f} s ({loadavg()})", flush=True)
        with cpu_hogs(args.stress, 7200):
            before = loadavg()
            repl = replicated(pair, original_db, scale, args.rounds, args.rate)
            print(f"replicated: done ({loadavg()})", flush=True)
            base = [] if args.no_baseline else baseline(pair, original_db, scale, args.rounds, args.rate)
            after = loadavg()
    finally:
        stop_pair(pair)
    _report(repl, base, before, after)


def _report(repl: Replicated, base: list[tuple[float, float]], before: str, after: str) -> None:
    windows = [r.window_s for r in repl.rounds]
    w = statistics.median(windows)
    print(f"{before} at the start, {after} at the end")
    print(f"initial copy by the subscription (before any freeze, not in the window): {repl.initial_copy_s:.1f} s")
    print(
        f"write-freeze window, freeze -> traffic on the cloud copy: median {w:.3f} s "
        f"(rounds: {', '.join(f'{x:.3f}' for x in windows)}); target <= 5 s"
    )
    for n, r in enumerate(repl.rounds, 1):
        print(
            f"  round {n}: catch-up {r.catch_up_s:.3f} s, snapshots + reverse slot + sequences {r.snapshots_s:.3f} s; "
            f"then, outside the window, verification on the snapshots {r.verify_s:.1f} s"
            + (f" while the cloud copy took {r.writes_during_verify} writes" if r.writes_during_verify else "")
        )
    print(f"turn-around after the verification (the original subscribes to the reverse slot): {repl.turn_s:.3f} s")
    print(repl.zero_loss)
    if base:
        totals = [a + b for a, b in base]
        b = statistics.median(totals)
        print(
            f"baseline window, pg_dump | psql + full verification inside it: median {b:.1f} s "
            f"(rounds: {', '.join(f'{x:.1f} (copy {c:.1f} + verify {v:.1f})' for x, (c, v) in zip(totals, base, strict=True))})"
        )
        print(f"ratio baseline / replicated window: {b / w:,.1f}x")


if __name__ == "__main__":
    main()
