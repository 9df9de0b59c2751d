"""Tests of retention windows, health observations and stress results (cutover/ledger/_watch.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from cutover.errors import LedgerError
from cutover.ledger import HealthProbe, Ledger, ProbeStatus, RetentionCloseReason, RunKind

NewSystem = Callable[[Ledger], str]
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def _probe(system_id: str, passed: bool, minutes: int, latency_ms: float = 10.0) -> HealthProbe:
    return HealthProbe(system_id, "healthz", passed=passed, latency_ms=latency_ms, at=T0 + timedelta(minutes=minutes))


def test_probes_within_one_hour_fold_into_one_row(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)

    ledger.record_health(
        [_probe(system_id, True, 0, 10.0), _probe(system_id, False, 20, 30.0), _probe(system_id, True, 59, 20.0)]
    )

    (row,) = ledger.health_history(system_id)
    assert (row.bucket_start, row.checks, row.failures) == (T0, 3, 1)
    assert (row.latency_sum_ms, row.latency_max_ms, row.last_status) == (60.0, 30.0, ProbeStatus.PASSED)


def test_consecutive_failures_carry_across_hours_and_reset_on_success(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)

    streaks = [ledger.record_health([_probe(system_id, False, minutes)]) for minutes in (50, 55, 65)]

    assert [s[(system_id, "healthz")] for s in streaks] == [1, 2, 3]
    assert ledger.consecutive_failures(system_id, "healthz") == 3
    assert [row.checks for row in ledger.health_history(system_id)] == [2, 1]
    ledger.record_health([_probe(system_id, True, 70)])
    assert ledger.consecutive_failures(system_id, "healthz") == 0


def test_probes_of_an_unregistered_system_are_refused(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="is the system registered"):
        ledger.record_health([_probe("ghost", True, 0)])


def test_only_one_retention_window_is_open_per_system(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    run = ledger.create_run(system_id, RunKind.CUTOVER)
    window = ledger.open_retention_window(system_id, run.id, T0 + timedelta(days=92))

    with pytest.raises(LedgerError, match="already has a retention window open"):
        ledger.open_retention_window(system_id, run.id, T0 + timedelta(days=92))

    current = ledger.current_retention_window(system_id)
    assert current is not None and (current.id, current.ends_at) == (window.id, T0 + timedelta(days=92))
    assert window.id in [w.id for w in ledger.list_open_retention_windows()]


def test_a_closed_window_records_why_and_a_new_one_may_open(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    run = ledger.create_run(system_id, RunKind.CUTOVER)
    ledger.open_retention_window(system_id, run.id, T0)

    closed = ledger.close_retention_window(system_id, RetentionCloseReason.ROLLED_BACK)

    assert closed.close_reason is RetentionCloseReason.ROLLED_BACK and closed.closed_at is not None
    assert ledger.current_retention_window(system_id) is None
    with pytest.raises(LedgerError, match="no open retention window"):
        ledger.close_retention_window(system_id, RetentionCloseReason.DECOMMISSIONED)
    ledger.open_retention_window(system_id, run.id, T0)


def test_stress_results_keep_their_metrics(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    run = ledger.create_run(system_id, RunKind.CUTOVER)

    ledger.record_stress_result(run.id, system_id, {"p95_ms": 420.5, "rps": 57}, passed=True)

    latest = ledger.latest_stress_result(system_id)
    assert latest is not None and (latest.metrics, latest.passed) == ({"p95_ms": 420.5, "rps": 57}, True)
