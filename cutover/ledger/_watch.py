"""Retention windows, aggregated health observations and stress-test results.

Health probes are folded into one row per (system, check, hour): months of watching a thousand
systems stay a few million small rows. Each row carries the running count of consecutive failures,
which the watcher compares with ``failures_to_rollback``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cutover.errors import LedgerError
from cutover.ledger._core import LedgerCore, insert_unless_present, plain_json, rowcount
from cutover.ledger._enums import ProbeStatus, RetentionCloseReason
from cutover.ledger._models import HealthObservation, RetentionWindow, StressResult


@dataclass(frozen=True)
class HealthProbe:
    """The result of one health probe of one check of one system."""

    system_id: str
    check_name: str
    passed: bool
    latency_ms: float
    at: datetime | None = None


@dataclass(frozen=True)
class ProbeClaim:
    """A watcher asking to probe one check now: due ``every`` after its last probe by anyone.

    ``mine`` is the time of this watcher's own last claim of the check (None if it has none): a
    check this watcher probed last is its own to probe again whenever its schedule says so.
    Otherwise it is claimable ``after`` × ``every`` after its last probe: a watch run handing over
    asks with ``YIELD_AFTER``, later than the newer run's ``CLAIM_EARLY``, so the newer one takes it.
    """

    system_id: str
    check_name: str
    every: timedelta
    mine: datetime | None = None
    after: float = 0.9


#: A check is claimable by another watcher this early (as a fraction of its interval): a little
#: early rather than a tick late, never so early that two watchers probe it in one interval.
CLAIM_EARLY = 0.9
#: A watch run handing over probes a check only this late, if the newer run has not (see watch.py).
YIELD_AFTER = 1.25


def bucket_of(at: datetime) -> datetime:
    """The start of the UTC hour ``at`` falls in (the aggregation bucket)."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


