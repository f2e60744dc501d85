"""Database queries the pipeline needs, kept apart from the decisions that use them.

The lookups run as Core statements on the session's connection, in its transaction: they read
columns, never objects, so the ORM's per-statement work (and an autoflush) would buy nothing.
They see what the session has flushed; the pipeline flushes each message before the next.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.config import DEFAULT_MAILBOX
from daemon.storage.models import Message, Participant, RawMessage, Ticket, TicketStatus


class TicketStore:
    """The TicketLookup the matcher asks, over one session; it sees only one mailbox's tickets."""

    def __init__(self, session: Session, mailbox: str = DEFAULT_MAILBOX) -> None:
        self.session = session
        self.mailbox = mailbox

    def ticket_for_message_ids(self, message_ids: tuple[str, ...]) -> int | None:
        rows = self.session.connection().execute(
            select(Message.message_id, Message.ticket_id)
            .join(Ticket, Ticket.id == Message.ticket_id)
            .where(Message.message_id.in_(message_ids), Ticket.mailbox == self.mailbox,
                   # A forgotten customer who writes again is a new customer, even in the old thread.
                   Ticket.pseudonymised_at.is_(None))
        ).all()
        by_id = {mid: ticket for mid, ticket in rows}
        return next((by_id[mid] for mid in message_ids if mid in by_id), None)

    def participants(self, ticket: int) -> frozenset[str] | None:
        """None when this mailbox has no such ticket; one round trip either way."""
        rows = self.session.connection().execute(
            select(Ticket.id, Participant.email)
            .outerjoin(Participant, Participant.ticket_id == Ticket.id)
            .where(Ticket.id == ticket, Ticket.mailbox == self.mailbox)).all()
        if not rows:
            return None
        return frozenset(email for _, email in rows if email is not None)

    def open_ticket_for(self, sender: str, key: str) -> int | None:
        return self.session.connection().execute(
            select(Ticket.id)
            .where(Ticket.customer_email == sender, Ticket.subject_key == key,
                   Ticket.status != TicketStatus.CLOSED, Ticket.mailbox == self.mailbox)
            .order_by(Ticket.id.desc())
            .limit(1)
        ).scalar()

    def message_exists(self, message_id: str) -> bool:
        found = self.session.connection().execute(
            select(Message.id).where(Message.message_id == message_id).limit(1))
        return found.first() is not None

    def raw_by_sha(self, sha256: str) -> tuple[int, str, int | None] | None:
        """The id, outcome and ticket of the raw row with these bytes; the bytes stay unread."""
        row = self.session.connection().execute(
            select(RawMessage.id, RawMessage.outcome, RawMessage.ticket_id)
            .where(RawMessage.sha256 == sha256)).first()
        return None if row is None else (row.id, row.outcome, row.ticket_id)

    def add_participants(self, ticket: Ticket, emails: set[str], new_ticket: bool = False) -> None:
        """Add who is not yet in the ticket; a ticket opened in this transaction has nobody yet."""
        if not emails:
            return
        known = set() if new_ticket else set(self.session.scalars(
            select(Participant.email).where(Participant.ticket_id == ticket.id)))
        for email in sorted(emails - known):
            self.session.add(Participant(ticket_id=ticket.id, email=email))
