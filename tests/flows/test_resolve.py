"""The retry of ``cutover resolve`` on the real estate (flows/resolve.py): a failed undo finished later."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from cutover import audit, claims, lifecycle
from cutover.errors import HealthCheckFailed, LifecycleError
from cutover.ledger import AuditOutcome, Ledger, LifecycleState, RunKind, RunState, StepStatus
from cutover.resolution import Leftover, unresolved
from cutover.runtime import register
from cutover.settings import Settings
from cutover.spec import Spec
from demo.estate import Estate
from demo.specs import demo_spec
from flows._saga import SagaState, run_saga
from flows.resolve import retry
from tasks.ssh import StepContext, close_connections, pool_for
from tests.rollback._retained import unique_system, whoami

pytestmark = pytest.mark.usefixtures("demo_secrets")

_TO_CUTTING_OVER = (
    LifecycleState.TESTED,
    LifecycleState.REPORT_READY,
    LifecycleState.SIGNED,
    LifecycleState.CUTTING_OVER,
)


@pytest.fixture
def flag(clean_estate: Estate) -> Iterator[str]:
    """A path on the cloud host that does not exist yet; removed after the test."""
    path = f"/tmp/cutover-resolve-{uuid.uuid4().hex}"
    yield path
    clean_estate.run("cloud", "rm", "-f", path)


def _spec_whose_undo_needs(estate: Estate, flag: str) -> Spec:
    """The demo spec with one more step before the traffic switch; its undo fails until ``flag`` exists."""
    data = demo_spec(estate, system_id=unique_system("rs"))
    firewall = {
        "kind": "ssh",
        "id": "open-firewall",
        "name": "开放防火墙 open firewall",
        "host": "cloud",
        "run": ["true"],
        "undo": ["test", "-e", flag],
    }
    steps = data["cutover"]["steps"]
    steps.insert(next(i for i, s in enumerate(steps) if s["id"] == "switch-traffic"), firewall)
    return Spec.model_validate(data)


def _gate_fails() -> None:
    raise HealthCheckFailed("health gate: the cloud copy answered 503 three times in a row")


def _cutover_whose_undo_fails(ledger: Ledger, spec: Spec, settings: Settings) -> str:
    """Cut over on the estate until the health gate fails; record it as flows/_cut.py does; the run id."""
    assert spec.cutover is not None and spec.rollback is not None
    register(ledger, spec, actor="test")
    for state in _TO_CUTTING_OVER:
        lifecycle.transition(ledger, spec.system.id, state, actor="test", reason="test set-up")
    run_id = claims.claim(ledger, spec.system.id, RunKind.CUTOVER, actor="test").run.id
    ctx = StepContext(spec=spec, ledger=ledger, run_id=run_id, pool=pool_for(run_id), actor="test", settings=settings)
    try:
        outcome = run_saga(ctx, spec.cutover.steps, rollback_steps=spec.rollback.steps, after=_gate_fails)
    finally:
        close_connections(run_id)
    assert outcome.state is SagaState.INCOMPLETE, outcome.summary()
    ledger.finish_run(run_id, RunState.INCOMPLETE, note=outcome.summary())
    lifecycle.transition(
        ledger, spec.system.id, LifecycleState.ROLLBACK_INCOMPLETE, actor="test", reason=outcome.summary()
    )
    claims.release(ledger, spec.system.id, run_id)
    return run_id


def _recorded(ledger: Ledger, run_id: str, key: str) -> tuple[int, object, StepStatus]:
    record = ledger.get_step(run_id, key)
    assert record is not None, key
    return record.id, record.finished_at, record.status


def _accepts_writes(estate: Estate, instance: str) -> bool:
    payment = {"insured_id": 7, "amount": 1234}
    return httpx.post(f"{estate.app_url(instance)}/api/payments", json=payment, timeout=5).status_code == 201


def test_a_failed_undo_is_finished_once_its_cause_is_fixed_and_the_undos_done_before_are_not_repeated(
    clean_estate: Estate, rb_ledger: Ledger, settings: Settings, flag: str
) -> None:
    spec = _spec_whose_undo_needs(clean_estate, flag)
    run_id = _cutover_whose_undo_fails(rb_ledger, spec, settings)
    assert whoami(clean_estate) == "legacy"  # the traffic switch was undone; the firewall's undo was not
    done_before = {key: _recorded(rb_ledger, run_id, key) for key in ("switch-traffic:undo", "freeze:undo")}
    assert {status for _, _, status in done_before.values()} == {StepStatus.SUCCEEDED}

    still = retry(spec, rb_ledger, unresolved(rb_ledger, spec.system.id), actor="ops", settings=settings)

    assert not still.succeeded and "open-firewall" in " ".join(still.remaining), still.summary
    assert "UNDO STILL INCOMPLETE" in still.summary and f"cutover resolve {spec.system.id}" in still.summary
    assert lifecycle.current_state(rb_ledger, spec.system.id) is LifecycleState.ROLLBACK_INCOMPLETE

    assert clean_estate.run("cloud", "touch", flag).returncode == 0  # the cause is fixed on the host
    left = unresolved(rb_ledger, spec.system.id)
    assert left.leftover is Leftover.COMPENSATION and left.cutover_run_id == run_id and left.run_id == still.run_id
    assert [line.split(" ")[0] for line in left.failed] == ["open-firewall:undo"]
    done = retry(spec, rb_ledger, left, actor="ops", settings=settings)

    assert done.succeeded, done.summary
    assert lifecycle.current_state(rb_ledger, spec.system.id) is LifecycleState.COMPENSATED
    assert {key: _recorded(rb_ledger, run_id, key) for key in done_before} == done_before  # not run again
    assert _recorded(rb_ledger, run_id, "open-firewall:undo")[2] is StepStatus.SUCCEEDED
    assert whoami(clean_estate) == "legacy" and _accepts_writes(clean_estate, "legacy")
    retries = [run for run in rb_ledger.list_runs(spec.system.id) if run.reverses_run_id == run_id]
    assert [(run.kind, run.state) for run in retries] == [
        (RunKind.CUTOVER, RunState.INCOMPLETE),
        (RunKind.CUTOVER, RunState.COMPENSATED),
    ]
    assert rb_ledger.get_lock(spec.system.id) is None
    retried = [e for e in audit.events(rb_ledger, object=f"system:{spec.system.id}") if e.action == "resolve.retried"]
    assert [(e.actor, e.outcome) for e in retried] == [("ops", AuditOutcome.SUCCEEDED), ("ops", AuditOutcome.FAILED)]
    assert audit.verify(rb_ledger).ok


def test_a_compensated_system_needs_no_retry(
    clean_estate: Estate, rb_ledger: Ledger, settings: Settings, flag: str
) -> None:
    spec = _spec_whose_undo_needs(clean_estate, flag)
    _cutover_whose_undo_fails(rb_ledger, spec, settings)
    assert clean_estate.run("cloud", "touch", flag).returncode == 0
    retry(spec, rb_ledger, unresolved(rb_ledger, spec.system.id), actor="ops", settings=settings)

    with pytest.raises(LifecycleError, match="is compensated: nothing to resolve"):
        unresolved(rb_ledger, spec.system.id)
