"""What makes two automations the same, for the idempotent set-up of :mod:`flows.recovery` and
:mod:`flows.notify`: their description, trigger, actions and whether they are enabled."""

from __future__ import annotations

from typing import Any

from prefect.events.schemas.automations import AutomationCore

__all__ = ["automation_shape"]


def automation_shape(automation: AutomationCore) -> dict[str, Any]:
    """The parts of ``automation`` that decide what it does, in a form that compares equal."""
    return {
        "description": automation.description,
        "trigger": _unordered(automation.trigger.model_dump(mode="json", exclude={"id"})),
        "actions": [action.model_dump(mode="json") for action in automation.actions],
        "enabled": automation.enabled,
    }


def _unordered(value: Any) -> Any:
    """``value`` with its lists of names sorted: a trigger's ``expect`` and ``after`` are sets, and a
    set's order in JSON depends on how it was built (and on the process's hash seed)."""
    if isinstance(value, dict):
        return {key: _unordered(item) for key, item in value.items()}
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return sorted(value)
    return value
