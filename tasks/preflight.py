"""Preflight: before anything changes, check that a system's cutover can run at all.

Checked, several at once (bounded) and each within a timeout:

- every host of the spec answers over SSH with its pinned host key and accepts our key;
- every program a step runs exists on its host: the ``run``, ``undo`` and ``check`` commands of
  the internal tests, the cutover and rollback steps and the declared readiness checks, looked up
  with ``command -v`` as the step would run it (same user, with sudo when the step uses it);
- every secret the spec declares or references resolves;
- every database of a ``data_verify`` step connects (named by its secret, never by its URL);
- every health URL of the cutover and the rollback answers;
- with ``data.replication``: both databases connect with wal_level=logical, enough slots and senders,
  a role that may subscribe, and every replicated table present with a primary key or a replica
  identity (each table without one named) — :func:`tasks.replication.check_replicable`;
- the retained original's readiness checks pass (:mod:`tasks.readiness`).

Nothing here changes a host or a database: the commands are lookups, the databases get a
``SELECT 1``. A failed item never raises; :meth:`PreflightReport.raise_for_failures` raises one
:class:`~cutover.errors.PreflightFailed` naming every failed item and what to do about it.

Public surface::

    run_preflight(spec, settings, *, limits=None) -> PreflightReport      (also preflight_task)
    PreflightReport.ok / .failures / .summary() / .raise_for_failures() / .as_detail()
    PreflightItem (kind, target, outcome, detail, duration_s, host, advice), CheckKind, Outcome
    record_preflight(ledger, report, *, actor, detail)                    the audit event
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

import httpx
import paramiko
from prefect import task
from prefect.cache_policies import NO_CACHE

from cutover import audit
from cutover.errors import CutoverError, HostError, HostKeyRefused, PreflightFailed
from cutover.ledger import AuditOutcome, Ledger
from cutover.secrets import redact, resolve
from cutover.settings import Settings
from cutover.spec import DataVerifyStep, HttpCheckStep, SecretRef, Spec, SshStep
from tasks._db_probe import connect_database
from tasks.health import probe
from tasks.readiness import check_one, readiness_checks
from tasks.replication import check_replicable
from tasks.ssh import ConnectionPool, Timeouts, host_target

__all__ = [
    "CheckKind",
    "Outcome",
    "PreflightItem",
    "PreflightLimits",
    "PreflightReport",
    "preflight_task",
    "record_preflight",
    "run_preflight",
]

_POLL_S = 0.25
#: The remote lookup: the program arrives as "$1", never inside the script.
_LOOKUP = 'command -v "$1"'


class CheckKind(StrEnum):
    """What a preflight item checks."""

    HOST = "host"
    PROGRAM = "program"
    SECRET = "secret"  # noqa: S105  # the kind of check, not a password
    DATABASE = "database"
    URL = "url"
    REPLICATION = "replication"
    READINESS = "readiness"


class Outcome(StrEnum):
    """How a preflight item ended: not checked when what it needs (its host, its secret) failed."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_CHECKED = "not_checked"


@dataclass(frozen=True)
class PreflightLimits:
    """How many checks run at once and how long each may take."""

    concurrency: int = 16
    timeout_s: float = 20.0


@dataclass(frozen=True)
class PreflightItem:
    """One check: what it checked, how it ended, what it saw, how long it took, what to do."""

    kind: CheckKind
    target: str  # host id, program, secret name, database's secret name, URL, readiness check id
    outcome: Outcome
    detail: str
    duration_s: float
    host: str | None = None  # the host of a program check
    advice: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    def label(self) -> str:
        """The item as a person names it: ``program appctl on host legacy``."""
        if self.kind is CheckKind.PROGRAM:
            return f"program {self.target} on host {self.host}"
        return f"{self.kind.value} {self.target}"

    def describe(self) -> str:
        return f"{self.label()}: {self.outcome.value.replace('_', ' ')} ({self.detail})"

    def as_detail(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "target": self.target,
            "host": self.host,
            "outcome": self.outcome.value,
            "detail": self.detail,
            "duration_s": round(self.duration_s, 3),
        }


