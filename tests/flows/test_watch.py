"""The retention watch (flows/_watch_sweep.py): K failures roll back, one does not, a lost original alerts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cutover.ledger import Ledger, LifecycleState
from cutover.lifecycle import current_state
from cutover.settings import Settings
from cutover.spec import Spec
from demo.estate import Estate
from flows._watch_ready import Readiness
from flows._watch_sweep import SweepReport, WatchHooks, WatchState, sweep_once
from rollback import run_rollback
from tasks.divergence import record_baseline
from tests.rollback._retained import cut_over_for_real, estate_spec, retained_on_paper, whoami

FAST_WATCH = {"months": 3, "watch": {"interval": "0.2s", "failures_to_rollback": 3}}


@dataclass
class Recorder:
    """Hooks that record what the watcher asked for; rollbacks run for real when ``ledger`` is given."""

    ledger: Ledger | None = None
    settings: Settings | None = None
    rollbacks: list[tuple[str, str]] = field(default_factory=list)
    alerts: list[tuple[str, list[Readiness]]] = field(default_factory=list)
    divergence: list[tuple[str, int | None]] = field(default_factory=list)

    def hooks(self) -> WatchHooks:
        return WatchHooks(
            rollback=self._rollback,
            alert=lambda spec, seen: self.alerts.append((spec.system.id, seen)),
            divergence=lambda spec, found: self.divergence.append((spec.system.id, found.changed_rows)),
        )

    def _rollback(self, spec: Spec, reason: str) -> str:
        self.rollbacks.append((spec.system.id, reason))
        if self.ledger is not None:
            return run_rollback(spec, self.ledger, actor="watch", settings=self.settings).summary()
        return "recorded"


@dataclass
class SweepClock:
    """The sweeps' monotonic clock, moved by the test instead of waiting for wall time to pass."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def _sweeps(
    ledger: Ledger, spec: Spec, hooks: WatchHooks, state: WatchState, settings: Settings, n: int, before: Any = None
) -> list[SweepReport]:
    """``n`` sweeps, each one watch interval after the last on the sweeps' clock."""
    clock = SweepClock()
    reports = []
    for i in range(n):
        if before is not None:
            before(i)
        sweep = sweep_once(ledger, {spec.system.id: spec}, hooks, state, settings=settings, clock=clock)
        reports.append(asyncio.run(sweep))
        clock.now += spec.retention.watch.interval.total_seconds()
    return reports


def _cloud_healthy(estate: Estate, healthy: bool) -> None:
    response = httpx.post(f"{estate.app_url('cloud')}/admin/faults", json={"healthy": healthy}, trust_env=False)
    response.raise_for_status()


@pytest.mark.usefixtures("demo_secrets")
def test_k_consecutive_failed_checks_roll_the_system_back_automatically(
    clean_estate: Estate, rb_ledger: Ledger, settings: Settings
) -> None:
    spec = estate_spec(clean_estate, retention=FAST_WATCH)
    cut_over_for_real(clean_estate, rb_ledger, spec, settings)
    recorder = Recorder(rb_ledger, settings)
    state = WatchState(readiness_every=timedelta(hours=1))
    _cloud_healthy(clean_estate, False)

    reports = _sweeps(rb_ledger, spec, recorder.hooks(), state, settings, 4)

    assert [len(r.rollbacks) for r in reports] == [0, 0, 1, 0]
    assert reports[3].systems == 0  # rolled back: no longer watched
    assert len(recorder.rollbacks) == 1 and "gateway-health failed 3 times in a row" in recorder.rollbacks[0][1]
    assert "(last: expected HTTP 200; got " in recorder.rollbacks[0][1]  # what the check expected and got
    assert current_state(rb_ledger, spec.system.id) is LifecycleState.ROLLED_BACK
    assert whoami(clean_estate) == "legacy"
    assert rb_ledger.consecutive_failures(spec.system.id, "gateway-health") == 3


