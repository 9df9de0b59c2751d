"""``cutover withdraw SYSTEM`` (cli/_signoff.py): refused, with the reason, once cutover has started."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli
from cutover import lifecycle, sm2
from cutover.ledger import Ledger, LifecycleState
from cutover.lifecycle import register_system
from cutover.settings import get_settings
from tests.rollback._retained import unique_system

_TO_CUTTING_OVER = (
    LifecycleState.TESTED,
    LifecycleState.REPORT_READY,
    LifecycleState.SIGNED,
    LifecycleState.CUTTING_OVER,
)


@pytest.fixture
def settings_env(tmp_path: Path, isolated_ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CUTOVER_DATABASE_URL", isolated_ledger.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CUTOVER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("settings_env")
def test_a_withdrawal_after_cutover_started_is_refused_with_the_reason_and_the_way_back(
    isolated_ledger: Ledger, tmp_path: Path
) -> None:
    system_id = unique_system("wd")
    register_system(
        isolated_ledger, system_id=system_id, name="社保", department="省人社厅", disposition="migrate", actor="t"
    )
    for state in _TO_CUTTING_OVER:
        lifecycle.transition(isolated_ledger, system_id, state, actor="t", reason="test set-up")
    key_file = tmp_path / "wang.li.key"
    sm2.write_private_key(key_file, sm2.generate_key(), None)

    result = CliRunner().invoke(
        cli.register_commands(), ["withdraw", system_id, "--as", "wang.li", "--key", str(key_file)]
    )

    assert result.exit_code == 3, result.output
    assert "cutover has started" in result.output and f"cutover rollback {system_id}" in result.output
