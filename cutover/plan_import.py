"""``cutover plan import``: a department's systems into the ledger from its plan table (attachment 2).

The table is read and checked whole first (:mod:`cutover._plan_table`): one bad row and nothing
is written. Then, in one transaction, each system is registered (in ``planned``, without a spec)
with its plan entry and roadmap, and one ``plan.imported`` audit event names what changed. A
system registered from a spec keeps what its spec says (name, department, disposition, cutover
date): the import updates only the rest of its roadmap. A spec registered later for a system of
the table takes its entry over (:func:`cutover.runtime.register`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from cutover import audit
from cutover._plan_table import TableRow, read_plan_table
from cutover.digest import digest_bytes
from cutover.ledger import Ledger

PLAN_TABLE = "plan-table"
SPEC = "spec"


@dataclass(frozen=True)
class ImportResult:
    """What an import did: systems registered, updated, unchanged, and those a spec governs."""

    rows: int
    created: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]
    spec_governed: tuple[str, ...]


def import_plan(ledger: Ledger, path: Path, *, actor: str) -> ImportResult:
    """Check the table at ``path``, then register its systems and roadmaps (all or nothing)."""
    rows = read_plan_table(path)
    outcome: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": [], "spec_governed": []}
    with ledger.session() as session:
        for row in rows:
            outcome[_write(ledger, session, row)].append(row.system.id)
        audit.append(
            session,
            actor=actor,
            action="plan.imported",
            object=f"plan:{path.name}",
            detail={"file": path.name, "digest": digest_bytes(path.read_bytes(), ledger.digest), **outcome},
        )
    return ImportResult(len(rows), *(tuple(outcome[k]) for k in ("created", "updated", "unchanged", "spec_governed")))


def _write(ledger: Ledger, session: Session, row: TableRow) -> str:
    system = row.system
    found = ledger.get_system(system.id, session=session)
    if found is not None and found.spec_digest is not None:
        roadmap = {k: v for k, v in row.roadmap.items() if k not in ("cutover_on", "operator")}
        ledger.set_roadmap(system.id, roadmap, source=SPEC, session=session)
        return "spec_governed"
    upsert = ledger.upsert_system(
        system_id=system.id,
        name=system.name,
        department=system.department,
        disposition=system.disposition,
        session=session,
    )
    ledger.set_plan_entry(system.id, system.model_dump(mode="json", by_alias=True), session=session)
    before = ledger.get_roadmap(system.id, session=session)
    changed = before is None or any(getattr(before, k) != v for k, v in row.roadmap.items())
    ledger.set_roadmap(system.id, row.roadmap, source=PLAN_TABLE, session=session)
    if upsert.created:
        return "created"
    return "updated" if upsert.changed or changed else "unchanged"
