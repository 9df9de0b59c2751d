"""``cutover resolve SYSTEM``: the supported way out of ``rollback_incomplete``, no Python needed.

Registered by :func:`cli.register_commands`. Without options it shows what is left (the undo steps
of a failed cutover's compensation, or the failed rollback) and retries it in this process
(:func:`flows.resolve.retry`); steps an earlier attempt finished are not repeated. With
``--manual --state compensated|retained|rolled_back --note TEXT`` it records work finished by
hand instead (:func:`cutover.resolution.resolve_manually`, audited as ``resolve.manual``).

Exit codes: 0 resolved; 2 a bad command line; 3 refused (nothing to resolve, the state does not fit
the retention window, another run holds the system); 4 the retry ran and something is still left.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from cli._console import ExitCode, console, fail
from cli._ledger import actor
from cutover.resolution import ManualState, resolve_manually, unresolved
from cutover.runtime import find_spec, open_ledger

__all__ = ["resolve"]


def resolve(
    system: Annotated[str, typer.Argument(help="The system id, as in its spec.")],
    manual: Annotated[
        bool, typer.Option("--manual", help="Record work finished by hand instead of retrying it.")
    ] = False,
    state: Annotated[
        ManualState | None,
        typer.Option(help="With --manual: the state the work by hand left the system in.", case_sensitive=False),
    ] = None,
    note: Annotated[str | None, typer.Option(help="With --manual: what was done by hand (kept in the audit).")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue a retry whose process died (its completed steps are kept).")
    ] = False,
) -> None:
    """Resolve a rollback_incomplete SYSTEM: retry the failed undo or rollback steps, or record a manual resolution."""
    if manual:
        _record_manual(system, state, note)
        return
    if state is not None or note is not None:
        fail("--state and --note record a resolution by hand: add --manual, or leave them out to retry", ExitCode.USAGE)
    _retry(system, resume=resume)


def _record_manual(system: str, state: ManualState | None, note: str | None) -> None:
    if state is None or not (note or "").strip():
        fail(
            "--manual needs --state compensated|retained|rolled_back and --note 'what was done by hand'",
            ExitCode.USAGE,
        )
    resolution = resolve_manually(open_ledger(), system, state, actor=actor(), note=note or "")
    console.print(f"[green]{escape(resolution.summary())}[/]", soft_wrap=True)


def _retry(system: str, *, resume: bool) -> None:
    from flows.resolve import retry

    ledger = open_ledger()
    left = unresolved(ledger, system)
    console.print(left.describe(), markup=False, soft_wrap=True)
    _, spec = find_spec(system)
    outcome = retry(
        spec, ledger, left, actor=actor(), resume=resume, log=lambda line: console.print(line, markup=False)
    )
    for step in outcome.steps:
        error = f" — {step.error}" if step.error else ""
        console.print(f"  {step.step_id}: {step.action}: {step.outcome}{error}", markup=False, soft_wrap=True)
    if not outcome.succeeded:
        fail(outcome.summary, ExitCode.FAILED)
    console.print(outcome.summary, markup=False, soft_wrap=True)
