"""Who may roll back, and when (rollback/_lock.py): one rollback per system, refusals with the reason."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from cutover import audit, lifecycle
from cutover.errors import ConcurrencyRefused, CutoverError, RetentionError
from cutover.ledger import Ledger, LifecycleState, RetentionCloseReason, RunKind
from cutover.settings import Settings
from demo.estate import Estate
from rollback import RollbackOutcome, RollbackState, run_rollback
from tests.rollback._retained import cut_over_for_real, estate_spec, retained_on_paper, whoami


def _rollbacks(ledger: Ledger, system_id: str) -> list[str]:
    return [run.id for run in ledger.list_runs(system_id) if run.kind is RunKind.ROLLBACK]


@pytest.mark.usefixtures("demo_secrets")
def test_two_simultaneous_requests_run_one_rollback_and_the_other_is_told_which_run_holds_it(
    clean_estate: Estate, rb_ledger: Ledger, settings: Settings
) -> None:
    retained = cut_over_for_real(clean_estate, rb_ledger, estate_spec(clean_estate), settings)
    start = threading.Barrier(2)

    def request(actor: str) -> RollbackOutcome | CutoverError:
        start.wait()
        try:
            return run_rollback(retained.spec, rb_ledger, actor=actor, settings=settings)
        except CutoverError as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(request, ["ui", "watch"]))

    ran = [r for r in results if isinstance(r, RollbackOutcome)]
    refused = [r for r in results if isinstance(r, ConcurrencyRefused)]
    assert len(ran) == 1 and len(refused) == 1, results
    assert ran[0].state is RollbackState.SUCCEEDED
    assert ran[0].run_id in str(refused[0])
    assert _rollbacks(rb_ledger, retained.system_id) == [ran[0].run_id]
    assert whoami(clean_estate) == "legacy"
    actions = [e.action for e in audit.events(rb_ledger, object=f"system:{retained.system_id}")]
    assert actions.count("rollback.refused") == 1 and actions.count("rollback.finished") == 1


def test_rollback_is_refused_after_decommission(rb_ledger: Ledger, estate: Estate) -> None:
    retained = retained_on_paper(rb_ledger, estate_spec(estate))
    rb_ledger.close_retention_window(retained.system_id, RetentionCloseReason.DECOMMISSIONED)
    lifecycle.transition(rb_ledger, retained.system_id, LifecycleState.DECOMMISSIONED, actor="test", reason="exit")

    with pytest.raises(RetentionError, match=r"was decommissioned .* cannot be rolled back"):
        run_rollback(retained.spec, rb_ledger, actor="test")
    assert _rollbacks(rb_ledger, retained.system_id) == []


def test_rollback_is_refused_for_a_system_not_in_retention(rb_ledger: Ledger, estate: Estate) -> None:
    spec = estate_spec(estate)
    lifecycle.register_system(
        rb_ledger, system_id=spec.system.id, name="n", department="d", disposition="migrate", actor="test"
    )

    with pytest.raises(RetentionError, match="is planned, not in retention"):
        run_rollback(spec, rb_ledger, actor="test")


def test_rollback_is_refused_while_a_cutover_of_the_system_is_running(rb_ledger: Ledger, estate: Estate) -> None:
    spec = estate_spec(estate)
    retained = retained_on_paper(rb_ledger, spec)
    lifecycle.transition(rb_ledger, spec.system.id, LifecycleState.ROLLED_BACK, actor="test", reason="set-up")
    rb_ledger.close_retention_window(spec.system.id, RetentionCloseReason.ROLLED_BACK)
    for state in (LifecycleState.PLANNED, LifecycleState.TESTED, LifecycleState.REPORT_READY, LifecycleState.SIGNED):
        lifecycle.transition(rb_ledger, spec.system.id, state, actor="test", reason="set-up")
    cutover = rb_ledger.create_run(spec.system.id, RunKind.CUTOVER, flow_run_id="f-123")

    with pytest.raises(ConcurrencyRefused, match=f"a cutover of system {spec.system.id} is running: run {cutover.id}"):
        run_rollback(retained.spec, rb_ledger, actor="test")
