"""Engine creation (SQLite pragmas, write-locking transactions) and the Alembic entry points."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config

#: The newest shipped migration; a test checks it equals Alembic's single head. A ledger already
#: there is not migrated again, so a flow-run process does not import Alembic at all.
SCHEMA_HEAD = "7d17a0c1e001"

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000


def create_ledger_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys, a busy timeout and write-locking BEGINs."""
    is_sqlite = sa.make_url(url).get_backend_name() == "sqlite"
    engine = sa.create_engine(url, pool_pre_ping=not is_sqlite)
    if is_sqlite:
        sa.event.listen(engine, "connect", _on_sqlite_connect)
        sa.event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    """Take transaction control from sqlite3 and set the pragmas every connection needs."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    # WAL with synchronous=NORMAL: a commit survives the process being killed (kill -9), not a
    # power cut of the host; it saves an fsync per commit (two per step). Production ledgers
    # run on PostgreSQL.
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    """Begin every SQLite transaction holding the write lock, so writers serialize.

    With a plain (deferred) BEGIN two writers that both read first deadlock on upgrade and one
    fails at once with "database is locked"; BEGIN IMMEDIATE makes the second wait instead.
    """
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(connection: Connection | None = None) -> Config:
    """A programmatic Alembic config for the migrations shipped in this package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


def migration_heads() -> list[str]:
    """The head revisions of the shipped migrations (there must be exactly one)."""
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory.from_config(alembic_config()).get_heads())


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to ``revision`` in one transaction (nothing when already at the head)."""
    if revision == "head" and schema_at_head(engine):
        return  # without importing Alembic: every command opens the ledger, most find it at the head
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Run the migrations down to ``revision`` (e.g. ``"-1"`` or ``"base"``) in one transaction."""
    from alembic import command

    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_at_head(engine: Engine) -> bool:
    """True when the database's ``alembic_version`` is :data:`SCHEMA_HEAD` (read without Alembic)."""
    try:
        with engine.connect() as connection:
            found = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    except sa.exc.DBAPIError:
        return False
    return found == [SCHEMA_HEAD]
