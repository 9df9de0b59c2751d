"""Systems and plan entries: who the systems are and where each stands.

State changes go through :mod:`cutover.lifecycle`, which calls :meth:`compare_and_set_state`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cutover.errors import LedgerError, UnknownSystem
from cutover.ledger._core import LedgerCore, insert_unless_present, plain_json, rowcount
from cutover.ledger._enums import Disposition, LifecycleState
from cutover.ledger._models import PlanEntry, System

_E = TypeVar("_E", bound=StrEnum)
_DESCRIPTIVE = ("name", "department", "disposition", "spec_digest")


class SystemUpsert(NamedTuple):
    """What :meth:`SystemsRepository.upsert_system` did: the row, and whether it changed."""

    system: System
    created: bool
    changed: tuple[str, ...]


def coerce_enum(enum_class: type[_E], value: str, field: str) -> _E:
    """``value`` as a member of ``enum_class``, or a LedgerError listing the allowed values."""
    try:
        return enum_class(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum_class)
        raise LedgerError(f"{field} {value!r} is not one of: {allowed}") from None


class SystemsRepository(LedgerCore):
    """Systems and their plan entries."""

    def get_system(self, system_id: str, *, session: Session | None = None) -> System | None:
        """The system, or None if it was never registered."""
        with self._tx(session) as s:
            return s.get(System, system_id)

    def require_system(self, system_id: str, *, session: Session | None = None) -> System:
        """The system, or UnknownSystem saying it must be registered first."""
        system = self.get_system(system_id, session=session)
        if system is None:
            raise UnknownSystem(
                f"system {system_id!r} is not in the ledger at {self.safe_url}; "
                "check the id; `cutover plan` registers every spec in the specs directory (so does a cutover run)"
            )
        return system

    def list_systems(self, *, state: LifecycleState | None = None) -> list[System]:
        """Every system (optionally only those in ``state``), ordered by id."""
        statement = sa.select(System).order_by(System.id)
        if state is not None:
            statement = statement.where(System.state == state)
        with self.session() as s:
            return list(s.scalars(statement))

    def upsert_system(
        self,
        *,
        system_id: str,
        name: str,
        department: str,
        disposition: Disposition | str,
        spec_digest: str | None = None,
        session: Session | None = None,
    ) -> SystemUpsert:
        """Insert the system in ``planned``, or update its descriptive fields (never its state)."""
        fields: dict[str, Any] = {
            "name": name,
            "department": department,
            "disposition": coerce_enum(Disposition, disposition, "disposition"),
            "spec_digest": spec_digest,
        }
        with self._tx(session) as s:
            now = self.now()
            row = System(id=system_id, state=LifecycleState.PLANNED, created_at=now, updated_at=now)
            for key, value in fields.items():
                setattr(row, key, value)
            if s.get(System, system_id) is None and insert_unless_present(s, row):
                return SystemUpsert(row, created=True, changed=_DESCRIPTIVE)
            return self._update_system(s, system_id, fields)

    def _update_system(self, s: Session, system_id: str, fields: dict[str, Any]) -> SystemUpsert:
        system = s.get(System, system_id, populate_existing=True)
        if system is None:
            raise LedgerError(f"system {system_id!r} could not be inserted nor found; retry")
        changed = tuple(key for key, value in fields.items() if getattr(system, key) != value)
        for key in changed:
            setattr(system, key, fields[key])
        if changed:
            system.updated_at = self.now()
        s.flush()
        return SystemUpsert(system, created=False, changed=changed)

    def compare_and_set_state(
        self,
        system_id: str,
        expected: LifecycleState,
        new: LifecycleState,
        *,
        session: Session,
    ) -> bool:
        """Set the state only if it is still ``expected``; False if another writer got there first."""
        result = session.execute(
            sa.update(System)
            .where(System.id == system_id, System.state == expected)
            .values(state=new, updated_at=self.now())
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) == 1

    def set_plan_entry(self, system_id: str, fields: Mapping[str, Any], *, session: Session | None = None) -> PlanEntry:
        """Store (replace) the system's row of the plan table."""
        with self._tx(session) as s:
            entry = s.get(PlanEntry, system_id) or PlanEntry(system_id=system_id)
            entry.fields = plain_json(fields)
            entry.updated_at = self.now()
            s.add(entry)
            s.flush()
            return entry

    def get_plan_entry(self, system_id: str, *, session: Session | None = None) -> PlanEntry | None:
        """The system's plan row, or None."""
        with self._tx(session) as s:
            return s.get(PlanEntry, system_id)

    def list_plan_entries(self) -> list[PlanEntry]:
        """Every plan row, ordered by system id."""
        with self.session() as s:
            return list(s.scalars(sa.select(PlanEntry).order_by(PlanEntry.system_id)))
