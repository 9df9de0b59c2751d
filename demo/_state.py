"""The estate's state file ``<root>/estate.json``: what runs where, and the pids to stop.

Written by the process that starts the estate; read by ``python -m demo.estate stop|status``
from any other process and, read-only, by the host programs (``appctl``, ``route`` ...).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo._gateway import GatewayFiles
from demo._types import AppInstance, EstateHost

STATE_FILE = "estate.json"


@dataclass(frozen=True)
class GatewaySpec:
    """Where the gateway runs: on which host, address and port, with which nginx files."""

    host: str
    address: str
    port: int
    directory: Path

    @property
    def files(self) -> GatewayFiles:
        """The gateway's nginx files."""
        return GatewayFiles(self.directory)

    @property
    def url(self) -> str:
        """Base URL of the gateway, e.g. ``http://127.0.0.10:8080``."""
        return f"http://{self.address}:{self.port}"


@dataclass
class EstateState:
    """Everything another process needs to use or stop a running estate."""

    root: Path
    python: str
    repo: str
    ssh_port: int = 2222
    seed_rows: int = 0
    hosts: dict[str, EstateHost] = field(default_factory=dict)
    apps: dict[str, AppInstance] = field(default_factory=dict)
    gateway: GatewaySpec | None = None
    pids: dict[str, int] = field(default_factory=dict)
    running: bool = False

    def save(self) -> None:
        """Write the state file atomically, world-readable so host programs can read it."""
        path = self.root / STATE_FILE
        temp = path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False))
        temp.chmod(0o644)
        temp.replace(path)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        gateway = None
        if self.gateway is not None:
            gateway = {
                "host": self.gateway.host,
                "address": self.gateway.address,
                "port": self.gateway.port,
                "directory": str(self.gateway.directory),
            }
        return {
            "root": str(self.root),
            "python": self.python,
            "repo": self.repo,
            "ssh_port": self.ssh_port,
            "seed_rows": self.seed_rows,
            "running": self.running,
            "pids": self.pids,
            "gateway": gateway,
            "hosts": {name: host.to_json() for name, host in self.hosts.items()},
            "apps": {name: app.to_json() for name, app in self.apps.items()},
        }

    @classmethod
    def load(cls, root: Path) -> EstateState:
        """Read ``<root>/estate.json``; FileNotFoundError when there is none."""
        data = json.loads((root / STATE_FILE).read_text())
        gateway = data.get("gateway")
        return cls(
            root=Path(data["root"]),
            python=data["python"],
            repo=data["repo"],
            ssh_port=int(data["ssh_port"]),
            seed_rows=int(data.get("seed_rows", 0)),
            hosts={k: EstateHost.from_json(v) for k, v in data["hosts"].items()},
            apps={k: AppInstance.from_json(v) for k, v in data["apps"].items()},
            gateway=None
            if gateway is None
            else GatewaySpec(gateway["host"], gateway["address"], gateway["port"], Path(gateway["directory"])),
            pids={k: int(v) for k, v in data["pids"].items()},
            running=bool(data["running"]),
        )
