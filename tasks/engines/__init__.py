"""Database engines behind one small interface (:class:`~tasks.engines.base.Engine`).

An engine is one module here named after its SQLAlchemy backend (``postgresql``, ``sqlite``,
``mariadb``; ``mysql`` is served by ``mariadb``), defining ``Adapter``. Adding DM (达梦) or
KingbaseES is writing one module (KingbaseES: subclass the PostgreSQL adapter) and, when the
backend's name differs from the module's, one line in ``_MODULES``.
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa

from cutover.errors import ConfigurationError
from tasks.engines.base import Engine, SessionSetup, TableDigest, streamed_digest
from tasks.engines.normal_form import NormalForm, Plan

__all__ = [
    "Engine",
    "NormalForm",
    "SessionSetup",
    "TableDigest",
    "backend",
    "open_engine",
    "snapshot_setup",
    "stream_digest",
    "supported",
]

_MODULES = {"postgresql": "postgresql", "sqlite": "sqlite", "mariadb": "mariadb", "mysql": "mariadb"}


def backend(url: str) -> str:
    """The SQLAlchemy backend a URL names (``postgresql``, ``mysql``, ...)."""
    return sa.make_url(url).get_backend_name()


def supported() -> list[str]:
    """The backends an adapter exists for."""
    return sorted(_MODULES)


def open_engine(url: str, setup: SessionSetup | None = None) -> Engine:
    """The adapter for ``url``'s engine; ``setup`` runs first on each of its connections."""
    name = backend(url)
    if name not in _MODULES:
        raise ConfigurationError(
            f"no database engine adapter for {name!r} (supported: {', '.join(supported())}); "
            "use one of those URLs, or add a module to tasks/engines/"
        )
    module = importlib.import_module(f"tasks.engines.{_MODULES[name]}")
    adapter: Engine = module.Adapter(url, setup)
    return adapter


def snapshot_setup(url: str, snapshot: str | None) -> SessionSetup | None:
    """The session setup reading ``url``'s database in the exported ``snapshot`` (None: read it now).

    Only an engine whose adapter module defines ``snapshot_setup`` (PostgreSQL) can; a picklable setup,
    so a worker process reads in the same snapshot."""
    if snapshot is None:
        return None
    name = backend(url)
    module = importlib.import_module(f"tasks.engines.{_MODULES[name]}") if name in _MODULES else None
    if module is None or not hasattr(module, "snapshot_setup"):
        raise ConfigurationError(
            f"an exported snapshot ({snapshot!r}) was given for a {name!r} database, which cannot import one; "
            "exported snapshots are PostgreSQL's: verify this database without one (spec data.verify: now)"
        )
    setup: SessionSetup = module.snapshot_setup(snapshot)
    return setup


def stream_digest(url: str, plan: Plan, chunk_rows: int, setup: SessionSetup | None = None) -> TableDigest:
    """Open, stream one table's normal-form checksum, close (runs in a worker process for big tables);
    ``setup`` as for :func:`open_engine` (picklable, e.g. :func:`snapshot_setup`'s)."""
    engine = open_engine(url, setup)
    try:
        return streamed_digest(engine, plan, chunk_rows)
    finally:
        engine.dispose()
