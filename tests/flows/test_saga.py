"""The cutover saga on the real estate: sshd hosts, the nginx gateway, the sample app's databases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cutover import audit, lifecycle
from cutover.claims import claim
from cutover.errors import ConcurrencyRefused
from cutover.ledger import Ledger, LifecycleState, RunKind, StepStatus
from cutover.spec import Spec
from demo.specs import demo_spec, secret_env
from flows._cut import cut_over, record_and_open_retention
from flows._saga import SagaState
from tests._polling import wait_until
from tests.cutover_harness import in_flow, resumed_context, signed_context
from tests.specbuilder import unique_id, write_spec

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ledger_file(tmp_path: Path) -> Iterator[tuple[Ledger, str]]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    ledger.migrate()
    yield ledger, url
    ledger.dispose()


@pytest.fixture
def estate_env(clean_estate: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in secret_env(clean_estate).items():
        monkeypatch.setenv(key, value)
    clean_estate.reset(reseed=True)
    return clean_estate


def spec_with(estate: Any, **step_changes: dict[str, Any]) -> Spec:
    data = demo_spec(estate, system_id=unique_id("hrss"))
    for step in data["cutover"]["steps"]:
        step.update(step_changes.get(step["id"], {}))
    if "undo" in step_changes.get("freeze", {}):  # the rollback makes legacy writable with the freeze's undo
        unfreeze = next(s for s in data["rollback"]["steps"] if s["id"] == "unfreeze-legacy")
        unfreeze["run"] = step_changes["freeze"]["undo"]
    return Spec.model_validate(data)


def whoami(estate: Any) -> str:
    return str(httpx.get(f"{estate.gateway_url}/api/whoami", timeout=5).json()["name"])


def rows(estate: Any, instance: str) -> dict[str, int]:
    data = httpx.get(f"{estate.app_url(instance)}/api/stats", timeout=5).json()
    return {"insured": int(data["insured"]), "payments": int(data["payments"])}


def pay(base_url: str) -> httpx.Response:
    return httpx.post(f"{base_url}/api/payments", json={"insured_id": 7, "amount": 1234}, timeout=5)


def test_the_happy_path_moves_traffic_to_the_cloud_and_opens_a_three_month_window(
    estate_env: Any, ledger_file: tuple[Ledger, str], tmp_path: Path, prefect_server: Any
) -> None:
    ledger, _ = ledger_file
    spec = spec_with(estate_env)
    rc = signed_context(ledger, spec, write_spec(spec, tmp_path / "specs"), tmp_path / "home")
    outcome, ends = in_flow(lambda: (o := cut_over(rc), record_and_open_retention(rc, o)))
    assert outcome.state is SagaState.SUCCEEDED, outcome.summary()
    assert whoami(estate_env) == "cloud"
    assert lifecycle.current_state(ledger, spec.system.id) is LifecycleState.RETAINED
    assert ends is not None and (ends - ledger.now()).days >= 89
    window = ledger.current_retention_window(spec.system.id)
    assert window is not None and window.ends_at == ends
    verify = ledger.get_step(rc.run.id, "verify-rows")
    assert verify is not None and verify.detail["tables"]["payments"]["matches"] is True
    baseline = ledger.divergence_baseline(rc.run.id)  # what the watch measures the divergence against
    assert baseline is not None and {t["method"] for t in baseline.tables.values()} == {"chunk-checksums"}
    assert set(baseline.tables) == {"insured", "payments"}


def test_a_failure_at_the_switch_undoes_last_first_and_carries_no_data_back(
    estate_env: Any, ledger_file: tuple[Ledger, str], tmp_path: Path, prefect_server: Any
) -> None:
    ledger, _ = ledger_file
    before = rows(estate_env, "legacy")
    spec = spec_with(estate_env, **{"switch-traffic": {"run": ["route", "nowhere"]}})
    rc = signed_context(ledger, spec, write_spec(spec, tmp_path / "specs"), tmp_path / "home")
    outcome, _ = in_flow(lambda: (o := cut_over(rc), record_and_open_retention(rc, o)))
    assert outcome.state is SagaState.COMPENSATED and outcome.failed_step == "switch-traffic"
    undo = [(s.step_id, s.action, s.outcome) for s in outcome.steps if s.action != "run"]
    assert undo == [
        ("verify-rows", "none", "nothing to undo"),
        ("freeze", "undo", "undone"),
        (
            "final-sync",
            "covered by reverse-sync",
            "not needed: traffic never reached the cloud copy, the original is unchanged",
        ),
    ]
    order = [s.step_id for s in ledger.list_steps(rc.run.id)]
    assert "freeze:undo" in order and "reverse-sync:covers:final-sync" not in order  # no data moved back
    assert whoami(estate_env) == "legacy"
    assert pay(estate_env.app_url("legacy")).status_code == 201  # unfrozen again
    assert rows(estate_env, "legacy")["payments"] == before["payments"] + 1  # nothing lost
    assert lifecycle.current_state(ledger, spec.system.id) is LifecycleState.COMPENSATED


def test_a_failure_after_the_switch_undoes_first_then_carries_the_clouds_writes_back(
    estate_env: Any, ledger_file: tuple[Ledger, str], tmp_path: Path, prefect_server: Any
) -> None:
    ledger, _ = ledger_file
    data = demo_spec(estate_env, system_id=unique_id("hrss"))
    data["cutover"]["health"][0]["url"] = f"{estate_env.gateway_url}/no-such-page"
    data["cutover"]["health_gate"] = {"passes": 1, "interval": "0.2s", "within": "1s"}
    spec = Spec.model_validate(data)
    rc = signed_context(ledger, spec, write_spec(spec, tmp_path / "specs"), tmp_path / "home")
    outcome = in_flow(lambda: cut_over(rc))
    assert outcome.state is SagaState.COMPENSATED and outcome.failed_step == "health-gate", outcome.summary()
    order = [s.step_id for s in ledger.list_steps(rc.run.id)]
    assert (
        order.index("switch-traffic:undo") < order.index("freeze:undo") < order.index("reverse-sync:covers:final-sync")
    )
    assert whoami(estate_env) == "legacy"
    assert pay(estate_env.app_url("legacy")).status_code == 201  # writable again


def test_a_compensation_interrupted_is_resumed_and_the_forward_plan_never_runs_again(
    estate_env: Any, ledger_file: tuple[Ledger, str], tmp_path: Path, prefect_server: Any
) -> None:
    ledger, _ = ledger_file
    tag = unique_id("f")
    broken = spec_with(
        estate_env,
        freeze={"run": ["sh", "-c", f"count-calls {tag} && appctl freeze"], "undo": ["false"]},
        **{"switch-traffic": {"run": ["route", "nowhere"]}},
    )
    path = write_spec(broken, tmp_path / "specs")
    rc = signed_context(ledger, broken, path, tmp_path / "home")
    first = in_flow(lambda: cut_over(rc))
    assert first.state is SagaState.INCOMPLETE and estate_env.calls("legacy", tag) == 1
    fixed = spec_with(
        estate_env,
        freeze={"run": ["sh", "-c", f"count-calls {tag} && appctl freeze"], "undo": ["appctl", "unfreeze"]},
        **{"switch-traffic": {"run": ["route", "nowhere"]}},
    )
    fixed = fixed.model_copy(update={"system": broken.system})
    again = in_flow(lambda: cut_over(resumed_context(ledger, fixed, path, tmp_path / "home", rc.run.id)))
    assert again.state is SagaState.COMPENSATED, again.summary()
    assert estate_env.calls("legacy", tag) == 1  # the freeze was not run again
    assert pay(estate_env.app_url("legacy")).status_code == 201


def test_a_failing_undo_ends_rollback_incomplete_naming_what_is_left(
    estate_env: Any, ledger_file: tuple[Ledger, str], tmp_path: Path, prefect_server: Any
) -> None:
    ledger, _ = ledger_file
    spec = spec_with(estate_env, freeze={"undo": ["false"]}, **{"switch-traffic": {"run": ["route", "nowhere"]}})
    rc = signed_context(ledger, spec, write_spec(spec, tmp_path / "specs"), tmp_path / "home")
    outcome, _ = in_flow(lambda: (o := cut_over(rc), record_and_open_retention(rc, o)))
    assert outcome.state is SagaState.INCOMPLETE
    assert (
        len(outcome.remaining) == 1
        and "undo step 'freeze'" in outcome.remaining[0]
        and "exited 1" in outcome.remaining[0]
    )
    assert "ROLLBACK INCOMPLETE" in outcome.summary()
    assert lifecycle.current_state(ledger, spec.system.id) is LifecycleState.ROLLBACK_INCOMPLETE
    finished = [e for e in audit.events(ledger) if e.action == "cutover.finished"]
    assert finished[0].outcome.value == "failed" and finished[0].detail["remaining"] == outcome.remaining


def test_a_data_mismatch_blocks_the_traffic_switch(
    estate_env: Any, ledger_file: tuple[Ledger, str], tmp_path: Path, prefect_server: Any
) -> None:
    ledger, _ = ledger_file
    assert pay(estate_env.app_url("legacy")).status_code == 201  # legacy now has a row the cloud lacks
    spec = spec_with(estate_env, **{"final-sync": {"run": ["true"]}})
    rc = signed_context(ledger, spec, write_spec(spec, tmp_path / "specs"), tmp_path / "home")
    outcome = in_flow(lambda: cut_over(rc))
    assert outcome.state is SagaState.COMPENSATED and outcome.failed_step == "verify-rows"
    assert "payments" in (outcome.error or "") and "only in source" in (outcome.error or "")
    assert ledger.get_step(rc.run.id, "switch-traffic") is None  # never started
    assert whoami(estate_env) == "legacy"


def test_a_second_cutover_of_the_same_system_is_refused_with_the_running_ones_id(
    estate_env: Any, ledger_file: tuple[Ledger, str], tmp_path: Path
) -> None:
    ledger, _ = ledger_file
    spec = spec_with(estate_env)
    rc = signed_context(ledger, spec, write_spec(spec, tmp_path / "specs"), tmp_path / "home")
    with pytest.raises(ConcurrencyRefused, match=f"already running: run {rc.run.id}.*resume=true"):
        claim(ledger, spec.system.id, RunKind.CUTOVER, flow_run_id="another", resume=False, actor="test")
    taken = claim(ledger, spec.system.id, RunKind.CUTOVER, flow_run_id="another", resume=True, actor="test").run
    assert taken.id == rc.run.id


def killed_during_step_two(
    ledger: Ledger, spec: Spec, spec_path: Path, url: str, home: Path, estate: Any, tag: str
) -> Any:
    """Signed, cutting over in a separate process that is killed with SIGKILL once step two started."""
    rc = signed_context(ledger, spec, spec_path, home)
    lifecycle.transition(ledger, spec.system.id, LifecycleState.CUTTING_OVER, actor="test", reason="killed below")
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.cutover_harness", str(spec_path), rc.run.id, url, str(home)],
        cwd=REPO,
        env={**os.environ},
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: estate.calls("legacy", f"{tag}-two") >= 1,
            what=f"step two ({tag}-two) to start on legacy",
            timeout_s=120,
            interval_s=0.1,
        )
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    return rc


def _killed_and_resumed(
    estate_env: Any, ledger_file: tuple[Ledger, str], tmp_path: Path, check: list[str] | None
) -> tuple[Any, Any, str, str]:
    """A cutover killed during step two (whose check is ``check``, or grep for its call) and then resumed:
    the outcome, the reconciliation notes in the ledger, the legacy host's calls log and the tag of the calls."""
    ledger, url = ledger_file
    tag = unique_id("k")
    calls_log = estate_env.hosts["legacy"].root_dir / "data" / "calls.log"
    steps = [
        {
            "kind": "ssh",
            "id": "one",
            "name": "one",
            "host": "legacy",
            "run": ["count-calls", f"{tag}-one"],
            "undo": ["true"],
        },
        {
            "kind": "ssh",
            "id": "two",
            "name": "two",
            "host": "legacy",
            "run": ["sh", "-c", f"count-calls {tag}-two; sleep 20"],
            "undo": ["true"],
            "check": check or ["grep", "-q", f"^{tag}-two", str(calls_log)],
        },
        {
            "kind": "ssh",
            "id": "three",
            "name": "three",
            "host": "legacy",
            "run": ["count-calls", f"{tag}-three"],
            "undo": ["true"],
        },
    ]
    data = demo_spec(estate_env, system_id=unique_id("hrss"))
    data["cutover"]["steps"] = steps
    spec = Spec.model_validate(data)
    spec_path = write_spec(spec, tmp_path / "specs")
    rc = killed_during_step_two(ledger, spec, spec_path, url, tmp_path / "home", estate_env, tag)
    assert ledger.get_step(rc.run.id, "two").status is StepStatus.STARTED  # type: ignore[union-attr]
    outcome = in_flow(lambda: cut_over(resumed_context(ledger, spec, spec_path, tmp_path / "home", rc.run.id)))
    notes = [s.detail["reconciled"] for s in ledger.list_steps(rc.run.id) if "reconciled" in (s.detail or {})]
    return outcome, notes, calls_log.read_text(), tag


