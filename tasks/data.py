"""Data verification (step kind ``data_verify``): the original and migrated databases hold the same rows.

Per table it first matches the two sides' columns by name and kind (:mod:`tasks.engines.normal_form`)
and refuses a pair that differs, naming the columns, before any row is read. It then compares row
counts and an order-independent checksum of every row in its normal form, so the same data compares
equal across engines (MariaDB/MySQL -> PostgreSQL: tinyint(1) and boolean, DATETIME and timestamptz,
...). Each side computes its checksum on its server where the engine's SQL can write the normal form
(PostgreSQL, MariaDB), else streams the rows in chunks (SQLite) — in a worker process when the table
is big; memory stays bounded by one chunk. On a mismatch it walks both tables in key order (code
points, never a collation) and names the first differing keys with their values in normal form,
secrets masked. Engines are adapters in :mod:`tasks.engines`.

Given an exported snapshot per side (PostgreSQL: ``pg_export_snapshot()`` or a replication slot's), each
side is read as it was in its snapshot: every connection of its adapter first enters it (a REPEATABLE READ
transaction, ``SET TRANSACTION SNAPSHOT``), whatever was written since; its connections share it.
"""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from cutover.errors import DataMismatch, LedgerError, SchemaMismatch
from cutover.secrets import redact
from tasks.engines import (
    Engine,
    NormalForm,
    SessionSetup,
    TableDigest,
    open_engine,
    snapshot_setup,
    stream_digest,
)
from tasks.engines.base import streamed_digest
from tasks.engines.normal_form import Plan, SchemasDiffer, key_value, plan_pair

_PARALLEL_FROM_ROWS = 100_000
_FIRST_KEYS = 10
_THEN = "Nothing was switched; find why the sync missed these rows, fix it, and run the cutover again."
#: Columns whose values a report never shows (masked as ***), besides every registered secret.
SECRET_COLUMNS = re.compile(r"pass(word|wd)?|pwd|secret|token|api_?key|private|credential|salt", re.IGNORECASE)


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
    form: NormalForm | None = None,
    source_snapshot: str | None = None,
    target_snapshot: str | None = None,
) -> DataVerification:
    """Compare ``tables`` between the two databases (each in its exported snapshot, when given); never raises
    on a mismatch of rows (see raise_for_mismatch), raises SchemaMismatch when a table's columns differ (before
    reading rows) and ConfigurationError when a snapshot is given for an engine that cannot export one."""
    keys = keys or {}
    form = form or NormalForm()
    setups = snapshot_setup(source_url, source_snapshot), snapshot_setup(target_url, target_snapshot)
    try:
        with ExitStack() as stack:
            sides = _Side.open(source_url, stack, setups[0]), _Side.open(target_url, stack, setups[1])
            plans = _plans(sides, tables, keys, form)
            digests = _digests(sides, plans, chunk_rows)
            return DataVerification([_compare(sides, plans[t], chunk_rows, *digests[t]) for t in tables])
    except SQLAlchemyError as exc:
        raise LedgerError(redact(f"data verification could not read the databases: {exc}")) from exc


@dataclass(frozen=True)
class _Side:
    """One database of the pair: its URL and session setup (for worker processes) and its adapter."""

    url: str
    engine: Engine
    setup: SessionSetup | None = None

    @classmethod
    def open(cls, url: str, stack: ExitStack, setup: SessionSetup | None = None) -> _Side:
        """``setup`` runs first on each connection (e.g. PostgreSQL's SET TRANSACTION SNAPSHOT)."""
        engine = open_engine(url, setup)
        stack.callback(engine.dispose)
        return cls(url, engine, setup)


def _plans(
    sides: tuple[_Side, _Side], tables: Sequence[str], keys: dict[str, list[str]], form: NormalForm
) -> dict[str, tuple[Plan, Plan]]:
    """Every table's pair plan; refuses, naming each table's columns, when any pair does not match."""
    plans: dict[str, tuple[Plan, Plan]] = {}
    problems: list[str] = []
    for table in tables:
        try:
            plans[table] = plan_pair(sides[0].engine.shape(table), sides[1].engine.shape(table), keys.get(table), form)
        except SchemasDiffer as exc:
            problems.append(f"{table}: " + ", ".join(exc.problems))
    if problems:
        raise SchemaMismatch(
            "the tables' columns do not match between the source and the target, so no row was compared — "
            + "; ".join(problems)
            + ". Make the target's schema match the source's (same column names; compatible types, the same "
            "DECIMAL scale), or name the tables that do match, and run the verification again."
        )
    return plans


