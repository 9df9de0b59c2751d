"""The one lock per system that keeps two cutovers or rollbacks of it from running at once.

Acquiring inserts a row keyed by the system id, so of two processes racing exactly one insert
succeeds; the other is refused with the holder's name. Releasing deletes the row. A lock left by
a dead run is replaced only explicitly, with :meth:`LockRepository.override_lock`.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cutover.errors import ConcurrencyRefused, LedgerError
from cutover.ledger._core import LedgerCore, insert_unless_present, rowcount
from cutover.ledger._enums import RunKind
from cutover.ledger._models import Lock


class LockRepository(LedgerCore):
    """Per-system locks held by runs."""

    def acquire_lock(self, system_id: str, holder: str, kind: RunKind, *, session: Session | None = None) -> Lock:
        """Take the system's lock for run ``holder``, or raise ConcurrencyRefused naming the holder.

        Acquiring again with the same holder returns the lock it already has.
        """
        with self._tx(session) as s:
            lock = Lock(system_id=system_id, holder_run_id=holder, kind=kind, acquired_at=self.now())
            if insert_unless_present(s, lock):
                return lock
            current = s.get(Lock, system_id, populate_existing=True)
            if current is None:
                raise LedgerError(
                    f"could not lock system {system_id!r} for run {holder}: the system or the "
                    "run is not in the ledger; register the system and create the run first"
                )
            if current.holder_run_id == holder:
                return current
            raise self._refusal(system_id, kind, current)

    def release_lock(self, system_id: str, holder: str, *, session: Session | None = None) -> bool:
        """Release the lock if ``holder`` holds it; False when it did not (nothing changes)."""
        with self._tx(session) as s:
            result = s.execute(sa.delete(Lock).where(Lock.system_id == system_id, Lock.holder_run_id == holder))
            return rowcount(result) == 1

    def get_lock(self, system_id: str) -> Lock | None:
        """The system's lock, or None when it is free."""
        with self.session() as s:
            return s.get(Lock, system_id)

    def override_lock(
        self,
        system_id: str,
        *,
        stale_holder: str,
        holder: str,
        kind: RunKind,
        session: Session | None = None,
    ) -> Lock:
        """Replace a lock known to be stale (its run is dead) with one held by ``holder``.

        Refused when ``stale_holder`` no longer holds it, so an override never steals a lock
        from a run that took it in the meantime. Record who overrode it in the audit trail.
        """
        with self._tx(session) as s:
            result = s.execute(sa.delete(Lock).where(Lock.system_id == system_id, Lock.holder_run_id == stale_holder))
            if rowcount(result) != 1:
                current = s.get(Lock, system_id, populate_existing=True)
                raise self._refusal(system_id, kind, current, stale_holder=stale_holder)
            lock = Lock(system_id=system_id, holder_run_id=holder, kind=kind, acquired_at=self.now())
            s.add(lock)
            s.flush()
            return lock

    def _refusal(
        self, system_id: str, kind: RunKind, current: Lock | None, *, stale_holder: str = ""
    ) -> ConcurrencyRefused:
        if current is None:
            return ConcurrencyRefused(
                f"system {system_id!r}: the lock held by run {stale_holder} was released "
                "meanwhile; acquire it normally instead of overriding it"
            )
        return ConcurrencyRefused(
            f"system {system_id!r} is locked by {current.kind.value} run {current.holder_run_id} "
            f"since {current.acquired_at.isoformat()}; this {kind.value} was not started. Wait "
            "for that run to finish, or, if it is dead, override the stale lock explicitly"
        )
