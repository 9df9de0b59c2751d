"""The records the demo estate hands out: SSH hosts and sample-app instances."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

OPS_USER = "cutover-ops"
"""The login user of every estate host."""


@dataclass(frozen=True)
class EstateHost:
    """One SSH host of the estate: a real sshd on its own loopback address.

    ``host_key_fingerprint`` reads ``SHA256:<base64 without padding>``, exactly as
    ``ssh-keygen -lf`` prints it; ``host_public_key`` is the ``ssh-ed25519 AAAA...`` line.
    ``root_dir`` holds the host's ``app/``, ``bin/``, ``data/`` and ``log/``.
    """

    name: str
    address: str
    port: int
    user: str
    client_key_path: Path
    host_key_fingerprint: str
    host_public_key: str
    root_dir: Path

    @property
    def bin_dir(self) -> Path:
        """The directory of the host programs (``appctl``, ``route``, ``echo-argv`` ...)."""
        return self.root_dir / "bin"

    def program(self, name: str) -> str:
        """Return the absolute path of host program ``name`` as a string for a command list."""
        return str(self.bin_dir / name)

    def spec_entry(self) -> dict[str, Any]:
        """Return this host as an entry of a cutover spec's ``hosts:`` mapping."""
        return {
            "address": self.address,
            "port": self.port,
            "user": self.user,
            "host_key": self.host_key_fingerprint,
            "key_file": str(self.client_key_path),
        }

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict of every field."""
        data = asdict(self)
        data["client_key_path"] = str(self.client_key_path)
        data["root_dir"] = str(self.root_dir)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EstateHost:
        """Rebuild a host from :meth:`to_json` output."""
        fields = dict(data)
        fields["client_key_path"] = Path(fields["client_key_path"])
        fields["root_dir"] = Path(fields["root_dir"])
        return cls(**fields)


@dataclass(frozen=True)
class AppInstance:
    """One instance of the sample application, run on an estate host by ``appctl``."""

    name: str
    address: str
    port: int
    db_url: str
    state_dir: Path

    @property
    def url(self) -> str:
        """Base URL of the instance, e.g. ``http://127.0.0.11:8000``."""
        return f"http://{self.address}:{self.port}"

    @property
    def pidfile(self) -> Path:
        """Where ``appctl start`` records the instance's pid."""
        return self.state_dir / "app.pid"

    @property
    def frozen_flag(self) -> Path:
        """The file whose presence makes the instance refuse writes."""
        return self.state_dir / "frozen"

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict of every field."""
        data = asdict(self)
        data["state_dir"] = str(self.state_dir)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AppInstance:
        """Rebuild an instance from :meth:`to_json` output."""
        fields = dict(data)
        fields["state_dir"] = Path(fields["state_dir"])
        return cls(**fields)
