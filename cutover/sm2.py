"""SM2 signatures (GB/T 32918 with SM3) for the approvers' sign-off, verified with public keys only.

Public surface::

    USER_ID                               the standard's default signer ID, 1234567812345678
    OPENSSL_SIGN                          the OpenSSL 3 command line that signs a statement
    generate_key() -> PrivateKey          write_private_key(path, key, passphrase)
    load_private_key(path, passphrase) -> PrivateKey
    public_key_pem(key) -> str            SPKI PEM of a private or public key
    load_public_key(data, *, source) -> str   a PEM public key or an X.509 certificate (PEM/DER)
                                              whose key is SM2, as normalised SPKI PEM
    fingerprint(public_pem) -> str        "sm3:<hex>" of the key's SPKI DER
    sign(key, message) -> str             base64 (standard, one line) of the DER signature
    verify(public_pem, message, signature_b64) -> bool

The library is ``tongsuopy`` (the pyca/cryptography API over Tongsuo, the OpenSSL fork of the
Chinese national algorithms); it signs with SM3 and the standard's default user ID
``1234567812345678`` (the ``Z_A`` value hashed in front of the message). OpenSSL 3 interoperates
only when given that ID explicitly (``-pkeyopt distid:1234567812345678``): without it OpenSSL uses
an empty ID and neither side accepts the other's signatures. Certificates are parsed with
``asn1crypto`` (tongsuopy has no X.509 module) only to take out the public key; whether to trust
a certificate is the enrolling administrator's decision.

Bad files and keys raise :class:`~cutover.errors.ConfigurationError` naming the file and what to
do; :func:`verify` answers False for any signature that does not verify, however garbled.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any, TypeAlias

from asn1crypto import algos, keys, pem, x509
from tongsuopy.crypto import hashes, serialization
from tongsuopy.crypto.asymciphers import ec
from tongsuopy.crypto.exceptions import InternalError, InvalidSignature, UnsupportedAlgorithm

from cutover.errors import ConfigurationError

__all__ = [
    "OPENSSL_SIGN",
    "USER_ID",
    "PrivateKey",
    "fingerprint",
    "generate_key",
    "load_private_key",
    "load_public_key",
    "public_key_pem",
    "sign",
    "verify",
    "write_private_key",
]

#: An SM2 private key (tongsuopy's ``EllipticCurvePrivateKey`` on curve SM2).
PrivateKey: TypeAlias = Any

USER_ID = b"1234567812345678"
OPENSSL_SIGN = "openssl pkeyutl -sign -inkey {key} -rawin -digest sm3 -pkeyopt distid:1234567812345678"

SM2_CURVE_OID = "1.2.156.10197.1.301"
_MAX_SIGNATURE_B64 = 200  # a DER SM2 signature is at most 72 bytes (96 in base64)
_ORDER_BITS = 256


def generate_key() -> PrivateKey:
    """A new SM2 private key."""
    return ec.generate_private_key(ec.SM2())


def write_private_key(path: Path, key: PrivateKey, passphrase: str | None) -> None:
    """Write ``key`` as PKCS#8 PEM, mode 0600 from creation; never overwrite an existing file.

    With a passphrase the key is encrypted (the best the library offers); an empty passphrase is
    refused (leave it out for an unencrypted key).
    """
    if passphrase is not None and not passphrase:
        raise ConfigurationError(f"{path}: the passphrase is empty; give a passphrase, or none for an unencrypted key")
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
        if passphrase
        else serialization.NoEncryption()
    )
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigurationError(
            f"{path} already exists; refusing to overwrite a key: choose another --out, or move the old key away first"
        ) from exc
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot create the key file ({exc.strerror}); check the directory") from exc
    with os.fdopen(descriptor, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(data)


def load_private_key(path: Path, passphrase: str | None) -> PrivateKey:
    """The SM2 private key in PEM file ``path``; ConfigurationError saying what is wrong with it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigurationError(
            f"{path}: no such key file; give the file `cutover approver keygen --out FILE` wrote"
        ) from exc
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read the key file ({exc.strerror})") from exc
    secret = passphrase.encode("utf-8") if passphrase else None
    try:
        key = serialization.load_pem_private_key(data, secret)
    except TypeError as exc:
        hint = "it is encrypted: give its passphrase" if secret is None else "it is not encrypted: give no passphrase"
        raise ConfigurationError(f"{path}: {hint}") from exc
    except UnsupportedAlgorithm as exc:
        raise ConfigurationError(f"{path}: not an SM2 key ({exc}); use a key from `cutover approver keygen`") from exc
    except ValueError as exc:
        reason = "wrong passphrase" if secret is not None and b"ENCRYPTED" in data else "not a PEM private key"
        raise ConfigurationError(f"{path}: cannot load the private key ({reason})") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "SM2":
        raise ConfigurationError(f"{path}: not an SM2 private key; use a key from `cutover approver keygen`")
    return key


