"""Erase what identifies people, keeping the ticket's statistics (numbers, dates, status, language,
kinds, satisfaction, discount codes).

Guarantees, for `forget` (one address, on request) and `pseudonymise_ticket` (everyone on one
ticket, retention) — order numbers count as identifying (the shop's platform maps them to people):
- the address becomes a stable pseudonym (storage/address_keys.py) wherever it is stored, so
  counts still add up; names go; the text of the person's messages, and on their own tickets of
  the messages to them and the notes about them, becomes a short placeholder;
- raw mail and outbox bytes that hold the address are emptied; attachments of erased messages
  are deleted; unsent mail to the person is cancelled;
- other people's messages keep their text, with the person's address and name replaced;
- everything happens in the caller's one transaction, and running it again finds nothing left, so
  a crash anywhere leaves either the old state or the finished one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from daemon.outbound.erasure import empty_rows
from daemon.storage.address_keys import installation_key, keyed_hash, pseudonym_for
from daemon.storage.models import (
    Attachment,
    Direction,
    Erasure,
    Message,
    OutboxItem,
    Participant,
    PendingClosing,
    ProblemEvent,
    Promise,
    RawMessage,
    Ticket,
)
from daemon.tickets.privacy.holdings import Holdings

PLACEHOLDER = "[erased]"
NAME_PLACEHOLDER = "[name erased]"


@dataclass
class Counts:
    """How much one erasure changed; the audit record keeps exactly these numbers."""

    tickets: int = 0
    messages: int = 0
    raw_mails: int = 0
    attachments: int = 0
    outbox: int = 0
    imap_copies: int = 0

    @property
    def total(self) -> int:
        return (self.tickets + self.messages + self.raw_mails + self.attachments + self.outbox
                + self.imap_copies)

    def add(self, other: Counts) -> None:
        for name in ("tickets", "messages", "raw_mails", "attachments", "outbox", "imap_copies"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def audit(self, reason: str, now: datetime) -> Erasure:
        return Erasure(reason=reason, at=now, tickets=self.tickets, messages=self.messages,
                       raw_mails=self.raw_mails, attachments=self.attachments, outbox=self.outbox,
                       imap_copies=self.imap_copies)


class Scrubber:
    """Replaces given addresses by their pseudonyms and given names by a placeholder in text."""

    def __init__(self, key: str, addresses: Iterable[str], names: Iterable[str]) -> None:
        self.key = key
        self.pseudonyms = {a.lower(): pseudonym_for(key, a) for a in addresses if a}
        self._addresses = _alternation(self.pseudonyms, before=r"(?<![\w.%+\-])",
                                       after=r"(?![\w\-]|\.\w)")
        self._names = _alternation((n for n in names if len(n) >= 3), before=r"\b", after=r"\b")

    def text(self, value: str) -> str:
        if self._addresses is not None:
            value = self._addresses.sub(lambda m: self.pseudonyms[m.group(0).lower()], value)
        if self._names is not None:
            value = self._names.sub(NAME_PLACEHOLDER, value)
        return value

    def address(self, value: str) -> str:
        return self.pseudonyms.get(value.strip().lower(), value)

    def message_id(self, value: str) -> str:
        """An erased mail's Message-ID, unique and stable but no longer the sender's."""
        return f"{keyed_hash(self.key, value, 'message-id')[:32]}@forgotten.invalid"


def _alternation(words: Iterable[str], before: str, after: str) -> re.Pattern[str] | None:
    """Any of `words` as a whole word (`ana@x.net` is not inside `mariana@x.net`), any case."""
    ordered = sorted(set(words), key=len, reverse=True)
    if not ordered:
        return None
    return re.compile(before + "(?:" + "|".join(re.escape(w) for w in ordered) + ")" + after,
                      re.IGNORECASE)


def forget(session: Session, found: Holdings, now: datetime, imap_copies: int = 0) -> Counts:
    """Erase one person (`found`, read in this same transaction) and record the audit row;
    `imap_copies` is how many of their mails were just deleted from the server, for the audit."""
    scrub = Scrubber(installation_key(session), [found.address], found.names)
    counts = Counts(imap_copies=imap_copies)
    own = set(found.own_messages)
    for ticket_id in found.tickets:
        ticket = session.get_one(Ticket, ticket_id)
        theirs = ticket_id in found.customer_tickets
        for message in ticket.messages:
            if message.id in own or (theirs and message.direction != Direction.IN):
                _blank(session, message, scrub, counts, own=message.id in own)
            else:
                _swap(message, scrub)
        _participants(session, ticket, scrub)
        if theirs:
            _pseudonymise(session, ticket, scrub, now)
            counts.tickets += 1
        else:
            ticket.subject = scrub.text(ticket.subject)
            ticket.unreachable_reason = _maybe(scrub, ticket.unreachable_reason)
            for promise in session.scalars(select(Promise).where(Promise.ticket_id == ticket.id)):
                promise.text = scrub.text(promise.text)
    for message in session.scalars(select(Message).where(Message.id.in_(own),
                                                         Message.ticket_id.not_in(found.tickets))):
        _blank(session, message, scrub, counts, own=True)
    # Mentions in other people's tickets (someone quoting or naming the address): replaced.
    for message in session.scalars(select(Message).where(Message.id.in_(found.naming_messages),
                                                         Message.ticket_id.not_in(found.tickets))):
        _swap(message, scrub)
        ticket = session.get_one(Ticket, message.ticket_id)
        ticket.subject = scrub.text(ticket.subject)
    for event in session.scalars(select(ProblemEvent).where(
            func.lower(ProblemEvent.text).contains(found.address, autoescape=True))):
        event.text = scrub.text(event.text)
    _erase_raw(session, found.own_raw, scrub, counts, now, own=True)
    _erase_raw(session, found.naming_raw, scrub, counts, now, own=False)
    _erase_outbox(session, found.outbox, scrub, counts)
    if counts.total:
        session.add(counts.audit("request", now))
    return counts


def pseudonymise_ticket(session: Session, ticket: Ticket, now: datetime) -> Counts:
    """Erase everyone on one ticket (retention of closed tickets); its statistics stay."""
    people = {ticket.customer_email, *(p.email for p in ticket.participants),
              *(m.from_email for m in ticket.messages if m.direction == Direction.IN)}
    names = {ticket.customer_name, *(m.from_name for m in ticket.messages
                                     if m.direction == Direction.IN)}
    scrub = Scrubber(installation_key(session), people, names)
    counts = Counts(tickets=1)
    for message in ticket.messages:
        _blank(session, message, scrub, counts, own=message.direction == Direction.IN)
    _participants(session, ticket, scrub)
    _pseudonymise(session, ticket, scrub, now)
    outbox = session.scalars(select(OutboxItem.id).where(OutboxItem.ticket_id == ticket.id)).all()
    _erase_outbox(session, outbox, scrub, counts)
    return counts


def _blank(session: Session, message: Message, scrub: Scrubber, counts: Counts, own: bool) -> None:
    counts.messages += message.text != PLACEHOLDER
    message.text = message.full_text = message.subject = PLACEHOLDER
    if own:
        message.message_id = scrub.message_id(message.message_id)
        message.from_name = ""
    message.from_email = scrub.address(message.from_email)
    message.to, message.cc = scrub.text(message.to), scrub.text(message.cc)
    message.in_reply_to = message.references = ""
    counts.attachments += len(message.attachments)
    session.execute(delete(Attachment).where(Attachment.message_id == message.id))
    session.expire(message, ["attachments"])
    if message.raw_id is not None:
        _erase_raw(session, [message.raw_id], scrub, counts, message.created_at, own=own)


def _swap(message: Message, scrub: Scrubber) -> None:
    for column in ("from_email", "to", "cc", "subject", "text", "full_text"):
        setattr(message, column, scrub.text(getattr(message, column)))


def _participants(session: Session, ticket: Ticket, scrub: Scrubber) -> None:
    for participant in session.scalars(select(Participant).where(Participant.ticket_id == ticket.id)):
        participant.email = scrub.address(participant.email)


def _pseudonymise(session: Session, ticket: Ticket, scrub: Scrubber, now: datetime) -> None:
    ticket.customer_email = scrub.address(ticket.customer_email)
    ticket.customer_name = ""
    ticket.subject = PLACEHOLDER
    ticket.subject_key = ""
    ticket.thread_index = None
    ticket.status_line = None
    ticket.orders = ""  # the shop knows who placed an order: its number identifies the customer
    ticket.unreachable_reason = _maybe(scrub, ticket.unreachable_reason)
    # Order numbers lead straight back to the customer in the shop's platform.
    ticket.orders = ""
    ticket.pseudonymised_at = ticket.pseudonymised_at or now
    for promise in session.scalars(select(Promise).where(Promise.ticket_id == ticket.id)):
        promise.text = PLACEHOLDER
    for closing in session.scalars(select(PendingClosing).where(PendingClosing.ticket_id == ticket.id)):
        closing.personal_line = None


def _erase_raw(session: Session, ids: Iterable[int], scrub: Scrubber, counts: Counts,
               now: datetime, own: bool) -> None:
    for raw in session.scalars(select(RawMessage).where(RawMessage.id.in_(list(ids)),
                                                        RawMessage.erased_at.is_(None))):
        counts.raw_mails += 1
        raw.raw, raw.erased_at, raw.error = b"", now, None
        if own and raw.message_id:
            raw.message_id = scrub.message_id(raw.message_id)


def _erase_outbox(session: Session, ids: Iterable[int], scrub: Scrubber, counts: Counts) -> None:
    counts.outbox += empty_rows(session, ids, lambda text: scrub.address(scrub.text(text)))


def _maybe(scrub: Scrubber, value: str | None) -> str | None:
    return None if value is None else scrub.text(value)

