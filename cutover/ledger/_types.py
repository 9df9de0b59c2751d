"""Column types shared by the ORM: timezone-aware UTC datetimes and portable enums."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A datetime stored in UTC and always read back timezone-aware (UTC).

    Naive datetimes are refused on the way in: a ledger row must never leave its time zone to
    guesswork. SQLite keeps no offset, so the UTC value is stored without one and re-labelled on
    the way out; PostgreSQL stores ``timestamptz``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC (dropping the offset for SQLite); refuse naive datetimes."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} given to the ledger; "
                "pass a timezone-aware datetime (e.g. datetime.now(UTC))"
            )
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        """Return the stored value as an aware UTC datetime."""
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def enum_type(enum_class: type[StrEnum], name: str) -> sa.Enum:
    """A portable ``sa.Enum`` storing the members' values, checked by a named constraint.

    Non-native (VARCHAR + CHECK) so SQLite and PostgreSQL hold the same schema and a later
    migration can add a value without ``ALTER TYPE``.
    """
    return sa.Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )
