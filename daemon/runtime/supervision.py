"""Keep systemd informed while the daemon runs: READY=1, STATUS= lines and watchdog pings.

READY=1 waits until the database is open, the intake has logged in to IMAP and an SMTP login
worked, so `systemctl start` returning means mail is really flowing. The watchdog is pinged from
the event loop, and only while the intake thread is alive: a hung loop or a dead intake stops
the pings and systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from daemon.runtime.health import short_duration, status_line, take_snapshot
from daemon.runtime.sd_notify import Notifier
from daemon.storage.models import utcnow

log = logging.getLogger("daemon.supervision")

_MAX_PROBE_BACKOFF = 60.0


class ImapState(Protocol):
    """What the supervision reads from the intake (the IMAP thread writes these attributes)."""

    @property
    def last_success_at(self) -> datetime | None: ...

    @property
    def consecutive_failures(self) -> int: ...


class Supervision:
    def __init__(self, notifier: Notifier, sessions: sessionmaker[Session], imap: ImapState,
                 probe_smtp: Callable[[], Awaitable[None]], healthy: Callable[[], bool],
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.notifier = notifier
        self.sessions = sessions
        self.imap = imap
        self.probe_smtp = probe_smtp
        self.healthy = healthy
        self.clock = clock
        self.ready = False
        self.stopping = False

    def activity(self) -> str:
        """The first words of the status line: what the daemon is doing or waiting for."""
        if self.stopping:
            return "stopping"
        if self.imap.consecutive_failures and self.imap.last_success_at is not None:
            since = short_duration(self.clock() - self.imap.last_success_at)
            return f"IMAP unreachable (last contact {since} ago)"
        if self.imap.consecutive_failures:
            return "IMAP unreachable"
        if not self.ready:
            return "starting: waiting for IMAP and SMTP"
        return "idle"

    def describe(self) -> str:
        """The STATUS= line; the database part is left out while the database cannot be read."""
        try:
            with self.sessions() as session:
                snapshot = take_snapshot(session)
        except Exception as exc:
            return f"{self.activity()}, database unavailable ({type(exc).__name__})"
        return status_line(self.activity(), snapshot, self.clock())

    async def announce_ready(self, stop: asyncio.Event) -> None:
        """Send READY=1 once IMAP and SMTP have both answered; retries SMTP with backoff."""
        failures = 0
        while not stop.is_set():
            try:
                await self.probe_smtp()
                break
            except Exception as exc:
                failures += 1
                if failures == 1:
                    log.warning("SMTP not reachable yet (%s: %s); READY waits for it",
                                type(exc).__name__, exc)
                await _wait(stop, min(_MAX_PROBE_BACKOFF, 2.0 ** min(failures - 1, 10)))
        while not stop.is_set() and self.imap.last_success_at is None:
            await _wait(stop, 0.2)
        if stop.is_set():
            return
        self.ready = True
        self.notifier.ready(await asyncio.to_thread(self.describe))
        log.info("ready: database open, IMAP and SMTP reached")

    async def refresh_status(self) -> None:
        if self.notifier.enabled:
            self.notifier.status(await asyncio.to_thread(self.describe))

    async def ping_watchdog(self) -> None:
        """A coroutine, so it runs on the event loop: a blocked loop sends no ping."""
        if self.healthy():
            self.notifier.watchdog()
        elif self.notifier.enabled:
            log.error("intake not running: no watchdog ping, systemd will restart the service")

    def announce_stopping(self) -> None:
        self.stopping = True
        self.notifier.stopping("stopping: finishing the work in hand")


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
