"""Background processes of the demo (Prefect server, worker): started detached, stopped by pid file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from demo.errors import EstateError


def spawn(name: str, argv: list[str], *, env: Mapping[str, str], logs: Path, cwd: Path) -> int:
    """Start ``argv`` in its own session, output to ``logs/<name>.log``; returns its pid."""
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            argv,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
        )
    return process.pid


def stop_group(pid: int, grace_s: float = 10.0) -> None:
    """TERM the process group of ``pid``, then KILL what is left after ``grace_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def wait_http(url: str, *, timeout_s: float, what: str, log: Path) -> None:
    """Wait until ``url`` answers 200, or raise naming the log to read."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise EstateError(f"{what} did not answer at {url} within {timeout_s:.0f} s; see {log}")


def prefect_cli() -> list[str]:
    return [sys.executable, "-m", "prefect"]


def save_state(path: Path, state: Mapping[str, object]) -> None:
    path.write_text(json.dumps(state, indent=2), encoding="utf-8")


def load_state(path: Path) -> dict[str, object]:
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else {}
