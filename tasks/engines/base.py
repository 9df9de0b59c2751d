"""The one small interface every database engine implements, and its SQLAlchemy-backed base.

An engine adapter reflects a table into a :class:`~tasks.engines.normal_form.Shape` (columns in
normal-form kinds and the primary key), counts rows, computes a table's normal-form checksum on
the server when its SQL can write the normal form (else returns None and the rows are streamed),
and streams rows as normal-form texts, in key order by code point when asked. :class:`SqlEngine`
does all of this through SQLAlchemy Core; an engine module overrides only what its SQL says
differently (how a kind is written as text, how text keys sort by code point, the digest query).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from tasks.engines.normal_form import FIXED_LENGTH, MOD, Column, Field, Kind, Plan, Shape, normalisers, row_digest

#: Runs first on every connection an adapter opens (e.g. PostgreSQL's SET TRANSACTION SNAPSHOT).
SessionSetup = Callable[[sa.Connection], None]

DIGEST_METHOD = "normal-form-md5-64"
#: A table keyed by one integer column is hashed in this many key ranges at once, each on a connection of
#: its own (a server runs one query on one core); the ranges' sums add up to the whole table's checksum.
PARTS = 4
_PARTS_FROM_ROWS = 100_000


@dataclass(frozen=True)
class TableDigest:
    """Row count and order-independent checksum of one table, and how it was computed."""

    table: str
    rows: int
    checksum: str
    method: str = DIGEST_METHOD


class Engine(Protocol):
    """What the verification and the divergence need of a database engine."""

    name: str

    def shape(self, table: str) -> Shape:
        """The table's columns (in name order, with their kinds) and primary key."""

    def count(self, table: str) -> int:
        """``SELECT count(*)``."""

    def pushed_down_digest(self, plan: Plan) -> TableDigest | None:
        """The normal-form checksum computed by the server, or None when its SQL cannot write the normal form."""

    def native_digest(self, plan: Plan) -> TableDigest | None:
        """A faster checksum in the engine's own text of values, comparable only with the same engine and the
        same declared types (a difference is then checked again in normal form); None: the engine has none."""

    def texts(self, plan: Plan, chunk_rows: int, *, ordered: bool = False) -> Iterator[list[str | None]]:
        """Every row as normal-form texts, ``chunk_rows`` at a time; in key order (code points) when ``ordered``."""

    def dispose(self) -> None:
        """Close the engine's connections."""


