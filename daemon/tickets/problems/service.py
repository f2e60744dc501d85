"""Acting on a problem: link and unlink tickets, tell every customer at once, close them together.

Guarantees:
- Everything one call does — links, ticket changes, every customer mail, the mail to agents — is
  queued in the caller's transaction, so a broadcast is all queued or none.
- Each customer mail is addressed to that customer alone, in their own thread (`[#N]`,
  In-Reply-To/References of their ticket), from the shop's address, in the agent-reply template of
  their language, signed by the agent. A text that names one of the problem's customers is refused,
  since it would reach the others.
- A broadcast is human mail, like an agent's reply: business hours and the automatic-mail rate
  limits do not apply; a hard-bounced address (while suppressed) is skipped and the agents told.
- Every link, unlink, broadcast and close is told to the agents in the problem's own thread.
- Nothing is linked automatically: keywords only flag a new ticket to the agents.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.config import Config, LiveConfig
from daemon.mail.message import Attachment
from daemon.outbound.compose import new_message_id
from daemon.outbound.queue import Mailer
from daemon.storage.models import Problem, ProblemEvent, ProblemStatus, Ticket, TicketStatus
from daemon.tickets.agents.broadcast import (
    Versions,
    names_in_text,
    problem_command_errors,
    split_versions,
)
from daemon.tickets.agents.commands import Command, CommandError, parse_reply
from daemon.tickets.lifecycle import Lifecycle
from daemon.tickets.problems.keywords import matching_keywords, stored_keywords

log = logging.getLogger("daemon.problems")

#: What an agent can write at the top of a reply to a problem's mail, for the help in its mails.
PROBLEM_HELP: tuple[str, ...] = (
    "Reply with text: it goes to the customer of every open linked ticket, each in their own thread",
    "[es] / [fr] / [en] on a line of their own: one version per language; others get the first",
    "#status / #estado <text>: the problem's status line, shown in linked tickets' updates",
    "#wait / #esperar <3d | 2026-12-01>: pause the updates of every open linked ticket",
    "#note / #nota <text>: internal note in this thread, never sent to customers",
    "#answer / #respuesta <name> [lang]: a quick answer, each customer in their language",
    "#close / #cerrar [15% | nodiscount] [text]: close every open linked ticket, then the problem",
    "On a ticket: #problem / #problema <name> [title] links it, #problem - unlinks it",
)


class RenderedAnswers(Protocol):
    """A reply's quick answers written for one ticket (tickets/agents/replies.py makes them)."""

    @property
    def names(self) -> tuple[str, ...]: ...

    @property
    def texts(self) -> tuple[str, ...]: ...

    @property
    def language(self) -> str | None: ...


#: Writes a reply's #answer commands for one ticket, in its language: the answers, or why not.
AnswerWriter = Callable[[Session, Ticket, list[Command], str],
                        tuple[RenderedAnswers, list[CommandError]]]


@dataclass(frozen=True)
class Sent:
    number: int
    customer: str
    language: str
    version: str
    fallback: bool


@dataclass(frozen=True)
class Skipped:
    number: int
    customer: str
    reason: str


