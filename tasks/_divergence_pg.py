"""PostgreSQL's own row counters (``pg_stat_user_tables``): inserted, updated, deleted since the server began counting.

A backend reports its counts when it goes idle, at most once a second (PostgreSQL 15), so a figure
may be a few seconds old; a crash or ``pg_stat_reset()`` sets the counters back to zero, which shows
as a counter smaller than at cutover (the caller says so instead of guessing).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

Counters = tuple[int, int, int]  # n_tup_ins, n_tup_upd, n_tup_del

_COUNTERS = sa.text("SELECT n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables WHERE relid = to_regclass(:name)")


def is_postgresql(url: str) -> bool:
    """True when ``url`` names a PostgreSQL database."""
    return sa.make_url(url).get_backend_name() == "postgresql"


def pg_counters(url: str, tables: Sequence[str]) -> dict[str, Counters | None]:
    """Each table's counters (None: no such table), read on one connection."""
    engine = sa.create_engine(url, pool_pre_ping=False)
    try:
        with engine.connect() as connection:
            found: dict[str, Counters | None] = {}
            for table in tables:
                row = connection.execute(_COUNTERS, {"name": table}).first()
                found[table] = None if row is None else (int(row[0]), int(row[1]), int(row[2]))
            return found
    finally:
        engine.dispose()
