"""Deliver the outbox over SMTP: each row's bytes as they were committed, retried with backoff.

A row is marked sent right after the server accepts it. A crash between acceptance and that
commit resends the identical message (same Message-ID, which clients deduplicate) — never a
second, different one. Each row is locked only while it is being sent, so several instances can
drain one outbox on PostgreSQL without sending anything twice.

The hot path is SQLAlchemy Core on one connection per row: one statement claims the next due
row (PostgreSQL: `SELECT … FOR UPDATE SKIP LOCKED LIMIT 1`, the lock held by the open
transaction and dropped with the connection if the process dies; SQLite: the same SELECT, one
instance owning the file), one UPDATE records the outcome and commits. No row is ever marked
"in progress", so nothing is stranded by a crash.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

import aiosmtplib
from sqlalchemy import Connection, Engine, Table, bindparam, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from daemon.config import SmtpConfig
from daemon.outbound.smtp_wire import prepare, send_prepared
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


@dataclass(frozen=True)
class Claimed:
    """One row being sent: what delivery and its log line need."""

    id: int
    ticket_id: int | None
    kind: str
    message_id: str
    mail_from: str
    recipients: tuple[str, ...]
    raw: bytes
    attempts: int


_OUTBOX: Table = cast(Table, OutboxItem.__table__)
_COLUMNS = (_OUTBOX.c.id, _OUTBOX.c.ticket_id, _OUTBOX.c.kind, _OUTBOX.c.message_id,
            _OUTBOX.c.mail_from, _OUTBOX.c.recipients, _OUTBOX.c.raw, _OUTBOX.c.attempts)
_PENDING = _OUTBOX.c.status == OutboxStatus.PENDING
_DUE = _OUTBOX.c.next_attempt_at <= bindparam("now")
# The next row after `after`, locked for this transaction; rows other instances hold are skipped.
_NEXT = (select(*_COLUMNS).where(_PENDING, _OUTBOX.c.id > bindparam("after"))
         .order_by(_OUTBOX.c.id).limit(1).with_for_update(skip_locked=True))
_NEXT_DUE = _NEXT.where(_DUE)
_ONE = select(_OUTBOX.c.attempts).where(_PENDING, _OUTBOX.c.id == bindparam("row"))\
    .with_for_update(skip_locked=True)
_SENT = (update(_OUTBOX).where(_OUTBOX.c.id == bindparam("row"), _PENDING)
         .values(status=OutboxStatus.SENT, sent_at=bindparam("at"), last_error=None,
                 attempts=_OUTBOX.c.attempts + 1))
_FAILED = (update(_OUTBOX).where(_OUTBOX.c.id == bindparam("row"), _PENDING)
           .values(status=OutboxStatus.FAILED, last_error=bindparam("error"),
                   attempts=bindparam("tries")))
_DEFERRED = (update(_OUTBOX).where(_OUTBOX.c.id == bindparam("row"), _PENDING)
             .values(next_attempt_at=bindparam("retry_at"), last_error=bindparam("error"),
                     attempts=bindparam("tries")))


class OutboxSender:
    def __init__(self, config: SmtpConfig, password: str | None, sessions: sessionmaker[Session],
                 clock: Callable[[], datetime], events: SendEvents = SendEvents()) -> None:
        self.config = config
        self.password = password
        self.sessions = sessions
        self.engine: Engine = sessions.kw["bind"]
        self.clock = clock
        self.events = events

    def _due(self, limit: int, ignore_schedule: bool, first: int) -> list[int]:
        """The ids of the first rows due from `first` on, for recording an outage on them."""
        with self.sessions() as session:
            query = select(OutboxItem.id).where(OutboxItem.status == OutboxStatus.PENDING,
                                                OutboxItem.id >= first)
            if not ignore_schedule:
                query = query.where(OutboxItem.next_attempt_at <= self.clock())
            return list(session.scalars(query.order_by(OutboxItem.id).limit(limit)))

    def _claim(self, after: int, ignore_schedule: bool) -> tuple[Connection, Claimed] | None:
        """The next row to send after `after`, with the connection whose transaction holds it."""
        connection = self.engine.connect()
        try:
            params = {"after": after} if ignore_schedule else {"after": after, "now": self.clock()}
            row = connection.execute(_NEXT if ignore_schedule else _NEXT_DUE, params).first()
            if row is not None:
                return connection, Claimed(row.id, row.ticket_id, row.kind, row.message_id,
                                           row.mail_from, tuple(row.recipients.split("\n")),
                                           row.raw, row.attempts)
        except BaseException:
            connection.close()
            raise
        connection.close()
        return None

    def _settle(self, claim: Connection, item: Claimed, status: str, error: str | None = None
                ) -> None:
        """Record an attempt on a claimed row in its own transaction, commit and let it go."""
        now = self.clock()
        try:
            if status == OutboxStatus.SENT:
                claim.execute(_SENT, {"row": item.id, "at": now})
            elif status == OutboxStatus.FAILED:
                claim.execute(_FAILED, {"row": item.id, "error": (error or "")[:2000],
                                        "tries": item.attempts + 1})
            else:
                claim.execute(_DEFERRED, {
                    "row": item.id, "error": (error or "")[:2000], "tries": item.attempts + 1,
                    "retry_at": now + retry_delay(item.attempts + 1, self.config.retry_max)})
            claim.commit()
        finally:
            claim.close()

    def _mark(self, item_id: int, error: str) -> None:
        """Defer a row nobody has claimed; one another instance is sending or has settled is left
        alone."""
        connection = self.engine.connect()
        attempts = connection.execute(_ONE, {"row": item_id}).scalar()
        if attempts is None:
            connection.close()
            return
        self._settle(connection, Claimed(item_id, None, "", "", "", (), b"", attempts),
                     OutboxStatus.PENDING, error)

    def pending_count(self) -> int:
        with self.sessions() as session:
            return session.scalar(
                select(func.count()).select_from(OutboxItem)
                .where(OutboxItem.status == OutboxStatus.PENDING)
            ) or 0

    async def deliver_due(self, limit: int = 200, ignore_schedule: bool = False,
                          keep_going: Callable[[], bool] = lambda: True) -> DeliveryReport:
        """Send everything due over one connection, in id order, each row tried once per call
        (a row deferred on the way is not retried in a loop even when the schedule is ignored);
        stops at the first connection-level failure, deferring up to `limit` rows due, and
        after the mail in flight once `keep_going` says so (a stop was asked for)."""
        report = DeliveryReport()
        claimed = await asyncio.to_thread(self._claim, 0, ignore_schedule)
        if claimed is None:
            return report
        try:
            client = await open_smtp(self.config, self.password)
        except (aiosmtplib.SMTPException, OSError) as exc:
            await asyncio.to_thread(claimed[0].close)
            await self._defer_all(limit, ignore_schedule, claimed[1].id, exc, report)
            return report
        try:
            while claimed is not None:
                claim, item = claimed
                broken = await self._send(client, item, claim, report)
                if broken is not None:
                    await self._defer_all(limit, ignore_schedule, item.id, broken, report)
                    return report
                claimed = (await asyncio.to_thread(self._claim, item.id, ignore_schedule)
                           if keep_going() else None)
        finally:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
        return report

    async def _send(self, client: aiosmtplib.SMTP, item: Claimed, claim: Connection,
                    report: DeliveryReport) -> Exception | None:
        """Send one claimed row and record the outcome; the error if the connection broke (the
        row is then released untouched, for `_defer_all`)."""
        # Without SMTPUTF8 a non-ASCII address cannot even be encoded for RCPT TO.
        utf8 = not all(a.isascii() for a in (item.mail_from, *item.recipients))
        try:
            errors = await send_prepared(client, item.mail_from, item.recipients,
                                         prepare(item.raw), utf8)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError,
                aiosmtplib.SMTPTimeoutError, OSError) as exc:
            await asyncio.to_thread(claim.close)
            return exc
        except (aiosmtplib.SMTPException, ValueError) as exc:
            await self._failed_once(item, exc, report, claim)
            return None
        except BaseException:
            await asyncio.to_thread(claim.close)
            raise
        await asyncio.to_thread(self._settle, claim, item, OutboxStatus.SENT)
        report.sent += 1
        self.events.sent(item.kind)
        if errors:
            log.warning("ticket=%s some recipients refused %s: %s", item.ticket_id,
                        item.message_id, errors)
        log.info("ticket=%s sent %s %s", item.ticket_id, item.kind, item.message_id)
        return None

    async def _failed_once(self, item: Claimed, exc: Exception, report: DeliveryReport,
                           claim: Connection) -> None:
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

    async def _defer_all(self, limit: int, ignore_schedule: bool, first: int, exc: Exception,
                         report: DeliveryReport) -> None:
        ids = await asyncio.to_thread(self._due, limit, ignore_schedule, first)
        log.warning("SMTP %s:%d unavailable, %d message(s) wait in the outbox: %s",
                    self.config.host, self.config.port, len(ids), exc)
        for item_id in ids:
            await asyncio.to_thread(self._mark, item_id, str(exc))
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
