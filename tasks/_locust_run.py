"""Running locust as a bounded subprocess.

Locust runs in its own process group (``start_new_session``) with an argument list, never a
shell. A hard deadline kills the whole group with SIGKILL; so does any exception (including a
Prefect timeout or Ctrl-C) that reaches the wait loop, so no load generator outlives its task.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

STOP_TIMEOUT_S = 2


@dataclass(frozen=True)
class RunOutcome:
    """How the locust process ended."""

    returncode: int
    elapsed_s: float
    overran: bool
    log_path: Path

    @property
    def signal_name(self) -> str | None:
        """``"SIGKILL"`` etc. when the process died of a signal, else None."""
        if self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"

    def log_tail(self, lines: int = 3) -> str:
        """The last non-empty lines locust wrote, for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(tail)


def locust_command(
    locustfile: Path, base_url: str, users: int, spawn_rate: float, run_time_s: int, prefix: Path
) -> list[str]:
    """The locust command line (checked against ``locust --help`` of locust 2.47)."""
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "-u",
        str(users),
        "-r",
        f"{spawn_rate:g}",
        "--run-time",
        f"{run_time_s}s",
        "--host",
        base_url,
        "--csv",
        str(prefix),
        "--csv-full-history",
        "--html",
        f"{prefix}.html",
        "--only-summary",
        "--stop-timeout",
        str(STOP_TIMEOUT_S),
        "--exit-code-on-error",
        "0",
    ]


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without ``LOCUST_*`` settings, plus ``extra``.

    Stray ``LOCUST_*`` variables would silently change users, run time or host.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOCUST_")}
    env.update(extra)
    return env


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _wait(
    process: subprocess.Popen[bytes], deadline_s: float, poll_s: float, on_poll: Callable[[int, float], None]
) -> tuple[int, bool]:
    started = time.monotonic()
    while True:
        remaining = deadline_s - (time.monotonic() - started)
        if remaining <= 0:
            _kill_group(process)
            return process.returncode, True
        try:
            return process.wait(timeout=min(poll_s, remaining)), False
        except subprocess.TimeoutExpired:
            on_poll(process.pid, time.monotonic() - started)


def run_locust(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    deadline_s: float,
    poll_s: float,
    on_poll: Callable[[int, float], None],
) -> RunOutcome:
    """Run ``command`` until it exits or ``deadline_s`` passes; call ``on_poll(pid, elapsed)`` meanwhile."""
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode, overran = _wait(process, deadline_s, poll_s, on_poll)
        except BaseException:
            _kill_group(process)  # never leave a load generator running; then re-raise
            raise
    return RunOutcome(returncode, time.monotonic() - started, overran, log_path)
