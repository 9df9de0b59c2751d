"""The paramiko layer: connect with a pinned host key, authenticate, run one argument list.

The host key is checked right after key exchange and before authentication, so a host with an
unknown or changed key never sees our credentials and never runs anything. Every wait has a
deadline: TCP connect, banner, handshake, authentication, channel open, and the command itself:
when it passes, the command's whole process group on the host is sent TERM, then KILL.
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
_KILL_AFTER_S = 2
_PID_MARKER = "__cutover_pid="
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
        """Run ``argv`` (quoted with shlex); stream its lines to ``on_line``; kill it at the deadline."""
        started = time.monotonic()
        channel = self._transport.open_session(timeout=self._timeouts.auth)
        pump = _Pump(on_line)
        try:
            channel.exec_command(remote_command(argv, sudo=sudo))
            if stdin is not None:
                channel.sendall(stdin)
            channel.shutdown_write()
            status = pump.until_exit(channel, started + deadline_s)
        finally:
            channel.close()
        if status is None:
            self._kill(pump.pid, sudo)
        return CommandOutcome(-1 if status is None else status, time.monotonic() - started, status is None, pump.tail())

    def _kill(self, pid: int | None, sudo: bool) -> None:
        """End the command's whole process group on the host: TERM, then KILL if it lingers."""
        if pid is None:
            return
        self._quiet(["pkill", "-TERM", "-g", str(pid)], sudo)
        deadline = time.monotonic() + _KILL_AFTER_S
        while time.monotonic() < deadline:
            if self._quiet(["pgrep", "-g", str(pid)], sudo) != 0:
                return
            time.sleep(0.2)
        self._quiet(["pkill", "-KILL", "-g", str(pid)], sudo)

    def _quiet(self, argv: list[str], sudo: bool) -> int:
        channel = self._transport.open_session(timeout=self._timeouts.auth)
        try:
            channel.exec_command(shlex.join(["sudo", "-n", *argv] if sudo else argv))
            return channel.recv_exit_status()
        finally:
            channel.close()


def remote_command(argv: list[str], *, sudo: bool) -> str:
    """The command line sent to the host's shell.

    The shell prints its pid (sshd makes it a process-group leader), then execs the
    command, so there is no extra process and the deadline can kill the whole group.
    """
    command = ["sudo", "-n", "--", *argv] if sudo else argv
    return f"echo {_PID_MARKER}$$; exec {shlex.join(command)}"


class _Pump:
    """Reads a command's stdout and stderr line by line; the first stdout line carries its pid."""

    def __init__(self, on_line: LineSink | None) -> None:
        self.pid: int | None = None
        self._on_line = on_line
        self._tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._buffers = {"stdout": b"", "stderr": b""}

    def tail(self) -> list[str]:
        return list(self._tail)

    def until_exit(self, channel: paramiko.Channel, deadline: float) -> int | None:
        """The exit status, or None when the deadline passed first."""
        while True:
            self._drain(channel)
            if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            select.select([channel], [], [], min(remaining, 0.5))
        self._emit("stdout", b"", final=True)
        self._emit("stderr", b"", final=True)
        return channel.recv_exit_status()

    def _drain(self, channel: paramiko.Channel) -> None:
        while channel.recv_ready():
            self._emit("stdout", channel.recv(65536))
        while channel.recv_stderr_ready():
            self._emit("stderr", channel.recv_stderr(65536))

    def _emit(self, stream: str, data: bytes, final: bool = False) -> None:
        buffered = self._buffers[stream] + data
        *lines, rest = buffered.split(b"\n")
        if final and rest:
            lines, rest = [*lines, rest], b""
        self._buffers[stream] = rest
        for raw in lines:
            self._line(stream, raw.decode("utf-8", "replace").rstrip("\r"))

    def _line(self, stream: str, line: str) -> None:
        if stream == "stdout" and self.pid is None and line.startswith(_PID_MARKER):
            self.pid = int(line.removeprefix(_PID_MARKER))
            return
        self._tail.append(line)
        if self._on_line is not None:
            self._on_line(stream, line)


def _handshake(target: HostTarget, timeouts: Timeouts) -> paramiko.Transport:
    try:
        sock = socket.create_connection((target.address, target.port), timeout=timeouts.connect)
    except OSError as exc:
        raise HostUnreachable(
            f"{target.where} did not accept a connection within {timeouts.connect:g} s ({exc.strerror or exc}); "
            "check that the host is up, sshd listens on that port, and no firewall is in the way"
        ) from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small packets go out now, not after a delayed ACK
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeouts.banner
    transport.handshake_timeout = timeouts.banner
    transport.auth_timeout = timeouts.auth
    try:
        transport.start_client(timeout=timeouts.banner)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        transport.close()
        raise HostUnreachable(f"{target.where} did not complete the SSH handshake: {exc}") from exc
    if not transport.is_active() or not transport.initial_kex_done:  # start_client returns silently at its timeout
        transport.close()
        raise HostUnreachable(
            f"{target.where} did not complete the SSH handshake within {timeouts.banner:g} s; "
            "check that an SSH server (not another service) listens on that port"
        )
    return transport


def _verify_host_key(target: HostTarget, key: paramiko.PKey) -> None:
    presented = f"{key.get_name()} {fingerprint(key)}"
    expected = _expected_key(target)
    facts = {"host": target.name, "presented": presented, "pinned": _pinned_fingerprints(expected)}
    if expected is None:
        raise HostKeyRefused(
            f"{target.where} is not in the known_hosts file {target.known_hosts_file}; it presented {presented}. "
            "Nothing was run. Verify the key out of band, then pin it in the spec (host_key: 'SHA256:...').",
            detail=facts,
        )
    if not _matches(expected, key):
        raise HostKeyRefused(
            f"{target.where} presented {presented}, which does not match the pinned key {expected}. Nothing was run. "
            "If the host was rebuilt, verify its new key out of band and update the spec's host_key; otherwise "
            "treat this as a possible interception and stop.",
            detail=facts,
        )


def _pinned_fingerprints(expected: str | None) -> list[str]:
    """The ``SHA256:`` fingerprints of what is pinned (a fingerprint, or public key lines)."""
    if expected is None:
        return []
    if expected.startswith("SHA256:"):
        return [expected]
    words = expected.split()
    pairs = zip(words[::2], words[1::2], strict=False)
    prints = []
    for kind, blob in pairs:
        try:
            digest = hashlib.sha256(base64.b64decode(blob, validate=True)).digest()
        except ValueError:
            continue
        prints.append(f"{kind} SHA256:" + base64.b64encode(digest).decode().rstrip("="))
    return prints


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
