"""SM2 signatures (cutover/sm2.py), checked against the real OpenSSL 3 command line both ways."""

from __future__ import annotations

import base64
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from cutover import sm2
from cutover.errors import ConfigurationError

MESSAGE = "govcloud-cutover sign-off statement v1\nsystem: hrss\ncomment: 同意迁移".encode()
DISTID = f"distid:{sm2.USER_ID.decode()}"


def _openssl(*args: str | Path, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(["openssl", *map(str, args)], input=stdin, capture_output=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


@pytest.fixture
def openssl_key(tmp_path: Path) -> Path:
    """An SM2 private key made by OpenSSL, with its public key next to it (``.pub``)."""
    key = tmp_path / "openssl-sm2.pem"
    _openssl("genpkey", "-algorithm", "SM2", "-out", key)
    _openssl("pkey", "-in", key, "-pubout", "-out", f"{key}.pub")
    return key


def _openssl_sign(key: Path, message: bytes, *extra: str) -> str:
    signature = _openssl("pkeyutl", "-sign", "-inkey", key, "-rawin", "-digest", "sm3", *extra, stdin=message)
    return base64.b64encode(signature).decode()


def test_a_signature_made_by_openssl_with_the_default_user_id_verifies_in_ours(openssl_key: Path) -> None:
    public = sm2.load_public_key(Path(f"{openssl_key}.pub").read_bytes(), source="openssl-sm2.pem.pub")
    signature = _openssl_sign(openssl_key, MESSAGE, "-pkeyopt", DISTID)

    assert sm2.verify(public, MESSAGE, signature)
    assert not sm2.verify(public, MESSAGE + b" ", signature)


def test_the_documented_openssl_command_line_makes_signatures_that_verify(openssl_key: Path) -> None:
    public = sm2.load_public_key(Path(f"{openssl_key}.pub").read_bytes(), source="k.pub")
    command = shlex.split(sm2.OPENSSL_SIGN.format(key=openssl_key))
    result = subprocess.run(command, input=MESSAGE, capture_output=True, timeout=30, check=True)

    assert sm2.verify(public, MESSAGE, base64.b64encode(result.stdout).decode())


def test_ours_verifies_in_openssl_given_the_default_user_id(tmp_path: Path) -> None:
    key = sm2.generate_key()
    (tmp_path / "k.pub").write_text(sm2.public_key_pem(key))
    (tmp_path / "msg").write_bytes(MESSAGE)
    (tmp_path / "sig.der").write_bytes(base64.b64decode(sm2.sign(key, MESSAGE)))

    output = _openssl(
        "pkeyutl", "-verify", "-pubin", "-inkey", tmp_path / "k.pub", "-rawin", "-digest", "sm3",
        "-pkeyopt", DISTID, "-in", tmp_path / "msg", "-sigfile", tmp_path / "sig.der",
    )  # fmt: skip
    assert b"Signature Verified Successfully" in output


def test_an_openssl_signature_made_without_the_user_id_is_refused_which_is_why_the_detail_matters(
    openssl_key: Path,
) -> None:
    public = sm2.load_public_key(Path(f"{openssl_key}.pub").read_bytes(), source="k.pub")
    without_id = _openssl_sign(openssl_key, MESSAGE)  # OpenSSL 3 then uses an empty ID

    assert not sm2.verify(public, MESSAGE, without_id)
    assert sm2.verify(public, MESSAGE, _openssl_sign(openssl_key, MESSAGE, "-pkeyopt", DISTID))


def test_the_fingerprint_is_the_sm3_of_the_public_key_der_as_openssl_computes_it(openssl_key: Path) -> None:
    public = sm2.load_public_key(Path(f"{openssl_key}.pub").read_bytes(), source="k.pub")
    der = _openssl("pkey", "-pubin", "-in", f"{openssl_key}.pub", "-outform", "DER")
    expected = _openssl("dgst", "-sm3", "-r", stdin=der).split()[0].decode()

    assert sm2.fingerprint(public) == f"sm3:{expected}"


def test_an_sm2_certificate_in_pem_or_der_gives_its_public_key(openssl_key: Path, tmp_path: Path) -> None:
    certificate = tmp_path / "cert.pem"
    _openssl(
        "req", "-x509", "-new", "-key", openssl_key, "-sm3", "-subj", "/CN=王丽", "-utf8", "-days", "30",
        "-sigopt", DISTID, "-out", certificate,
    )  # fmt: skip
    der = _openssl("x509", "-in", certificate, "-outform", "DER")
    expected = sm2.load_public_key(Path(f"{openssl_key}.pub").read_bytes(), source="k.pub")

    assert sm2.load_public_key(certificate.read_bytes(), source=str(certificate)) == expected
    assert sm2.load_public_key(der, source="cert.der") == expected


@pytest.mark.parametrize(
    ("algorithm", "options", "found"),
    [
        ("EC", ("-pkeyopt", "ec_paramgen_curve:P-256"), "an EC key on curve secp256r1, not SM2"),
        ("RSA", ("-pkeyopt", "rsa_keygen_bits:2048"), "a key of type RSA, not SM2"),
    ],
)
def test_a_key_or_certificate_that_is_not_sm2_is_refused_naming_the_file(
    tmp_path: Path, algorithm: str, options: tuple[str, ...], found: str
) -> None:
    key, public, certificate = tmp_path / "other.pem", tmp_path / "other.pub", tmp_path / "other-cert.pem"
    _openssl("genpkey", "-algorithm", algorithm, *options, "-out", key)
    _openssl("pkey", "-in", key, "-pubout", "-out", public)
    _openssl("req", "-x509", "-new", "-key", key, "-subj", "/CN=x", "-days", "1", "-out", certificate)

    for path in (public, certificate):
        with pytest.raises(ConfigurationError, match="sign-off needs an SM2 key") as refused:
            sm2.load_public_key(path.read_bytes(), source=str(path))
        assert str(refused.value).startswith(f"{path}: {found}")


def test_a_private_key_or_garbage_given_as_a_public_key_is_refused_naming_the_file(openssl_key: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"approver\.pem is a private key: enroll the public key"):
        sm2.load_public_key(openssl_key.read_bytes(), source="approver.pem")
    with pytest.raises(ConfigurationError, match=r"^notes\.txt: neither an SM2 public key"):
        sm2.load_public_key("同意".encode(), source="notes.txt")


def test_a_written_key_is_mode_0600_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "wang.li.pem"
    key = sm2.generate_key()
    sm2.write_private_key(path, key, None)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in path.read_bytes()
    assert sm2.public_key_pem(sm2.load_private_key(path, None)) == sm2.public_key_pem(key)
    with pytest.raises(ConfigurationError, match="already exists; refusing to overwrite"):
        sm2.write_private_key(path, sm2.generate_key(), None)
    assert sm2.public_key_pem(sm2.load_private_key(path, None)) == sm2.public_key_pem(key)


def test_a_passphrase_encrypts_the_key_and_a_wrong_or_missing_one_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "wang.li.pem"
    key = sm2.generate_key()
    sm2.write_private_key(path, key, "长城 long passphrase")

    assert b"BEGIN ENCRYPTED PRIVATE KEY" in path.read_bytes()
    loaded = sm2.load_private_key(path, "长城 long passphrase")
    assert sm2.verify(sm2.public_key_pem(key), MESSAGE, sm2.sign(loaded, MESSAGE))
    with pytest.raises(ConfigurationError, match=r"wang\.li\.pem: cannot load the private key \(wrong passphrase\)"):
        sm2.load_private_key(path, "wrong")
    with pytest.raises(ConfigurationError, match=r"wang\.li\.pem: it is encrypted: give its passphrase"):
        sm2.load_private_key(path, None)
    with pytest.raises(ConfigurationError, match="passphrase is empty"):
        sm2.write_private_key(tmp_path / "other.pem", key, "")


def test_the_key_openssl_made_loads_and_signs_but_a_missing_or_non_sm2_file_does_not(
    openssl_key: Path, tmp_path: Path
) -> None:
    key = sm2.load_private_key(openssl_key, None)
    public = Path(f"{openssl_key}.pub").read_bytes()
    assert sm2.verify(sm2.load_public_key(public, source="k.pub"), MESSAGE, sm2.sign(key, MESSAGE))

    with pytest.raises(ConfigurationError, match=r"missing\.pem: no such key file"):
        sm2.load_private_key(tmp_path / "missing.pem", None)
    p256 = tmp_path / "p256.pem"
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", p256)
    with pytest.raises(ConfigurationError, match=r"p256\.pem: not an SM2 key"):
        sm2.load_private_key(p256, None)


@pytest.mark.parametrize(
    "garbage",
    ["", "not base64!", "AAAA", "MAYCAQECAQE=", "MAYCAQACAQE=", "A" * 5000, "MEQCIDFP" + "A" * 88, "中文签名"],
)
def test_a_garbled_signature_is_false_never_an_exception(garbage: str) -> None:
    key = sm2.generate_key()
    assert sm2.verify(sm2.public_key_pem(key), MESSAGE, garbage) is False


def test_a_signature_is_one_line_of_standard_base64_and_line_breaks_in_a_pasted_one_are_ignored() -> None:
    key = sm2.generate_key()
    signature = sm2.sign(key, MESSAGE)

    assert "\n" not in signature and base64.b64decode(signature, validate=True)[0] == 0x30
    assert sm2.verify(sm2.public_key_pem(key), MESSAGE, f" {signature[:40]}\n{signature[40:]}\n")
    assert not sm2.verify(sm2.public_key_pem(sm2.generate_key()), MESSAGE, signature)
