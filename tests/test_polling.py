"""The tests' one polling helper (tests/_polling.py)."""

from __future__ import annotations

import pytest

from tests._polling import wait_until


def test_a_ready_value_is_returned_at_the_first_probe() -> None:
    seen = iter(["first", "second"])
    assert wait_until(lambda: next(seen), what="a word", timeout_s=0) == "first"


def test_none_and_values_that_are_not_ready_are_probed_again() -> None:
    seen = iter([None, 0, 1, 2])
    assert wait_until(lambda: next(seen), ready=lambda n: n > 1, what="two", timeout_s=60, interval_s=0) == 2


def test_a_timeout_names_what_was_awaited_and_the_last_value_seen() -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0 s waiting for the gateway; last seen: 'legacy'"):
        wait_until(lambda: "legacy", ready=lambda route: route == "cloud", what="the gateway", timeout_s=0)


def test_an_exception_from_the_probe_ends_the_wait_at_once() -> None:
    def exited() -> bool:
        raise RuntimeError("the runner exited")

    with pytest.raises(RuntimeError, match="the runner exited"):
        wait_until(exited, what="a deployment", timeout_s=60)
