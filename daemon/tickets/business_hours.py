"""When automatic mail to customers may go out: the shop's business hours and days, in its time zone.

Pure: a due time goes in, the first moment at or after it inside a window comes out, so an update
due on Sunday at 03:00 waits for Monday morning instead of waking a customer.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from daemon.config import WEEKDAYS


def next_window(due: datetime, timezone: str, start: time, end: time,
                days: Collection[str]) -> datetime:
    """The first instant >= `due` (naive UTC) inside the window; returned as naive UTC."""
    zone = ZoneInfo(timezone)
    local = due.replace(tzinfo=UTC).astimezone(zone)
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        if WEEKDAYS[day.weekday()] not in days:
            continue
        opens = datetime.combine(day, start, zone)
        closes = datetime.combine(day, end, zone)
        candidate = max(local, opens) if offset == 0 else opens
        if candidate < closes:
            return candidate.astimezone(UTC).replace(tzinfo=None)
    return due


def in_window(moment: datetime, timezone: str, start: time, end: time,
              days: Collection[str]) -> bool:
    return next_window(moment, timezone, start, end, days) == moment
