"""The PostgreSQL side of :mod:`tasks.replication`: names, connections, and one statement per primitive.

Every primitive is idempotent (it looks before it acts) and runs on an autocommit connection, because
``CREATE SUBSCRIPTION`` and slot functions may not run inside a transaction block. A database URL holds
a password: it never reaches a log line or an error message. Errors are translated here, once, into
:class:`~cutover.errors.ReplicationError` naming the side ("the original", "the cloud copy") and what
was being done, with the password and the URL masked.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import sqlalchemy as sa
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pydantic import SecretStr
from sqlalchemy.exc import ArgumentError

from cutover.errors import ReplicationError
from cutover.secrets import MASK, redact

Url = str | SecretStr
_CONNECT_TIMEOUT_S = 5
_STATEMENT_TIMEOUT_MS = 30_000
_MAX_IDENTIFIER = 63  # NAMEDATALEN - 1


# ---------------------------------------------------------------------------------- names
@dataclass(frozen=True)
class Names:
    """The names of one system's replication objects; each direction's publication, slot and subscription
    share one name, so a leftover object says which system and direction it belongs to."""

    forward: str  # original -> cloud copy: publication and slot on the original, subscription on the cloud
    reverse: str  # cloud copy -> original: publication and slot on the cloud, subscription on the original


def names_for(system_id: str) -> Names:
    """``cutover_<system>_fwd`` / ``_rev``: valid identifiers and slot names (a-z, 0-9, _; ≤ 63 bytes)."""
    stem = re.sub(r"[^a-z0-9_]", "_", system_id.lower())
    if len(f"cutover_{stem}_fwd") > _MAX_IDENTIFIER:
        digest = hashlib.sha256(system_id.encode()).hexdigest()[:8]
        stem = f"{stem[: _MAX_IDENTIFIER - len('cutover__fwd') - 9]}_{digest}"
    return Names(forward=f"cutover_{stem}_fwd", reverse=f"cutover_{stem}_rev")


@dataclass(frozen=True)
class Table:
    """A replicated table, schema-qualified."""

    schema: str
    name: str

    @classmethod
    def parse(cls, text: str) -> Table:
        schema, _, name = text.rpartition(".")
        return cls(schema or "public", name)

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


def tables_of(tables: Sequence[str]) -> list[Table]:
    return [Table.parse(t) for t in tables]


# ----------------------------------------------------------------------------- connections
class Side:
    """One database (the original or the cloud copy), known by its role, never printed by its URL."""

    def __init__(self, role: str, url: Url) -> None:
        self.role = role
        self._url = url.get_secret_value() if isinstance(url, SecretStr) else url
        try:
            parsed = sa.make_url(self._url)
        except ArgumentError:
            raise ReplicationError(f"{role}: the database URL is not a SQLAlchemy URL") from None
        if parsed.get_backend_name() != "postgresql":
            raise ReplicationError(
                f"{role}: the database is {parsed.get_backend_name()}, not PostgreSQL; logical replication "
                "needs postgresql+psycopg://user:password@host/database"
            )
        self._password = parsed.password if isinstance(parsed.password, str) else None
        params = {str(k): str(v) for k, v in parsed.query.items() if isinstance(v, str)}
        self.conninfo = make_conninfo(
            host=parsed.host or None,
            port=parsed.port or None,
            user=parsed.username or None,
            password=self._password,
            dbname=parsed.database or None,
            **params,
        )

    def scrub(self, text: str) -> str:
        """``text`` without this side's URL, connection string or password."""
        for secret in (self._url, self.conninfo, self._password):
            if secret:
                text = text.replace(secret, MASK)
        return redact(text)

    @contextmanager
    def connect(self, doing: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """An autocommit connection; any driver error becomes a ReplicationError naming ``doing``."""
        with self.translated(doing):
            connection = psycopg.connect(
                self.conninfo,
                autocommit=True,
                connect_timeout=_CONNECT_TIMEOUT_S,
                options=f"-c statement_timeout={_STATEMENT_TIMEOUT_MS}",
            )
            with connection:
                yield connection

    @contextmanager
    def translated(self, doing: str) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ReplicationError(self.scrub(f"{self.role}: {doing} failed: {type(exc).__name__}: {first}")) from exc


Conn = psycopg.Connection[tuple[object, ...]]


def scalar(connection: Conn, query: sql.Composable | str, params: Sequence[object] = ()) -> object:
    row = connection.execute(query, params).fetchone()  # type: ignore[arg-type]
    return None if row is None else row[0]


# ---------------------------------------------------------------------------- publications
def ensure_publication(connection: Conn, name: str, tables: Sequence[Table]) -> bool:
    """The publication exists and publishes exactly ``tables``; True when something changed."""
    listed = sql.SQL(", ").join(t.ident for t in tables)
    if scalar(connection, "SELECT count(*) FROM pg_publication WHERE pubname = %s", [name]) == 0:
        connection.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(sql.Identifier(name), listed))
        return True
    rows = connection.execute("SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s", [name])
    if {Table(str(s), str(t)) for s, t in rows.fetchall()} != set(tables):
        connection.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(sql.Identifier(name), listed))
        return True
    return False


