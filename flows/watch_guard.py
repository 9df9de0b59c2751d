"""The watch is never left without a watcher, worker restarts included.

A watch run probes every retained system (:mod:`flows.watch`). When its worker dies (SIGTERM,
``kill -9``, a reboot), the run stays ``Running`` in Prefect until its heartbeats have been silent
for ``CUTOVER_RECOVERY_SILENCE_S`` (≥ 45 s): that long, nobody probes. Every cutover worker closes
that gap with :func:`keep_watching`, as it starts and then whenever a system would next go
unprobed (:func:`flows.watch_guard.next_check_in`):

- a retained system unprobed for longer than :func:`stale_after_s` (its interval plus a little) means
  no watch run is alive: the watch runs whose process is gone are marked ``Crashed`` (they hold
  the deployment's two concurrency slots, and they are not probing) — a process on this host is
  looked up by its pid (the cutover worker records ``host:pid``), elsewhere a ``Running`` run
  older than :data:`START_GRACE_S` is taken for dead;
- a watch run is started at once, unless one is already on its way (scheduled to start now,
  pending, or started within :data:`START_GRACE_S`). Two workers doing this at once start one run:
  both use the same idempotency key, from the system's last probe.

The ``recover`` flow the crash starts (:mod:`flows.recovery`) then finds the new run waiting and
starts no other. A watch run that was only slow, not dead, goes on probing: the probes are shared
through the ledger's claims, so nothing is probed twice.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from prefect import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import ObjectNotFound
from prefect.states import Crashed

from cutover.ledger import HealthObservation, Ledger, LifecycleState
from cutover.runtime import open_ledger
from cutover.settings import Settings, get_settings
from cutover.spec import Spec
from flows._watch_sweep import SpecIndex

__all__ = [
    "START_GRACE_S",
    "WATCH_DEPLOYMENT",
    "Unwatched",
    "WatchKeeper",
    "keep_watching",
    "next_check_in",
    "silence",
    "stale_after_s",
]

WATCH_DEPLOYMENT = "watch-retention/watch"
#: A watch run that started this recently may not have swept yet: it is on its way, not dead.
START_GRACE_S = 60.0
#: How often a worker looks when nothing is due sooner (no retained system, or all just probed).
IDLE_CHECK_S = 30.0
_ON_ITS_WAY = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING]


def stale_after_s(interval_s: float) -> float:
    """Seconds without a probe after which nobody watches a system: its interval and a quarter,
    at least 3 s more (a live watcher claims at 0.9 interval; a sweep on a busy machine runs late)."""
    return max(1.25 * interval_s, interval_s + 3.0)


@dataclass(frozen=True)
class Unwatched:
    """A retained system nobody has probed for ``silent_s`` (its watch interval ``interval_s``)."""

    system_id: str
    silent_s: float
    interval_s: float
    last_probe: datetime


def _retained(ledger: Ledger, specs: dict[str, Spec]) -> dict[str, tuple[Spec, datetime]]:
    """Retained systems with an open window and a spec with health checks, with their window's opening."""
    states = {s.id: s.state for s in ledger.list_systems(state=LifecycleState.RETAINED)}
    found: dict[str, tuple[Spec, datetime]] = {}
    for window in ledger.list_open_retention_windows():
        spec = specs.get(window.system_id)
        if window.system_id in states and spec is not None and spec.cutover and spec.cutover.health:
            found[window.system_id] = (spec, _aware(window.opened_at))
    return found


def _last_probes(ledger: Ledger, system_ids: list[str], since: datetime) -> dict[str, datetime]:
    """Each system's newest probe (or claim) of any check since ``since``, one query."""
    if not system_ids:
        return {}
    statement = (
        sa.select(HealthObservation.system_id, sa.func.max(HealthObservation.last_at))
        .where(HealthObservation.system_id.in_(system_ids), HealthObservation.bucket_start >= since)
        .group_by(HealthObservation.system_id)
    )
    with ledger.session() as session:
        return {system_id: _aware(at) for system_id, at in session.execute(statement) if at is not None}


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def silence(ledger: Ledger, specs: dict[str, Spec], now: datetime) -> list[Unwatched]:
    """Every retained system with how long since its last probe (since its window opened, if never)."""
    retained = _retained(ledger, specs)
    last = _last_probes(ledger, list(retained), now - timedelta(hours=2))
    return [
        Unwatched(system_id, (now - seen).total_seconds(), spec.retention.watch.interval.total_seconds(), seen)
        for system_id, (spec, opened) in retained.items()
        for seen in [max(last.get(system_id, opened), opened)]
    ]


