"""Where the estate's parts live and small helpers for starting it (names, root, HTTP checks)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from demo._proc import cmdline, is_alive
from demo._runtime import host_python
from demo._state import EstateState
from demo.errors import EstateError

DEFAULT_ADDRESSES = {
    "gateway": "127.0.0.10",
    "legacy": "127.0.0.11",
    "cloud_test": "127.0.0.12",
    "cloud": "127.0.0.13",
}
DEFAULT_HOSTS = ("gateway", "legacy", "cloud_test", "cloud")
APP_HOSTS = ("legacy", "cloud_test", "cloud")
GATEWAY_HOST = "gateway"


def whoami(url: str) -> str | None:
    """The instance answering ``/api/whoami`` at ``url``, or None."""
    try:
        answer = httpx.get(f"{url}/api/whoami", timeout=2.0)
        name = answer.json().get("name") if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    return name if isinstance(name, str) else None


def post_json(url: str, body: dict[str, Any]) -> None:
    """POST ``body`` as JSON to ``url``; raise EstateError unless the answer is 2xx."""
    try:
        httpx.post(url, json=body, timeout=5.0).raise_for_status()
    except httpx.HTTPError as exc:
        raise EstateError(f"POST {url} failed: {exc}") from exc


def roles(name: str) -> tuple[str, ...]:
    """Which host programs a host gets: app hosts ``appctl`` etc., the gateway ``route``."""
    if name in APP_HOSTS:
        return ("app",)
    return ("gateway",) if name == GATEWAY_HOST else ()


def check_names(hosts: Sequence[str]) -> None:
    """Refuse host names without a default address, and duplicates."""
    unknown = [name for name in hosts if name not in DEFAULT_ADDRESSES]
    if unknown or len(set(hosts)) != len(hosts):
        raise EstateError(f"hosts must be distinct names from {', '.join(DEFAULT_ADDRESSES)}; got {', '.join(hosts)}")


def fresh_state(root: Path, port: int) -> EstateState:
    """Make the root (reachable by cutover-ops) and refuse one whose estate still runs."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    check_reachable(root)
    try:
        old = EstateState.load(root)
    except FileNotFoundError:
        old = None
    if old is not None and any(is_alive(pid) and f"{root}/" in cmdline(pid) for pid in old.pids.values()):
        raise EstateError(
            f"an estate is still running at {root}; stop it first (python -m demo.estate stop --root {root})"
        )
    repo = repo_root()
    python = host_python(root, repo)
    return EstateState(root=root, python=python, repo=str(repo), ssh_port=port)


def check_reachable(root: Path) -> None:
    """cutover-ops must be able to walk to the root: every parent needs the others' x bit."""
    for parent in [root, *root.parents]:
        if not parent.stat().st_mode & 0o001:
            raise EstateError(
                f"cutover-ops cannot reach {root}: {parent} is not searchable by "
                f"others (chmod o+x {parent}, or use another root)"
            )


def repo_root() -> Path:
    """The directory that holds the ``demo`` package (put on the hosts' PYTHONPATH)."""
    return Path(__file__).resolve().parent.parent