class SqlEngine:
    """An engine reached through SQLAlchemy; subclasses say how their SQL writes the normal form."""

    name = "sql"

    def __init__(self, url: str, setup: SessionSetup | None = None) -> None:
        self.engine = sa.create_engine(url)
        self.setup = setup

    # ------------------------------------------------------------------ the interface
    def shape(self, table: str) -> Shape:
        reflected = self.reflect(table)
        columns = sorted((self.column(c) for c in reflected.columns), key=lambda c: c.key)
        return Shape(table, tuple(columns), tuple(c.name for c in reflected.primary_key.columns))

    def count(self, table: str) -> int:
        with self.connect() as connection:
            return int(connection.exec_driver_sql(f"SELECT count(*) FROM {self.table_sql(table)}").scalar_one())  # noqa: S608 (a quoted identifier)

    def pushed_down_digest(self, plan: Plan) -> TableDigest | None:
        texts = [self.text_sql(f, plan) for f in plan.fields]
        if any(t is None for t in texts):
            return None
        fields = [(t, FIXED_LENGTH.get(f.kind.value)) for t, f in zip(texts, plan.fields, strict=True) if t is not None]
        table = self.table_sql(plan.table)
        if self.digest_sql(fields, table) is None:
            return None
        rows, total = self.summed(plan, lambda where: self.digest_sql(fields, table, where) or "")
        return TableDigest(plan.table, rows, f"{total % MOD:016x}", f"{DIGEST_METHOD} (on the server)")

    def native_digest(self, plan: Plan) -> TableDigest | None:
        return None

    def texts(self, plan: Plan, chunk_rows: int, *, ordered: bool = False) -> Iterator[list[str | None]]:
        columns = ", ".join(self.quote(f.column.name) for f in plan.fields)
        query = f"SELECT {columns} FROM {self.table_sql(plan.table)}"  # noqa: S608 (quoted identifiers)
        if ordered:
            query += " ORDER BY " + ", ".join(self.order_sql(f) for f in plan.key_fields)
        convert = normalisers(plan)
        with self.connect() as connection:
            options = {"stream_results": True, "yield_per": chunk_rows, "no_parameters": True}
            result = connection.execution_options(**options).exec_driver_sql(query)
            for partition in result.partitions():
                for row in partition:
                    yield [f(v) for f, v in zip(convert, row, strict=True)]

    def dispose(self) -> None:
        self.engine.dispose()

    # --------------------------------------------------------- what an engine may override
    def column(self, column: sa.Column[Any]) -> Column:
        """A reflected column in normal-form terms (SQLAlchemy's generic types)."""
        kind, scale, aware = _generic_kind(column.type)
        return Column(column.name, kind, self.declared(column), scale, aware)

    def text_sql(self, f: Field, plan: Plan) -> str | None:
        """SQL writing the field's normal-form text (NULL for NULL), or None: this engine cannot."""
        return None

    def digest_sql(self, fields: list[tuple[str, int | None]], table: str, where: str = "") -> str | None:
        """The query returning (rows, sum of row digests) from the fields' text expressions (each with its
        fixed length, when its kind has one) of the rows ``where`` selects (a WHERE clause, or ""), or None:
        this engine cannot."""
        return None

    def summed(self, plan: Plan, query: Callable[[str], str]) -> tuple[int, int]:
        """(rows, sum) returned by ``query(where)`` over the whole table: in key ranges on several connections
        at once when the table is keyed by one integer column (each in the session ``setup`` enters)."""

        def one(where: str) -> tuple[int, int]:
            with self.connect() as connection:
                rows, total = connection.exec_driver_sql(query(where), execution_options={"no_parameters": True}).one()
                return int(rows), int(total or 0)

        ranges = self.key_ranges(plan)
        if len(ranges) == 1:
            return one(ranges[0])
        with ThreadPoolExecutor(max_workers=len(ranges)) as pool:
            found = list(pool.map(one, ranges))
        return sum(r for r, _ in found), sum(t for _, t in found)

    def key_ranges(self, plan: Plan, parts: int | None = None) -> list[str]:
        """WHERE clauses splitting the table into ``parts`` (default :data:`PARTS`) ranges of its one integer
        key, together every row (open-ended at both ends, NULL keys in the first); [""] when the table is
        small or keyed otherwise."""
        key, parts = plan.key_fields, PARTS if parts is None else parts
        if parts < 2 or len(key) != 1 or key[0].column.kind is not Kind.INTEGER:
            return [""]
        q = self.quote(key[0].column.name)
        with self.connect() as connection:
            low, high = connection.exec_driver_sql(f"SELECT MIN({q}), MAX({q}) FROM {self.table_sql(plan.table)}").one()  # noqa: S608 (a quoted identifier)
        if low is None or int(high) - int(low) < _PARTS_FROM_ROWS:
            return [""]
        bounds = [int(low) + (int(high) - int(low)) * i // parts for i in range(1, parts)]
        first = f" WHERE ({q} < {bounds[0]} OR {q} IS NULL)"
        middle = [f" WHERE {q} >= {a} AND {q} < {b}" for a, b in itertools.pairwise(bounds)]
        return [first, *middle, f" WHERE {q} >= {bounds[-1]}"]

    def order_sql(self, f: Field) -> str:
        """How a key field sorts: by value, and text by its code points (never by a collation)."""
        return self.quote(f.column.name)

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as connection:
            if self.setup is not None:
                self.setup(connection)
            yield connection

    # -------------------------------------------------------------------------- helpers
    def reflect(self, name: str) -> sa.Table:
        schema, _, table = name.rpartition(".")
        return sa.Table(table, sa.MetaData(), autoload_with=self.engine, schema=schema or None)

    def quote(self, name: str) -> str:
        return str(self.engine.dialect.identifier_preparer.quote(name))

    def table_sql(self, name: str) -> str:
        schema, _, table = name.rpartition(".")
        return f"{self.quote(schema)}.{self.quote(table)}" if schema else self.quote(table)

    def declared(self, column: sa.Column[Any]) -> str:
        try:
            return str(column.type.compile(dialect=self.engine.dialect))
        except sa.exc.CompileError:
            return repr(column.type)


def _generic_kind(t: sa.types.TypeEngine[Any]) -> tuple[Kind, int | None, bool]:
    if isinstance(t, sa.Boolean):
        return Kind.BOOLEAN, None, False
    if isinstance(t, sa.Integer):
        return Kind.INTEGER, None, False
    if isinstance(t, sa.Float):
        return Kind.FLOAT, None, False
    if isinstance(t, sa.Numeric):
        return Kind.DECIMAL, t.scale, False
    if isinstance(t, sa.CHAR):
        return Kind.CHAR, None, False
    if isinstance(t, sa.String):
        return Kind.TEXT, None, False
    if isinstance(t, sa.LargeBinary | sa.types._Binary):
        return Kind.BINARY, None, False
    if isinstance(t, sa.DateTime):
        return Kind.TIMESTAMP, None, bool(t.timezone)
    if isinstance(t, sa.Date):
        return Kind.DATE, None, False
    if isinstance(t, sa.Time):
        return Kind.TIME, None, False
    return Kind.OTHER, None, False


def streamed_digest(engine: Engine, plan: Plan, chunk_rows: int) -> TableDigest:
    """The normal-form checksum computed here from the streamed rows (memory: one chunk)."""
    total = rows = 0
    for texts in engine.texts(plan, chunk_rows):
        total = (total + row_digest(texts)) % MOD
        rows += 1
    return TableDigest(plan.table, rows, f"{total:016x}", f"{DIGEST_METHOD} (streamed)")


def sql_literal(text: str) -> str:
    """A SQL string literal (for values the tool itself validated, such as a time zone name)."""
    return "'" + text.replace("'", "''") + "'"
