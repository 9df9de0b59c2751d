"""The cutover spec: one YAML file per information system, validated by strict models.

``load_spec(path)`` reads and validates a file and raises :class:`~cutover.errors.SpecError`
listing every problem with its file, line and field. ``Spec.model_json_schema()`` is written to
``cutover_specs/schema.json`` so editors can complete specs.

Models are strict: unknown keys are refused (``extra="forbid"``), instances are frozen, step
kinds are a tagged union on ``kind``. Cross-field rules (the notice's scope, retention, rosters,
undo coverage, references) live in :mod:`cutover._spec_rules` and run on every load.
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    IPvAnyAddress,
    PlainSerializer,
    StringConstraints,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from cutover._durations import Duration
from cutover._spec_rules import REFERENCE_FIX
from cutover.digest import Algorithm, digest_json


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Identifier = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$", min_length=1, max_length=64),
    Field(description="Lower-case id: letters, digits, '.', '_' or '-'; starts with a letter or digit."),
]
Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]


def _check_argument(value: str) -> str:
    if "\x00" in value or "\n" in value or "\r" in value:
        raise ValueError("an argument may not contain NUL or a newline; split it into separate arguments")
    return value


Argument = Annotated[
    str,
    StringConstraints(max_length=4096),
    AfterValidator(_check_argument),
    Field(description="One argument, passed literally."),
]


class SecretRef(_Strict):
    """A secret referenced by name: a Prefect Secret block or an environment variable."""

    secret: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=128)] = Field(
        description="Name of a Prefect Secret block (hyphens allowed) or an environment variable."
    )


SECRET_VALUE_REFUSED = (
    "takes a reference to a secret, not its value; put the value in an environment variable or a Prefect Secret "
    f"block, {REFERENCE_FIX}"
)


def _refuse_inline_secret(value: object) -> object:
    if isinstance(value, str):
        raise ValueError(SECRET_VALUE_REFUSED)
    return value


SecretOnly = Annotated[SecretRef, BeforeValidator(_refuse_inline_secret)]
"""A field that takes only a reference to a declared secret, never a value."""


def _arg_kind(value: object) -> str:
    return "secret" if isinstance(value, (dict, SecretRef)) else "arg"


def _check_database_url(value: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(value)
    except ArgumentError:
        raise ValueError(
            "is not a database URL; write a SQLAlchemy URL without a password (e.g. sqlite:////srv/app/app.db, "
            f"postgresql+psycopg://app@127.0.0.1/app); for one with a password, {REFERENCE_FIX}"
        ) from None
    return value


InlineDatabaseUrl = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2048),
    AfterValidator(_check_database_url),
    Field(
        description="A SQLAlchemy database URL written inline; only one without a password "
        "(sqlite:////srv/app/app.db, postgresql+psycopg://app@127.0.0.1/app). One with a password is a secret."
    ),
]


DatabaseUrl = Annotated[
    Annotated[InlineDatabaseUrl, Tag("arg")] | Annotated[SecretRef, Tag("secret")],
    Discriminator(_arg_kind),
]


CommandArg = Annotated[
    Annotated[Argument, Tag("arg")] | Annotated[SecretRef, Tag("secret")],
    Discriminator(_arg_kind),
]
Command = Annotated[
    list[CommandArg],
    Field(
        min_length=1,
        description="Program and arguments, passed as a list and quoted for the remote shell. "
        "Arguments after a literal '--' are operands and may not start with '-'.",
    ),
]


# ---------------------------------------------------------------------------------- system
class Classification(StrEnum):
    """涉密 / 非涉密: only non-classified systems are in scope."""

    NON_CLASSIFIED = "non-classified"
    CLASSIFIED = "classified"


class Disposition(StrEnum):
    """What the plan does with the system (the notice's attachment 2); the ledger stores it too."""

    MIGRATE = "migrate"
    CONSOLIDATE = "consolidate"
    RETIRE = "retire"
    EXEMPT = "exempt"


class HostingKind(StrEnum):
    """Where the system runs today."""

    OWN_MACHINE_ROOM = "own-machine-room"
    TELECOM_OPERATOR = "telecom-operator"


class Adaptation(StrEnum):
    """Adaptation work before migration (代码优化、数据库更新、操作系统升级)."""

    CODE_OPTIMISATION = "code-optimisation"
    DATABASE_UPDATE = "database-update"
    OS_UPGRADE = "os-upgrade"


class Hosting(_Strict):
    current: HostingKind = Field(description="Own machine room, or hosted by a telecom operator.")
    operator: Text | None = Field(default=None, description="The telecom operator's name, e.g. 中国电信.")


class Network(_Strict):
    from_: Literal["business-private", "internet", "e-gov-extranet"] = Field(
        alias="from", description="Network the system is on today (业务专网 = business-private)."
    )
    to: Literal["e-gov-extranet"] = Field(description="Target network: the e-government extranet (电子政务外网).")


class SystemInfo(_Strict):
    id: Identifier
    name: Text = Field(description="The system's name, e.g. 社会保险信息系统.")
    department: Text = Field(description="The owning department, e.g. 省人力资源和社会保障厅.")
    classification: Classification = Field(description="Only non-classified (非涉密) systems are in scope.")
    disposition: Disposition = Field(description="migrate, consolidate (into another system), retire, or exempt.")
    consolidate_into: Identifier | None = Field(default=None, description="Target system when consolidating.")
    reason: Text | None = Field(
        default=None, description="Why the system is not migrated (retire, consolidate, exempt): for the expert panel."
    )
    hosting: Hosting
    network: Network
    adaptation: list[Adaptation] = Field(default_factory=list, description="Adaptation work before migration.")
    planned_date: date = Field(description="Planned migration (cutover) date.")


# --------------------------------------------------------------------------------- parties
class Approver(_Strict):
    id: Identifier
    name: Text
    key: str | None = Field(
        default=None,
        pattern=r"^sm3:[0-9a-f]{64}$",
        description=(
            "Optional: the fingerprint of the approver's SM2 public key (`cutover approver list` shows it). When "
            "set, only a signature made with exactly this key is accepted, whatever key the ledger holds: the "
            "reviewed spec, not a writable database, then decides whose key counts."
        ),
    )


class Party(_Strict):
    name: Text | None = Field(default=None, description="The party's name (defaults to the department).")
    approvers: list[Approver] = Field(description="People who may sign for this party (at least one).")


class Parties(_Strict):
    department: Party = Field(description="The owning department (信息系统所属部门).")
    cloud_provider: Party = Field(description="The cloud service provider (云服务商).")


# ----------------------------------------------------------------------------------- hosts
class Host(_Strict):
    address: IPvAnyAddress
    port: int = Field(default=22, ge=1, le=65535)
    user: Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_-]*$", max_length=32)]
    host_key: Annotated[str, StringConstraints(min_length=1)] | None = Field(
        default=None,
        description="The pinned host key: 'SHA256:<fingerprint>', a public key line "
        "'ssh-ed25519 AAAA...', or 'known_hosts' to use the known_hosts file named in settings.",
    )
    key_file: Path | None = Field(default=None, description="Client private key file (else settings or ssh-agent).")
    key_secret: SecretOnly | None = Field(default=None, description="Client private key held in a secret.")
    sudo: bool = Field(default=False, description="Run steps on this host with non-interactive sudo.")


