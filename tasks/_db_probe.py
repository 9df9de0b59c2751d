"""Does a database URL connect? One short ``SELECT 1``, nothing created, nothing written.

The URL is a secret: the problem returned never contains it, nor its password (the driver's first
line of error, with both masked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from cutover.secrets import MASK, redact

_TIMEOUT_ARG = {"psycopg": "connect_timeout", "psycopg2": "connect_timeout", "pymysql": "connect_timeout"}


def connect_database(url: SecretStr, timeout_s: float) -> str | None:
    """None when the database answers ``SELECT 1`` within about ``timeout_s``; else what went wrong."""
    value = url.get_secret_value()
    try:
        parsed = sa.make_url(value)
    except SQLAlchemyError:
        return "its value is not a SQLAlchemy database URL"
    if _missing_sqlite_file(parsed):
        return "the SQLite database file it names does not exist (preflight does not create it)"
    try:
        engine = sa.create_engine(parsed, poolclass=NullPool, connect_args=_connect_args(parsed, timeout_s))
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()
    except (SQLAlchemyError, ImportError) as exc:
        return _scrubbed(exc, value, parsed.password)
    return None


def _missing_sqlite_file(url: sa.URL) -> bool:
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or url.query.get("uri"):
        return False
    return not Path(database).exists()


def _connect_args(url: sa.URL, timeout_s: float) -> dict[str, Any]:
    if url.get_backend_name() == "sqlite":
        return {"timeout": timeout_s}
    name = _TIMEOUT_ARG.get(url.get_driver_name())
    return {name: max(1, round(timeout_s))} if name else {}


def _scrubbed(exc: Exception, url: str, password: str | None) -> str:
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines() or [type(original).__name__]
    text = lines[0].replace(url, MASK)
    if password:
        text = text.replace(password, MASK)
    return redact(f"{type(original).__name__}: {text}")
