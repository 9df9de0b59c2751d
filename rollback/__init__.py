"""Rollback planning and running, without Prefect: the way back to the retained original.

Layer: above ``tasks`` (it runs steps through :func:`tasks.steps.execute_step`), below ``flows``
(the rollback flow in :mod:`flows.rollback` wraps :func:`run_rollback`). Public surface::

    run_rollback(spec, ledger, *, actor, ...) -> RollbackOutcome   claim, run the plan, record
    RollbackOutcome, RollbackState                                 how it ended, step by step
    build_plan(spec, ledger, ...) -> RollbackPlan                  what a rollback runs
    ROLLBACK_FROM                                                  states a rollback may start from
"""

from rollback._lock import ROLLBACK_FROM
from rollback._plan import RollbackPlan, build_plan
from rollback._run import RollbackOutcome, RollbackState, run_rollback

__all__ = ["ROLLBACK_FROM", "RollbackOutcome", "RollbackPlan", "RollbackState", "build_plan", "run_rollback"]
