"""Reports, the parties' signatures on them, and the enrolled approvers.

Reports and signatures are never deleted: when the lifecycle sends a system back they are voided
(``voided_at`` set, signatures also ``valid=False``), so the evidence of earlier cycles stays.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cutover.digest import digest_bytes
from cutover.errors import LedgerError
from cutover.ledger._core import LedgerCore, rowcount
from cutover.ledger._enums import Decision, Party, ReportKind
from cutover.ledger._models import Approver, Report, Signature


class SignOffRepository(LedgerCore):
    """Reports, signatures and approvers."""

    def create_report(
        self,
        run_id: str,
        system_id: str,
        kind: ReportKind,
        content: str,
        *,
        session: Session | None = None,
    ) -> Report:
        """Store a report and its digest (the value the parties sign)."""
        report = Report(
            run_id=run_id,
            system_id=system_id,
            kind=kind,
            content=content,
            digest=digest_bytes(content.encode(), self.digest),
            created_at=self.now(),
        )
        with self._tx(session) as s:
            s.add(report)
            s.flush()
        return report

    def get_report(self, report_id: int) -> Report | None:
        """The report, or None."""
        with self.session() as s:
            return s.get(Report, report_id)

    def latest_report(self, system_id: str, kind: ReportKind) -> Report | None:
        """The system's newest report of ``kind`` that was not voided."""
        statement = sa.select(Report).where(
            Report.system_id == system_id, Report.kind == kind, Report.voided_at.is_(None)
        )
        with self.session() as s:
            return s.scalars(statement.order_by(Report.id.desc()).limit(1)).first()

    def void_reports(self, system_id: str, *, session: Session | None = None) -> int:
        """Void every report of the system not yet voided; returns how many."""
        with self._tx(session) as s:
            result = s.execute(
                sa.update(Report)
                .where(Report.system_id == system_id, Report.voided_at.is_(None))
                .values(voided_at=self.now())
            )
            return rowcount(result)

    def add_signature(
        self,
        *,
        run_id: str,
        system_id: str,
        party: Party,
        approver_id: str,
        decision: Decision,
        report_digest: str,
        spec_digest: str,
        comment: str = "",
        session: Session | None = None,
    ) -> Signature:
        """Record one party's verified decision on the report with ``report_digest``."""
        signature = Signature(
            run_id=run_id,
            system_id=system_id,
            party=party,
            approver_id=approver_id,
            decision=decision,
            comment=comment,
            report_digest=report_digest,
            spec_digest=spec_digest,
            signed_at=self.now(),
            valid=True,
        )
        with self._tx(session) as s:
            s.add(signature)
            s.flush()
        return signature

    def signatures_for(
        self, system_id: str, *, report_digest: str | None = None, valid_only: bool = True
    ) -> list[Signature]:
        """The system's signatures, oldest first (only valid ones unless ``valid_only=False``)."""
        statement = sa.select(Signature).where(Signature.system_id == system_id)
        if report_digest is not None:
            statement = statement.where(Signature.report_digest == report_digest)
        if valid_only:
            statement = statement.where(Signature.valid.is_(True))
        with self.session() as s:
            return list(s.scalars(statement.order_by(Signature.id)))

    def void_signatures(self, system_id: str, *, session: Session | None = None) -> int:
        """Void every valid signature of the system; returns how many."""
        with self._tx(session) as s:
            result = s.execute(
                sa.update(Signature)
                .where(Signature.system_id == system_id, Signature.valid.is_(True))
                .values(valid=False, voided_at=self.now())
            )
            return rowcount(result)

    def enroll_approver(
        self,
        approver_id: str,
        name: str,
        totp_secret_encrypted: bytes,
        *,
        session: Session | None = None,
    ) -> Approver:
        """Enroll (or re-enroll) an approver; re-enrolling replaces the secret and its counter."""
        with self._tx(session) as s:
            approver = s.get(Approver, approver_id) or Approver(id=approver_id)
            approver.name = name
            approver.totp_secret_encrypted = totp_secret_encrypted
            approver.enrolled_at = self.now()
            approver.last_used_counter = None
            s.add(approver)
            s.flush()
            return approver

    def get_approver(self, approver_id: str) -> Approver | None:
        """The enrolled approver, or None."""
        with self.session() as s:
            return s.get(Approver, approver_id)

    def consume_totp_counter(self, approver_id: str, counter: int, *, session: Session | None = None) -> bool:
        """Accept a TOTP time counter once: False if it (or a later one) was already used."""
        with self._tx(session) as s:
            if s.get(Approver, approver_id) is None:
                raise LedgerError(f"approver {approver_id!r} is not enrolled; enroll them first")
            result = s.execute(
                sa.update(Approver)
                .where(
                    Approver.id == approver_id,
                    sa.or_(
                        Approver.last_used_counter.is_(None),
                        Approver.last_used_counter < counter,
                    ),
                )
                .values(last_used_counter=counter)
                .execution_options(synchronize_session=False)
            )
            return rowcount(result) == 1
