"""The sample application's tables and engine: ``insured`` and ``payments``.

Money is stored as whole fen (分, 1/100 yuan) in integer columns, so SQLite and PostgreSQL
hold exactly the same values and a row-by-row data verification compares equal.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

metadata = sa.MetaData()

insured = sa.Table(
    "insured",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("city", sa.String(32), nullable=False, index=True),
    sa.Column("balance", sa.BigInteger, nullable=False, comment="fen (1/100 yuan)"),
)

payments = sa.Table(
    "payments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("insured_id", sa.Integer, sa.ForeignKey("insured.id"), nullable=False, index=True),
    sa.Column("amount", sa.BigInteger, nullable=False, comment="fen (1/100 yuan)"),
    sa.Column("paid_at", sa.DateTime, nullable=False),
)

TABLES = (insured, payments)
"""Every table, parents first (the order to fill them; reverse it to empty them)."""


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """Return a pooled engine for ``url``; SQLite files get a busy timeout for concurrent writers."""
    options: dict[str, Any] = {"pool_pre_ping": False}
    if url.startswith("sqlite"):
        options["connect_args"] = {"timeout": 10, "check_same_thread": False}
    else:
        options["pool_size"] = pool_size
    return sa.create_engine(url, **options)


def row_counts(engine: Engine) -> dict[str, int]:
    """Return ``{table: number of rows}`` for every table."""
    with engine.connect() as conn:
        return {
            table.name: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
            for table in TABLES
        }


def reset_sequences(conn: Connection) -> None:
    """On PostgreSQL, move the payments id sequence past the existing ids (insured has none)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text(
                "SELECT setval(pg_get_serial_sequence('payments', 'id'), "
                "COALESCE((SELECT MAX(id) FROM payments), 0) + 1, false)"
            )
        )
