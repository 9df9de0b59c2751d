"""Benchmark: which MySQL/MariaDB driver streams a 1,000,000-row mixed table fastest (the verification's job).

Fills one table on the MariaDB at 127.0.0.1:3306 (a fresh database, dropped at the end), then per driver
(PyMySQL, mysqlclient, mysql-connector-python) streams every row with an unbuffered cursor and runs the
pushed-down normal-form checksum the verification uses; median of ROUNDS, load average printed beside.
Usage: .venv/bin/python bench/mysql_drivers.py [ROWS] [ROUNDS] [DRIVER ...]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid

import sqlalchemy as sa

SERVER = "127.0.0.1:3306"
DRIVERS = {"PyMySQL": "pymysql", "mysqlclient": "mysqldb", "mysql-connector-python": "mysqlconnector"}
FILL = (
    "CREATE TABLE payments (id bigint primary key, insured_id int, active tinyint(1), amount decimal(12,2), "
    "ratio double, paid_at datetime(6), note varchar(64), code char(8), raw varbinary(16))",
    "INSERT INTO payments SELECT seq, seq % 50000, seq % 2, (seq % 100000) / 100, seq / 7, "
    "TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND, CONCAT('缴费 ', seq), LPAD(seq % 1000, 8, '0'), "
    "UNHEX(MD5(seq)) FROM seq_1_to_{rows}",
)


def url(driver: str, database: str = "") -> str:
    return f"mysql+{driver}://root@{SERVER}/{database}?charset=utf8mb4"


def stream(driver: str, database: str) -> int:
    engine = sa.create_engine(url(driver, database))
    count = 0
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=50_000).execute(
            sa.text("SELECT * FROM payments")
        )
        for partition in result.partitions():
            count += len(partition)
    engine.dispose()
    return count


def pushed_down(driver: str, database: str) -> None:
    from tasks.data import verify_databases

    same = url(driver, database)
    assert verify_databases(same, same, ["payments"]).matches


def timed(job: object, *args: str) -> float:
    started = time.perf_counter()
    job(*args)  # type: ignore[operator]
    return time.perf_counter() - started


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    database = f"bench_drv_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url("mysqldb"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4"))
        connection.execute(sa.text(f"USE `{database}`"))
        connection.execute(sa.text(FILL[0]))
        connection.execute(sa.text(FILL[1].format(rows=rows)))
    try:
        print(f"rows: {rows:,}; rounds: {rounds}; load average before: {os.getloadavg()}")
        for name, driver in DRIVERS.items():
            if sys.argv[3:] and name not in sys.argv[3:]:
                continue
            fetch = statistics.median(timed(stream, driver, database) for _ in range(rounds))
            push = statistics.median(timed(pushed_down, driver, database) for _ in range(rounds))
            print(
                f"{name:24} stream all rows: {fetch:6.2f} s = {rows / fetch:>9,.0f} rows/s; "
                f"pushed-down checksum (both sides): {push:5.2f} s; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS `{database}`"))
        admin.dispose()


if __name__ == "__main__":
    main()
