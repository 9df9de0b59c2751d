"""The cutover window and how long a joint sign-off stays valid (pure time arithmetic, no Prefect).

Public surface (``CutoverWindow``, the spec's model, is re-exported from :mod:`cutover.spec`)::

    SHANGHAI                                    ZoneInfo("Asia/Shanghai"): windows are written in it
    is_open(window, at) -> bool                 None (no window) is always open
    next_opening(window, at) -> datetime        ``at`` if open now, else the next opening (UTC)
    closes_at(window, at) -> datetime | None    end of the window containing ``at`` (UTC)
    describe(window) -> str                     "Mon–Fri 22:00–06:00 (next day) Asia/Shanghai 北京时间"
    signoff_expires_at(signed_at, valid_for)    the earliest signature plus ``valid_for`` (UTC)
    decide_start(window, valid_for, signed_at, now) -> StartDecision

A window opens at ``from`` on each of its days and closes at ``until`` (the next morning when
``until`` is earlier): the opening belongs to the window, the closing does not. A joint sign-off is
only as fresh as its oldest signature. Every datetime taken must be timezone-aware; every datetime
returned is in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cutover._durations import format_duration
from cutover.spec import CutoverWindow, Weekday

__all__ = [
    "SHANGHAI",
    "CutoverWindow",
    "StartDecision",
    "closes_at",
    "decide_start",
    "describe",
    "is_open",
    "next_opening",
    "signoff_expires_at",
]

SHANGHAI = ZoneInfo("Asia/Shanghai")
_WEEKDAYS = list(Weekday)


def is_open(window: CutoverWindow | None, at: datetime) -> bool:
    """Whether cutover may start at ``at``; without a window it always may."""
    return window is None or _interval_containing(window, _aware(at, "at")) is not None


def next_opening(window: CutoverWindow | None, at: datetime) -> datetime:
    """``at`` itself (in UTC) if the window is open then, else the next time it opens."""
    at = _aware(at, "at")
    if window is None or _interval_containing(window, at) is not None:
        return at
    return next(start for start, _ in _intervals(window, at) if start > at)


def closes_at(window: CutoverWindow | None, at: datetime) -> datetime | None:
    """When the window open at ``at`` closes; None if it is closed then or there is no window."""
    interval = None if window is None else _interval_containing(window, _aware(at, "at"))
    return interval[1] if interval else None


def describe(window: CutoverWindow | None) -> str:
    """The window in plain words, e.g. ``Mon–Fri 22:00–06:00 (next day) Asia/Shanghai 北京时间``."""
    if window is None:
        return "any time (no cutover window) 任何时间"
    next_day = " (next day)" if window.overnight else ""
    return f"{_days_text(window.days)} {window.from_:%H:%M}–{window.until:%H:%M}{next_day} Asia/Shanghai 北京时间"


def signoff_expires_at(signed_at: Iterable[datetime], valid_for: timedelta) -> datetime:
    """When a joint sign-off stops being valid: its earliest signature plus ``valid_for`` (UTC)."""
    times = [_aware(moment, "signed_at") for moment in signed_at]
    if not times:
        raise ValueError("signed_at is empty; a sign-off's expiry is counted from its signatures")
    return min(times) + valid_for


@dataclass(frozen=True)
class StartDecision:
    """Whether a signed-off cutover may start, when, and why (``reason`` is for the run's log and the form)."""

    start_at: datetime
    expires_at: datetime
    ok: bool
    reason: str


def decide_start(
    window: CutoverWindow | None, valid_for: timedelta, signed_at: Iterable[datetime], now: datetime
) -> StartDecision:
    """Start at the next opening of the window if the joint sign-off is still valid then."""
    now = _aware(now, "now")
    expires_at = signoff_expires_at(signed_at, valid_for)
    start_at = next_opening(window, now)
    ok = now < expires_at and start_at < expires_at
    return StartDecision(start_at, expires_at, ok, _reason(window, valid_for, now, start_at, expires_at))


def _reason(
    window: CutoverWindow | None, valid_for: timedelta, now: datetime, start_at: datetime, expires_at: datetime
) -> str:
    valid = f"the joint sign-off is valid for {format_duration(valid_for)} from its earlier signature"
    again = "Ask both parties for a new joint sign-off"
    if now >= expires_at:
        return f"The joint sign-off expired at {_when(expires_at)}; {valid}. {again}."
    if start_at >= expires_at:
        return (
            f"The cutover window opens at {_when(start_at)}, but the joint sign-off expires before it, at "
            f"{_when(expires_at)} ({valid}). {again} closer to the window, within {format_duration(valid_for)} "
            f"of {_when(start_at)}."
        )
    when = "now" if start_at == now else f"when the cutover window opens at {_when(start_at)}"
    return f"Cutover starts {when}; the joint sign-off is valid until {_when(expires_at)}."


# ------------------------------------------------------------------------------- intervals
def _interval_containing(window: CutoverWindow, at: datetime) -> tuple[datetime, datetime] | None:
    return next(((start, end) for start, end in _intervals(window, at) if start <= at < end), None)


def _intervals(window: CutoverWindow, at: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The window's (opening, closing) pairs in UTC, in order, from the day before ``at`` (Shanghai) for
    nine days: the night before may still be open, and every window opens within a week."""
    first = at.astimezone(SHANGHAI).date() - timedelta(days=1)
    for offset in range(9):
        day = first + timedelta(days=offset)
        if _WEEKDAYS[day.weekday()] in window.days:
            closing_day = day + timedelta(days=1) if window.overnight else day
            yield _utc(day, window.from_), _utc(closing_day, window.until)


def _utc(day: date, clock: time) -> datetime:
    return datetime.combine(day, clock, tzinfo=SHANGHAI).astimezone(UTC)


def _days_text(days: tuple[Weekday, ...]) -> str:
    if len(days) == len(_WEEKDAYS):
        return "Daily"
    runs: list[list[Weekday]] = []
    for day in days:
        if runs and _WEEKDAYS.index(day) == _WEEKDAYS.index(runs[-1][-1]) + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ", ".join(
        f"{_name(run[0])}–{_name(run[-1])}" if len(run) > 2 else ", ".join(map(_name, run)) for run in runs
    )


def _name(day: Weekday) -> str:
    return day.value.capitalize()


def _when(moment: datetime) -> str:
    local = moment.astimezone(SHANGHAI)
    return f"{local:%a %Y-%m-%d %H:%M} Asia/Shanghai ({moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} is a naive datetime ({moment.isoformat()}); pass a timezone-aware one")
    return moment.astimezone(UTC)
