"""How much automatic mail one address or one ticket may get: a ladder of "N per window" rungs.

Classification stops the loops it recognises; this is the backstop for those it does not (an
auto-responder that looks human and opens a new ticket with every answer). Pure: the caller reads
when earlier automatic mail was queued and asks whether one more would climb over a rung.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from daemon.config import Rate

__all__ = ["Rate", "exceeded", "lookback"]


def lookback(ladder: Sequence[Rate]) -> tuple[timedelta, int]:
    """How far back, and how many of the most recent sends, the caller must read to decide."""
    if not ladder:
        return timedelta(0), 0
    return max(r.window for r in ladder), max(r.limit for r in ladder)


def exceeded(ladder: Iterable[Rate], sent_at: Sequence[datetime], now: datetime) -> Rate | None:
    """The first rung one more message would break, given when earlier ones were queued; else None."""
    for rate in ladder:
        since = now - rate.window
        if sum(1 for moment in sent_at if moment > since) >= rate.limit:
            return rate
    return None
