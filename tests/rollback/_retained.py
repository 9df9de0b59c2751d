"""Test support: put a system of the demo estate in retention without the whole cutover flow.

``cut_over_for_real`` runs the demo spec's cutover steps on the estate (freeze legacy, copy the
data to the cloud copy, verify, route the gateway to cloud) and opens the retention window, as
``flows._cut.record_and_open_retention`` does. ``retained_on_paper`` only writes the ledger rows (no host is
touched), for tests of refusals and of the decommission rules.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from cutover import lifecycle
from cutover.ledger import Ledger, LifecycleState, RunKind, RunState
from cutover.retention import window_end
from cutover.runtime import register
from cutover.settings import Settings
from cutover.spec import Spec
from demo.estate import Estate
from demo.specs import demo_spec
from flows._saga import SagaState, run_saga
from tasks.ssh import StepContext, close_connections, pool_for

_TO_CUTTING_OVER = [
    LifecycleState.TESTED,
    LifecycleState.REPORT_READY,
    LifecycleState.SIGNED,
    LifecycleState.CUTTING_OVER,
]


@dataclass(frozen=True)
class Retained:
    """A system in retention: its spec and the cutover run its window belongs to."""

    spec: Spec
    cutover_run_id: str

    @property
    def system_id(self) -> str:
        return self.spec.system.id


def unique_system(prefix: str = "rb") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def estate_spec(estate: Estate, system_id: str | None = None, **changes: Any) -> Spec:
    """The demo spec on ``estate`` for a fresh system id; ``changes`` replace top-level sections."""
    data = demo_spec(estate, system_id=system_id or unique_system())
    data.update(changes)
    return Spec.model_validate(data)


def sqlite_ledger(tmp_path: Path, template: Path, *, clock: Callable[[], datetime] | None = None) -> Ledger:
    """A fresh migrated SQLite ledger (a copy of the session template)."""
    path = tmp_path / f"ledger-{uuid.uuid4().hex[:6]}.db"
    shutil.copyfile(template, path)
    return Ledger(f"sqlite:///{path}", digest="sm3", clock=clock)


def _to_cutting_over(ledger: Ledger, spec: Spec) -> str:
    register(ledger, spec, actor="test")
    for state in _TO_CUTTING_OVER:
        lifecycle.transition(ledger, spec.system.id, state, actor="test", reason="test set-up")
    return ledger.create_run(spec.system.id, RunKind.CUTOVER).id


def _open_window(ledger: Ledger, spec: Spec, run_id: str) -> Retained:
    ends = window_end(ledger.now(), spec.retention.months)
    ledger.open_retention_window(spec.system.id, run_id, ends)
    ledger.finish_run(run_id, RunState.SUCCEEDED, note="test cutover")
    lifecycle.transition(ledger, spec.system.id, LifecycleState.RETAINED, actor="test", reason="test cutover")
    return Retained(spec, run_id)


def retained_on_paper(ledger: Ledger, spec: Spec) -> Retained:
    """The ledger says ``spec``'s system was cut over and is in retention; no host was touched."""
    return _open_window(ledger, spec, _to_cutting_over(ledger, spec))


def cut_over_for_real(estate: Estate, ledger: Ledger, spec: Spec, settings: Settings) -> Retained:
    """Run the cutover steps on the estate, then open the retention window."""
    assert spec.cutover is not None and spec.rollback is not None
    run_id = _to_cutting_over(ledger, spec)
    ctx = StepContext(spec=spec, ledger=ledger, run_id=run_id, pool=pool_for(run_id), actor="test", settings=settings)
    try:
        outcome = run_saga(ctx, spec.cutover.steps, rollback_steps=spec.rollback.steps)
    finally:
        close_connections(run_id)
    assert outcome.state is SagaState.SUCCEEDED, outcome.summary()
    return _open_window(ledger, spec, run_id)


def whoami(estate: Estate) -> str:
    """The instance the gateway answers from."""
    answer: str = httpx.get(f"{estate.gateway_url}/api/whoami", timeout=5, trust_env=False).json()["name"]
    return answer


def pay_through_gateway(estate: Estate, count: int) -> list[int]:
    """Write ``count`` payments through the gateway; their ids."""
    ids = []
    with httpx.Client(base_url=estate.gateway_url, timeout=5, trust_env=False) as client:
        for n in range(count):
            response = client.post("/api/payments", json={"insured_id": 1 + n, "amount": 100 + n})
            assert response.status_code in (200, 201), response.text
            ids.append(int(response.json()["id"]))
    return ids


def payment_ids(estate: Estate, instance: str) -> set[int]:
    """Every payment id in ``instance``'s database."""
    engine = sa.create_engine(estate.db_url(instance))
    try:
        with engine.connect() as connection:
            return {row[0] for row in connection.execute(sa.text("SELECT id FROM payments"))}
    finally:
        engine.dispose()
