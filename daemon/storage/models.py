"""The database schema: tickets, their messages, raw mail as fetched, and the outbox.

All times are naive UTC datetimes (SQLite has no time zones); the CLI renders them as ISO 8601 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from daemon.config import DEFAULT_MAILBOX


def utcnow() -> datetime:
    """Now as naive UTC, the form every column stores."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class TicketStatus:
    OPEN = "open"
    WAITING = "waiting"
    CLOSED = "closed"


class Direction:
    IN = "in"
    OUT = "out"
    AGENT = "agent"
    NOTE = "note"


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=TicketStatus.OPEN, index=True)
    customer_email: Mapped[str] = mapped_column(String(320), index=True)
    customer_name: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    subject_key: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_outbound_at: Mapped[datetime | None] = mapped_column(default=None)
    discount_code: Mapped[str | None] = mapped_column(String(64), default=None)
    thread_index: Mapped[str | None] = mapped_column(String(400), default=None)
    assigned_to: Mapped[str | None] = mapped_column(String(320), default=None)
    tags: Mapped[str] = mapped_column(Text, default="")
    status_line: Mapped[str | None] = mapped_column(Text, default=None)
    wait_until: Mapped[datetime | None] = mapped_column(default=None)
    last_agent_reply_at: Mapped[datetime | None] = mapped_column(default=None)
    first_agent_reply_at: Mapped[datetime | None] = mapped_column(default=None)
    waiting_since: Mapped[datetime | None] = mapped_column(default=None)
    waiting_reminded_at: Mapped[datetime | None] = mapped_column(default=None)
    unanswered_reminded_at: Mapped[datetime | None] = mapped_column(default=None)
    age_reminded_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    satisfaction: Mapped[int | None] = mapped_column(default=None)
    previous_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), default=None)
    unreachable_at: Mapped[datetime | None] = mapped_column(default=None)
    unreachable_reason: Mapped[str | None] = mapped_column(Text, default=None)
    # Which [[mailboxes]] entry the ticket came in through; threading never crosses mailboxes.
    mailbox: Mapped[str] = mapped_column(String(63), default=DEFAULT_MAILBOX,
                                         server_default=DEFAULT_MAILBOX)
    # Order numbers, space-separated; "-N" is one an agent removed (daemon/mail/orders.py).
    orders: Mapped[str] = mapped_column(Text, default="", server_default="")
    # When the customer's personal data was replaced by a pseudonym (forget or retention).
    pseudonymised_at: Mapped[datetime | None] = mapped_column(default=None)
    # Self-help (issue 17): [[faq]] names shown in the acknowledgement, comma-separated; closed by
    # the customer's "RESUELTO"; when the score came, and when its one thank-you mail was queued.
    faq: Mapped[str] = mapped_column(Text, default="", server_default="")
    self_solved: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    satisfaction_at: Mapped[datetime | None] = mapped_column(default=None)
    satisfaction_thanked_at: Mapped[datetime | None] = mapped_column(default=None)
    # The problem this ticket is one case of (issue 16), at most one.
    problem_id: Mapped[int | None] = mapped_column(
        ForeignKey("problems.id", ondelete="SET NULL", name="fk_tickets_problem"), default=None,
        index=True)
    problem: Mapped[Problem | None] = relationship(back_populates="tickets")

    messages: Mapped[list[Message]] = relationship(
        back_populates="ticket", order_by="Message.id", cascade="all, delete-orphan"
    )
    participants: Mapped[list[Participant]] = relationship(cascade="all, delete-orphan")

    __table_args__ = (
        Index("ix_tickets_sender_subject", "customer_email", "subject_key"),
        Index("ix_tickets_status_last_outbound", "status", "last_outbound_at"),
        Index("ix_tickets_mailbox_status", "mailbox", "status"),
        Index("ix_tickets_created_at", "created_at"),
        Index("ix_tickets_closed_at", "closed_at"),
        Index("ix_tickets_satisfaction_at", "satisfaction_at"),
    )


class Participant(Base):
    """Someone who may write into a ticket by its [#N] tag: the customer and whoever they copied."""

    __tablename__ = "participants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))

    __table_args__ = (UniqueConstraint("ticket_id", "email", name="uq_participants_ticket_email"),)


class Message(Base):
    """One email in a ticket's history, whichever way it went."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(8))
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    in_reply_to: Mapped[str] = mapped_column(Text, default="")
    references: Mapped[str] = mapped_column(Text, default="")
    from_email: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(200), default="")
    to: Mapped[str] = mapped_column(Text, default="")
    cc: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    full_text: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(32), default="")
    raw_id: Mapped[int | None] = mapped_column(ForeignKey("raw_messages.id"), default=None)
    answers: Mapped[str] = mapped_column(Text, default="", server_default="")  # names, comma-separated
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="messages")

    __table_args__ = (Index("ix_messages_direction_created", "direction", "created_at"),)
    attachments: Mapped[list[Attachment]] = relationship(cascade="all, delete-orphan")


class Attachment(Base):
    """A file that came with a message, kept in the database under its row id, never by its name."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class RawOutcome:
    TICKET = "ticket"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"


class RawMessage(Base):
    """Every fetched email exactly as the server gave it, stored before the mailbox is told."""

    __tablename__ = "raw_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    folder: Mapped[str] = mapped_column(String(255), default="")
    uidvalidity: Mapped[int | None] = mapped_column(default=None)
    uid: Mapped[int | None] = mapped_column(default=None)
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, default=None)
    message_id: Mapped[str | None] = mapped_column(String(998), default=None, index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), default=None)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When `raw` was emptied (forget or retention); the row stays so duplicates are still known.
    erased_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("ix_raw_messages_uid", "folder", "uidvalidity", "uid"),)


