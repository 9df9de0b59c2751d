"""flows/rollback.py: who a rollback started through Prefect itself is recorded as requested by."""

from __future__ import annotations

import uuid

from prefect._internal.schemas.fields import CreatedBy

from flows.deployments import VIA_PREFECT, rollback_deployment
from flows.rollback import UNKNOWN_PREFECT_USER, requested_by


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
