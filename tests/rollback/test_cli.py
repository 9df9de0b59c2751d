"""``cutover rollback`` and ``cutover decommission`` (cli/_retention.py)."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli
from cutover import audit, lifecycle
from cutover.ledger import Ledger, LifecycleState, RetentionCloseReason
from cutover.settings import Settings, get_settings
from demo.estate import Estate
from tests.rollback._retained import cut_over_for_real, estate_spec, retained_on_paper, whoami
from tests.specbuilder import write_spec

app = cli.register_commands()


@pytest.fixture
def configured(tmp_path: Path, rb_ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The CLI's settings point at the test's ledger and specs directory (no Prefect server)."""
    specs = tmp_path / "specs"
    monkeypatch.setenv("CUTOVER_DATABASE_URL", rb_ledger.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CUTOVER_SPECS_DIR", str(specs))
    monkeypatch.setenv("CUTOVER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    get_settings.cache_clear()
    yield specs
    get_settings.cache_clear()


@pytest.mark.usefixtures("demo_secrets")
def test_cutover_rollback_without_a_server_rolls_back_in_process(
    configured: Path, clean_estate: Estate, rb_ledger: Ledger, settings: Settings
) -> None:
    spec = estate_spec(clean_estate)
    write_spec(spec, configured)
    cut_over_for_real(clean_estate, rb_ledger, spec, settings)

    result = CliRunner().invoke(app, ["rollback", spec.system.id])

    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output and whoami(clean_estate) == "legacy"
    assert lifecycle.current_state(rb_ledger, spec.system.id) is LifecycleState.ROLLED_BACK
    started = [e for e in audit.events(rb_ledger, object=f"system:{spec.system.id}") if e.action == "rollback.started"]
    assert [e.actor for e in started] == [f"cli:{getpass.getuser()}"]  # where it came from: `cutover rollback`


def test_cutover_rollback_of_a_decommissioned_system_exits_refused(
    configured: Path, estate: Estate, rb_ledger: Ledger
) -> None:
    retained = retained_on_paper(rb_ledger, estate_spec(estate))
    write_spec(retained.spec, configured)
    rb_ledger.close_retention_window(retained.system_id, RetentionCloseReason.DECOMMISSIONED)
    lifecycle.transition(rb_ledger, retained.system_id, LifecycleState.DECOMMISSIONED, actor="t", reason="exit")

    result = CliRunner().invoke(app, ["rollback", retained.system_id])

    assert result.exit_code == 3 and "decommissioned" in result.output


def test_cutover_decommission_before_the_window_ends_exits_refused(
    configured: Path, estate: Estate, rb_ledger: Ledger
) -> None:
    retained = retained_on_paper(rb_ledger, estate_spec(estate))
    write_spec(retained.spec, configured)

    result = CliRunner().invoke(app, ["decommission", retained.system_id])

    assert result.exit_code == 3 and "retention window runs until" in result.output
