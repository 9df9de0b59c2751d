"""The cutover window (Asia/Shanghai) and how long a joint sign-off stays valid, on fixed datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cutover.spec import CutoverPlan, CutoverWindow
from cutover.window import (
    SHANGHAI,
    closes_at,
    decide_start,
    describe,
    is_open,
    next_opening,
    signoff_expires_at,
)

# March 2026: Monday the 9th to Sunday the 15th; Monday the 16th.
WEEKDAY_NIGHTS = CutoverWindow.model_validate({"days": "weekdays", "from": "22:00", "until": "06:00"})


def shanghai(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=SHANGHAI)


def test_a_weekday_night_window_is_open_tuesday_night_and_closed_tuesday_noon() -> None:
    assert is_open(WEEKDAY_NIGHTS, shanghai(10, 23))
    assert not is_open(WEEKDAY_NIGHTS, shanghai(10, 12))


def test_the_friday_night_window_is_still_open_at_saturday_0559_and_closed_at_0600() -> None:
    assert is_open(WEEKDAY_NIGHTS, shanghai(14, 5, 59))
    assert not is_open(WEEKDAY_NIGHTS, shanghai(14, 6))
    assert closes_at(WEEKDAY_NIGHTS, shanghai(14, 5, 59)) == shanghai(14, 6)


def test_the_window_opens_at_from_and_the_night_belongs_to_the_day_it_starts() -> None:
    assert is_open(WEEKDAY_NIGHTS, shanghai(13, 22))  # Friday 22:00
    assert not is_open(WEEKDAY_NIGHTS, shanghai(14, 22))  # Saturday night: not a weekday night
    assert not is_open(WEEKDAY_NIGHTS, shanghai(9, 5))  # Monday 05:00 ends Sunday's night, which is closed


def test_the_next_opening_from_saturday_noon_is_monday_2200_in_utc() -> None:
    opening = next_opening(WEEKDAY_NIGHTS, shanghai(14, 12))
    assert opening == shanghai(16, 22)
    assert opening.tzinfo is UTC and opening == datetime(2026, 3, 16, 14, 0, tzinfo=UTC)


def test_the_next_opening_while_open_is_the_moment_itself() -> None:
    assert next_opening(WEEKDAY_NIGHTS, shanghai(10, 23)) == shanghai(10, 23)
    assert next_opening(None, shanghai(14, 12)) == shanghai(14, 12)


def test_a_window_within_one_day_closes_the_same_day() -> None:
    afternoons = CutoverWindow.model_validate({"days": ["sat", "sun"], "from": "14:00", "until": "18:00"})
    assert not afternoons.overnight
    assert closes_at(afternoons, shanghai(15, 15)) == shanghai(15, 18)
    assert next_opening(afternoons, shanghai(15, 18)) == shanghai(21, 14)


def test_no_window_is_always_open_and_never_closes() -> None:
    assert is_open(None, shanghai(14, 12))
    assert closes_at(None, shanghai(14, 12)) is None
    assert closes_at(WEEKDAY_NIGHTS, shanghai(10, 12)) is None


def test_times_in_other_zones_are_converted_to_shanghai_time() -> None:
    london_tuesday_3pm = datetime(2026, 3, 10, 15, 0, tzinfo=ZoneInfo("Europe/London"))  # Tue 23:00 Shanghai
    assert is_open(WEEKDAY_NIGHTS, london_tuesday_3pm)
    new_york_friday_noon = datetime(2026, 3, 13, 12, 0, tzinfo=ZoneInfo("America/New_York"))  # EDT: Sat 00:00
    assert is_open(WEEKDAY_NIGHTS, new_york_friday_noon)
    assert next_opening(WEEKDAY_NIGHTS, datetime(2026, 3, 10, 4, 0, tzinfo=UTC)) == shanghai(10, 22)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        is_open(WEEKDAY_NIGHTS, datetime(2026, 3, 10, 23, 0))
    with pytest.raises(ValueError, match="naive"):
        signoff_expires_at([datetime(2026, 3, 10, 23, 0)], timedelta(days=7))


def test_the_window_is_described_in_plain_words() -> None:
    assert describe(WEEKDAY_NIGHTS) == "Mon–Fri 22:00–06:00 (next day) Asia/Shanghai 北京时间"
    weekends = CutoverWindow.model_validate({"days": "weekends", "from": "9:00", "until": "17:30"})
    assert describe(weekends) == "Sat, Sun 09:00–17:30 Asia/Shanghai 北京时间"
    nightly = CutoverWindow.model_validate({"from": "23:00", "until": "01:00"})
    assert describe(nightly).startswith("Daily 23:00–01:00 (next day)")
    odd = CutoverWindow.model_validate({"days": ["sun", "mon", "wed", "thu", "fri"], "from": "1:00", "until": "2:00"})
    assert describe(odd).startswith("Mon, Wed–Fri, Sun 01:00–02:00")
    assert "任何时间" in describe(None)


def test_a_sign_off_expires_counted_from_its_earliest_signature() -> None:
    signed = [shanghai(10, 9), shanghai(9, 16)]
    assert signoff_expires_at(signed, timedelta(days=7)) == shanghai(16, 16)
    with pytest.raises(ValueError, match="empty"):
        signoff_expires_at([], timedelta(days=7))


def test_a_sign_off_stays_valid_seven_days_by_default() -> None:
    plan_fields = CutoverPlan.model_fields
    assert plan_fields["signoff_valid_for"].default == timedelta(days=7)
    assert plan_fields["window"].default is None


def test_a_sign_off_made_six_days_before_a_window_two_days_away_is_refused_naming_both_times() -> None:
    now = shanghai(14, 12)  # Saturday noon; the window opens Monday 22:00
    decision = decide_start(WEEKDAY_NIGHTS, timedelta(days=7), [shanghai(8, 12), shanghai(8, 15)], now)
    assert not decision.ok
    assert decision.start_at == shanghai(16, 22)
    assert decision.expires_at == shanghai(15, 12)
    assert "Mon 2026-03-16 22:00 Asia/Shanghai" in decision.reason
    assert "Sun 2026-03-15 12:00 Asia/Shanghai" in decision.reason
    assert "new joint sign-off" in decision.reason


def test_a_fresh_sign_off_waits_for_the_window_and_then_starts() -> None:
    now = shanghai(14, 12)
    decision = decide_start(WEEKDAY_NIGHTS, timedelta(days=7), [shanghai(14, 10), shanghai(14, 11)], now)
    assert decision.ok and decision.start_at == shanghai(16, 22)
    assert "when the cutover window opens at Mon 2026-03-16 22:00 Asia/Shanghai" in decision.reason


def test_without_a_window_a_valid_sign_off_starts_now() -> None:
    now = shanghai(14, 12)
    decision = decide_start(None, timedelta(days=7), [shanghai(14, 10)], now)
    assert decision.ok and decision.start_at == now and "starts now" in decision.reason


def test_a_sign_off_that_expired_before_now_is_refused_even_inside_the_window() -> None:
    now = shanghai(10, 23)  # inside Tuesday's window
    decision = decide_start(WEEKDAY_NIGHTS, timedelta(days=1), [shanghai(9, 22)], now)
    assert not decision.ok and decision.start_at == now
    assert "expired at Tue 2026-03-10 22:00 Asia/Shanghai" in decision.reason
    assert "new joint sign-off" in decision.reason


def test_a_sign_off_expiring_exactly_when_the_window_opens_is_refused() -> None:
    decision = decide_start(WEEKDAY_NIGHTS, timedelta(days=2), [shanghai(14, 22)], shanghai(14, 23))
    assert decision.expires_at == decision.start_at == shanghai(16, 22)
    assert not decision.ok
