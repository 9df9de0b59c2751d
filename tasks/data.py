"""Data verification (step kind ``data_verify``): the original and migrated databases hold the same rows.

Per table it compares row counts and an order-independent checksum of all rows
(:mod:`tasks._table_digest`), reading in chunks so memory stays bounded. The two sides are read
in parallel worker processes when the tables are big. On a mismatch it walks both tables in key
order to name the first differing keys. Works on PostgreSQL and SQLite, and between the two.
Given an exported snapshot per side (PostgreSQL), each side is read as it was in its snapshot.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from cutover.errors import DataMismatch, LedgerError
from cutover.secrets import redact
from tasks._table_digest import (
    TableDigest,
    count_rows,
    key_columns,
    normalised_rows,
    pg_table_digest,
    reflect,
    row_digest,
    table_digest,
)

_PARALLEL_FROM_ROWS = 100_000
_FIRST_KEYS = 5
_THEN = "Nothing was switched; find why the sync missed these rows, fix it, and run the cutover again."


@dataclass(frozen=True)
class TableComparison:
    """One table on both sides."""

    table: str
    source: TableDigest
    target: TableDigest
    differing_keys: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return self.source.rows == self.target.rows and self.source.checksum == self.target.checksum

    def describe(self) -> str:
        if self.matches:
            return f"{self.table}: {self.source.rows} rows, checksum {self.source.checksum} on both sides"
        keys = ", ".join(self.differing_keys) or "(none found by key; duplicate rows?)"
        return (
            f"{self.table}: expected the target to match the source row for row; source {self.source.rows} rows / "
            f"{self.source.checksum}, target {self.target.rows} rows / {self.target.checksum}; first differing keys: "
            f"{keys}"
        )


@dataclass(frozen=True)
class DataVerification:
    """Every table's comparison."""

    tables: list[TableComparison]

    @property
    def matches(self) -> bool:
        return all(t.matches for t in self.tables)

    @property
    def rows(self) -> int:
        return sum(t.source.rows for t in self.tables)

    def raise_for_mismatch(self, where: str, *, detail: dict[str, Any] | None = None, then: str = _THEN) -> None:
        """Raise DataMismatch naming each differing table and its first differing keys (``detail`` rides along);
        ``then`` says what happens next."""
        bad = [t.describe() for t in self.tables if not t.matches]
        if bad:
            raise DataMismatch(f"{where}: the databases differ — " + "; ".join(bad) + f". {then}", detail=detail)

    def as_detail(self) -> dict[str, Any]:
        """A JSON-ready summary for the ledger and reports."""
        return {
            t.table: {
                "source_rows": t.source.rows,
                "target_rows": t.target.rows,
                "source_checksum": t.source.checksum,
                "target_checksum": t.target.checksum,
                "matches": t.matches,
                "differing_keys": t.differing_keys,
            }
            for t in self.tables
        }


def verify_databases(
    source_url: str,
    target_url: str,
    tables: Sequence[str],
    *,
    keys: dict[str, list[str]] | None = None,
    chunk_rows: int = 50_000,
    source_snapshot: str | None = None,
    target_snapshot: str | None = None,
) -> DataVerification:
    """Compare ``tables`` between the two databases (each in its exported snapshot, when given); never
    raises on a mismatch (see raise_for_mismatch)."""
    keys = keys or {}
    snaps = (source_snapshot, target_snapshot)
    try:
        digests = _pushed_down(source_url, target_url, tables, snaps)
        if digests is None:
            big = max((count_rows(source_url, t, snaps[0]) for t in tables), default=0) >= _PARALLEL_FROM_ROWS
            digests = _digests(source_url, target_url, tables, chunk_rows, parallel=big, snaps=snaps)
        return DataVerification(
            [_compare(source_url, target_url, t, keys.get(t), chunk_rows, *digests[t], snaps=snaps) for t in tables]
        )
    except SQLAlchemyError as exc:
        raise LedgerError(redact(f"data verification could not read the databases: {exc}")) from exc


Snapshots = tuple[str | None, str | None]  # the source's and the target's exported snapshot, if any


