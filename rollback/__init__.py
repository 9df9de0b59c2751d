"""Rollback planning and running, without Prefect: the way back to the retained original.

Layer: above ``tasks`` (it runs steps through :func:`tasks.steps.execute_step`), below ``flows``
(the rollback flow in :mod:`flows.rollback` wraps :func:`run_rollback`). Public surface::

    run_rollback(spec, ledger, *, actor, ...) -> RollbackOutcome   claim, run the plan, record
    RollbackOutcome, RollbackState                                 how it ended, step by step
    build_plan(spec, ledger, ...) -> RollbackPlan                  what a rollback runs, in a safe order
    safe_order(spec) -> (steps, changes)                           that order, pure, with what it changed
    ROLLBACK_FROM                                                  states a rollback may start from
"""

from rollback._lock import ROLLBACK_FROM
from rollback._order import PlanChange, safe_order
from rollback._plan import RollbackPlan, build_plan
from rollback._run import RollbackOutcome, RollbackState, run_rollback

__all__ = [
    "ROLLBACK_FROM",
    "PlanChange",
    "RollbackOutcome",
    "RollbackPlan",
    "RollbackState",
    "build_plan",
    "run_rollback",
    "safe_order",
]
