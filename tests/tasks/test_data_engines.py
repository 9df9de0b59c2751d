"""Data verification across engines on the machine's MariaDB and PostgreSQL: the same data in normal form
verifies equal for every kind of column, each single-value difference is named by primary key, and
a pair of tables whose columns differ is refused naming them before any row is read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from cutover.errors import DataMismatch, SchemaMismatch
from tasks.data import verify_databases
from tasks.engines import NormalForm, open_engine
from tasks.engines.base import streamed_digest
from tasks.engines.normal_form import plan_alone

ROWS = 120
MARIADB_ACCOUNTS = """CREATE TABLE accounts (
    id bigint PRIMARY KEY, active tinyint(1), tiny tinyint, small smallint, medium mediumint, whole int,
    amount decimal(12,2), ratio double, opened date, opened_at datetime(6), closes time(6),
    name varchar(40), code char(8), note text, raw varbinary(16), password varchar(40)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"""
PG_ACCOUNTS = """CREATE TABLE accounts (
    id bigint PRIMARY KEY, active boolean, tiny smallint, small smallint, medium integer, whole integer,
    amount numeric(12,2), ratio double precision, opened date, opened_at timestamptz, closes time,
    name varchar(40), code char(8), note text, raw bytea, password varchar(40)
)"""
SHANGHAI = timedelta(hours=8)


def account(i: int) -> dict[str, Any]:
    """Row i: every kind of value, NULLs every 7th row, empty notes every 5th, text beyond ASCII."""
    wall = datetime(2026, 3, 1, 9, 30, 0, 123456) + timedelta(hours=i, microseconds=i)
    return {
        "id": i,
        "active": i % 2 == 0,
        "tiny": i % 100 - 50,
        "small": -30000 + i,
        "medium": 8_000_000 + i,
        "whole": 2_000_000_000 + i,
        "amount": Decimal(i * 125) / 100,
        "ratio": i / 3,
        "opened": date(2026, 1, 1) + timedelta(days=i),
        "opened_at": wall,  # Asia/Shanghai wall time; PostgreSQL gets the same instant in UTC
        "closes": time(17, i % 60, 30, 250000),
        "name": None if i % 7 == 0 else f"参保人 {i} 😀",
        "code": f"C{i:03d}",
        "note": "" if i % 5 == 0 else (None if i % 7 == 0 else f"note {i} "),
        "raw": bytes([i % 256, 0, 255]),
        "password": f"s3cret-{i}",
    }


def run(url: str, *statements: str, rows: list[dict[str, Any]] | None = None, insert: str = "") -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement))
        if rows:
            connection.execute(sa.text(insert), rows)
    engine.dispose()


def fill_accounts(url: str, *, engine: str, spread: int = 1) -> str:
    """ROWS accounts, their ids ``spread`` apart."""
    rows = [{**account(i), "id": i * spread} for i in range(1, ROWS + 1)]
    if engine == "postgresql":
        rows = [{**r, "opened_at": (r["opened_at"] - SHANGHAI).replace(tzinfo=UTC)} for r in rows]
    columns = list(rows[0])
    insert = f"INSERT INTO accounts ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"
    run(url, MARIADB_ACCOUNTS if engine == "mariadb" else PG_ACCOUNTS, rows=rows, insert=insert)
    return url


@pytest.fixture
def mariadb_to_postgresql(
    make_mariadb_database: Callable[[], str], make_pg_database: Callable[[], str]
) -> tuple[str, str]:
    return fill_accounts(make_mariadb_database(), engine="mariadb"), fill_accounts(
        make_pg_database(), engine="postgresql"
    )


def test_the_same_accounts_in_mariadb_and_postgresql_verify_equal_for_every_kind_of_column(
    mariadb_to_postgresql: tuple[str, str],
) -> None:
    source, target = mariadb_to_postgresql

    result = verify_databases(source, target, ["accounts"])

    (accounts,) = result.tables
    assert result.matches, accounts.describe()
    assert result.rows == ROWS
    assert "on the server" in accounts.source.method and "on the server" in accounts.target.method


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            "UPDATE accounts SET amount = amount + 0.01 WHERE id = 17",
            "17 (values differ: amount '21.25' in the source, '21.26' in the target)",
        ),
        (
            "UPDATE accounts SET opened_at = opened_at + interval '8 hours' WHERE id = 23",
            "23 (values differ: opened_at '2026-03-02 08:30:00.123479' in the source, "
            "'2026-03-02 16:30:00.123479' in the target)",
        ),
        (
            "UPDATE accounts SET name = name || ' ' WHERE id = 31",
            "31 (values differ: name '参保人 31 😀' in the source, '参保人 31 😀 ' in the target)",
        ),
        (
            "UPDATE accounts SET note = '' WHERE id = 42",
            "42 (values differ: note NULL in the source, '' in the target)",
        ),
        (
            "UPDATE accounts SET password = 'leaked' WHERE id = 8",
            "8 (values differ: password *** in the source, *** in the target)",
        ),
    ],
    ids=["decimal-digit", "time-zone-shift", "trailing-space", "null-vs-empty", "secret-masked"],
)
def test_a_single_changed_value_is_named_by_its_primary_key_with_both_values_in_normal_form(
    mariadb_to_postgresql: tuple[str, str], change: str, named: str
) -> None:
    source, target = mariadb_to_postgresql
    run(target, change)

    result = verify_databases(source, target, ["accounts"])

    (accounts,) = result.tables
    assert not accounts.matches
    assert accounts.differing_keys == [named]
    with pytest.raises(DataMismatch, match="first differing keys"):
        result.raise_for_mismatch("step verify-accounts")


def test_a_pair_whose_columns_differ_is_refused_naming_the_columns(
    make_mariadb_database: Callable[[], str], make_pg_database: Callable[[], str]
) -> None:
    source = fill_accounts(make_mariadb_database(), engine="mariadb")
    target = make_pg_database()
    run(target, PG_ACCOUNTS.replace("numeric(12,2)", "numeric(12,3)").replace("code char(8)", "branch text"))

    with pytest.raises(SchemaMismatch) as refused:
        verify_databases(source, target, ["accounts"])

    message = str(refused.value)
    assert "no row was compared" in message
    assert "column amount is DECIMAL(12, 2) in the source and NUMERIC(12, 3) in the target" in message
    assert "column code is only in the source" in message and "column branch is only in the target" in message


TEXT_KEYS = ["a", "B", "c", "Z", "é", "ß", "中", "Ω"]  # distinct under utf8mb4_general_ci, which sorts them otherwise


def fill_codes(url: str, *, collation: str = "") -> str:
    run(
        url,
        f"CREATE TABLE codes (code varchar(8){collation} PRIMARY KEY, label varchar(20))",
        rows=[{"c": k, "l": f"label {n}"} for n, k in enumerate(TEXT_KEYS)],
        insert="INSERT INTO codes VALUES (:c, :l)",
    )
    return url


def test_text_keys_are_walked_in_code_point_order_not_by_the_columns_collation(
    make_mariadb_database: Callable[[], str], make_pg_database: Callable[[], str]
) -> None:
    source = fill_codes(make_mariadb_database(), collation=" COLLATE utf8mb4_general_ci")  # a, B, c, é, ß, Z, ...
    target = fill_codes(make_pg_database(), collation=' COLLATE "en-x-icu"')  # a, B, c, é, ß, Z, Ω, 中
    run(target, "UPDATE codes SET label = 'changed' WHERE code = 'Ω'", "DELETE FROM codes WHERE code IN ('B', 'c')")

    (codes,) = verify_databases(source, target, ["codes"]).tables

    assert codes.differing_keys == [
        "B (only in source)",
        "c (only in source)",
        "Ω (values differ: label 'label 7' in the source, 'changed' in the target)",
    ]


def test_two_mariadb_databases_verify_on_their_servers_and_name_a_missing_row(
    make_mariadb_database: Callable[[], str],
) -> None:
    source = fill_accounts(make_mariadb_database(), engine="mariadb")
    target = fill_accounts(make_mariadb_database(), engine="mariadb")
    same = verify_databases(source, target, ["accounts"])
    assert same.matches and same.tables[0].source.method == "mariadb-md5-64"  # the fast path: same engine, same types

    run(target, "DELETE FROM accounts WHERE id = 99")
    (accounts,) = verify_databases(source, target, ["accounts"]).tables

    assert (accounts.source.rows, accounts.target.rows) == (ROWS, ROWS - 1)
    assert accounts.differing_keys == ["99 (only in source)"]


def test_a_mysql_timestamp_is_compared_as_the_instant_it_stores(
    make_mariadb_database: Callable[[], str], make_pg_database: Callable[[], str]
) -> None:
    instants = [datetime(2026, 6, 1, 0, 0, tzinfo=UTC) + timedelta(minutes=7 * i, microseconds=i) for i in range(50)]
    source, target = make_mariadb_database(), make_pg_database()
    run(source, "SET time_zone = '+00:00'")  # each connection is new: the inserts below say their offset
    run(
        source,
        "CREATE TABLE events (id int PRIMARY KEY, seen_at timestamp(6) NULL)",
        rows=[{"i": i, "t": t.replace(tzinfo=None)} for i, t in enumerate(instants)],
        insert="INSERT INTO events VALUES (:i, CONVERT_TZ(:t, '+00:00', @@session.time_zone))",
    )
    run(
        target,
        "CREATE TABLE events (id int PRIMARY KEY, seen_at timestamptz)",
        rows=[{"i": i, "t": t} for i, t in enumerate(instants)],
        insert="INSERT INTO events VALUES (:i, :t)",
    )

    result = verify_databases(source, target, ["events"])

    assert result.matches, result.tables[0].describe()


@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
def test_the_checksum_a_server_computes_equals_the_one_computed_from_its_streamed_rows(
    make_mariadb_database: Callable[[], str], make_pg_database: Callable[[], str], engine: str
) -> None:
    url = fill_accounts(make_mariadb_database() if engine == "mariadb" else make_pg_database(), engine=engine)
    adapter = open_engine(url)
    try:
        plan = plan_alone(adapter.shape("accounts"), None, NormalForm())
        on_the_server = adapter.pushed_down_digest(plan)
        streamed = streamed_digest(adapter, plan, chunk_rows=50)
    finally:
        adapter.dispose()

    assert on_the_server is not None and "on the server" in on_the_server.method
    assert (
        (on_the_server.rows, on_the_server.checksum) == (streamed.rows, streamed.checksum) == (ROWS, streamed.checksum)
    )


@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
def test_a_table_hashed_in_key_ranges_on_several_connections_sums_to_the_same_checksum(
    make_mariadb_database: Callable[[], str], make_pg_database: Callable[[], str], engine: str
) -> None:
    make = make_mariadb_database if engine == "mariadb" else make_pg_database
    url = fill_accounts(make(), engine=engine, spread=10_007)  # ids 10,007 .. 1,200,840: worth splitting
    adapter = open_engine(url)
    try:
        plan = plan_alone(adapter.shape("accounts"), None, NormalForm())
        ranges = adapter.key_ranges(plan)
        on_the_server, native = adapter.pushed_down_digest(plan), adapter.native_digest(plan)
        streamed = streamed_digest(adapter, plan, chunk_rows=50)
        whole = adapter.summed(plan, lambda where: f"SELECT count(*), sum(id) FROM accounts{where}")
    finally:
        adapter.dispose()

    assert len(ranges) == 4 and "IS NULL" in ranges[0]
    assert on_the_server is not None and (on_the_server.rows, on_the_server.checksum) == (ROWS, streamed.checksum)
    assert native is not None and native.rows == ROWS
    assert whole == (ROWS, 10_007 * ROWS * (ROWS + 1) // 2)


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE accounts SET amount = amount + 0.01 WHERE id = 17",
        "UPDATE accounts SET whole = NULL WHERE id = 17",
        "UPDATE accounts SET note = CONCAT(note, ',') WHERE id = 17",
        "UPDATE accounts SET raw = NULL WHERE id = 17",
    ],
    ids=["decimal-digit", "number-to-null", "text-comma", "binary-to-null"],
)
def test_the_same_engines_own_checksum_changes_with_any_single_value(
    make_mariadb_database: Callable[[], str], change: str
) -> None:
    source = fill_accounts(make_mariadb_database(), engine="mariadb")
    target = fill_accounts(make_mariadb_database(), engine="mariadb")
    run(target, change)
    adapters = open_engine(source), open_engine(target)
    try:
        digests = [a.native_digest(plan_alone(a.shape("accounts"), None, NormalForm())) for a in adapters]
    finally:
        for a in adapters:
            a.dispose()

    assert all(d is not None and d.method == "mariadb-md5-64" for d in digests)
    assert digests[0] is not None and digests[1] is not None and digests[0].checksum != digests[1].checksum
