"""Durations written the way ops people write them: ``30s``, ``5m``, ``2h``, ``14d``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
DURATION_PATTERN = r"^\d+(\.\d+)?(ms|s|m|h|d)$"


def parse_duration(value: Any) -> Any:
    """Turn ``"30s"`` into a :class:`timedelta`; refuse a bare number; leave others to pydantic.

    A bare number (``interval: 5``) is refused: seconds or minutes is a guess a spec must not leave
    to its reader.
    """
    if isinstance(value, (bool, int, float)):
        raise ValueError(f"{value!r} has no unit; write a number with a unit: 5s, 5m, 2h, 14d (or 500ms)")
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration; write a number with a unit: 30s, 5m, 2h, 14d")
        return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    return value


def format_duration(value: timedelta) -> str:
    """The shortest exact ``30s``/``5m``/``2h``/``14d`` form of ``value``."""
    seconds = value.total_seconds()
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms" if seconds < 1 else f"{seconds:g}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["30s", "5m", "14d"]}),
]
