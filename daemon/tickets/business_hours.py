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


def business_seconds(start: datetime, end: datetime, timezone: str, opens: time, closes: time,
                     days: Collection[str]) -> float:
    """Seconds of [start, end] (naive UTC) that fall inside the window, counted day by day in
    the shop's time zone, so a night or a Sunday between two moments does not count."""
    if end <= start:
        return 0.0
    zone = ZoneInfo(timezone)
    first = start.replace(tzinfo=UTC).astimezone(zone)
    last = end.replace(tzinfo=UTC).astimezone(zone)
    if first.date() == last.date():  # the common case, a reply the same day: no day loop
        if WEEKDAYS[first.weekday()] not in days:
            return 0.0
        earliest, latest = max(first.time(), opens), min(last.time(), closes)
        return max(0.0, (datetime.combine(first.date(), latest)
                         - datetime.combine(first.date(), earliest)).total_seconds())
    total = 0.0
    day = first.date()
    while day <= last.date():
        if WEEKDAYS[day.weekday()] in days:
            lower = max(first, datetime.combine(day, opens, zone))
            upper = min(last, datetime.combine(day, closes, zone))
            if upper > lower:
                total += (upper - lower).total_seconds()
        day += timedelta(days=1)
    return total
