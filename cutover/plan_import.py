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

from cutover import audit
from cutover._plan_table import TableRow, read_plan_table
from cutover.digest import digest_bytes
from cutover.ledger import Ledger, PlanItem


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
    items = [_item(row) for row in rows]
    with ledger.session() as session:
        done = ledger.register_plan_items(items, session=session)
        outcome = {kind: [key for key, value in done.items() if value == kind] for kind in _KINDS}
        audit.append(
            session,
            actor=actor,
            action="plan.imported",
            object=f"plan:{path.name}",
            detail={"file": path.name, "digest": digest_bytes(path.read_bytes(), ledger.digest), **outcome},
        )
    return ImportResult(len(rows), *(tuple(outcome[kind]) for kind in _KINDS))


_KINDS = ("created", "updated", "unchanged", "spec_governed")


def _item(row: TableRow) -> PlanItem:
    system = row.system
    return PlanItem(
        system_id=system.id,
        name=system.name,
        department=system.department,
        disposition=system.disposition,
        plan_fields=system.model_dump(mode="json", by_alias=True),
        roadmap=row.roadmap,
    )
