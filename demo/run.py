"""``make demo`` / ``make demo-failure`` / ``make demo-stop``: the whole mandated sequence on one machine.

``up`` starts a local Prefect server (SQLite, 127.0.0.1:4200) and a cutover worker (warm process worker), the demo estate
(sshd hosts on loopback, the nginx gateway, the sample app as the legacy system and its cloud test
platform and cloud production copies), registers the deployments (prefect.yaml), enrolls the two
demo approvers, and triggers the cutover of 社会保险信息系统: stress and internal tests, the
trial-run report, then the joint sign-off — in the Prefect UI, with ``cutover sign``, or by itself
with ``AUTO_SIGN=1`` — then the cutover and the retention window.

``failure`` writes a payment through the gateway (now served by the cloud copy), breaks the cloud
copy, and lets the retention watch roll back automatically; the payment is then on the original.
``stop`` ends everything ``up`` started. State lives in ``.demo/`` (wiped by the next ``up``).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from hashlib import sha256
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STATE_DIR = REPO / ".demo"
KEYS = STATE_DIR / "keys"  # the demo approvers' SM2 private keys (in real life: on their own machines)
STATE_FILE = STATE_DIR / "demo.json"
LOGS = STATE_DIR / "logs"
API_PORT = 4200
UI = f"http://127.0.0.1:{API_PORT}"
POOL = "cutover-process"
SYSTEM = "hrss-social-insurance"
APPROVERS = (("wang.li", "王丽", "department 信息系统所属部门"), ("zhao.min", "赵敏", "cloud_provider 云服务商"))


def production_topology() -> bool:
    """``DEMO_TOPOLOGY=production``: Prefect server and ledger on PostgreSQL, two cutover workers."""
    return os.environ.get("DEMO_TOPOLOGY") == "production"


PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
PG_PREFECT_DB = "govcloud_demo_prefect"
PG_LEDGER_DB = "govcloud_demo_ledger"


def topology_env() -> dict[str, str]:
    """The extra settings of the production topology (empty for the embedded default)."""
    if not production_topology():
        return {}
    return {
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_PREFECT_DB}",
        "CUTOVER_DATABASE_URL": f"{PG_SERVER}/{PG_LEDGER_DB}",
    }


def base_env() -> dict[str, str]:
    """The settings every demo process shares: local server, fast polling, the demo's ledger and specs."""
    return {
        **topology_env(),
        "PREFECT_HOME": str(STATE_DIR / "prefect"),
        "PREFECT_API_URL": f"{UI}/api",
        "PREFECT_UI_URL": UI,
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(API_PORT),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
        "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_LOOP_SECONDS": "5",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "CUTOVER_HOME": str(STATE_DIR / "home"),
        "CUTOVER_SPECS_DIR": str(STATE_DIR / "specs"),
        "CUTOVER_REPO": str(REPO),
    }


def estate_root() -> Path:
    """Where the estate lives: a world-readable temp directory (the hosts' user must reach it)."""
    tag = sha256(str(REPO).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"govcloud-cutover-demo-{tag}"


def say(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str]) -> int:
    os.environ.update(base_env())
    command = argv[0] if argv else "up"
    from demo import _steps

    handlers: dict[str, Any] = {"up": _steps.up, "failure": _steps.failure, "stop": _steps.stop}
    if command not in handlers:
        say(f"usage: python -m demo.run up|failure|stop (not {command!r})")
        return 2
    return int(handlers[command](argv[1:]) or 0)


def wipe_state() -> None:
    """Remove the previous demo's state (ledger, Prefect database, specs, logs)."""
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    STATE_DIR.mkdir(parents=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
