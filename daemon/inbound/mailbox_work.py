"""Work the mailboxes this instance holds: an IMAP intake thread and the sweeps of each.

A mailbox is worked only while its lock (daemon.inbound.mailbox_lock) is ours. `claim()` runs every few
seconds: it takes free mailboxes, starting their intake, and checks the ones it holds; a lock
lost with its database connection stops that mailbox's intake, so two instances do not work one
mailbox for longer than it takes to notice. On SQLite the lock is always ours and this is simply
one intake thread per mailbox.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import datetime

from daemon.inbound.intake import Intake
from daemon.inbound.mailbox_lock import MailboxLock
from daemon.storage.models import utcnow
from daemon.tickets.lifecycle import Lifecycle, SweepReport

log = logging.getLogger("daemon.mailbox_work")


class MailboxWorker:
    def __init__(self, lock: MailboxLock, intake_for: Callable[[threading.Event], Intake],
                 lifecycle: Lifecycle) -> None:
        self.name = lock.mailbox
        self.lock = lock
        self.lifecycle = lifecycle
        self.intake: Intake | None = None
        self._intake_for = intake_for
        self._stop = threading.Event()
        self._running: asyncio.Future[None] | None = None

    @property
    def active(self) -> bool:
        return self._running is not None

    def failed(self) -> bool:
        """The intake thread ended without being asked to: the daemon must not carry on silently."""
        return self._running is not None and self._running.done() and not self._stop.is_set()

    def check(self) -> None:
        """Re-raise what ended the intake thread, if it ended on its own."""
        if self._running is not None and self.failed():
            self._running.result()
            raise RuntimeError(f"mailbox {self.name}: the intake stopped unexpectedly")

    async def claim(self) -> bool:
        """Take the mailbox if it is free, give it up if its lock was lost; True while ours."""
        if self._running is not None:
            if await asyncio.to_thread(self.lock.held):
                return True
            log.warning("mailbox %s: lock lost, stopping its intake until it can be claimed again",
                        self.name)
            await self._stop_intake()
            return False
        if not await asyncio.to_thread(self.lock.acquire):
            return False
        log.info("mailbox %s: worked by this instance", self.name)
        self._stop = threading.Event()
        self.intake = self._intake_for(self._stop)
        self._running = asyncio.ensure_future(asyncio.to_thread(self.intake.run_forever))
        return True

    async def sweep(self) -> SweepReport | None:
        """The mailbox's scheduled work, only while this instance holds it."""
        if self._running is None:
            return None
        return await asyncio.to_thread(self.lifecycle.sweep)

    def interrupt(self) -> None:
        """Ask the intake to stop after the message in hand (safe from a signal handler)."""
        self._stop.set()

    async def close(self) -> None:
        try:
            await self._stop_intake()
        finally:
            await asyncio.to_thread(self.lock.close)

    async def _stop_intake(self) -> None:
        running, self._running = self._running, None
        self._stop.set()
        if running is not None:
            await running


class MailboxWorkers:
    """All mailboxes of the configuration, seen as one IMAP state by metrics and systemd status."""

    def __init__(self, workers: list[MailboxWorker], clock: Callable[[], datetime] = utcnow) -> None:
        self.workers = workers
        self.clock = clock

    async def claim(self) -> None:
        for worker in self.workers:
            await worker.claim()

    async def sweep(self) -> int:
        """Scheduled work of every mailbox held; returns how many emails it queued."""
        queued = 0
        for worker in self.workers:
            try:
                report = await worker.sweep()
            except Exception:
                log.exception("mailbox %s: scheduled work failed; it is retried at the next sweep",
                              worker.name)
                continue
            queued += report.total if report is not None else 0
        return queued

    @property
    def intakes(self) -> list[Intake]:
        return [w.intake for w in self.workers if w.active and w.intake is not None]

    @property
    def last_success_at(self) -> datetime | None:
        """The stalest IMAP contact among the mailboxes held; none held means nothing to reach."""
        intakes = self.intakes
        if not intakes:
            return self.clock()
        contacts = [intake.last_success_at for intake in intakes]
        return None if None in contacts else min(c for c in contacts if c is not None)

    @property
    def consecutive_failures(self) -> int:
        return max((intake.consecutive_failures for intake in self.intakes), default=0)

    def healthy(self) -> bool:
        return not any(worker.failed() for worker in self.workers)

    def check(self) -> None:
        for worker in self.workers:
            worker.check()

    def interrupt(self) -> None:
        for worker in self.workers:
            worker.interrupt()

    async def close(self) -> None:
        """Stop every intake and release every lock, even when one intake has failed."""
        failures: list[BaseException] = []
        for worker in self.workers:
            try:
                await worker.close()
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise failures[0]
