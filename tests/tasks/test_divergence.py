"""Divergence: how far the cloud copy has moved since the cutover, on SQLite and MariaDB (chunks) and PostgreSQL
(counters)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from cutover.ledger import Ledger, RunKind
from cutover.spec import Spec
from tasks.divergence import (
    Divergence,
    Method,
    before_rollback,
    measure,
    rollback_notice,
    sample,
    summary,
    take_baseline,
)
from tasks.replication import drop_all, start_forward, turn_around, wait_caught_up
from tests._polling import wait_until
from tests.fixtures.pg_cluster import PgPair
from tests.specbuilder import base_spec

NewSystem = Callable[[Ledger], str]
T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
SCHEMA = "CREATE TABLE payments (id INTEGER PRIMARY KEY, amount NUMERIC(12, 2) NOT NULL, note TEXT)"


MakeSpec = Callable[..., Spec]


@pytest.fixture
def spec_with_data(monkeypatch: pytest.MonkeyPatch) -> MakeSpec:
    """Specs whose cutover verifies ``payments`` between two databases (URLs in env secrets of this test)."""

    def make(original_url: str, cloud_url: str, system_id: str | None = None) -> Spec:
        tag = uuid.uuid4().hex[:8].upper()
        monkeypatch.setenv(f"DIV_ORIG_{tag}", original_url)
        monkeypatch.setenv(f"DIV_CLOUD_{tag}", cloud_url)
        data = base_spec(system_id)
        data["secrets"] = {
            "orig_db": {"source": "env", "name": f"DIV_ORIG_{tag}"},
            "cloud_db": {"source": "env", "name": f"DIV_CLOUD_{tag}"},
        }
        verify = {"kind": "data_verify", "id": "verify", "name": "verify", "tables": ["payments"]}
        verify |= {"source": {"secret": "orig_db"}, "target": {"secret": "cloud_db"}}
        data["cutover"]["steps"].append(verify)
        return Spec.model_validate(data)

    return make


def run_sql(url: str, *statements: str) -> None:
    """Run statements in one transaction on a connection of their own, closed afterwards."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(sa.text(statement))
    finally:
        engine.dispose()


def seed(url: str, rows: int) -> None:
    run_sql(
        url,
        SCHEMA,
        *(
            f"INSERT INTO payments (id, amount, note) SELECT n, n * 1.5, {note} FROM ({series}) s"
            for series, note in [
                (_series(url, rows), "CONCAT('row ', n)" if url.startswith("mysql") else "'row ' || n")
            ]
        ),
    )


def _series(url: str, rows: int) -> str:
    if url.startswith("mysql"):
        return f"SELECT seq AS n FROM seq_1_to_{rows}"
    if url.startswith("sqlite"):
        return f"WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < {rows}) SELECT n FROM c"
    return f"SELECT generate_series(1, {rows}) AS n"


@pytest.fixture
def sqlite_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    original, cloud = f"sqlite:///{tmp_path / 'original.db'}", f"sqlite:///{tmp_path / 'cloud.db'}"
    seed(original, 1000)
    seed(cloud, 1000)
    yield original, cloud


@pytest.fixture
def pg_cloud(make_pg_database: Callable[[str], str]) -> str:
    url = make_pg_database("divergence")
    seed(url, 500)
    return url


def changes_since(spec: Spec, baseline: dict[str, object]) -> Divergence:
    return measure(spec, baseline, baseline_at=T0, now=T0 + timedelta(minutes=10))


# ------------------------------------------------------------------------- chunks (SQLite)
def test_an_unchanged_sqlite_copy_has_exactly_zero_changed_rows(
    spec_with_data: MakeSpec, sqlite_pair: tuple[str, str]
) -> None:
    spec = spec_with_data(*sqlite_pair)
    baseline = take_baseline(spec)

    found = changes_since(spec, baseline)

    assert found.changed_rows == 0 and not found.approximate
    assert found.tables[0].method is Method.CHUNKS
    assert found.describe() == (
        "0 changed rows; the original is 600 seconds behind (no replication: it stopped at the cutover)"
    )


def test_sqlite_inserts_updates_and_deletes_in_separate_chunks_are_counted_approximately(
    spec_with_data: MakeSpec,
    sqlite_pair: tuple[str, str],
) -> None:
    original, cloud = sqlite_pair
    spec = spec_with_data(original, cloud)
    baseline = take_baseline(spec)

    run_sql(
        cloud,
        "INSERT INTO payments (id, amount) VALUES (1001, 1), (1002, 2), (1003, 3), (1004, 4), (1005, 5)",
        "UPDATE payments SET note = 'changed' WHERE id IN (350, 550, 750)",
        "DELETE FROM payments WHERE id IN (10, 20)",
    )
    found = changes_since(spec, baseline)

    (payments,) = found.tables
    assert (payments.inserted, payments.updated, payments.deleted) == (5, 3, 2)
    assert found.changed_rows == 10 and found.approximate
    assert found.describe().startswith("approximately 10 changed rows")
    assert ("payments", "≈5", "≈3", "≈2", "chunk-checksums") in found.table_rows()


