"""Deliver the outbox over SMTP: each row's bytes as they were committed, retried with backoff.

A row is marked sent right after the server accepts it. A crash between acceptance and that
commit resends the identical message (same Message-ID, which clients deduplicate) — never a
second, different one. Each row is locked only while it is being sent, so several instances can
drain one outbox on PostgreSQL without sending anything twice.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import aiosmtplib
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from daemon.config import SmtpConfig
from daemon.storage.models import OutboxItem, OutboxStatus

log = logging.getLogger("daemon.outbox")

_FIRST_RETRY = timedelta(seconds=30)


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    errors: list[str] = field(default_factory=list)


def retry_delay(attempts: int, cap: timedelta) -> timedelta:
    """Exponential backoff from 30 s, capped, so an SMTP outage of hours costs few connections."""
    delay: timedelta = _FIRST_RETRY * (2 ** max(0, min(attempts - 1, 20)))
    return min(cap, delay)


def is_permanent(exc: Exception) -> bool:
    """A 5xx answer, or an envelope that cannot be written, means retrying cannot help."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(500 <= r.code < 600 for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPNotSupported | ValueError):
        # An internationalised address and a server without SMTPUTF8, or an address aiosmtplib
        # refuses to put in an envelope: this message can never go, the rest of the queue can.
        return True
    return isinstance(exc, aiosmtplib.SMTPResponseException) and 500 <= exc.code < 600


@dataclass(frozen=True)
class SendEvents:
    """Who hears of each delivery (the metrics); wired by the runtime, silent by default."""

    sent: Callable[[str], object] = lambda kind: None
    failed: Callable[[bool, int], object] = lambda permanent, count: None


