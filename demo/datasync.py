"""Copy the sample application's data from one database to another (the final data sync).

Between two SQLite files it uses SQLite's online backup API, which copies a consistent snapshot
even while the source is being read or written. Any other pair of SQLAlchemy URLs (e.g. SQLite to
PostgreSQL) is copied table by table inside one target transaction.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url

from demo.sampleapp.db import TABLES, make_engine, metadata, reset_sequences, row_counts

_CHUNK = 5000


def sqlite_path(url: str) -> Path | None:
    """Return the file of a SQLite URL, or None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def copy_database(source_url: str, target_url: str) -> dict[str, int]:
    """Replace the target's tables with the source's rows; return the target's row counts."""
    source_file, target_file = sqlite_path(source_url), sqlite_path(target_url)
    if source_file is not None and target_file is not None:
        _sqlite_backup(source_file, target_file)
    else:
        _copy_rows(source_url, target_url)
    engine = make_engine(target_url)
    try:
        return row_counts(engine)
    finally:
        engine.dispose()


def _sqlite_backup(source: Path, target: Path) -> None:
    """Copy ``source`` onto ``target`` in one step with the SQLite backup API."""
    if not source.exists():
        raise FileNotFoundError(f"source database {source} does not exist")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=10)
    dst = sqlite3.connect(target, timeout=10)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _copy_rows(source_url: str, target_url: str) -> None:
    """Copy every table row by row: empty the target, then insert the source's rows."""
    source, target = make_engine(source_url), make_engine(target_url)
    try:
        metadata.create_all(target, tables=list(TABLES))
        with source.connect() as src, target.begin() as dst:
            for table in reversed(TABLES):
                dst.execute(table.delete())
            for table in TABLES:
                _copy_table(src, dst, table)
            reset_sequences(dst)
    finally:
        source.dispose()
        target.dispose()


def _copy_table(src: Connection, dst: Connection, table: sa.Table) -> None:
    """Stream ``table`` from ``src`` into ``dst`` in chunks, in primary-key order."""
    result = src.execution_options(stream_results=True).execute(sa.select(table).order_by(*table.primary_key.columns))
    while chunk := result.fetchmany(_CHUNK):
        dst.execute(table.insert(), [dict(row._mapping) for row in chunk])
