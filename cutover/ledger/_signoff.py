"""Reports, the parties' signatures on them, and the enrolled approvers and their SM2 keys.

Reports and signatures are never deleted: when the lifecycle sends a system back they are voided
(``voided_at`` set, signatures also ``valid=False``), so the evidence of earlier cycles stays.
Approvers' public keys are never deleted either: a replaced or revoked key keeps its row with
``revoked_at`` set, so what was signed with it can still be verified.
"""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cutover.digest import digest_bytes
from cutover.errors import LedgerError, SignatureInvalid
from cutover.ledger._core import LedgerCore, rowcount
from cutover.ledger._enums import Decision, Party, ReportKind
from cutover.ledger._models import Approver, ApproverKey, Report, Signature

Proof = Literal["sm2", "totp"]


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
        proof: Proof | None = None,
        statement: str | None = None,
        signature: str | None = None,
        key_fingerprint: str | None = None,
        session: Session | None = None,
    ) -> Signature:
        """Record one party's verified decision on the report with ``report_digest``.

        With ``statement`` (the signed text) its digest is stored too, and a statement already
        accepted once is refused with SignatureInvalid: a signature is never accepted twice.
        """
        statement_digest = self.statement_digest(statement) if statement is not None else None
        row = Signature(
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
            proof=proof,
            statement=statement,
            signature=signature,
            key_fingerprint=key_fingerprint,
            statement_digest=statement_digest,
        )
        with self._tx(session) as s:
            if statement_digest is not None:
                _refuse_replay(s, statement_digest)
            s.add(row)
            s.flush()
        return row

    def statement_digest(self, statement: str) -> str:
        """The digest under which a signed statement is recorded (the ledger's algorithm, UTF-8)."""
        return digest_bytes(statement.encode("utf-8"), self.digest)

    def find_signature_by_statement_digest(
        self, statement_digest: str, *, session: Session | None = None
    ) -> Signature | None:
        """The signature recorded for the statement with this digest (valid or voided), or None."""
        with self._tx(session) as s:
            return s.scalars(sa.select(Signature).where(Signature.statement_digest == statement_digest)).first()

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

    def list_approvers(self) -> list[Approver]:
        """Every enrolled approver, by id."""
        with self.session() as s:
            return list(s.scalars(sa.select(Approver).order_by(Approver.id)))

    def add_approver_key(
        self,
        approver_id: str,
        name: str,
        party: Party,
        *,
        public_key_pem: str,
        fingerprint: str,
        source: str,
        enrolled_by: str,
        session: Session | None = None,
    ) -> tuple[ApproverKey, ApproverKey | None]:
        """Enroll a public key as the approver's active key; returns it and the key it replaced.

        Creates the approver (without a TOTP secret) or updates their name and party. The
        replaced key is revoked by ``enrolled_by``, never deleted.
        """
        with self._tx(session) as s:
            approver = s.get(Approver, approver_id)
            if approver is None:
                approver = Approver(id=approver_id, enrolled_at=self.now())
            approver.name, approver.party = name, party
            s.add(approver)
            s.flush()
            replaced = self._active_key(s, approver_id)
            if replaced is not None:
                replaced.revoked_at, replaced.revoked_by = self.now(), enrolled_by
            key = ApproverKey(
                approver_id=approver_id,
                party=party,
                public_key_pem=public_key_pem,
                fingerprint=fingerprint,
                source=source,
                enrolled_at=self.now(),
                enrolled_by=enrolled_by,
            )
            s.add(key)
            s.flush()
            return key, replaced

    def revoke_approver_key(
        self, approver_id: str, *, revoked_by: str, session: Session | None = None
    ) -> ApproverKey | None:
        """Revoke the approver's active key; returns it, or None when they have none."""
        with self._tx(session) as s:
            key = self._active_key(s, approver_id)
            if key is not None:
                key.revoked_at, key.revoked_by = self.now(), revoked_by
                s.flush()
            return key

    def active_approver_key(self, approver_id: str, *, session: Session | None = None) -> ApproverKey | None:
        """The approver's active (not revoked) key, or None."""
        with self._tx(session) as s:
            return self._active_key(s, approver_id)

    def approver_key_by_fingerprint(self, fingerprint: str) -> ApproverKey | None:
        """The enrolled key (active or revoked) with this fingerprint, or None."""
        with self.session() as s:
            return s.scalars(sa.select(ApproverKey).where(ApproverKey.fingerprint == fingerprint)).first()

    def approver_keys(self, approver_id: str | None = None) -> list[ApproverKey]:
        """Every enrolled key (of one approver, if given), oldest first, revoked ones included."""
        statement = sa.select(ApproverKey).order_by(ApproverKey.id)
        if approver_id is not None:
            statement = statement.where(ApproverKey.approver_id == approver_id)
        with self.session() as s:
            return list(s.scalars(statement))

    @staticmethod
    def _active_key(session: Session, approver_id: str) -> ApproverKey | None:
        statement = sa.select(ApproverKey).where(
            ApproverKey.approver_id == approver_id, ApproverKey.revoked_at.is_(None)
        )
        return session.scalars(statement.order_by(ApproverKey.id.desc())).first()

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


def _refuse_replay(session: Session, statement_digest: str) -> None:
    earlier = session.scalars(sa.select(Signature).where(Signature.statement_digest == statement_digest)).first()
    if earlier is not None:
        raise SignatureInvalid(
            f"this signed statement was already accepted once (signature {earlier.id} of "
            f"{earlier.approver_id} for system {earlier.system_id}); a statement counts only once: "
            "sign the statement of the form now waiting for you"
        )
