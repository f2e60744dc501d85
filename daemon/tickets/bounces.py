"""Automatic mail and bounces, from the ticket's side: link, note, mark unreachable, suppress.

daemon.mail.classify tells automatic mail from people's and daemon.mail.dsn reads delivery notices
(RFC 3464 fields or a home-made text bounce); this module is everything such mail does here. It
links an auto-reply, report or bounce to the ticket it answers (our Message-ID, threading, or a
ticket number from someone in that ticket) and files it as a note; a bounce that hits the
customer marks them unreachable and tells the agents once per ticket, and a hard bounce suppresses
the address (daemon.outbound.queue withholds automatic mail to it until then). Mail linked to no
ticket raises UnlinkedAutomaticMail and stays in quarantine for a human. `judge` is pure: the
verdict from the notice and our records.

A Message-ID of ours is unguessable, so a bounce naming one is believed. A bare ticket number is
easy to forge, so on its own it only links the notice as a note, and marks the customer unreachable
only when the failed address is that ticket's customer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.config import Config
from daemon.mail.classify import Classification, Kind
from daemon.outbound.queue import Mailer
from daemon.storage.address_keys import address_hash
from daemon.storage.models import Direction, Message, OutboxItem, SuppressedAddress, Ticket
from daemon.storage.queries import TicketStore
from daemon.tickets.arrival import Arrival

__all__ = ["AutomaticMail", "BounceVerdict", "Returned", "UnlinkedAutomaticMail", "judge",
           "linked", "suppressed_until"]

# Pinned to the router's old name: operators filter on it.
log = logging.getLogger("daemon.ingest")


@dataclass(frozen=True)
class Returned:
    """The ticket a bounce points at, from our records.

    `recipients` are who the returned message went to, when the notice named one of our own
    Message-IDs; empty when only the ticket number linked it.
    """

    ticket_id: int
    customer: str
    by_message_id: bool
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class BounceVerdict:
    """`ticket_id` None: nothing of ours bounced (quarantine). `unreachable`: mark it and tell agents.
    `suppress`: the address that hard-bounced, to get no automatic mail for a while."""

    ticket_id: int | None
    unreachable: bool
    suppress: str | None
    recipient: str | None
    reason: str


def judge(notice: Classification, returned: Returned | None) -> BounceVerdict:
    """Decide from a bounce's classification and the ticket our records link it to."""
    reason = notice.diagnostic or notice.reason
    if returned is None:
        return BounceVerdict(None, False, None, notice.recipient, reason)
    customer = returned.customer.lower()
    failed = (notice.recipient or "").lower()
    sent_to = tuple(r.lower() for r in returned.recipients)
    if returned.by_message_id and sent_to:
        # A forwarding customer's server may report the final address, not the one we wrote to.
        hits_customer = customer in sent_to and (len(sent_to) == 1 or failed == customer)
    else:
        hits_customer = failed == customer
    if not hits_customer or notice.permanent is False:
        return BounceVerdict(returned.ticket_id, False, None, failed or None, reason)
    return BounceVerdict(returned.ticket_id, True, customer if notice.permanent else None,
                         failed or customer, reason)


def suppressed_until(now: datetime, period: timedelta) -> datetime | None:
    """When suppression of a hard-bounced address ends; None when suppression is switched off."""
    return now + period if period > timedelta(0) else None


class UnlinkedAutomaticMail(Exception):
    """An auto-reply or bounce that answers nothing we know: kept in quarantine for a human."""


def linked(session: Session, config: Config, notice: Classification, matched: int | None,
           sender: str | None) -> Returned | None:
    """The ticket automatic mail points at: our Message-ID it names, threading, its ticket number.

    A ticket number alone is guessable: it links an auto-reply only from someone in that
    ticket (`sender`), or anyone could file notes on other people's tickets. Bounces pass
    None: they come from mail servers, and judge() requires the failed address to be the
    ticket's customer before anything changes. Never crosses into another mailbox's tickets.
    """
    if notice.original_message_id:
        item = session.scalar(select(OutboxItem).where(
            OutboxItem.message_id == notice.original_message_id))
        ticket = session.get(Ticket, item.ticket_id) if item and item.ticket_id else None
        if item is not None and ticket is not None and ticket.mailbox == config.mailbox:
            return Returned(ticket.id, ticket.customer_email, by_message_id=True,
                            recipients=tuple(item.recipients.split("\n")))
    named = notice.ticket_number
    if named is not None and sender is not None and \
            sender not in (TicketStore(session, config.mailbox).participants(named) or ()):
        named = None
    for number in (matched, named):
        ticket = session.get(Ticket, number) if number is not None else None
        if ticket is not None and ticket.mailbox == config.mailbox:
            return Returned(ticket.id, ticket.customer_email, by_message_id=False)
    return None


