"""Real OpenSSH hosts on loopback: the login user, keys, ``sshd_config`` and the sshd process."""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from demo._types import OPS_USER
from demo.errors import EstateError

SSHD = "/usr/sbin/sshd"
OPS_HOME = Path("/var/lib/cutover-ops")


@dataclass(frozen=True)
class OpsUser:
    """The uid and gid of the estate's login user."""

    name: str
    uid: int
    gid: int


def ensure_ops_user() -> OpsUser:
    """Create the ``cutover-ops`` system user if missing and make sure sshd will accept it.

    Idempotent. The password field is set to ``*`` (no password) rather than ``!`` because
    sshd without PAM refuses every login to an account whose password is locked with ``!``.
    """
    if not _user_exists(OPS_USER):
        _run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--create-home",
                "--home-dir",
                str(OPS_HOME),
                "--shell",
                "/bin/sh",
                "--password",
                "*",
                OPS_USER,
            ],
            ok_if=lambda: _user_exists(OPS_USER),
        )
    if _password_locked(OPS_USER):
        _run(["usermod", "--password", "*", OPS_USER])
    entry = pwd.getpwnam(OPS_USER)
    _ensure_home(Path(entry.pw_dir), entry.pw_uid, entry.pw_gid)
    return OpsUser(OPS_USER, entry.pw_uid, entry.pw_gid)


def _user_exists(name: str) -> bool:
    """Return True when the system knows user ``name``."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _password_locked(name: str) -> bool:
    """Return True when ``/etc/shadow`` marks ``name``'s password as locked (``!...``)."""
    for line in Path("/etc/shadow").read_text().splitlines():
        user, _, rest = line.partition(":")
        if user == name:
            return rest.startswith("!")
    return False


def _ensure_home(home: Path, uid: int, gid: int) -> None:
    """Create the user's home so sshd does not complain that it cannot chdir there."""
    if not home.is_dir():
        home.mkdir(parents=True, exist_ok=True)
        os.chown(home, uid, gid)


def _run(argv: list[str], ok_if: Callable[[], bool] | None = None) -> None:
    """Run a setup command; raise :class:`EstateError` with its output when it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0 and not (ok_if is not None and ok_if()):
        raise EstateError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")


def generate_keys(keys: list[tuple[Path, str]]) -> None:
    """Generate each missing ed25519 key pair ``(path, comment)`` with ssh-keygen, in parallel."""
    running = []
    for path, comment in keys:
        if path.exists() and path.with_suffix(".pub").exists():
            continue
        path.unlink(missing_ok=True)
        argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)]
        running.append((path, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    for path, proc in running:
        output, _ = proc.communicate()
        if proc.returncode != 0:
            raise EstateError(f"ssh-keygen could not write {path}: {output.strip()}")


def public_key_line(private_key: Path) -> str:
    """Return the ``ssh-ed25519 AAAA...`` part of the key's ``.pub`` file (comment dropped)."""
    kind, blob, *_ = Path(f"{private_key}.pub").read_text().split()
    return f"{kind} {blob}"


def fingerprint(public_key: str) -> str:
    """Return ``SHA256:<base64 without padding>`` of an OpenSSH public key line."""
    blob = base64.b64decode(public_key.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode()
    return f"SHA256:{digest.rstrip('=')}"


@dataclass(frozen=True)
class SshdFiles:
    """Where one host's sshd keeps its config, host key, pid file and log."""

    directory: Path

    @property
    def config(self) -> Path:
        """The generated ``sshd_config``."""
        return self.directory / "sshd_config"

    @property
    def host_key(self) -> Path:
        """The private ed25519 host key."""
        return self.directory / "ssh_host_ed25519_key"

    @property
    def pidfile(self) -> Path:
        """The sshd pid file."""
        return self.directory / "sshd.pid"

    @property
    def log(self) -> Path:
        """Where sshd's stderr (``-e``) goes."""
        return self.directory / "sshd.log"


def sshd_config(files: SshdFiles, *, address: str, port: int, authorized_keys: Path, bin_dir: Path) -> str:
    """Return the text of an ``sshd_config`` for one estate host."""
    return "\n".join(
        [
            f"ListenAddress {address}:{port}",
            f"HostKey {files.host_key}",
            f"PidFile {files.pidfile}",
            f"AuthorizedKeysFile {authorized_keys}",
            "StrictModes no",
            "UsePAM no",
            "PubkeyAuthentication yes",
            "AuthenticationMethods publickey",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            f"AllowUsers {OPS_USER}",
            "MaxStartups 100:30:200",
            "MaxSessions 50",
            "LogLevel ERROR",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            f"SetEnv PATH={bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "Subsystem sftp internal-sftp",
            "",
        ]
    )


def start_sshd(files: SshdFiles) -> subprocess.Popen[bytes]:
    """Start ``sshd -D -e -f <config>`` as a child in its own session, logging to a file."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    with files.log.open("ab") as log:
        return subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(files.config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
