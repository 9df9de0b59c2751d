"""The way back by PostgreSQL logical replication, on the real estate (sshd hosts, nginx gateway, the
sample app) whose legacy and cloud databases live in two clusters of our own with wal_level=logical."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from cutover import claims
from cutover.errors import PreflightFailed
from cutover.ledger import Ledger, StepPhase
from cutover.settings import Settings
from cutover.spec import Spec
from demo.estate import Estate
from demo.hostprograms import running_pid
from demo.specs import demo_spec, secret_env
from flows._context import RunContext
from flows._cut import cut_over, record_and_open_retention
from flows._saga import SagaOutcome, SagaState, run_saga
from flows.decommission import _drop_replication
from rollback import RollbackState, run_rollback
from tasks import replication
from tasks.preflight import CheckKind, run_preflight
from tasks.readiness import replication_readiness
from tasks.replication import Direction, names_for, status
from tasks.replication_steps import ReplicationAction, replication_step, with_replication
from tasks.steps import execute_step
from tests._polling import wait_until
from tests.cutover_harness import in_flow, signed_context
from tests.fixtures.pg_cluster import PgPair
from tests.rollback._retained import pay_through_gateway, payment_ids, whoami
from tests.specbuilder import unique_id, write_spec

TABLES = ["public.insured", "public.payments"]


@pytest.fixture(scope="module")
def repl_estate(pg_pair: PgPair) -> Iterator[Estate]:
    """An estate whose legacy database is on the original cluster and cloud's on the cloud cluster."""
    from tests.fixtures.estate import make_estate_root, start_test_estate

    root = make_estate_root("cutover-repl-estate-")
    urls = {
        "legacy": pg_pair.original.url(pg_pair.original.create_database("legacy")),
        "cloud_test": pg_pair.cloud.url(pg_pair.cloud.create_database("cloud_test")),
        "cloud": pg_pair.cloud.url(pg_pair.cloud.create_database("cloud")),
    }
    running = start_test_estate(root, app_db_urls=urls, seed_rows=300)
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def replicated(repl_estate: Estate, monkeypatch: pytest.MonkeyPatch) -> Iterator[Spec]:
    """The demo system with ``data.replication``: no copy step, the cloud copy emptied for the initial copy."""
    for key, value in secret_env(repl_estate).items():
        monkeypatch.setenv(key, value)
    repl_estate.reset(reseed=True)
    wait_until(
        lambda: all(running_pid(app) is not None for app in repl_estate.apps.values()),
        what="every app instance of the estate running (what the original's readiness check asks)",
        timeout_s=30,
    )
    execute(repl_estate.db_url("cloud"), "TRUNCATE payments, insured")
    spec = replicated_spec(repl_estate)
    yield spec
    _drop_replication(spec)
    repl_estate.reset()


def replicated_spec(estate: Estate) -> Spec:
    data = demo_spec(estate, system_id=unique_id("hrss"))
    steps = data["cutover"]["steps"]
    data["cutover"]["steps"] = [s for s in steps if s["id"] != "final-sync"]
    freeze_cloud = {
        "kind": "ssh",
        "id": "freeze-cloud",
        "name": "冻结云上写入",
        "host": "cloud",
        "run": ["appctl", "freeze"],
    }
    back = [s for s in data["rollback"]["steps"] if s["id"] != "reverse-sync"]
    data["rollback"]["steps"] = [freeze_cloud, *back]
    data["data"] = {
        "replication": "postgresql-logical",
        "original": {"secret": "legacy-db"},
        "cloud": {"secret": "cloud-db"},
        "tables": TABLES,
    }
    return Spec.model_validate(data)


def execute(url: str, statement: str) -> list[tuple[object, ...]]:
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as connection:
        cursor = connection.execute(statement)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


@dataclass
class GatewayWriter:
    """Payments written through the gateway, one after the other, until stopped; ``acknowledged`` holds
    each payment id the app answered 201 for, with its amount."""

    gateway_url: str
    acknowledged: dict[int, int] = field(default_factory=dict)
    refused: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> GatewayWriter:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[int, int]:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)
        return dict(self.acknowledged)

    def wrote(self, at_least: int) -> None:
        wait_until(
            lambda: len(self.acknowledged), what=f"{at_least} payments", timeout_s=60, ready=lambda n: n >= at_least
        )

    def _run(self) -> None:
        with httpx.Client(base_url=self.gateway_url, timeout=5, trust_env=False) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                try:
                    response = client.post("/api/payments", json={"insured_id": 1 + n % 200, "amount": 100 + n})
                except httpx.HTTPError:
                    self.refused += 1  # not acknowledged: the user sees an error and tries again
                    continue
                if response.status_code == 201:
                    self.acknowledged[int(response.json()["id"])] = 100 + n
                else:
                    self.refused += 1