@dataclass(frozen=True)
class PreflightReport:
    """Every item of one preflight of one system."""

    system_id: str
    items: tuple[PreflightItem, ...]
    duration_s: float

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[PreflightItem]:
        return [item for item in self.items if item.outcome is Outcome.FAILED]

    def summary(self) -> str:
        if self.ok:
            return f"preflight of {self.system_id}: all {len(self.items)} checks passed"
        names = ", ".join(item.label() for item in self.failures)
        return f"preflight of {self.system_id}: {len(self.failures)} of {len(self.items)} checks failed: {names}"

    def raise_for_failures(self) -> None:
        """Raise PreflightFailed naming each failed item and what to do; nothing was changed."""
        if self.ok:
            return
        lines = [
            f"- {item.label()}: {item.detail}" + (f"; {item.advice}" if item.advice else "") for item in self.failures
        ]
        raise PreflightFailed(
            f"{self.summary()}. Nothing was changed.\n"
            + "\n".join(lines)
            + f"\nFix these, check again with `cutover preflight {self.system_id}`, then start the run again.",
            detail=self.as_detail(),
        )

    def as_detail(self) -> dict[str, Any]:
        """JSON-ready, for the audit trail (details are redacted: no secret value, no database URL)."""
        return {"ok": self.ok, "duration_s": round(self.duration_s, 3), "items": [i.as_detail() for i in self.items]}


def run_preflight(spec: Spec, settings: Settings, *, limits: PreflightLimits | None = None) -> PreflightReport:
    """Run every preflight check of ``spec``; changes nothing and never raises for a failed check."""
    limits = limits or PreflightLimits()
    started = time.monotonic()
    scope = _Scope(spec, settings, limits, ConnectionPool(_ssh_timeouts(limits.timeout_s)))
    try:
        first = _run_all(
            [
                *(_host_check(scope, host) for host in spec.hosts),
                *(_secret_check(scope, name) for name in _secret_names(spec)),
                *(_database_check(scope, name) for name in _database_secrets(spec)),
                *(_url_check(scope, check) for check in _health_checks(spec)),
                *_replication_checks(scope),
                *(_readiness_check(scope, check) for check in readiness_checks(spec)),
            ],
            limits,
        )
        answered = {item.target for item in first if item.kind is CheckKind.HOST and item.passed}
        programs = _run_all(_program_checks(scope, answered), limits)
    finally:
        scope.connections.close_all()
    order = list(CheckKind)
    items = sorted([*first, *programs], key=lambda item: order.index(item.kind))
    return PreflightReport(spec.system.id, tuple(items), time.monotonic() - started)


@task(
    name="preflight",
    retries=0,
    retry_delay_seconds=0,
    timeout_seconds=600,
    cache_policy=NO_CACHE,
    persist_result=False,
    log_prints=False,
)
def preflight_task(spec: Spec, settings: Settings, limits: PreflightLimits | None = None) -> PreflightReport:
    """Prefect task: :func:`run_preflight`, shown as its own task run in the Prefect UI."""
    return run_preflight(spec, settings, limits=limits)


def record_preflight(ledger: Ledger, report: PreflightReport, *, actor: str, detail: dict[str, Any]) -> None:
    """Append ``preflight.passed`` or ``preflight.failed`` with every item (and ``detail``) to the audit trail."""
    with ledger.session() as session:
        audit.append(
            session,
            actor=actor,
            action="preflight.passed" if report.ok else "preflight.failed",
            object=f"system:{report.system_id}",
            outcome=AuditOutcome.SUCCEEDED if report.ok else AuditOutcome.FAILED,
            detail={**detail, **report.as_detail()},
        )


