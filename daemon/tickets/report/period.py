"""Which period a report covers, from what a person types: "7d", "30d", "12h" or a date.

Pure. A date means the start of that day in the shop's time zone; a duration counts back from
`now`. The result is naive UTC, like every stored time.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

_AGO = re.compile(r"^\s*(\d{1,5})\s*(h|d|w)\s*$")
_UNIT = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(days=7)}


class PeriodError(ValueError):
    """What was typed is not a period; the message says what is expected."""


def moment(value: str, now: datetime, timezone: str) -> datetime:
    """ "30d" → now minus 30 days; "2026-11-01" → that day's midnight in the shop's zone."""
    ago = _AGO.match(value)
    if ago:
        return now - int(ago.group(1)) * _UNIT[ago.group(2)]
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise PeriodError(f"expected a duration such as 7d or 30d, or a date such as "
                          f"2026-11-01, got {value!r}") from None
    local = datetime.combine(day, datetime.min.time(), ZoneInfo(timezone))
    return local.astimezone(UTC).replace(tzinfo=None)


def period(since: str | None, until: str | None, now: datetime, timezone: str,
           default: str = "7d") -> tuple[datetime, datetime]:
    start = moment(since or default, now, timezone)
    end = moment(until, now, timezone) if until else now
    if end <= start:
        raise PeriodError(f"the period is empty: --until ({until}) is not after --since ({since})")
    return start, end
