"""Readiness of the retained original (tasks/readiness.py) on the real estate: what a check expected and got."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover.settings import Settings
from cutover.spec import Spec, SshStep
from demo.estate import Estate
from demo.specs import demo_spec
from tasks.readiness import check_one
from tests.specbuilder import unique_id


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


def _on_legacy(*run: str) -> SshStep:
    return SshStep(kind="ssh", id="status", name="status", host="legacy", run=list(run), changes_state=False)


def test_a_readiness_command_that_exits_non_zero_says_it_expected_0_and_what_it_printed(
    estate: Estate, settings: Settings
) -> None:
    spec = Spec.model_validate(demo_spec(estate, system_id=unique_id("ready")))

    seen = check_one(spec, _on_legacy("sh", "-c", "echo app is stopped; exit 3"), settings)

    assert not seen.passed
    assert seen.describe() == (
        "ready-status: NOT ready (host legacy: `sh -c 'echo app is stopped; exit 3'` exited 3, expected 0; "
        "last output: app is stopped)"
    )


def test_a_readiness_command_that_exits_0_is_ready(estate: Estate, settings: Settings) -> None:
    spec = Spec.model_validate(demo_spec(estate, system_id=unique_id("ready")))

    seen = check_one(spec, _on_legacy("true"), settings)

    assert seen.passed and seen.describe() == "ready-status: ready (host legacy: `true` exited 0)"