# ------------------------------------------------------------------------- running checks
@dataclass(frozen=True)
class _Scope:
    """What every check of one preflight shares: the spec, the settings, the limits, the SSH connections.

    Commands on one host run one at a time on its one connection (as steps do): paramiko's
    transport loses the connection under many channels opened at once from several threads.
    """

    spec: Spec
    settings: Settings
    limits: PreflightLimits
    connections: ConnectionPool
    _turns: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def turn(self, host: str) -> threading.Lock:
        """The lock a command on ``host`` holds while it runs."""
        with self._guard:
            return self._turns.setdefault(host, threading.Lock())


@dataclass(frozen=True)
class _Found:
    outcome: Outcome
    detail: str
    advice: str = ""


@dataclass(frozen=True)
class _Check:
    kind: CheckKind
    target: str
    run: Callable[[], _Found]
    host: str | None = None
    timeout_advice: str = "check that it answers at all; a slow answer is a problem of its own"


def _run_all(checks: Sequence[_Check], limits: PreflightLimits) -> list[PreflightItem]:
    """Run ``checks`` at most ``limits.concurrency`` at once; one past its timeout is failed and left behind."""
    if not checks:
        return []
    started: dict[int, float] = {}
    pool = ThreadPoolExecutor(max_workers=min(limits.concurrency, len(checks)), thread_name_prefix="preflight")
    try:
        futures = {pool.submit(_timed, check, i, started): i for i, check in enumerate(checks)}
        items = _collect(futures, checks, started, limits)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return [items[i] for i in range(len(checks))]


def _timed(check: _Check, index: int, started: dict[int, float]) -> PreflightItem:
    started[index] = begun = time.monotonic()
    try:
        found = check.run()
    except CutoverError as exc:  # a translated error: a host's key secret missing, a settings problem
        found = _Found(Outcome.FAILED, str(exc))
    return PreflightItem(
        check.kind,
        check.target,
        found.outcome,
        redact(found.detail),
        time.monotonic() - begun,
        check.host,
        found.advice,
    )


def _collect(
    futures: dict[Future[PreflightItem], int],
    checks: Sequence[_Check],
    started: dict[int, float],
    limits: PreflightLimits,
) -> dict[int, PreflightItem]:
    items: dict[int, PreflightItem] = {}
    waves = math.ceil(len(checks) / limits.concurrency) + 1
    backstop = time.monotonic() + limits.timeout_s * waves  # even checks that never got a worker end
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_COMPLETED)
        for future in done:
            items[futures[future]] = future.result()
        now = time.monotonic()
        for future in list(pending):
            index = futures[future]
            begun = started.get(index)
            if now > backstop or (begun is not None and now - begun > limits.timeout_s):
                items[index] = _timed_out(checks[index], limits)
                pending.discard(future)
    return items


def _timed_out(check: _Check, limits: PreflightLimits) -> PreflightItem:
    detail = f"no answer within {limits.timeout_s:g} s"
    return PreflightItem(
        check.kind, check.target, Outcome.FAILED, detail, limits.timeout_s, check.host, check.timeout_advice
    )


def _ssh_timeouts(limit_s: float) -> Timeouts:
    return Timeouts(connect=min(5.0, limit_s), banner=min(10.0, limit_s), auth=min(10.0, limit_s))


# ------------------------------------------------------------------------------- hosts
def _host_check(scope: _Scope, host: str) -> _Check:
    def run() -> _Found:
        target = host_target(scope.spec, host, scope.settings)
        try:
            scope.connections.get(target)
        except HostKeyRefused as exc:
            return _wrong_key(host, exc)
        except HostError as exc:
            return _Found(Outcome.FAILED, str(exc))
        where = f"{target.user}@{target.address}:{target.port}"
        return _Found(Outcome.PASSED, f"{where} answered with its pinned host key and accepted our key")

    return _Check(CheckKind.HOST, host, run, timeout_advice="check that the host is up and sshd answers")


def _wrong_key(host: str, exc: HostKeyRefused) -> _Found:
    pinned = " or ".join(exc.detail.get("pinned") or []) or "no key (the known_hosts file has no entry for it)"
    presented = exc.detail.get("presented", "an unknown key")
    return _Found(
        Outcome.FAILED,
        f"presented host key {presented}, but the spec pins {pinned}; nothing was run on it",
        f"if {host} was rebuilt, verify its new key out of band and update hosts.{host}.host_key in the spec; "
        "otherwise treat it as a possible interception and stop",
    )


