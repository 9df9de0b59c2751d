"""Tests of the ledger's Alembic migrations (cutover/ledger/migrations)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from cutover.ledger import (
    Base,
    HealthProbe,
    Ledger,
    RunKind,
    StepPhase,
    StepStatus,
    current_revision,
    downgrade,
    migration_heads,
    upgrade,
)
from cutover.ledger._engine import MIGRATIONS_DIR
from cutover.lifecycle import register_system


def test_the_migrations_have_a_single_head() -> None:
    assert len(migration_heads()) == 1


def test_the_migrations_ship_inside_the_package_with_date_prefixed_names() -> None:
    versions = sorted(path.name for path in (MIGRATIONS_DIR / "versions").glob("*.py"))

    assert MIGRATIONS_DIR.parent.name == "ledger" and (MIGRATIONS_DIR / "env.py").is_file()
    assert versions and all(re.fullmatch(r"\d{4}_\d{2}_\d{2}_\d{4}_\w+\.py", name) for name in versions)


def test_the_migrated_schema_is_exactly_what_the_models_declare(ledger: Ledger) -> None:
    with ledger.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migrating_an_up_to_date_ledger_changes_nothing(isolated_ledger: Ledger) -> None:
    isolated_ledger.migrate()

    assert current_revision(isolated_ledger.engine) == migration_heads()[0]


def _count(ledger: Ledger, table: str) -> int:
    with ledger.engine.connect() as connection:
        return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_downgrading_past_health_observations_and_upgrading_keeps_the_data_of_untouched_tables(
    isolated_ledger: Ledger,
) -> None:
    register_system(
        isolated_ledger, system_id="hrss", name="社保", department="人社厅", disposition="migrate", actor="t"
    )
    probe = HealthProbe("hrss", "http", passed=True, latency_ms=12.0, at=datetime(2026, 11, 26, tzinfo=UTC))
    isolated_ledger.record_health([probe])

    downgrade(isolated_ledger.engine, "5e1f0c2a0001")
    assert "health_observations" not in sa.inspect(isolated_ledger.engine).get_table_names()
    upgrade(isolated_ledger.engine)

    assert isolated_ledger.require_system("hrss").name == "社保"
    assert (_count(isolated_ledger, "audit_events"), _count(isolated_ledger, "health_observations")) == (1, 0)
    isolated_ledger.record_health([probe])


def test_downgrading_to_base_removes_everything_and_upgrading_rebuilds_it(isolated_ledger: Ledger) -> None:
    downgrade(isolated_ledger.engine, "base")
    assert sa.inspect(isolated_ledger.engine).get_table_names() in ([], ["alembic_version"])

    isolated_ledger.migrate()

    register_system(
        isolated_ledger, system_id="hrss", name="社保", department="人社厅", disposition="migrate", actor="t"
    )
    assert _count(isolated_ledger, "audit_events") == 1


def test_the_schema_head_constant_is_the_single_alembic_head() -> None:
    from cutover.ledger._engine import SCHEMA_HEAD

    assert migration_heads() == [SCHEMA_HEAD], "update SCHEMA_HEAD in cutover/ledger/_engine.py to the new head"


def _step_rows(ledger: Ledger) -> list[tuple[object, ...]]:
    with ledger.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text("SELECT step_id, status FROM step_executions"))]


def test_the_step_digest_migration_round_trips_keeping_each_keys_newest_attempt(isolated_ledger: Ledger) -> None:
    ledger = isolated_ledger
    register_system(ledger, system_id="hrss", name="社保", department="人社厅", disposition="migrate", actor="t")
    run = ledger.create_run("hrss", RunKind.CUTOVER)
    for status in (StepStatus.FAILED, StepStatus.SUCCEEDED):
        ledger.begin_step(run.id, "sync", step_digest="sm3:v1", phase=StepPhase.CUTOVER)
        ledger.finish_step(run.id, "sync", status=status)

    downgrade(ledger.engine, "5e1f0c2a0002")
    columns = {column["name"] for column in sa.inspect(ledger.engine).get_columns("step_executions")}
    assert {"attempt", "step_digest"}.isdisjoint(columns)
    assert _step_rows(ledger) == [("sync", "succeeded")]
    with ledger.engine.begin() as connection:  # no triggers at the old revision
        connection.execute(sa.text("UPDATE step_executions SET status = 'succeeded'"))

    upgrade(ledger.engine)

    kept = ledger.get_step(run.id, "sync")
    assert kept is not None and (kept.attempt, kept.step_digest, kept.status) == (1, None, StepStatus.SUCCEEDED)
    again = ledger.begin_step(run.id, "sync", step_digest="sm3:v1", phase=StepPhase.CUTOVER)
    assert again.is_new and again.record.attempt == 2  # a result from before step digests never counts
    with pytest.raises(sa.exc.DBAPIError, match="DELETE refused"), ledger.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM step_executions"))
