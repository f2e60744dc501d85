"""Find everything the database holds about one email address.

An address is held as the customer of a ticket, a participant, the sender of messages, a
recipient in outbox rows, and inside raw mail bytes (its own mails, and other people's mails
that copied it). Raw and outbox bytes have no address column, so they are scanned in batches:
slow on a large database, but `customers forget` and `export` are rare, deliberate acts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from daemon.storage.models import Message, OutboxItem, Participant, RawMessage, Ticket

_SCAN_BATCH = 100


@dataclass(frozen=True)
class Holdings:
    """Row ids that concern `address`; `own_raw` are raw mails the person sent themselves."""

    address: str
    customer_tickets: tuple[int, ...]
    participant_tickets: tuple[int, ...]
    own_messages: tuple[int, ...]
    naming_messages: tuple[int, ...]
    own_raw: tuple[int, ...]
    naming_raw: tuple[int, ...]
    outbox: tuple[int, ...]
    own_message_ids: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def tickets(self) -> tuple[int, ...]:
        return tuple(sorted({*self.customer_tickets, *self.participant_tickets}))

    @property
    def empty(self) -> bool:
        return not (self.tickets or self.own_messages or self.naming_messages or self.own_raw
                    or self.naming_raw or self.outbox)


def normal_address(address: str) -> str:
    return address.strip().lower()


def find_holdings(session: Session, address: str) -> Holdings:
    """Everything tied to `address` (compared case-insensitively)."""
    who = normal_address(address)
    customer = tuple(session.scalars(
        select(Ticket.id).where(func.lower(Ticket.customer_email) == who).order_by(Ticket.id)))
    participant = tuple(t for t in session.scalars(
        select(Participant.ticket_id).where(func.lower(Participant.email) == who)
        .order_by(Participant.ticket_id).distinct()) if t not in customer)
    own = session.execute(select(Message.id, Message.message_id, Message.raw_id, Message.from_name)
                          .where(func.lower(Message.from_email) == who).order_by(Message.id)).all()
    text = address_text_pattern(who)
    naming_messages = {row.id for row in session.execute(
        select(Message.id, Message.from_email, Message.to, Message.cc, Message.subject,
               Message.full_text, Message.text).where(or_(*(
                   func.lower(column).contains(who, autoescape=True) for column in (
                       Message.from_email, Message.to, Message.cc, Message.subject,
                       Message.full_text, Message.text)))))
        if any(text.search(value) for value in row[1:])}
    names = {row.from_name.strip() for row in own}
    names |= {n.strip() for n in session.scalars(
        select(Ticket.customer_name).where(Ticket.id.in_(customer)))}
    own_raw = {row.raw_id for row in own if row.raw_id is not None}
    naming: set[int] = set()
    own_ids = {row.message_id for row in own}
    needle = address_pattern(who)
    for raw_id, raw in _scan(session, select(RawMessage.id, RawMessage.raw)
                             .where(RawMessage.erased_at.is_(None))):
        if not needle.search(raw):
            continue
        if sender_of(raw) == who:
            own_raw.add(raw_id)
        else:
            naming.add(raw_id)
    own_ids |= {i for i in session.scalars(select(RawMessage.message_id).where(
        RawMessage.id.in_(own_raw))) if i}
    outbox = set(session.scalars(select(OutboxItem.id).where(OutboxItem.ticket_id.in_(customer))))
    outbox |= {item_id for item_id, recipients in session.execute(
        select(OutboxItem.id, OutboxItem.recipients).where(
            func.lower(OutboxItem.recipients).contains(who, autoescape=True)))
        if who in recipients.lower().split("\n")}
    for item_id, raw in _scan(session, select(OutboxItem.id, OutboxItem.raw)
                              .where(func.length(OutboxItem.raw) > 0)):
        if needle.search(raw):
            outbox.add(item_id)
    return Holdings(
        address=who, customer_tickets=customer, participant_tickets=participant,
        own_messages=tuple(row.id for row in own),
        naming_messages=tuple(sorted(naming_messages - {row.id for row in own})),
        own_raw=tuple(sorted(own_raw)),
        naming_raw=tuple(sorted(naming - own_raw)), outbox=tuple(sorted(outbox)),
        own_message_ids=tuple(sorted(i for i in own_ids if i)),
        names=tuple(sorted(n for n in names if len(n) >= 3)))


def address_pattern(address: str) -> re.Pattern[bytes]:
    """The address as a whole word in raw bytes: not `ana@x.net` inside `mariana@x.net`."""
    return re.compile(rb"(?<![\w.%+\-])" + re.escape(address.encode()) + rb"(?![\w\-]|\.\w)",
                      re.IGNORECASE)


def address_text_pattern(address: str) -> re.Pattern[str]:
    """`address_pattern` for text."""
    return re.compile(r"(?<![\w.%+\-])" + re.escape(address) + r"(?![\w\-]|\.\w)", re.IGNORECASE)


def sender_of(raw: bytes) -> str:
    """The From address of raw mail, lower-cased; empty when there is none."""
    end = raw.find(b"\r\n\r\n")
    end = raw.find(b"\n\n") if end < 0 else end
    header = BytesHeaderParser(policy=compat32).parsebytes(raw[:end if end >= 0 else len(raw)])
    found = getaddresses([str(v) for v in header.get_all("From", [])])
    return found[0][1].strip().lower() if found else ""


def _scan(session: Session, query: object) -> Iterator[tuple[int, bytes]]:
    """(id, bytes) pairs of a two-column query, read a batch at a time by ascending id."""
    last = 0
    id_column = query.selected_columns[0]  # type: ignore[attr-defined]
    while True:
        rows = session.execute(query.where(id_column > last)  # type: ignore[attr-defined]
                               .order_by(id_column).limit(_SCAN_BATCH)).all()
        if not rows:
            return
        for row_id, raw in rows:
            yield int(row_id), bytes(raw)
        last = rows[-1][0]
