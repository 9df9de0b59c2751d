"""Approvers: who may sign for a party, and how they prove it (SM2 keys, or TOTP in the light mode).

SM2 (the default, ``CUTOVER_SIGNOFF_PROOF=sm2``): an approver makes a key pair on their own
machine (``cutover approver keygen``), and an administrator enrolls the public key, or a
certificate whose key is SM2. The approver signs the canonical :class:`~cutover.statement.Statement`
of their decision; the signature is checked with the enrolled public key only, so nothing a
worker, the Prefect server or the ledger holds can make one. A replaced or revoked key is kept,
so signatures made with it still verify in ``cutover audit verify``.

TOTP (``CUTOVER_SIGNOFF_PROOF=totp``, a light mode for pilots): a time-based one-time code
(RFC 6238: 6 digits, 30-second steps) from an authenticator app. Its secrets must be readable by
the verifier, so whoever holds the worker's key and the ledger can compute every code and forge
a sign-off.

Public surface::

    enroll_key(ledger, approver_id, name, party, key_data, *, actor, source) -> KeyEnrollment
    revoke(ledger, approver_id, *, actor) -> str                  the revoked key's fingerprint
    active_key(ledger, approver_id) -> ApproverKey | None
    verify_statement(ledger, statement, signature_b64) -> str     the verifying key's fingerprint
    approver_party(ledger, approver_id) -> Party | None
    enroll(ledger, approver_id, name, *, settings=None) -> Enrollment          TOTP
    verify_code(ledger, approver_id, code, *, at, settings=None, session=None) -> int
    code_for(ledger, approver_id, *, at, settings=None) -> str      demos and tests only

TOTP secrets are encrypted at rest with Fernet, keyed by ``settings.totp_key``
(``CUTOVER_TOTP_KEY``); when that is unset a key is generated once into ``settings.home /
"totp.key"`` (mode 0600) and the enrollment says so. A code is accepted once: the approver's last
accepted time step is stored and only a later one is accepted (anti-replay). Secrets and codes are
never logged; reprs mask them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from cutover import _totp, audit, sm2
from cutover.errors import ConfigurationError, LedgerError, SignatureInvalid, UnknownApprover
from cutover.ledger import Approver, ApproverKey, Ledger, Party
from cutover.settings import Settings, get_settings
from cutover.statement import Statement

__all__ = [
    "Enrollment",
    "KeyEnrollment",
    "active_key",
    "approver_party",
    "code_for",
    "enroll",
    "enroll_key",
    "revoke",
    "verify_code",
    "verify_statement",
]

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class Enrollment:
    """What enrolling produced: the URI and QR code to scan once (both hold the secret)."""

    approver_id: str
    name: str
    enrolled_at: datetime
    uri: str = field(repr=False)
    qr: str = field(repr=False)
    key_file_created: Path | None = None

    def __str__(self) -> str:
        return f"approver {self.approver_id} ({self.name}) enrolled at {_when(self.enrolled_at)}"


@dataclass(frozen=True)
class KeyEnrollment:
    """An enrolled SM2 public key: whose, for which party, its fingerprint, who enrolled it and when.

    ``replaced`` is the fingerprint of the key it replaced (kept, revoked), if there was one.
    """

    approver_id: str
    name: str
    party: Party
    fingerprint: str
    enrolled_at: datetime
    enrolled_by: str
    replaced: str | None = None

    def __str__(self) -> str:
        return (
            f"approver {self.approver_id} ({self.name}, {self.party.value}) enrolled with SM2 key "
            f"{self.fingerprint} by {self.enrolled_by} at {_when(self.enrolled_at)}"
        )


def enroll_key(
    ledger: Ledger,
    approver_id: str,
    name: str,
    party: Party,
    key_data: bytes,
    *,
    actor: str,
    source: str,
) -> KeyEnrollment:
    """Register (or replace) the approver's SM2 public key and audit it with ``actor``, the administrator.

    ``key_data`` is a PEM public key or an X.509 certificate (PEM or DER) whose key is SM2;
    ``source`` names where it came from (the file). A replaced key is kept, revoked, so old
    signatures still verify. Enrolling the same key again for the same approver and party changes
    nothing; a key enrolled for someone else, or revoked, is refused.
    """
    _check_id(approver_id)
    if not name.strip():
        raise ConfigurationError(f"approver {approver_id!r} needs a name (the person's full name)")
    party = Party(party)
    public_pem = sm2.load_public_key(key_data, source=source)
    fingerprint = sm2.fingerprint(public_pem)
    known = ledger.approver_key_by_fingerprint(fingerprint)
    if known is not None:
        return _already_enrolled(ledger, known, approver_id, name.strip(), party)
    with ledger.session() as session:
        key, replaced = ledger.add_approver_key(
            approver_id,
            name.strip(),
            party,
            public_key_pem=public_pem,
            fingerprint=fingerprint,
            source=source,
            enrolled_by=actor,
            session=session,
        )
        audit.append(
            session,
            actor=actor,
            action="approver.enrolled",
            object=f"approver:{approver_id}",
            detail={
                "name": name.strip(),
                "party": party.value,
                "proof": "sm2",
                "public_key": public_pem,
                "fingerprint": fingerprint,
                "source": source,
                "replaced": replaced.fingerprint if replaced else None,
            },
        )
    return _key_enrollment(key, name.strip(), replaced.fingerprint if replaced else None)


def revoke(ledger: Ledger, approver_id: str, *, actor: str) -> str:
    """Revoke the approver's active SM2 key (kept for old signatures); returns its fingerprint."""
    if ledger.get_approver(approver_id) is None:
        raise UnknownApprover(f"approver {approver_id!r} is not enrolled; `cutover approver list` shows who is")
    with ledger.session() as session:
        key = ledger.revoke_approver_key(approver_id, revoked_by=actor, session=session)
        if key is None:
            raise ConfigurationError(
                f"approver {approver_id} has no active SM2 key to revoke (never enrolled with one, or "
                "already revoked); `cutover approver list` shows their keys"
            )
        audit.append(
            session,
            actor=actor,
            action="approver.revoked",
            object=f"approver:{approver_id}",
            detail={"fingerprint": key.fingerprint, "party": key.party.value},
        )
    return key.fingerprint