def next_check_in(quiet: list[Unwatched]) -> float:
    """Seconds until the first of these systems would go stale (at least 2, at most :data:`IDLE_CHECK_S`)."""
    due = [stale_after_s(u.interval_s) - u.silent_s for u in quiet]
    return min(max(min(due, default=IDLE_CHECK_S), 2.0), IDLE_CHECK_S)


def keep_watching(ledger: Ledger, specs: dict[str, Spec], *, work_pool: str, now: datetime | None = None) -> str | None:
    """If a retained system has gone unwatched, crash the dead watch runs and start one; what was done.

    Only the watch deployment of ``work_pool`` is touched (another pool's workers keep their own).
    None when everything is watched, or no watch deployment serves this pool.
    """
    at = now or datetime.now(UTC)
    stale = [u for u in silence(ledger, specs, at) if u.silent_s > stale_after_s(u.interval_s)]
    if not stale:
        return None
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(WATCH_DEPLOYMENT)
        except ObjectNotFound:
            return None
        if deployment.work_pool_name != work_pool:
            return None
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=_ON_ITS_WAY))),
        )
        worst = max(stale, key=lambda u: u.silent_s)
        said = f"{worst.system_id} unprobed for {worst.silent_s:.0f} s (interval {worst.interval_s:g} s)"
        dead = [run for run in runs if _dead(run, at)]
        for run in dead:
            client.set_flow_run_state(run.id, Crashed(message=f"no probe from it: {said}; replaced"), force=True)
        coming = [run for run in runs if run not in dead and _on_its_way(run, at)]
        if coming:
            return f"{said}; watch run {coming[0].id} is on its way" + _crashed(dead)
        key = f"keep-watching:{deployment.id}:{worst.last_probe.isoformat()}"
        started = client.create_flow_run_from_deployment(deployment.id, idempotency_key=key)
    return f"{said}; watch run {started.id} started" + _crashed(dead)


def _crashed(dead: list[FlowRun]) -> str:
    return f" (marked Crashed: {', '.join(str(run.id) for run in dead)})" if dead else ""


def _dead(run: FlowRun, now: datetime) -> bool:
    """A watch run whose process is gone while a system goes unprobed.

    A run whose process was started on this host (``infrastructure_pid`` ``host:pid``, as the cutover
    worker records it) is dead when that process is; elsewhere, a Running run past its start-up is.
    """
    pid = _local_pid(run.infrastructure_pid)
    if pid is not None and run.state_type in (StateType.RUNNING, StateType.PENDING):
        return not _alive(pid)
    started = run.start_time
    return run.state_type is StateType.RUNNING and (
        started is None or (now - _aware(started)).total_seconds() > START_GRACE_S
    )


def _local_pid(infrastructure_pid: str | None) -> int | None:
    host, _, number = (infrastructure_pid or "").rpartition(":")
    return int(number) if host == socket.gethostname() and number.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _on_its_way(run: FlowRun, now: datetime) -> bool:
    if run.state_type is StateType.SCHEDULED:
        expected = run.next_scheduled_start_time or run.expected_start_time
        return expected is None or _aware(expected) <= now + timedelta(seconds=5)
    return True  # pending, or running and still starting


class WatchKeeper:
    """What a cutover worker runs, as it starts and then when :func:`next_check_in` says."""

    def __init__(self, work_pool: str, settings: Settings | None = None) -> None:
        chosen = settings or get_settings()
        self.work_pool = work_pool
        self.ledger = open_ledger(chosen)
        self.index = SpecIndex(chosen.specs_dir)

    def check(self) -> tuple[str | None, float]:
        """What :func:`keep_watching` did (None: nothing needed), and the seconds until the next check."""
        specs = self.index.specs()
        said = keep_watching(self.ledger, specs, work_pool=self.work_pool)
        quiet = silence(self.ledger, specs, datetime.now(UTC))
        if said is None and any(u.silent_s > stale_after_s(u.interval_s) for u in quiet):
            return None, IDLE_CHECK_S  # unwatched, but no watch deployment of this pool: not this worker's to start
        return said, next_check_in(quiet)
