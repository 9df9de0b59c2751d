"""The ledger's connection to its database: engine, sessions, clock, digest, migrations.

Every repository mixin builds on :class:`LedgerCore`. A method taking ``session=`` joins that
transaction (so a state change and its audit event commit together); without it, the method runs
its own transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Self, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cutover.digest import Algorithm, canonical_json, require_algorithm
from cutover.errors import LedgerError
from cutover.ledger import _engine
from cutover.ledger._models import Base
from cutover.settings import Settings, get_settings

_SESSION_KEY = "cutover.ledger"


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def plain_json(value: Mapping[str, Any] | None) -> dict[str, Any]:
    """``value`` as plain JSON types, exactly as it will read back (and be digested)."""
    loaded: dict[str, Any] = json.loads(canonical_json(dict(value or {})))
    return loaded


class LedgerCore:
    """Engine, sessions and settings shared by every repository method."""

    def __init__(
        self,
        url: str,
        *,
        digest: Algorithm = "sm3",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        require_algorithm(digest)
        self.digest: Algorithm = digest
        self.engine = _engine.create_ledger_engine(url)
        self.safe_url = self.engine.url.render_as_string(hide_password=True)
        self._clock = clock or utc_now
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Self:
        """A ledger at the configured URL using the configured digest."""
        settings = settings or get_settings()
        return cls(settings.ledger_url(), digest=settings.digest)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.safe_url!r}, digest={self.digest!r})"

    def now(self) -> datetime:
        """The ledger clock's current time; the clock must return aware datetimes."""
        value = self._clock()
        if value.tzinfo is None:
            raise LedgerError(
                f"the ledger clock returned a naive datetime ({value.isoformat()}); "
                "give Ledger a clock returning timezone-aware datetimes"
            )
        return value.astimezone(UTC)

    def migrate(self) -> None:
        """Bring the schema up to the newest migration (Alembic ``upgrade head``)."""
        try:
            _engine.upgrade(self.engine)
        except SQLAlchemyError as exc:
            raise self._error("could not be migrated", exc) from exc

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        try:
            with self._sessions.begin() as session:
                session.info[_SESSION_KEY] = self
                yield session
        except SQLAlchemyError as exc:
            raise self._error("refused the operation; the transaction was rolled back", exc) from exc

    @contextmanager
    def _tx(self, session: Session | None) -> Iterator[Session]:
        """Join ``session`` if given, else run in a transaction of our own."""
        if session is not None:
            yield session
            return
        with self.session() as own:
            yield own

    def _error(self, what: str, exc: SQLAlchemyError) -> LedgerError:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return LedgerError(f"the ledger at {self.safe_url} {what}: {reason}. {_advice(exc)}")


def _advice(exc: SQLAlchemyError) -> str:
    """What to do about a database error, by its kind."""
    if isinstance(exc, IntegrityError):
        return (
            "A row it refers to is missing or a unique key is already taken: check the ids given "
            "(register the system, create the run) and whether the work was already recorded."
        )
    if isinstance(exc, OperationalError | ProgrammingError):
        return "Check that the database is reachable and migrated to the newest revision (Ledger.migrate())."
    return "Check the database's log for the cause."


def ledger_of(session: Session) -> LedgerCore:
    """The ledger that opened ``session`` (via :meth:`LedgerCore.session`)."""
    ledger = session.info.get(_SESSION_KEY)
    if not isinstance(ledger, LedgerCore):
        raise LedgerError("this session was not opened by a Ledger; use `with ledger.session() as session:`")
    return ledger


def insert_unless_present(session: Session, row: Base) -> bool:
    """Insert ``row`` in a savepoint; False (and nothing written) if it violates a constraint."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


def rowcount(result: sa.Result[Any]) -> int:
    """How many rows an UPDATE or DELETE touched."""
    return cast(sa.CursorResult[Any], result).rowcount
