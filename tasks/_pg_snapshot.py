"""Consistent snapshots of the original and the cloud copy at the switch (spec ``data.verify: on-snapshots``).

At the end of the catch-up — writes frozen on the original, the cloud copy has every one of them —
:func:`export` takes one snapshot per side and keeps the sessions that hold them open:

- on the original, ``BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT pg_export_snapshot()``;
- on the cloud copy, the reverse replication slot is created over a replication connection
  (``replication=database``) with ``CREATE_REPLICATION_SLOT <rev> LOGICAL pgoutput (SNAPSHOT 'export')``:
  its snapshot is exactly the slot's starting point, so the data verified in it plus every change the
  slot holds is the cloud copy; the original subscribes to the slot after the verification
  (``create_slot = false, copy_data = false``) and loses nothing written in between. The connection
  stays idle: its snapshot is valid until its next command.

Traffic then moves to the cloud copy (the write-freeze window ends) and the verification reads both
sides in these snapshots (:func:`tasks.data.verify_databases`), while writes flow. The sessions live
in this process, keyed by run id; :func:`held` hands the snapshots out only while both sessions are
alive and importable, else raises :class:`~cutover.errors.SnapshotLost` (after a crash or a re-run
the exporting sessions are gone: the cutover then rolls back rather than verify data that moves).
:func:`release` closes them (the verification is done, or the run ends).
"""

from __future__ import annotations

import select
import threading
import time
from dataclasses import dataclass

import psycopg
from psycopg import pq, sql
from psycopg.conninfo import make_conninfo
from psycopg.pq import abc as pq_abc

from cutover.errors import ReplicationError, SnapshotLost
from tasks._pg_replication import Side, drop_slots, scalar

__all__ = ["Snapshots", "export", "held", "holding", "release"]

_CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class Snapshots:
    """The exported snapshots' identifiers, and the reverse slot's starting point on the cloud copy."""

    original: str
    cloud: str
    slot: str
    consistent_point: str

    def as_detail(self) -> dict[str, str]:
        return {"original": self.original, "cloud": self.cloud, "slot": self.slot, "from_lsn": self.consistent_point}


@dataclass
class _Sessions:
    snapshots: Snapshots
    original: psycopg.Connection[tuple[object, ...]]
    cloud: psycopg.Connection[tuple[object, ...]]

    def close(self) -> None:
        for connection in (self.original, self.cloud):
            connection.close()

    def alive(self) -> bool:
        in_transaction = self.original.info.transaction_status == pq.TransactionStatus.INTRANS
        return in_transaction and not self.cloud.closed and self.cloud.info.status == pq.ConnStatus.OK


_HELD: dict[str, _Sessions] = {}
_LOCK = threading.Lock()


def export(key: str, original: Side, cloud: Side, slot: str, *, timeout_s: float = 30) -> Snapshots:
    """Take both snapshots (and create the reverse slot ``slot`` with the cloud copy's), held under ``key``.

    Call with writes frozen and the cloud copy caught up, before the switch: a reverse slot left by an
    earlier attempt is dropped first (nothing written on the cloud copy before the switch counts), and so
    is any snapshot already held under ``key``. The reverse publication must exist (the slot decodes with it)."""
    release(key)
    first = _export_original(original)
    try:
        second, snapshots = _create_slot_exporting(cloud, slot, first, timeout_s)
    except BaseException:
        first[0].close()
        raise
    with _LOCK:
        _HELD[key] = _Sessions(snapshots, first[0], second)
    return snapshots


def _export_original(side: Side) -> tuple[psycopg.Connection[tuple[object, ...]], str]:
    with side.translated("exporting a snapshot of the original"):
        connection = psycopg.connect(
            side.conninfo,
            connect_timeout=_CONNECT_TIMEOUT_S,
            options="-c idle_in_transaction_session_timeout=0 -c statement_timeout=0",
        )
        try:
            connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            return connection, str(scalar(connection, "SELECT pg_export_snapshot()"))
        except BaseException:
            connection.close()
            raise


