"""MariaDB and MySQL (one adapter; tested here on MariaDB 10.11), through mysqlclient.

Every session reads in UTF-8 (``charset=utf8mb4``) and at ``time_zone = '+00:00'`` so TIMESTAMP
values arrive in UTC. ``tinyint(1)`` is an integer that may be a boolean (it is one when the other
side's column is). The normal form is written in SQL, so the checksum is computed by the server
(``CONV(LEFT(MD5(..), 16), 16, 10)`` summed) — except for a TIMESTAMP column when the server has no
time zone tables to convert it to the declared zone (then the rows are streamed). Text keys sort
by their UTF-8 bytes (``CAST(.. AS BINARY)``): code-point order, never a collation's.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from tasks.engines.base import SessionSetup, SqlEngine, TableDigest, sql_literal
from tasks.engines.normal_form import MOD, Column, Field, Kind, Plan

_MOMENT = "'%Y-%m-%d %H:%i:%s.%f'"
_DIGEST = (
    "SELECT COUNT(*), COALESCE(SUM(CAST(CONV(LEFT(MD5({row}), 16), 16, 10) AS UNSIGNED)), 0) "
    "FROM (SELECT {texts} FROM {table}{where}) t"
)

_NATIVE = "SELECT COUNT(*), COALESCE(SUM(CAST(CONV(LEFT(MD5(CONCAT({fields})), 16), 16, 10) AS UNSIGNED)), 0) FROM {table}{where}"
_ANY_CHARACTER = (Kind.TEXT, Kind.CHAR, Kind.BINARY, Kind.OTHER)


class Adapter(SqlEngine):
    """MariaDB or MySQL."""

    name = "mariadb"

    def __init__(self, url: str, setup: SessionSetup | None = None) -> None:
        parsed = sa.make_url(url)
        super().__init__(parsed.update_query_dict({"charset": "utf8mb4"}).render_as_string(hide_password=False), setup)
        sa.event.listen(self.engine, "connect", _utc_session)
        self._zones: dict[str, bool] = {}

    def column(self, column: sa.Column[Any]) -> Column:
        found = super().column(column)
        if isinstance(column.type, mysql.TINYINT) and column.type.display_width == 1:
            return Column(found.name, Kind.INTEGER, found.declared, maybe_boolean=True)
        if isinstance(column.type, mysql.TIMESTAMP):
            return Column(found.name, Kind.TIMESTAMP, found.declared, aware=True)
        if isinstance(column.type, mysql.YEAR):
            return Column(found.name, Kind.INTEGER, found.declared)
        return found

    def text_sql(self, f: Field, plan: Plan) -> str | None:
        q = self.quote(f.column.name)
        if f.kind is Kind.BOOLEAN:
            return f"IF({q} <> 0, '1', '0')"
        if f.kind is Kind.INTEGER:
            return f"CAST({q} AS CHAR)"
        if f.kind is Kind.DECIMAL:
            return (
                f"CAST({q} AS CHAR)"
                if f.scale == f.column.scale
                else f"CAST(CAST({q} AS DECIMAL(65, {f.scale})) AS CHAR)"
            )
        if f.kind is Kind.FLOAT:
            return f"CAST(CAST({q} AS DECIMAL(65, {plan.form.float_decimals})) AS CHAR)"
        if f.kind is Kind.CHAR:
            return f"TRIM(TRAILING ' ' FROM CONVERT({q} USING utf8mb4))"
        if f.kind is Kind.BINARY:
            return f"LOWER(HEX({q}))"
        if f.kind is Kind.DATE:
            return f"DATE_FORMAT({q}, '%Y-%m-%d')"
        if f.kind is Kind.TIME:
            return f"TIME_FORMAT({q}, '%H:%i:%s.%f')"
        if f.kind is Kind.TIMESTAMP:
            return self._moment_sql(q, f, plan)
        if f.column.kind is Kind.OTHER:
            return f"CAST({q} AS CHAR)"
        return f"CONVERT({q} USING utf8mb4)"  # TEXT

    def digest_sql(self, fields: list[tuple[str, int | None]], table: str, where: str = "") -> str | None:
        names = [f"f{i}" for i in range(len(fields))]
        row = ", ".join(
            f"COALESCE(CONCAT('{fixed}:', {n}), 'N')" if fixed else f"COALESCE(CONCAT(CHAR_LENGTH({n}), ':', {n}), 'N')"
            for n, (_, fixed) in zip(names, fields, strict=True)
        )
        columns = ", ".join(f"{t} AS {n}" for (t, _), n in zip(fields, names, strict=True))
        return _DIGEST.format(row=f"CONVERT(CONCAT({row}) USING utf8mb4)", texts=columns, table=table, where=where)

    def order_sql(self, f: Field) -> str:
        q = self.quote(f.column.name)
        return f"CAST(CONVERT({q} USING utf8mb4) AS BINARY)" if f.kind in (Kind.TEXT, Kind.CHAR) else q

    def native_digest(self, plan: Plan) -> TableDigest | None:
        """The server's own text of each value hashed, no normal form (about 3 times faster; comparable
        only with a table of the same declared types on the same kind of server). A value that may hold any
        character (text, binary, other kinds) is prefixed with its length, one of a number, date or time kind
        ends with ``,`` (its text holds neither ``,`` nor a leading ``N``): each row's string still decodes one
        way, and each value is converted to text once."""
        fields = ", ".join(_native_sql(self.quote(f.column.name), f.column.kind) for f in plan.fields)
        table = self.table_sql(plan.table)
        rows, total = self.summed(plan, lambda where: _NATIVE.format(fields=fields, table=table, where=where))
        return TableDigest(plan.table, rows, f"{total % MOD:016x}", "mariadb-md5-64")

    def _moment_sql(self, q: str, f: Field, plan: Plan) -> str | None:
        if not f.column.aware:
            return f"DATE_FORMAT({q}, {_MOMENT})"
        zone = sql_literal(plan.form.time_zone)
        if not self._knows_zone(zone):
            return None  # no time zone tables: the rows are converted here instead
        return f"DATE_FORMAT(CONVERT_TZ({q}, '+00:00', {zone}), {_MOMENT})"

    def _knows_zone(self, zone: str) -> bool:
        if zone not in self._zones:
            with self.connect() as connection:
                found = connection.exec_driver_sql(f"SELECT CONVERT_TZ('2000-01-01 00:00:00', '+00:00', {zone})")
                self._zones[zone] = found.scalar_one() is not None
        return self._zones[zone]


def _native_sql(q: str, kind: Kind) -> str:
    if kind in _ANY_CHARACTER:
        return f"COALESCE(CONCAT(LENGTH({q}), ':', {q}), 'N')"
    return f"COALESCE(CONCAT({q}, ','), 'N')"


def _utc_session(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET time_zone = '+00:00'")
    cursor.close()