def test_a_failed_health_gate_after_the_switch_carries_the_clouds_writes_back_before_the_original_is_writable(
    replicated: Spec, repl_estate: Estate, rb_ledger: Ledger, tmp_path: Path, prefect_server: Any
) -> None:
    data = replicated.model_dump(mode="json", by_alias=True)
    data["cutover"]["health"][0]["url"] = f"{repl_estate.gateway_url}/no-such-page"
    data["cutover"]["health_gate"] = {"passes": 1, "interval": "0.2s", "within": "3s"}
    spec, ledger = Spec.model_validate(data), rb_ledger
    rc = signed_context(ledger, spec, write_spec(spec, tmp_path / "specs"), tmp_path / "home")
    writer = GatewayWriter(repl_estate.gateway_url).start()

    outcome = in_flow(lambda: cut_over(rc))
    writer.wrote(at_least=len(writer.acknowledged) + 5)  # the original takes writes again
    acknowledged = writer.stop()

    assert outcome.state is SagaState.COMPENSATED and outcome.failed_step == "health-gate", outcome.summary()
    order = [s.step_id for s in ledger.list_steps(rc.run.id)]
    assert order.index("switch-traffic:undo") < order.index("replication-turn-around:undo") < order.index("freeze:undo")
    assert whoami(repl_estate) == "legacy"
    assert set(acknowledged) <= payment_ids(repl_estate, "legacy")
    gone = status(spec.system.id, repl_estate.db_url("legacy"), repl_estate.db_url("cloud"), TABLES)
    assert gone.direction is Direction.NONE and gone.problems == []


def test_a_failed_switch_drops_the_reverse_slot_and_keeps_the_cloud_copy_following_the_original(
    replicated: Spec, repl_estate: Estate, rb_ledger: Ledger, tmp_path: Path, prefect_server: Any
) -> None:
    data = replicated.model_dump(mode="json", by_alias=True)
    switch = next(s for s in data["cutover"]["steps"] if s["id"] == "switch-traffic")
    switch["run"] = ["route", "nowhere"]
    spec, ledger = Spec.model_validate(data), rb_ledger
    rc = signed_context(ledger, spec, write_spec(spec, tmp_path / "specs"), tmp_path / "home")

    outcome = in_flow(lambda: cut_over(rc))

    assert outcome.state is SagaState.COMPENSATED and outcome.failed_step == "switch-traffic", outcome.summary()
    undone = {s.step_id: s.outcome for s in outcome.steps if s.action == "undo"}
    assert undone["replication-catch-up"] == undone["replication-forward"] == "undone"
    assert "replication-turn-around" not in undone
    reverse = names_for(spec.system.id).reverse
    assert (reverse,) not in execute(repl_estate.db_url("cloud"), "SELECT slot_name FROM pg_replication_slots")
    seen = status(spec.system.id, repl_estate.db_url("legacy"), repl_estate.db_url("cloud"), TABLES)
    assert seen.direction is Direction.FORWARD and seen.ok, seen.problems
    assert whoami(repl_estate) == "legacy"


def test_a_replication_step_recorded_as_done_is_replayed_from_the_ledger_not_repeated(
    replicated: Spec, repl_estate: Estate, rb_ledger: Ledger, tmp_path: Path
) -> None:
    spec, ledger = replicated, rb_ledger
    rc = signed_context(ledger, spec, write_spec(spec, tmp_path / "specs"), tmp_path / "home")
    forward = replication_step(ReplicationAction.FORWARD)
    first = execute_step(rc.steps(), forward, phase=StepPhase.CUTOVER)
    assert not first.replayed and first.detail["subscription"] == names_for(spec.system.id).forward
    execute(repl_estate.db_url("cloud"), f"ALTER SUBSCRIPTION {names_for(spec.system.id).forward} DISABLE")

    again = execute_step(rc.steps(), forward, phase=StepPhase.CUTOVER)  # a re-run of the same run

    assert again.replayed and again.detail["subscription"] == first.detail["subscription"]
    seen = status(spec.system.id, repl_estate.db_url("legacy"), repl_estate.db_url("cloud"), TABLES)
    assert seen.enabled is False  # start_forward did not run again (it would have enabled it)
    record = ledger.get_step(rc.run.id, forward.id)
    assert record is not None and record.attempt == 1


