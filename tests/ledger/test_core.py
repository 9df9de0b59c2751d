"""Tests of the ledger's core (cutover/ledger/_core.py, _engine.py, _types.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from cutover.errors import LedgerError
from cutover.ledger import Ledger, RunKind, ledger_of
from cutover.settings import Settings

NewSystem = Callable[[Ledger], str]


def test_times_come_back_timezone_aware_in_utc(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    run = ledger.create_run(system_id, RunKind.CUTOVER)

    stored = ledger.get_run(run.id)

    assert stored is not None and stored.started_at.tzinfo is UTC
    assert stored.started_at == run.started_at


def test_a_clock_in_another_zone_is_stored_as_the_same_instant(db_url: str, new_system: NewSystem) -> None:
    beijing = datetime(2026, 11, 26, 18, 30, tzinfo=timezone(timedelta(hours=8)))
    ledger = Ledger(db_url, clock=lambda: beijing)
    try:
        run = ledger.create_run(new_system(ledger), RunKind.CUTOVER)
        stored = ledger.get_run(run.id)
    finally:
        ledger.dispose()

    assert stored is not None and stored.started_at == datetime(2026, 11, 26, 10, 30, tzinfo=UTC)


def test_a_naive_clock_is_refused(db_url: str) -> None:
    ledger = Ledger(db_url, clock=lambda: datetime(2026, 11, 26))
    try:
        with pytest.raises(LedgerError, match=r"naive datetime .* timezone-aware"):
            ledger.now()
    finally:
        ledger.dispose()


def test_a_database_error_surfaces_as_a_ledger_error_naming_the_database(ledger: Ledger) -> None:
    expected = f"the ledger at {re.escape(ledger.safe_url)} refused .* check the ids given"
    with pytest.raises(LedgerError, match=expected) as refused:
        ledger.create_run("no-such-system", RunKind.CUTOVER)

    assert isinstance(refused.value.__cause__, sa.exc.IntegrityError)


def test_an_unmigrated_database_says_to_migrate(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with pytest.raises(LedgerError, match=r"no such table.*Ledger\.migrate\(\)"):
            ledger.list_systems()
    finally:
        ledger.dispose()


def test_sqlite_connections_enforce_foreign_keys_and_wait_when_busy(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with ledger.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 10_000
    finally:
        ledger.dispose()


def test_from_settings_uses_the_configured_url_and_digest(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, home=tmp_path, digest="sha256")

    ledger = Ledger.from_settings(settings)
    try:
        assert (ledger.safe_url, ledger.digest) == (f"sqlite:///{tmp_path / 'ledger.db'}", "sha256")
    finally:
        ledger.dispose()


def test_the_password_of_a_ledger_url_is_never_shown() -> None:
    ledger = Ledger("postgresql+psycopg://cutover:s3cret@127.0.0.1:5432/ledger")

    assert "s3cret" not in repr(ledger) and "s3cret" not in ledger.safe_url
    ledger.dispose()


def test_a_session_knows_the_ledger_that_opened_it(ledger: Ledger) -> None:
    with ledger.session() as session:
        assert ledger_of(session) is ledger


def test_a_foreign_session_is_refused() -> None:
    with pytest.raises(LedgerError, match="not opened by a Ledger"):
        ledger_of(sa.orm.Session())