def public_key_pem(key: Any) -> str:
    """The SubjectPublicKeyInfo PEM of ``key`` (a private or a public key)."""
    public = key.public_key() if hasattr(key, "public_key") else key
    data: bytes = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return data.decode("ascii")


def load_public_key(data: bytes, *, source: str) -> str:
    """The SM2 public key in ``data`` as normalised SPKI PEM.

    ``data`` is a PEM public key, or an X.509 certificate (PEM or DER) whose subject key is SM2.
    Anything else (a private key, an RSA or P-256 key, garbage) is a ConfigurationError naming
    ``source`` (the file it came from).
    """
    info = _public_key_info(data, source)
    _require_sm2(info, source)
    try:
        public = serialization.load_der_public_key(info.dump())
    except (ValueError, UnsupportedAlgorithm, InternalError) as exc:
        raise ConfigurationError(f"{source}: the SM2 public key in it does not load ({exc})") from exc
    return public_key_pem(public)


def fingerprint(public_pem: str) -> str:
    """``"sm3:"`` and the hex SM3 digest of the key's SubjectPublicKeyInfo DER."""
    public = _public(public_pem)
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SM3())
    digest.update(der)
    return f"sm3:{digest.finalize().hex()}"


def sign(key: PrivateKey, message: bytes) -> str:
    """The SM2 signature (SM3, default user ID) of ``message``: base64 of its DER, one line."""
    der: bytes = key.sign(message, ec.ECDSA(hashes.SM3()))
    return base64.b64encode(der).decode("ascii")


def verify(public_pem: str, message: bytes, signature_b64: str) -> bool:
    """True if ``signature_b64`` is the key's SM2 signature of ``message``; False for anything else.

    Whitespace in the base64 (line breaks of ``base64`` without ``-w0``) is ignored.
    """
    public = _public(public_pem)
    der = _signature_der(signature_b64)
    if der is None:
        return False
    try:
        public.verify(der, message, ec.ECDSA(hashes.SM3()))
    except (InvalidSignature, InternalError, ValueError):
        return False
    return True


def _public(public_pem: str) -> Any:
    try:
        return serialization.load_pem_public_key(public_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm) as exc:
        raise ConfigurationError(f"not an SM2 public key in PEM form ({exc}); enroll the key again") from exc


def _signature_der(signature_b64: str) -> bytes | None:
    """The DER bytes of a well-formed SM2 signature, or None (checked before Tongsuo sees them)."""
    compact = "".join(signature_b64.split())
    if not compact or len(compact) > _MAX_SIGNATURE_B64:
        return None
    try:
        der = base64.b64decode(compact, validate=True)
        parsed = algos.DSASignature.load(der, strict=True)
        r, s = parsed["r"].native, parsed["s"].native
    except (binascii.Error, ValueError, TypeError):
        return None
    in_range = all(isinstance(n, int) and 0 < n < 1 << _ORDER_BITS for n in (r, s))
    return der if in_range and parsed.dump(force=True) == der else None


def _public_key_info(data: bytes, source: str) -> keys.PublicKeyInfo:
    """The SubjectPublicKeyInfo in a PEM public key, or a PEM or DER certificate."""
    der, kind = data, "DER"
    if pem.detect(data):
        try:
            kind, _headers, der = pem.unarmor(data)
        except ValueError as exc:
            raise ConfigurationError(f"{source}: broken PEM ({exc})") from exc
    if "PRIVATE KEY" in kind:
        raise ConfigurationError(
            f"{source} is a private key: enroll the public key (the .pub file keygen wrote); "
            "the private key never leaves the approver's machine"
        )
    try:
        if kind == "PUBLIC KEY":
            info = keys.PublicKeyInfo.load(der, strict=True)
            info.native  # noqa: B018  (parse it all now, so a broken key fails here)
            return info
        if kind in ("CERTIFICATE", "DER"):
            certificate = x509.Certificate.load(der, strict=True)
            spki: keys.PublicKeyInfo = certificate["tbs_certificate"]["subject_public_key_info"]
            spki["algorithm"].native  # noqa: B018
            return spki
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigurationError(
            f"{source}: neither an SM2 public key (PEM) nor an X.509 certificate (PEM or DER) ({exc})"
        ) from exc
    raise ConfigurationError(f"{source}: a PEM {kind!r} block; give a PUBLIC KEY or a CERTIFICATE")


def _require_sm2(info: keys.PublicKeyInfo, source: str) -> None:
    algorithm = info["algorithm"]["algorithm"].native
    parameters = info["algorithm"]["parameters"]
    curve = parameters.chosen.dotted if algorithm == "ec" and parameters.name == "named" else None
    if curve != SM2_CURVE_OID:
        found = (
            f"an EC key on curve {parameters.chosen.native}"
            if algorithm == "ec"
            else f"a key of type {str(algorithm).upper()}"
        )
        raise ConfigurationError(
            f"{source}: {found}, not SM2 (curve {SM2_CURVE_OID}); sign-off needs an SM2 key: make one "
            "with `cutover approver keygen`, or bring a certificate whose key is SM2"
        )
