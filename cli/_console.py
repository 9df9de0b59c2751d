"""Shared console helpers for the CLI: one Rich console, the exit codes, and the one error boundary.

Every :class:`~cutover.errors.CutoverError` that leaves a command, and the obvious low-level errors
(the Prefect API or the ledger's database unreachable, settings that do not parse, a bad command
line), stop at :class:`ErrorBoundary`, the application's group: it prints one redacted line
``error: <message>`` to stderr and exits with the code :data:`EXIT_CODES` gives the error (the
README's table). Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import IntEnum
from types import MappingProxyType
from typing import Any, NoReturn

import pydantic
import sqlalchemy.exc
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from cutover import errors
from cutover.secrets import redact

_WIDTH = None if sys.stdout.isatty() else 160  # logs and pipes get wide tables, not folded ones
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=_WIDTH)


class ExitCode(IntEnum):
    """Exit codes of the ``cutover`` command (documented in the README)."""

    OK = 0
    INVALID = 1  # an unknown system id, an invalid spec, a failed check, or a broken audit chain
    USAGE = 2  # bad command line (typer's own code)
    REFUSED = 3  # the lifecycle, a lock, the retention window or a signature check refused the action
    FAILED = 4  # the action ran and failed (cutover compensated, rollback incomplete, ...)
    CONFIG = 5  # settings cannot work (e.g. SM3 configured but unavailable, ledger unreachable)


#: The exit code of every error in :mod:`cutover.errors`, each named (a test checks none is missing).
EXIT_CODES: Mapping[type[errors.CutoverError], ExitCode] = MappingProxyType(
    {
        errors.CutoverError: ExitCode.FAILED,  # raised bare only when a run ended without its outcome
        errors.UnknownSystem: ExitCode.INVALID,
        errors.UnknownApprover: ExitCode.INVALID,
        errors.SpecError: ExitCode.INVALID,
        errors.PlanTableInvalid: ExitCode.INVALID,
        errors.ExemptionRefused: ExitCode.REFUSED,
        errors.AuditChainBroken: ExitCode.INVALID,
        errors.DataMismatch: ExitCode.INVALID,
        errors.SchemaMismatch: ExitCode.INVALID,  # the tables' columns differ: refused before any row is read
        errors.ReplicationError: ExitCode.FAILED,  # replication could not be set up, turned, read or dropped
        errors.CatchUpTimedOut: ExitCode.FAILED,
        errors.SnapshotLost: ExitCode.FAILED,  # the switch's snapshots are gone before the verification: rolled back
        errors.HealthCheckFailed: ExitCode.INVALID,
        errors.PreflightFailed: ExitCode.INVALID,
        errors.LifecycleError: ExitCode.REFUSED,
        errors.IllegalTransition: ExitCode.REFUSED,
        errors.ConcurrencyRefused: ExitCode.REFUSED,
        errors.RetentionError: ExitCode.REFUSED,
        errors.PurgeRefused: ExitCode.REFUSED,
        errors.TrialRunNotOver: ExitCode.REFUSED,
        errors.SignOffError: ExitCode.REFUSED,
        errors.SignatureInvalid: ExitCode.REFUSED,
        errors.SignOffRejected: ExitCode.REFUSED,
        errors.SignOffExpired: ExitCode.REFUSED,
        errors.HostError: ExitCode.FAILED,
        errors.HostKeyRefused: ExitCode.FAILED,
        errors.AuthenticationFailed: ExitCode.FAILED,
        errors.HostUnreachable: ExitCode.FAILED,
        errors.CommandTimedOut: ExitCode.FAILED,
        errors.CommandFailed: ExitCode.FAILED,
        errors.TestPlatformError: ExitCode.FAILED,
        errors.StressTestFailed: ExitCode.FAILED,
        errors.RollbackIncomplete: ExitCode.FAILED,
        errors.ConfigurationError: ExitCode.CONFIG,
        errors.LedgerError: ExitCode.CONFIG,
    }
)


def exit_code_for(error: errors.CutoverError) -> ExitCode:
    """The exit code of ``error``: its class's in :data:`EXIT_CODES`, else its nearest base's."""
    return next(EXIT_CODES[cls] for cls in type(error).__mro__ if cls in EXIT_CODES)


def fail(message: str, code: ExitCode) -> NoReturn:
    """Print ``message`` to stderr as one redacted line ``error: ...`` and exit with ``code``."""
    lines = (line.strip() for line in redact(message).splitlines())
    err_console.print(f"[bold red]error:[/] {escape('; '.join(line for line in lines if line))}", soft_wrap=True)
    raise typer.Exit(int(code))


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn a project error (or a translated low-level one) raised in the block into :func:`fail`."""
    try:
        yield
    except typer.TyperException as exc:
        if exc.exit_code != ExitCode.USAGE or type(exc).__name__ == "NoArgsIsHelpError":  # typer's own test
            raise
        fail(_usage(exc), ExitCode.USAGE)
    except Exception as exc:  # what _translated does not know is raised again, unchanged
        translated = _translated(exc)
        if translated is None:
            raise
        fail(*translated)


