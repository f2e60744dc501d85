"""A verified agent's reply: run its commands, then relay the text to the customer or keep it as a note.

The customer only ever sees the agent's own words, wrapped in the reply template and sent from
the shop's address in their thread; command lines, quoted history and the agent's address never
reach them. A reply with any bad command changes nothing and reaches nobody but its author.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.config import Config
from daemon.mail.message import ParsedMessage
from daemon.mail.orders import edit_orders
from daemon.mail.quoting import visible_text
from daemon.outbound.queue import Mailer
from daemon.storage.models import (
    Attachment,
    Direction,
    Message,
    PendingClosing,
    Promise,
    RawMessage,
    Ticket,
)
from daemon.tickets import state
from daemon.tickets.agents.commands import Command, ParsedReply, parse_reply
from daemon.tickets.lifecycle import Lifecycle

log = logging.getLogger("daemon.agent_replies")


class AgentReplies:
    def __init__(self, config: Config, mailer: Mailer, lifecycle: Lifecycle,
                 clock: Callable[[], datetime]) -> None:
        self.config = config
        self.mailer = mailer
        self.lifecycle = lifecycle
        self.clock = clock

    def handle(self, session: Session, ticket: Ticket, parsed: ParsedMessage,
               row: RawMessage) -> int:
        """Apply one verified agent message to its ticket; returns how many mails were queued."""
        agent = parsed.sender.email
        agent_name = parsed.sender.name or agent.partition("@")[0].capitalize()
        reply = parse_reply(visible_text(parsed.text), now=self.clock(),
                            timezone=self.config.shop.timezone,
                            languages=self.config.shop.languages,
                            agents=self.config.agents.addresses)
        if reply.errors:
            self._record(session, ticket, parsed, row, reply.body, "rejected-commands")
            log.info("ticket=%d agent reply with %d bad command(s) rejected", ticket.id,
                     len(reply.errors))
            return self.mailer.to_agents(
                session, ticket, "agent_command_error",
                {"errors": [{"line": e.line, "message": e.message} for e in reply.errors],
                 "delivered": False},
                kind="command-error", recipients=[agent])
        queued = 0
        closing = next((c for c in reply.commands if c.name == "close"), None)
        for command in reply.commands:
            if command is not closing:
                queued += self._apply(session, ticket, command, agent)
        if closing is not None:
            self._record(session, ticket, parsed, row, reply.body, "close", Direction.AGENT)
            self.lifecycle.close(session, ticket, percent=closing.percent,
                                 no_discount=closing.no_discount,
                                 personal_line=closing.text or reply.body or None)
            self._answered(ticket)
            return queued + 1
        if reply.is_note:
            self._record(session, ticket, parsed, row, reply.body, "note")
            log.info("ticket=%d internal note from an agent", ticket.id)
            return queued + self._copy_to_team(session, ticket, parsed, agent, agent_name, "note",
                                               reply)
        if not reply.body.strip():
            self._record(session, ticket, parsed, row, "", "commands")
            return queued
        self._record(session, ticket, parsed, row, reply.body, "agent-reply", Direction.AGENT)
        self._answered(ticket)
        self.mailer.to_customer(
            session, ticket, "agent_reply", {"agent_name": agent_name, "text": reply.body},
            kind="agent-reply", thread=self.mailer.customer_thread(session, ticket),
            automatic=None, attachments=parsed.attachments, author=(agent_name, agent))
        log.info("ticket=%d agent reply relayed to the customer", ticket.id)
        return queued + 1 + self._copy_to_team(session, ticket, parsed, agent, agent_name, "reply",
                                               reply)

    def _answered(self, ticket: Ticket) -> None:
        now = self.clock()
        ticket.last_agent_reply_at = now
        ticket.first_agent_reply_at = ticket.first_agent_reply_at or now

    def _copy_to_team(self, session: Session, ticket: Ticket, parsed: ParsedMessage, agent: str,
                      agent_name: str, kind: str, reply: ParsedReply) -> int:
        others = [a for a in self.mailer.all_agents() if a != agent]
        if not others:
            return 0
        return self.mailer.to_agents(
            session, ticket, "agent_copy",
            {"customer": {"name": ticket.customer_name, "email": ticket.customer_email},
             "agent_name": agent_name, "agent_email": agent, "kind": kind, "text": reply.body,
             "attachments": [{"filename": a.filename, "size": a.size} for a in parsed.attachments]},
            kind=f"copy-{kind}", recipients=others, attachments=parsed.attachments)

    def _apply(self, session: Session, ticket: Ticket, command: Command, agent: str) -> int:
        """One command's effect on the ticket; returns mails queued (only #help sends any)."""
        name = command.name
        now = self.clock()
        if name == "reopen":
            state.apply(ticket, state.Event.REOPENED, now)
            waiting = session.get(PendingClosing, ticket.id)
            if waiting is not None:  # a closing that waited for the shop's coupon is called off
                session.delete(waiting)
        elif name == "waiting":
            state.apply(ticket, state.Event.WAITING, now)
        elif name == "promise" and command.until is not None:
            session.add(Promise(ticket_id=ticket.id, agent=agent, text=command.text,
                                due_at=command.until, created_at=now))
        elif name == "done":
            for promise in session.scalars(select(Promise).where(
                    Promise.ticket_id == ticket.id, Promise.done_at.is_(None))):
                promise.done_at = now
        elif name == "wait":
            ticket.wait_until = command.until
        elif name == "assign":
            ticket.assigned_to = command.text
        elif name == "tag":
            tags = [t for t in ticket.tags.split(",") if t]
            if command.text not in tags:
                ticket.tags = ",".join([*tags, command.text])
        elif name == "lang":
            ticket.language = command.text
        elif name == "status":
            ticket.status_line = command.text
        elif name == "order":
            ticket.orders = edit_orders(ticket.orders or "", command.text, remove=command.remove)
        elif name == "help":
            return self.mailer.to_agents(session, ticket, "agent_help", {}, kind="help",
                                         recipients=[agent])
        ticket.updated_at = now
        log.info("ticket=%d #%s by agent", ticket.id, name)
        return 0

    def _record(self, session: Session, ticket: Ticket, parsed: ParsedMessage, row: RawMessage,
                text: str, kind: str, direction: str = Direction.NOTE) -> None:
        session.add(Message(
            ticket_id=ticket.id, direction=direction, message_id=parsed.message_id,
            in_reply_to=" ".join(parsed.in_reply_to), references=" ".join(parsed.references),
            from_email=parsed.sender.email, from_name=parsed.sender.name, subject=parsed.subject,
            text=text, full_text=parsed.text, kind=kind, raw_id=row.id, created_at=self.clock(),
            attachments=[Attachment(filename=a.filename, content_type=a.content_type, size=a.size,
                                    content=a.content) for a in parsed.attachments]))
        row.ticket_id = ticket.id
