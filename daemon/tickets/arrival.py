"""One received message as everything in tickets/ sees it: built once, read by all, never changed.

The router builds an Arrival once the message is parsed and known not to be a duplicate; the
parts that handle new tickets, follow-ups, agents' mail and automatic mail take it instead of
long argument lists. Guarantees: the message is parsed once, classified once and its visible text
computed once; one message is handled with one snapshot of its mailbox's settings, even if a
reload swaps them meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import Message as EmailMessage

from sqlalchemy.orm import Session

from daemon.config import Config
from daemon.mail.classify import Classification, classify
from daemon.mail.message import ParsedMessage
from daemon.mail.quoting import visible_text
from daemon.storage.models import Attachment, Message, RawMessage, Ticket


@dataclass(frozen=True)
class Arrival:
    """The raw row, the parsed message, its headers as the standard library reads them, what the
    sender wrote (quotes and signatures cut), the classification and the mailbox's settings."""

    row: RawMessage
    parsed: ParsedMessage
    headers: EmailMessage
    text: str
    verdict: Classification
    config: Config

    @classmethod
    def of(cls, row: RawMessage, parsed: ParsedMessage, headers: EmailMessage,
           config: Config) -> Arrival:
        """Classify and cut the quotes once; everything downstream reads the results."""
        return cls(row, parsed, headers, visible_text(parsed.text),
                   classify(headers, own_addresses=[config.shop.address]), config)

    @property
    def sender(self) -> str:
        return self.parsed.sender.email

    def record(self, session: Session, ticket: Ticket, direction: str, kind: str, now: datetime,
               text: str | None = None) -> Message:
        """Add the message to the ticket's history (visible text unless `text` says otherwise)."""
        parsed = self.parsed
        message = Message(
            ticket_id=ticket.id,
            direction=direction,
            message_id=parsed.message_id,
            in_reply_to=" ".join(parsed.in_reply_to),
            references=" ".join(parsed.references),
            from_email=parsed.sender.email,
            from_name=parsed.sender.name,
            to=", ".join(a.email for a in parsed.to),
            cc=", ".join(a.email for a in parsed.cc),
            subject=parsed.subject,
            text=self.text if text is None else text,
            full_text=parsed.text,
            kind=kind,
            raw_id=self.row.id,
            created_at=now,
            attachments=[Attachment(filename=a.filename, content_type=a.content_type, size=a.size,
                                    content=a.content) for a in parsed.attachments],
        )
        session.add(message)
        self.row.ticket_id = ticket.id
        return message