def test_a_worker_killed_mid_cutover_resumes_from_the_ledger_without_repeating_a_step(
    estate_env: Any, ledger_file: tuple[Ledger, str], tmp_path: Path, prefect_server: Any
) -> None:
    outcome, notes, text, tag = _killed_and_resumed(estate_env, ledger_file, tmp_path, check=None)
    assert outcome.state is SagaState.SUCCEEDED, outcome.summary()
    assert [text.count(f"{tag}-{name}\t") for name in ("one", "two", "three")] == [1, 1, 1]
    assert len(notes) == 1 and notes[0].startswith("check passed")


def test_a_step_whose_check_fails_after_a_crash_runs_again_saying_what_the_check_expected_and_got(
    estate_env: Any, ledger_file: tuple[Ledger, str], tmp_path: Path, prefect_server: Any
) -> None:
    outcome, notes, text, tag = _killed_and_resumed(estate_env, ledger_file, tmp_path, check=["sh", "-c", "exit 1"])
    assert outcome.state is SagaState.SUCCEEDED, outcome.summary()
    assert [text.count(f"{tag}-{name}\t") for name in ("one", "two", "three")] == [1, 2, 1]
    assert len(notes) == 1 and notes[0].startswith(
        "check failed, running the step again — step two-check0:check on host legacy exited 1, expected 0: "
        "sh -c 'exit 1'"
    )


