"""Approvers: TOTP enrollment and code verification (the identity behind a sign-off).

OSS Prefect records no identity for who resumed a run, so each approver proves who they are with
a time-based one-time code (RFC 6238: 6 digits, 30-second steps) from an authenticator app.

Public surface::

    enroll(ledger, approver_id, name, *, settings=None) -> Enrollment
    verify_code(ledger, approver_id, code, *, at, settings=None, session=None) -> int
    code_for(ledger, approver_id, *, at, settings=None) -> str      demos and tests only

Secrets are encrypted at rest with Fernet, keyed by ``settings.totp_key`` (``CUTOVER_TOTP_KEY``);
when that is unset a key is generated once into ``settings.home / "totp.key"`` (mode 0600) and
the enrollment says so. A code is accepted once: the approver's last accepted time step is stored
and only a later one is accepted (anti-replay). Secrets and codes are never logged; reprs mask them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from cutover import _totp, audit
from cutover.errors import ConfigurationError, LedgerError, SignatureInvalid
from cutover.ledger import Approver, Ledger
from cutover.settings import Settings, get_settings

__all__ = ["Enrollment", "code_for", "enroll", "verify_code"]

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
            detail={"name": row.name, "key_source": cipher.source},
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
            f"administrator enrolls them with `cutover approver enroll {approver_id} --name NAME`"
        )
    return _decrypt(row, settings)


def _decrypt(row: Approver, settings: Settings | None) -> str:
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
