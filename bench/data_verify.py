"""Benchmark: data verification of 1,000,000-row table pairs with mixed column types.

Pairs: PostgreSQL -> PostgreSQL, MariaDB -> MariaDB and MariaDB -> PostgreSQL (the last compared in
the normal form of values: tinyint(1) against boolean, DATETIME in Asia/Shanghai against timestamptz,
...). For each pair, in a process of its own, prints rows per second of `verify_databases` (count +
checksum, both sides; median of ROUNDS), the peak RSS of the verifying processes, the ratio to a
baseline measured in the same run (simply streaming both tables to the client), and the load
average beside the figures. Usage: .venv/bin/python bench/data_verify.py [ROWS] [ROUNDS] [PAIR ...]
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
import uuid

import sqlalchemy as sa

from tasks.data import verify_databases
from tasks.engines import base

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
MARIADB = "mysql+mysqldb://root@127.0.0.1:3306/{name}?charset=utf8mb4"
PAIRS = {"pg-pg": ("pg", "pg"), "mariadb-mariadb": ("mariadb", "mariadb"), "mariadb-pg": ("mariadb", "pg")}
FILL = {
    "pg": (
        "CREATE TABLE payments (id bigint PRIMARY KEY, insured_id int, active boolean, amount numeric(12,2), "
        "ratio double precision, paid_at timestamptz, note varchar(64), code char(8), raw bytea)",
        "INSERT INTO payments SELECT g, g % 50000, g % 2 = 1, (g % 100000) / 100.0, g / 8.0, "
        "timestamptz '2026-01-01 00:00:00+08' + g * interval '1 second', '缴费 ' || g, "
        "lpad((g % 1000)::text, 8, '0'), decode(md5(g::text), 'hex') FROM generate_series(1, {rows}) g",
    ),
    "mariadb": (
        "CREATE TABLE payments (id bigint PRIMARY KEY, insured_id int, active tinyint(1), amount decimal(12,2), "
        "ratio double, paid_at datetime(6), note varchar(64), code char(8), raw varbinary(16)) CHARACTER SET utf8mb4",
        "INSERT INTO payments SELECT seq, seq % 50000, seq % 2, (seq % 100000) / 100, seq / 8, "
        "TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND, CONCAT('缴费 ', seq), LPAD(seq % 1000, 8, '0'), "
        "UNHEX(MD5(seq)) FROM seq_1_to_{rows}",
    ),
}


def admin(kind: str) -> sa.Engine:
    url = PG.format(name="postgres") if kind == "pg" else MARIADB.format(name="")
    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


def make_db(kind: str, rows: int) -> tuple[str, str]:
    name = f"bench_dv_{uuid.uuid4().hex[:8]}"
    engine = admin(kind)
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"' if kind == "pg" else f"CREATE DATABASE `{name}`"))
    engine.dispose()
    url = (PG if kind == "pg" else MARIADB).format(name=name)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for statement in FILL[kind]:
            connection.exec_driver_sql(statement.format(rows=rows), execution_options={"no_parameters": True})
    engine.dispose()
    return name, url


def drop_db(kind: str, name: str) -> None:
    engine = admin(kind)
    with engine.connect() as connection:
        connection.execute(
            sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' if kind == "pg" else f"DROP DATABASE `{name}`")
        )
    engine.dispose()


def read_all(url: str) -> int:
    engine = sa.create_engine(url)
    count = 0
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=50_000).exec_driver_sql(
            "SELECT * FROM payments"
        )
        for partition in result.partitions():
            count += len(partition)
    engine.dispose()
    return count


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def run_pair(pair: str, rows: int, rounds: int) -> None:
    kinds = PAIRS[pair]
    made = [make_db(kind, rows) for kind in kinds]
    urls = [url for _, url in made]
    verify_s, single_s, read_s, loads = [], [], [], []
    parts = base.PARTS
    try:
        for _ in range(rounds):  # alternating: key ranges on PARTS connections per side, then one query per side
            for spent, n in ((verify_s, parts), (single_s, 1)):
                base.PARTS = n
                started = time.perf_counter()
                result = verify_databases(urls[0], urls[1], ["payments"])
                spent.append(time.perf_counter() - started)
                loads.append(os.getloadavg()[0])
                assert result.matches and result.rows == rows, result.tables[0].describe()
        base.PARTS = parts
        peak_mb = peak_rss_mb()  # before the baseline reads
        for _ in range(rounds):
            started = time.perf_counter()
            read_all(urls[0]) + read_all(urls[1])
            read_s.append(time.perf_counter() - started)
    finally:
        for kind, (name, _) in zip(kinds, made, strict=True):
            drop_db(kind, name)
    v, s, r = statistics.median(verify_s), statistics.median(single_s), statistics.median(read_s)
    method = result.tables[0].source.method + " / " + result.tables[0].target.method
    print(f"{pair}: rows per table {rows:,}; rounds {rounds}; checksum {method}; {parts} key ranges per side")
    print(f"  verify: median {v:.2f} s = {rows / v:,.0f} rows/s (target >= 200,000); peak RSS {peak_mb:.0f} MB")
    print(f"  one query per side (no key ranges): median {s:.2f} s = {rows / s:,.0f} rows/s; ratio {s / v:.2f}x")
    print(f"  baseline (stream both tables to the client): median {r:.2f} s; ratio verify/baseline {v / r:.2f}x")
    print(f"  load average (1 min) while verifying: {', '.join(f'{x:.1f}' for x in loads)}; now {os.getloadavg()}")


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    pairs = sys.argv[3:] or list(PAIRS)
    if len(pairs) == 1:
        run_pair(pairs[0], rows, rounds)
        return
    print(f"{os.cpu_count()} CPUs; load average at start: {os.getloadavg()}", flush=True)
    for pair in pairs:  # each pair in a process of its own: its peak RSS is its own
        subprocess.run([sys.executable, __file__, str(rows), str(rounds), pair], check=True)


if __name__ == "__main__":
    main()
