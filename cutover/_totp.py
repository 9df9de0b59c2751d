"""TOTP (RFC 6238) codes and the Fernet key that encrypts approvers' secrets at rest.

Internal to :mod:`cutover.approvers`. Secrets are base32 strings (pyotp); codes have 6 digits and
a 30-second step. Nothing here logs a secret or a code.
"""

from __future__ import annotations

import hmac
import io
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyotp
from cryptography.fernet import Fernet, InvalidToken

from cutover.errors import ConfigurationError
from cutover.settings import Settings

ISSUER = "govcloud-cutover"
DIGITS = 6
STEP_SECONDS = 30
VALID_WINDOW = 1
KEY_FILE_NAME = "totp.key"

_log = logging.getLogger(__name__)
_CODE = re.compile(r"^\d{6}$")


@dataclass(frozen=True, repr=False)
class Cipher:
    """The Fernet cipher for TOTP secrets and where its key came from."""

    fernet: Fernet
    source: str
    generated: Path | None = None

    def __repr__(self) -> str:
        return f"Cipher(source={self.source!r}, key=***)"


def load_cipher(settings: Settings) -> Cipher:
    """The cipher from ``settings.totp_key``, else from (or newly into) ``home/totp.key``."""
    if settings.totp_key is not None:
        return Cipher(_fernet(settings.totp_key.get_secret_value().encode(), "CUTOVER_TOTP_KEY"), "CUTOVER_TOTP_KEY")
    path = settings.home / KEY_FILE_NAME
    generated = _create_key_file(path)
    return Cipher(_fernet(path.read_bytes().strip(), str(path)), str(path), generated)


def _create_key_file(path: Path) -> Path | None:
    """Write a fresh key to ``path`` (mode 0600) unless it exists; the path if it was created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(Fernet.generate_key() + b"\n")
    _log.warning(
        "generated a new TOTP encryption key at %s (mode 0600); back it up: without it the "
        "enrolled approvers' secrets cannot be read. Set CUTOVER_TOTP_KEY to manage it yourself.",
        path,
    )
    return path


def _fernet(key: bytes, where: str) -> Fernet:
    try:
        return Fernet(key)
    except ValueError as exc:
        raise ConfigurationError(
            f"the TOTP encryption key from {where} is not a Fernet key (32 url-safe base64 bytes); "
            "generate one with `python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'`"
        ) from exc


def encrypt(cipher: Cipher, secret: str) -> bytes:
    """The secret encrypted for storage."""
    return cipher.fernet.encrypt(secret.encode())


def decrypt(cipher: Cipher, token: bytes, approver_id: str) -> str:
    """The stored secret in clear, or ConfigurationError if the key does not fit."""
    try:
        return cipher.fernet.decrypt(token).decode()
    except InvalidToken as exc:
        raise ConfigurationError(
            f"the TOTP key from {cipher.source} cannot decrypt the secret of approver {approver_id!r}: "
            "the key changed since they enrolled. Restore the old key, or re-enroll the approver "
            f"(`cutover approver enroll {approver_id} --name ...`)"
        ) from exc


def new_secret() -> str:
    """A fresh random base32 secret (160 bits)."""
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, approver_id: str) -> str:
    """The ``otpauth://`` URI an authenticator app scans."""
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    uri: str = totp.provisioning_uri(name=approver_id, issuer_name=ISSUER)
    return uri


def terminal_qr(data: str) -> str:
    """``data`` as a QR code drawn with half-block characters, for a terminal."""
    import qrcode  # only enrolling draws codes; signing flows need not import it

    code = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(data)
    code.make(fit=True)
    buffer = io.StringIO()
    code.print_ascii(out=buffer, invert=True)
    return buffer.getvalue()


def normalise_code(code: str) -> str | None:
    """The code without spaces, or None if it is not six digits."""
    cleaned = re.sub(r"\s+", "", code)
    return cleaned if _CODE.match(cleaned) else None


def counter_at(at: datetime) -> int:
    """The TOTP time-step counter at ``at``."""
    return int(at.timestamp()) // STEP_SECONDS


def code_at(secret: str, at: datetime) -> str:
    """The code an authenticator shows at ``at`` (for tests and demos)."""
    return str(pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).generate_otp(counter_at(at)))


def matching_counter(secret: str, code: str, at: datetime) -> int | None:
    """The newest time step within ±``VALID_WINDOW`` of ``at`` whose code is ``code``, or None."""
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    now = counter_at(at)
    for counter in range(now + VALID_WINDOW, now - VALID_WINDOW - 1, -1):
        if hmac.compare_digest(str(totp.generate_otp(counter)), code):
            return counter
    return None