class AutomaticMail:
    """Files machine mail (other than lists) on its ticket; never answers it, never reopens."""

    def __init__(self, mailer: Mailer, clock: Callable[[], datetime]) -> None:
        self.mailer = mailer
        self.clock = clock

    def file(self, session: Session, arrival: Arrival, matched: int | None) -> tuple[Ticket, int]:
        """Store it as a note on the ticket it answers; returns that ticket and the mails queued."""
        notice = arrival.verdict
        if notice.kind is Kind.BOUNCE:
            return self._bounce(session, arrival, matched)
        returned = linked(session, arrival.config, notice, matched, arrival.sender)
        if returned is None:
            raise UnlinkedAutomaticMail(f"{notice.kind} not linked to any ticket ({notice.reason})")
        ticket = session.get_one(Ticket, returned.ticket_id)
        arrival.record(session, ticket, Direction.NOTE, str(notice.kind), self.clock())
        log.info("ticket=%d %s stored as note (%s)", ticket.id, notice.kind, notice.reason)
        return ticket, 0

    def _bounce(self, session: Session, arrival: Arrival, matched: int | None) -> tuple[Ticket, int]:
        """A delivery failure: a note on the ticket whose mail bounced; agents told once per ticket."""
        notice, config = arrival.verdict, arrival.config
        verdict = judge(notice, linked(session, config, notice, matched, None))
        if verdict.ticket_id is None:
            raise UnlinkedAutomaticMail(f"bounce not linked to any ticket ({notice.reason})")
        ticket = session.get_one(Ticket, verdict.ticket_id)
        now = self.clock()
        arrival.record(session, ticket, Direction.NOTE, "bounce", now)
        log.info("ticket=%d bounce stored as note (%s; %s; permanent=%s)", ticket.id, notice.reason,
                 verdict.reason, notice.permanent)
        until = suppressed_until(now, config.limits.bounce_suppression)
        if verdict.suppress is not None and until is not None:
            self._suppress(session, verdict, ticket, until, now)
        if not verdict.unreachable or ticket.unreachable_at is not None:
            return ticket, 0
        ticket.unreachable_at = now
        ticket.unreachable_reason = verdict.reason[:2000]
        log.warning("ticket=%d customer %s unreachable: %s", ticket.id, verdict.recipient,
                    verdict.reason)
        bounced_subject = session.scalar(select(Message.subject).where(
            Message.message_id == notice.original_message_id)) if notice.original_message_id else None
        queued = self.mailer.to_agents(
            session, ticket, "agent_bounce",
            {"customer": {"name": ticket.customer_name, "email": ticket.customer_email},
             "recipient": verdict.recipient or ticket.customer_email, "reason": notice.diagnostic,
             "bounced_subject": bounced_subject or ticket.subject},
            kind="bounce-notice", recipients=self.mailer.all_agents())
        return ticket, queued

    def _suppress(self, session: Session, verdict: BounceVerdict, ticket: Ticket,
                  until: datetime, now: datetime) -> None:
        address = verdict.suppress or ""
        hashed = address_hash(session, address)
        # Only the hash is kept; the diagnostic often quotes the address, so it goes too.
        reason = re.sub(re.escape(address), "<address>", verdict.reason, flags=re.IGNORECASE)[:2000]
        row = session.get(SuppressedAddress, hashed)
        if row is None:
            session.add(SuppressedAddress(address_hash=hashed, until=until, reason=reason,
                                          ticket_id=ticket.id, created_at=now))
        else:
            row.until, row.reason, row.ticket_id = until, reason, ticket.id
        log.info("ticket=%d %s hard-bounced: no automatic mail to it until %s", ticket.id, address,
                 until)