# ----------------------------------------------------------------------------------- steps
class _StepBase(_Strict):
    id: Identifier
    name: Text
    timeout: Duration = Field(default=timedelta(minutes=5), description="Deadline; the step is killed when it passes.")


class SshStep(_StepBase):
    """A command on one or more hosts over SSH."""

    kind: Literal["ssh"]
    host: Identifier | None = Field(default=None, description="The spec host to run on.")
    hosts: list[Identifier] | None = Field(default=None, description="Fan-out: run on each of these hosts.")
    concurrency: int = Field(default=10, ge=1, le=100, description="Hosts at once in a fan-out.")
    run: Command
    undo: Command | None = Field(default=None, description="Command that reverses this step.")
    changes_state: bool = Field(default=True, description="False for read-only commands (no undo needed).")
    irreversible: bool = Field(default=False, description="No undo; `covered_by` names the rollback step instead.")
    covered_by: Identifier | None = Field(default=None, description="Rollback step that covers an irreversible step.")
    check: Command | None = Field(
        default=None, description="Read-only command whose exit 0 shows the step took effect (used after a crash)."
    )
    sudo: bool | None = Field(default=None, description="Override the host's sudo setting.")
    stdin: SecretOnly | None = Field(default=None, description="A secret written to the command's standard input.")
    switches_traffic: bool = Field(
        default=False,
        description="This cutover step sends the users' traffic to the cloud copy. Until it succeeds the "
        "original's data is unchanged, so a failed cutover only undoes (no data is carried back). At most "
        "one step; default: the last state-changing ssh step of cutover.steps.",
    )


