"""The paramiko layer: connect with a pinned host key, authenticate, run one argument list.

The host key is checked right after key exchange and before authentication, so a host with an
unknown or changed key never sees our credentials and never runs anything. Every wait has a
deadline: TCP connect, banner, handshake, authentication, channel open, and the command itself,
which runs under the remote ``timeout`` program (killed when it passes) with a client-side
backstop that closes the channel.
"""

from __future__ import annotations

import base64
import hashlib
import io
import select
import shlex
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from pydantic import SecretStr

from cutover.errors import AuthenticationFailed, HostKeyRefused, HostUnreachable

_TAIL_LINES = 40
_KILL_AFTER_S = 3
_TIMED_OUT = 124  # exit status of coreutils `timeout` when the deadline passed
LineSink = Callable[[str, str], None]  # (stream "stdout"|"stderr", line)


@dataclass(frozen=True)
class Timeouts:
    """Every wait of an SSH conversation, in seconds."""

    connect: float = 5.0
    banner: float = 10.0
    auth: float = 10.0
    keepalive: int = 15


@dataclass(frozen=True)
class HostTarget:
    """Where and how to reach one host (resolved from a spec host)."""

    name: str
    address: str
    port: int
    user: str
    host_key: str
    key_file: Path | None = None
    key_text: SecretStr | None = None
    known_hosts_file: Path | None = None

    @property
    def where(self) -> str:
        return f"host {self.name} ({self.user}@{self.address}:{self.port})"


@dataclass
class CommandOutcome:
    """What one command did: exit status, time taken, the last lines of its output."""

    exit_status: int
    duration_s: float
    timed_out: bool
    tail: list[str] = field(default_factory=list)


