"""The ``cutover`` command: the top layer, above the flows. Nothing below imports it.

Its commands start the flows through their deployments (or, where no Prefect server answers, run
the same work in this process) and read the ledger. Exit codes are :class:`cli._console.ExitCode`.
"""

from __future__ import annotations

import typer

from cli import (
    _approver,
    _audit_export,
    _exemption,
    _ledger,
    _plan,
    _portfolio,
    _preflight,
    _resolve,
    _retention,
    _run,
    _runs,
    _setup,
    _signoff,
)
from cli.app import app

__all__ = ["app", "main", "register_commands"]

_ = (_ledger, _audit_export)  # their commands (status, audit verify, audit export) attach on import


def register_commands() -> typer.Typer:
    """The ``cutover`` application with every command attached (idempotent)."""
    if not any(group.name == "approver" for group in app.registered_groups):
        app.add_typer(_approver.approver_app, name="approver")
        app.add_typer(_plan.plan_app, name="plan")
        app.add_typer(_exemption.exemption_app, name="exemption")
        app.command()(_portfolio.portfolio)
        app.command("sign")(_signoff.sign)
        app.command()(_signoff.withdraw)
        app.command()(_retention.rollback)
        app.command()(_retention.decommission)
        app.command()(_preflight.preflight)
        app.command()(_resolve.resolve)
        app.command()(_setup.setup)
        app.command()(_run.run)
        app.command()(_runs.runs)
    return app


def main() -> None:
    """Console-script entry point."""
    register_commands()()
