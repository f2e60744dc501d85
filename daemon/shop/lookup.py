"""Orders for the agents' notification: cached for a few minutes, and never holding mail up.

A notification is composed while its cause is being committed, so the shop gets one try per
order within the platform's time-out, and no failure of the shop's — not even an answer of an
unexpected shape — ever reaches the caller. After a failure the shop is left alone for `pause` (other
notifications go out at once, saying the shop did not answer) instead of each waiting out the
time-out again. Answers, "no such order" included, are kept for `keep`. Thread-safe: the intake
and the scheduler compose mail from different threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from daemon.shop.model import Order, Platform, ShopError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OrderInfo:
    number: str
    answered: bool  # False: the shop did not answer (down, slow, refused); `order` is then None
    order: Order | None  # None when answered: the shop has no such order


class OrderLookup:
    def __init__(self, platform: Platform, *, keep: timedelta = timedelta(minutes=5),
                 pause: timedelta = timedelta(seconds=60),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.platform = platform
        self._keep = keep.total_seconds()
        self._pause = pause.total_seconds()
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Order | None]] = {}
        self._failed_at: float | None = None

    def orders(self, numbers: Iterable[str]) -> list[OrderInfo]:
        return [self._one(number) for number in numbers]

    def _one(self, number: str) -> OrderInfo:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(number)
            if cached is not None and now - cached[0] < self._keep:
                return OrderInfo(number, True, cached[1])
            if self._failed_at is not None and now - self._failed_at < self._pause:
                return OrderInfo(number, False, None)
        try:
            order = self.platform.look_up_order(number)
        except Exception as error:
            # Whatever went wrong — an outage, or an answer of a shape no one foresaw — the
            # notification goes out without the order rather than not at all.
            problem = str(error) if isinstance(error, ShopError) else (
                f"unexpected answer from the shop ({type(error).__name__})")
            with self._lock:
                self._failed_at = self._clock()
            log.warning("order %s not shown to agents: %s", number, problem)
            return OrderInfo(number, False, None)
        with self._lock:
            self._failed_at = None
            self._cache[number] = (self._clock(), order)
            if len(self._cache) > 1000:
                oldest = sorted(self._cache.items(), key=lambda item: item[1][0])[:500]
                for key, _ in oldest:
                    del self._cache[key]
        return OrderInfo(number, True, order)