# ---------------------------------------------------------------------------- programs
@dataclass(frozen=True)
class _Program:
    host: str
    program: str
    sudo: bool


def _program_uses(spec: Spec) -> dict[_Program, list[str]]:
    """Each program run on each host (as the step runs it), with the step commands that run it."""
    uses: dict[_Program, list[str]] = {}
    readiness = [s for s in spec.retention.watch.readiness if isinstance(s, SshStep)]
    steps = [s for s in spec.all_steps() if isinstance(s, SshStep)]
    for step, readonly in [*((s, False) for s in steps), *((s, True) for s in readiness)]:
        for command, argv in (("run", step.run), ("undo", step.undo), ("check", step.check)):
            if not argv or not isinstance(argv[0], str):
                continue
            for host in [step.host] if step.host else step.hosts or []:
                sudo = False if readonly else step.sudo if step.sudo is not None else spec.hosts[host].sudo
                key = _Program(host, argv[0], sudo)
                uses.setdefault(key, []).append(step.id if command == "run" else f"{step.id}:{command}")
    return uses


def _program_checks(scope: _Scope, answered: set[str]) -> list[_Check]:
    checks = []
    for use, steps in _program_uses(scope.spec).items():
        name = f"{use.program} (sudo)" if use.sudo else use.program
        run = (
            _lookup(scope, use, steps)
            if use.host in answered
            else _not_checked(f"host {use.host} failed its own check")
        )
        checks.append(_Check(CheckKind.PROGRAM, name, run, host=use.host))
    return checks


def _lookup(scope: _Scope, use: _Program, steps: list[str]) -> Callable[[], _Found]:
    def run() -> _Found:
        target = host_target(scope.spec, use.host, scope.settings)
        argv = ["sh", "-c", _LOOKUP, "sh", use.program]
        try:
            with scope.turn(use.host):
                outcome = scope.connections.get(target).run(argv, deadline_s=scope.limits.timeout_s, sudo=use.sudo)
        except HostError as exc:
            return _Found(Outcome.FAILED, str(exc))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            return _Found(Outcome.FAILED, f"host {use.host} dropped the connection: {type(exc).__name__} {exc}")
        if outcome.exit_status == 0 and not outcome.timed_out:  # the exit status decides, not the output
            return _Found(Outcome.PASSED, f"found: {outcome.tail[-1]}" if outcome.tail else "found")
        said = f": {outcome.tail[-1]}" if outcome.tail else ""
        how = f"as {target.user}" + (" with sudo" if use.sudo else "")
        return _Found(
            Outcome.FAILED,
            f"not found on host {use.host} ({how}; `command -v` exited {outcome.exit_status}{said})",
            f"install it on {use.host}, or fix the command of step {', '.join(steps)} in the spec",
        )

    return run


def _not_checked(why: str) -> Callable[[], _Found]:
    return lambda: _Found(Outcome.NOT_CHECKED, why)


# ----------------------------------------------------------------------------- secrets
def _secret_names(spec: Spec) -> list[str]:
    return sorted(set(spec.secrets) | spec.secret_names())


def _secret_check(scope: _Scope, name: str) -> _Check:
    def run() -> _Found:
        try:
            resolve(scope.spec, SecretRef(secret=name))
        except httpx.HTTPError as exc:
            return _Found(Outcome.FAILED, f"the Prefect API did not answer while reading it: {exc}")
        source = scope.spec.secrets[name]
        kind = "environment variable" if source.source == "env" else "Prefect Secret block"
        return _Found(Outcome.PASSED, f"resolved from the {kind} {source.name}")

    return _Check(CheckKind.SECRET, name, run)


