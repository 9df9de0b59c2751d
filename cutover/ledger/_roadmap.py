"""Roadmaps and exemption rulings: the leading-group office's part of the ledger."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cutover.ledger._core import LedgerCore, plain_json
from cutover.ledger._enums import Disposition, ExemptionDecision, LifecycleState, RoadmapStatus
from cutover.ledger._models import ExemptionRuling, PlanEntry, Roadmap, System

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
#: What registering one plan table row did.
PlanOutcome = Literal["created", "updated", "unchanged", "spec_governed"]
_SPEC_OWNS = ("cutover_on", "operator")


@dataclass(frozen=True)
class PlanItem:
    """One system of a plan table: who it is, its plan entry (attachment-2 fields) and its roadmap."""

    system_id: str
    name: str
    department: str
    disposition: Disposition
    plan_fields: Mapping[str, Any]
    roadmap: Mapping[str, Any]


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

    def register_plan_items(self, items: Sequence[PlanItem], *, session: Session) -> dict[str, PlanOutcome]:
        """Register the systems of a plan table in ``planned`` with their plan entries and roadmaps, in bulk.

        A system registered from a spec keeps what its spec says (its row, plan entry, cutover date
        and operator); only the rest of its roadmap is updated (``spec_governed``).
        """
        ids = [item.system_id for item in items]
        systems = {r.id: r for r in session.scalars(sa.select(System).where(System.id.in_(ids)))}
        entries = {r.system_id: r for r in session.scalars(sa.select(PlanEntry).where(PlanEntry.system_id.in_(ids)))}
        roadmaps = {r.system_id: r for r in session.scalars(sa.select(Roadmap).where(Roadmap.system_id.in_(ids)))}
        now = self.now()
        new = [item for item in items if item.system_id not in systems]
        _insert_new(session, new, now)
        outcome: dict[str, PlanOutcome] = {item.system_id: "created" for item in new}
        for item in items:
            system = systems.get(item.system_id)
            if system is None:
                continue
            roadmap = roadmaps.get(item.system_id) or _blank(item.system_id)
            if system.spec_digest is not None:
                _assign(roadmap, {k: v for k, v in item.roadmap.items() if k not in _SPEC_OWNS}, "spec", now)
                session.add(roadmap)
                outcome[item.system_id] = "spec_governed"
                continue
            fields = {"name": item.name, "department": item.department, "disposition": item.disposition}
            moved = _assign(system, fields, None, now)
            entry = entries.get(item.system_id) or PlanEntry(system_id=item.system_id)
            moved = _assign(entry, {"fields": plain_json(item.plan_fields)}, None, now) or moved
            moved = _assign(roadmap, item.roadmap, "plan-table", now) or moved
            session.add_all([entry, roadmap])
            outcome[item.system_id] = "updated" if moved else "unchanged"
        session.flush()
        return outcome

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


def _insert_new(session: Session, items: Sequence[PlanItem], now: Any) -> None:
    """Insert new systems (in ``planned``), then their plan entries and roadmaps, as bulk INSERTs."""
    if not items:
        return
    systems = [
        {
            "id": i.system_id,
            "name": i.name,
            "department": i.department,
            "disposition": i.disposition,
            "state": LifecycleState.PLANNED,
            "spec_digest": None,
            "created_at": now,
            "updated_at": now,
        }
        for i in items
    ]
    session.execute(sa.insert(System), systems)
    entries = [{"system_id": i.system_id, "fields": plain_json(i.plan_fields), "updated_at": now} for i in items]
    session.execute(sa.insert(PlanEntry), entries)
    statuses = ("network_move", *ADAPTATION_ITEMS)
    blank = dict.fromkeys(ROADMAP_FIELDS) | dict.fromkeys(statuses, RoadmapStatus.NOT_NEEDED)
    roadmaps = [
        blank | dict(i.roadmap) | {"system_id": i.system_id, "source": "plan-table", "updated_at": now} for i in items
    ]
    session.execute(sa.insert(Roadmap), roadmaps)


def _assign(row: Any, fields: Mapping[str, Any], source: str | None, now: Any) -> bool:
    """Set ``fields`` (and ``source``) on ``row``, stamping ``updated_at`` if one changed; True if so."""
    wanted = dict(fields) | ({"source": source} if source is not None else {})
    changed = [key for key, value in wanted.items() if getattr(row, key, None) != value]
    for key in changed:
        setattr(row, key, wanted[key])
    if changed or getattr(row, "updated_at", None) is None:
        row.updated_at = now
    return bool(changed)
