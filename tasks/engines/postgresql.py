"""PostgreSQL (and PostgreSQL-compatible engines such as KingbaseES, by subclassing :class:`Adapter`).

The normal form is written in SQL, so a table's checksum is computed by the server in one pass:
``to_char`` for dates and times (``AT TIME ZONE`` for timestamptz), ``encode(.., 'hex')`` for bytea,
``round(.., scale)`` for numerics, and the row's MD5 over its UTF-8 bytes. Text keys sort
``COLLATE "C"``: UTF-8 byte order, which is code-point order. Each connection first runs the
adapter's ``setup``: :func:`snapshot_setup` makes it read in an exported snapshot (``pg_export_snapshot()``,
or a replication slot's), in a REPEATABLE READ transaction (``SET TRANSACTION SNAPSHOT``); several
connections share one snapshot.
"""

from __future__ import annotations

import functools
import re

import sqlalchemy as sa

from tasks.engines.base import SessionSetup, SqlEngine, TableDigest, sql_literal
from tasks.engines.normal_form import MOD, Field, Kind, Plan

_MOMENT = "'YYYY-MM-DD HH24:MI:SS.US'"
_DIGEST = (
    "SELECT count(*), coalesce(sum(('x' || left(md5(convert_to({row}, 'UTF8')), 16))::bit(64)::bigint::numeric), 0) "
    "FROM (SELECT {texts} FROM {table}{where}) t"
)
_SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$")
_NATIVE = (
    "SELECT count(*), coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint::numeric), 0) FROM {table} t{where}"
)


class Adapter(SqlEngine):
    """PostgreSQL through psycopg."""

    name = "postgresql"

    def text_sql(self, f: Field, plan: Plan) -> str | None:
        q, source = self.quote(f.column.name), f.column.kind
        if f.kind is Kind.BOOLEAN:
            truth = q if source is Kind.BOOLEAN else f"{q} <> 0"
            return f"CASE WHEN {truth} THEN '1' WHEN NOT {truth} THEN '0' END"
        if f.kind is Kind.INTEGER:
            return f"trim_scale({q})::text" if source is Kind.DECIMAL else f"{q}::text"
        if f.kind is Kind.DECIMAL:
            return f"trim_scale({q})::text" if f.scale is None else f"round({q}, {f.scale})::text"
        if f.kind is Kind.FLOAT:
            return f"round({q}::numeric, {plan.form.float_decimals})::text"
        if f.kind is Kind.CHAR:
            return f"rtrim({q}::text, ' ')"
        if f.kind is Kind.BINARY:
            return f"encode({q}, 'hex')"
        if f.kind is Kind.DATE:
            return f"to_char({q}, 'YYYY-MM-DD')"
        if f.kind is Kind.TIME:
            return f"to_char({q}, 'HH24:MI:SS.US')"
        if f.kind is Kind.TIMESTAMP:
            moment = f"({q} AT TIME ZONE {sql_literal(plan.form.time_zone)})" if f.column.aware else q
            return f"to_char({moment}, {_MOMENT})"
        return f"{q}::text"  # TEXT, OTHER

    def digest_sql(self, fields: list[tuple[str, int | None]], table: str, where: str = "") -> str | None:
        names = [f"f{i}" for i in range(len(fields))]
        row = " || ".join(
            f"coalesce('{fixed}:' || {n}, 'N')" if fixed else f"coalesce(char_length({n})::text || ':' || {n}, 'N')"
            for n, (_, fixed) in zip(names, fields, strict=True)
        )
        columns = ", ".join(f"{t} AS {n}" for (t, _), n in zip(fields, names, strict=True))
        return _DIGEST.format(row=f"({row})", texts=columns, table=table, where=where)

    def order_sql(self, f: Field) -> str:
        q = self.quote(f.column.name)
        return f'{q} COLLATE "C"' if f.kind in (Kind.TEXT, Kind.CHAR) else q

    def native_digest(self, plan: Plan) -> TableDigest | None:
        """PostgreSQL's own row text hashed (fast; comparable only with a table of the same column types)."""
        table = self.table_sql(plan.table)
        rows, total = self.summed(plan, lambda where: _NATIVE.format(table=table, where=where))
        return TableDigest(plan.table, rows, f"{total % MOD:016x}", "postgresql-md5-64")


def snapshot_setup(snapshot: str) -> SessionSetup:
    """A session setup entering the exported ``snapshot`` (picklable: a worker process can take it)."""
    if not _SNAPSHOT_ID.match(snapshot):
        raise ValueError(f"{snapshot!r} is not an exported snapshot's identifier (e.g. 00000003-0000001B-1)")
    return functools.partial(_enter_snapshot, snapshot)


def _enter_snapshot(snapshot: str, connection: sa.Connection) -> None:
    connection.execution_options(isolation_level="REPEATABLE READ")
    connection.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