class HttpCheckStep(_StepBase):
    """An HTTP request whose status (and optionally body) must match."""

    kind: Literal["http_check"]
    url: AnyHttpUrl
    method: Literal["GET", "HEAD", "POST"] = "GET"
    expect_status: int = Field(default=200, ge=100, le=599)
    expect_body_contains: str | None = None
    timeout: Duration = Field(default=timedelta(seconds=5))


TableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$", max_length=128)]


def _check_time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not an IANA time zone; write one such as Asia/Shanghai or UTC") from exc
    return name


TimeZoneName = Annotated[str, AfterValidator(_check_time_zone)]


class DataVerifyStep(_StepBase):
    """Compare tables of the original and migrated database: row counts and a row checksum."""

    kind: Literal["data_verify"]
    source: DatabaseUrl = Field(
        description="The original database's SQLAlchemy URL: {secret: <id>}, or inline when it has no password."
    )
    target: DatabaseUrl = Field(
        description="The migrated database's SQLAlchemy URL: {secret: <id>}, or inline when it has no password."
    )
    tables: list[TableName] = Field(min_length=1)
    keys: dict[TableName, list[TableName]] = Field(
        default_factory=dict, description="Key columns per table (default: the primary key)."
    )
    chunk_rows: int = Field(default=50_000, ge=100, le=1_000_000)
    float_decimals: int = Field(
        default=6,
        ge=0,
        le=30,
        description="Floating-point values are compared rounded (half away from zero) to this many decimal places: "
        "the tolerance is half a unit of the last place. See 'Normal form of values' in the spec reference.",
    )
    time_zone: TimeZoneName = Field(
        default="Asia/Shanghai",
        description="Timestamps are compared as wall-clock time in this IANA zone: a value with a time zone "
        "(timestamptz, MySQL TIMESTAMP) is converted to it, a naive one (DATETIME, timestamp) is taken as in it.",
    )


Step = Annotated[SshStep | HttpCheckStep | DataVerifyStep, Field(discriminator="kind")]


# ---------------------------------------------------------------------------- test platform
class Endpoint(_Strict):
    name: Text
    method: Literal["GET", "POST", "PUT", "DELETE"] = "GET"
    path: Annotated[str, StringConstraints(pattern=r"^/")]
    weight: int = Field(default=1, ge=1)
    json_body: dict[str, object] | None = Field(default=None, alias="body")
    expect_status: int = Field(default=200, ge=100, le=599)
    expect_body_contains: str | None = None


class Thresholds(_Strict):
    p95_ms: float = Field(gt=0, description="95th-percentile latency must stay at or below this.")
    failure_ratio: float = Field(ge=0, le=1, description="Failed requests / all requests must stay at or below this.")
    min_rps: float = Field(ge=0, description="Requests per second must reach at least this.")


class StressProfile(_Strict):
    locustfile: Path | None = Field(default=None, description="A per-system locustfile; default the generic one.")
    users: int = Field(default=50, ge=1, le=10_000)
    spawn_rate: float = Field(default=10, gt=0)
    duration: Duration = Field(default=timedelta(seconds=60))
    think_time: tuple[float, float] = Field(
        default=(0.0, 0.0), description="Wait between requests, min and max seconds."
    )
    endpoints: list[Endpoint] = Field(default_factory=list)
    thresholds: Thresholds


InternalTest = Annotated[SshStep | HttpCheckStep, Field(discriminator="kind")]


class TestPlatform(_Strict):
    __test__ = False

    base_url: AnyHttpUrl
    prepare: list[SshStep] = Field(
        default_factory=list,
        description="Steps that prepare the test platform (copy the data, start the app), run in order before the "
        "stress test and recorded in the ledger like every step: a re-run of the same run does not repeat them.",
    )
    stress: StressProfile
    internal_tests: list[InternalTest] = Field(default_factory=list)
    health: list[HttpCheckStep] = Field(default_factory=list, description="Checked during the trial run.")
    trial_run: Duration = Field(default=timedelta(days=0), description="Minimum trial-run period (0 for demos).")
    signoff_deadline: Duration = Field(
        default=timedelta(days=14), description="Time the parties have to sign after the report is issued."
    )


# ---------------------------------------------------------------------- cutover, retention
class HealthGate(_Strict):
    passes: int = Field(default=3, ge=1, le=100, description="Consecutive passes required.")
    interval: Duration = Field(default=timedelta(seconds=1))
    within: Duration = Field(default=timedelta(minutes=2), description="Give up (and compensate) after this.")


