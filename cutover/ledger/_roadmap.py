"""Roadmaps and exemption rulings: the leading-group office's part of the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cutover.ledger._core import LedgerCore
from cutover.ledger._enums import ExemptionDecision, RoadmapStatus
from cutover.ledger._models import ExemptionRuling, Roadmap

#: The roadmap's fields a plan table row or a spec sets (everything but the key and the time).
ROADMAP_FIELDS = (
    "test_on",
    "signoff_on",
    "cutover_on",
    "retention_ends_on",
    "decommission_on",
    "network_move",
    "code_optimisation",
    "database_update",
    "os_upgrade",
    "operator",
    "exemption_reason",
)
ADAPTATION_ITEMS = ("code_optimisation", "database_update", "os_upgrade")


class RoadmapRepository(LedgerCore):
    """Each system's roadmap, and the expert panel's rulings on exemptions."""

    def set_roadmap(
        self, system_id: str, fields: Mapping[str, Any], *, source: str, session: Session | None = None
    ) -> Roadmap:
        """Store the system's roadmap: ``fields`` (of :data:`ROADMAP_FIELDS`) replace the ones given."""
        unknown = set(fields) - set(ROADMAP_FIELDS)
        if unknown:
            raise ValueError(f"not roadmap fields: {sorted(unknown)}")
        with self._tx(session) as s:
            row = s.get(Roadmap, system_id) or _blank(system_id)
            for key, value in fields.items():
                setattr(row, key, value)
            row.source = source
            row.updated_at = self.now()
            s.add(row)
            s.flush()
            return row

    def get_roadmap(self, system_id: str, *, session: Session | None = None) -> Roadmap | None:
        """The system's roadmap, or None when neither a plan table nor a spec gave one."""
        with self._tx(session) as s:
            return s.get(Roadmap, system_id)

    def list_roadmaps(self) -> list[Roadmap]:
        """Every roadmap, ordered by system id."""
        with self.session() as s:
            return list(s.scalars(sa.select(Roadmap).order_by(Roadmap.system_id)))

    def add_exemption_ruling(
        self,
        system_id: str,
        *,
        decision: ExemptionDecision,
        ruled_on: date,
        panel: list[str],
        document: str,
        reason: str,
        recorded_by: str,
        session: Session,
    ) -> ExemptionRuling:
        """Record one ruling of the expert panel (in the caller's transaction, beside its audit event)."""
        row = ExemptionRuling(
            system_id=system_id,
            decision=decision,
            ruled_on=ruled_on,
            panel=list(panel),
            document=document,
            reason=reason,
            recorded_at=self.now(),
            recorded_by=recorded_by,
        )
        session.add(row)
        session.flush()
        return row

    def exemption_rulings(
        self, system_id: str | None = None, *, session: Session | None = None
    ) -> list[ExemptionRuling]:
        """The rulings (of one system, or all), oldest first."""
        statement = sa.select(ExemptionRuling).order_by(ExemptionRuling.id)
        if system_id is not None:
            statement = statement.where(ExemptionRuling.system_id == system_id)
        with self._tx(session) as s:
            return list(s.scalars(statement))


def _blank(system_id: str) -> Roadmap:
    return Roadmap(
        system_id=system_id,
        network_move=RoadmapStatus.NOT_NEEDED,
        code_optimisation=RoadmapStatus.NOT_NEEDED,
        database_update=RoadmapStatus.NOT_NEEDED,
        os_upgrade=RoadmapStatus.NOT_NEEDED,
    )
