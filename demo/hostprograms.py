"""The programs each estate host carries in its ``bin/``: what a cutover spec's steps call.

Each ``bin/<program>`` is a two-line script that calls :func:`run` with the host's name and the
estate root, so a step runs e.g. ``<host root>/bin/appctl freeze`` over SSH.

``appctl start|stop|restart|status|freeze|unfreeze``
    Start or stop this host's sample-app instance (a background process owned by cutover-ops,
    pid in ``app/app.pid``); ``freeze`` makes it refuse writes (503), ``unfreeze`` lifts that.
    ``status`` exits 0 when running, 3 when stopped.
``selftest [BASE_URL]``
    Internal test: ``/healthz`` answers 200 and ``/api/stats`` shows data. Exit 0 or 1.
    Default URL: this host's app (on the gateway host: the gateway).
``pull-from INSTANCE``
    The final data sync: replace this host's database with a consistent copy of INSTANCE's
    (SQLite backup API between SQLite files, a table copy otherwise).
``route INSTANCE`` (gateway host only)
    Point the gateway at INSTANCE (``legacy`` or ``cloud``): rewrite the upstream include,
    ``nginx -s reload``, then check ``/api/whoami`` through the gateway names INSTANCE. Exit 1
    if it does not within 5 s.

Exit codes: 0 done, 1 failed, 2 wrong usage, 3 (``appctl status``) not running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo._gateway import write_upstream
from demo._proc import cmdline, descendants, end_processes, is_alive, wait_gone
from demo._state import EstateState
from demo._types import AppInstance

USAGE = 2
START_TIMEOUT = 15.0
ROUTE_TIMEOUT = 5.0


class UsageError(Exception):
    """The program was called with arguments it does not take."""


@dataclass(frozen=True)
class HostContext:
    """The estate as seen from one host: its name and the estate's state file."""

    host: str
    state: EstateState

    @property
    def host_dir(self) -> Path:
        """This host's directory (``app/``, ``bin/``, ``data/``, ``log/``)."""
        return self.state.root / "hosts" / self.host

    def app(self) -> AppInstance:
        """This host's app instance, or UsageError when the host runs none."""
        if self.host not in self.state.apps:
            raise UsageError(f"host {self.host} runs no app instance")
        return self.state.apps[self.host]

    def other_app(self, name: str) -> AppInstance:
        """The app instance called ``name``, or UsageError naming the known ones."""
        if name not in self.state.apps:
            known = ", ".join(sorted(self.state.apps))
            raise UsageError(f"unknown instance {name!r}; known: {known}")
        return self.state.apps[name]


# -- appctl ---------------------------------------------------------------------------------


def appctl(ctx: HostContext, args: Sequence[str]) -> int:
    """``appctl start|stop|restart|status|freeze|unfreeze``."""
    actions: dict[str, Callable[[HostContext, AppInstance], int]] = {
        "start": _app_start,
        "stop": _app_stop,
        "restart": _app_restart,
        "status": _app_status,
        "freeze": _app_freeze,
        "unfreeze": _app_unfreeze,
    }
    if len(args) != 1 or args[0] not in actions:
        raise UsageError(f"usage: appctl {'|'.join(actions)}")
    return actions[args[0]](ctx, ctx.app())


def running_pid(app: AppInstance) -> int | None:
    """The pid of the instance when its pid file names a live sample-app process."""
    try:
        pid = int(app.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_alive(pid) and "demo.sampleapp" in cmdline(pid) else None


def _app_start(ctx: HostContext, app: AppInstance) -> int:
    """Start the instance in the background and wait until ``/healthz`` answers 200."""
    if (pid := running_pid(app)) is not None:
        print(f"{app.name} already running (pid {pid}) on {app.url}")
        return 0
    log = ctx.host_dir / "log" / "app.log"
    proc = _spawn_app(ctx.state, app, log)
    app.pidfile.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"{app.name} exited with {proc.returncode} while starting; see {log}:\n{_tail(log)}", file=sys.stderr)
            return 1
        if _http_status(f"{app.url}/healthz") == 200:
            print(f"{app.name} started (pid {proc.pid}) on {app.url}")
            return 0
        time.sleep(0.05)
    print(f"{app.name} did not become healthy on {app.url} within {START_TIMEOUT:g} s; see {log}", file=sys.stderr)
    return 1


