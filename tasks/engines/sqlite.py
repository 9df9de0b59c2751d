"""SQLite: no MD5 in its SQL, so rows are streamed and put in normal form here (memory: one chunk).

Types come from the declared affinity as SQLAlchemy reflects it; text keys sort ``COLLATE BINARY``
(UTF-8 byte order, which is code-point order) whatever collation a column declares.
"""

from __future__ import annotations

from tasks.engines.base import SqlEngine
from tasks.engines.normal_form import Field, Kind


class Adapter(SqlEngine):
    """SQLite through the standard library's sqlite3."""

    name = "sqlite"

    def order_sql(self, f: Field) -> str:
        q = self.quote(f.column.name)
        return f"{q} COLLATE BINARY" if f.kind in (Kind.TEXT, Kind.CHAR) else q
