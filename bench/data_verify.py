"""Benchmark: data verification of a 1,000,000-row PostgreSQL table pair.

Prints rows per second of `verify_databases` (count + checksum, both sides), the peak memory of
the verifying processes, and the ratio to a baseline measured in the same run: simply reading
both tables with a server-side cursor. Usage: .venv/bin/python bench/data_verify.py [ROWS] [ROUNDS]
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
import uuid

import sqlalchemy as sa

from tasks.data import verify_databases

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
FILL = (
    "CREATE TABLE payments (id bigint primary key, insured_id bigint, amount numeric(12,2), "
    "paid_at timestamptz, note text)",
    "INSERT INTO payments SELECT g, g % 50000, (g % 100000) / 100.0, "
    "timestamptz '2026-01-01' + g * interval '1 second', 'payment ' || g FROM generate_series(1, :rows) g",
)


def make_db(admin: sa.Engine, rows: int) -> str:
    name = f"bench_dv_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(FILL[0]))
        connection.execute(sa.text(FILL[1]), {"rows": rows})
    engine.dispose()
    return name


def read_all(url: str) -> int:
    engine = sa.create_engine(url)
    count = 0
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=50_000).execute(
            sa.text("SELECT * FROM payments")
        )
        for partition in result.partitions():
            count += len(partition)
    engine.dispose()
    return count


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    admin = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    names = [make_db(admin, rows), make_db(admin, rows)]
    urls = [f"postgresql+psycopg://postgres@127.0.0.1:5432/{n}" for n in names]
    verify_s, read_s = [], []
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            result = verify_databases(urls[0], urls[1], ["payments"])
            verify_s.append(time.perf_counter() - started)
            assert result.matches and result.rows == rows
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the baseline reads
        for _ in range(rounds):
            started = time.perf_counter()
            read_all(urls[0]) + read_all(urls[1])
            read_s.append(time.perf_counter() - started)
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    v, r = statistics.median(verify_s), statistics.median(read_s)
    print(f"rows per table: {rows:,}; rounds: {rounds}")
    print(f"verify: median {v:.2f} s = {rows / v:,.0f} rows/s (target >= 200,000)")
    print(f"baseline (read both tables sequentially): median {r:.2f} s")
    print(f"ratio verify/baseline: {v / r:.2f}x; peak RSS while verifying: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