class OutboxStatus:
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"  # its recipient's data was erased before it went out


class OutboxItem(Base):
    """An email composed and fixed at the moment its cause was committed; sending only delivers it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), default=None, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    mail_from: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    automatic: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_automatic_created", "automatic", "created_at"),
    )


class SuppressedAddress(Base):
    """An address that hard-bounced: no automatic mail goes to it until `until`.

    Kept only as a keyed hash of the address (storage/address_keys.py), never the address itself.
    """

    __tablename__ = "suppressed_addresses"

    address_hash: Mapped[str] = mapped_column(String(128), primary_key=True)
    until: Mapped[datetime] = mapped_column()
    reason: Mapped[str] = mapped_column(Text)
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL", name="fk_suppressed_addresses_ticket"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Promise(Base):
    """A commitment an agent made to a customer (#promise), reminded when due, flagged when missed."""

    __tablename__ = "promises"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    agent: Mapped[str] = mapped_column(String(320))
    text: Mapped[str] = mapped_column(Text)
    due_at: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    reminded_at: Mapped[datetime | None] = mapped_column(default=None)
    overdue_notified_at: Mapped[datetime | None] = mapped_column(default=None)
    done_at: Mapped[datetime | None] = mapped_column(default=None)


class DiscountCode(Base):
    """A discount code: from the shop's pool (ticket_id empty until claimed) or generated on close."""

    __tablename__ = "discount_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(16))
    percent: Mapped[int | None] = mapped_column(default=None)
    valid_until: Mapped[datetime | None] = mapped_column(default=None)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), default=None, index=True)
    claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_discount_codes_free", "source", "claimed_at"),)


class Erasure(Base):
    """The audit of one erasure (a `customers forget` or a retention sweep): when, why, how much.

    Holds no personal data: not the address, not a pseudonym, only counts.
    """

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    tickets: Mapped[int] = mapped_column(Integer, default=0)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    raw_mails: Mapped[int] = mapped_column(Integer, default=0)
    attachments: Mapped[int] = mapped_column(Integer, default=0)
    outbox: Mapped[int] = mapped_column(Integer, default=0)
    imap_copies: Mapped[int] = mapped_column(Integer, default=0)


class KeyValue(Base):
    """Small bits of daemon state that must survive a restart (e.g. the last digest's date)."""

    __tablename__ = "daemon_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class AgentWarning(Base):
    """When an agent was last told that mail in their name failed verification (at most hourly)."""

    __tablename__ = "agent_warnings"

    agent: Mapped[str] = mapped_column(String(320), primary_key=True)
    last_warned_at: Mapped[datetime] = mapped_column()


class MailboxState(Base):
    """Where the IMAP reader is: the folder's UIDVALIDITY and the last UID it handled."""

    __tablename__ = "mailbox_state"

    folder: Mapped[str] = mapped_column(String(255), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column()
    last_uid: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PendingClosing(Base):
    """A close waiting for the shop platform to confirm its coupon (`discount_provider = "platform"`).

    The code is chosen and committed here before the shop is asked, so every retry — after a
    time-out, a crash, an outage — asks for the same code. The row goes when the closing mail is
    queued, in the same transaction.
    """

    __tablename__ = "pending_closings"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"),
                                           primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    percent: Mapped[int] = mapped_column(Integer)
    valid_until: Mapped[datetime] = mapped_column()
    personal_line: Mapped[str | None] = mapped_column(Text, default=None)
    since: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    agents_told_at: Mapped[datetime | None] = mapped_column(default=None)


class ProblemStatus:
    OPEN = "open"
    CLOSED = "closed"


class Problem(Base):
    """One incident that affects several customers (a carrier strike, a faulty batch): its tickets
    are told and closed together."""

    __tablename__ = "problems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(63), default=DEFAULT_MAILBOX)
    name: Mapped[str] = mapped_column(String(63))
    title: Mapped[str] = mapped_column(Text, default="")
    # "state" and "resolved_at", not status/closed_at: those names belong to tickets/state.py.
    state: Mapped[str] = mapped_column(String(16), default=ProblemStatus.OPEN)
    status_line: Mapped[str | None] = mapped_column(Text, default=None)
    keywords: Mapped[str] = mapped_column(Text, default="")
    # The References root every mail of the problem's agent thread names, so clients group them.
    thread_id: Mapped[str] = mapped_column(String(998))
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)

    tickets: Mapped[list[Ticket]] = relationship(back_populates="problem", order_by="Ticket.id")

    __table_args__ = (UniqueConstraint("mailbox", "name", name="uq_problems_mailbox_name"),)


class ProblemEvent(Base):
    """The problem's history: created, linked, unlinked, broadcast, note, closed. An agent's reply
    is kept by its Message-ID once, so the same mail delivered twice never broadcasts twice."""

    __tablename__ = "problem_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id", ondelete="CASCADE"),
                                            index=True)
    kind: Mapped[str] = mapped_column(String(32))
    agent: Mapped[str] = mapped_column(String(320), default="")
    message_id: Mapped[str | None] = mapped_column(String(998), default=None, unique=True)
    text: Mapped[str] = mapped_column(Text, default="")
    raw_id: Mapped[int | None] = mapped_column(ForeignKey("raw_messages.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