def active_key(ledger: Ledger, approver_id: str) -> ApproverKey | None:
    """The approver's active (not revoked) SM2 key, or None."""
    return ledger.active_approver_key(approver_id)


def approver_party(ledger: Ledger, approver_id: str) -> Party | None:
    """The party the approver was enrolled for (None if not enrolled, or enrolled before parties were)."""
    row = ledger.get_approver(approver_id)
    return row.party if row is not None else None


def verify_statement(ledger: Ledger, statement: Statement, signature_b64: str) -> str:
    """Check ``signature_b64`` over ``statement`` with its approver's active key; return the key's fingerprint.

    Raises SignatureInvalid saying what was wrong and what to do: the approver has no key, their
    key was revoked, or the signature does not verify.
    """
    approver_id = statement.approver_id
    key = ledger.active_approver_key(approver_id)
    if key is None:
        raise SignatureInvalid(_no_active_key(ledger, approver_id))
    if sm2.verify(key.public_key_pem, statement.message(), signature_b64):
        return key.fingerprint
    old = _old_key_that_verifies(ledger, approver_id, statement, signature_b64)
    if old is not None:
        raise SignatureInvalid(
            f"the signature of {approver_id} was made with their revoked key {old.fingerprint}; "
            f"sign again with the key enrolled now ({key.fingerprint})"
        )
    raise SignatureInvalid(
        f"the signature of {approver_id} does not verify with their enrolled key {key.fingerprint}: sign exactly "
        "the statement shown (UTF-8, no trailing newline) with SM3 and the default user ID 1234567812345678 "
        "(with openssl add -pkeyopt distid:1234567812345678), and paste the base64 of the signature"
    )


def _already_enrolled(ledger: Ledger, key: ApproverKey, approver_id: str, name: str, party: Party) -> KeyEnrollment:
    if key.approver_id != approver_id:
        raise ConfigurationError(
            f"this key ({key.fingerprint}) is already enrolled for approver {key.approver_id}; each "
            "approver signs with a key of their own: have them make one with `cutover approver keygen`"
        )
    if key.revoked_at is not None:
        raise ConfigurationError(
            f"this key ({key.fingerprint}) of {approver_id} was revoked at {_when(key.revoked_at)}; a revoked "
            "key is never enrolled again: have them make a new one with `cutover approver keygen`"
        )
    if key.party is not party:
        raise ConfigurationError(
            f"this key of {approver_id} is enrolled for the {key.party.value} party; to sign for the "
            f"{party.value} party enroll a new key (`cutover approver keygen`)"
        )
    row = ledger.get_approver(approver_id)
    return _key_enrollment(key, row.name if row is not None else name, None)


def _key_enrollment(key: ApproverKey, name: str, replaced: str | None) -> KeyEnrollment:
    return KeyEnrollment(key.approver_id, name, key.party, key.fingerprint, key.enrolled_at, key.enrolled_by, replaced)


def _no_active_key(ledger: Ledger, approver_id: str) -> str:
    revoked = [key for key in ledger.approver_keys(approver_id) if key.revoked_at is not None]
    if revoked:
        last = revoked[-1]
        assert last.revoked_at is not None
        return (
            f"the SM2 key of approver {approver_id} ({last.fingerprint}) was revoked at {_when(last.revoked_at)} "
            f"by {last.revoked_by}; they cannot sign until an administrator enrolls a new key with "
            f"`cutover approver enroll {approver_id} --name NAME --party PARTY --key FILE.pub`"
        )
    return (
        f"approver {approver_id} is not enrolled with an SM2 key, so their signature cannot be checked; they "
        f"make a key with `cutover approver keygen --out FILE` and an administrator enrolls it with "
        f"`cutover approver enroll {approver_id} --name NAME --party PARTY --key FILE.pub`"
    )