def fingerprint(key: paramiko.PKey) -> str:
    """The OpenSSH ``SHA256:...`` fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class HostConnection:
    """One authenticated SSH transport to one host, reused for many commands."""

    def __init__(self, target: HostTarget, transport: paramiko.Transport, timeouts: Timeouts) -> None:
        self.target = target
        self._transport = transport
        self._timeouts = timeouts

    @classmethod
    def open(cls, target: HostTarget, timeouts: Timeouts, agent_keys: bool = True) -> HostConnection:
        """Connect, verify the pinned host key, authenticate; or raise a HostError."""
        transport = _handshake(target, timeouts)
        try:
            _verify_host_key(target, transport.get_remote_server_key())
            _authenticate(target, transport, agent_keys)
        except BaseException:
            transport.close()
            raise
        transport.set_keepalive(timeouts.keepalive)
        return cls(target, transport, timeouts)

    @property
    def alive(self) -> bool:
        return self._transport.is_active()

    def close(self) -> None:
        self._transport.close()

    def run(
        self,
        argv: list[str],
        *,
        deadline_s: float,
        sudo: bool = False,
        stdin: bytes | None = None,
        on_line: LineSink | None = None,
    ) -> CommandOutcome:
        """Run ``argv`` (quoted with shlex) under a remote deadline; stream its lines to ``on_line``."""
        command = remote_command(argv, deadline_s=deadline_s, sudo=sudo)
        started = time.monotonic()
        channel = self._transport.open_session(timeout=self._timeouts.auth)
        try:
            channel.exec_command(command)
            if stdin is not None:
                channel.sendall(stdin)
            channel.shutdown_write()
            status, tail, killed = _pump(channel, started + deadline_s + _KILL_AFTER_S + 5, on_line)
        finally:
            channel.close()
        timed_out = killed or status in (_TIMED_OUT, 128 + 9)
        return CommandOutcome(status, time.monotonic() - started, timed_out, tail)


def remote_command(argv: list[str], *, deadline_s: float, sudo: bool) -> str:
    """The command line sent to the host: the remote deadline, optional sudo, then ``argv``."""
    wrapped = ["timeout", "-k", f"{_KILL_AFTER_S}s", f"{max(deadline_s, 0.1):.1f}s", *argv]
    if sudo:
        wrapped = ["sudo", "-n", "--", *wrapped]
    return shlex.join(wrapped)


def _handshake(target: HostTarget, timeouts: Timeouts) -> paramiko.Transport:
    try:
        sock = socket.create_connection((target.address, target.port), timeout=timeouts.connect)
    except OSError as exc:
        raise HostUnreachable(
            f"{target.where} did not accept a connection within {timeouts.connect:g} s ({exc.strerror or exc}); "
            "check that the host is up, sshd listens on that port, and no firewall is in the way"
        ) from exc
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeouts.banner
    transport.handshake_timeout = timeouts.banner
    transport.auth_timeout = timeouts.auth
    try:
        transport.start_client(timeout=timeouts.banner)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        transport.close()
        raise HostUnreachable(f"{target.where} did not complete the SSH handshake: {exc}") from exc
    return transport


def _verify_host_key(target: HostTarget, key: paramiko.PKey) -> None:
    presented = f"{key.get_name()} {fingerprint(key)}"
    expected = _expected_key(target)
    if expected is None:
        raise HostKeyRefused(
            f"{target.where} is not in the known_hosts file {target.known_hosts_file}; it presented {presented}. "
            "Nothing was run. Verify the key out of band, then pin it in the spec (host_key: 'SHA256:...')."
        )
    if not _matches(expected, key):
        raise HostKeyRefused(
            f"{target.where} presented {presented}, which does not match the pinned key {expected}. Nothing was run. "
            "If the host was rebuilt, verify its new key out of band and update the spec's host_key; otherwise "
            "treat this as a possible interception and stop."
        )


def _expected_key(target: HostTarget) -> str | None:
    if target.host_key != "known_hosts":
        return target.host_key
    if target.known_hosts_file is None or not target.known_hosts_file.exists():
        return None
    keys = paramiko.HostKeys(str(target.known_hosts_file))
    lookup = target.address if target.port == 22 else f"[{target.address}]:{target.port}"
    entry = keys.lookup(lookup)
    if not entry:
        return None
    return " ".join(f"{name} {key.get_base64()}" for name, key in entry.items())


def _matches(expected: str, key: paramiko.PKey) -> bool:
    if expected.startswith("SHA256:"):
        return expected == fingerprint(key)
    words = expected.split()
    pairs = zip(words[::2], words[1::2], strict=False)
    return any(kind == key.get_name() and blob == key.get_base64() for kind, blob in pairs)


def _authenticate(target: HostTarget, transport: paramiko.Transport, agent_keys: bool) -> None:
    keys = _client_keys(target, agent_keys)
    if not keys:
        raise AuthenticationFailed(
            f"no client key for {target.where}: set key_file or key_secret on the host, CUTOVER_SSH_KEY_FILE, or load a key into ssh-agent"
        )
    for key in keys:
        try:
            transport.auth_publickey(target.user, key)
        except paramiko.AuthenticationException:
            continue
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise HostUnreachable(f"{target.where} dropped the connection during authentication: {exc}") from exc
        if transport.is_authenticated():
            return
    raise AuthenticationFailed(
        f"{target.where} refused our key(s) for user {target.user}; nothing was run. Add the client's public key to "
        f"~{target.user}/.ssh/authorized_keys on the host, or fix the key configured for it"
    )


def _client_keys(target: HostTarget, agent_keys: bool) -> list[paramiko.PKey]:
    keys: list[paramiko.PKey] = []
    if target.key_text is not None:
        keys.append(_key_from_text(target))
    if target.key_file is not None:
        try:
            keys.append(paramiko.PKey.from_path(target.key_file))
        except (OSError, paramiko.SSHException) as exc:
            raise AuthenticationFailed(
                f"cannot read the client key {target.key_file} for {target.where}: {exc}"
            ) from exc
    if agent_keys and not keys:
        keys.extend(paramiko.Agent().get_keys())
    return keys


def _key_from_text(target: HostTarget) -> paramiko.PKey:
    assert target.key_text is not None
    text = target.key_text.get_secret_value()
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except paramiko.SSHException:
            continue
    raise AuthenticationFailed(
        f"the client key secret for {target.where} is not an OpenSSH private key (ed25519, ecdsa or rsa)"
    )


def _pump(channel: paramiko.Channel, hard_deadline: float, on_line: LineSink | None) -> tuple[int, list[str], bool]:
    """Read stdout and stderr line by line until the command exits or the backstop passes."""
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    buffers = {"stdout": b"", "stderr": b""}

    def emit(stream: str, data: bytes, final: bool = False) -> None:
        buffers[stream] += data
        *lines, buffers[stream] = buffers[stream].split(b"\n")
        if final and buffers[stream]:
            lines, buffers[stream] = [*lines, buffers[stream]], b""
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            tail.append(line)
            if on_line is not None:
                on_line(stream, line)

    while True:
        _drain(channel, emit)
        if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
            break
        if time.monotonic() > hard_deadline:
            return -1, list(tail), True
        select.select([channel], [], [], 0.5)
    emit("stdout", b"", final=True)
    emit("stderr", b"", final=True)
    return channel.recv_exit_status(), list(tail), False


def _drain(channel: paramiko.Channel, emit: Callable[[str, bytes], None]) -> None:
    while channel.recv_ready():
        emit("stdout", channel.recv(65536))
    while channel.recv_stderr_ready():
        emit("stderr", channel.recv_stderr(65536))