# --------------------------------------------------------------------------- databases
def _database_secrets(spec: Spec) -> list[str]:
    names: list[str] = []
    for step in spec.all_steps():
        if isinstance(step, DataVerifyStep):
            refs = [ref for ref in (step.source, step.target) if isinstance(ref, SecretRef)]
            names += [ref.secret for ref in refs if ref.secret not in names]
    return names


def _database_check(scope: _Scope, name: str) -> _Check:
    def run() -> _Found:
        try:
            url = resolve(scope.spec, SecretRef(secret=name))
        except CutoverError:
            return _Found(Outcome.NOT_CHECKED, f"its secret {name} did not resolve")
        problem = connect_database(url, scope.limits.timeout_s)
        if problem is not None:
            return _Found(
                Outcome.FAILED,
                f"the database in secret {name} did not connect: {problem}",
                f"check that the database is up and the URL in secret {name} is right",
            )
        return _Found(Outcome.PASSED, f"the database in secret {name} connected")

    return _Check(CheckKind.DATABASE, name, run, timeout_advice="check that the database is up and reachable")


# -------------------------------------------------------------------------------- URLs
def _health_checks(spec: Spec) -> list[HttpCheckStep]:
    checks = [*(spec.cutover.health if spec.cutover else []), *(spec.rollback.health if spec.rollback else [])]
    unique: dict[tuple[str, str], HttpCheckStep] = {}
    for check in checks:
        unique.setdefault((check.method, str(check.url)), check)
    return list(unique.values())


def _url_check(scope: _Scope, check: HttpCheckStep) -> _Check:
    def run() -> _Found:
        bounded = check.model_copy(update={"timeout": min(check.timeout, timedelta(seconds=scope.limits.timeout_s))})
        seen = probe(bounded)
        if seen.status is None:
            return _Found(
                Outcome.FAILED,
                seen.error or f"expected HTTP {check.expect_status}; got no answer",
                f"check that the service behind it is up and the URL of health check {check.id} is right",
            )
        expected = "" if seen.passed else f"; the check expects HTTP {check.expect_status} after the cutover"
        return _Found(Outcome.PASSED, f"HTTP {seen.status} in {seen.latency_ms:.0f} ms{expected}")

    return _Check(CheckKind.URL, str(check.url), run)


# ------------------------------------------------------------------------- replication
def _replication_checks(scope: _Scope) -> list[_Check]:
    data = scope.spec.data
    if data is None:
        return []
    sides = [("the original", data.original), ("the cloud copy", data.cloud)]
    return [_replication_check(scope, role, ref, data.tables) for role, ref in sides]


def _replication_check(scope: _Scope, role: str, ref: SecretRef | str, tables: list[str]) -> _Check:
    name = ref.secret if isinstance(ref, SecretRef) else role
    target = f"{role} (database {'in secret ' + name if isinstance(ref, SecretRef) else 'written inline'})"

    def run() -> _Found:
        try:
            url = resolve(scope.spec, ref)
        except CutoverError:
            return _Found(Outcome.NOT_CHECKED, f"its secret {name} did not resolve")
        problems = check_replicable(url, tables, role=role)  # unreachable: ReplicationError, failed by _timed
        if problems:
            return _Found(
                Outcome.FAILED,
                "; ".join(map(str, problems)),
                "logical replication needs every item fixed on both sides before the cutover starts",
            )
        return _Found(Outcome.PASSED, f"wal_level=logical, may subscribe, all {len(tables)} tables replicable")

    return _Check(CheckKind.REPLICATION, target, run, timeout_advice="check that the database is up and reachable")


# --------------------------------------------------------------------------- readiness
def _readiness_check(scope: _Scope, check: SshStep | HttpCheckStep) -> _Check:
    def run() -> _Found:
        seen = check_one(scope.spec, check, scope.settings)
        if seen.passed:
            return _Found(Outcome.PASSED, seen.detail)
        return _Found(
            Outcome.FAILED,
            seen.detail,
            "the original must be able to take the traffic back before anything is cut over; make it ready first",
        )

    return _Check(CheckKind.READINESS, check.id, run)
