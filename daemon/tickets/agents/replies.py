"""A verified agent's reply: run its commands, then relay the text to the customer or keep it as a note.

The customer only ever sees the agent's own words and the quick answers they asked for (#answer),
wrapped in the reply template and sent from the shop's address in their thread; command lines,
quoted history and the agent's address never reach them. A reply with any bad command — including
an answer that is unknown, missing in the customer's language or fails to render — changes nothing
and reaches nobody but its author.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.config import Config, LiveConfig
from daemon.mail.message import ParsedMessage
from daemon.mail.orders import edit_orders
from daemon.outbound.queue import Mailer
from daemon.outbound.rendering import TemplateError
from daemon.storage.models import Direction, PendingClosing, Promise, Ticket
from daemon.tickets import state
from daemon.tickets.agents.commands import Command, CommandError, parse_reply
from daemon.tickets.arrival import Arrival
from daemon.tickets.lifecycle import Lifecycle
from daemon.tickets.problems.service import Problems

log = logging.getLogger("daemon.agent_replies")

_LANGUAGE_NAMES = {"es": "Spanish", "fr": "French", "en": "English", "de": "German",
                   "it": "Italian", "pt": "Portuguese"}


@dataclass(frozen=True)
class _Answers:
    """The quick answers of one reply, rendered: their names, texts and the language they share."""

    names: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    language: str | None = None


class AgentReplies:
    def __init__(self, config: Config | LiveConfig, mailer: Mailer, lifecycle: Lifecycle,
                 clock: Callable[[], datetime]) -> None:
        self.live = LiveConfig.of(config)
        self.mailer = mailer
        self.lifecycle = lifecycle
        self.clock = clock
        self.problems = Problems(self.live, mailer, lifecycle, clock, answers=self._answers)

    @property
    def config(self) -> Config:
        """The mailbox's settings now (a reload swaps them in the shared LiveConfig)."""
        return self.live.config

    def handle(self, session: Session, ticket: Ticket, arrival: Arrival) -> int:
        """Apply one verified agent message to its ticket; returns how many mails were queued."""
        parsed = arrival.parsed
        agent = parsed.sender.email
        agent_name = parsed.sender.name or agent.partition("@")[0].capitalize()
        config = arrival.config
        reply = parse_reply(arrival.text, now=self.clock(), timezone=config.shop.timezone,
                            languages=config.shop.languages, agents=config.agents.addresses,
                            reasons=config.reasons.known)
        errors = list(reply.errors)
        answers = _Answers()
        if not errors:
            answers, errors = self._answers(session, ticket, reply.commands, agent_name)
        if errors:
            self._record(session, ticket, arrival, reply.body, "rejected-commands")
            log.info("ticket=%d agent reply with %d bad command(s) rejected", ticket.id,
                     len(errors))
            return self.mailer.to_agents(
                session, ticket, "agent_command_error",
                {"errors": [{"line": e.line, "message": e.message} for e in errors],
                 "delivered": False},
                kind="command-error", recipients=[agent])
        queued = 0
        closing = next((c for c in reply.commands if c.name == "close"), None)
        for command in reply.commands:
            if command is not closing:
                queued += self._apply(session, ticket, command, agent)
        if closing is not None:
            self._record(session, ticket, arrival, reply.body, "close", Direction.AGENT)
            self.lifecycle.close(session, ticket, percent=closing.percent,
                                 no_discount=closing.no_discount,
                                 personal_line=closing.text or reply.body or None)
            self._answered(ticket)
            return queued + 1
        if reply.is_note:
            self._record(session, ticket, arrival, reply.body, "note")
            log.info("ticket=%d internal note from an agent", ticket.id)
            return queued + self._copy_to_team(session, ticket, parsed, agent, agent_name, "note",
                                               reply.body)
        own_words = reply.body.strip()
        if not own_words and not answers.names:
            self._record(session, ticket, arrival, "", "commands")
            return queued
        # The agent's own words first (they greet as they always do), then the answers in order;
        # an answers-only reply gets the template's greeting and sign-off instead.
        text = "\n\n".join(part.strip() for part in (own_words, *answers.texts) if part.strip())
        self._record(session, ticket, arrival, reply.body, "agent-reply", Direction.AGENT)
        self._answered(ticket)
        self.mailer.to_customer(
            session, ticket, "agent_reply",
            {"agent_name": agent_name, "text": text, "greeting": not own_words},
            kind="agent-reply", thread=self.mailer.customer_thread(session, ticket),
            automatic=None, attachments=parsed.attachments, author=(agent_name, agent),
            language=answers.language, answers=answers.names)
        log.info("ticket=%d agent reply relayed to the customer (answers: %s)", ticket.id,
                 ", ".join(answers.names) or "none")
        return queued + 1 + self._copy_to_team(session, ticket, parsed, agent, agent_name, "reply",
                                               text)

    def _answered(self, ticket: Ticket) -> None:
        now = self.clock()
        ticket.last_agent_reply_at = now
        ticket.first_agent_reply_at = ticket.first_agent_reply_at or now

    def _answers(self, session: Session, ticket: Ticket, commands: list[Command], agent_name: str
                 ) -> tuple[_Answers, list[CommandError]]:
        """Render the reply's #answer commands before anything is applied, so that an unknown
        name, a missing language or a failing template rejects the whole reply."""
        wanted = [c for c in commands if c.name == "answer"]
        if not wanted:
            return _Answers(), []
        base = next((c.text for c in commands if c.name == "lang"), ticket.language)
        languages = {c.language or base for c in wanted}
        if len(languages) > 1:
            line = " / ".join(c.line for c in wanted)
            return _Answers(), [CommandError(line, "the answers of one reply go in one language; "
                                                   "give the same language to every #answer")]
        [language] = languages
        if language not in self.mailer.renderer.languages("agent_reply"):
            return _Answers(), [CommandError(wanted[0].line, (
                f"there is no reply template in {language}, so an answer in {language} would come "
                f"in a mail in another language; choose one of: "
                f"{', '.join(self.mailer.renderer.languages('agent_reply'))}"))]
        book = self.mailer.renderer.answers()
        context = answer_context(session, ticket, shop=self.mailer.shop_context(),
                                 timezone=self.config.shop.timezone, agent_name=agent_name,
                                 commands=commands)
        errors: list[CommandError] = []
        texts: list[str] = []
        for command in wanted:
            name = command.text
            available = book.languages(name)
            if not available:
                close = book.closest(name)
                hint = f"did you mean {' or '.join(close)}? " if close else ""
                errors.append(CommandError(command.line, f"there is no quick answer {name!r}; {hint}"
                                                         "#answers lists them all"))
            elif language not in available:
                errors.append(CommandError(command.line, (
                    f"{name!r} has no {_LANGUAGE_NAMES.get(language, language)} ({language}) "
                    f"version, and this customer is answered in {language}; it exists in: "
                    f"{', '.join(available)}. To send one of those anyway, name it: "
                    f"#answer {name} {available[0]}")))
            else:
                try:
                    texts.append(self.mailer.renderer.render_answer(name, language, context))
                except TemplateError as error:
                    errors.append(CommandError(command.line, (
                        f"{name!r} could not be written for this ticket ({error.problem}); "
                        "nothing was sent. `incidencias check-config` shows the problem")))
        if errors:
            return _Answers(), errors
        return _Answers(tuple(c.text for c in wanted), tuple(texts), language), []

    def _copy_to_team(self, session: Session, ticket: Ticket, parsed: ParsedMessage, agent: str,
                      agent_name: str, kind: str, text: str) -> int:
        others = [a for a in self.mailer.all_agents() if a != agent]
        if not others:
            return 0
        return self.mailer.to_agents(
            session, ticket, "agent_copy",
            {"customer": {"name": ticket.customer_name, "email": ticket.customer_email},
             "agent_name": agent_name, "agent_email": agent, "kind": kind, "text": text,
             "attachments": [{"filename": a.filename, "size": a.size} for a in parsed.attachments]},
            kind=f"copy-{kind}", recipients=others, attachments=parsed.attachments)

    def _apply(self, session: Session, ticket: Ticket, command: Command, agent: str) -> int:
        """One command's effect on the ticket; returns mails queued (#help, and #problem, which is
        told in the problem's thread)."""
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
        elif name == "problem":
            if command.argument == "-":
                return self.problems.unlink(session, ticket, agent)
            return self.problems.link(session, command.argument, [ticket], agent=agent,
                                      title=command.text or None,
                                      keywords=command.keywords or None)
        elif name == "help":
            return self.mailer.to_agents(session, ticket, "agent_help", {}, kind="help",
                                         recipients=[agent])
        elif name == "answers":
            config = self.config
            book = self.mailer.renderer.answers()
            listing = [{"name": a.name, "languages": list(a.languages), "first_line": a.first_line}
                       for a in book.summaries([config.agents.language, config.shop.default_language])]
            return self.mailer.to_agents(session, ticket, "agent_answers", {"answers": listing},
                                         kind="answers", recipients=[agent])
        elif name == "answer":
            return 0  # sent with the reply's text, after every command has applied
        ticket.updated_at = now
        log.info("ticket=%d #%s by agent", ticket.id, name)
        return 0

    def _record(self, session: Session, ticket: Ticket, arrival: Arrival, text: str, kind: str,
                direction: str = Direction.NOTE) -> None:
        """History keeps the agent's words without their command lines."""
        arrival.record(session, ticket, direction, kind, self.clock(), text=text)


def answer_context(session: Session, ticket: Ticket, *, shop: Mapping[str, object], timezone: str,
                   agent_name: str, commands: Sequence[Command] = ()) -> dict[str, object]:
    """What an answer may say (templates/CONTEXT.md): the ticket as it will be once the reply's
    `commands` apply — a #status or #promise in the same reply counts, a #done clears the date."""
    status_line = next((c.text for c in commands if c.name == "status"), ticket.status_line)
    due: list[datetime | None] = [c.until for c in commands if c.name == "promise"]
    if not any(c.name == "done" for c in commands):
        due.append(session.scalar(select(func.min(Promise.due_at)).where(
            Promise.ticket_id == ticket.id, Promise.done_at.is_(None))))
    soonest = min((d for d in due if d is not None), default=None)
    return {
        "shop": dict(shop),
        "ticket": {"number": ticket.id, "subject": ticket.subject,
                   "customer_name": ticket.customer_name},
        "agent_name": agent_name,
        "status_line": status_line or None,
        "promised_date": (soonest.replace(tzinfo=UTC).astimezone(ZoneInfo(timezone)).date()
                          .isoformat() if soonest is not None else None),
    }