def _digests(
    sides: tuple[_Side, _Side], plans: dict[str, tuple[Plan, Plan]], chunk_rows: int
) -> dict[str, tuple[TableDigest, TableDigest]]:
    """Both sides of every table, each side on its server where it can, else streamed; in parallel."""
    found = _native(sides, plans)
    rest = [t for t in plans if t not in found]
    with ThreadPoolExecutor(max_workers=2) as threads, _pool() as processes:
        futures = {
            t: tuple(
                threads.submit(_side_digest, side, plan, chunk_rows, processes)
                for side, plan in zip(sides, plans[t], strict=True)
            )
            for t in rest
        }
        found.update({t: (a.result(), b.result()) for t, (a, b) in futures.items()})
    return found


def _side_digest(side: _Side, plan: Plan, chunk_rows: int, processes: Executor) -> TableDigest:
    digest = side.engine.pushed_down_digest(plan)
    if digest is not None:
        return digest
    if side.engine.count(plan.table) >= _PARALLEL_FROM_ROWS:
        return processes.submit(stream_digest, side.url, plan, chunk_rows, side.setup).result()
    return streamed_digest(side.engine, plan, chunk_rows)


def _native(
    sides: tuple[_Side, _Side], plans: dict[str, tuple[Plan, Plan]]
) -> dict[str, tuple[TableDigest, TableDigest]]:
    """Both sides on the same kind of engine with the same declared types: the engine hashes its own text
    of the values (fastest, PostgreSQL and MariaDB); the tables that differ that way, or that the engine
    cannot hash so, are computed again in normal form."""
    a, b = sides[0].engine, sides[1].engine
    if a.name != b.name:
        return {}
    same = {
        t: p
        for t, p in plans.items()
        if [f.column.declared for f in p[0].fields] == [f.column.declared for f in p[1].fields]
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {t: (pool.submit(a.native_digest, p), pool.submit(b.native_digest, q)) for t, (p, q) in same.items()}
        digests = {t: (x.result(), y.result()) for t, (x, y) in futures.items()}
    return {
        t: (x, y)
        for t, (x, y) in digests.items()
        if x is not None and y is not None and (x.rows, x.checksum) == (y.rows, y.checksum)
    }


def _pool() -> Executor:
    return ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))


def _compare(
    sides: tuple[_Side, _Side], plans: tuple[Plan, Plan], chunk_rows: int, source: TableDigest, target: TableDigest
) -> TableComparison:
    comparison = TableComparison(plans[0].table, source, target)
    if comparison.matches:
        return comparison
    found = first_differing_keys(sides[0].engine, sides[1].engine, plans, chunk_rows)
    return TableComparison(plans[0].table, source, target, found)


Keyed = tuple[tuple[Any, ...], list[str | None]]


def first_differing_keys(
    source: Engine, target: Engine, plans: tuple[Plan, Plan], chunk_rows: int, limit: int = _FIRST_KEYS
) -> list[str]:
    """Walk both tables in key order and name the first keys whose rows differ or are missing, with the
    differing values in normal form (secrets masked)."""
    found: list[str] = []
    left, right = _keyed(source, plans[0], chunk_rows), _keyed(target, plans[1], chunk_rows)
    a, b = next(left, None), next(right, None)
    while (a is not None or b is not None) and len(found) < limit:
        if a is not None and (b is None or a[0] < b[0]):
            found.append(f"{_show(plans[0], a[1])} (only in source)")
            a = next(left, None)
        elif b is not None and (a is None or b[0] < a[0]):
            found.append(f"{_show(plans[1], b[1])} (only in target)")
            b = next(right, None)
        else:
            assert a is not None and b is not None
            if a[1] != b[1]:
                found.append(f"{_show(plans[0], a[1])} (values differ: {_differences(plans[0], a[1], b[1])})")
            a, b = next(left, None), next(right, None)
    return [redact(f) for f in found]


def _keyed(engine: Engine, plan: Plan, chunk_rows: int) -> Iterator[Keyed]:
    key = [(i, plan.fields[i]) for i in plan.key]
    for texts in engine.texts(plan, chunk_rows, ordered=True):
        yield tuple(key_value(f, texts[i]) for i, f in key), texts


def _show(plan: Plan, texts: list[str | None]) -> str:
    values = [_value(plan.fields[i].column.key, texts[i], quoted=False) for i in plan.key]
    return values[0] if len(values) == 1 else "(" + ", ".join(values) + ")"


def _differences(plan: Plan, source: list[str | None], target: list[str | None]) -> str:
    return ", ".join(
        f"{f.column.key} {_value(f.column.key, a)} in the source, {_value(f.column.key, b)} in the target"
        for f, a, b in zip(plan.fields, source, target, strict=True)
        if a != b
    )


def _value(column: str, text: str | None, *, quoted: bool = True) -> str:
    if text is None:
        return "NULL"
    if SECRET_COLUMNS.search(column):
        return "***"
    return repr(text) if quoted else text
