"""Preflight in the cutover flow (flows/_preflight.py): before the sign-off, and before the first cutover step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cutover import audit, lifecycle
from cutover import signoff_store as store
from cutover.claims import claim
from cutover.errors import PreflightFailed
from cutover.ledger import Ledger, LifecycleState, ReportKind, RunKind, RunState, StepPhase
from cutover.runtime import register
from cutover.settings import Settings
from cutover.spec import Spec
from demo.estate import Estate
from demo.specs import demo_spec, secret_env
from flows._context import RunContext, current_flow_run_id
from flows._cut import cut_over
from flows._preflight import before_first_step, before_signoff
from flows._signoff import joint_signoff
from flows.cutover import stop
from tests.cutover_harness import in_flow, signed_context
from tests.specbuilder import unique_id, write_spec

WRONG_KEY = "SHA256:" + "B" * 43


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    yield ledger
    ledger.dispose()


@pytest.fixture
def estate_env(clean_estate: Estate, monkeypatch: pytest.MonkeyPatch) -> Estate:
    for key, value in secret_env(clean_estate).items():
        monkeypatch.setenv(key, value)
    return clean_estate


def spec_with_wrong_key(estate: Estate, host: str) -> Spec:
    data = demo_spec(estate, system_id=unique_id("pf"))
    data["hosts"][host]["host_key"] = WRONG_KEY
    return Spec.model_validate(data)


def report_ready_context(ledger: Ledger, spec: Spec, tmp_path: Path) -> RunContext:
    """A claimed cutover run of a system whose trial-run report waits for its sign-off."""
    register(ledger, spec, actor="test")
    for state in (LifecycleState.TESTED, LifecycleState.REPORT_READY):
        lifecycle.transition(ledger, spec.system.id, state, actor="test", reason="test set-up")
    run = claim(ledger, spec.system.id, RunKind.CUTOVER, flow_run_id=None, resume=False, actor="test").run
    path = write_spec(spec, tmp_path / "specs")
    return RunContext(spec=spec, spec_path=path, ledger=ledger, run=run, actor="test", settings=Settings(home=tmp_path))


def preflight_events(ledger: Ledger, system_id: str) -> list[Any]:
    return [e for e in audit.events(ledger, object=f"system:{system_id}") if e.action.startswith("preflight.")]


def whoami(estate: Estate) -> str:
    return str(httpx.get(f"{estate.gateway_url}/api/whoami", timeout=5).json()["name"])


def test_a_wrong_host_key_stops_the_cutover_before_any_step_changes_anything(
    estate_env: Estate, ledger: Ledger, tmp_path: Path, prefect_server: Any
) -> None:
    spec = spec_with_wrong_key(estate_env, "gateway")
    rc = signed_context(ledger, spec, write_spec(spec, tmp_path / "specs"), tmp_path / "home")

    with pytest.raises(PreflightFailed) as failed:
        in_flow(lambda: cut_over(rc))
    stop(rc, failed.value)  # what the cutover flow does with any CutoverError

    assert "host gateway: presented host key ssh-ed25519 " + estate_env.hosts["gateway"].host_key_fingerprint in str(
        failed.value
    )
    assert ledger.list_steps(rc.run.id) == []  # no step started, none compensated
    assert lifecycle.current_state(ledger, spec.system.id) is LifecycleState.SIGNED
    assert whoami(estate_env) == "legacy" and estate_env.route_target == "legacy"
    run = ledger.get_run(rc.run.id)
    assert run is not None and run.state is RunState.FAILED and "host gateway" in (run.note or "")
    assert ledger.get_lock(spec.system.id) is None
    (event,) = preflight_events(ledger, spec.system.id)
    assert event.action == "preflight.failed" and event.detail["stage"] == "cutover"
    assert event.detail["run_id"] == rc.run.id
    gateway = [i for i in event.detail["items"] if i["kind"] == "host" and i["target"] == "gateway"]
    assert gateway[0]["outcome"] == "failed" and WRONG_KEY in gateway[0]["detail"]


def test_the_preflight_runs_before_the_signoff_is_first_requested(
    estate_env: Estate, ledger: Ledger, tmp_path: Path, prefect_server: Any
) -> None:
    spec = spec_with_wrong_key(estate_env, "legacy")
    rc = report_ready_context(ledger, spec, tmp_path)
    report = ledger.create_report(rc.run.id, spec.system.id, ReportKind.TRIAL_RUN, "试运行报告")

    with pytest.raises(PreflightFailed, match="host legacy: presented host key"):
        in_flow(lambda: joint_signoff(rc, report))

    assert store.latest_request(ledger, spec.system.id) is None  # nobody was asked to sign
    assert lifecycle.current_state(ledger, spec.system.id) is LifecycleState.REPORT_READY
    (event,) = preflight_events(ledger, spec.system.id)
    assert event.action == "preflight.failed" and event.detail["stage"] == "signoff"


def test_the_signoff_preflight_is_not_repeated_once_the_form_was_shown_in_this_run(
    estate_env: Estate, ledger: Ledger, tmp_path: Path, prefect_server: Any
) -> None:
    spec = spec_with_wrong_key(estate_env, "legacy")
    rc = report_ready_context(ledger, spec, tmp_path)

    def resumed_after_the_form() -> None:
        shown = {"kind": ReportKind.TRIAL_RUN.value, "flow_run_id": current_flow_run_id(), "n": 1, "key": "k-1"}
        store.record(ledger, spec.system.id, store.REQUESTED, {**shown, "report_digest": "r", "spec_digest": "s"})
        before_signoff(rc)  # the flow restarts from the top after each resume

    in_flow(resumed_after_the_form)

    assert preflight_events(ledger, spec.system.id) == []


def test_the_cutover_preflight_is_not_repeated_when_the_run_already_recorded_a_step(
    estate_env: Estate, ledger: Ledger, tmp_path: Path
) -> None:
    spec = spec_with_wrong_key(estate_env, "legacy")
    rc = signed_context(ledger, spec, write_spec(spec, tmp_path / "specs"), tmp_path / "home")
    ledger.begin_step(rc.run.id, "freeze", step_digest="d", phase=StepPhase.CUTOVER, host="legacy")

    before_first_step(rc)  # a resumed run continues from the ledger

    assert preflight_events(ledger, spec.system.id) == []