class OutboxSender:
    def __init__(self, config: SmtpConfig, password: str | None, sessions: sessionmaker[Session],
                 clock: Callable[[], datetime], events: SendEvents = SendEvents()) -> None:
        self.config = config
        self.password = password
        self.sessions = sessions
        self.clock = clock
        self.events = events

    def _due(self, limit: int, ignore_schedule: bool, after: int) -> list[int]:
        """The ids of the next rows to try in this round (above `after`), in order; each row is
        loaded, bytes and all, only when its turn comes, so a long queue costs little memory."""
        with self.sessions() as session:
            query = select(OutboxItem.id).where(OutboxItem.status == OutboxStatus.PENDING,
                                                OutboxItem.id > after)
            if not ignore_schedule:
                query = query.where(OutboxItem.next_attempt_at <= self.clock())
            return list(session.scalars(query.order_by(OutboxItem.id).limit(limit)))

    def _claim(self, item_id: int, ignore_schedule: bool) -> tuple[Session, OutboxItem] | None:
        """Lock one row for the length of its SMTP transaction, if it is still there to send.

        On PostgreSQL `FOR UPDATE SKIP LOCKED` makes another instance pass over a row this one is
        sending, and the re-checked status passes over one it has sent or rescheduled meanwhile,
        so two instances never send the same row. The lock dies with the connection: a crash
        leaves the row pending for whoever comes next. SQLite has no row locks and needs none,
        one instance owning the file.
        """
        session = self.sessions()
        try:
            item = self._pending(session, item_id, ignore_schedule)
            if item is not None:
                return session, item
        except BaseException:
            session.close()
            raise
        session.close()
        return None

    def _pending(self, session: Session, item_id: int, ignore_schedule: bool = True) -> OutboxItem | None:
        query = select(OutboxItem).where(OutboxItem.id == item_id,
                                         OutboxItem.status == OutboxStatus.PENDING)
        if not ignore_schedule:
            query = query.where(OutboxItem.next_attempt_at <= self.clock())
        return session.scalars(query.with_for_update(skip_locked=True)).first()

    def _mark(self, item_id: int, status: str, error: str | None = None) -> None:
        """Record an attempt on a row nobody has claimed; one another instance is sending or has
        settled is left alone."""
        with self.sessions() as session:
            item = self._pending(session, item_id)
            if item is not None:
                self._settle(session, item, status, error)

    def _settle(self, claim: Session, item: OutboxItem, status: str, error: str | None = None
                ) -> None:
        """Record an attempt on a row in `claim`, the session that loaded and locked it, and
        commit: the row is not read again."""
        now = self.clock()
        item.attempts += 1
        if status == OutboxStatus.SENT:
            item.status, item.sent_at, item.last_error = status, now, None
        else:
            item.last_error = (error or "")[:2000]
            if status == OutboxStatus.FAILED:
                item.status = status
            else:
                item.next_attempt_at = now + retry_delay(item.attempts, self.config.retry_max)
        claim.commit()

    def pending_count(self) -> int:
        with self.sessions() as session:
            return session.scalar(
                select(func.count()).select_from(OutboxItem)
                .where(OutboxItem.status == OutboxStatus.PENDING)
            ) or 0

    async def deliver_due(self, limit: int = 200, ignore_schedule: bool = False) -> DeliveryReport:
        """Send everything due over one connection, `limit` rows loaded at a time; stops at the
        first connection-level failure. Each row is tried once per call, so a row deferred on
        the way is not retried in a loop even when the schedule is ignored."""
        report = DeliveryReport()
        ids = await asyncio.to_thread(self._due, limit, ignore_schedule, 0)
        if not ids:
            return report
        try:
            client = await open_smtp(self.config, self.password)
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self._defer_all(ids, exc, report)
            return report
        try:
            while ids:
                for index, item_id in enumerate(ids):
                    claimed = await asyncio.to_thread(self._claim, item_id, ignore_schedule)
                    if claimed is None:
                        continue
                    claim, item = claimed
                    try:
                        broken = await self._send(client, item, claim, report)
                    finally:
                        await asyncio.to_thread(claim.close)
                    if broken is not None:
                        await self._defer_all(ids[index:], broken, report)
                        return report
                ids = await asyncio.to_thread(self._due, limit, ignore_schedule, ids[-1])
        finally:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
        return report

    async def _send(self, client: aiosmtplib.SMTP, item: OutboxItem, claim: Session,
                    report: DeliveryReport) -> Exception | None:
        """Send one claimed row and record the outcome; the error if the connection broke."""
        recipients = item.recipients.split("\n")
        # Without SMTPUTF8 a non-ASCII address cannot even be encoded for RCPT TO.
        utf8 = not all(a.isascii() for a in (item.mail_from, *recipients))
        try:
            errors, _ = await client.sendmail(item.mail_from, recipients, item.raw,
                                              mail_options=["SMTPUTF8"] if utf8 else None)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError,
                aiosmtplib.SMTPTimeoutError, OSError) as exc:
            return exc
        except (aiosmtplib.SMTPException, ValueError) as exc:
            await self._failed_once(item, exc, report, claim)
            return None
        await asyncio.to_thread(self._settle, claim, item, OutboxStatus.SENT)
        report.sent += 1
        self.events.sent(item.kind)
        if errors:
            log.warning("ticket=%s some recipients refused %s: %s", item.ticket_id,
                        item.message_id, errors)
        log.info("ticket=%s sent %s %s", item.ticket_id, item.kind, item.message_id)
        return None

    async def _failed_once(self, item: OutboxItem, exc: Exception, report: DeliveryReport,
                           claim: Session) -> None:
        permanent = is_permanent(exc)
        status = OutboxStatus.FAILED if permanent else OutboxStatus.PENDING
        await asyncio.to_thread(self._settle, claim, item, status, str(exc))
        self.events.failed(permanent, 1)
        if permanent:
            report.failed += 1
            log.error("ticket=%s %s refused permanently: %s", item.ticket_id, item.message_id, exc)
        else:
            report.deferred += 1
            log.warning("ticket=%s %s deferred: %s", item.ticket_id, item.message_id, exc)
        report.errors.append(str(exc))

    async def _defer_all(self, ids: list[int], exc: Exception, report: DeliveryReport) -> None:
        log.warning("SMTP %s:%d unavailable, %d message(s) wait in the outbox: %s",
                    self.config.host, self.config.port, len(ids), exc)
        for item_id in ids:
            await asyncio.to_thread(self._mark, item_id, OutboxStatus.PENDING, str(exc))
        report.deferred += len(ids)
        self.events.failed(False, len(ids))
        report.errors.append(str(exc))



async def open_smtp(config: SmtpConfig, password: str | None) -> aiosmtplib.SMTP:
    """A connected, logged-in SMTP client; certificates are verified unless security is "none"."""
    client = aiosmtplib.SMTP(
        hostname=config.host,
        port=config.port,
        use_tls=config.security == "tls",
        start_tls=config.security == "starttls",
        tls_context=ssl.create_default_context() if config.security != "none" else None,
        timeout=config.timeout.total_seconds(),
    )
    await client.connect()
    if config.username and password is not None:
        await client.login(config.username, password)
    return client


async def probe(config: SmtpConfig, password: str | None) -> None:
    """Connect and log in once, for `check-config --connect`."""
    client = await open_smtp(config, password)
    await client.quit()