def test_preflight_names_a_table_without_a_primary_key_and_a_database_without_logical_wal(
    replicated: Spec, repl_estate: Estate, make_pg_database: Any, tmp_path: Path
) -> None:
    execute(repl_estate.db_url("legacy"), "CREATE TABLE IF NOT EXISTS audit_log (at timestamptz, what text)")
    data = replicated.model_dump(mode="json", by_alias=True)
    data["data"]["tables"] = [*TABLES, "public.audit_log"]
    data["data"]["cloud"] = make_pg_database()  # the machine's server, inline (no password): wal_level=replica
    data["data"]["verify"] = "in-window"  # verify-rows compares the cloud copy's secret, not this database
    spec = Spec.model_validate(data)

    report = run_preflight(spec, Settings(home=tmp_path / "home"))

    items = [i for i in report.items if i.kind is CheckKind.REPLICATION]
    original = next(i for i in items if i.target.startswith("the original"))
    cloud = next(i for i in items if i.target.startswith("the cloud copy"))
    assert not original.passed and "table public.audit_log: has no primary key" in original.detail
    assert "public.payments" not in original.detail
    assert not cloud.passed and "wal_level: is replica" in cloud.detail
    with pytest.raises(PreflightFailed, match="audit_log"):
        report.raise_for_failures()


def cutover_steps(ledger: Ledger, run_id: str) -> list[str]:
    return [s.step_id for s in ledger.list_steps(run_id) if s.phase is StepPhase.CUTOVER]


def test_a_replicated_cutover_then_a_rollback_under_writes_loses_no_acknowledged_write(
    replicated: Spec, repl_estate: Estate, rb_ledger: Ledger, tmp_path: Path, prefect_server: Any
) -> None:
    spec, ledger = replicated, rb_ledger
    preflight = run_preflight(spec, Settings(home=tmp_path / "home"))
    assert all(i.passed for i in preflight.items if i.kind is CheckKind.REPLICATION), preflight.summary()
    rc = signed_context(ledger, spec, write_spec(spec, tmp_path / "specs"), tmp_path / "home")
    outcome, ends = in_flow(lambda: (o := cut_over(rc), record_and_open_retention(rc, o)))
    claims.release(ledger, spec.system.id, rc.run.id)
    assert outcome.state is SagaState.SUCCEEDED and ends is not None, outcome.summary()
    assert cutover_steps(ledger, rc.run.id) == [
        "replication-forward",
        "freeze",
        "replication-catch-up",
        "switch-traffic",
        "verify-rows",
        "replication-turn-around",
    ]
    assert whoami(repl_estate) == "cloud"
    original, cloud = repl_estate.db_url("legacy"), repl_estate.db_url("cloud")
    seen = status(spec.system.id, original, cloud, TABLES)
    assert seen.direction is Direction.REVERSE and seen.ok, seen.problems
    ready = replication_readiness(spec)
    assert ready is not None and ready.passed, ready

    writer = GatewayWriter(repl_estate.gateway_url).start()
    writer.wrote(at_least=20)  # the cloud copy takes writes; the original follows
    rolled = run_rollback(spec, ledger, actor="test", settings=Settings(home=tmp_path / "home"))
    writer.wrote(at_least=len(writer.acknowledged) + 5)  # the original takes writes again
    acknowledged = writer.stop()

    assert rolled.state is RollbackState.SUCCEEDED, rolled.summary()
    assert [s.step_id for s in ledger.list_steps(rolled.run_id)][:2] == ["freeze-cloud", "unfreeze-legacy"]
    assert "replication-back" in [s.step_id for s in ledger.list_steps(rolled.run_id)]
    assert whoami(repl_estate) == "legacy"
    assert set(acknowledged) <= payment_ids(repl_estate, "legacy")  # every acknowledged write, wherever it landed
    after = status(spec.system.id, original, cloud, TABLES)
    assert after.direction is Direction.NONE and after.problems == []
    assert payment_ids(repl_estate, "cloud") <= payment_ids(repl_estate, "legacy")  # the cloud copy left as it was


