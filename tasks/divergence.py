"""Divergence: how far a retained system's cloud copy has moved since the cutover, and how far behind the original is.

One concept, one home. At cutover, right after the data verification, :func:`take_baseline` records
the cloud copy's state per table: for PostgreSQL its row counters (``pg_stat_user_tables``), for
SQLite, MariaDB/MySQL (which keep no such counters unless ``userstat`` is on) and every other engine
with an adapter in :mod:`tasks.engines`, chunked checksums by key (:mod:`tasks._divergence_chunks`). Each
readiness round of the watch, :func:`sample` measures the cloud copy against that baseline —
rows inserted, updated and deleted per table — plus, where PostgreSQL logical replication carries
the data back, the original's lag in bytes and seconds (:func:`tasks.replication.status`). Without
replication the original stopped at the cutover: it is behind by the time since then.

Counters give exact counts of row operations (a row updated twice counts twice); chunks give lower
bounds, shown as "approximately". The data a system has comes from its spec: the ``data:`` section
(original, cloud, tables), else its cutover's ``data_verify`` steps (source = original, target =
cloud copy).

Public surface::

    data_sources(spec) -> list[DataSource]
    take_baseline(spec, sources=None) -> dict          (JSON for Ledger.record_divergence_baseline)
    record_baseline(ledger, spec, cutover_run_id, *, step_id=None)   ensure_baseline(ledger, spec, cutover_run_id)
    measure(spec, baseline, *, baseline_at, now) -> Divergence
    sample(ledger, spec) -> DivergenceSample | None     (measure against the open window's baseline; record)
    current(ledger, system_id) -> DivergenceSample | None   (the open window's newest sample)
    current_by_system(ledger) -> dict[str, DivergenceSample]
    Divergence.from_sample(row)  .describe()  .table_rows()
    summary(row) -> str            rollback_notice(row) -> str        markdown(row) -> list[str]
    before_rollback(ledger, spec, *, fresh=False) -> str   (the line every rollback says before it starts)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from cutover.errors import ConfigurationError, CutoverError, LedgerError
from cutover.ledger import DivergenceRecord, DivergenceSample, Ledger
from cutover.secrets import redact, resolve
from cutover.spec import DataVerifyStep, SecretRef, Spec
from tasks._divergence_chunks import chunk_baseline, chunk_change
from tasks._divergence_pg import is_postgresql, pg_counters

__all__ = [
    "DataSource",
    "Divergence",
    "Method",
    "TableChange",
    "before_rollback",
    "current",
    "current_by_system",
    "data_sources",
    "ensure_baseline",
    "markdown",
    "measure",
    "record_baseline",
    "rollback_notice",
    "sample",
    "summary",
    "take_baseline",
]


class Method(StrEnum):
    """How a table's changes were counted."""

    COUNTERS = "postgresql-counters"  # exact counts of row operations
    CHUNKS = "chunk-checksums"  # lower bounds from the chunks that changed


@dataclass(frozen=True)
class DataSource:
    """One database pair of a system and the tables compared (``label`` names the spec's section or step)."""

    label: str
    original: SecretRef | str  # a secret, or a URL written inline (no password)
    cloud: SecretRef | str
    tables: tuple[str, ...]
    keys: Mapping[str, list[str]] = field(default_factory=dict)
    replicated: bool = False


@dataclass(frozen=True)
class TableChange:
    """One table of the cloud copy since the cutover."""

    table: str
    method: Method
    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted

    @property
    def approximate(self) -> bool:
        return self.method is Method.CHUNKS and self.changed > 0


