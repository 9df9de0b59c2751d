"""Order-independent digests of database tables, read in chunks (SQLAlchemy Core only).

Kept free of Prefect so worker processes start fast. A row's digest is BLAKE2b-64 of the repr
of its normalised values; a table's checksum is the sum of its rows' digests modulo 2**64, so
row order does not matter and memory stays bounded by one chunk. Values are normalised so the
same data compares equal across engines: aware datetimes become naive UTC, decimals and floats
become normalised decimals, memoryviews become bytes.

On PostgreSQL every reader may take an exported ``snapshot`` (``pg_export_snapshot()``, or a replication
slot's): it then reads the table as it was in that snapshot, in a REPEATABLE READ transaction
(``SET TRANSACTION SNAPSHOT``), whatever was written since; several readers share one snapshot.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

_MOD = 2**64
_SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$")
Normaliser = Callable[[Any], Any]


@dataclass(frozen=True)
class TableDigest:
    """Row count and order-independent checksum of one table, and how it was computed."""

    table: str
    rows: int
    checksum: str
    method: str = "blake2b-64"


def _number(value: Any) -> Any:
    if isinstance(value, float):
        value = Decimal(repr(value))
    return value.normalize() if isinstance(value, Decimal) else value


def _moment(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, float | Decimal):
        return _number(value)
    return bytes(value) if isinstance(value, memoryview) else _moment(value)


def _same(value: Any) -> Any:
    return value


def _normaliser(column: sa.Column[Any]) -> Normaliser:
    if isinstance(column.type, sa.Numeric):
        return _number
    if isinstance(column.type, sa.DateTime):
        return _moment
    if isinstance(column.type, sa.Integer | sa.String | sa.Boolean):
        return _same
    return _plain


def reflect(engine: sa.Engine, name: str) -> sa.Table:
    """The table as the database describes it (``schema.table`` names are split)."""
    schema, _, table = name.rpartition(".")
    return sa.Table(table, sa.MetaData(), autoload_with=engine, schema=schema or None)


def key_columns(table: sa.Table, keys: Sequence[str] | None) -> list[sa.Column[Any]]:
    """The ordering key: the given columns, else the primary key, else every column."""
    if keys:
        return [table.c[k] for k in keys]
    return list(table.primary_key.columns) or list(table.columns)


@contextmanager
def reading(engine: sa.Engine, snapshot: str | None = None) -> Iterator[sa.Connection]:
    """A connection reading now, or in the exported ``snapshot`` (PostgreSQL) when one is given."""
    with engine.connect() as connection:
        if snapshot is not None:
            if not _SNAPSHOT_ID.match(snapshot):
                raise ValueError(f"{snapshot!r} is not an exported snapshot's identifier (e.g. 00000003-0000001B-1)")
            connection.execution_options(isolation_level="REPEATABLE READ")
            connection.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        yield connection


def normalised_rows(
    engine: sa.Engine,
    table: sa.Table,
    chunk_rows: int,
    order_by: Sequence[sa.ColumnElement[Any]] = (),
    snapshot: str | None = None,
) -> Iterator[tuple[Any, ...]]:
    """Every row, normalised, fetched ``chunk_rows`` at a time with a server-side cursor."""
    columns = sorted(table.columns, key=lambda c: c.name)
    normalisers = [_normaliser(c) for c in columns]
    statement = sa.select(*columns).order_by(*order_by)
    with reading(engine, snapshot) as connection:
        result = connection.execution_options(stream_results=True, yield_per=chunk_rows).execute(statement)
        for partition in result.partitions():
            for row in partition:
                yield tuple(f(v) for f, v in zip(normalisers, row, strict=True))


def row_digest(row: tuple[Any, ...]) -> int:
    """A row's 64-bit digest."""
    return int.from_bytes(hashlib.blake2b(repr(row).encode(), digest_size=8).digest(), "big")


def table_digest(url: str, name: str, chunk_rows: int = 50_000, snapshot: str | None = None) -> TableDigest:
    """Count and checksum one table at ``url`` (runs in a worker process for big tables)."""
    engine = sa.create_engine(url)
    try:
        table = reflect(engine, name)
        total, rows = 0, 0
        for row in normalised_rows(engine, table, chunk_rows, snapshot=snapshot):
            total = (total + row_digest(row)) % _MOD
            rows += 1
        return TableDigest(name, rows, f"{total:016x}")
    finally:
        engine.dispose()


def count_rows(url: str, name: str, snapshot: str | None = None) -> int:
    """``SELECT count(*)`` of one table."""
    engine = sa.create_engine(url)
    try:
        table = reflect(engine, name)
        with reading(engine, snapshot) as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


_PG_DIGEST = (
    "SELECT count(*), coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint::numeric), 0) FROM {table} t"
)


def pg_table_digest(url: str, name: str, snapshot: str | None = None) -> TableDigest:
    """Count and checksum computed by PostgreSQL itself (md5 of each row's text, summed mod 2**64).

    Only comparable with another PostgreSQL table of the same column types; the caller falls back
    to :func:`table_digest` when the two differ.
    """
    engine = sa.create_engine(url)
    try:
        table = reflect(engine, name)
        quoted = engine.dialect.identifier_preparer.format_table(table)
        with reading(engine, snapshot) as connection:
            rows, total = connection.execute(sa.text(_PG_DIGEST.format(table=quoted))).one()
        return TableDigest(name, int(rows), f"{int(total) % _MOD:016x}", "postgresql-md5-64")
    finally:
        engine.dispose()