def drop_publication(connection: Conn, name: str) -> bool:
    if scalar(connection, "SELECT count(*) FROM pg_publication WHERE pubname = %s", [name]) == 0:
        return False
    connection.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(name)))
    return True


# ----------------------------------------------------------------------------------- slots
def ensure_slot(connection: Conn, name: str) -> bool:
    """A logical slot (pgoutput) named ``name`` exists; True when it was created now.

    Created before its subscription, it holds every change from this moment, so a subscription that
    attaches later (``create_slot = false``) loses nothing written in between."""
    if scalar(connection, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", [name]) != 0:
        return False
    connection.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [name])
    return True


def drop_slots(connection: Conn, names: Sequence[str], *, like: Sequence[str] = (), timeout_s: float = 15) -> list[str]:
    """Drop the named slots and those matching the ``like`` patterns (a dropped subscription's table-sync
    slots); a slot still held by a departing walsender is freed first. Returns the slots dropped."""
    query = "SELECT slot_name FROM pg_replication_slots WHERE slot_name = ANY(%s) OR slot_name LIKE ANY(%s)"
    found = [str(r[0]) for r in connection.execute(query, [list(names), list(like)]).fetchall()]
    for slot in found:
        _drop_slot(connection, slot, timeout_s)
    return found


def _drop_slot(connection: Conn, slot: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        pid = scalar(connection, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", [slot])
        if pid is None:
            try:
                connection.execute("SELECT pg_drop_replication_slot(%s)", [slot])
                return
            except psycopg.errors.UndefinedObject:
                return  # dropped meanwhile
            except psycopg.errors.ObjectInUse:
                pass  # a walsender took it again between the look and the drop
        else:
            connection.execute("SELECT pg_terminate_backend(%s)", [pid])  # our own slot's walsender
        if time.monotonic() > deadline:
            raise ReplicationError(f"replication slot {slot} stayed in use for {timeout_s:g} s; drop it by hand")
        time.sleep(0.1)


# ---------------------------------------------------------------------------- subscriptions
def subscription_exists(connection: Conn, name: str) -> bool:
    query = "SELECT count(*) FROM pg_subscription WHERE subname = %s AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    return scalar(connection, query, [name]) != 0


def create_subscription(connection: Conn, name: str, publisher: Side, *, copy_data: bool) -> bool:
    """Subscribe to ``publisher``'s publication ``name`` through its existing slot ``name``; True when created.

    The connection string is composed client-side as a literal; it is never part of an error message."""
    if subscription_exists(connection, name):
        connection.execute(sql.SQL("ALTER SUBSCRIPTION {} ENABLE").format(sql.Identifier(name)))
        return False
    statement = sql.SQL(
        "CREATE SUBSCRIPTION {name} CONNECTION {conninfo} PUBLICATION {name} "
        "WITH (create_slot = false, slot_name = {slot}, copy_data = {copy})"
    ).format(
        name=sql.Identifier(name),
        conninfo=sql.Literal(publisher.conninfo),
        slot=sql.Literal(name),
        copy=sql.SQL("true" if copy_data else "false"),
    )
    connection.execute(statement)
    return True


def drop_subscription(connection: Conn, name: str) -> int | None:
    """Drop the subscription without reaching its publisher (the slot is detached first, so this works
    when the publisher is down); returns its oid (its table-sync slots are ``pg_<oid>_sync_%``), or None."""
    query = "SELECT oid FROM pg_subscription WHERE subname = %s AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    oid = scalar(connection, query, [name])
    if oid is None:
        return None
    ident = sql.Identifier(name)
    connection.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident))
    connection.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident))
    connection.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident))
    return int(str(oid))