@dataclass(frozen=True)
class ReplyOutcome:
    """What a reply to a problem did: mails queued, who got what, what was refused."""

    queued: int = 0
    sent: tuple[Sent, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    closed: tuple[tuple[int, str | None], ...] = ()
    errors: tuple[CommandError, ...] = ()


@dataclass
class _Told:
    """The parts of one mail in the problem's thread."""

    event: str
    agent: str | None
    changed: list[dict[str, Any]] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    errors: list[CommandError] = field(default_factory=list)
    text: str | None = None


class Problems:
    def __init__(self, config: Config | LiveConfig, mailer: Mailer, lifecycle: Lifecycle,
                 clock: Callable[[], datetime], answers: AnswerWriter | None = None) -> None:
        self.live = LiveConfig.of(config)
        self.mailer = mailer
        self.lifecycle = lifecycle
        self.clock = clock
        self.answers = answers

    @property
    def config(self) -> Config:
        """The mailbox's settings now (a reload swaps them in the shared LiveConfig)."""
        return self.live.config

    def find(self, session: Session, name: str) -> Problem | None:
        """This mailbox's problem called `name`."""
        return session.scalar(select(Problem).where(Problem.mailbox == self.config.mailbox,
                                                    Problem.name == name))

    def link(self, session: Session, name: str, tickets: Sequence[Ticket], *, agent: str | None,
             title: str | None = None, keywords: Sequence[str] | None = None) -> int:
        """Link tickets to problem `name`, creating it (and its thread) when new; a ticket in
        another problem moves. A closed problem is reopened. Returns mails queued."""
        now = self.clock()
        problem = self.find(session, name)
        queued = 0
        created = problem is None
        retold = False
        if problem is None:
            domain = self.config.shop.address.rpartition("@")[2]
            problem = Problem(mailbox=self.config.mailbox, name=name, title=title or name,
                              keywords=",".join(keywords or ()), state=ProblemStatus.OPEN,
                              thread_id=new_message_id(domain, 0, f"problem-{name}"),
                              created_by=agent or "", created_at=now)
            session.add(problem)
            session.flush()
        else:
            if title and problem.title == problem.name:
                problem.title = title
            if keywords and ",".join(keywords) != problem.keywords:
                problem.keywords, retold = ",".join(keywords), True
        reopened = problem.state == ProblemStatus.CLOSED
        if reopened:
            problem.state, problem.resolved_at = ProblemStatus.OPEN, None
        changed = []
        for ticket in tickets:
            if ticket.problem_id == problem.id:
                continue
            if ticket.problem is not None:
                queued += self.unlink(session, ticket, agent)
            ticket.problem = problem
            ticket.updated_at = now
            changed.append(ticket)
            log.info("ticket=%d linked to problem %s", ticket.id, name)
        session.flush()
        if created or changed or reopened:
            self._event(session, problem, "created" if created else "linked", agent,
                        ", ".join(f"#{t.id}" for t in changed))
            queued += self.tell(session, problem, _Told(
                "created" if created else ("reopened" if reopened and not changed else "linked"),
                agent, changed=[_ticket_item(t) for t in changed]))
        elif retold:
            self._event(session, problem, "keywords", agent, problem.keywords)
            queued += self.tell(session, problem, _Told("keywords", agent))
        return queued

    def unlink(self, session: Session, ticket: Ticket, agent: str | None) -> int:
        """Take a ticket out of its problem (told in the problem's thread); 0 when it had none."""
        problem = ticket.problem
        if problem is None:
            return 0
        ticket.problem = None
        ticket.updated_at = self.clock()
        session.flush()
        self._event(session, problem, "unlinked", agent, f"#{ticket.id}")
        log.info("ticket=%d unlinked from problem %s", ticket.id, problem.name)
        return self.tell(session, problem, _Told("unlinked", agent, changed=[_ticket_item(ticket)]))

    def set_keywords(self, session: Session, problem: Problem, keywords: Sequence[str],
                     agent: str | None) -> int:
        problem.keywords = ",".join(keywords)
        self._event(session, problem, "keywords", agent, problem.keywords)
        return self.tell(session, problem, _Told("keywords", agent))

    def suspects(self, session: Session, text: str) -> list[dict[str, Any]]:
        """Open problems of this mailbox whose keywords the text mentions, for the agents'
        notification of a new ticket, with the command that would link it."""
        found = []
        for problem in session.scalars(select(Problem).where(
                Problem.mailbox == self.config.mailbox, Problem.state == ProblemStatus.OPEN,
                Problem.keywords != "").order_by(Problem.id)):
            matched = matching_keywords(stored_keywords(problem.keywords), text)
            if matched:
                found.append({"name": problem.name, "title": problem.title, "matched": matched,
                              "command": f"#problem {problem.name}"})
        return found

    def reply(self, session: Session, problem: Problem, text: str, *, agent: str,
              agent_name: str, attachments: Sequence[Attachment] = (),
              message_id: str | None = None, raw_id: int | None = None) -> ReplyOutcome:
        """A genuine agent's reply to the problem's mail (or `problems broadcast`): its commands act
        on every open linked ticket, its text goes to every open linked ticket's customer.

        Any bad command, misplaced language block or customer named in the text changes nothing
        and sends nothing to customers; the agent gets the explanation in the thread.
        """
        parsed = parse_reply(text, now=self.clock(), timezone=self.config.shop.timezone,
                             languages=self.config.shop.languages,
                             agents=self.config.agents.addresses,
                             reasons=self.config.reasons.known)
        errors = [*parsed.errors, *problem_command_errors(parsed.commands)]
        versions = Versions(()) if parsed.is_note else split_versions(parsed.body)
        errors += [CommandError("(text)", message) for message in versions.errors]
        active = [t for t in problem.tickets if t.status != TicketStatus.CLOSED]
        named = names_in_text("\n".join(body for _, body in versions.blocks),
                              [(t.customer_name, t.customer_email) for t in problem.tickets])
        if named:
            errors.append(CommandError("(text)", "the text names a customer of this problem "
                                       f"({', '.join(named)}); every customer would read it"))
        answers: dict[int, RenderedAnswers] = {}
        if not errors and any(c.name == "answer" for c in parsed.commands):
            answers, refused = self._answers(session, active, parsed.commands, agent_name)
            errors += refused
        if errors:
            # The refused text is not kept here (it may name a customer); the raw mail is.
            self._event(session, problem, "rejected", agent, "", message_id, raw_id)
            log.info("problem %s: agent reply with %d error(s) rejected", problem.name, len(errors))
            queued = self.tell(session, problem, _Told("rejected", agent, errors=errors),
                               recipients=[agent])
            return ReplyOutcome(queued=queued, errors=tuple(errors))
        now = self.clock()
        queued = 0
        for command in parsed.commands:
            if command.name == "status":
                problem.status_line = command.text
            elif command.name == "wait":
                for ticket in active:
                    ticket.wait_until, ticket.updated_at = command.until, now
            elif command.name == "help":
                queued += self.tell(session, problem, _Told("help", agent), recipients=[agent])
        closing = next((c for c in parsed.commands if c.name == "close"), None)
        if closing is not None:
            self._event(session, problem, "closed", agent, parsed.body, message_id, raw_id)
            lines = closing.text or None
            closed, told = self.close(session, problem, agent=agent, percent=closing.percent,
                                      no_discount=closing.no_discount,
                                      personal_line=lambda t: lines or versions.for_language(
                                          t.language).text or None)
            return ReplyOutcome(queued=queued + len(closed) + told, closed=closed)
        if parsed.is_note:
            self._event(session, problem, "note", agent, parsed.body, message_id, raw_id)
            return ReplyOutcome(queued=queued + self.tell(
                session, problem, _Told("note", agent, text=parsed.body)))
        if not versions.blocks and not answers:
            self._event(session, problem, "commands", agent, "", message_id, raw_id)
            changes = [c.line for c in parsed.commands if c.name != "help"]
            if changes:
                queued += self.tell(session, problem, _Told("commands", agent,
                                                            text="\n".join(changes)))
            return ReplyOutcome(queued=queued)
        self._event(session, problem, "broadcast", agent, parsed.body, message_id, raw_id)
        sent, skipped = self._broadcast(session, active, versions, answers, agent, agent_name,
                                        attachments)
        skipped = [*skipped, *(Skipped(t.id, t.customer_email, "closed")
                               for t in problem.tickets if t.status == TicketStatus.CLOSED)]
        log.info("problem %s: broadcast by an agent queued to %d customer(s), %d skipped",
                 problem.name, len(sent), len(skipped))
        queued += len(sent) + self.tell(session, problem, _Told(
            "broadcast", agent, sent=sent, skipped=skipped, text=parsed.body))
        return ReplyOutcome(queued=queued, sent=tuple(sent), skipped=tuple(skipped))

    def _answers(self, session: Session, tickets: Sequence[Ticket], commands: list[Command],
                 agent_name: str) -> tuple[dict[int, RenderedAnswers], list[CommandError]]:
        """The #answer commands written for each ticket in its own language (or the one named);
        any ticket for which they cannot be written refuses the whole reply."""
        if self.answers is None:
            return {}, [CommandError("#answer", "quick answers are not available here")]
        written: dict[int, RenderedAnswers] = {}
        errors: dict[tuple[str, str], list[int]] = {}
        for ticket in tickets:
            done, refused = self.answers(session, ticket, commands, agent_name)
            written[ticket.id] = done
            for error in refused:
                errors.setdefault((error.line, error.message), []).append(ticket.id)
        return written, [CommandError(line, f"{message} (ticket{'s' if len(numbers) > 1 else ''} "
                                            f"{', '.join(f'#{n}' for n in numbers)})")
                         for (line, message), numbers in errors.items()]

    def _broadcast(self, session: Session, tickets: Sequence[Ticket], versions: Versions,
                   answers: Mapping[int, RenderedAnswers], agent: str, agent_name: str,
                   attachments: Sequence[Attachment]) -> tuple[list[Sent], list[Skipped]]:
        now = self.clock()
        sent: list[Sent] = []
        skipped: list[Skipped] = []
        suppressed = self.mailer.suppressed(session, [t.customer_email for t in tickets])
        # Each ticket's thread query would otherwise flush every mail queued before it first.
        with session.no_autoflush:
            for ticket in tickets:
                if ticket.pseudonymised_at is not None:
                    skipped.append(Skipped(ticket.id, ticket.customer_email,
                                           "the customer's personal data was erased"))
                    continue
                bounced = suppressed.get(ticket.customer_email)
                if bounced is not None:
                    skipped.append(Skipped(ticket.id, ticket.customer_email, "hard-bounced, "
                                           f"suppressed until {bounced.until:%Y-%m-%d}"))
                    continue
                version = versions.for_language(ticket.language)
                quick = answers.get(ticket.id)
                texts = quick.texts if quick is not None else ()
                text = "\n\n".join(p.strip() for p in (version.text, *texts) if p.strip())
                self.mailer.to_customer(
                    session, ticket, "agent_reply",
                    {"agent_name": agent_name, "text": text, "greeting": not version.text},
                    kind="broadcast", thread=self.mailer.customer_thread(session, ticket),
                    automatic=None, attachments=attachments, author=(agent_name, agent),
                    language=quick.language if quick is not None else None,
                    answers=quick.names if quick is not None else ())
                ticket.last_agent_reply_at = now
                ticket.first_agent_reply_at = ticket.first_agent_reply_at or now
                sent.append(Sent(ticket.id, ticket.customer_email, ticket.language,
                                 version.language, version.fallback))
        return sent, skipped

    def close(self, session: Session, problem: Problem, *, agent: str | None,
              percent: int | None = None, no_discount: bool = False,
              personal_line: Callable[[Ticket], str | None] = lambda _: None
              ) -> tuple[tuple[tuple[int, str | None], ...], int]:
        """Close every linked ticket still open, each with its own closing mail in its language and
        its own discount code; then the problem. A ticket closed before gets nothing.

        Returns (ticket number, code) per ticket closed, and the mails queued to agents."""
        closed = []
        for ticket in problem.tickets:
            if ticket.status == TicketStatus.CLOSED:
                continue
            code = self.lifecycle.close(session, ticket, percent=percent, no_discount=no_discount,
                                        personal_line=personal_line(ticket))
            closed.append((ticket.id, code))
        problem.state, problem.resolved_at = ProblemStatus.CLOSED, self.clock()
        log.info("problem %s closed with %d ticket(s)", problem.name, len(closed))
        by_number = dict(closed)
        told = self.tell(session, problem, _Told("closed", agent, changed=[
            {**_ticket_item(t), "code": by_number.get(t.id)}
            for t in problem.tickets if t.id in by_number]))
        return tuple(closed), told

    def tell(self, session: Session, problem: Problem, told: _Told,
             recipients: Sequence[str] | None = None) -> int:
        """A mail in the problem's thread to the agents (or to `recipients`)."""
        return self.mailer.to_agents_about_problem(
            session, problem, "agent_problem", self.context(problem, told),
            kind=f"problem-{told.event}",
            recipients=self.mailer.all_agents() if recipients is None else recipients)

    def context(self, problem: Problem, told: _Told) -> dict[str, Any]:
        return {
            "problem": problem_summary(problem),
            "event": told.event,
            "agent": told.agent,
            "text": told.text,
            "changed": told.changed,
            "sent": [{"number": s.number, "customer": s.customer, "language": s.language,
                      "version": s.version, "fallback": s.fallback} for s in told.sent],
            "skipped": [{"number": s.number, "customer": s.customer, "reason": s.reason}
                        for s in told.skipped],
            "errors": [{"line": e.line, "message": e.message} for e in told.errors],
            "commands": list(PROBLEM_HELP),
        }

    def _event(self, session: Session, problem: Problem, kind: str, agent: str | None,
               text: str, message_id: str | None = None, raw_id: int | None = None) -> None:
        session.add(ProblemEvent(problem_id=problem.id, kind=kind, agent=agent or "",
                                 message_id=message_id, text=text, raw_id=raw_id,
                                 created_at=self.clock()))


def problem_summary(problem: Problem) -> Mapping[str, Any]:
    """The problem as the agents' template sees it."""
    return {"name": problem.name, "title": problem.title, "status": problem.state,
            "status_line": problem.status_line, "keywords": stored_keywords(problem.keywords),
            "tickets": [_ticket_item(t) for t in problem.tickets]}


def _ticket_item(ticket: Ticket) -> dict[str, Any]:
    return {"number": ticket.id, "customer": ticket.customer_email,
            "customer_name": ticket.customer_name, "language": ticket.language,
            "status": ticket.status, "subject": ticket.subject, "code": None}

