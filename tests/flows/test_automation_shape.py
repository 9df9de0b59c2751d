"""Two automations that do the same thing compare the same, however their event sets were built."""

from __future__ import annotations

from datetime import timedelta

from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from flows._automation_shape import automation_shape

NAMES = [f"prefect.flow-run.{name}" for name in ("Completed", "Failed", "Cancelled", "Crashed", "Paused", "Suspended")]


def _automation(expect: set[str], within_s: float = 60) -> AutomationCore:
    return AutomationCore(
        name="same",
        trigger=EventTrigger(expect=expect, posture=Posture.Proactive, threshold=1, within=timedelta(seconds=within_s)),
        actions=[ChangeFlowRunState(state=StateType.CRASHED)],
    )


def test_the_same_events_in_another_order_are_the_same_automation() -> None:
    built_forward = _automation(set(NAMES))
    built_backward = _automation(set())
    for name in reversed(NAMES):
        built_backward.trigger.expect.add(name)  # type: ignore[attr-defined]
    round_trip = AutomationCore.model_validate_json(built_backward.model_dump_json())

    assert automation_shape(built_forward) == automation_shape(round_trip) == automation_shape(built_backward)


def test_another_silence_is_another_automation() -> None:
    assert automation_shape(_automation(set(NAMES), 60)) != automation_shape(_automation(set(NAMES), 90))
