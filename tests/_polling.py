"""The one way tests wait for something another process or thread does: poll until it is ready.

The deadline is measured on ``time.monotonic()``; a wait never sleeps past it, and a slow machine
only makes a wait longer, never wrong. Use it instead of a fixed ``time.sleep``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout_s: float,
    ready: Callable[[T], bool] = bool,
    interval_s: float = 0.2,
) -> T:
    """Call ``probe`` every ``interval_s`` until ``ready`` holds for its value; return that value.

    ``probe`` returning None is never ready; otherwise ``ready`` (by default: the value is truthy)
    decides. ``probe`` is called at least once. After ``timeout_s`` an ``AssertionError`` names
    ``what`` was awaited and the last value seen. An exception from ``probe`` or ``ready`` ends the
    wait at once: raise one when waiting longer cannot help (the process that should answer died).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None and ready(value):
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}; last seen: {value!r}")
        time.sleep(min(interval_s, left))
