"""Claiming a system for a run: one cutover (or rollback) per system at a time.

A run is identified in the ledger; its steps are keyed by its id. A flow run resumed after a
suspend (sign-off) finds its own run again; a flow run started with ``resume=True`` takes over
a run whose worker died (the ledger lock is overridden, explicitly and audited), so completed
steps are not repeated. Anything else is refused, naming the run that holds the system.
"""

from __future__ import annotations

from cutover import audit
from cutover.errors import ConcurrencyRefused
from cutover.ledger import CutoverRun, Ledger, RunKind, RunState
from cutover.spec import Spec


def claim_run(
    ledger: Ledger, spec: Spec, kind: RunKind, *, flow_run_id: str | None, resume: bool, actor: str
) -> CutoverRun:
    """The run this flow run works on, created (with the lock) or taken over."""
    system_id = spec.system.id
    existing = ledger.running_run_for(system_id, kind=kind)
    if existing is None:
        return _new_run(ledger, system_id, kind, flow_run_id)
    if flow_run_id is not None and existing.flow_run_id == flow_run_id:
        return existing  # the same flow run, restarted after a suspend
    if resume:
        _take_over(ledger, system_id, existing, kind, actor)
        return existing
    raise ConcurrencyRefused(
        f"a {kind.value} of system {system_id} is already running: run {existing.id} "
        f"(Prefect flow run {existing.flow_run_id or 'unknown'}, started {existing.started_at:%Y-%m-%d %H:%M} UTC). "
        "Wait for it to finish; if its worker died, start this flow again with resume=true to continue it from the ledger."
    )


def _new_run(ledger: Ledger, system_id: str, kind: RunKind, flow_run_id: str | None) -> CutoverRun:
    """Record the run, then take the lock for it; a run that loses the race is closed as refused."""
    run = ledger.create_run(system_id, kind, flow_run_id=flow_run_id)
    try:
        ledger.acquire_lock(system_id, run.id, kind)
    except BaseException as exc:
        ledger.finish_run(run.id, RunState.FAILED, note=f"refused: {exc}")
        raise
    return run


def _take_over(ledger: Ledger, system_id: str, run: CutoverRun, kind: RunKind, actor: str) -> None:
    lock = ledger.get_lock(system_id)
    if lock is None:
        ledger.acquire_lock(system_id, run.id, kind)
    with ledger.session() as session:
        audit.append(
            session,
            actor=actor,
            action=f"{kind.value}.resumed",
            object=f"system:{system_id}",
            detail={"run_id": run.id, "previous_flow_run": run.flow_run_id},
        )


def release(ledger: Ledger, spec: Spec, run: CutoverRun) -> None:
    """Give the system back (when the run has a final outcome)."""
    ledger.release_lock(spec.system.id, run.id)
