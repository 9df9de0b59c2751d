"""Where a system's replication stands: direction, lag, and what broke it, read from both sides.

A broken subscription must show, not go stale in silence. PostgreSQL 15 counts apply and sync
errors per subscription (``pg_stat_subscription_stats``) but keeps the error's text only in the
subscriber's server log, so the likeliest cause is checked directly as well: a column present on
the publisher's table but missing on the subscriber's (the first change to that table stops the
subscription).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from tasks._pg_replication import Conn, Names, Side, Table, slot_lag, subscription_exists, tables_not_ready, written_lsn


class Direction(StrEnum):
    """Which way the system's data flows."""

    NONE = "none"
    FORWARD = "original → cloud copy"
    REVERSE = "cloud copy → original"
    BOTH = "both ways at once"


@dataclass(frozen=True)
class ReplicationStatus:
    """One look at a system's replication. ``problems`` is empty when it runs as it should."""

    direction: Direction
    subscription: str | None = None
    enabled: bool | None = None
    worker_running: bool | None = None
    slot_active: bool | None = None
    lag_bytes: int | None = None
    lag_s: float | None = None
    tables_copying: int = 0
    apply_errors: int = 0
    sync_errors: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.direction in (Direction.FORWARD, Direction.REVERSE) and not self.problems


_SUBSCRIPTION = """
SELECT s.subenabled, st.pid IS NOT NULL, COALESCE(ss.apply_error_count, 0), COALESCE(ss.sync_error_count, 0)
FROM pg_subscription s
LEFT JOIN pg_stat_subscription st ON st.subid = s.oid AND st.relid IS NULL
LEFT JOIN pg_stat_subscription_stats ss ON ss.subid = s.oid
WHERE s.subname = %s AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
_COLUMNS = """
SELECT a.attname FROM pg_attribute a
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
"""
_LAG_S = "SELECT EXTRACT(epoch FROM replay_lag) FROM pg_stat_replication WHERE application_name = %s"


def read_status(names: Names, original: Side, cloud: Side, tables: Sequence[Table]) -> ReplicationStatus:
    with (
        original.connect("reading replication status") as on_original,
        cloud.connect("reading replication status") as on_cloud,
    ):
        forward = subscription_exists(on_cloud, names.forward)
        reverse = subscription_exists(on_original, names.reverse)
        if forward and reverse:
            return ReplicationStatus(
                Direction.BOTH,
                problems=[
                    f"both {names.forward} (on {cloud.role}) and {names.reverse} (on {original.role}) exist: "
                    "changes would loop; drop the one that no longer applies"
                ],
            )
        if not (forward or reverse):
            return ReplicationStatus(Direction.NONE, problems=list(_orphan_slots(names, on_original, on_cloud)))
        if forward:
            return _one_way(Direction.FORWARD, names.forward, (cloud, on_cloud), (original, on_original), tables)
        return _one_way(Direction.REVERSE, names.reverse, (original, on_original), (cloud, on_cloud), tables)


def _one_way(
    direction: Direction,
    name: str,
    subscriber: tuple[Side, Conn],
    publisher: tuple[Side, Conn],
    tables: Sequence[Table],
) -> ReplicationStatus:
    (sub_side, sub), (pub_side, pub) = subscriber, publisher
    row = sub.execute(_SUBSCRIPTION, [name]).fetchone()
    enabled, running, apply_errors, sync_errors = (
        (bool(row[0]), bool(row[1]), int(str(row[2])), int(str(row[3]))) if row else (False, False, 0, 0)
    )
    copying = tables_not_ready(sub, name)
    lag_bytes, active = slot_lag(pub, name, written_lsn(pub))
    lag_row = pub.execute(_LAG_S, [name]).fetchone()
    lag_s = float(str(lag_row[0])) if lag_row and lag_row[0] is not None else (0.0 if lag_bytes == 0 else None)
    problems = list(_drift(tables, pub_side.role, pub, sub_side.role, sub))
    where = f"subscription {name} on {sub_side.role}"
    if lag_bytes is None:
        problems.append(f"{where}: its slot {name} on {pub_side.role} is missing; drop and create the subscription")
    if not enabled:
        problems.append(f"{where} is disabled; ALTER SUBSCRIPTION {name} ENABLE once its cause is fixed")
    if apply_errors + sync_errors and (not running or not active or (lag_bytes or 0) > 0):
        problems.append(
            f"{where} is failing: PostgreSQL counted {apply_errors} apply and {sync_errors} sync error(s) and it "
            f"is {lag_bytes} bytes behind; the subscriber's server log names the cause"
        )
    return ReplicationStatus(
        direction, name, enabled, running, active, lag_bytes, lag_s, copying, apply_errors, sync_errors, problems
    )


def _drift(tables: Sequence[Table], pub_role: str, pub: Conn, sub_role: str, sub: Conn) -> Iterator[str]:
    for table in tables:
        quoted = table.ident.as_string(pub)
        published = {str(r[0]) for r in pub.execute(_COLUMNS, [quoted]).fetchall()}
        received = {str(r[0]) for r in sub.execute(_COLUMNS, [quoted]).fetchall()}
        if not received and published:
            yield f"table {table} is missing on {sub_role}; create it there, the subscription cannot apply its rows"
            continue
        for column in sorted(published - received):
            yield (
                f"table {table}: column {column} exists on {pub_role} but not on {sub_role}; the subscription stops "
                f"at the first change to {table}: add the column on {sub_role} too (schema changes go to both sides)"
            )


def _orphan_slots(names: Names, on_original: Conn, on_cloud: Conn) -> Iterator[str]:
    for role, connection in (("the original", on_original), ("the cloud copy", on_cloud)):
        rows = connection.execute(
            "SELECT slot_name FROM pg_replication_slots WHERE slot_name = ANY(%s)", [[names.forward, names.reverse]]
        ).fetchall()
        for (slot,) in rows:
            yield f"slot {slot} on {role} has no subscription and holds WAL until the disk fills; drop_all removes it"
