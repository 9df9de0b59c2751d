"""One sweep of the retention watch: probe, record, decide.

A sweep takes every system whose retention window is open and whose lifecycle is ``retained``,
probes the health checks of the migrated system (``cutover.health``) that are due — all of them
at once, one async HTTP pool (:func:`tasks.health.sweep`) — and, less often, the original's
readiness for rollback (:mod:`flows._watch_ready`). Every probe is folded into the ledger's
hourly health rows (:meth:`Ledger.record_health`), which carry each check's count of consecutive
failures. A due check is probed only once this watcher has claimed it in the ledger
(:meth:`Ledger.claim_probes`): while two watch runs overlap at a hand-over, each check is probed by
one of them per interval, and the count goes on from the row, neither reset nor counted twice.
Then, per system:

- a health check failed ``retention.watch.failures_to_rollback`` (K) times in a row → the
  ``rollback`` hook is called, once per system per watcher (again at the next sweep if the hook
  could not start anything); one transient failure between passes does nothing;
- a readiness check failed → the ``alert`` hook is called; nothing is rolled back;
- with each readiness round, the cloud copy's divergence since the cutover is measured and recorded
  (:func:`tasks.divergence.sample`: bounded cost, not at every probe), beside the probes and the
  decisions, never before them (a large table's count does not delay a rollback); the ``divergence`` hook
  publishes it when it changed, or once an hour.

The hooks act (see :mod:`flows._watch_hooks`); this module only decides, so it is tested and
benchmarked without Prefect.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from cutover.errors import CutoverError, SpecError
from cutover.ledger import YIELD_AFTER, DivergenceSample, HealthProbe, Ledger, LifecycleState, ProbeClaim
from cutover.settings import Settings
from cutover.spec import HttpCheckStep, Spec
from cutover.spec_loader import load, spec_files
from flows._watch_ready import Readiness, check_readiness
from tasks.divergence import sample, summary
from tasks.health import Probe, sweep

RollbackHook = Callable[[Spec, str], str | None]  # what was started; None: nothing, ask again next sweep
AlertHook = Callable[[Spec, list[Readiness]], None]
DivergenceHook = Callable[[Spec, DivergenceSample], None]


def _ignore_divergence(spec: Spec, found: DivergenceSample) -> None:
    """The default divergence hook: the sample is in the ledger; publish nothing."""


#: Requests in flight per HTTP connection pool (see :func:`_probe_health`).
POOL_SIZE = 8
#: Systems probed per batch; a batch is recorded while the next one is probed.
RECORD_BATCH = 100


@dataclass(frozen=True)
class WatchHooks:
    """What the watcher does about what it sees: request a rollback; raise a readiness alert; publish divergence."""

    rollback: RollbackHook
    alert: AlertHook
    divergence: DivergenceHook = _ignore_divergence


class SpecIndex:
    """The specs in a directory by system id, re-read only when a file changes (by mtime)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._by_path: dict[Path, tuple[int, Spec | None]] = {}

    def specs(self) -> dict[str, Spec]:
        """Every valid spec in the directory, by system id (invalid files are skipped)."""
        found: dict[str, Spec] = {}
        for path in spec_files([self.directory]):
            spec = self._load(path)
            if spec is not None:
                found[spec.system.id] = spec
        return found

    def _load(self, path: Path) -> Spec | None:
        mtime = path.stat().st_mtime_ns
        cached = self._by_path.get(path)
        if cached is None or cached[0] != mtime:
            try:
                cached = (mtime, load(path))
            except SpecError:
                cached = (mtime, None)
            self._by_path[path] = cached
        return cached[1]


@dataclass
class WatchState:
    """What one watcher remembers between sweeps: when each system was last probed, what it requested."""

    readiness_every: timedelta = timedelta(minutes=5)
    last_health: dict[str, float] = field(default_factory=dict)
    last_ready: dict[str, float] = field(default_factory=dict)
    requested: dict[str, str] = field(default_factory=dict)  # system -> what the rollback hook started
    claimed: dict[tuple[str, str], datetime] = field(default_factory=dict)  # (system, check) -> my last claim
    yielding: bool = False  # handing over to a newer watch run: probe only what it leaves
    published: dict[str, tuple[object, ...]] = field(default_factory=dict)  # system -> divergence last published


@dataclass
class SweepReport:
    """What one sweep did."""

    systems: int = 0
    probes: int = 0
    failed: int = 0
    lost: int = 0  # due checks another watcher had claimed (a hand-over is under way)
    readiness_checked: int = 0
    rollbacks: dict[str, str] = field(default_factory=dict)
    alerts: dict[str, str] = field(default_factory=dict)
    divergence: dict[str, str] = field(default_factory=dict)
    missing_specs: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def describe(self) -> str:
        return (
            f"{self.systems} retained systems, {self.probes} probes ({self.failed} failed), "
            f"{self.readiness_checked} readiness checks, {len(self.rollbacks)} rollbacks requested, "
            f"{len(self.alerts)} alerts, {len(self.divergence)} divergence samples, in {self.duration_s:.2f} s"
        )