@dataclass(frozen=True)
class Divergence:
    """How far the cloud copy has moved: per table, the replication lag, and what could not be measured."""

    tables: list[TableChange]
    replicated: bool = False
    lag_bytes: int | None = None
    behind_s: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def changed_rows(self) -> int | None:
        """Rows changed on the cloud copy since the cutover; None when a table could not be measured."""
        return None if self.problems else sum(t.changed for t in self.tables)

    @property
    def approximate(self) -> bool:
        return any(t.approximate for t in self.tables)

    def describe(self) -> str:
        """One line: changed rows and how far behind the original is."""
        return f"{_rows_phrase(self.changed_rows, self.approximate)}; {_behind_phrase(self.behind_s, self.lag_bytes, self.replicated)}"

    def table_rows(self) -> list[tuple[str, str, str, str, str]]:
        """(table, inserted, updated, deleted, how counted) per table, for a table a person reads."""
        return [
            (
                t.table,
                _count(t.inserted, t.approximate),
                _count(t.updated, t.approximate),
                _count(t.deleted, t.approximate),
                t.method.value,
            )
            for t in self.tables
        ]

    def record(self, system_id: str, cutover_run_id: str, at: datetime | None = None) -> DivergenceRecord:
        detail = {
            "tables": [
                {"table": t.table, "method": t.method.value, "ins": t.inserted, "upd": t.updated, "del": t.deleted}
                for t in self.tables
            ],
            "replicated": self.replicated,
            "problems": self.problems,
        }
        return DivergenceRecord(
            system_id, cutover_run_id, self.changed_rows, self.approximate, self.lag_bytes, self.behind_s, detail, at
        )

    @classmethod
    def from_sample(cls, row: DivergenceSample) -> Divergence:
        """The divergence a ledger row recorded."""
        tables = [
            TableChange(t["table"], Method(t["method"]), t["ins"], t["upd"], t["del"])
            for t in row.detail.get("tables", [])
        ]
        return cls(
            tables,
            bool(row.detail.get("replicated")),
            row.lag_bytes,
            row.behind_s,
            list(row.detail.get("problems", [])),
        )


# ------------------------------------------------------------------------------ the data
def data_sources(spec: Spec) -> list[DataSource]:
    """The system's database pairs: its ``data:`` section, else its cutover's data_verify steps."""
    if spec.data is not None:
        return [DataSource("data", spec.data.original, spec.data.cloud, tuple(spec.data.tables), replicated=True)]
    steps = [s for s in (spec.cutover.steps if spec.cutover else []) if isinstance(s, DataVerifyStep)]
    return [DataSource(s.id, s.source, s.target, tuple(s.tables), s.keys) for s in steps]


def _labelled(sources: Sequence[DataSource], source: DataSource, table: str) -> str:
    return table if len(sources) == 1 else f"{source.label}/{table}"


def take_baseline(spec: Spec, sources: Sequence[DataSource] | None = None) -> dict[str, Any]:
    """The cloud copy's tables now (all sources, or the given ones), as JSON for the ledger."""
    every = data_sources(spec)
    try:
        return _baseline_of(spec, every, sources if sources is not None else every)
    except SQLAlchemyError as exc:
        raise LedgerError(redact(f"the divergence baseline could not read the cloud copy: {exc}")) from exc