def _digests(
    source_url: str, target_url: str, tables: Sequence[str], chunk_rows: int, *, parallel: bool, snaps: Snapshots
) -> dict[str, tuple[TableDigest, TableDigest]]:
    if not parallel:
        return {
            t: (table_digest(source_url, t, chunk_rows, snaps[0]), table_digest(target_url, t, chunk_rows, snaps[1]))
            for t in tables
        }
    with _pool() as pool:
        futures = {
            t: (
                pool.submit(table_digest, source_url, t, chunk_rows, snaps[0]),
                pool.submit(table_digest, target_url, t, chunk_rows, snaps[1]),
            )
            for t in tables
        }
        return {t: (a.result(), b.result()) for t, (a, b) in futures.items()}


def _pushed_down(
    source_url: str, target_url: str, tables: Sequence[str], snaps: Snapshots
) -> dict[str, tuple[TableDigest, TableDigest]] | None:
    """Both sides PostgreSQL: let the servers hash, in parallel; a table that differs is recomputed in
    Python (the authoritative, type-normalised digest) so a mere column-type difference is not a mismatch."""
    if not (_is_pg(source_url) and _is_pg(target_url)):
        return None
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            t: (
                pool.submit(pg_table_digest, source_url, t, snaps[0]),
                pool.submit(pg_table_digest, target_url, t, snaps[1]),
            )
            for t in tables
        }
        digests = {t: (a.result(), b.result()) for t, (a, b) in futures.items()}
    differing = [t for t, (a, b) in digests.items() if (a.rows, a.checksum) != (b.rows, b.checksum)]
    if differing:
        digests.update(_digests(source_url, target_url, differing, 50_000, parallel=True, snaps=snaps))
    return digests


def _is_pg(url: str) -> bool:
    return sa.make_url(url).get_backend_name() == "postgresql"


def _pool() -> Executor:
    return ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))


def _compare(
    source_url: str,
    target_url: str,
    table: str,
    keys: list[str] | None,
    chunk_rows: int,
    source: TableDigest,
    target: TableDigest,
    *,
    snaps: Snapshots = (None, None),
) -> TableComparison:
    comparison = TableComparison(table, source, target)
    if comparison.matches:
        return comparison
    found = first_differing_keys(source_url, target_url, table, keys, chunk_rows, snaps=snaps)
    return TableComparison(table, source, target, found)


def first_differing_keys(
    source_url: str,
    target_url: str,
    table: str,
    keys: list[str] | None,
    chunk_rows: int,
    limit: int = _FIRST_KEYS,
    *,
    snaps: Snapshots = (None, None),
) -> list[str]:
    """Walk both tables in key order and name the first keys whose rows differ or are missing."""
    found: list[str] = []
    left = _keyed(source_url, table, keys, chunk_rows, snaps[0])
    right = _keyed(target_url, table, keys, chunk_rows, snaps[1])
    a, b = next(left, None), next(right, None)
    while (a is not None or b is not None) and len(found) < limit:
        if a is not None and (b is None or a[0] < b[0]):
            found.append(f"{_show(a[0])} (only in source)")
            a = next(left, None)
        elif b is not None and (a is None or b[0] < a[0]):
            found.append(f"{_show(b[0])} (only in target)")
            b = next(right, None)
        else:
            assert a is not None and b is not None
            if a[1] != b[1]:
                found.append(f"{_show(a[0])} (values differ)")
            a, b = next(left, None), next(right, None)
    return found


def _keyed(
    url: str, name: str, keys: list[str] | None, chunk_rows: int, snapshot: str | None = None
) -> Iterator[tuple[tuple[Any, ...], int]]:
    engine = sa.create_engine(url)
    try:
        table = reflect(engine, name)
        key_cols = key_columns(table, keys)
        order = [_collated(engine, c) for c in key_cols]
        names = sorted(c.name for c in table.columns)
        positions = [names.index(c.name) for c in key_cols]
        for row in normalised_rows(engine, table, chunk_rows, order, snapshot):
            yield tuple(row[p] for p in positions), row_digest(row)
    finally:
        engine.dispose()


def _collated(engine: sa.Engine, column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    if engine.dialect.name == "postgresql" and isinstance(column.type, sa.String):
        return column.collate("C")  # byte order, as SQLite sorts
    return column


def _show(key: tuple[Any, ...]) -> str:
    return str(key[0]) if len(key) == 1 else str(key)