class Weekday(StrEnum):
    """A day of the week, as written in a cutover window (Monday first, as ``date.weekday()``)."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


_DAY_NAMES = ", ".join(day.value for day in Weekday)
_SHORTHANDS: dict[str, list[str]] = {
    "weekdays": ["mon", "tue", "wed", "thu", "fri"],
    "weekends": ["sat", "sun"],
    "daily": [day.value for day in Weekday],
}
_FULL_NAMES = {day.value: day.value for day in Weekday} | {
    name: name[:3] for name in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
}
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
_CLOCK_PATTERN = r"^([01]?\d|2[0-3]):[0-5]\d$"


def _parse_day(value: object) -> object:
    if not isinstance(value, str):
        return value
    day = _FULL_NAMES.get(value.strip().lower())
    if day is None:
        raise ValueError(f"{value!r} is not a day; write one of {_DAY_NAMES}")
    return day


def _parse_days(value: object) -> object:
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _SHORTHANDS:
            return _SHORTHANDS[key]
        if key in _FULL_NAMES:
            return [key]
        raise ValueError(
            f"{value!r} is not a day or a shorthand; write a list such as [mon, tue, wed, thu, fri], "
            "or one of weekdays, weekends, daily"
        )
    return value


def _sorted_days(value: tuple[Weekday, ...]) -> tuple[Weekday, ...]:
    if not value:
        raise ValueError("no days; write at least one day, e.g. [sat, sun], or daily")
    return tuple(day for day in Weekday if day in value)


def _parse_clock(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        clock = f"{value // 60}:{value % 60:02d}"
        raise ValueError(f'YAML read an unquoted {clock} as the number {value}; write the time in quotes: "{clock}"')
    if not isinstance(value, str):
        raise ValueError(f'{value!r} is not a time of day; write hours and minutes in quotes, e.g. "22:00"')
    match = _CLOCK.match(value.strip())
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(f'{value!r} is not a time of day; write hours and minutes from "00:00" to "23:59"')
    return time(int(match.group(1)), int(match.group(2)))


Day = Annotated[Weekday, BeforeValidator(_parse_day)]
Days = Annotated[
    tuple[Day, ...],
    BeforeValidator(_parse_days),
    AfterValidator(_sorted_days),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "enum": list(_SHORTHANDS)},
                {"type": "array", "items": {"type": "string", "enum": [d.value for d in Weekday]}, "minItems": 1},
            ]
        }
    ),
]
Clock = Annotated[
    time,
    BeforeValidator(_parse_clock),
    PlainSerializer(lambda value: value.strftime("%H:%M"), return_type=str),
    WithJsonSchema({"type": "string", "pattern": _CLOCK_PATTERN, "examples": ["22:00", "06:00"]}),
]


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("a sign-off must stay valid for some time; write a positive duration, e.g. 7d")
    return value


class CutoverWindow(_Strict):
    """When cutover may start, in Asia/Shanghai time (北京时间), e.g. `{days: weekdays, from: "22:00",
    until: "06:00"}`. When until is earlier than from, the window ends the next morning, and the night
    belongs to the day it starts: `fri` 22:00–06:00 runs into Saturday morning. The window governs only
    when cutover starts; the opening time is inside the window, the closing time is not."""

    days: Days = Field(
        default=tuple(Weekday),
        json_schema_extra={"default": "daily"},
        description="Days on which the window opens: a list of mon, tue, wed, thu, fri, sat, sun, or one of "
        "weekdays, weekends, daily.",
    )
    from_: Clock = Field(alias="from", description='Opening time, Asia/Shanghai, in quotes: "22:00".')
    until: Clock = Field(
        description='Closing time, Asia/Shanghai, in quotes: "06:00"; earlier than from means the next morning.'
    )

    @field_validator("until")
    @classmethod
    def _not_empty(cls, until: time, info: ValidationInfo) -> time:
        if info.data.get("from_") == until:
            raise ValueError(
                f"from and until are both {until:%H:%M}, which leaves no time to start; "
                'write a different until (e.g. from "22:00" until "06:00"), or leave out the window'
            )
        return until

    @property
    def overnight(self) -> bool:
        """True when the window ends the morning after it opens."""
        return self.until < self.from_


class CutoverPlan(_Strict):
    steps: list[Step] = Field(min_length=1)
    health: list[HttpCheckStep] = Field(min_length=1, description="Checks of the migrated system.")
    health_gate: HealthGate = Field(default_factory=HealthGate)
    window: CutoverWindow | None = Field(
        default=None,
        description="When cutover may start, in Asia/Shanghai time. After both signatures the run waits, "
        "suspended, until the window opens. Without a window cutover starts as soon as both parties have signed.",
    )
    signoff_valid_for: Annotated[Duration, AfterValidator(_positive)] = Field(
        default=timedelta(days=7),
        description="How long a joint sign-off stays valid, counted from the earlier of the two signatures. A "
        "sign-off that expires before the window opens is refused; both parties then sign again.",
    )

    def traffic_switch(self) -> str | None:
        """The id of the step that sends traffic to the cloud copy (marked, else the last state-changing ssh step)."""
        changing = [s for s in self.steps if isinstance(s, SshStep) and s.changes_state]
        marked = [s.id for s in changing if s.switches_traffic]
        return marked[0] if marked else (changing[-1].id if changing else None)


class Watch(_Strict):
    interval: Duration = Field(default=timedelta(seconds=30), description="Time between two probes of a check.")
    failures_to_rollback: int = Field(
        default=3, ge=1, le=100, description="Consecutive failed probes that trigger the automatic rollback."
    )
    readiness: list[InternalTest] = Field(
        default_factory=list,
        description="Read-only checks that the retained original can take traffic back (e.g. `appctl status` on "
        "the legacy host). Default: each rollback host answers over SSH.",
    )


class Retention(_Strict):
    months: int = Field(default=3, description="At least 3 (原系统至少保留3个月以上).")
    watch: Watch = Field(default_factory=Watch)


class RollbackPlan(_Strict):
    steps: list[Step] = Field(
        min_length=1,
        description="The way back without replication: the reverse copy into the original and the traffic back. "
        "The tool runs them in a safe order, adding what is missing (the run's log and audit say what and why): "
        "writes on the cloud copy frozen first, the original made writable (the undo of the cutover's freeze) "
        "before data is copied into it, the copy verified when the cutover verified data, the traffic back last.",
    )
    health: list[HttpCheckStep] = Field(default_factory=list, description="Checks of the original after rollback.")


# ---------------------------------------------------------------------------------- data
class Replication(StrEnum):
    """How the original's and the cloud copy's databases are kept in step, both ways."""

    POSTGRESQL_LOGICAL = "postgresql-logical"


_REPLICATIONS = ", ".join(r.value for r in Replication)
_QUALIFIED_TABLE = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")


class DataVerify(StrEnum):
    """When the full verification of a replicated system's data runs."""

    ON_SNAPSHOTS = "on-snapshots"
    IN_WINDOW = "in-window"