@pytest.fixture(scope="module")
def pg_estate(make_pg_database: Any) -> Iterator[Any]:
    """A second estate whose app instances keep their data in PostgreSQL databases."""
    import shutil

    from tests.fixtures.estate import make_estate_root, start_test_estate

    root = make_estate_root("cutover-pg-estate-")
    urls = {name: make_pg_database() for name in ("legacy", "cloud_test", "cloud")}
    running = start_test_estate(root, app_db_urls=urls, seed_rows=500)
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_the_happy_path_on_postgresql_copies_verifies_and_switches(
    pg_estate: Any,
    ledger_file: tuple[Ledger, str],
    tmp_path: Path,
    prefect_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in secret_env(pg_estate).items():
        monkeypatch.setenv(key, value)
    ledger, _ = ledger_file
    assert pay(pg_estate.app_url("legacy")).status_code == 201  # the final sync must carry it
    spec = spec_with(pg_estate)
    rc = signed_context(ledger, spec, write_spec(spec, tmp_path / "specs"), tmp_path / "home")
    outcome, ends = in_flow(lambda: (o := cut_over(rc), record_and_open_retention(rc, o)))
    assert outcome.state is SagaState.SUCCEEDED, outcome.summary()
    assert ends is not None and whoami(pg_estate) == "cloud"
    verify = ledger.get_step(rc.run.id, "verify-rows")
    assert verify is not None and verify.detail["tables"]["payments"]["source_rows"] == 501
    assert rows(pg_estate, "cloud")["payments"] == 501
    baseline = ledger.divergence_baseline(rc.run.id)
    assert baseline is not None and {t["method"] for t in baseline.tables.values()} == {"postgresql-counters"}


def test_after_a_crash_a_step_whose_definition_changed_runs_again_and_an_unchanged_one_is_replayed(
    estate_env: Any, ledger_file: tuple[Ledger, str], tmp_path: Path, prefect_server: Any
) -> None:
    ledger, url = ledger_file
    tag = unique_id("d")
    calls_log = estate_env.hosts["legacy"].root_dir / "data" / "calls.log"

    def steps(two: list[str]) -> list[dict[str, Any]]:
        check = ["grep", "-q", f"^{tag}-two", str(calls_log)]
        runs = {"one": ["count-calls", f"{tag}-one"], "two": two, "three": ["count-calls", f"{tag}-three"]}
        return [
            {"kind": "ssh", "id": i, "name": i, "host": "legacy", "run": run, "undo": ["true"]}
            | ({"check": check} if i == "two" else {})
            for i, run in runs.items()
        ]

    data = demo_spec(estate_env, system_id=unique_id("hrss"))
    data["cutover"]["steps"] = steps(["sh", "-c", f"count-calls {tag}-two; sleep 20"])
    spec = Spec.model_validate(data)
    spec_path = write_spec(spec, tmp_path / "specs")
    rc = killed_during_step_two(ledger, spec, spec_path, url, tmp_path / "home", estate_env, tag)
    data["cutover"]["steps"] = steps(["count-calls", f"{tag}-two-edited"])
    edited = Spec.model_validate(data)
    edited_path = write_spec(edited, tmp_path / "edited")

    outcome = in_flow(lambda: cut_over(resumed_context(ledger, edited, edited_path, tmp_path / "home", rc.run.id)))

    assert outcome.state is SagaState.SUCCEEDED, outcome.summary()
    assert [s.step_id for s in outcome.steps if s.outcome == "replayed"] == ["one"]
    names = ("one", "two", "two-edited", "three")
    assert [estate_env.calls("legacy", f"{tag}-{name}") for name in names] == [1, 1, 1, 1]
    two = [(s.attempt, s.status) for s in ledger.list_steps(rc.run.id) if s.step_id == "two"]
    assert two == [(1, StepStatus.UNKNOWN), (2, StepStatus.SUCCEEDED)]
    assert audit.verify(ledger).ok
