"""Steps on hosts over SSH: pinned host keys, deadlines, streamed output, ledger records.

``run_ssh_step`` runs one spec step (its ``run``, ``undo`` or ``check`` command) on one host;
``fan_out`` runs it on many hosts with bounded concurrency and keeps every host's outcome. Each
execution is recorded in the ledger and the audit trail (:mod:`cutover.executions`) under its
idempotency key (run id, step key) and the digest of the step definition, before and after it
acts; a key that succeeded under the same definition is not run again (``replayed``), one whose
definition changed runs again as a new attempt. Connections are pooled per flow run, one per
host, and closed by :func:`close_connections` when the flow ends. Secrets in arguments or stdin
are resolved at the last moment and masked in every log line, ledger row and error.
"""

from __future__ import annotations

import logging
import shlex
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from prefect import task
from prefect.cache_policies import NO_CACHE

from cutover import audit, executions
from cutover.errors import CommandFailed, CommandTimedOut, HostError, HostKeyRefused
from cutover.ledger import AuditOutcome, Ledger, StepPhase, StepStatus
from cutover.secrets import redact, resolve
from cutover.settings import Settings, get_settings
from cutover.spec import SecretRef, Spec, SshStep
from tasks._ssh_client import CommandOutcome, HostConnection, HostTarget, Timeouts

__all__ = [
    "CommandName",
    "FanOutResult",
    "HostConnection",
    "HostResult",
    "StepContext",
    "Timeouts",
    "close_connections",
    "display_argv",
    "fan_out",
    "host_target",
    "pool_for",
    "run_ssh_step",
    "ssh_step_task",
    "step_key",
]

CommandName = Literal["run", "undo", "check"]


@dataclass(frozen=True)
class HostResult:
    """One host's outcome of one step."""

    host: str
    exit_status: int
    duration_s: float
    tail: list[str]
    replayed: bool = False  # True when the ledger already held this outcome and nothing ran


@dataclass
class FanOutResult:
    """Every host's result or error: a partial failure loses nothing."""

    results: dict[str, HostResult] = field(default_factory=dict)
    errors: dict[str, HostError] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class StepContext:
    """What a step needs to run: the spec, the ledger, the run it belongs to, the connections."""

    spec: Spec
    ledger: Ledger
    run_id: str
    pool: ConnectionPool
    actor: str = "cutover"
    settings: Settings = field(default_factory=get_settings)
    log: Callable[[str], None] | None = None


# ------------------------------------------------------------------------------ connections
class ConnectionPool:
    """One SSH connection per host, opened on first use and reused."""

    def __init__(self, timeouts: Timeouts | None = None) -> None:
        self.timeouts = timeouts or Timeouts()
        self._connections: dict[str, HostConnection] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, target: HostTarget) -> HostConnection:
        """The host's live connection, opening it if needed."""
        with self._guard:
            lock = self._locks.setdefault(target.name, threading.Lock())
        with lock:
            connection = self._connections.get(target.name)
            if connection is None or not connection.alive:
                connection = HostConnection.open(target, self.timeouts)
                self._connections[target.name] = connection
            return connection

    def close_all(self) -> None:
        """Close every connection."""
        with self._guard:
            connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            connection.close()


_POOLS: dict[str, ConnectionPool] = {}
_POOLS_GUARD = threading.Lock()


def pool_for(key: str) -> ConnectionPool:
    """The connection pool of a flow run (``key`` is its id)."""
    with _POOLS_GUARD:
        return _POOLS.setdefault(key, ConnectionPool())


def close_connections(key: str) -> None:
    """Close a flow run's connections (call when the flow ends)."""
    with _POOLS_GUARD:
        pool = _POOLS.pop(key, None)
    if pool is not None:
        pool.close_all()


# ------------------------------------------------------------------------------- one host
def host_target(spec: Spec, host_id: str, settings: Settings) -> HostTarget:
    """Resolve a spec host into connection parameters (the key secret read now)."""
    host = spec.hosts[host_id]
    return HostTarget(
        name=host_id,
        address=str(host.address),
        port=host.port,
        user=host.user,
        host_key=host.host_key or "known_hosts",
        key_file=host.key_file or settings.ssh_key_file,
        key_text=resolve(spec, host.key_secret) if host.key_secret else None,
        known_hosts_file=settings.known_hosts_file,
    )


def display_argv(argv: list[str | SecretRef]) -> list[str]:
    """The command as shown in logs, records and errors: secrets appear by name only."""
    return [f"{{secret:{a.secret}}}" if isinstance(a, SecretRef) else redact(a) for a in argv]


def step_key(step: SshStep, host_id: str, command: CommandName) -> str:
    """The idempotency key of one step's command on one host."""
    key = step.id if step.host == host_id else f"{step.id}@{host_id}"
    return key if command == "run" else f"{key}:{command}"


def run_ssh_step(
    ctx: StepContext,
    step: SshStep,
    host_id: str,
    *,
    command: CommandName = "run",
    phase: StepPhase = StepPhase.CUTOVER,
    key: str | None = None,
) -> HostResult:
    """Run one command of ``step`` on ``host_id``, recorded before and after; raise a HostError on failure.

    ``key`` overrides the idempotency key (default: the step id, with the host for a fan-out and
    the command for undo and check)."""
    argv = _command(step, command)
    key = key or step_key(step, host_id, command)
    shown = display_argv(argv)
    claim = executions.begin(
        ctx.ledger,
        ctx.run_id,
        key,
        step_digest=executions.definition_digest(step, ctx.ledger.digest),
        phase=phase,
        actor=ctx.actor,
        host=host_id,
        detail={"argv": shown},
    )
    if claim.done:
        _log(ctx, f"{key} on {host_id}: already done in this run (ledger), not repeated")
        return HostResult(host_id, claim.record.exit_status or 0, 0.0, claim.record.output_tail.splitlines(), True)
    try:
        outcome = _execute(ctx, step, host_id, argv, key)
    except HostError as exc:
        _record_failure(ctx, key, host_id, exc)
        raise
    return _finish(ctx, step, host_id, key, shown, outcome)


