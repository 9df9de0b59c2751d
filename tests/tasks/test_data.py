"""Data verification compares row counts and checksums across PostgreSQL and SQLite."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from cutover.errors import ConfigurationError, DataMismatch
from cutover.secrets import redact, resolve
from cutover.spec import DataVerifyStep, Spec
from tasks.data import verify_databases
from tasks.engines import snapshot_setup
from tests.specbuilder import base_spec

ROWS = 500
TABLES = ["payments", "insured"]
SCHEMA = (
    "CREATE TABLE payments (id integer primary key, name varchar(50), amount numeric(12,2), paid_at timestamp)",
    "CREATE TABLE insured (code varchar(20) primary key, city varchar(20))",
)


def fill(url: str, rows: int = ROWS, *, reverse: bool = False) -> str:
    engine = sa.create_engine(url)
    order = range(rows - 1, -1, -1) if reverse else range(rows)
    with engine.begin() as connection:
        for statement in SCHEMA:
            connection.execute(sa.text(statement))
        connection.execute(
            sa.text("INSERT INTO payments VALUES (:i, :n, :a, :t)"),
            [{"i": i, "n": f"参保人{i}", "a": i * 1.25, "t": f"2026-01-{1 + i % 28:02d} 10:00:00"} for i in order],
        )
        connection.execute(
            sa.text("INSERT INTO insured VALUES (:c, :city)"),
            [{"c": f"c{i:04d}", "city": "杭州" if i % 2 else "Ningbo"} for i in order],
        )
    engine.dispose()
    return url


def change(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement))
    engine.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Callable[[str], str]:
    return lambda name: f"sqlite:///{tmp_path / name}.db"


def test_the_same_rows_in_sqlite_and_postgresql_match_in_any_order(
    sqlite_db: Callable[[str], str], make_pg_database: Callable[[], str]
) -> None:
    source = fill(sqlite_db("legacy"))
    target = fill(make_pg_database(), reverse=True)
    result = verify_databases(source, target, ["payments", "insured"])
    assert result.matches, [t.describe() for t in result.tables]
    assert result.rows == 2 * ROWS


def test_a_changed_and_a_missing_row_are_named_by_key(
    sqlite_db: Callable[[str], str], make_pg_database: Callable[[], str]
) -> None:
    source = fill(make_pg_database())
    target = fill(sqlite_db("cloud"))
    change(target, "UPDATE payments SET amount = 0 WHERE id = 17", "DELETE FROM payments WHERE id = 42")
    change(target, "INSERT INTO insured VALUES ('c9999', '温州')")
    result = verify_databases(source, target, ["payments", "insured"])
    payments, insured = result.tables
    assert not payments.matches
    assert payments.differing_keys == [
        "17 (values differ: amount '21.25' in the source, '0.00' in the target)",
        "42 (only in source)",
    ]
    assert insured.differing_keys == ["c9999 (only in target)"]
    with pytest.raises(
        DataMismatch,
        match=r"payments: expected the target to match the source row for row; source 500 rows .* target 499 rows .*17 \(values differ: amount '21.25' in the source",
    ):
        result.raise_for_mismatch("step verify-rows")


def test_two_postgresql_databases_match_and_the_detail_is_json_ready(make_pg_database: Callable[[], str]) -> None:
    source, target = fill(make_pg_database()), fill(make_pg_database())
    result = verify_databases(source, target, ["payments"], keys={"payments": ["id"]}, chunk_rows=100)
    assert result.matches
    detail = result.as_detail()["payments"]
    assert detail["source_rows"] == detail["target_rows"] == ROWS
    assert detail["source_checksum"] == detail["target_checksum"]


def test_a_step_naming_its_sqlite_files_inline_resolves_them_as_written_and_compares_them(
    sqlite_db: Callable[[str], str],
) -> None:
    source, target = fill(sqlite_db("legacy")), fill(sqlite_db("cloud"), reverse=True)
    data = base_spec()
    verify = {"kind": "data_verify", "id": "verify", "name": "verify", "source": source, "target": target}
    data["cutover"]["steps"] = [{**verify, "tables": ["payments", "insured"]}]
    spec = Spec.model_validate(data)
    assert spec.cutover is not None
    step = spec.cutover.steps[0]
    assert isinstance(step, DataVerifyStep)

    urls = [resolve(spec, step.source).get_secret_value(), resolve(spec, step.target).get_secret_value()]

    assert urls == [source, target]
    assert verify_databases(urls[0], urls[1], step.tables).matches
    assert redact(f"compared {source}") == f"compared {source}"  # no secret: nothing is masked


@contextmanager
def exported_snapshot(url: str) -> Iterator[str]:
    """A snapshot of ``url``'s database exported now, valid while the block runs."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        row = connection.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        yield str(row[0])


def test_verification_on_snapshots_sees_the_snapshots_rows_not_the_writes_made_since(
    make_pg_database: Callable[[], str],
) -> None:
    source, target = fill(make_pg_database()), fill(make_pg_database())
    change(source, "UPDATE payments SET amount = 0 WHERE id = 17")
    with exported_snapshot(source) as source_snapshot, exported_snapshot(target) as target_snapshot:
        change(target, "UPDATE payments SET amount = 0 WHERE id = 17", "DELETE FROM payments WHERE id = 3")
        change(source, "INSERT INTO insured VALUES ('c9999', '温州')")

        on_snapshots = verify_databases(
            source, target, TABLES, source_snapshot=source_snapshot, target_snapshot=target_snapshot
        )
        now = verify_databases(source, target, TABLES)

    payments, insured = on_snapshots.tables
    assert not payments.matches and len(payments.differing_keys) == 1  # not 3: deleted after
    assert payments.differing_keys[0].startswith("17 (values differ: amount '0.00' in the source, ")
    assert insured.matches and insured.source.rows == ROWS  # c9999 came after the snapshot
    assert [t.differing_keys for t in now.tables] == [["3 (only in source)"], ["c9999 (only in source)"]]
    with pytest.raises(DataMismatch, match="traffic goes back"):
        on_snapshots.raise_for_mismatch("step verify-rows", then="traffic goes back to the original")


def test_a_snapshot_is_refused_for_an_engine_that_cannot_import_one_and_a_malformed_one_is_refused(
    sqlite_db: Callable[[str], str], make_pg_database: Callable[[], str]
) -> None:
    source, target = fill(sqlite_db("source")), fill(make_pg_database())
    with pytest.raises(ConfigurationError, match="exported snapshots are PostgreSQL's"):
        verify_databases(source, target, TABLES, source_snapshot="00000003-0000001B-1")
    with pytest.raises(ValueError, match="is not an exported snapshot's identifier"):
        verify_databases(target, target, TABLES, source_snapshot="x'; DROP TABLE payments; --")


def test_a_snapshots_session_setup_travels_to_a_worker_process() -> None:
    setup = snapshot_setup("postgresql+psycopg://u@127.0.0.1/db", "00000003-0000001B-1")
    assert setup is not None and pickle.loads(pickle.dumps(setup)).args == ("00000003-0000001B-1",)
    assert snapshot_setup("sqlite:///x.db", None) is None
