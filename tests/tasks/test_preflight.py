"""Preflight (tasks/preflight.py) on the real estate: sshd hosts, the gateway, the sample app's databases."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cutover import audit
from cutover.errors import PreflightFailed
from cutover.ledger import Ledger
from cutover.settings import Settings
from cutover.spec import Spec
from demo.estate import Estate
from demo.specs import CLOUD_DB_ENV, LEGACY_DB_ENV, demo_spec, secret_env
from tasks.preflight import CheckKind, Outcome, PreflightLimits, PreflightReport, record_preflight, run_preflight
from tests.specbuilder import unique_id

WRONG_KEY = "SHA256:" + "A" * 43


@pytest.fixture
def secrets(estate: Estate, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo spec's database URLs, where the spec says the secrets are (the environment)."""
    for name, value in secret_env(estate).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


def spec_of(estate: Estate, change: Any = None) -> Spec:
    data = demo_spec(estate, system_id=unique_id("pf"))
    if change is not None:
        change(data)
    return Spec.model_validate(data)


def item(report: PreflightReport, kind: CheckKind, target: str, host: str | None = None) -> Any:
    found = [i for i in report.items if i.kind is kind and i.target == target and (host is None or i.host == host)]
    assert len(found) == 1, [i.describe() for i in report.items]
    return found[0]


def failure_message(report: PreflightReport) -> str:
    with pytest.raises(PreflightFailed) as failed:
        report.raise_for_failures()
    return str(failed.value)


@pytest.mark.usefixtures("secrets")
def test_every_check_passes_on_the_healthy_estate_and_nothing_runs(estate: Estate, settings: Settings) -> None:
    marker = f"pf-{uuid.uuid4().hex[:8]}"

    def count_instead_of_freezing(data: dict[str, Any]) -> None:
        data["cutover"]["steps"][0].update(run=["count-calls", marker])

    report = run_preflight(spec_of(estate, count_instead_of_freezing), settings)

    assert report.ok, report.summary() + "\n" + "\n".join(i.describe() for i in report.items)
    report.raise_for_failures()
    assert {i.target for i in report.items if i.kind is CheckKind.HOST} == set(estate.hosts)
    assert item(report, CheckKind.PROGRAM, "count-calls", "legacy").passed
    assert item(report, CheckKind.PROGRAM, "route", "gateway").passed
    assert item(report, CheckKind.PROGRAM, "selftest", "cloud_test").passed  # an internal test's program
    assert item(report, CheckKind.PROGRAM, "appctl", "legacy").passed  # a rollback step's and readiness' program
    assert {i.target for i in report.items if i.kind is CheckKind.SECRET} == {"legacy-db", "cloud-db"}
    assert {i.target for i in report.items if i.kind is CheckKind.DATABASE} == {"legacy-db", "cloud-db"}
    assert item(report, CheckKind.URL, f"{estate.gateway_url}/healthz").passed
    assert item(report, CheckKind.READINESS, "legacy-ready").passed
    assert estate.calls("legacy", marker) == 0  # looked up, never run
    assert estate.route_target == "legacy"


@pytest.mark.usefixtures("secrets")
def test_a_wrong_pinned_host_key_is_refused_naming_the_host_and_both_fingerprints(
    estate: Estate, settings: Settings
) -> None:
    report = run_preflight(spec_of(estate, lambda d: d["hosts"]["gateway"].update(host_key=WRONG_KEY)), settings)

    gateway = item(report, CheckKind.HOST, "gateway")
    assert gateway.outcome is Outcome.FAILED
    assert item(report, CheckKind.PROGRAM, "route", "gateway").outcome is Outcome.NOT_CHECKED
    assert item(report, CheckKind.HOST, "legacy").passed
    message = failure_message(report)
    assert "host gateway: presented host key ssh-ed25519 " + estate.hosts["gateway"].host_key_fingerprint in message
    assert f"the spec pins {WRONG_KEY}" in message
    assert "update hosts.gateway.host_key" in message and "Nothing was changed" in message


@pytest.mark.usefixtures("secrets")
def test_a_host_key_pinned_as_another_hosts_key_line_is_shown_as_its_fingerprint(
    estate: Estate, settings: Settings
) -> None:
    other = estate.hosts["cloud"].host_public_key
    report = run_preflight(spec_of(estate, lambda d: d["hosts"]["legacy"].update(host_key=other)), settings)

    message = failure_message(report)
    assert "host legacy: presented host key ssh-ed25519 " + estate.hosts["legacy"].host_key_fingerprint in message
    assert "the spec pins ssh-ed25519 " + estate.hosts["cloud"].host_key_fingerprint in message