def test_a_schema_change_that_breaks_the_reverse_subscription_fails_the_originals_readiness_and_decommission_drops_the_slot(
    replicated: Spec, repl_estate: Estate, rb_ledger: Ledger, tmp_path: Path, prefect_server: Any
) -> None:
    spec, ledger = replicated, rb_ledger
    rc = signed_context(ledger, spec, write_spec(spec, tmp_path / "specs"), tmp_path / "home")
    outcome = in_flow(lambda: cut_over(rc))
    assert outcome.state is SagaState.SUCCEEDED, outcome.summary()
    reverse = names_for(spec.system.id).reverse
    slots = "SELECT slot_name FROM pg_replication_slots"
    assert (reverse,) in execute(repl_estate.db_url("cloud"), slots)
    execute(repl_estate.db_url("cloud"), "ALTER TABLE payments ADD COLUMN channel text")
    try:
        assert pay_through_gateway(repl_estate, 1)
        broken = replication_readiness(spec)
        assert broken is not None and not broken.passed
        assert "column channel exists on the cloud copy but not on the original" in broken.detail

        dropped = _drop_replication(spec)
    finally:
        execute(repl_estate.db_url("cloud"), "ALTER TABLE payments DROP COLUMN IF EXISTS channel")

    assert f"the original: subscription {reverse}" in dropped and f"the cloud copy: slot {reverse}" in dropped
    assert (reverse,) not in execute(repl_estate.db_url("cloud"), slots)
    gone = status(spec.system.id, repl_estate.db_url("legacy"), repl_estate.db_url("cloud"), TABLES)
    assert gone.direction is Direction.NONE and gone.problems == []


def detail_of(ledger: Ledger, run_id: str, step_id: str) -> dict[str, Any]:
    record = ledger.get_step(run_id, step_id)
    assert record is not None, f"no ledger record of {step_id}"
    return dict(record.detail)


def when_the_cloud_took(writer: GatewayWriter, more: int) -> tuple[Callable[..., Any], set[int]]:
    """A stand-in for ``snapshots_held`` that first lets ``more`` writes through the gateway (traffic is on
    the cloud copy and the original frozen: they land on the cloud copy), then hands out the snapshots;
    and the ids of those writes, once it ran."""
    real, taken = replication.snapshots_held, set[int]()

    def held(*args: Any) -> Any:
        before = set(writer.acknowledged)
        writer.wrote(at_least=len(before) + more)
        taken.update(set(writer.acknowledged) - before)
        return real(*args)

    return held, taken


