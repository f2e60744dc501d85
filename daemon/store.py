"""Database queries the pipeline needs, kept apart from the decisions that use them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.config import DEFAULT_MAILBOX
from daemon.models import Message, Participant, RawMessage, Ticket, TicketStatus


class TicketStore:
    """The TicketLookup the matcher asks, over one session; it sees only one mailbox's tickets."""

    def __init__(self, session: Session, mailbox: str = DEFAULT_MAILBOX) -> None:
        self.session = session
        self.mailbox = mailbox

    def ticket_for_message_ids(self, message_ids: tuple[str, ...]) -> int | None:
        rows = self.session.execute(
            select(Message.message_id, Message.ticket_id)
            .join(Ticket, Ticket.id == Message.ticket_id)
            .where(Message.message_id.in_(message_ids), Ticket.mailbox == self.mailbox)
        ).all()
        by_id = {mid: ticket for mid, ticket in rows}
        return next((by_id[mid] for mid in message_ids if mid in by_id), None)

    def participants(self, ticket: int) -> frozenset[str] | None:
        found = self.session.get(Ticket, ticket)
        if found is None or found.mailbox != self.mailbox:
            return None
        emails = self.session.scalars(select(Participant.email).where(Participant.ticket_id == ticket))
        return frozenset(emails)

    def open_ticket_for(self, sender: str, key: str) -> int | None:
        return self.session.scalar(
            select(Ticket.id)
            .where(Ticket.customer_email == sender, Ticket.subject_key == key,
                   Ticket.status != TicketStatus.CLOSED, Ticket.mailbox == self.mailbox)
            .order_by(Ticket.id.desc())
            .limit(1)
        )

    def message_exists(self, message_id: str) -> bool:
        found = self.session.scalar(select(Message.id).where(Message.message_id == message_id))
        return found is not None

    def raw_by_sha(self, sha256: str) -> RawMessage | None:
        return self.session.scalar(select(RawMessage).where(RawMessage.sha256 == sha256))

    def add_participants(self, ticket: Ticket, emails: set[str]) -> None:
        known = set(self.session.scalars(
            select(Participant.email).where(Participant.ticket_id == ticket.id))) if ticket.id else set()
        for email in sorted(emails - known):
            self.session.add(Participant(ticket_id=ticket.id, email=email))