def _spawn_app(state: EstateState, app: AppInstance, log: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m demo.sampleapp`` for ``app``, detached, logging to ``log``."""
    argv = [
        state.python,
        "-m",
        "demo.sampleapp",
        "--name",
        app.name,
        "--host",
        app.address,
        "--port",
        str(app.port),
        "--db",
        app.db_url,
        "--state-dir",
        str(app.state_dir),
    ]
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": state.repo,
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": os.environ.get("HOME", str(app.state_dir)),
        "LANG": "C.UTF-8",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            cwd=app.state_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _app_stop(ctx: HostContext, app: AppInstance) -> int:
    """Stop the instance (SIGTERM, SIGKILL after 5 s) and remove its pid file."""
    pid = running_pid(app)
    if pid is None:
        print(f"{app.name} is not running")
    else:
        end_processes([pid], grace=5.0)
        print(f"{app.name} stopped (was pid {pid})")
    app.pidfile.unlink(missing_ok=True)
    return 0


def _app_restart(ctx: HostContext, app: AppInstance) -> int:
    """Stop, then start."""
    _app_stop(ctx, app)
    return _app_start(ctx, app)


def _app_status(ctx: HostContext, app: AppInstance) -> int:
    """Print whether the instance runs and is frozen; exit 3 when it is not running."""
    pid = running_pid(app)
    frozen = "frozen (writes refused)" if app.frozen_flag.exists() else "accepting writes"
    if pid is None:
        print(f"{app.name} stopped; {frozen}")
        return 3
    print(f"{app.name} running (pid {pid}) on {app.url}; {frozen}")
    return 0


def _app_freeze(ctx: HostContext, app: AppInstance) -> int:
    """Create the freeze flag: the instance refuses writes from the next request on."""
    app.frozen_flag.write_text("writes refused: frozen for cutover\n")
    print(f"{app.name} frozen: writes refused")
    return 0


def _app_unfreeze(ctx: HostContext, app: AppInstance) -> int:
    """Remove the freeze flag."""
    app.frozen_flag.unlink(missing_ok=True)
    print(f"{app.name} unfrozen: writes accepted")
    return 0


# -- selftest, pull-from, route ---------------------------------------------------------------


def selftest(ctx: HostContext, args: Sequence[str]) -> int:
    """``selftest [BASE_URL]``: healthz is 200 and the stats show rows."""
    if len(args) > 1:
        raise UsageError("usage: selftest [BASE_URL]")
    base = args[0] if args else _default_url(ctx)
    status = _http_status(f"{base}/healthz")
    stats = _http_json(f"{base}/api/stats")
    if status != 200 or not stats or int(stats.get("insured", 0)) < 1:
        print(f"selftest FAILED for {base}: healthz={status} stats={stats}", file=sys.stderr)
        return 1
    print(
        f"selftest ok for {base}: healthz=200 insured={stats['insured']} "
        f"payments={stats['payments']} served by {stats.get('name')}"
    )
    return 0


def _default_url(ctx: HostContext) -> str:
    """This host's app URL, or the gateway's on the gateway host."""
    gateway = ctx.state.gateway
    if gateway is not None and gateway.host == ctx.host:
        return gateway.url
    return ctx.app().url


def pull_from(ctx: HostContext, args: Sequence[str]) -> int:
    """``pull-from INSTANCE``: the final data sync from INSTANCE's database into this host's."""
    if len(args) != 1:
        raise UsageError("usage: pull-from INSTANCE")
    target, source = ctx.app(), ctx.other_app(args[0])
    if source.name == target.name:
        raise UsageError(f"{target.name} cannot pull from itself")
    from demo.datasync import copy_database  # heavy import (SQLAlchemy): only when needed

    counts = copy_database(source.db_url, target.db_url)
    summary = " ".join(f"{table}={count}" for table, count in counts.items())
    print(f"final data sync {source.name} -> {target.name} done: {summary}")
    return 0


def route(ctx: HostContext, args: Sequence[str]) -> int:
    """``route INSTANCE``: switch the gateway's traffic to INSTANCE and verify it."""
    gateway = ctx.state.gateway
    if gateway is None or gateway.host != ctx.host:
        raise UsageError(f"route runs on the gateway host, not on {ctx.host}")
    if len(args) != 1:
        raise UsageError("usage: route INSTANCE")
    app = ctx.other_app(args[0])
    old_workers = _nginx_workers(gateway.files.pidfile)
    write_upstream(gateway.files, app.name, app.address, app.port)
    reload = subprocess.run(gateway.files.control_argv("-s", "reload"), capture_output=True, text=True, check=False)
    if reload.returncode != 0:
        print(f"nginx reload failed: {reload.stderr.strip()}", file=sys.stderr)
        return 1
    # Old workers may still accept a connection or two until they shut down; wait them out.
    wait_gone(old_workers, ROUTE_TIMEOUT)
    return _verify_route(gateway.url, app.name)


def _nginx_workers(pidfile: Path) -> set[int]:
    """The current worker processes of the nginx master named in ``pidfile``."""
    try:
        return descendants([int(pidfile.read_text().strip())])
    except (OSError, ValueError):
        return set()


def _verify_route(gateway_url: str, target: str) -> int:
    """Poll ``/api/whoami`` through the gateway until ``target`` answers."""
    deadline = time.monotonic() + ROUTE_TIMEOUT
    answer: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        answer = _http_json(f"{gateway_url}/api/whoami")
        if answer is not None and answer.get("name") == target:
            print(f"traffic switched: {gateway_url} now served by {target}")
            return 0
        time.sleep(0.05)
    print(f"route {target}: gateway {gateway_url} still answers {answer} after {ROUTE_TIMEOUT:g} s", file=sys.stderr)
    return 1


# -- helpers ----------------------------------------------------------------------------------


def _http_status(url: str) -> int | None:
    """GET ``url`` and return the status, or None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - estate http:// URLs
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def _http_json(url: str) -> dict[str, Any] | None:
    """GET ``url`` and return its JSON object, or None on any failure."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - estate http:// URLs
            data = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


PROGRAMS: dict[str, Callable[[HostContext, Sequence[str]], int]] = {
    "appctl": appctl,
    "selftest": selftest,
    "pull-from": pull_from,
    "route": route,
}


def run(program: str, root: str, host: str, argv: Sequence[str]) -> int:
    """Run host program ``program`` for ``host`` of the estate at ``root``; return the exit code."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        ctx = HostContext(host, EstateState.load(Path(root)))
        return PROGRAMS[program](ctx, list(argv))
    except UsageError as exc:
        print(f"{program}: {exc}", file=sys.stderr)
        return USAGE
    except Exception as exc:
        print(f"{program} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
