"""The retention window: the original system is kept at least N calendar months (N ≥ 3)."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus whole calendar months, never less: a day missing in the target month
    (31 January + 1 month) rolls to the first day of the month after, so the window is at least
    ``months`` full months long."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    last_day = calendar.monthrange(year, month)[1]
    if moment.day <= last_day:
        return moment.replace(year=year, month=month)
    return moment.replace(year=year, month=month, day=last_day) + timedelta(days=1)


def window_end(cutover_at: datetime, months: int) -> datetime:
    """When the retention window of a cutover at ``cutover_at`` ends."""
    if months < 3:
        raise ValueError(f"retention of {months} months is below the notice's minimum of 3")
    return add_months(cutover_at, months)