def _create_slot_exporting(
    side: Side, slot: str, original: tuple[psycopg.Connection[tuple[object, ...]], str], timeout_s: float
) -> tuple[psycopg.Connection[tuple[object, ...]], Snapshots]:
    with side.connect(f"dropping a reverse slot {slot} left before the switch") as connection:
        drop_slots(connection, [slot])
    with side.translated(f"creating replication slot {slot} with an exported snapshot"):
        connection = psycopg.connect(
            make_conninfo(side.conninfo, replication="database"), autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S
        )
    command = f"CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput (SNAPSHOT 'export')".encode()
    result = _within(connection, command, timeout_s)
    if result is None:
        connection.close()
        raise ReplicationError(
            f"{side.role}: creating replication slot {slot} waited {timeout_s:g} s for transactions open on the "
            f"cloud copy to end ({_open_transactions(side)}); a logical slot starts only once every transaction "
            "running when it is created has ended. End them (or find what holds them open) and run the cutover again"
        )
    if result.status != pq.ExecStatus.TUPLES_OK:
        message = (result.error_message or b"").decode(errors="replace").strip()
        connection.close()
        raise ReplicationError(side.scrub(f"{side.role}: creating replication slot {slot} failed: {message}"))
    row = {(result.fname(i) or b"").decode(): (result.get_value(0, i) or b"").decode() for i in range(result.nfields)}
    return connection, Snapshots(original[1], row["snapshot_name"], slot, row["consistent_point"])


def _within(
    connection: psycopg.Connection[tuple[object, ...]], command: bytes, timeout_s: float
) -> pq_abc.PGresult | None:
    """Run a replication command (the simple query protocol); None when it did not answer within ``timeout_s``."""
    pgconn = connection.pgconn
    pgconn.send_query(command)
    deadline = time.monotonic() + timeout_s
    pgconn.consume_input()
    while pgconn.is_busy():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        select.select([pgconn.socket], [], [], min(remaining, 0.5))
        pgconn.consume_input()
    result = pgconn.get_result()
    while pgconn.get_result() is not None:
        pass
    return result


def _open_transactions(side: Side) -> str:
    query = (
        "SELECT pid, state, now() - xact_start FROM pg_stat_activity WHERE xact_start IS NOT NULL "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend' ORDER BY xact_start"
    )
    try:
        with side.connect("listing open transactions") as connection:
            rows = connection.execute(query).fetchall()
    except ReplicationError as exc:
        return str(exc)
    return "; ".join(f"pid {pid} {state}, open for {age}" for pid, state, age in rows) or "none left now"


def held(key: str, side_of: dict[str, Side]) -> Snapshots:
    """The snapshots held under ``key``, once each side has shown it can import its snapshot.

    ``side_of`` maps "original" / "cloud" to the database to try the import on. Raises SnapshotLost,
    saying why, when they are not held in this process or no longer importable."""
    with _LOCK:
        sessions = _HELD.get(key)
    if sessions is None:
        raise SnapshotLost(
            f"no snapshot is held for run {key} in this process: the sessions that exported them at the catch-up "
            "ended (a crash or a re-run between the catch-up and the verification). The data cannot be verified "
            "as it was at the switch; the cutover rolls back (every write the cloud copy took is carried back)"
        )
    if not sessions.alive():
        release(key)
        raise SnapshotLost(f"the sessions holding the snapshots of run {key} were closed by the server")
    for role, side in side_of.items():
        _try_import(side, getattr(sessions.snapshots, role))
    return sessions.snapshots


def _try_import(side: Side, snapshot: str) -> None:
    try:
        with psycopg.connect(side.conninfo, connect_timeout=_CONNECT_TIMEOUT_S) as connection:
            connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            connection.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SnapshotLost(side.scrub(f"{side.role}: snapshot {snapshot} cannot be imported: {first}")) from exc


def holding(key: str) -> bool:
    """Whether snapshots are held under ``key`` in this process, by sessions still open."""
    with _LOCK:
        sessions = _HELD.get(key)
    return sessions is not None and sessions.alive()


def release(key: str) -> bool:
    """Close the sessions holding ``key``'s snapshots (the reverse slot stays); True when some were held."""
    with _LOCK:
        sessions = _HELD.pop(key, None)
    if sessions is not None:
        sessions.close()
    return sessions is not None
