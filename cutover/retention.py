"""The retention window: the original system is kept at least N calendar months (N ≥ 3).

The one home of the notice's minimum (clause 四: 原系统至少保留3个月以上); the spec rules and the
window's end both read :data:`MIN_RETENTION_MONTHS` from here.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

from cutover.errors import ConfigurationError

#: The notice keeps the original system at least this many calendar months after cutover.
MIN_RETENTION_MONTHS = 3


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
    if months < MIN_RETENTION_MONTHS:
        raise ConfigurationError(
            f"a retention of {months} months is below the notice's minimum of {MIN_RETENTION_MONTHS} "
            f"(原系统至少保留3个月以上); set retention.months to {MIN_RETENTION_MONTHS} or more in the spec"
        )
    return add_months(cutover_at, months)
