"""Shared console helpers for the CLI: one Rich console, exit codes, error printing."""

from __future__ import annotations

import sys
from enum import IntEnum
from typing import NoReturn

import typer
from rich.console import Console

_WIDTH = None if sys.stdout.isatty() else 160  # logs and pipes get wide tables, not folded ones
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=_WIDTH)


class ExitCode(IntEnum):
    """Exit codes of the ``cutover`` command (documented in the README)."""

    OK = 0
    INVALID = 1  # a spec is invalid, a check failed, or the audit chain is broken
    USAGE = 2  # bad command line (typer's own code)
    REFUSED = 3  # the lifecycle, a lock or the retention window refused the action
    FAILED = 4  # the action ran and failed (cutover compensated, rollback incomplete, ...)
    CONFIG = 5  # settings cannot work (e.g. SM3 configured but unavailable, ledger unreachable)


def fail(message: str, code: ExitCode) -> NoReturn:
    """Print ``message`` to stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(int(code))
