"""Can a database take part in logical replication of these tables? Each refusal names what to do."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tasks._pg_replication import Conn, Table, scalar

_IDENTITY = """
SELECT c.relkind, c.relreplident, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
FROM pg_class c WHERE c.oid = to_regclass(%s)
"""


@dataclass(frozen=True)
class ReplicationProblem:
    """One reason a side cannot replicate: where (``item``) and what to do (``message``)."""

    item: str
    message: str

    def __str__(self) -> str:
        return f"{self.item}: {self.message}"


def check_side(connection: Conn, role: str, tables: Sequence[Table]) -> list[ReplicationProblem]:
    return [*_settings(connection, role), *_privileges(connection, role), *_tables(connection, role, tables)]


def _settings(connection: Conn, role: str) -> Iterator[ReplicationProblem]:
    wal_level = scalar(connection, "SELECT current_setting('wal_level')")
    if wal_level != "logical":
        yield ReplicationProblem(
            f"{role}: wal_level",
            f"is {wal_level}; logical replication needs wal_level = logical: "
            "ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL",
        )
    for setting in ("max_replication_slots", "max_wal_senders"):
        value = int(str(scalar(connection, "SELECT current_setting(%s)", [setting])))
        if value < 2:
            yield ReplicationProblem(
                f"{role}: {setting}",
                f"is {value}; replication needs at least 2 (one per direction): ALTER SYSTEM SET {setting} = 10, "
                "then restart PostgreSQL",
            )


def _privileges(connection: Conn, role: str) -> Iterator[ReplicationProblem]:
    user, superuser = connection.execute(
        "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone() or ("?", False)
    if not superuser:
        yield ReplicationProblem(
            f"{role}: role {user}",
            "may not create subscriptions (PostgreSQL 15 allows it to superusers only), and each side subscribes "
            "in turn; use a superuser in the database URL, or ALTER ROLE ... SUPERUSER",
        )


def _tables(connection: Conn, role: str, tables: Sequence[Table]) -> Iterator[ReplicationProblem]:
    for table in tables:
        quoted = table.ident.as_string(connection)
        row = connection.execute(_IDENTITY, [quoted]).fetchone()
        if row is None or row[0] is None:
            yield ReplicationProblem(
                f"{role}: table {table}",
                "does not exist; create it (logical replication carries rows, not the schema: "
                "pg_dump --schema-only from the original)",
            )
        elif row[0] not in ("r", "p"):
            yield ReplicationProblem(f"{role}: table {table}", "is not a table (a view?); list tables only")
        elif row[1] == "n" or (row[1] == "d" and not row[2]):
            yield ReplicationProblem(
                f"{role}: table {table}",
                f"has no primary key, so its updates and deletes cannot be replicated; add one "
                f"(ALTER TABLE {quoted} ADD PRIMARY KEY (...)) or, if no column set is unique, "
                f"ALTER TABLE {quoted} REPLICA IDENTITY FULL",
            )
