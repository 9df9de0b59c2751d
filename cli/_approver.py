"""CLI commands for approvers: ``cutover approver keygen | enroll | revoke | list``.

Registered by :func:`cli.register_commands` as ``app.add_typer(approver_app, name="approver")``.

``keygen`` runs on the approver's own machine and needs no ledger: the private key is written only
there (mode 0600, optionally encrypted with a passphrase) next to its public key ``FILE.pub``.
``enroll``, ``revoke`` and ``list`` are the administrator's: they migrate the ledger first and
record the administrator (``--actor``, default the OS user) in the audit trail. ``enroll --totp``
keeps the TOTP light mode for pilots (forgeable by whoever holds the worker's key).
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli._console import ExitCode, console, fail
from cutover import sm2
from cutover.approvers import enroll, enroll_key, revoke
from cutover.ledger import Ledger, Party
from cutover.runtime import open_ledger
from cutover.settings import get_settings

__all__ = ["approver_app"]

approver_app = typer.Typer(
    help="The approvers who sign reports for their party: SM2 keys (keygen on the approver's machine, "
    "enroll and revoke by an administrator), or TOTP codes in the light mode for pilots.",
    no_args_is_help=True,
    add_completion=False,
)

ApproverId = Annotated[str, typer.Argument(help="The approver's id as listed in specs, e.g. wang.li.")]
Actor = Annotated[
    str | None,
    typer.Option("--actor", help="Who does this, for the audit trail (default: your OS user name)."),
]


@approver_app.command("keygen")
def keygen_command(
    out: Annotated[Path, typer.Option("--out", help="Where to write the private key; FILE.pub gets the public key.")],
    passphrase_file: Annotated[
        Path | None,
        typer.Option("--passphrase-file", help="Encrypt the private key with the passphrase in this file."),
    ] = None,
    ask_passphrase: Annotated[
        bool, typer.Option("--ask-passphrase", help="Encrypt the private key with a passphrase typed now.")
    ] = False,
) -> None:
    """Make your SM2 key pair on your own machine; send only FILE.pub to the administrator."""
    public_path = out.with_name(out.name + ".pub")
    if not out.parent.is_dir():
        fail(
            f"{out.parent} is not a folder: create it (mkdir -p {out.parent}) or choose another --out", ExitCode.INVALID
        )
    for path in (out, public_path):
        if path.exists():
            fail(f"{path} already exists; refusing to overwrite a key: choose another --out", ExitCode.REFUSED)
    key = sm2.generate_key()
    sm2.write_private_key(out, key, _passphrase(passphrase_file, ask_passphrase))
    public_pem = sm2.public_key_pem(key)
    with public_path.open("x", encoding="ascii") as handle:
        handle.write(public_pem)
    console.print(f"wrote the private key {out} (mode 0600: it never leaves this machine)")
    console.print(f"wrote the public key  {public_path}")
    console.print(f"fingerprint           {sm2.fingerprint(public_pem)}")
    console.print(
        f"next: send {public_path.name} to the administrator, who runs "
        f"`cutover approver enroll YOUR_ID --name NAME --party department|cloud_provider --key {public_path.name}`; "
        "compare the fingerprint they read back with the one above"
    )
    console.print(f"to sign a statement with OpenSSL 3: {sm2.OPENSSL_SIGN.format(key=out)} | base64 -w0")


@approver_app.command("enroll")
def enroll_command(
    approver_id: ApproverId,
    name: Annotated[str, typer.Option("--name", help="The person's full name, e.g. 王丽.")],
    party: Annotated[
        Party | None, typer.Option("--party", help="The party the approver signs for.", case_sensitive=False)
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="Their public key (FILE.pub from keygen) or X.509 certificate (PEM or DER, SM2)."),
    ] = None,
    totp: Annotated[
        bool,
        typer.Option("--totp", help="Pilot light mode: a TOTP secret instead of a key (forgeable by the worker)."),
    ] = False,
    actor: Actor = None,
) -> None:
    """Enroll (or replace) an approver's SM2 public key; the replaced key is kept for old signatures."""
    if totp:
        if key is not None:
            fail("--totp and --key exclude each other: enroll either a key or a TOTP secret", ExitCode.USAGE)
        _enroll_totp(approver_id, name)
        return
    if party is None or key is None:
        fail(
            "enrolling a key needs --party (department or cloud_provider) and --key FILE.pub "
            "(or --totp for the pilot light mode)",
            ExitCode.USAGE,
        )
    key_data = _read_key_file(key)
    ledger = open_ledger()
    try:
        enrolled = enroll_key(
            ledger, approver_id, name, party, key_data, actor=actor or getpass.getuser(), source=str(key)
        )
    finally:
        ledger.dispose()
    console.print(f"{enrolled}.")
    if enrolled.replaced:
        console.print(f"the previous key {enrolled.replaced} is revoked (kept, so old signatures still verify)")
    console.print("read the fingerprint back to the approver: it must match the one keygen printed")


