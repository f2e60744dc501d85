"""Queue outgoing mail inside the caller's transaction: render → compose → outbox (+ history).

Customers get mail in their language, threaded on their conversation; agents get one mail each
(in `[agents] language`) whose Message-ID carries their signed token, so their reply proves itself.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from daemon.config import Config, LiveConfig, ShopConfig
from daemon.mail.authenticity import ANY_AGENT, notification_id, problem_message_id
from daemon.mail.message import Attachment
from daemon.mail.orders import listed_orders
from daemon.outbound.compose import Copy, Outgoing, Thread, compose, new_message_id
from daemon.outbound.rate_limits import exceeded, lookback
from daemon.outbound.rendering import Rendered, Renderer
from daemon.shop.lookup import OrderLookup
from daemon.shop.model import Order
from daemon.storage.address_keys import address_hash, installation_key, keyed_hash
from daemon.storage.models import (
    Direction,
    Message,
    OutboxItem,
    PendingClosing,
    Problem,
    SuppressedAddress,
    Ticket,
)

log = logging.getLogger("daemon.mailer")

_THREAD_DEPTH = 20
# The agents' notifications of customer mail: the ones that show what the shop knows of each order.
NOTIFICATIONS = frozenset({"agent_new_ticket", "agent_followup"})



def shop_context(shop: ShopConfig) -> dict[str, str | None]:
    """The `shop` variable every template gets (templates/CONTEXT.md)."""
    return {"name": shop.name, "address": shop.address, "phone": shop.phone, "web": shop.web,
            "signature": shop.signature}

class Mailer:
    def __init__(self, config: Config | LiveConfig, renderer: Renderer, clock: Callable[[], datetime],
                 agent_secret: bytes, agent_help: Sequence[str] = ()) -> None:
        self.live = LiveConfig.of(config)
        self.renderer = renderer
        self.clock = clock
        self.agent_secret = agent_secret
        # The agent commands' syntax, one line each, shown in agents' mail; the tickets layer
        # owns the commands, so it is handed in rather than imported from above.
        self.agent_help = list(agent_help)
        # Set for `import-mbox`: history is filed into tickets, but nobody is mailed about it.
        self.silent = False
        # Automatic customer mail not queued since start, by cause ("suppressed", "rate-limited").
        self.withheld: Counter[str] = Counter()
        # The shop's orders for the agents' notifications; None without a [platform].
        self.orders: OrderLookup | None = None

    @property
    def config(self) -> Config:
        """The mailbox's settings now (a reload swaps them in the shared LiveConfig)."""
        return self.live.config

    def shop_context(self) -> dict[str, str | None]:
        return shop_context(self.config.shop)

    def customer_thread(self, session: Session, ticket: Ticket) -> Thread:
        """In-Reply-To the customer's latest message, References the conversation so far.

        Only ids the customer has seen are named: never an agent's own message or a note.
        """
        rows = session.execute(
            select(Message.message_id, Message.direction).where(
                Message.ticket_id == ticket.id,
                Message.direction.in_((Direction.IN, Direction.OUT)))
            .order_by(Message.id)
        ).all()
        latest_in = next((mid for mid, d in reversed(rows) if d == Direction.IN), None)
        chain = [mid for mid, _ in rows][-_THREAD_DEPTH:]
        return Thread(in_reply_to=latest_in, references=tuple(m for m in chain if m != latest_in),
                      thread_index=ticket.thread_index)

    def to_customer(self, session: Session, ticket: Ticket, template: str,
                    variables: Mapping[str, Any], *, kind: str, thread: Thread,
                    automatic: str | None, direction: str = Direction.OUT,
                    attachments: Sequence[Attachment] = (), author: tuple[str, str] | None = None,
                    language: str | None = None, answers: Sequence[str] = ()) -> bool:
        """Queue a mail to the customer and record it in the ticket's history; False when silent
        or when an automatic mail is withheld (suppressed address, rate limit).

        `language` overrides the ticket's for this mail; `answers` are the quick answers it uses.
        """
        if self.silent:
            return False
        now = self.clock()
        if ticket.pseudonymised_at is not None:
            # Its customer's data was erased: there is nobody to write to, and the clock moves on
            # so the scheduler does not try again every sweep.
            log.info("ticket=%d %s not queued: the customer's personal data was erased",
                     ticket.id, kind)
            ticket.last_outbound_at = ticket.updated_at = now
            return False
        if automatic is not None and self._withhold(session, ticket, kind, now):
            return False
        shop = self.config.shop
        language = language or ticket.language
        rendered = self.renderer.render(
            template, language,
            {"shop": self.shop_context(),
             "ticket": {"number": ticket.id, "subject": ticket.subject,
                        "customer_name": ticket.customer_name},
             **variables},
            fallback_language=shop.default_language)
        outgoing = compose(kind=kind, ticket=ticket.id, shop_name=shop.name,
                           shop_address=shop.address,
                           copies=[Copy(((ticket.customer_name, ticket.customer_email),))],
                           rendered=rendered, language=language, thread=thread,
                           automatic=automatic, now=now, attachments=attachments)
        self._enqueue(session, ticket, outgoing, now, automatic=automatic is not None)
        [message_id] = [mail.message_id for mail in outgoing]
        name, email = author or (shop.name, shop.address)
        session.add(Message(ticket_id=ticket.id, direction=direction,
                            message_id=message_id, in_reply_to=thread.in_reply_to or "",
                            references=" ".join(thread.references), from_email=email,
                            from_name=name, to=ticket.customer_email, subject=rendered.subject,
                            text=variables.get("text") or rendered.text, full_text=rendered.text,
                            kind=kind, answers=",".join(answers), created_at=now))
        ticket.last_outbound_at = now
        ticket.updated_at = now
        return True

    def to_agents(self, session: Session, ticket: Ticket | None, template: str,
                  variables: Mapping[str, Any], *, kind: str, recipients: Sequence[str],
                  from_name: str | None = None, attachments: Sequence[Attachment] = ()) -> int:
        """One copy per agent, each with its own signed Message-ID; returns how many were queued."""
        if self.silent:
            return 0
        shop = self.config.shop
        domain = shop.address.rpartition("@")[2]
        number = ticket.id if ticket is not None else 0
        notify = set(self.config.agents.notify)
        copies = [Copy((("", recipient),), notification_id(
                      self.agent_secret, number, ANY_AGENT if recipient in notify else recipient,
                      domain))
                  for recipient in dict.fromkeys(recipients)]
        if not copies:
            return 0
        now = self.clock()
        context = {"shop": self.shop_context(), "commands": self.agent_help,
                   "ticket": (self.agent_ticket(session, ticket, with_orders=template in NOTIFICATIONS)
                              if ticket is not None else None),
                   **variables}
        rendered = self.renderer.render(template, self.config.agents.language, context,
                                        fallback_language="en")
        self._enqueue(session, ticket, compose(
            kind=kind, ticket=number, shop_name=shop.name, shop_address=shop.address, copies=copies,
            rendered=rendered, language=self.config.agents.language, thread=Thread(),
            automatic="auto-generated", now=now, from_name=from_name, attachments=attachments), now)
        return len(copies)

    def to_addresses(self, session: Session, rendered: Rendered, *, kind: str,
                     recipients: Sequence[str], language: str) -> int:
        """A mail built by code rather than a template (the weekly report), one copy each."""
        if self.silent or not recipients:
            return 0
        shop = self.config.shop
        now = self.clock()
        copies = [Copy((("", recipient),)) for recipient in dict.fromkeys(recipients)]
        self._enqueue(session, None, compose(
            kind=kind, ticket=0, shop_name=shop.name, shop_address=shop.address, copies=copies,
            rendered=rendered, language=language, thread=Thread(), automatic="auto-generated",
            now=now), now)
        return len(copies)

    def to_agents_about_problem(self, session: Session, problem: Problem, template: str,
                                variables: Mapping[str, Any], *, kind: str,
                                recipients: Sequence[str]) -> int:
        """One mail per agent in the problem's thread: subject `[problem NAME] title`, header
        `X-Incidencias-Problem`, a Message-ID signed for that agent and that problem."""
        if self.silent:
            return 0
        shop = self.config.shop
        domain = shop.address.rpartition("@")[2]
        notify = set(self.config.agents.notify)
        copies = [Copy((("", recipient),), problem_message_id(
                      self.agent_secret, problem.id, ANY_AGENT if recipient in notify else recipient,
                      domain))
                  for recipient in dict.fromkeys(recipients)]
        if not copies:
            return 0
        now = self.clock()
        rendered = self.renderer.render(
            template, self.config.agents.language,
            {"shop": self.shop_context(), **variables}, fallback_language="en")
        self._enqueue(session, None, compose(
            kind=kind, ticket=0, shop_name=shop.name, shop_address=shop.address, copies=copies,
            rendered=rendered, language=self.config.agents.language,
            thread=Thread(references=(problem.thread_id,)), automatic="auto-generated", now=now,
            problem=problem.name), now)
        return len(copies)

    def suppressed(self, session: Session, addresses: Sequence[str]
                   ) -> dict[str, SuppressedAddress]:
        """Which of these addresses hard-bounced and are still suppressed, read in a few queries."""
        now = self.clock()
        key = installation_key(session)
        by_hash = {keyed_hash(key, address): address for address in addresses}
        hashes = list(by_hash)
        found: dict[str, SuppressedAddress] = {}
        for start in range(0, len(hashes), 500):
            found.update((by_hash[row.address_hash], row) for row in session.scalars(
                select(SuppressedAddress).where(
                    SuppressedAddress.address_hash.in_(hashes[start:start + 500]),
                    SuppressedAddress.until > now)))
        return found

    def agent_ticket(self, session: Session, ticket: Ticket,
                     with_orders: bool = False) -> dict[str, Any]:
        """The ticket summary agents see: status, age, language, last contact, message count,
        order numbers — with what the shop says of each when `with_orders` (notifications)."""
        zone = ZoneInfo(self.config.shop.timezone)
        # Counted without flushing: what is stored plus what this transaction is about to add.
        stored = session.connection().execute(select(func.count()).select_from(Message)
                                              .where(Message.ticket_id == ticket.id)).scalar()
        count = (stored or 0) + sum(1 for pending in session.new
                                    if isinstance(pending, Message) and pending.ticket_id == ticket.id)
        return {
            "number": ticket.id, "subject": ticket.subject, "customer_name": ticket.customer_name,
            "status": ticket.status, "language": ticket.language,
            "created_at": _shop_time(ticket.created_at, zone),
            "age_days": max(0, (self.clock() - ticket.created_at).days),
            "last_contact": (_shop_time(ticket.last_outbound_at, zone)
                             if ticket.last_outbound_at else None),
            "message_count": count,
            "orders": self._orders(listed_orders(ticket.orders or ""), with_orders),
            # Only a [platform] makes closings wait, so without one there is nothing to look up.
            "closing_pending": (_pending(session.get(PendingClosing, ticket.id))
                                if self.orders is not None else None),
        }

    def _orders(self, numbers: list[str], look_up: bool) -> list[dict[str, Any]]:
        """Each order for the template; `answered` None: the shop was not asked (no [platform])."""
        if not numbers:
            return []
        if not look_up or self.orders is None:
            return [_order_entry(number, None, None) for number in numbers]
        return [_order_entry(info.number, info.answered, info.order)
                for info in self.orders.orders(numbers)]

    def all_agents(self) -> list[str]:
        return [*self.config.agents.addresses, *self.config.agents.notify]

    def _withhold(self, session: Session, ticket: Ticket, kind: str, now: datetime) -> bool:
        """Keep automatic mail from an address that hard-bounced or is over a rate limit.

        The ticket's history gets a note saying so, and its clock moves on as if the mail had gone,
        so the scheduler does not try again every sweep.
        """
        cause, why = self._why_withheld(session, ticket, now)
        if cause is None:
            return False
        self.withheld[cause] += 1
        log.warning("ticket=%d automatic %s to %s not sent: %s", ticket.id, kind,
                    ticket.customer_email, why)
        shop = self.config.shop
        session.add(Message(ticket_id=ticket.id, direction=Direction.NOTE,
                            message_id=new_message_id(shop.address.rpartition("@")[2], ticket.id,
                                                      f"withheld-{kind}"),
                            from_email=shop.address, from_name=shop.name, to=ticket.customer_email,
                            subject=f"{kind} not sent", text=f"Automatic {kind} not sent: {why}.",
                            full_text=f"Automatic {kind} not sent: {why}.", kind=f"withheld-{kind}",
                            created_at=now))
        ticket.last_outbound_at = now
        ticket.updated_at = now
        return True

    def _why_withheld(self, session: Session, ticket: Ticket, now: datetime
                      ) -> tuple[str | None, str]:
        address = ticket.customer_email
        suppressed = session.get(SuppressedAddress, address_hash(session, address))
        if suppressed is not None and suppressed.until > now:
            return "suppressed", (f"the address hard-bounced, no automatic mail until "
                                  f"{suppressed.until:%Y-%m-%d %H:%M} UTC ({suppressed.reason[:200]})")
        limits = self.config.limits
        for ladder, scope, where in (
                (limits.automatic_per_address, f"address {address}", OutboxItem.recipients == address),
                (limits.automatic_per_ticket, f"ticket #{ticket.id}", OutboxItem.ticket_id == ticket.id)):
            window, most = lookback(ladder)
            if not most:
                continue
            # Core on the connection: outbox rows are never pending objects, nothing to flush.
            sent = session.connection().execute(
                select(OutboxItem.created_at)
                .where(OutboxItem.automatic.is_(True), where, OutboxItem.created_at > now - window)
                .order_by(OutboxItem.created_at.desc()).limit(most)).scalars().all()
            rate = exceeded(ladder, sent, now)
            if rate is not None:
                return "rate-limited", f"rate limit {rate} for {scope} reached"
        return None, ""

    def _enqueue(self, session: Session, ticket: Ticket | None, outgoing: Sequence[Outgoing],
                 now: datetime, automatic: bool = False) -> None:
        """One bulk INSERT for all copies, a Core statement on the session's connection: the rows
        are never read back as objects in this transaction, so they need no ORM (one object per row
        cost more than composing the mail), and nothing pending has to be flushed first (the
        ticket they name is already stored: a new one is flushed when it is opened)."""
        session.connection().execute(insert(OutboxItem), [
            {"ticket_id": ticket.id if ticket is not None else None, "kind": mail.kind,
             "message_id": mail.message_id, "mail_from": mail.mail_from,
             "recipients": "\n".join(mail.recipients), "raw": mail.raw, "created_at": now,
             "next_attempt_at": now, "automatic": automatic}
            for mail in outgoing])


def _order_entry(number: str, answered: bool | None, order: Order | None) -> dict[str, Any]:
    return {
        "number": order.number if order is not None else number,
        "answered": answered,
        "found": order is not None,
        "status": order.status if order else None,
        "date": order.created if order else None,
        "total": order.total if order else None,
        "items": [{"name": item.name, "quantity": item.quantity} for item in order.items] if order else [],
        "shipping": order.shipping_method if order else None,
        "tracking": list(order.tracking) if order else [],
    }


def _pending(pending: PendingClosing | None) -> dict[str, Any] | None:
    return None if pending is None else {"code": pending.code, "percent": pending.percent,
                                         "last_error": pending.last_error}


def _shop_time(moment: datetime, zone: ZoneInfo) -> str:
    return moment.replace(tzinfo=UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M")
