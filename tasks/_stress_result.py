"""The result of a stress test and its verdicts; re-exported by :mod:`tasks.loadtest`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from cutover.errors import StressTestFailed
from cutover.spec import Thresholds
from tasks._locust_stats import EndpointMetrics, FailureRecord, HistoryPoint


@dataclass(frozen=True)
class Progress:
    """A snapshot of a running stress test, reported about every two seconds."""

    pid: int
    elapsed_s: float
    users: int
    rps: float
    requests: int
    failures: int
    p95_ms: float | None


class ThresholdVerdict(BaseModel):
    """One threshold of the spec, what was measured, and whether it held."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    comparison: str
    limit: float
    measured: float | None
    passed: bool

    def describe(self) -> str:
        """E.g. ``p95_ms: expected <= 800, measured 912 (missed)``."""
        measured = "nothing (no request was recorded)" if self.measured is None else f"{self.measured:g}"
        verdict = "met" if self.passed else "missed"
        return f"{self.name}: expected {self.comparison} {self.limit:g}, measured {measured} ({verdict})"


class StressResult(BaseModel):
    """The outcome of one stress test: numbers, verdicts, and where locust's files are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str
    users: int
    spawn_rate: float
    planned_duration_s: int
    elapsed_s: float
    locust_version: str
    exit_code: int | None
    overall: EndpointMetrics | None
    endpoints: tuple[EndpointMetrics, ...]
    thresholds: tuple[ThresholdVerdict, ...]
    errors: tuple[FailureRecord, ...]
    history: tuple[HistoryPoint, ...]
    completed: bool = Field(description="Locust ran to its end, wrote its statistics, and the target answered.")
    passed: bool = Field(description="Completed and every threshold held.")
    reason: str | None = Field(description="Why it did not pass (None when it passed).")
    html_report: Path | None
    stats_csv: Path
    history_csv: Path
    failures_csv: Path
    log_path: Path

    @property
    def requests(self) -> int:
        """All requests sent."""
        return self.overall.requests if self.overall else 0

    @property
    def failure_ratio(self) -> float:
        """Failed requests / all requests; 1.0 when nothing was sent."""
        return self.overall.failure_ratio if self.overall else 1.0

    @property
    def rps(self) -> float:
        """Requests per second over the run."""
        return self.overall.rps if self.overall else 0.0

    @property
    def p50_ms(self) -> float | None:
        """Median latency over all requests."""
        return self.overall.p50_ms if self.overall else None

    @property
    def p95_ms(self) -> float | None:
        """95th-percentile latency over all requests."""
        return self.overall.p95_ms if self.overall else None

    @property
    def p99_ms(self) -> float | None:
        """99th-percentile latency over all requests."""
        return self.overall.p99_ms if self.overall else None

    def raise_for_verdict(self) -> None:
        """Raise :class:`StressTestFailed` unless the test passed, naming each missed threshold."""
        if self.passed:
            return
        missed = [v for v in self.thresholds if not v.passed]
        if not self.completed:
            advice = (
                f"Read locust's log at {self.log_path}, check that {self.base_url} is up and reachable "
                "from this worker, then run the stress test again."
            )
            raise StressTestFailed(f"stress test of {self.base_url} did not complete: {self.reason}. {advice}")
        details = "; ".join(v.describe() for v in missed)
        raise StressTestFailed(
            f"stress test of {self.base_url} missed {len(missed)} threshold(s): {details}. "
            f"See the per-endpoint numbers in {self.html_report}; fix or resize the system on the test "
            "platform and run again (the limits are test_platform.stress.thresholds in the spec)."
        )


def verdicts(thresholds: Thresholds, overall: EndpointMetrics | None) -> tuple[ThresholdVerdict, ...]:
    p95 = overall.p95_ms if overall else None
    ratio = overall.failure_ratio if overall else None
    rps = overall.rps if overall else None
    return (
        ThresholdVerdict(
            name="p95_ms",
            comparison="<=",
            limit=thresholds.p95_ms,
            measured=p95,
            passed=p95 is not None and p95 <= thresholds.p95_ms,
        ),
        ThresholdVerdict(
            name="failure_ratio",
            comparison="<=",
            limit=thresholds.failure_ratio,
            measured=ratio,
            passed=ratio is not None and ratio <= thresholds.failure_ratio,
        ),
        ThresholdVerdict(
            name="min_rps",
            comparison=">=",
            limit=thresholds.min_rps,
            measured=rps,
            passed=rps is not None and rps >= thresholds.min_rps,
        ),
    )
