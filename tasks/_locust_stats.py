"""Reading locust's CSV output: ``<prefix>_stats.csv``, ``_stats_history.csv``, ``_failures.csv``.

Column names are locust's own (2.x): percentiles are written ``50%``, ``95%``, ``99%`` and are
``N/A`` for an entry with no requests; the total row is named ``Aggregated``. Locust rewrites
these files while it runs, so a read may see a half-written last line: only complete lines are
parsed.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from pydantic import BaseModel, ConfigDict

AGGREGATED = "Aggregated"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EndpointMetrics(_Frozen):
    """One row of ``stress_stats.csv``: an endpoint, or ``Aggregated`` for all of them."""

    name: str
    method: str
    requests: int
    failures: int
    median_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    avg_ms: float
    max_ms: float
    rps: float

    @property
    def failure_ratio(self) -> float:
        """Failed requests / all requests (1.0 when nothing was sent: nothing was shown to work)."""
        return self.failures / self.requests if self.requests else 1.0


class HistoryPoint(_Frozen):
    """One second of the run, all endpoints together (``Aggregated`` rows of the history)."""

    timestamp: int
    users: int
    rps: float
    failures_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    requests: int
    failures: int


class FailureRecord(_Frozen):
    """One row of ``stress_failures.csv``: an error and how often it happened."""

    method: str
    name: str
    error: str
    occurrences: int


def _complete_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file locust may still be writing, ignoring a partial last line."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(text)))


def _optional_ms(value: str | None) -> float | None:
    if value is None or value.strip() in ("", "N/A"):
        return None
    return float(value)


def _float(value: str | None) -> float:
    return _optional_ms(value) or 0.0


def _endpoint(row: dict[str, str]) -> EndpointMetrics:
    return EndpointMetrics(
        name=row["Name"],
        method=row.get("Type") or "",
        requests=int(row["Request Count"]),
        failures=int(row["Failure Count"]),
        median_ms=_optional_ms(row.get("Median Response Time")),
        p50_ms=_optional_ms(row.get("50%")),
        p95_ms=_optional_ms(row.get("95%")),
        p99_ms=_optional_ms(row.get("99%")),
        avg_ms=_float(row.get("Average Response Time")),
        max_ms=_float(row.get("Max Response Time")),
        rps=_float(row.get("Requests/s")),
    )


def _is_total(row: EndpointMetrics) -> bool:
    return row.name == AGGREGATED and not row.method


def read_stats(path: Path) -> tuple[EndpointMetrics, tuple[EndpointMetrics, ...]]:
    """The ``Aggregated`` row and the per-endpoint rows of ``stress_stats.csv``.

    Raises ``ValueError`` when the file has no ``Aggregated`` row (locust did not finish writing it).
    """
    rows = [_endpoint(row) for row in _complete_rows(path)]
    overall = [row for row in rows if _is_total(row)]
    if not overall:
        raise ValueError(f"{path} has no {AGGREGATED!r} row; locust did not finish writing its statistics")
    endpoints = tuple(sorted((row for row in rows if not _is_total(row)), key=lambda r: (r.name, r.method)))
    return overall[-1], endpoints


def _history_point(row: dict[str, str]) -> HistoryPoint:
    return HistoryPoint(
        timestamp=int(row["Timestamp"]),
        users=int(row["User Count"]),
        rps=_float(row.get("Requests/s")),
        failures_per_s=_float(row.get("Failures/s")),
        p50_ms=_optional_ms(row.get("50%")),
        p95_ms=_optional_ms(row.get("95%")),
        requests=int(row["Total Request Count"]),
        failures=int(row["Total Failure Count"]),
    )


def read_history(path: Path) -> tuple[HistoryPoint, ...]:
    """The ``Aggregated`` rows of ``stress_stats_history.csv``, oldest first; empty if none yet."""
    if not path.is_file():
        return ()
    return tuple(_history_point(row) for row in _complete_rows(path) if row.get("Name") == AGGREGATED)


def read_failures(path: Path) -> tuple[FailureRecord, ...]:
    """The rows of ``stress_failures.csv``, most frequent first; empty if the file is missing."""
    if not path.is_file():
        return ()
    records = [
        FailureRecord(method=row["Method"], name=row["Name"], error=row["Error"], occurrences=int(row["Occurrences"]))
        for row in _complete_rows(path)
    ]
    return tuple(sorted(records, key=lambda r: (-r.occurrences, r.name, r.error)))