def test_two_updates_in_one_chunk_count_as_at_least_one_row(
    spec_with_data: MakeSpec, sqlite_pair: tuple[str, str]
) -> None:
    original, cloud = sqlite_pair
    spec = spec_with_data(original, cloud)
    baseline = take_baseline(spec)

    run_sql(cloud, "UPDATE payments SET note = 'changed' WHERE id IN (301, 302)")

    assert changes_since(spec, baseline).tables[0].updated == 1  # a lower bound, shown as approximate


def test_mariadb_inserts_updates_and_deletes_are_counted_from_chunk_checksums(
    spec_with_data: MakeSpec, make_mariadb_database: Callable[[str], str]
) -> None:
    original, cloud = make_mariadb_database("div_orig"), make_mariadb_database("div_cloud")
    seed(original, 1000)
    seed(cloud, 1000)
    spec = spec_with_data(original, cloud)
    baseline = take_baseline(spec)
    assert changes_since(spec, baseline).changed_rows == 0

    run_sql(
        cloud,
        "INSERT INTO payments (id, amount) VALUES (1001, 1), (1002, 2), (1003, 3), (1004, 4), (1005, 5)",
        "UPDATE payments SET note = 'changed' WHERE id IN (350, 550, 750)",
        "DELETE FROM payments WHERE id IN (10, 20)",
    )
    found = changes_since(spec, baseline)

    assert ("payments", "≈5", "≈3", "≈2", "chunk-checksums") in found.table_rows()
    assert found.describe().startswith("approximately 10 changed rows")


# ----------------------------------------------------------------------- counters (PostgreSQL)
def test_postgresql_counts_exactly_the_row_operations_since_the_baseline(
    spec_with_data: MakeSpec, sqlite_pair: tuple[str, str], pg_cloud: str
) -> None:
    spec = spec_with_data(sqlite_pair[0], pg_cloud)
    wait_until(
        lambda: take_baseline(spec)["payments"],
        what="the seed's inserts in the counters",
        timeout_s=120,
        ready=lambda b: b["counters"][0] == 500,
    )
    baseline = take_baseline(spec)

    run_sql(
        pg_cloud,
        "INSERT INTO payments (id, amount) VALUES (501, 1), (502, 2), (503, 3), (504, 4)",
        "UPDATE payments SET note = 'changed' WHERE id IN (1, 2)",
        "DELETE FROM payments WHERE id = 3",
    )
    found = wait_until(
        lambda: changes_since(spec, baseline),
        what="the counters to show 7 changes",
        timeout_s=120,
        ready=lambda d: d.changed_rows == 7,
    )

    (payments,) = found.tables
    assert (payments.method, payments.inserted, payments.updated, payments.deleted) == (Method.COUNTERS, 4, 2, 1)
    assert not found.approximate and found.describe().startswith("7 changed rows")


def test_counters_that_went_back_are_reported_not_guessed(
    spec_with_data: MakeSpec, sqlite_pair: tuple[str, str], pg_cloud: str
) -> None:
    spec = spec_with_data(sqlite_pair[0], pg_cloud)
    baseline = take_baseline(spec)
    baseline["payments"]["counters"] = [10**9, 0, 0]  # as if the server had crashed since

    found = changes_since(spec, baseline)

    assert found.changed_rows is None
    assert "counters went back" in found.problems[0]


# ------------------------------------------------------------- replication: the original's lag
REPLICATED = ["public.payments"]


@pytest.fixture
def replicated_spec(pg_pair: PgPair, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Spec, str]]:
    """A system replicated both ways, turned around (the original follows the cloud copy); its spec and cloud URL."""
    password = f"pw-{uuid.uuid4().hex}"
    original = pg_pair.original.url(pg_pair.original.create_database("orig"), password)
    cloud = pg_pair.cloud.url(pg_pair.cloud.create_database("cloud"), password)
    seed(original, 100)
    run_sql(cloud, SCHEMA)
    data = base_spec()
    tag = uuid.uuid4().hex[:8].upper()
    monkeypatch.setenv(f"DIV_ORIG_{tag}", original)
    monkeypatch.setenv(f"DIV_CLOUD_{tag}", cloud)
    data["secrets"] = {
        "orig_db": {"source": "env", "name": f"DIV_ORIG_{tag}"},
        "cloud_db": {"source": "env", "name": f"DIV_CLOUD_{tag}"},
    }
    data["data"] = {
        "replication": "postgresql-logical",
        "original": {"secret": "orig_db"},
        "cloud": {"secret": "cloud_db"},
        "tables": REPLICATED,
    }
    spec = Spec.model_validate(data)
    start_forward(spec.system.id, original, cloud, REPLICATED)
    wait_caught_up(spec.system.id, original, cloud, timeout_s=60)
    turn_around(spec.system.id, original, cloud, REPLICATED)
    yield spec, cloud
    drop_all(spec.system.id, original, cloud)