def _check_replication(value: object) -> object:
    if isinstance(value, str) and value not in {r.value for r in Replication}:
        raise ValueError(
            f"{value!r} is not a replication this tool runs; write {_REPLICATIONS} (PostgreSQL's own logical "
            "replication), or leave out data: and carry the data back with rollback.steps"
        )
    return value


def _check_table(value: str) -> str:
    if not _QUALIFIED_TABLE.match(value) or len(value) > 127:
        raise ValueError(
            f"{value!r} is not a table name; write schema.table (e.g. public.payments) or a bare table name "
            "(schema public), in lower case, letters, digits and '_'"
        )
    return value


QualifiedTable = Annotated[
    str,
    AfterValidator(_check_table),
    Field(description="A table: schema.table, or a bare name in schema public; lower case."),
]


class DataReplication(_Strict):
    """The system's data is replicated both ways: the cloud copy follows the original until the switch, then
    the original follows the cloud copy for the whole retention window (the emergency way back)."""

    replication: Annotated[Replication, BeforeValidator(_check_replication)] = Field(
        description="postgresql-logical: PostgreSQL publications and subscriptions (wal_level=logical on both)."
    )
    original: DatabaseUrl = Field(
        description="The original's database URL (postgresql+psycopg://user:password@host/db) as {secret: <id>}, "
        "or inline when it has no password."
    )
    cloud: DatabaseUrl = Field(
        description="The cloud copy's database URL as {secret: <id>}, or inline when it has no password."
    )
    tables: list[QualifiedTable] = Field(
        min_length=1,
        description="Tables replicated; each needs a primary key or REPLICA IDENTITY FULL / USING INDEX.",
    )
    verify: DataVerify = Field(
        default=DataVerify.ON_SNAPSHOTS,
        description="on-snapshots: the cutover's data_verify steps run right after the traffic switch, on the "
        "consistent snapshots of both databases taken when the cloud copy caught up, so the write-freeze window "
        "does not grow with the data; a mismatch then rolls back automatically and every write the cloud copy "
        "acknowledged is carried back. in-window: they run where the spec puts them, before the switch, with "
        "writes frozen (the window grows with the data).",
    )


