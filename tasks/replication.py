"""Replication both ways with PostgreSQL's own logical replication (spec ``data.replication: postgresql-logical``).

Before cutover the cloud copy subscribes to the original (``start_forward``), so the final sync is
"freeze writes, ``wait_caught_up``". At the switch the direction turns (``turn_around``): the reverse
slot is made on the cloud copy first (``mark_switch``), so nothing written after the switch is lost
however late the original subscribes; the forward subscription goes; the cloud copy's sequences are
moved past the replicated keys; the original subscribes without copying again. A rollback
(``roll_back_direction``) waits until the original has caught up, drops its subscription and moves
its sequences on, and leaves the cloud copy's data as it is. Decommission (``drop_all``) removes every
subscription, publication and slot on both sides: a forgotten slot holds WAL until the disk is full.
``status`` says which way data flows, how far behind it is, and what broke it (a disabled subscription,
a schema changed on one side, apply errors counted by PostgreSQL).

What logical replication does not carry is handled here: sequences (advanced after each turn), tables
without a primary key or replica identity (refused by ``check_replicable``), schema changes (shown
by ``status``). Every object is named from the system id (``cutover_<system>_fwd`` / ``_rev``), and
every function may run again: it converges instead of repeating. Database URLs carry passwords; they
never appear in a message (see :mod:`tasks._pg_replication`).

Public surface::

    check_replicable(url, tables, *, role) -> list[ReplicationProblem]
    start_forward(system_id, original_url, cloud_url, tables) -> None
    caught_up(system_id, publisher_url, subscriber_url) -> CatchUp | None
    wait_caught_up(system_id, publisher_url, subscriber_url, *, timeout_s) -> CatchUp
    mark_switch(system_id, cloud_url, tables) -> None
    prepare_switch(system_id, cloud_url, tables, *, sequence_margin) -> dict[str, int]
    prepare_switch_on_snapshots(system_id, key, original_url, cloud_url, tables, *, sequence_margin) -> OnSnapshots
    snapshots_held(key, original_url, cloud_url) -> Snapshots
    holding_snapshots(key) -> bool
    release_snapshots(key) -> bool
    unmark_switch(system_id, cloud_url) -> list[str]
    turn_around(system_id, original_url, cloud_url, tables, *, sequence_margin) -> Turned
    roll_back_direction(system_id, original_url, cloud_url, tables, *, timeout_s, sequence_margin) -> Turned
    settle_on_original(system_id, original_url, cloud_url, tables, *, timeout_s, sequence_margin) -> Turned
    drop_all(system_id, original_url, cloud_url) -> list[str]
    status(system_id, original_url, cloud_url, tables) -> ReplicationStatus
    names_for(system_id) -> Names
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from psycopg import sql

from cutover.errors import CatchUpTimedOut, ReplicationError
from tasks._pg_replication import (
    Conn,
    Names,
    Side,
    Table,
    Url,
    advance_sequences,
    commit_mark,
    create_subscription,
    drop_publication,
    drop_slots,
    drop_subscription,
    ensure_publication,
    ensure_slot,
    names_for,
    scalar,
    slot_lag,
    subscription_exists,
    sync_slot_pattern,
    tables_not_ready,
    tables_of,
)
from tasks._pg_replication_checks import ReplicationProblem, check_side
from tasks._pg_replication_status import Direction, ReplicationStatus, read_status
from tasks._pg_snapshot import Snapshots, export, held, holding, release

__all__ = [
    "CatchUp",
    "Direction",
    "Names",
    "OnSnapshots",
    "ReplicationProblem",
    "ReplicationStatus",
    "Snapshots",
    "Turned",
    "caught_up",
    "check_replicable",
    "drop_all",
    "holding_snapshots",
    "mark_switch",
    "names_for",
    "prepare_switch",
    "prepare_switch_on_snapshots",
    "release_snapshots",
    "roll_back_direction",
    "settle_on_original",
    "snapshots_held",
    "start_forward",
    "status",
    "turn_around",
    "unmark_switch",
    "wait_caught_up",
]

ORIGINAL, CLOUD = "the original", "the cloud copy"
_POLL_S = 0.05
DEFAULT_SEQUENCE_MARGIN = 1000


@dataclass(frozen=True)
class CatchUp:
    """The subscriber has applied everything the publisher had written when the wait began."""

    subscription: str
    lag_bytes: int
    waited_s: float


@dataclass(frozen=True)
class Turned:
    """A change of direction: the catch-up it waited for (if any) and the sequences moved on."""

    catch_up: CatchUp | None = None
    sequences: dict[str, int] = field(default_factory=dict)


# -------------------------------------------------------------------------------- preflight
def check_replicable(url: Url, tables: Sequence[str], *, role: str = "the database") -> list[ReplicationProblem]:
    """What stops ``url``'s database from taking part in logical replication of ``tables``, both ways:
    wal_level, slots and senders, a role that may create subscriptions, every table present with a
    primary key or a replica identity. Empty when it can."""
    side = Side(role, url)
    with side.connect("checking logical replication") as connection:
        return check_side(connection, role, tables_of(tables))


def _refuse_problems(sides: Sequence[tuple[Side, Url]], tables: Sequence[str]) -> None:
    problems = [p for side, url in sides for p in check_replicable(url, tables, role=side.role)]
    if problems:
        raise ReplicationError(
            "logical replication cannot start: " + "; ".join(map(str, problems)),
            detail={"problems": list(map(str, problems))},
        )


# -------------------------------------------------------------------------------- forward
def start_forward(system_id: str, original_url: Url, cloud_url: Url, tables: Sequence[str]) -> None:
    """The cloud copy subscribes to the original (initial copy of every table, then every change).

    Refused, with every problem named, when either side cannot replicate. The cloud copy must already
    have the tables (logical replication carries rows, not schema), empty: a table holding rows is
    refused, naming it, before the first subscription. Idempotent."""
    names, original, cloud = names_for(system_id), Side(ORIGINAL, original_url), Side(CLOUD, cloud_url)
    _refuse_problems([(original, original_url), (cloud, cloud_url)], tables)
    with cloud.connect("looking at the cloud copy's tables") as connection:
        if not subscription_exists(connection, names.forward):
            _refuse_filled(connection, tables_of(tables))
    with original.connect("publishing to the cloud copy") as connection:
        ensure_publication(connection, names.forward, tables_of(tables))
        ensure_slot(connection, names.forward)
    with cloud.connect("subscribing to the original") as connection:
        create_subscription(connection, names.forward, original, copy_data=True)


def _refuse_filled(connection: Conn, tables: Sequence[Table]) -> None:
    """The initial copy inserts every row of the original: rows already on the cloud copy would collide
    with them (and the copy would fail again and again, in the subscriber's log only)."""
    filled = [str(t) for t in tables if scalar(connection, sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(t.ident))]
    if filled:
        raise ReplicationError(
            f"the cloud copy's tables {', '.join(filled)} already hold rows; the subscription's initial copy of the "
            "original would collide with them. Empty them on the cloud copy (TRUNCATE ...) before the cutover: the "
            "subscription copies every row",
            detail={"tables": filled},
        )


# ------------------------------------------------------------------------------- catch up
def caught_up(system_id: str, publisher_url: Url, subscriber_url: Url) -> CatchUp | None:
    """The catch-up, when the subscriber has confirmed the publisher's current WAL position and every
    table finished its initial copy; else None."""
    lag = _lag(system_id, publisher_url, subscriber_url, None)
    return CatchUp(lag.subscription, 0, 0.0) if lag.done else None


@dataclass(frozen=True)
class _Lag:
    subscription: str
    target_lsn: str
    lag_bytes: int | None
    syncing: int

    @property
    def done(self) -> bool:
        return self.lag_bytes == 0 and self.syncing == 0


def _lag(system_id: str, publisher_url: Url, subscriber_url: Url, target_lsn: str | None) -> _Lag:
    publisher, subscriber = Side("the publisher", publisher_url), Side("the subscriber", subscriber_url)
    with subscriber.connect("reading the subscription") as connection:
        subscription = _our_subscription(connection, names_for(system_id))
        syncing = tables_not_ready(connection, subscription)
    with publisher.connect("reading the replication slot") as connection:
        target = target_lsn or commit_mark(connection)
        lag, _active = slot_lag(connection, subscription, target)
    if lag is None:
        raise ReplicationError(
            f"subscription {subscription} has no replication slot {subscription} on the publisher; "
            "drop the subscription and start the replication again"
        )
    return _Lag(subscription, target, lag, syncing)


def _our_subscription(connection: Conn, names: Names) -> str:
    found = [name for name in (names.forward, names.reverse) if subscription_exists(connection, name)]
    if len(found) != 1:
        what = "none" if not found else "both"
        raise ReplicationError(
            f"the subscriber has {what} of subscriptions {names.forward} and {names.reverse}; "
            "exactly one must exist to wait on it (status() shows which way data flows)"
        )
    return found[0]


def wait_caught_up(system_id: str, publisher_url: Url, subscriber_url: Url, *, timeout_s: float) -> CatchUp:
    """Wait until the subscriber has applied everything the publisher had written when the wait began
    (call it with writes frozen). Raises :class:`CatchUpTimedOut` naming the subscription and the lag."""
    started = time.monotonic()
    first = _lag(system_id, publisher_url, subscriber_url, None)
    lag = first
    while not lag.done:
        if time.monotonic() - started > timeout_s:
            raise CatchUpTimedOut(
                f"subscription {lag.subscription} did not catch up within {timeout_s:g} s: its slot is "
                f"{lag.lag_bytes} bytes behind {lag.target_lsn}, {lag.syncing} table(s) still copying. "
                "Are writes frozen? status() shows whether the subscription is failing",
                detail={"subscription": lag.subscription, "lag_bytes": lag.lag_bytes, "syncing": lag.syncing},
            )
        time.sleep(_POLL_S)
        lag = _lag(system_id, publisher_url, subscriber_url, first.target_lsn)
    return CatchUp(lag.subscription, first.lag_bytes or 0, round(time.monotonic() - started, 3))


# ---------------------------------------------------------------------------- turn around
def mark_switch(system_id: str, cloud_url: Url, tables: Sequence[str]) -> None:
    """At the switch: the cloud copy publishes and its reverse slot starts holding every change from
    now on, so the original can subscribe later (after verification) and lose nothing. Idempotent."""
    names, cloud = names_for(system_id), Side(CLOUD, cloud_url)
    with cloud.connect("publishing to the original") as connection:
        ensure_publication(connection, names.reverse, tables_of(tables))  # before the slot that decodes with it
        ensure_slot(connection, names.reverse)


def prepare_switch(
    system_id: str, cloud_url: Url, tables: Sequence[str], *, sequence_margin: int = DEFAULT_SEQUENCE_MARGIN
) -> dict[str, int]:
    """Right before the switch, writes frozen and caught up: :func:`mark_switch`, and the cloud copy's
    sequences moved past the replicated keys, so its first insert after the switch cannot collide."""
    mark_switch(system_id, cloud_url, tables)
    with Side(CLOUD, cloud_url).connect("advancing the cloud copy's sequences") as connection:
        return advance_sequences(connection, tables_of(tables), sequence_margin)


@dataclass(frozen=True)
class OnSnapshots:
    """The switch prepared with snapshots: what they are (held in this process) and the sequences moved on."""

    snapshots: Snapshots
    sequences: dict[str, int]


def prepare_switch_on_snapshots(
    system_id: str,
    key: str,
    original_url: Url,
    cloud_url: Url,
    tables: Sequence[str],
    *,
    sequence_margin: int = DEFAULT_SEQUENCE_MARGIN,
) -> OnSnapshots:
    """:func:`prepare_switch`, taking consistent snapshots of both sides (held under ``key``, see
    :mod:`tasks._pg_snapshot`): the reverse slot is created with the cloud copy's snapshot, so the data
    verified in it plus the slot's changes is the cloud copy. Writes frozen and caught up; before the switch."""
    names, original, cloud = names_for(system_id), Side(ORIGINAL, original_url), Side(CLOUD, cloud_url)
    with cloud.connect("publishing to the original") as connection:
        ensure_publication(connection, names.reverse, tables_of(tables))  # before the slot that decodes with it
    snapshots = export(key, original, cloud, names.reverse)
    try:
        with cloud.connect("advancing the cloud copy's sequences") as connection:
            sequences = advance_sequences(connection, tables_of(tables), sequence_margin)
    except BaseException:
        release(key)
        raise
    return OnSnapshots(snapshots, sequences)


def snapshots_held(key: str, original_url: Url, cloud_url: Url) -> Snapshots:
    """The snapshots :func:`prepare_switch_on_snapshots` took under ``key``, each side able to import its own;
    raises :class:`~cutover.errors.SnapshotLost` when they are gone (a crash or re-run since)."""
    return held(key, {"original": Side(ORIGINAL, original_url), "cloud": Side(CLOUD, cloud_url)})


def holding_snapshots(key: str) -> bool:
    """Whether this process holds ``key``'s snapshots, by sessions still open."""
    return holding(key)


def release_snapshots(key: str) -> bool:
    """Let ``key``'s snapshots go (the verification is over, or the run ends); the reverse slot stays."""
    return release(key)


def unmark_switch(system_id: str, cloud_url: Url) -> list[str]:
    """Undo :func:`mark_switch` when traffic never moved: the reverse slot and publication on the cloud copy
    are dropped (nothing written there since counts). Refused while the original subscribes to them."""
    name, cloud = names_for(system_id).reverse, Side(CLOUD, cloud_url)
    with cloud.connect(f"dropping slot and publication {name}") as connection:
        dropped = [f"slot {slot}" for slot in drop_slots(connection, [name], like=[])]
        return dropped + ([f"publication {name}"] if drop_publication(connection, name) else [])


def turn_around(
    system_id: str,
    original_url: Url,
    cloud_url: Url,
    tables: Sequence[str],
    *,
    sequence_margin: int = DEFAULT_SEQUENCE_MARGIN,
) -> Turned:
    """After the switch: the original follows the cloud copy. Call with writes frozen and the forward
    subscription caught up (``wait_caught_up``). Idempotent."""
    names, original, cloud = names_for(system_id), Side(ORIGINAL, original_url), Side(CLOUD, cloud_url)
    mark_switch(system_id, cloud_url, tables)
    _end_direction(names.forward, subscriber=cloud, publisher=original)
    with cloud.connect("advancing the cloud copy's sequences") as connection:
        sequences = advance_sequences(connection, tables_of(tables), sequence_margin)
    with original.connect("subscribing to the cloud copy") as connection:
        create_subscription(connection, names.reverse, cloud, copy_data=False)
    return Turned(sequences=sequences)


def roll_back_direction(
    system_id: str,
    original_url: Url,
    cloud_url: Url,
    tables: Sequence[str],
    *,
    timeout_s: float = 30,
    sequence_margin: int = DEFAULT_SEQUENCE_MARGIN,
) -> Turned:
    """The way back: call with writes on the cloud copy frozen. Waits until the original has every
    change, drops its subscription (and the slot and publication on the cloud copy), moves the
    original's sequences past the keys the cloud copy used. The cloud copy's data stays as it is."""
    names, original, cloud = names_for(system_id), Side(ORIGINAL, original_url), Side(CLOUD, cloud_url)
    catch_up = wait_caught_up(system_id, cloud_url, original_url, timeout_s=timeout_s)
    _end_direction(names.reverse, subscriber=original, publisher=cloud)
    with original.connect("advancing the original's sequences") as connection:
        sequences = advance_sequences(connection, tables_of(tables), sequence_margin)
    return Turned(catch_up=catch_up, sequences=sequences)


def settle_on_original(
    system_id: str,
    original_url: Url,
    cloud_url: Url,
    tables: Sequence[str],
    *,
    timeout_s: float = 30,
    sequence_margin: int = DEFAULT_SEQUENCE_MARGIN,
) -> Turned:
    """:func:`roll_back_direction`, safe to run again: when the original no longer subscribes (an earlier
    attempt dropped its subscription after catching up), only its sequences are moved on."""
    names, original = names_for(system_id), Side(ORIGINAL, original_url)
    with original.connect("reading the original's subscription") as connection:
        subscribed = subscription_exists(connection, names.reverse)
    if subscribed:
        return roll_back_direction(
            system_id, original_url, cloud_url, tables, timeout_s=timeout_s, sequence_margin=sequence_margin
        )
    with original.connect("advancing the original's sequences") as connection:
        return Turned(sequences=advance_sequences(connection, tables_of(tables), sequence_margin))


def _end_direction(name: str, *, subscriber: Side, publisher: Side) -> None:
    with subscriber.connect(f"dropping subscription {name}") as connection:
        oid = drop_subscription(connection, name)
    with publisher.connect(f"dropping slot and publication {name}") as connection:
        drop_slots(connection, [name], like=sync_slot_pattern(oid))
        drop_publication(connection, name)


# ------------------------------------------------------------------------------ decommission
def drop_all(system_id: str, original_url: Url, cloud_url: Url) -> list[str]:
    """Every subscription, publication and replication slot of the system, on both sides, is gone;
    returns what was dropped ("the cloud copy: subscription cutover_x_fwd", ...). Idempotent. A side
    that cannot be reached is named in the error, after everything reachable has been dropped."""
    names, sides = names_for(system_id), [Side(ORIGINAL, original_url), Side(CLOUD, cloud_url)]
    dropped: list[str] = []
    failures: list[str] = []
    sync_slots: list[str] = []
    for side in sides:
        try:
            with side.connect("dropping subscriptions") as connection:
                for name in (names.forward, names.reverse):
                    oid = drop_subscription(connection, name)
                    if oid is not None:
                        dropped.append(f"{side.role}: subscription {name}")
                        sync_slots += sync_slot_pattern(oid)
        except ReplicationError as exc:
            failures.append(str(exc))
    for side in sides:
        try:
            with side.connect("dropping slots and publications") as connection:
                slots = drop_slots(connection, [names.forward, names.reverse], like=sync_slots)
                dropped += [f"{side.role}: slot {slot}" for slot in slots]
                dropped += [
                    f"{side.role}: publication {name}"
                    for name in (names.forward, names.reverse)
                    if drop_publication(connection, name)
                ]
        except ReplicationError as exc:
            failures.append(str(exc))
    if failures:
        raise ReplicationError(
            "replication objects are left: " + "; ".join(failures) + ". Run drop_all again when both sides answer",
            detail={"dropped": dropped},
        )
    return dropped


# ---------------------------------------------------------------------------------- status
def status(system_id: str, original_url: Url, cloud_url: Url, tables: Sequence[str]) -> ReplicationStatus:
    """Which way data flows, how far behind, and every problem that stops it (never silent staleness)."""
    return read_status(names_for(system_id), Side(ORIGINAL, original_url), Side(CLOUD, cloud_url), tables_of(tables))