def _old_key_that_verifies(
    ledger: Ledger, approver_id: str, statement: Statement, signature_b64: str
) -> ApproverKey | None:
    message = statement.message()
    return next(
        (
            key
            for key in ledger.approver_keys(approver_id)
            if key.revoked_at is not None and sm2.verify(key.public_key_pem, message, signature_b64)
        ),
        None,
    )


def enroll(ledger: Ledger, approver_id: str, name: str, *, settings: Settings | None = None) -> Enrollment:
    """Create (or replace) the approver's TOTP secret, store it encrypted, and audit it.

    Re-enrolling replaces the secret, so codes from the old authenticator entry stop working.
    """
    _check_id(approver_id)
    if not name.strip():
        raise ConfigurationError(f"approver {approver_id!r} needs a name (the person's full name)")
    cipher = _totp.load_cipher(settings or get_settings())
    secret = _totp.new_secret()
    with ledger.session() as session:
        row = ledger.enroll_approver(approver_id, name.strip(), _totp.encrypt(cipher, secret), session=session)
        audit.append(
            session,
            actor=approver_id,
            action="approver.enrolled",
            object=f"approver:{approver_id}",
            detail={"name": row.name, "proof": "totp", "key_source": cipher.source},
        )
    uri = _totp.provisioning_uri(secret, approver_id)
    return Enrollment(approver_id, row.name, row.enrolled_at, uri, _totp.terminal_qr(uri), cipher.generated)


def verify_code(
    ledger: Ledger,
    approver_id: str,
    code: str,
    *,
    at: datetime,
    settings: Settings | None = None,
    session: Session | None = None,
) -> int:
    """Accept ``code`` for the approver at ``at`` once; return its time-step counter.

    Raises SignatureInvalid if the approver is not enrolled, the code is wrong (a step either
    side of ``at`` is tolerated), or it (or a later code) was already accepted. Pass ``session``
    to consume the code in the same transaction that records what it authorises.
    """
    secret = _secret_of(ledger, approver_id, settings)
    counter = _matching_counter(approver_id, secret, code, at)
    try:
        accepted = ledger.consume_totp_counter(approver_id, counter, session=session)
    except LedgerError as exc:
        raise SignatureInvalid(str(exc)) from exc
    if not accepted:
        raise SignatureInvalid(
            f"code for {approver_id} was already used (it, or a later code, was accepted before); "
            "wait for the next code from your authenticator app and submit that"
        )
    return counter


def code_for(ledger: Ledger, approver_id: str, *, at: datetime, settings: Settings | None = None) -> str:
    """The approver's current code. For demos and tests only: whoever holds the key can sign."""
    return _totp.code_at(_secret_of(ledger, approver_id, settings), at)


def _secret_of(ledger: Ledger, approver_id: str, settings: Settings | None) -> str:
    row = ledger.get_approver(approver_id)
    if row is None:
        raise SignatureInvalid(
            f"approver {approver_id} is not enrolled, so their code cannot be checked; an "
            f"administrator enrolls them with `cutover approver enroll {approver_id} --name NAME --totp`"
        )
    return _decrypt(row, settings)


def _decrypt(row: Approver, settings: Settings | None) -> str:
    if row.totp_secret_encrypted is None:
        raise SignatureInvalid(
            f"approver {row.id} has no TOTP secret: they sign with an SM2 key (CUTOVER_SIGNOFF_PROOF=sm2); "
            f"for the TOTP light mode an administrator enrolls them with "
            f"`cutover approver enroll {row.id} --name NAME --totp`"
        )
    cipher = _totp.load_cipher(settings or get_settings())
    return _totp.decrypt(cipher, row.totp_secret_encrypted, row.id)


def _matching_counter(approver_id: str, secret: str, code: str, at: datetime) -> int:
    cleaned = _totp.normalise_code(code)
    counter = _totp.matching_counter(secret, cleaned, at) if cleaned else None
    if counter is None:
        raise SignatureInvalid(
            f"code for {approver_id} is not valid at {_when(at)}; use the current code from your authenticator app"
        )
    return counter


def _check_id(approver_id: str) -> None:
    if not _ID.match(approver_id) or len(approver_id) > 64:
        raise ConfigurationError(
            f"approver id {approver_id!r} is not valid: use lower-case letters, digits, '.', '_' "
            "or '-', starting with a letter or digit (as in the spec's rosters, e.g. wang.li)"
        )


def _when(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at.isoformat()}: pass a timezone-aware time (UTC)")
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