# ------------------------------------------------------------------------------- secrets
class SecretSource(_Strict):
    """Where a named secret lives. Its value is never written in a spec."""

    source: Literal["env", "prefect"] = Field(description="An environment variable, or a Prefect Secret block.")
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=128)] = Field(
        description="The environment variable's or the Prefect Secret block's name."
    )
    description: Text | None = None


# -------------------------------------------------------------------------------- the spec
class Spec(_Strict):
    """One information system's cutover spec."""

    system: SystemInfo
    parties: Parties
    hosts: dict[Identifier, Host] = Field(default_factory=dict)
    secrets: dict[Identifier, SecretSource] = Field(
        default_factory=dict, description="Secrets the steps may reference as {secret: <id>}."
    )
    test_platform: TestPlatform | None = None
    cutover: CutoverPlan | None = None
    retention: Retention = Field(default_factory=Retention)
    rollback: RollbackPlan | None = None
    data: DataReplication | None = Field(
        default=None,
        description="Replication both ways of the system's database (PostgreSQL logical replication). Without it "
        "the rollback steps carry the data back.",
    )

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Spec:
        from cutover._spec_rules import check_rules

        problems = check_rules(self.model_dump(mode="json", by_alias=True))
        if problems:
            raise ValueError("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in problems))
        return self

    def digest(self, algorithm: Algorithm = "sm3") -> str:
        """Digest of the spec's canonical JSON form (what signatures bind to).

        A spec without ``data:`` (or without ``test_platform.prepare``, or with ``data.verify`` at its
        default, or a data_verify step without ``float_decimals``/``time_zone`` other than their defaults)
        digests as it did before the field existed, so signatures made then still verify."""
        canonical = self.model_dump(mode="json", by_alias=True)
        _drop_verify_defaults(canonical)
        if canonical.get("data") is None:
            del canonical["data"]
        elif canonical["data"].get("verify") == DataVerify.ON_SNAPSHOTS.value:
            del canonical["data"]["verify"]  # the default digests as before the field existed
        if canonical.get("test_platform") is not None and not canonical["test_platform"]["prepare"]:
            del canonical["test_platform"]["prepare"]
        return digest_json(canonical, algorithm)

    def approver_party(self, approver_id: str) -> str | None:
        """``"department"`` or ``"cloud_provider"`` for a rostered approver, else None."""
        for party in ("department", "cloud_provider"):
            if any(a.id == approver_id for a in getattr(self.parties, party).approvers):
                return party
        return None

    def approver(self, approver_id: str) -> Approver | None:
        """The rostered approver with this id, in either party, or None."""
        for party in ("department", "cloud_provider"):
            for approver in getattr(self.parties, party).approvers:
                if approver.id == approver_id:
                    return cast(Approver, approver)
        return None

    def all_steps(self) -> list[SshStep | HttpCheckStep | DataVerifyStep]:
        """Test-platform preparation, internal tests, cutover steps and rollback steps, in that order."""
        steps: list[SshStep | HttpCheckStep | DataVerifyStep] = []
        if self.test_platform:
            steps.extend(self.test_platform.prepare)
            steps.extend(self.test_platform.internal_tests)
        if self.cutover:
            steps.extend(self.cutover.steps)
        if self.rollback:
            steps.extend(self.rollback.steps)
        return steps

    def secret_names(self) -> set[str]:
        """Every secret the spec references."""
        return set(re.findall(r'"secret":\s*"([^"]+)"', self.model_dump_json(by_alias=True)))


_VERIFY_DEFAULTS = {"float_decimals": 6, "time_zone": "Asia/Shanghai"}  # fields added after specs were signed


def _drop_verify_defaults(node: object) -> None:
    """Remove data_verify fields left at their defaults from a dumped spec (in place)."""
    if isinstance(node, list):
        for item in node:
            _drop_verify_defaults(item)
    elif isinstance(node, dict):
        if node.get("kind") == "data_verify":
            for name, default in _VERIFY_DEFAULTS.items():
                if node.get(name) == default:
                    del node[name]
        for value in node.values():
            _drop_verify_defaults(value)
