"""Is the retained original ready to take the traffic back? A cheap, read-only check per system.

The original is ready when every host its rollback steps use answers over SSH (pinned host key,
our key accepted) and runs a harmless command. A spec may declare its own readiness commands
(``retention.watch.readiness``: read-only ssh steps such as ``appctl status`` on the legacy host,
or HTTP checks of the original); when it does, those run instead. Nothing here changes a host.

The retention watch runs these (``flows/_watch_ready.py``), and so does the preflight before a
cutover (:mod:`tasks.preflight`).

With ``data.replication`` the watch also checks the reverse replication (:func:`replication_readiness`):
the original is ready only while it subscribes to the cloud copy and the subscription applies. A
schema change on one side that breaks it, a disabled subscription, a missing or inactive slot fail
the check (never silent staleness); the slot's lag in bytes and seconds is in the detail. Not in the
preflight: before the cutover the original subscribes to nothing yet.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass

import paramiko

from cutover.errors import CutoverError, HostError
from cutover.secrets import redact, resolve
from cutover.settings import Settings
from cutover.spec import HttpCheckStep, Spec, SshStep
from tasks import replication
from tasks._ssh_client import CommandOutcome
from tasks.health import probe
from tasks.ssh import HostConnection, Timeouts, host_target

__all__ = ["READY_PREFIX", "REPLICATION_CHECK", "Readiness", "check_one", "readiness_checks", "replication_readiness"]

READY_PREFIX = "ready-"
REPLICATION_CHECK = f"{READY_PREFIX}replication"
_TIMEOUTS = Timeouts(connect=3.0, banner=5.0, auth=5.0)
_DEADLINE_S = 10.0


@dataclass(frozen=True)
class Readiness:
    """One readiness check's result."""

    check: str
    passed: bool
    latency_ms: float
    detail: str

    def describe(self) -> str:
        return f"{self.check}: {'ready' if self.passed else 'NOT ready'} ({self.detail})"


def readiness_checks(spec: Spec) -> list[SshStep | HttpCheckStep]:
    """The spec's declared readiness checks, or one ``true`` over SSH per rollback host."""
    declared: Sequence[SshStep | HttpCheckStep] | None = getattr(spec.retention.watch, "readiness", None)
    if declared:
        return list(declared)
    hosts: list[str] = []
    for step in spec.rollback.steps if spec.rollback else []:
        if isinstance(step, SshStep):
            hosts += [h for h in ([step.host] if step.host else step.hosts or []) if h not in hosts]
    return [
        SshStep(
            kind="ssh",
            id=f"{READY_PREFIX}{host}",
            name=f"{host} reachable",
            host=host,
            run=["true"],
            changes_state=False,
        )
        for host in hosts
    ]


def check_one(spec: Spec, check: SshStep | HttpCheckStep, settings: Settings) -> Readiness:
    """Run one readiness check of ``spec``; never raises for an original that is not ready."""
    name = check.id if check.id.startswith(READY_PREFIX) else f"{READY_PREFIX}{check.id}"
    if isinstance(check, HttpCheckStep):
        seen = probe(check)
        return Readiness(name, seen.passed, seen.latency_ms, seen.describe())
    return _ssh(spec, check, name, settings)


def _ssh(spec: Spec, check: SshStep, name: str, settings: Settings) -> Readiness:
    started = time.perf_counter()
    host = check.host or (check.hosts or [""])[0]
    argv = [a for a in check.run if isinstance(a, str)]
    try:
        connection = HostConnection.open(host_target(spec, host, settings), _TIMEOUTS)
        try:
            outcome = connection.run(argv, deadline_s=_DEADLINE_S)
        finally:
            connection.close()
    except (HostError, OSError, paramiko.SSHException) as exc:
        return Readiness(name, False, _ms(started), f"host {host} not reachable over SSH: {exc}")
    passed = outcome.exit_status == 0 and not outcome.timed_out
    return Readiness(name, passed, _ms(started), _ssh_detail(host, argv, outcome))


def _ssh_detail(host: str, argv: list[str], outcome: CommandOutcome) -> str:
    command = f"host {host}: `{shlex.join(argv)}`"
    if outcome.timed_out:
        return f"{command} expected to exit 0 within {_DEADLINE_S:g} s; it did not finish"
    if outcome.exit_status == 0:
        return f"{command} exited 0"
    said = f"; last output: {redact(outcome.tail[-1])}" if outcome.tail else ""
    return f"{command} exited {outcome.exit_status}, expected 0{said}"


def replication_readiness(spec: Spec) -> Readiness | None:
    """The reverse replication's check (None without ``data.replication``); never raises."""
    if spec.data is None:
        return None
    started = time.perf_counter()
    try:
        original, cloud = resolve(spec, spec.data.original), resolve(spec, spec.data.cloud)
        seen = replication.status(spec.system.id, original, cloud, spec.data.tables)
    except CutoverError as exc:
        return Readiness(REPLICATION_CHECK, False, _ms(started), redact(f"replication status unreadable: {exc}"))
    lag = f"lag {seen.lag_bytes if seen.lag_bytes is not None else '?'} bytes"
    lag += f", {seen.lag_s:.1f} s" if seen.lag_s is not None else ""
    slot = "" if seen.slot_active is not False else "; its slot is inactive (no walsender holds it)"
    detail = f"{seen.direction.value} by {seen.subscription or 'no subscription'}, {lag}{slot}"
    problems = list(seen.problems)
    if seen.direction is not replication.Direction.REVERSE:
        problems.append(f"the original does not follow the cloud copy (direction: {seen.direction.value})")
    if seen.slot_active is False:
        problems.append("the reverse slot is inactive: the original's subscription is not receiving")
    passed = not problems
    return Readiness(REPLICATION_CHECK, passed, _ms(started), redact(detail + "".join(f"; {p}" for p in problems)))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