def test_a_replicated_system_reports_the_originals_lag_beside_the_rows_the_cloud_changed(
    replicated_spec: tuple[Spec, str],
) -> None:
    spec, cloud = replicated_spec
    baseline = take_baseline(spec)

    run_sql(cloud, "INSERT INTO payments (id, amount) VALUES (1001, 1), (1002, 2), (1003, 3)")
    found = wait_until(
        lambda: changes_since(spec, baseline),
        what="the three inserts counted and the original caught up",
        timeout_s=60,
        ready=lambda d: d.changed_rows == 3 and d.lag_bytes == 0,
    )

    assert found.replicated and found.behind_s is not None and not found.problems
    assert found.describe() == f"3 changed rows; the original is {found.behind_s:.1f} seconds behind (0 bytes of WAL)"


# -------------------------------------------------------------------- the watch's sample, the ledger
def test_the_watch_sample_is_recorded_and_read_back_for_status_and_the_rollback(
    spec_with_data: MakeSpec, ledger: Ledger, new_system: NewSystem, sqlite_pair: tuple[str, str]
) -> None:
    system_id = new_system(ledger)
    spec = spec_with_data(*sqlite_pair, system_id=system_id)
    run = ledger.create_run(system_id, RunKind.CUTOVER)
    ledger.open_retention_window(system_id, run.id, ledger.now() + timedelta(days=92))
    ledger.record_divergence_baseline(system_id, run.id, take_baseline(spec))
    run_sql(sqlite_pair[1], "DELETE FROM payments WHERE id = 7")

    recorded = sample(ledger, spec)

    latest = ledger.latest_divergence(system_id)
    assert recorded is not None and latest is not None and latest.changed_rows == 1
    assert latest.id == recorded.id and ledger.latest_divergences()[system_id].id == latest.id
    assert summary(latest).startswith("approximately 1 changed rows; the original is")
    assert rollback_notice(latest).startswith(
        "this rollback carries back approximately 1 changed rows; the original is"
    )
    assert "seconds behind" in rollback_notice(latest)


def test_before_a_rollback_the_watchs_newest_sample_is_said_and_fresh_measures_now(
    spec_with_data: MakeSpec, ledger: Ledger, new_system: NewSystem, sqlite_pair: tuple[str, str]
) -> None:
    system_id = new_system(ledger)
    spec = spec_with_data(*sqlite_pair, system_id=system_id)
    run = ledger.create_run(system_id, RunKind.CUTOVER)
    ledger.open_retention_window(system_id, run.id, ledger.now() + timedelta(days=92))
    ledger.record_divergence_baseline(system_id, run.id, take_baseline(spec))

    first = before_rollback(ledger, spec)  # no sample yet: measured now
    run_sql(sqlite_pair[1], "DELETE FROM payments WHERE id = 7")
    newest = before_rollback(ledger, spec)  # the sample just recorded: no database read
    fresh = before_rollback(ledger, spec, fresh=True)

    assert first.startswith("this rollback carries back 0 changed rows; the original is")
    assert newest.startswith("this rollback carries back 0 changed rows")
    assert fresh.startswith("this rollback carries back approximately 1 changed rows; the original is")


def test_before_a_rollback_of_a_system_without_data_it_says_nothing_is_carried(
    ledger: Ledger, new_system: NewSystem
) -> None:
    spec = Spec.model_validate(base_spec(new_system(ledger)))

    assert before_rollback(ledger, spec).startswith("this rollback carries back no database the spec declares")


def test_a_rollback_before_any_sample_says_so(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)

    assert ledger.latest_divergence(system_id) is None
    assert rollback_notice(None).endswith("unknown, no divergence sample yet")


def test_a_system_without_a_baseline_records_an_unknown_divergence(
    spec_with_data: MakeSpec, ledger: Ledger, new_system: NewSystem, sqlite_pair: tuple[str, str]
) -> None:
    system_id = new_system(ledger)
    spec = spec_with_data(*sqlite_pair, system_id=system_id)
    run = ledger.create_run(system_id, RunKind.CUTOVER)
    ledger.open_retention_window(system_id, run.id, ledger.now() + timedelta(days=92))

    recorded = sample(ledger, spec)

    assert recorded is not None and recorded.changed_rows is None
    assert "no baseline was recorded" in rollback_notice(recorded)


def test_samples_of_one_hour_fold_into_one_row_the_newest_winning(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    run = ledger.create_run(system_id, RunKind.CUTOVER)
    for minute, rows in ((5, 3), (35, 8)):
        found = Divergence([], behind_s=60.0)
        record = found.record(system_id, run.id, T0 + timedelta(minutes=minute))
        ledger.record_divergence(replace(record, changed_rows=rows))

    latest = ledger.latest_divergence(system_id)
    assert latest is not None and latest.changed_rows == 8 and latest.taken_at == T0 + timedelta(minutes=35)
