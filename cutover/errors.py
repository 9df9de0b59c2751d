"""The one exception tree of govcloud-cutover.

Every error the project raises on purpose is a :class:`CutoverError`. Lower-level errors
(paramiko, SQLAlchemy, httpx, subprocess, YAML) are translated at one boundary with
``raise ... from exc`` so callers catch these and nothing else::

    CutoverError
    ├── ConfigurationError          settings that cannot work (e.g. SM3 configured but missing)
    ├── UnknownSystem               no spec and no ledger entry for this system id
    ├── SpecError                   a cutover spec is invalid; carries every problem found
    ├── PlanTableInvalid            a plan table (attachment 2) to import has bad rows; names row and column
    ├── ExemptionRefused            an exemption ruling cannot be recorded (not an exempt system, ruled already)
    ├── LifecycleError
    │   └── IllegalTransition       a lifecycle step that may not follow the current state
    ├── LedgerError                 the ledger cannot be read or written
    │   ├── AuditChainBroken        the audit chain does not verify; names the first bad link
    │   └── PurgeRefused            audit rows younger than the retention floor
    ├── ConcurrencyRefused          another cutover / rollback of the system holds the lock
    ├── HostError                   a step on a host over SSH did not succeed
    │   ├── HostKeyRefused          unknown or changed host key: nothing was run
    │   ├── AuthenticationFailed    the host refused our key
    │   ├── HostUnreachable         nothing answered within the connect timeout
    │   ├── CommandTimedOut         the command passed its deadline and was killed
    │   └── CommandFailed           the command exited non-zero
    ├── TestPlatformError           stress or internal tests did not pass
    │   └── StressTestFailed        a threshold was missed or locust did not finish
    ├── SignOffError                the joint sign-off cannot proceed
    │   ├── SignatureInvalid        a submitted signature failed a check (asked again)
    │   ├── SignOffRejected         a party rejected; nothing is cut over
    │   └── SignOffExpired          the sign-off deadline passed
    ├── DataMismatch                the original and migrated databases differ
    │   └── SchemaMismatch          a table's columns differ between the two; refused before any row is read
    ├── ReplicationError            logical replication cannot be set up, turned, read or dropped
    │   ├── CatchUpTimedOut         the subscriber did not reach the publisher's position in time
    │   └── SnapshotLost            the snapshots taken at the catch-up are gone before the verification
    ├── HealthCheckFailed           a health check did not pass
    ├── PreflightFailed             a check before anything changes failed; names each failed item
    ├── TrialRunNotOver             not a failure: the trial run's minimum period has not elapsed;
    │                               the cutover flow comes back at ``until``
    ├── RetentionError              the retention window forbids the action (e.g. early decommission)
    └── RollbackIncomplete          an undo failed; names what is left to do by hand

Messages say what was wrong, where, and what to do. An error may carry ``detail``: the
JSON-ready facts behind the message (e.g. a data verification's per-table counts), recorded in the
ledger with the failed step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class CutoverError(Exception):
    """Root of every error govcloud-cutover raises on purpose; ``detail`` holds the facts behind it."""

    def __init__(self, *args: object, detail: Mapping[str, Any] | None = None) -> None:
        super().__init__(*args)
        self.detail: dict[str, Any] = dict(detail or {})


class ConfigurationError(CutoverError):
    """The settings cannot work as given."""


class UnknownSystem(CutoverError):
    """No spec and no ledger entry for this system id (a typo, or the wrong specs directory or ledger)."""


class UnknownApprover(CutoverError):
    """No approver with this id is enrolled in the ledger (a typo, or the wrong ledger)."""


@dataclass(frozen=True)
class SpecProblem:
    """One problem in one spec file: where it is and which rule it breaks."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        if not self.field:
            return f"{where}: {self.message}"
        joiner = " " if self.message.startswith("is ") else ": "
        return f"{where}: {self.field}{joiner}{self.message}"


class SpecError(CutoverError):
    """A cutover spec is invalid. ``problems`` lists every problem found in the file."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class TableProblem:
    """One problem in one cell of a plan table: the row as the spreadsheet numbers it, the column's header."""

    row: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.message}"


class PlanTableInvalid(CutoverError):
    """A plan table to import has bad rows; ``problems`` lists every one (nothing was written)."""

    def __init__(self, source: str, problems: list[TableProblem]) -> None:
        self.source = source
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:20])
        more = f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(
            f"{source}: {len(problems)} problem(s), nothing was imported: {shown}{more}. "
            "Correct the rows and import the file again"
        )


class ExemptionRefused(CutoverError):
    """An exemption ruling cannot be recorded: the system is not declared unable to migrate, or is ruled already."""


class LifecycleError(CutoverError):
    """The lifecycle refuses what was asked."""


class IllegalTransition(LifecycleError):
    """A lifecycle step that may not follow the system's current state."""


class LedgerError(CutoverError):
    """The ledger cannot be read or written."""


class AuditChainBroken(LedgerError):
    """The audit chain does not verify."""


class PurgeRefused(LedgerError):
    """Audit events younger than the retention floor may not be purged."""


class ConcurrencyRefused(CutoverError):
    """Another cutover or rollback of the same system is running."""


class HostError(CutoverError):
    """A step on a host over SSH did not succeed."""


class HostKeyRefused(HostError):
    """The host presented an unknown or changed key; nothing was run."""


class AuthenticationFailed(HostError):
    """The host refused our credentials."""


class HostUnreachable(HostError):
    """Nothing answered within the connect timeout."""


class CommandTimedOut(HostError):
    """The command passed its deadline and was killed."""


class CommandFailed(HostError):
    """The command exited with a non-zero status."""


class TestPlatformError(CutoverError):
    """Stress or internal tests on the test platform did not pass."""

    __test__ = False  # not a pytest test class


class StressTestFailed(TestPlatformError):
    """A stress-test threshold was missed or locust did not finish."""


class SignOffError(CutoverError):
    """The joint sign-off cannot proceed."""


class SignatureInvalid(SignOffError):
    """A submitted signature failed a check; the party is asked again."""


class SignOffRejected(SignOffError):
    """A party rejected the report; nothing is cut over."""


class SignOffExpired(SignOffError):
    """The sign-off deadline passed before both parties signed."""


class DataMismatch(CutoverError):
    """The original and the migrated database differ."""


class SchemaMismatch(DataMismatch):
    """A table's columns do not match between the two databases; no row was read."""


class ReplicationError(CutoverError):
    """Logical replication between the original and the cloud copy cannot be set up, turned, read or dropped."""


class CatchUpTimedOut(ReplicationError):
    """The subscriber did not reach the publisher's WAL position in time; names the subscription and the lag."""


class SnapshotLost(ReplicationError):
    """The consistent snapshots exported at the catch-up are gone (their session ended: a crash or a re-run)
    before the verification on them; the cutover rolls back instead of verifying live, moving data."""


class HealthCheckFailed(CutoverError):
    """A health check did not pass."""


class RetentionError(CutoverError):
    """The retention window forbids the action."""


class TrialRunNotOver(CutoverError):
    """The spec's minimum trial-run period has not elapsed (not a failure: the flow comes back at ``until``)."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"the trial run lasts until {until:%Y-%m-%d %H:%M:%S} UTC")
        self.until = until


class RollbackIncomplete(CutoverError):
    """An undo failed; the message names what is left to do by hand."""


class PreflightFailed(CutoverError):
    """A preflight check failed before anything changed; the message names each failed item and what to do."""
