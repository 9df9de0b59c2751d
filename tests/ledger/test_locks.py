"""Tests of the per-system lock (cutover/ledger/_locks.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from cutover.errors import ConcurrencyRefused, LedgerError
from cutover.ledger import Ledger, RunKind

NewSystem = Callable[[Ledger], str]


def _runs(ledger: Ledger, system_id: str, count: int) -> list[str]:
    return [ledger.create_run(system_id, RunKind.ROLLBACK).id for _ in range(count)]


def test_acquiring_a_held_lock_is_refused_naming_the_holder(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    first, second = _runs(ledger, system_id, 2)
    ledger.acquire_lock(system_id, first, RunKind.CUTOVER)

    with pytest.raises(
        ConcurrencyRefused, match=f"is locked by cutover run {first} since .* this rollback was not started"
    ):
        ledger.acquire_lock(system_id, second, RunKind.ROLLBACK)


def test_the_holder_acquiring_again_keeps_its_lock(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    (holder,) = _runs(ledger, system_id, 1)

    first = ledger.acquire_lock(system_id, holder, RunKind.ROLLBACK)
    again = ledger.acquire_lock(system_id, holder, RunKind.ROLLBACK)

    assert again.acquired_at == first.acquired_at


def test_after_release_another_run_may_acquire(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    first, second = _runs(ledger, system_id, 2)
    ledger.acquire_lock(system_id, first, RunKind.CUTOVER)

    assert ledger.release_lock(system_id, first)
    lock = ledger.acquire_lock(system_id, second, RunKind.ROLLBACK)

    assert (lock.holder_run_id, lock.kind) == (second, RunKind.ROLLBACK)


def test_a_release_by_a_run_not_holding_the_lock_changes_nothing(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    first, second = _runs(ledger, system_id, 2)
    ledger.acquire_lock(system_id, first, RunKind.CUTOVER)

    assert not ledger.release_lock(system_id, second)
    lock = ledger.get_lock(system_id)
    assert lock is not None and lock.holder_run_id == first


def test_locking_for_an_unknown_run_says_what_is_missing(ledger: Ledger, new_system: NewSystem) -> None:
    with pytest.raises(LedgerError, match="the system or the run is not in the ledger"):
        ledger.acquire_lock(new_system(ledger), "no-such-run", RunKind.CUTOVER)


def test_two_processes_racing_for_a_lock_get_exactly_one_winner(db_url: str, new_system: NewSystem) -> None:
    ledgers = [Ledger(db_url) for _ in range(2)]
    system_id = new_system(ledgers[0])
    holders = _runs(ledgers[0], system_id, 2)
    outcomes: list[str] = []
    start = threading.Barrier(2, timeout=5)

    def race(ledger: Ledger, holder: str) -> None:
        start.wait()
        try:
            ledger.acquire_lock(system_id, holder, RunKind.ROLLBACK)
            outcomes.append("won")
        except ConcurrencyRefused:
            outcomes.append("refused")

    threads = [threading.Thread(target=race, args=pair) for pair in zip(ledgers, holders, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    lock = ledgers[0].get_lock(system_id)
    for ledger in ledgers:
        ledger.dispose()

    assert sorted(outcomes) == ["refused", "won"]
    assert lock is not None and lock.holder_run_id in holders


def test_a_stale_lock_is_replaced_only_by_an_explicit_override(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    dead, rescuer = _runs(ledger, system_id, 2)
    ledger.acquire_lock(system_id, dead, RunKind.CUTOVER)

    lock = ledger.override_lock(system_id, stale_holder=dead, holder=rescuer, kind=RunKind.ROLLBACK)

    assert (lock.holder_run_id, lock.kind) == (rescuer, RunKind.ROLLBACK)
    assert not ledger.release_lock(system_id, dead)


def test_an_override_is_refused_when_the_stale_holder_no_longer_holds_the_lock(
    ledger: Ledger, new_system: NewSystem
) -> None:
    system_id = new_system(ledger)
    dead, other, rescuer = _runs(ledger, system_id, 3)
    ledger.acquire_lock(system_id, other, RunKind.CUTOVER)

    with pytest.raises(ConcurrencyRefused, match=f"locked by cutover run {other}"):
        ledger.override_lock(system_id, stale_holder=dead, holder=rescuer, kind=RunKind.ROLLBACK)
    ledger.release_lock(system_id, other)
    with pytest.raises(ConcurrencyRefused, match="was released meanwhile; acquire it normally"):
        ledger.override_lock(system_id, stale_holder=dead, holder=rescuer, kind=RunKind.ROLLBACK)