async def sweep_once(
    ledger: Ledger,
    specs: dict[str, Spec],
    hooks: WatchHooks,
    state: WatchState,
    *,
    settings: Settings,
    concurrency: int = 32,
    clock: Callable[[], float] = time.monotonic,
) -> SweepReport:
    """Probe what is due, record it, and call the hooks for what needs acting on.

    ``clock`` (seconds, monotonic) decides what is due against ``state``'s last probes.
    """
    started = time.perf_counter()
    report = SweepReport()
    watched = await asyncio.to_thread(_retained, ledger, specs, report)
    report.systems = len(watched)
    now = clock()
    due = [spec for spec in watched if _due(state.last_health, spec, _interval(spec), now)]
    ready_due = [spec for spec in watched if _due(state.last_ready, spec, state.readiness_every.total_seconds(), now)]
    sampled = [] if state.yielding else ready_due  # the run handing over leaves the samples to the newer one
    sampling = asyncio.ensure_future(_sample_divergence(ledger, sampled))  # never delays a probe or a rollback
    readiness = await _probe_readiness(ready_due, settings)
    claimed = await asyncio.to_thread(_claim, ledger, due, state)
    report.lost = sum(len(_checks(spec)) for spec in due) - len(claimed)
    probes, streaks = await _probe_and_record(ledger, due, claimed, readiness, concurrency)
    for spec in due:
        if any(key[0] == spec.system.id for key in claimed):  # lost ones: asked again next sweep
            state.last_health[spec.system.id] = now
    for spec in ready_due:
        state.last_ready[spec.system.id] = now
    _tally(report, probes, readiness)
    last = {(system_id, p.check): p for system_id, p in probes}
    await asyncio.to_thread(_act, watched, (streaks, last), readiness, hooks, state, report)
    samples = await sampling
    report.divergence = {system_id: found for system_id, found in samples.items() if isinstance(found, str)}
    await asyncio.to_thread(_publish, watched, samples, hooks, state, report)
    report.duration_s = time.perf_counter() - started
    return report


def _claim(ledger: Ledger, due: list[Spec], state: WatchState) -> dict[tuple[str, str], datetime]:
    """Claim the due checks in the ledger; the ones this watcher may probe, at their claim times."""
    wanted = [
        ProbeClaim(spec.system.id, c.id, spec.retention.watch.interval, state.claimed.get((spec.system.id, c.id)))
        for spec in due
        for c in _checks(spec)
    ]
    if state.yielding:
        wanted = [replace(claim, mine=None, after=YIELD_AFTER) for claim in wanted]
    claimed = ledger.claim_probes(wanted) if wanted else {}
    state.claimed.update(claimed)
    return claimed


async def _probe_and_record(
    ledger: Ledger,
    due: list[Spec],
    claimed: dict[tuple[str, str], datetime],
    readiness: dict[str, list[Readiness]],
    concurrency: int,
) -> tuple[list[tuple[str, Probe]], dict[tuple[str, str], int]]:
    """Probe the claimed checks in batches, recording each batch (on a thread) while the next one is probed."""
    probes: list[tuple[str, Probe]] = []
    streaks = await asyncio.to_thread(ledger.record_health, _health_probes([], readiness))
    recording: asyncio.Task[dict[tuple[str, str], int]] | None = None
    for start in range(0, len(due), RECORD_BATCH):
        batch = await _probe_health(due[start : start + RECORD_BATCH], concurrency, claimed)
        probes += batch
        if recording is not None:
            streaks.update(await recording)
        recording = asyncio.create_task(asyncio.to_thread(ledger.record_health, _health_probes(batch, {}, claimed)))
    if recording is not None:
        streaks.update(await recording)
    return probes, streaks


def _retained(ledger: Ledger, specs: dict[str, Spec], report: SweepReport) -> list[Spec]:
    states = {system.id: system.state for system in ledger.list_systems()}
    watched: list[Spec] = []
    for window in ledger.list_open_retention_windows():
        if states.get(window.system_id) is not LifecycleState.RETAINED:
            continue
        spec = specs.get(window.system_id)
        if spec is None:
            report.missing_specs.append(window.system_id)
        else:
            watched.append(spec)
    return watched


def _interval(spec: Spec) -> float:
    return spec.retention.watch.interval.total_seconds()


def _due(last: dict[str, float], spec: Spec, every_s: float, now: float) -> bool:
    seen = last.get(spec.system.id)
    return seen is None or now - seen >= every_s * 0.9  # a little early rather than a tick late


def _checks(spec: Spec) -> list[HttpCheckStep]:
    return list(spec.cutover.health) if spec.cutover else []


