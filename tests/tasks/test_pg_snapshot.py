"""Consistent snapshots taken at the switch: held by this process, gone with it, refused when the cloud copy
keeps a transaction open (the slot would wait for it inside the write-freeze window)."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from cutover.errors import ReplicationError, SnapshotLost
from tasks._pg_replication import Side
from tasks._pg_snapshot import export, held, holding, release
from tests.fixtures.pg_cluster import PgPair


def sides(pg_pair: PgPair) -> tuple[Side, Side, str]:
    original_db, cloud_db = pg_pair.original.create_database("snap"), pg_pair.cloud.create_database("snap")
    for cluster, database in ((pg_pair.original, original_db), (pg_pair.cloud, cloud_db)):
        with psycopg.connect(cluster.conninfo(database), autocommit=True) as connection:
            connection.execute("CREATE TABLE t (id integer PRIMARY KEY)")
            connection.execute("INSERT INTO t SELECT generate_series(1, 10)")
    with psycopg.connect(pg_pair.cloud.conninfo(cloud_db), autocommit=True) as connection:
        connection.execute("CREATE PUBLICATION rev FOR TABLE t")
    original = Side("the original", pg_pair.original.url(original_db))
    return original, Side("the cloud copy", pg_pair.cloud.url(cloud_db)), pg_pair.cloud.conninfo(cloud_db)


def rows_in(side: Side, snapshot: str) -> int:
    with psycopg.connect(side.conninfo) as connection:
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        connection.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'".encode())
        row = connection.execute("SELECT count(*) FROM t").fetchone()
    return int(row[0]) if row else -1


def test_the_snapshots_are_held_until_released_and_then_reported_lost(pg_pair: PgPair) -> None:
    original, cloud, cloud_info = sides(pg_pair)
    key = f"run-{uuid.uuid4().hex[:8]}"
    taken = export(key, original, cloud, f"rev_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(cloud_info, autocommit=True) as connection:
        connection.execute("INSERT INTO t VALUES (11)")  # after the switch

    seen = held(key, {"original": original, "cloud": cloud})
    assert seen == taken and rows_in(cloud, seen.cloud) == 10 and rows_in(original, seen.original) == 10
    assert holding(key) and release(key) and not holding(key)
    with pytest.raises(SnapshotLost, match=f"no snapshot is held for run {key}"):
        held(key, {"original": original, "cloud": cloud})


def test_a_transaction_left_open_on_the_cloud_copy_is_named_instead_of_waited_for(pg_pair: PgPair) -> None:
    original, cloud, cloud_info = sides(pg_pair)
    key = f"run-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(cloud_info) as idle:
        idle.execute("INSERT INTO t VALUES (12)")  # holds a transaction id, never committed
        pid = idle.info.backend_pid

        with pytest.raises(ReplicationError, match=f"pid {pid} idle in transaction"):
            export(key, original, cloud, f"rev_{uuid.uuid4().hex[:8]}", timeout_s=1)

    assert not holding(key)
