"""Settings, read from the environment with the ``CUTOVER_`` prefix (pydantic-settings)."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

_DEFAULT_HOME = Path.home() / ".local" / "share" / "govcloud-cutover"

#: The Prefect worker type of this project's workers (``prefect worker start --type cutover``).
WORKER_TYPE = "cutover"
#: The work pool the deployments go to unless told otherwise.
DEFAULT_POOL = "cutover-process"
#: The name of the approvers' notification automation and its webhook block (`cutover setup --name`).
DEFAULT_NOTIFY_NAME = "cutover-approvers"


class Settings(BaseSettings):
    """Every knob of govcloud-cutover. Set ``CUTOVER_<NAME>`` in the environment or ``.env``."""

    model_config = SettingsConfigDict(env_prefix="CUTOVER_", env_file=".env", extra="ignore")

    home: Path = Field(
        default=_DEFAULT_HOME,
        description="Directory for the default SQLite ledger, reports and local state.",
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the ledger, e.g. postgresql+psycopg://user@host/db. "
            "Empty means a SQLite file `ledger.db` under `home`."
        ),
    )
    specs_dir: Path = Field(
        default=Path("cutover_specs"),
        description="Directory holding one cutover spec (YAML) per information system.",
    )
    digest: Literal["sm3", "sha256"] = Field(
        default="sm3",
        description="Digest of the audit chain and reports. SM3 (national standard) by default; "
        "if SM3 is configured and unavailable the tool refuses to start.",
    )
    known_hosts_file: Path | None = Field(
        default=None,
        description="An OpenSSH known_hosts file consulted when a spec host pins no key.",
    )
    ssh_key_file: Path | None = Field(
        default=None,
        description="Private key file used for SSH when a host names none (else ssh-agent).",
    )
    totp_key: SecretStr | None = Field(
        default=None,
        description="Key (Fernet, urlsafe base64) that encrypts approvers' TOTP secrets at rest. "
        "Generated under `home` on first use when empty.",
    )
    signoff_proof: Literal["sm2", "totp"] = Field(
        default="sm2",
        description="How approvers prove a sign-off. `sm2` (default): an SM2 signature (GB/T 32918, SM3) "
        "made with the approver's own private key and verified with the enrolled public key, so no worker, "
        "server or ledger can make one. `totp`: a one-time code, a light mode for pilots only: whoever "
        "holds the worker's TOTP key (CUTOVER_TOTP_KEY or `home`/totp.key) and the ledger can compute "
        "every approver's code and forge the sign-off.",
    )
    recovery_silence_s: float = Field(
        default=90.0,
        ge=45.0,
        description="A flow run whose heartbeats (every 30 s) stop for this long is marked Crashed and its "
        "work continued by the recover flow (set on the cutover workers, which create the automation).",
    )
    warm_processes: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Processes a cutover worker keeps started ahead of time (each ~135 MB), ready for "
        "the next flow runs; more of them start bursts of runs (several rollbacks at once) faster.",
    )
    warm_max_age_s: float = Field(
        default=900.0,
        ge=10.0,
        description="A cutover worker's idle warm process is renewed after this many seconds, so an "
        "upgraded library is picked up.",
    )
    audit_purge_floor_days: int = Field(
        default=183,
        ge=183,
        description="Audit events younger than this many days can never be purged (≥ 6 months).",
    )

    programme_deadline: date = Field(
        default=date(2019, 12, 31),
        description="The date every non-classified system should be on the cloud (the notice: end of 2019); "
        "the portfolio counts a system to migrate and not cut over after it as overdue, and lists it for the "
        "finance department (maintenance payments to stop).",
    )
    portfolio_soon_days: int = Field(
        default=30,
        ge=1,
        le=366,
        description="The portfolio lists the retention windows ending within this many days.",
    )

    def ledger_url(self) -> str:
        """The ledger's SQLAlchemy URL, defaulting to a SQLite file under ``home``."""
        if self.database_url:
            return self.database_url
        self.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.home / 'ledger.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests build their own ``Settings``)."""
    return Settings()
