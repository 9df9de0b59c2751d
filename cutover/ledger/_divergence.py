"""Divergence baselines (the cloud copy at cutover) and the watch's samples of how far it has moved since.

Samples are folded into one row per system and UTC hour, the newest of the hour winning: months of
watching stay small, and the newest measurement is always one query away.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cutover.ledger._core import LedgerCore, insert_unless_present, plain_json
from cutover.ledger._models import DivergenceBaseline, DivergenceSample
from cutover.ledger._watch import bucket_of


@dataclass(frozen=True)
class DivergenceRecord:
    """One measurement of one system: changed rows (None: unknown), lag, and the per-table detail."""

    system_id: str
    cutover_run_id: str
    changed_rows: int | None
    approximate: bool
    lag_bytes: int | None = None
    behind_s: float | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    at: datetime | None = None


class DivergenceRepository(LedgerCore):
    """What the cloud copy was at cutover, and how far it has moved since."""

    def record_divergence_baseline(
        self, system_id: str, cutover_run_id: str, tables: Mapping[str, Any], *, session: Session | None = None
    ) -> DivergenceBaseline:
        """Record (or, when the verification ran again, replace) the baseline of a cutover run."""
        with self._tx(session) as s:
            row = self._baseline(s, cutover_run_id)
            if row is None:
                row = DivergenceBaseline(system_id=system_id, cutover_run_id=cutover_run_id)
                s.add(row)
            row.taken_at, row.tables = self.now(), plain_json(tables)
            s.flush()
            return row

    def divergence_baseline(self, cutover_run_id: str) -> DivergenceBaseline | None:
        """The baseline recorded by the cutover run, or None."""
        with self.session() as s:
            return self._baseline(s, cutover_run_id)

    def record_divergence(self, record: DivergenceRecord, *, session: Session | None = None) -> DivergenceSample:
        """Store a measurement; it replaces an earlier one of the same hour."""
        at = record.at or self.now()
        with self._tx(session) as s:
            row = self._sample_of_hour(s, record.system_id, bucket_of(at))
            fresh = row is None
            if row is None:
                row = DivergenceSample(system_id=record.system_id, bucket_start=bucket_of(at))
            self._fill(row, record, at)
            if fresh and not insert_unless_present(s, row):  # another watcher wrote the hour's row first
                row = self._sample_of_hour(s, record.system_id, bucket_of(at))
                assert row is not None
                self._fill(row, record, at)
            s.flush()
            return row

    @staticmethod
    def _fill(row: DivergenceSample, record: DivergenceRecord, at: datetime) -> None:
        row.cutover_run_id, row.taken_at = record.cutover_run_id, at
        row.changed_rows, row.approximate = record.changed_rows, record.approximate
        row.lag_bytes, row.behind_s = record.lag_bytes, record.behind_s
        row.detail = plain_json(record.detail)

    def latest_divergence(self, system_id: str) -> DivergenceSample | None:
        """The system's newest measurement, or None."""
        statement = sa.select(DivergenceSample).where(DivergenceSample.system_id == system_id)
        with self.session() as s:
            return s.scalars(statement.order_by(DivergenceSample.bucket_start.desc()).limit(1)).first()

    def latest_divergences(self) -> dict[str, DivergenceSample]:
        """Every system's newest measurement, by system id (one query)."""
        ranked = sa.select(
            DivergenceSample.id,
            sa.func.row_number()
            .over(partition_by=DivergenceSample.system_id, order_by=DivergenceSample.bucket_start.desc())
            .label("rank"),
        ).subquery()
        statement = (
            sa.select(DivergenceSample).join(ranked, ranked.c.id == DivergenceSample.id).where(ranked.c.rank == 1)
        )
        with self.session() as s:
            return {row.system_id: row for row in s.scalars(statement)}

    def _baseline(self, s: Session, cutover_run_id: str) -> DivergenceBaseline | None:
        statement = sa.select(DivergenceBaseline).where(DivergenceBaseline.cutover_run_id == cutover_run_id)
        return s.scalars(statement.limit(1)).first()

    def _sample_of_hour(self, s: Session, system_id: str, bucket: datetime) -> DivergenceSample | None:
        statement = sa.select(DivergenceSample).where(
            DivergenceSample.system_id == system_id, DivergenceSample.bucket_start == bucket
        )
        return s.scalars(statement.limit(1).execution_options(populate_existing=True)).first()