def sync_slot_pattern(oid: int | None) -> list[str]:
    return [] if oid is None else [f"pg_{oid}_sync_%"]


# ------------------------------------------------------------------------------- sequences
_OWNED_SEQUENCES = """
SELECT a.attname, pg_get_serial_sequence(format('%%I.%%I', n.nspname, c.relname), a.attname)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
  AND pg_get_serial_sequence(format('%%I.%%I', n.nspname, c.relname), a.attname) IS NOT NULL
"""


def advance_sequences(connection: Conn, tables: Sequence[Table], margin: int) -> dict[str, int]:
    """Every sequence owned by a column of ``tables`` (serial, identity) is set to at least the column's
    max + ``margin``, never backwards; returns each sequence's new value."""
    advanced: dict[str, int] = {}
    for table in tables:
        regclass = sql.Identifier(table.schema, table.name).as_string(connection)
        for column, sequence in connection.execute(_OWNED_SEQUENCES, [regclass]).fetchall():
            top = scalar(
                connection,
                sql.SQL("SELECT COALESCE(max({}), 0) FROM {}").format(sql.Identifier(str(column)), table.ident),
            )
            value = scalar(
                connection,
                "SELECT setval(%s::regclass, GREATEST(%s, COALESCE(pg_sequence_last_value(%s::regclass), 0)))",
                [sequence, int(str(top)) + margin, sequence],
            )
            advanced[str(sequence)] = int(str(value))
    return advanced


# ------------------------------------------------------------------------------ positions
def written_lsn(connection: Conn) -> str:
    """The publisher's WAL write position, read only (what ``status`` measures lag against)."""
    return str(scalar(connection, "SELECT pg_current_wal_lsn()"))


def commit_mark(connection: Conn) -> str:
    """A WAL position at or after the end of every transaction committed so far, and on disk.

    A transaction committed with ``synchronous_commit = off`` is visible before its WAL is written,
    and a walsender sends only written WAL, so ``pg_current_wal_lsn()`` alone can stand before the
    last acknowledged write. So: the insert position now (past every committed transaction), then a
    tiny transaction that writes WAL (a logical message, which pgoutput ignores) committed
    synchronously, which flushes all WAL before it. The mark itself is not awaited."""
    mark = str(scalar(connection, "SELECT pg_current_wal_insert_lsn()"))
    connection.execute("SET synchronous_commit = on")
    connection.execute("SELECT pg_logical_emit_message(true, 'govcloud-cutover', 'catch-up mark')")
    return mark


def slot_lag(connection: Conn, slot: str, target_lsn: str) -> tuple[int | None, bool]:
    """Bytes the slot's confirmed position is behind ``target_lsn`` (None: no such slot), and whether a
    walsender holds it."""
    row = connection.execute(
        "SELECT GREATEST(pg_wal_lsn_diff(%s::pg_lsn, confirmed_flush_lsn), 0), active "
        "FROM pg_replication_slots WHERE slot_name = %s",
        [target_lsn, slot],
    ).fetchone()
    if row is None:
        return None, False
    return (None if row[0] is None else int(str(row[0]))), bool(row[1])


def tables_not_ready(connection: Conn, subscription: str) -> int:
    """Tables of the subscription still in their initial copy (state other than ready)."""
    query = (
        "SELECT count(*) FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid "
        "WHERE s.subname = %s AND r.srsubstate <> 'r'"
    )
    return int(str(scalar(connection, query, [subscription])))
