"""Alembic environment of the ledger.

Run programmatically by :meth:`cutover.ledger.Ledger.migrate`, which hands over its connection in
``config.attributes["connection"]``. Run from the command line
(``alembic -c cutover/ledger/alembic.ini upgrade head``) it connects to
``sqlalchemy.url`` if set, else to the configured ledger (``CUTOVER_DATABASE_URL``).
Offline (SQL script) mode is not supported: the triggers differ per database.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from cutover.errors import ConfigurationError
from cutover.ledger._engine import create_ledger_engine
from cutover.ledger._models import Base
from cutover.settings import get_settings


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url") or get_settings().ledger_url()
    engine = create_ledger_engine(url)
    try:
        with engine.begin() as own:
            _run(own)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise ConfigurationError(
        "the ledger migrations run online only (their triggers differ per database); "
        "drop --sql and point sqlalchemy.url or CUTOVER_DATABASE_URL at the database"
    )
_run_online()