def test_the_verification_runs_after_the_switch_on_the_snapshots_while_the_cloud_copy_takes_writes(
    replicated: Spec,
    repl_estate: Estate,
    rb_ledger: Ledger,
    tmp_path: Path,
    prefect_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec, ledger = replicated, rb_ledger
    rc = signed_context(ledger, spec, write_spec(spec, tmp_path / "specs"), tmp_path / "home")
    writer = GatewayWriter(repl_estate.gateway_url).start()
    held, taken = when_the_cloud_took(writer, 5)
    monkeypatch.setattr(replication, "snapshots_held", held)

    outcome = in_flow(lambda: cut_over(rc))
    acknowledged = writer.stop()

    assert outcome.state is SagaState.SUCCEEDED, outcome.summary()
    assert cutover_steps(ledger, rc.run.id).index("switch-traffic") < cutover_steps(ledger, rc.run.id).index(
        "verify-rows"
    )
    exported = detail_of(ledger, rc.run.id, "replication-catch-up")["snapshots"]
    verified = detail_of(ledger, rc.run.id, "verify-rows")
    assert verified["snapshots"] == exported and all(t["matches"] for t in verified["tables"].values())
    on_cloud = payment_ids(repl_estate, "cloud")
    assert taken and taken <= on_cloud  # written on the cloud copy before the verification read it...
    assert verified["tables"]["payments"]["target_rows"] <= len(on_cloud) - len(taken)  # ...not seen by it
    wait_until(
        lambda: set(acknowledged) <= payment_ids(repl_estate, "legacy"),
        what="the original, subscribed after the verification, has every write the cloud copy took",
        timeout_s=30,
    )
    assert not replication.holding_snapshots(rc.run.id)  # let go once the turn-around ran


def test_a_mismatch_found_on_the_snapshots_after_the_switch_rolls_back_with_every_acknowledged_write_on_the_original(
    replicated: Spec,
    repl_estate: Estate,
    rb_ledger: Ledger,
    tmp_path: Path,
    prefect_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec, ledger = replicated, rb_ledger
    rc = signed_context(ledger, spec, write_spec(spec, tmp_path / "specs"), tmp_path / "home")
    prepare = replication.prepare_switch_on_snapshots

    def prepare_after_a_stray_write(*args: Any, **kwargs: Any) -> Any:  # a write on the cloud copy, not replicated
        execute(repl_estate.db_url("cloud"), "UPDATE insured SET name = name || ' (stray)' WHERE id = 7")
        return prepare(*args, **kwargs)

    monkeypatch.setattr(replication, "prepare_switch_on_snapshots", prepare_after_a_stray_write)
    writer = GatewayWriter(repl_estate.gateway_url).start()
    held, taken = when_the_cloud_took(writer, 5)
    monkeypatch.setattr(replication, "snapshots_held", held)

    outcome = in_flow(lambda: cut_over(rc))
    writer.wrote(at_least=len(writer.acknowledged) + 5)  # the original takes writes again
    acknowledged = writer.stop()

    assert outcome.state is SagaState.COMPENSATED and outcome.failed_step == "verify-rows", outcome.summary()
    assert "insured:" in (outcome.error or "")
    assert "7 (values differ: name '何明' in the source, '何明 (stray)' in the target)" in (outcome.error or "")
    assert "Traffic already flows to the cloud copy: the cutover rolls back" in (outcome.error or "")
    order = [s.step_id for s in ledger.list_steps(rc.run.id)]
    assert order.index("switch-traffic:undo") < order.index("replication-turn-around:undo") < order.index("freeze:undo")
    assert whoami(repl_estate) == "legacy"
    assert taken and taken <= payment_ids(repl_estate, "cloud")  # the cloud copy took writes after the switch
    assert set(acknowledged) - payment_ids(repl_estate, "legacy") == set()  # every one, those too, is on the original
    gone = status(spec.system.id, repl_estate.db_url("legacy"), repl_estate.db_url("cloud"), TABLES)
    assert gone.direction is Direction.NONE and gone.problems == []


def saga_until(rc: RunContext, spec: Spec, last: str) -> SagaOutcome:
    """The cutover saga's steps up to ``last``, then the run stops (its process dies right after)."""
    assert spec.cutover is not None
    switch = spec.cutover.traffic_switch()
    planned = with_replication(spec, spec.cutover.steps, switch)
    ids = [s.id for s in planned]
    return run_saga(rc.steps(), planned[: ids.index(last) + 1], switch=switch)


def the_whole_saga(rc: RunContext, spec: Spec) -> SagaOutcome:
    assert spec.cutover is not None and spec.rollback is not None
    switch = spec.cutover.traffic_switch()
    planned = with_replication(spec, spec.cutover.steps, switch)
    return run_saga(rc.steps(), planned, rollback_steps=spec.rollback.steps, switch=switch)


def test_snapshots_lost_between_the_switch_and_the_verification_roll_back_carrying_every_write_back(
    replicated: Spec, repl_estate: Estate, rb_ledger: Ledger, tmp_path: Path
) -> None:
    spec, ledger = replicated, rb_ledger
    rc = signed_context(ledger, spec, write_spec(spec, tmp_path / "specs"), tmp_path / "home")
    writer = GatewayWriter(repl_estate.gateway_url).start()
    assert saga_until(rc, spec, "switch-traffic").state is SagaState.SUCCEEDED
    replication.release_snapshots(rc.run.id)  # the worker died: its sessions, and their snapshots, are gone
    writer.wrote(at_least=len(writer.acknowledged) + 5)  # meanwhile the cloud copy takes writes

    again = the_whole_saga(rc, spec)  # the run is resumed
    writer.wrote(at_least=len(writer.acknowledged) + 5)
    acknowledged = writer.stop()

    assert again.state is SagaState.COMPENSATED and again.failed_step == "verify-rows", again.summary()
    assert "no snapshot is held for run" in (again.error or "")
    assert {s.step_id: s.outcome for s in again.steps if s.action == "run"}["switch-traffic"] == "replayed"
    assert whoami(repl_estate) == "legacy"
    assert set(acknowledged) - payment_ids(repl_estate, "legacy") == set()


def test_snapshots_lost_before_the_switch_are_taken_again_and_the_cutover_goes_on(
    replicated: Spec, repl_estate: Estate, rb_ledger: Ledger, tmp_path: Path
) -> None:
    spec, ledger = replicated, rb_ledger
    rc = signed_context(ledger, spec, write_spec(spec, tmp_path / "specs"), tmp_path / "home")
    assert saga_until(rc, spec, "replication-catch-up").state is SagaState.SUCCEEDED
    first = detail_of(ledger, rc.run.id, "replication-catch-up")["snapshots"]
    replication.release_snapshots(rc.run.id)  # the worker died before the switch

    again = the_whole_saga(rc, spec)

    assert again.state is SagaState.SUCCEEDED, again.summary()
    record = ledger.get_step(rc.run.id, "replication-catch-up")
    assert record is not None and record.attempt == 2
    assert detail_of(ledger, rc.run.id, "verify-rows")["snapshots"] == record.detail["snapshots"] != first
    assert whoami(repl_estate) == "cloud"