async def _probe_health(
    due: list[Spec], concurrency: int, claimed: dict[tuple[str, str], datetime]
) -> list[tuple[str, Probe]]:
    """Probe every due check; ``concurrency`` requests in flight, over pools of at most ``POOL_SIZE``.

    httpx's connection pool scans its connections on every request, so one pool of hundreds
    costs more CPU than the requests themselves; several small pools keep that cost flat.
    """
    owners = [
        (spec.system.id, check) for spec in due for check in _checks(spec) if (spec.system.id, check.id) in claimed
    ]
    if not owners:
        return []
    shards = max(1, min(len(owners), -(-concurrency // POOL_SIZE)))
    parts = [owners[i::shards] for i in range(shards)]
    results = await asyncio.gather(*(sweep([c for _, c in part], concurrency=POOL_SIZE) for part in parts))
    return [
        (system_id, probe)
        for part, seen in zip(parts, results, strict=True)
        for (system_id, _), probe in zip(part, seen, strict=True)
    ]


async def _probe_readiness(due: list[Spec], settings: Settings, parallel: int = 16) -> dict[str, list[Readiness]]:
    limit = asyncio.Semaphore(parallel)

    async def one(spec: Spec) -> tuple[str, list[Readiness]]:
        async with limit:
            return spec.system.id, await asyncio.to_thread(check_readiness, spec, settings)

    return dict(await asyncio.gather(*(one(spec) for spec in due)))


async def _sample_divergence(ledger: Ledger, due: list[Spec], parallel: int = 4) -> dict[str, DivergenceSample | str]:
    """Measure and record each system's divergence (a sample, or why it could not be recorded)."""
    limit = asyncio.Semaphore(parallel)

    def one(spec: Spec) -> DivergenceSample | str | None:
        try:
            return sample(ledger, spec)
        except CutoverError as exc:
            return f"divergence not recorded: {exc}"

    async def run(spec: Spec) -> tuple[str, DivergenceSample | str | None]:
        async with limit:
            return spec.system.id, await asyncio.to_thread(one, spec)

    found = await asyncio.gather(*(run(spec) for spec in due))
    return {system_id: value for system_id, value in found if value is not None}


def _publish(
    watched: list[Spec],
    samples: dict[str, DivergenceSample | str],
    hooks: WatchHooks,
    state: WatchState,
    report: SweepReport,
) -> None:
    """Hand each new sample to the hook when it says something new, or an hour after it was last published."""
    for spec in watched:
        found = samples.get(spec.system.id)
        if not isinstance(found, DivergenceSample):
            continue
        report.divergence[spec.system.id] = summary(found)
        seen = (found.changed_rows, found.lag_bytes, tuple(found.detail.get("problems", [])), found.bucket_start)
        if state.published.get(spec.system.id) != seen:
            hooks.divergence(spec, found)
            state.published[spec.system.id] = seen


def _health_probes(
    probes: Iterable[tuple[str, Probe]],
    readiness: dict[str, list[Readiness]],
    claimed: dict[tuple[str, str], datetime] | None = None,
) -> list[HealthProbe]:
    at = claimed or {}
    rows = [
        HealthProbe(system_id, p.check, p.passed, p.latency_ms, at.get((system_id, p.check))) for system_id, p in probes
    ]
    for system_id, checks in readiness.items():
        rows += [HealthProbe(system_id, r.check, r.passed, r.latency_ms) for r in checks]
    return rows


def _tally(report: SweepReport, probes: list[tuple[str, Probe]], readiness: dict[str, list[Readiness]]) -> None:
    report.probes = len(probes)
    report.failed = sum(1 for _, p in probes if not p.passed)
    report.readiness_checked = sum(len(checks) for checks in readiness.values())


def _act(
    watched: list[Spec],
    health: tuple[dict[tuple[str, str], int], dict[tuple[str, str], Probe]],
    readiness: dict[str, list[Readiness]],
    hooks: WatchHooks,
    state: WatchState,
    report: SweepReport,
) -> None:
    for spec in watched:
        system_id = spec.system.id
        not_ready = [r for r in readiness.get(system_id, []) if not r.passed]
        if not_ready:
            hooks.alert(spec, not_ready)
            report.alerts[system_id] = "; ".join(r.describe() for r in not_ready)
        failing = _failing(spec, *health)
        if failing and system_id not in state.requested:
            started = hooks.rollback(spec, f"automatic rollback: {failing}")
            if started is not None:
                state.requested[system_id] = report.rollbacks[system_id] = started


def _failing(spec: Spec, streaks: dict[tuple[str, str], int], last: dict[tuple[str, str], Probe]) -> str:
    """The checks that failed K times in a row, each with what its last probe expected and got."""
    limit = spec.retention.watch.failures_to_rollback
    over = {c.id: n for c in _checks(spec) if (n := streaks.get((spec.system.id, c.id), 0)) >= limit}
    return ", ".join(
        f"{check} failed {n} times in a row (limit {limit})" + _last_said(last.get((spec.system.id, check)))
        for check, n in sorted(over.items())
    )


def _last_said(probe: Probe | None) -> str:
    return f" (last: {probe.error})" if probe is not None and probe.error else ""
