"""The one-click rollback flow (flows/rollback.py): it says first how much it carries back, and who asked."""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prefect._internal.schemas.fields import CreatedBy

from cutover.ledger import RunKind
from cutover.runtime import find_spec, open_ledger, register
from cutover.settings import get_settings
from flows.deployments import VIA_PREFECT, rollback_deployment
from flows.rollback import REFUSED, UNKNOWN_PREFECT_USER, requested_by, rollback_flow
from tasks.divergence import Divergence, Method, TableChange

ROOT = Path(__file__).resolve().parents[2]
HRSS = "hrss-social-insurance"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private ledger (SQLite) and a copy of the example specs; HRSS registered, not in retention."""
    shutil.copytree(ROOT / "cutover_specs", tmp_path / "specs", ignore=shutil.ignore_patterns("*.json"))
    monkeypatch.setenv("CUTOVER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CUTOVER_SPECS_DIR", str(tmp_path / "specs"))
    monkeypatch.delenv("CUTOVER_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    register(open_ledger(), find_spec(HRSS)[1], actor="test")
    yield tmp_path
    get_settings.cache_clear()


def notices(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "this rollback carries back" in r.getMessage()]


def test_a_rollback_before_any_divergence_sample_says_the_amount_is_unknown(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cutover")

    state = rollback_flow.fn(system_id=HRSS, actor="test")

    assert notices(caplog) == [
        "this rollback carries back an unknown number of changed rows: unknown, no divergence sample yet"
    ]
    assert getattr(state, "name", None) == REFUSED  # not in retention: nothing was done after the notice


def test_a_rollback_says_how_many_changed_rows_it_carries_back_and_how_far_behind_the_original_is(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cutover")
    ledger = open_ledger()
    run = ledger.create_run(HRSS, RunKind.CUTOVER)
    ledger.open_retention_window(HRSS, run.id, ledger.now() + timedelta(days=92))
    found = Divergence([TableChange("payments", Method.COUNTERS, 40, 2, 0)], behind_s=3600.0)
    ledger.record_divergence(found.record(HRSS, run.id))

    rollback_flow.fn(system_id=HRSS, actor="test")

    [notice] = notices(caplog)
    assert notice.startswith(
        "this rollback carries back 42 changed rows; the original is 3600 seconds behind "
        "(no replication: it stopped at the cutover) (measured "
    )


def test_the_one_click_deployment_passes_the_prefect_actor_not_a_claim_that_it_was_the_ui() -> None:
    parameters = rollback_deployment("hrss").parameters

    assert parameters["actor"] == VIA_PREFECT


def test_a_run_started_through_prefect_without_a_known_creator_says_so_honestly() -> None:
    assert requested_by(VIA_PREFECT, None) == UNKNOWN_PREFECT_USER == "prefect api (ui or cli)"
    assert requested_by("ui", None) == UNKNOWN_PREFECT_USER  # deployments created before this change


def test_a_run_whose_creator_prefect_knows_is_recorded_with_that_creator() -> None:
    user = CreatedBy(id=uuid.uuid4(), type="USER", display_value="wang.li")

    assert requested_by(VIA_PREFECT, user) == "prefect user:wang.li"


def test_an_actor_the_caller_named_is_kept_whatever_prefect_says() -> None:
    schedule = CreatedBy(id=uuid.uuid4(), type="SCHEDULE", display_value="every-5m")

    assert requested_by("cli:ops", schedule) == "cli:ops"
    assert requested_by("watch", None) == "watch"
