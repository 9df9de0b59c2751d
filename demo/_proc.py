"""Process and socket helpers for the demo estate: wait for a port, find and end process trees.

Everything here reads Linux ``/proc`` directly, so no psutil is needed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterable
from pathlib import Path

from demo.errors import EstateError


def wait_for_tcp(
    address: str,
    port: int,
    *,
    timeout: float,
    what: str,
    log: Path,
    pid: int | None = None,
    banner: bytes = b"",
) -> None:
    """Block until ``address:port`` accepts TCP (and greets with ``banner``), or raise EstateError.

    With ``pid`` the wait ends early when that process exits; the banner check makes sure it is
    our server that answers, not something else already on the port.
    """
    deadline = time.monotonic() + timeout
    while True:
        if pid is not None and not is_alive(pid):
            raise EstateError(f"{what} exited before listening on {address}:{port}; see {log}")
        if tcp_open(address, port, banner=banner):
            return
        if time.monotonic() > deadline:
            raise EstateError(f"{what} did not listen on {address}:{port} within {timeout:g} s; see {log}")
        time.sleep(0.01)


def tcp_open(address: str, port: int, *, banner: bytes = b"") -> bool:
    """Return True when something accepts TCP connections on ``address:port`` (and greets with ``banner``)."""
    try:
        with socket.create_connection((address, port), timeout=0.5) as sock:
            return not banner or sock.recv(len(banner)) == banner
    except OSError:
        return False


def port_is_free(address: str, port: int) -> bool:
    """Return True when ``address:port`` can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def free_port(addresses: Iterable[str], start: int, *, tries: int = 200) -> int:
    """Return the first port from ``start`` upwards that is free on every one of ``addresses``."""
    wanted = list(addresses)
    for port in range(start, start + tries):
        if all(port_is_free(address, port) for address in wanted):
            return port
    raise EstateError(f"no port in {start}..{start + tries - 1} is free on {', '.join(wanted)}")


def _stat_fields(pid: int) -> list[str] | None:
    """Return the fields of ``/proc/<pid>/stat`` after the command name, or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def is_alive(pid: int) -> bool:
    """Return True when ``pid`` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _all_pids() -> list[int]:
    """Return every pid currently in ``/proc``."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _parents() -> dict[int, int]:
    """Map each live pid to its parent pid."""
    parents: dict[int, int] = {}
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields is not None:
            parents[pid] = int(fields[1])
    return parents


def descendants(pids: Iterable[int]) -> set[int]:
    """Return every live descendant of ``pids`` (not the pids themselves)."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    stack = list(pids)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def cmdline(pid: int) -> str:
    """Return the command line of ``pid`` with arguments joined by spaces ('' if gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _ancestors() -> set[int]:
    """Return this process and all its ancestors."""
    parents = _parents()
    found = {os.getpid()}
    pid = os.getpid()
    while (pid := parents.get(pid, 0)) > 1:
        found.add(pid)
    return found


def pids_mentioning(text: str) -> set[int]:
    """Return live pids whose command line contains ``text``, except this process and its ancestors."""
    spared = _ancestors()
    return {pid for pid in _all_pids() if pid not in spared and text in cmdline(pid) and is_alive(pid)}


def _signal(pids: Iterable[int], sig: signal.Signals) -> None:
    """Send ``sig`` to each pid, ignoring those already gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _reap(pids: Iterable[int]) -> None:
    """Collect exit statuses of any of ``pids`` that are our own finished children."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def _wait_gone(pids: set[int], deadline: float) -> set[int]:
    """Wait until every pid is gone or ``deadline`` passes; return those still alive."""
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        _reap(alive)
        alive = {pid for pid in alive if is_alive(pid)}
        if alive:
            time.sleep(0.02)
    return alive


def wait_gone(pids: Iterable[int], timeout: float) -> set[int]:
    """Wait up to ``timeout`` seconds for ``pids`` to exit; return those still alive."""
    return _wait_gone(set(pids), time.monotonic() + timeout)


def end_processes(pids: Iterable[int], *, grace: float = 3.0) -> None:
    """End ``pids`` and all their descendants: SIGTERM, then SIGKILL after ``grace`` seconds."""
    roots = {pid for pid in pids if is_alive(pid)}
    everyone = roots | descendants(roots)
    if not everyone:
        _reap(set(pids))
        return
    _signal(everyone, signal.SIGTERM)
    left = _wait_gone(everyone, time.monotonic() + grace)
    if left:
        _signal(left | descendants(left), signal.SIGKILL)
        left = _wait_gone(left, time.monotonic() + 2.0)
    _reap(set(pids))
    if left:
        raise EstateError(f"processes {sorted(left)} survived SIGKILL")