class ErrorBoundary(TyperGroup):
    """The ``cutover`` group: parsing and running every command happen inside :func:`one_line_errors`."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        with one_line_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        with one_line_errors():
            return super().invoke(ctx)


def _is_http_error(exc: object) -> bool:
    """Whether ``exc`` is one of httpx's errors, without importing httpx (a tenth of a second) at start:
    until something that talks to the Prefect API has imported it, none of its errors can exist."""
    httpx = sys.modules.get("httpx")
    return httpx is not None and isinstance(exc, httpx.HTTPError)


def _translated(exc: Exception) -> tuple[str, ExitCode] | None:
    if isinstance(exc, errors.CutoverError):
        return str(exc), exit_code_for(exc)
    if _is_http_error(exc):
        return _prefect_api(exc), ExitCode.CONFIG
    if isinstance(exc, sqlalchemy.exc.SQLAlchemyError):
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return f"the ledger's database refused: {reason}; check CUTOVER_DATABASE_URL", ExitCode.CONFIG
    if isinstance(exc, pydantic.ValidationError) and exc.title == "Settings":
        problems = (f"CUTOVER_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        return f"invalid settings: {'; '.join(problems)}", ExitCode.CONFIG
    return None


def require_prefect_api(purpose: str) -> None:
    """Exit 5, saying how to start one, unless ``PREFECT_API_URL`` names a Prefect server that answers.

    Without the setting Prefect's client would start a temporary server of its own, which is never
    what an operator means; ``purpose`` completes "there is no Prefect server to ...".
    """
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        fail(
            f"PREFECT_API_URL is not set, so there is no Prefect server to {purpose}; start one "
            "(`prefect server start`) and set PREFECT_API_URL to its API, e.g. http://127.0.0.1:4200/api",
            ExitCode.CONFIG,
        )
    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if _is_http_error(problem):
        fail(_prefect_api(problem), ExitCode.CONFIG)
    if problem is not None:
        fail(f"the Prefect API at {PREFECT_API_URL.value()} did not answer: {problem}", ExitCode.CONFIG)


def _prefect_api(exc: object) -> str:
    import httpx
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value() or "(PREFECT_API_URL is not set)"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"the Prefect API at {url} refused the request: {exc}"
    return (
        f"the Prefect API at {url} did not answer ({type(exc).__name__}: {exc}); start the server "
        "(`prefect server start`) and set PREFECT_API_URL to its API, e.g. http://127.0.0.1:4200/api"
    )


def _usage(exc: typer.TyperException) -> str:
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return exc.format_message()
    return f"{exc.format_message()} ({ctx.get_usage()}; see `{ctx.command_path} --help`)"