class WatchRepository(LedgerCore):
    """Retention windows, health observations and stress results."""

    def open_retention_window(
        self,
        system_id: str,
        cutover_run_id: str,
        ends_at: datetime,
        *,
        session: Session | None = None,
    ) -> RetentionWindow:
        """Open the window after a cutover; refused while another window of the system is open."""
        with self._tx(session) as s:
            current = self._open_window(s, system_id)
            if current is not None:
                raise LedgerError(
                    f"system {system_id!r} already has a retention window open since "
                    f"{current.opened_at.isoformat()} (cutover run {current.cutover_run_id}); "
                    "close it (rollback or decommission) before opening another"
                )
            window = RetentionWindow(
                system_id=system_id,
                cutover_run_id=cutover_run_id,
                opened_at=self.now(),
                ends_at=ends_at,
            )
            s.add(window)
            s.flush()
            return window

    def current_retention_window(self, system_id: str) -> RetentionWindow | None:
        """The system's open retention window, or None."""
        with self.session() as s:
            return self._open_window(s, system_id)

    def close_retention_window(
        self, system_id: str, reason: RetentionCloseReason, *, session: Session | None = None
    ) -> RetentionWindow:
        """Close the system's open window, recording why."""
        with self._tx(session) as s:
            window = self._open_window(s, system_id)
            if window is None:
                raise LedgerError(f"system {system_id!r} has no open retention window to close")
            window.closed_at, window.close_reason = self.now(), reason
            s.flush()
            return window

    def list_open_retention_windows(self) -> list[RetentionWindow]:
        """Every open window, the soonest to end first."""
        statement = sa.select(RetentionWindow).where(RetentionWindow.closed_at.is_(None))
        with self.session() as s:
            return list(s.scalars(statement.order_by(RetentionWindow.ends_at)))

    def _open_window(self, s: Session, system_id: str) -> RetentionWindow | None:
        statement = sa.select(RetentionWindow).where(
            RetentionWindow.system_id == system_id, RetentionWindow.closed_at.is_(None)
        )
        return s.scalars(statement.limit(1)).first()

    def record_health(
        self, probes: Iterable[HealthProbe], *, session: Session | None = None
    ) -> dict[tuple[str, str], int]:
        """Fold probes (in time order) into the hourly rows; returns consecutive failures per check.

        The latest row of every check in the batch is read with one query and the batch is written
        with one flush, so a sweep of a thousand systems costs a handful of round trips.
        """
        batch = list(probes)
        streaks: dict[tuple[str, str], int] = {}
        with self._tx(session) as s:
            latest = self._latest_observations(s, {(p.system_id, p.check_name) for p in batch})
            for probe in batch:
                key = (probe.system_id, probe.check_name)
                streaks[key] = self._fold_probe(s, probe, latest)
            s.flush()
        return streaks

    def claim_probes(
        self, claims: Iterable[ProbeClaim], *, session: Session | None = None
    ) -> dict[tuple[str, str], datetime]:
        """The checks this watcher may probe now, with the claim time to record their probes at.

        The hand-over lease between watch runs, per check, in the check's newest health row: a
        check is claimed by moving its ``last_at`` to now, only if nobody moved it since this
        watcher's own last claim (``mine``) or since ``after`` × ``every`` ago. Of two
        watchers exactly one claims a check in an interval, so a probe is neither lost nor counted
        twice (the consecutive-failure count lives in the same row). A check's first row, or the
        first of a new hour, is inserted by the claim, carrying the count; the unique key decides
        a race. Record the probes with ``HealthProbe(at=<claim time>)``.
        """
        wanted = list(claims)
        claimed: dict[tuple[str, str], datetime] = {}
        with self._tx(session) as s:
            at = self.now()
            latest = self._latest_observations(s, {(c.system_id, c.check_name) for c in wanted})
            for claim in wanted:
                key = (claim.system_id, claim.check_name)
                row = latest.get(key)
                if row is not None and not _claimable(row, claim, at):
                    continue
                if self._take(s, claim, row, at):
                    claimed[key] = at
        return claimed

    def _take(self, s: Session, claim: ProbeClaim, row: HealthObservation | None, at: datetime) -> bool:
        if row is not None and row.bucket_start == bucket_of(at):
            moved = s.execute(
                sa.update(HealthObservation)
                .where(HealthObservation.id == row.id, HealthObservation.last_at == row.last_at)
                .values(last_at=at)
            )
            return rowcount(moved) == 1
        carried = 0 if row is None else row.consecutive_failures
        probe = HealthProbe(claim.system_id, claim.check_name, passed=True, latency_ms=0.0, at=at)
        fresh = self._bucket_row(probe, at, carried)
        fresh.last_status = ProbeStatus.PASSED if row is None else row.last_status
        return insert_unless_present(s, fresh)

    def consecutive_failures(self, system_id: str, check_name: str) -> int:
        """How many probes of the check have failed in a row, up to the latest."""
        with self.session() as s:
            latest = self._latest_observation(s, system_id, check_name)
            return 0 if latest is None else latest.consecutive_failures

    def health_history(self, system_id: str, *, since: datetime | None = None) -> list[HealthObservation]:
        """The system's hourly rows (optionally from ``since``), oldest first."""
        statement = sa.select(HealthObservation).where(HealthObservation.system_id == system_id)
        if since is not None:
            statement = statement.where(HealthObservation.bucket_start >= bucket_of(since))
        with self.session() as s:
            order = (HealthObservation.bucket_start, HealthObservation.check_name)
            return list(s.scalars(statement.order_by(*order)))

    def _fold_probe(self, s: Session, probe: HealthProbe, latest_rows: dict[tuple[str, str], HealthObservation]) -> int:
        at = probe.at or self.now()
        key = (probe.system_id, probe.check_name)
        latest = latest_rows.get(key)
        if latest is None or latest.bucket_start != bucket_of(at):
            carried = 0 if latest is None else latest.consecutive_failures
            s.flush()
            latest = latest_rows[key] = self._new_bucket(s, probe, at, carried)
        latest.checks += 1
        latest.failures += 0 if probe.passed else 1
        latest.latency_sum_ms += probe.latency_ms
        latest.latency_max_ms = max(latest.latency_max_ms, probe.latency_ms)
        latest.last_status = ProbeStatus.PASSED if probe.passed else ProbeStatus.FAILED
        latest.last_at = at
        latest.consecutive_failures = 0 if probe.passed else latest.consecutive_failures + 1
        return latest.consecutive_failures

    def _latest_observations(self, s: Session, keys: set[tuple[str, str]]) -> dict[tuple[str, str], HealthObservation]:
        """The newest row of each (system, check) in ``keys`` (read in chunks)."""
        found: dict[tuple[str, str], HealthObservation] = {}
        ordered = sorted(keys)
        for start in range(0, len(ordered), 400):
            chunk = ordered[start : start + 400]
            ranked = (
                sa.select(
                    HealthObservation.id,
                    sa.func.row_number()
                    .over(
                        partition_by=(HealthObservation.system_id, HealthObservation.check_name),
                        order_by=HealthObservation.bucket_start.desc(),
                    )
                    .label("rank"),
                )
                .where(sa.tuple_(HealthObservation.system_id, HealthObservation.check_name).in_(chunk))
                .subquery()
            )
            statement = (
                sa.select(HealthObservation)
                .join(ranked, ranked.c.id == HealthObservation.id)
                .where(ranked.c.rank == 1)
                .execution_options(populate_existing=True)
            )
            for row in s.scalars(statement):
                found[(row.system_id, row.check_name)] = row
        return found

    def _new_bucket(self, s: Session, probe: HealthProbe, at: datetime, carried: int) -> HealthObservation:
        row = self._bucket_row(probe, at, carried)
        if insert_unless_present(s, row):
            return row
        latest = self._latest_observation(s, probe.system_id, probe.check_name)
        if latest is None:
            raise LedgerError(
                f"could not record health of {probe.check_name!r} for system "
                f"{probe.system_id!r}: is the system registered in the ledger?"
            )
        return latest

    def _bucket_row(self, probe: HealthProbe, at: datetime, carried: int) -> HealthObservation:
        return HealthObservation(
            system_id=probe.system_id,
            check_name=probe.check_name,
            bucket_start=bucket_of(at),
            checks=0,
            failures=0,
            latency_sum_ms=0.0,
            latency_max_ms=0.0,
            last_status=ProbeStatus.PASSED,
            last_at=at,
            consecutive_failures=carried,
        )

    def _latest_observation(self, s: Session, system_id: str, check_name: str) -> HealthObservation | None:
        statement = (
            sa.select(HealthObservation)
            .where(
                HealthObservation.system_id == system_id,
                HealthObservation.check_name == check_name,
            )
            .order_by(HealthObservation.bucket_start.desc())
            .limit(1)
            .execution_options(populate_existing=True)
        )
        return s.scalars(statement).first()

    def record_stress_result(
        self,
        run_id: str,
        system_id: str,
        metrics: Mapping[str, Any],
        *,
        passed: bool,
        session: Session | None = None,
    ) -> StressResult:
        """Store a stress test's metrics and whether they met the thresholds."""
        result = StressResult(
            run_id=run_id,
            system_id=system_id,
            metrics=plain_json(metrics),
            passed=passed,
            created_at=self.now(),
        )
        with self._tx(session) as s:
            s.add(result)
            s.flush()
        return result

    def latest_stress_result(self, system_id: str) -> StressResult | None:
        """The system's newest stress result, or None."""
        statement = sa.select(StressResult).where(StressResult.system_id == system_id)
        with self.session() as s:
            return s.scalars(statement.order_by(StressResult.id.desc()).limit(1)).first()


def _claimable(row: HealthObservation, claim: ProbeClaim, at: datetime) -> bool:
    """Nobody probed the check since this watcher did, or not within most of its interval."""
    return row.last_at == claim.mine or row.last_at <= at - claim.every * claim.after