def _command(step: SshStep, command: CommandName) -> list[str | SecretRef]:
    argv = {"run": step.run, "undo": step.undo, "check": step.check}[command]
    if argv is None:
        raise ValueError(f"step {step.id} has no {command} command")
    return list(argv)


def _execute(ctx: StepContext, step: SshStep, host_id: str, argv: list[str | SecretRef], key: str) -> CommandOutcome:
    target = host_target(ctx.spec, host_id, ctx.settings)
    real = [resolve(ctx.spec, a).get_secret_value() if isinstance(a, SecretRef) else a for a in argv]
    stdin = resolve(ctx.spec, step.stdin).get_secret_value().encode() if step.stdin else None
    sudo = step.sudo if step.sudo is not None else ctx.spec.hosts[host_id].sudo
    connection = ctx.pool.get(target)
    return connection.run(
        real,
        deadline_s=step.timeout.total_seconds(),
        sudo=sudo,
        stdin=stdin,
        on_line=lambda stream, line: _log(ctx, f"[{host_id}] {key} {stream}: {line}"),
    )


def _finish(
    ctx: StepContext, step: SshStep, host_id: str, key: str, shown: list[str], outcome: CommandOutcome
) -> HostResult:
    tail = [redact(line) for line in outcome.tail]
    ok = outcome.exit_status == 0 and not outcome.timed_out
    executions.finish(
        ctx.ledger,
        ctx.run_id,
        key,
        actor=ctx.actor,
        status=StepStatus.SUCCEEDED if ok else StepStatus.FAILED,
        exit_status=outcome.exit_status,
        duration_s=outcome.duration_s,
        output_tail="\n".join(tail),
        detail={"timed_out": outcome.timed_out},
    )
    if outcome.timed_out:
        raise CommandTimedOut(
            f"step {key} on host {host_id} passed its {step.timeout.total_seconds():g} s deadline and was killed: "
            f"{shlex.join(shown)}. Raise the step's timeout in the spec if the work is legitimately slow."
        )
    if not ok:
        last = tail[-1] if tail else "(no output)"
        raise CommandFailed(
            f"step {key} on host {host_id} exited {outcome.exit_status}, expected 0: {shlex.join(shown)}; last output: "
            f"{last}. "
            "See the run log for the full output."
        )
    return HostResult(host_id, outcome.exit_status, outcome.duration_s, tail)


def _record_failure(ctx: StepContext, key: str, host_id: str, exc: HostError) -> None:
    message = redact(str(exc))
    if isinstance(exc, HostKeyRefused):
        with ctx.ledger.session() as session:
            audit.append(
                session,
                actor=ctx.actor,
                action="ssh.host_key_refused",
                object=f"host:{ctx.spec.system.id}/{host_id}",
                outcome=AuditOutcome.FAILED,
                detail={"run_id": ctx.run_id, "step": key, "reason": message},
            )
    if isinstance(exc, (CommandFailed, CommandTimedOut)):
        return  # already finished by _finish
    executions.finish(
        ctx.ledger,
        ctx.run_id,
        key,
        actor=ctx.actor,
        status=StepStatus.FAILED,
        output_tail=message,
        detail={"error": type(exc).__name__},
    )


def _log(ctx: StepContext, message: str) -> None:
    (ctx.log or _default_logger().info)(redact(message))


def _default_logger() -> logging.Logger:
    return logging.getLogger("cutover.ssh")


# -------------------------------------------------------------------------------- fan-out
def fan_out(
    ctx: StepContext, step: SshStep, *, command: CommandName = "run", phase: StepPhase = StepPhase.CUTOVER
) -> FanOutResult:
    """Run ``step`` on each of its hosts, at most ``step.concurrency`` at once; keep every outcome."""
    hosts = step.hosts or ([step.host] if step.host else [])
    result = FanOutResult()
    with ThreadPoolExecutor(max_workers=min(step.concurrency, max(len(hosts), 1))) as pool:
        futures = {h: pool.submit(run_ssh_step, ctx, step, h, command=command, phase=phase) for h in hosts}
    for host, future in futures.items():
        error = future.exception()
        if isinstance(error, HostError):
            result.errors[host] = error
        elif error is not None:
            raise error
        else:
            result.results[host] = future.result()
    return result


# ------------------------------------------------------------------------- Prefect tasks
@task(name="ssh-step", retries=0, cache_policy=NO_CACHE, log_prints=False)
def ssh_step_task(
    ctx: StepContext, step: SshStep, host_id: str, command: CommandName = "run", phase: StepPhase = StepPhase.CUTOVER
) -> HostResult:
    """Prefect task: one step's command on one host (see :func:`run_ssh_step`)."""
    from prefect.logging import get_run_logger

    logger = get_run_logger()
    ctx.log = logger.info
    return run_ssh_step(ctx, step, host_id, command=command, phase=phase)