def test_a_single_failed_check_between_successes_does_nothing(
    clean_estate: Estate, rb_ledger: Ledger, settings: Settings
) -> None:
    cloud_health = {
        "kind": "http_check",
        "id": "cloud-health",
        "name": "cloud",
        "url": f"{clean_estate.app_url('cloud')}/healthz",
    }
    spec = estate_spec(clean_estate, retention=FAST_WATCH)
    spec = estate_spec(
        clean_estate,
        system_id=spec.system.id,
        retention=FAST_WATCH,
        cutover={**spec.model_dump(mode="json", exclude_none=True)["cutover"], "health": [cloud_health]},
    )
    retained_on_paper(rb_ledger, spec)
    recorder = Recorder()
    pattern = [True, False, True, False, False, True, False, True]

    reports = _sweeps(
        rb_ledger,
        spec,
        recorder.hooks(),
        WatchState(),
        settings,
        len(pattern),
        before=lambda i: _cloud_healthy(clean_estate, pattern[i]),
    )

    assert [r.failed for r in reports] == [0 if ok else 1 for ok in pattern]
    assert recorder.rollbacks == [] and recorder.alerts == []
    assert current_state(rb_ledger, spec.system.id) is LifecycleState.RETAINED
    assert rb_ledger.consecutive_failures(spec.system.id, "cloud-health") == 0
    hours = rb_ledger.health_history(spec.system.id)
    assert sum(h.checks for h in hours if h.check_name == "cloud-health") == len(pattern)


def test_an_original_no_longer_ready_raises_an_alert_and_is_not_rolled_back(
    estate: Estate, rb_ledger: Ledger, settings: Settings
) -> None:
    spec = estate_spec(estate, retention=FAST_WATCH)
    hosts = spec.model_dump(mode="json", exclude_none=True)["hosts"]
    hosts["legacy"]["port"] = 9  # nothing listens there: the original's host is gone
    spec = estate_spec(estate, system_id=spec.system.id, retention=FAST_WATCH, hosts=hosts)
    retained_on_paper(rb_ledger, spec)
    recorder = Recorder()

    (report,) = _sweeps(rb_ledger, spec, recorder.hooks(), WatchState(), settings, 1)

    assert recorder.rollbacks == []
    assert [(system, [r.check for r in seen]) for system, seen in recorder.alerts] == [
        (spec.system.id, ["ready-legacy"])
    ]
    assert "not reachable over SSH" in report.alerts[spec.system.id]
    assert rb_ledger.consecutive_failures(spec.system.id, "ready-legacy") == 1
    assert rb_ledger.consecutive_failures(spec.system.id, "ready-gateway") == 0


@pytest.mark.usefixtures("demo_secrets")
def test_the_divergence_is_sampled_once_per_readiness_round_not_at_every_probe(
    clean_estate: Estate, rb_ledger: Ledger, settings: Settings
) -> None:
    spec = estate_spec(clean_estate, retention=FAST_WATCH)
    retained = retained_on_paper(rb_ledger, spec)
    assert record_baseline(rb_ledger, spec, retained.cutover_run_id) == 2
    recorder = Recorder()
    cloud = sa.create_engine(clean_estate.db_url("cloud"))
    with cloud.begin() as connection:  # the cloud copy takes a write after the cutover
        connection.execute(sa.text("UPDATE insured SET balance = balance + 1 WHERE id = 1"))
    try:
        reports = _sweeps(
            rb_ledger, spec, recorder.hooks(), WatchState(readiness_every=timedelta(hours=1)), settings, 3
        )
    finally:
        with cloud.begin() as connection:
            connection.execute(sa.text("UPDATE insured SET balance = balance - 1 WHERE id = 1"))
        cloud.dispose()

    assert [list(r.divergence) for r in reports] == [[spec.system.id], [], []]
    assert recorder.divergence == [(spec.system.id, 1)]
    assert reports[0].divergence[spec.system.id].startswith("approximately 1 changed rows; the original is")
    latest = rb_ledger.latest_divergence(spec.system.id)
    assert latest is not None and latest.detail["tables"][0]["table"] == "insured"
