"""The shop's retention limits ([retention]) applied to the database, derived from its state alone.

- `raw_mail`: tickets closed longer ago lose their raw mails, attachments and the bytes of the
  mail we sent (the parsed texts stay); quarantined raw mails older than that go too.
- `closed_tickets`: tickets closed longer ago are pseudonymised as by `customers forget`.

Each ticket is handled in its own short transaction and marked (`raw_messages.erased_at`,
`tickets.pseudonymised_at`), so a sweep stopped half-way is finished by the next, and a sweep with
nothing due costs two indexed queries. Each sweep that erased something leaves an audit row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Executable, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from daemon.config import RetentionConfig
from daemon.storage.models import (
    Attachment,
    Message,
    OutboxItem,
    OutboxStatus,
    RawMessage,
    Ticket,
    TicketStatus,
)
from daemon.tickets.privacy.erasure import Counts, pseudonymise_ticket

log = logging.getLogger("daemon.retention")

_BATCH = 200


class Retention:
    """The database half of the retention policy; inbound/folder_cleanup.py does the IMAP half."""

    def __init__(self, policy: RetentionConfig, sessions: sessionmaker[Session],
                 clock: Callable[[], datetime]) -> None:
        self.policy = policy
        self.sessions = sessions
        self.clock = clock

    def sweep(self) -> dict[str, Counts]:
        """Apply every limit that is set; what each erased, by audit reason."""
        done: dict[str, Counts] = {}
        now = self.clock()
        if self.policy.closed_tickets is not None:
            done["retention-closed-tickets"] = self._closed_tickets(now - self.policy.closed_tickets)
        if self.policy.raw_mail is not None:
            done["retention-raw-mail"] = self._raw_mail(now - self.policy.raw_mail)
        for reason, counts in done.items():
            if counts.total:
                with self.sessions.begin() as session:
                    session.add(counts.audit(reason, now))
                log.info("retention: %s: %d ticket(s), %d message(s), %d raw mail(s), "
                         "%d attachment(s), %d outbox mail(s) erased", reason, counts.tickets,
                         counts.messages, counts.raw_mails, counts.attachments, counts.outbox)
        return done

    def _closed_tickets(self, cutoff: datetime) -> Counts:
        total = Counts()
        while True:
            with self.sessions() as session:
                due = session.scalars(select(Ticket.id).where(
                    Ticket.status == TicketStatus.CLOSED, Ticket.closed_at <= cutoff,
                    Ticket.pseudonymised_at.is_(None)).order_by(Ticket.id).limit(_BATCH)).all()
            for ticket_id in due:
                with self.sessions.begin() as session:
                    ticket = session.get_one(Ticket, ticket_id, with_for_update=True)
                    if ticket.status == TicketStatus.CLOSED and ticket.pseudonymised_at is None:
                        total.add(pseudonymise_ticket(session, ticket, self.clock()))
            if len(due) < _BATCH:
                return total

    def _raw_mail(self, cutoff: datetime) -> Counts:
        total = Counts()
        while True:
            with self.sessions() as session:
                due = session.scalars(select(RawMessage.id).outerjoin(
                    Ticket, Ticket.id == RawMessage.ticket_id).where(
                    RawMessage.erased_at.is_(None),
                    (Ticket.status == TicketStatus.CLOSED) & (Ticket.closed_at <= cutoff)
                    | RawMessage.ticket_id.is_(None) & (RawMessage.received_at <= cutoff))
                    .order_by(RawMessage.id).limit(_BATCH)).all()
                tickets = session.scalars(select(Ticket.id).where(
                    Ticket.status == TicketStatus.CLOSED, Ticket.closed_at <= cutoff,
                    Ticket.id.in_(select(Message.ticket_id).join(
                        Attachment, Attachment.message_id == Message.id))
                    | Ticket.id.in_(select(OutboxItem.ticket_id).where(
                        OutboxItem.status != OutboxStatus.PENDING,
                        func.length(OutboxItem.raw) > 0))).limit(_BATCH)).all()
            now = self.clock()
            with self.sessions.begin() as session:
                total.raw_mails += _changed(session,
                    update(RawMessage).where(RawMessage.id.in_(due), RawMessage.erased_at.is_(None))
                    .values(raw=b"", erased_at=now, error=None))
                for ticket_id in tickets:
                    total.attachments += _changed(session,delete(Attachment).where(
                        Attachment.message_id.in_(
                            select(Message.id).where(Message.ticket_id == ticket_id))))
                    total.outbox += _changed(session,update(OutboxItem).where(
                        OutboxItem.ticket_id == ticket_id, OutboxItem.status != OutboxStatus.PENDING,
                        func.length(OutboxItem.raw) > 0).values(raw=b""))
            if len(due) < _BATCH and len(tickets) < _BATCH:
                return total


def _changed(session: Session, statement: Executable) -> int:
    """Rows an UPDATE or DELETE touched."""
    result = session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)