def _baseline_of(spec: Spec, every: Sequence[DataSource], sources: Sequence[DataSource]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for source in sources:
        url = resolve(spec, source.cloud).get_secret_value()
        if is_postgresql(url):
            for table, counters in pg_counters(url, source.tables).items():
                if counters is None:
                    raise ConfigurationError(
                        f"{source.label}: the spec names table {table}, which is not in the cloud copy's database; "
                        "correct the spec's tables"
                    )
                found[_labelled(every, source, table)] = {"method": Method.COUNTERS.value, "counters": list(counters)}
            continue
        for table in source.tables:
            chunks = chunk_baseline(url, table, source.keys.get(table))
            found[_labelled(every, source, table)] = {"method": Method.CHUNKS.value, **chunks}
    return found


def measure(spec: Spec, baseline: Mapping[str, Any], *, baseline_at: datetime, now: datetime) -> Divergence:
    """The cloud copy against ``baseline``; what cannot be read is named in ``problems``, never guessed."""
    every = data_sources(spec)
    tables: list[TableChange] = []
    problems: list[str] = []
    for source in every:
        try:
            tables += _measure_source(spec, every, source, baseline, problems)
        except (SQLAlchemyError, CutoverError) as exc:
            problems.append(redact(f"{source.label}: the cloud copy could not be read ({exc})"))
    lag_bytes: int | None = None
    behind_s: float | None = (now - baseline_at).total_seconds()
    replicated = any(s.replicated for s in every)
    if replicated:
        lag_bytes, behind_s = _lag(spec, every[0], problems)
    return Divergence(tables, replicated, lag_bytes, behind_s, problems)


def _measure_source(
    spec: Spec, every: Sequence[DataSource], source: DataSource, baseline: Mapping[str, Any], problems: list[str]
) -> list[TableChange]:
    url = resolve(spec, source.cloud).get_secret_value()
    labels = {table: _labelled(every, source, table) for table in source.tables}
    missing = [label for label in labels.values() if label not in baseline]
    if missing:
        problems.append(f"no baseline for {', '.join(missing)}: the spec's tables changed after the cutover")
    counted = [t for t, label in labels.items() if baseline.get(label, {}).get("method") == Method.COUNTERS.value]
    now = pg_counters(url, counted) if counted else {}
    changes: list[TableChange] = []
    for table, label in labels.items():
        then = baseline.get(label)
        if then is None:
            continue
        if then["method"] == Method.COUNTERS.value:
            change = _from_counters(label, then["counters"], now.get(table), problems)
            changes += [change] if change is not None else []
            continue
        chunks = chunk_change(url, table, source.keys.get(table), then)
        changes.append(TableChange(label, Method.CHUNKS, chunks.inserted, chunks.updated, chunks.deleted))
    return changes


def _from_counters(
    label: str, then: Sequence[int], now: tuple[int, int, int] | None, problems: list[str]
) -> TableChange | None:
    if now is None:
        problems.append(f"{label}: the table is gone from the cloud copy")
        return None
    delta = [b - a for a, b in zip(then, now, strict=True)]
    if min(delta) < 0:
        problems.append(
            f"{label}: PostgreSQL's row counters went back since the cutover (a crash or pg_stat_reset()); "
            "the changes cannot be counted — compare the tables with a data_verify step"
        )
        return None
    return TableChange(label, Method.COUNTERS, *delta)


def _lag(spec: Spec, source: DataSource, problems: list[str]) -> tuple[int | None, float | None]:
    from tasks import replication  # psycopg: imported only where replication runs (`cutover status` starts faster)

    try:
        original = resolve(spec, source.original)
        cloud = resolve(spec, source.cloud)
        seen = replication.status(spec.system.id, original, cloud, source.tables)
    except CutoverError as exc:
        problems.append(redact(f"replication status could not be read ({exc})"))
        return None, None
    problems += seen.problems
    return seen.lag_bytes, seen.lag_s


# ------------------------------------------------------------------------------ the baseline
def record_baseline(ledger: Ledger, spec: Spec, cutover_run_id: str, *, step_id: str | None = None) -> int:
    """Record the cloud copy now as the cutover's baseline (of one data_verify step's tables, or all);
    merged into what the run recorded before. Returns how many tables it now holds."""
    sources = [s for s in data_sources(spec) if step_id is None or s.label == step_id]
    if not sources:
        return 0
    earlier = ledger.divergence_baseline(cutover_run_id)
    tables = {**(earlier.tables if earlier is not None else {}), **take_baseline(spec, sources)}
    ledger.record_divergence_baseline(spec.system.id, cutover_run_id, tables)
    return len(tables)


def ensure_baseline(ledger: Ledger, spec: Spec, cutover_run_id: str) -> int:
    """Record the baseline of every table unless the cutover's verification already did (a system
    replicated by ``data:`` has no data_verify step). Returns how many tables it holds."""
    earlier = ledger.divergence_baseline(cutover_run_id)
    if earlier is not None:
        return len(earlier.tables)
    return record_baseline(ledger, spec, cutover_run_id)


# ------------------------------------------------------------------------ the watch's sample
def sample(ledger: Ledger, spec: Spec) -> DivergenceSample | None:
    """Measure the system against its open window's baseline and record it; None when it has no data declared."""
    system_id = spec.system.id
    if not data_sources(spec):
        return None
    window = ledger.current_retention_window(system_id)
    if window is None:
        return None
    baseline = ledger.divergence_baseline(window.cutover_run_id)
    now = ledger.now()
    if baseline is None:
        unknown = Divergence([], problems=["no baseline was recorded at the cutover; the changes cannot be counted"])
        return ledger.record_divergence(unknown.record(system_id, window.cutover_run_id, now))
    found = measure(spec, baseline.tables, baseline_at=baseline.taken_at, now=now)
    return ledger.record_divergence(found.record(system_id, window.cutover_run_id, now))


def current(ledger: Ledger, system_id: str) -> DivergenceSample | None:
    """The newest sample of the system's open retention window (None: no window, or no sample in it yet)."""
    window = ledger.current_retention_window(system_id)
    found = ledger.latest_divergence(system_id)
    if window is None or found is None or found.cutover_run_id != window.cutover_run_id:
        return None
    return found


def current_by_system(ledger: Ledger) -> dict[str, DivergenceSample]:
    """:func:`current` of every system with an open window, in two queries."""
    windows = {w.system_id: w.cutover_run_id for w in ledger.list_open_retention_windows()}
    return {
        system_id: found
        for system_id, found in ledger.latest_divergences().items()
        if windows.get(system_id) == found.cutover_run_id
    }


# ---------------------------------------------------------------------------- what people read
def summary(row: DivergenceSample | None) -> str:
    """The one-line column of ``cutover status``."""
    if row is None:
        return "—"
    return Divergence.from_sample(row).describe()


def rollback_notice(row: DivergenceSample | None, *, data_declared: bool = True) -> str:
    """What a rollback says before it starts: how much it carries back, how far behind the original is."""
    if not data_declared:
        return "this rollback carries back no database the spec declares (no data: section, no data_verify step)"
    if row is None:
        return "this rollback carries back an unknown number of changed rows: unknown, no divergence sample yet"
    found = Divergence.from_sample(row)
    measured = f"(measured {row.taken_at:%Y-%m-%d %H:%M:%S} UTC)"
    if found.changed_rows is None:
        return f"this rollback carries back an unknown number of changed rows {measured}: " + "; ".join(found.problems)
    rows = _rows_phrase(found.changed_rows, found.approximate)
    return f"this rollback carries back {rows}; {_behind_phrase(found.behind_s, found.lag_bytes, found.replicated)} {measured}"


def before_rollback(ledger: Ledger, spec: Spec, *, fresh: bool = False) -> str:
    """The line a rollback says before it starts (the rollback flow, ``cutover rollback``, the demo).

    The watch's newest sample by default (no database read: a rollback does not wait for a count);
    ``fresh`` (or no sample yet in the open window) measures the cloud copy now and records it. What
    cannot be read is said, never raised: the rollback goes on either way.
    """
    if not data_sources(spec):
        return rollback_notice(None, data_declared=False)
    try:
        found = current(ledger, spec.system.id)
        if fresh or found is None:
            found = sample(ledger, spec) or found
    except (CutoverError, SQLAlchemyError) as exc:
        return redact(f"how much this rollback carries back is unknown: {exc}")
    return redact(rollback_notice(found))


def markdown(row: DivergenceSample) -> list[str]:
    """The divergence as Markdown lines: the summary, a table per table, what could not be measured."""
    found = Divergence.from_sample(row)
    lines = [
        f"**{found.describe()}** (measured {row.taken_at:%Y-%m-%d %H:%M:%S} UTC)",
        "",
        "| table | inserted | updated | deleted | counted by |",
        "|---|---:|---:|---:|---|",
        *(f"| {' | '.join(cells)} |" for cells in found.table_rows()),
    ]
    if found.approximate:
        lines += ["", "≈: lower bounds from the chunked checksums recorded at cutover (changed chunks)."]
    if found.problems:
        lines += ["", "**Not measured:**", *(f"- {p}" for p in found.problems)]
    return lines


def _count(value: int, approximate: bool) -> str:
    return f"≈{value}" if approximate and value else str(value)


def _rows_phrase(rows: int | None, approximate: bool) -> str:
    if rows is None:
        return "changed rows unknown"
    return f"{'approximately ' if approximate else ''}{rows} changed rows"


def _behind_phrase(behind_s: float | None, lag_bytes: int | None, replicated: bool) -> str:
    if behind_s is None:
        return "how far the original is behind is unknown"
    if not replicated:
        return f"the original is {behind_s:.0f} seconds behind (no replication: it stopped at the cutover)"
    return f"the original is {behind_s:.1f} seconds behind ({lag_bytes if lag_bytes is not None else '?'} bytes of WAL)"