@approver_app.command("revoke")
def revoke_command(approver_id: ApproverId, actor: Actor = None) -> None:
    """Revoke the approver's active key: they cannot sign until a new key is enrolled."""
    ledger = open_ledger()
    try:
        fingerprint = revoke(ledger, approver_id, actor=actor or getpass.getuser())
    finally:
        ledger.dispose()
    console.print(f"revoked the key {fingerprint} of {approver_id}; signatures made with it still verify")


@approver_app.command("list")
def list_command(
    approver_id: Annotated[str | None, typer.Argument(help="Only this approver (default: all).")] = None,
) -> None:
    """Every approver and their keys: party, fingerprint, who enrolled them and when, revoked or not."""
    ledger = open_ledger()
    try:
        table = _roster(ledger, approver_id)
    finally:
        ledger.dispose()
    console.print(table)


def _roster(ledger: Ledger, only: str | None) -> Table:
    table = Table("id", "name", "party", "proof / fingerprint", "enrolled", "revoked", title="approvers")
    table.columns[3].no_wrap = True  # a fingerprint is copied and compared whole
    for approver in ledger.list_approvers():
        if only is not None and approver.id != only:
            continue
        party = approver.party.value if approver.party else "—"
        keys = ledger.approver_keys(approver.id)
        if approver.totp_secret_encrypted is not None:
            table.add_row(approver.id, approver.name, party, "totp (light mode)", _at(approver.enrolled_at), "—")
        for key in keys:
            revoked = f"{_at(key.revoked_at)} by {key.revoked_by}" if key.revoked_at else "—"
            enrolled = f"{_at(key.enrolled_at)} by {key.enrolled_by}"
            table.add_row(approver.id, approver.name, key.party.value, key.fingerprint, enrolled, revoked)
    return table


def _at(value: object) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value is not None else "—"


def _enroll_totp(approver_id: str, name: str) -> None:
    settings = get_settings()
    ledger = open_ledger(settings)
    try:
        enrollment = enroll(ledger, approver_id, name, settings=settings)
    finally:
        ledger.dispose()
    if enrollment.key_file_created:
        console.print(
            f"[yellow]note:[/] generated the TOTP encryption key {enrollment.key_file_created} (mode 0600); "
            "back it up, or set CUTOVER_TOTP_KEY to manage the key yourself"
        )
    console.print(f"{enrollment}. Scan this QR code with an authenticator app (it is shown only now):")
    typer.echo(enrollment.qr)
    typer.echo(f"or enter this URI: {enrollment.uri}")
    console.print("Re-enrolling replaces the secret: codes from the old entry stop working.")
    console.print(
        "[yellow]TOTP is the light mode for pilots:[/] whoever holds the worker's TOTP key and the ledger can "
        "compute this code; use SM2 keys (CUTOVER_SIGNOFF_PROOF=sm2) for real sign-offs"
    )


def _passphrase(passphrase_file: Path | None, ask: bool) -> str | None:
    if passphrase_file is not None and ask:
        fail("--passphrase-file and --ask-passphrase exclude each other", ExitCode.USAGE)
    if ask:
        return str(typer.prompt("Passphrase for the private key", hide_input=True, confirmation_prompt=True))
    if passphrase_file is None:
        return None
    try:
        passphrase = passphrase_file.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        fail(f"{passphrase_file}: cannot read the passphrase file ({exc.strerror})", ExitCode.CONFIG)
    if not passphrase:
        fail(f"{passphrase_file} is empty; put the passphrase in it, or leave --passphrase-file out", ExitCode.CONFIG)
    return passphrase


def _read_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"{path}: cannot read the key ({exc.strerror}); give the .pub file keygen wrote", ExitCode.CONFIG)