@pytest.mark.usefixtures("secrets")
def test_a_missing_program_is_named_with_its_host_and_the_step_that_runs_it(estate: Estate, settings: Settings) -> None:
    missing = f"no-such-program-{uuid.uuid4().hex[:6]}"
    report = run_preflight(
        spec_of(estate, lambda d: d["cutover"]["steps"][3].update(undo=[missing, "legacy"])), settings
    )

    assert item(report, CheckKind.PROGRAM, missing, "gateway").outcome is Outcome.FAILED
    message = failure_message(report)
    assert f"program {missing} on host gateway: not found on host gateway" in message
    assert "switch-traffic:undo" in message
    assert [i.label() for i in report.failures] == [f"program {missing} on host gateway"]


def test_an_unresolvable_secret_is_named_and_its_database_is_not_checked(
    estate: Estate, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CLOUD_DB_ENV, estate.db_url("cloud"))
    monkeypatch.delenv(LEGACY_DB_ENV, raising=False)
    report = run_preflight(spec_of(estate), settings)

    assert item(report, CheckKind.DATABASE, "legacy-db").outcome is Outcome.NOT_CHECKED
    assert item(report, CheckKind.DATABASE, "cloud-db").passed
    message = failure_message(report)
    assert f"secret legacy-db: secret 'legacy-db': environment variable {LEGACY_DB_ENV} is not set" in message
    assert [i.label() for i in report.failures] == ["secret legacy-db"]


def test_an_unreachable_database_is_named_by_its_secret_never_by_its_url_or_password(
    estate: Estate, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    url = f"postgresql+psycopg://cutover:{password}@127.0.0.1:1/nowhere"
    monkeypatch.setenv(LEGACY_DB_ENV, estate.db_url("legacy"))
    monkeypatch.setenv(CLOUD_DB_ENV, url)
    report = run_preflight(spec_of(estate), settings)

    assert item(report, CheckKind.DATABASE, "cloud-db").outcome is Outcome.FAILED
    message = failure_message(report)
    assert "database cloud-db: the database in secret cloud-db did not connect" in message
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    try:
        record_preflight(ledger, report, actor="test", detail={"run_id": "r1"})
        (event,) = [e for e in audit.events(ledger) if e.action == "preflight.failed"]
    finally:
        ledger.dispose()
    recorded = json.dumps(event.detail)
    for leaked in (url, password):
        assert leaked not in message and leaked not in recorded
        assert all(leaked not in i.detail for i in report.items)


def test_a_missing_sqlite_database_is_named_and_not_created(
    estate: Estate, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "gone" / "legacy.db"
    monkeypatch.setenv(LEGACY_DB_ENV, f"sqlite:///{missing}")
    monkeypatch.setenv(CLOUD_DB_ENV, estate.db_url("cloud"))
    report = run_preflight(spec_of(estate), settings)

    assert "the SQLite database file it names does not exist" in item(report, CheckKind.DATABASE, "legacy-db").detail
    assert not missing.exists()


@pytest.mark.usefixtures("secrets")
def test_an_unanswering_health_url_is_named(estate: Estate, settings: Settings) -> None:
    dead = "http://127.0.0.1:9/healthz"
    report = run_preflight(spec_of(estate, lambda d: d["cutover"]["health"][0].update(url=dead)), settings)

    assert item(report, CheckKind.URL, dead).outcome is Outcome.FAILED
    assert item(report, CheckKind.URL, f"{estate.gateway_url}/healthz").passed  # the rollback's check
    assert f"url {dead}: expected HTTP 200; got no answer (ConnectError" in failure_message(report)


@pytest.mark.usefixtures("secrets")
def test_a_check_that_gets_no_answer_fails_after_its_timeout_while_the_others_finish(
    estate: Estate, settings: Settings, silent_port: int
) -> None:
    silent = f"http://127.0.0.1:{silent_port}/healthz"

    def add_silent_things(data: dict[str, Any]) -> None:
        data["cutover"]["health"][0].update(url=silent, timeout="30s")
        data["hosts"]["mute"] = {**data["hosts"]["legacy"], "address": "127.0.0.1", "port": silent_port}

    report = run_preflight(spec_of(estate, add_silent_things), settings, limits=PreflightLimits(timeout_s=1.0))

    assert {i.label() for i in report.failures} == {f"url {silent}", "host mute"}
    mute = item(report, CheckKind.HOST, "mute").detail
    assert "did not complete the SSH handshake" in mute or "no answer within 1 s" in mute, mute
    assert all(i.duration_s < 5 for i in report.failures)
    assert report.duration_s < 15
    assert item(report, CheckKind.HOST, "legacy").passed
