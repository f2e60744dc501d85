"""One received email's journey: keep raw → parse → classify → thread → apply → compose → outbox.

Everything a message causes (ticket change, stored message, outgoing mail) commits in one
transaction, together with the raw bytes, so a crash leaves either all of it or none of it.
A message that cannot be processed is stored raw as quarantined with the error instead.

The router decides where a message goes; each destination is one method or part, all given the
same Arrival (tickets/arrival.py): a verified agent's mail (agents/replies.py), automatic mail and
bounces (bounces.py), a new ticket, or a follow-up on an existing one.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message as EmailMessage

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from daemon.config import Config, LiveConfig
from daemon.mail.authenticity import AgentCheck, check_agent
from daemon.mail.classify import Kind
from daemon.mail.language import detect_language
from daemon.mail.message import ParsedMessage
from daemon.mail.orders import compile_patterns, find_orders, merge_orders
from daemon.mail.parsing import ParseError, parse, parse_headers
from daemon.mail.subjects import subject_key
from daemon.outbound.compose import Thread
from daemon.outbound.queue import Mailer
from daemon.storage.models import (
    AgentWarning,
    Direction,
    Message,
    Problem,
    ProblemEvent,
    RawMessage,
    RawOutcome,
    Ticket,
    TicketStatus,
)
from daemon.storage.queries import TicketStore
from daemon.tickets import state
from daemon.tickets.agents.replies import AgentReplies
from daemon.tickets.arrival import Arrival
from daemon.tickets.bounces import AutomaticMail
from daemon.tickets.coupons import PlatformCoupons
from daemon.tickets.feedback import Feedback
from daemon.tickets.lifecycle import Lifecycle, days_until_update
from daemon.tickets.satisfaction import satisfaction_score
from daemon.tickets.threading import match_ticket

log = logging.getLogger("daemon.ingest")

_WARN_EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class Source:
    """Where a raw message was fetched from, so a restart can tell it was already handled."""

    folder: str = ""
    uidvalidity: int | None = None
    uid: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of one raw message; `outcome` is a RawOutcome value."""

    outcome: str
    ticket: int | None
    raw_id: int
    queued: int = 0
    new_ticket: bool = False
    error: str | None = None
    already_handled: bool = False


class Ingestor:
    """Applies received mail to tickets; the clock and the database are passed in."""

    def __init__(self, config: Config | LiveConfig, mailer: Mailer, lifecycle: Lifecycle,
                 sessions: sessionmaker[Session], clock: Callable[[], datetime],
                 agent_secret: bytes) -> None:
        self.live = LiveConfig.of(config)
        self.sessions = sessions
        self.clock = clock
        self.agent_secret = agent_secret
        self.mailer = mailer
        self.lifecycle = lifecycle
        self.agent_replies = AgentReplies(self.live, mailer, lifecycle, clock)
        self.automatic = AutomaticMail(mailer, clock)
        discounts = lifecycle.discounts
        self.feedback = Feedback(self.live, mailer,
                                 None if isinstance(discounts, PlatformCoupons) else discounts, clock)

    @property
    def config(self) -> Config:
        """The mailbox's settings now (a reload swaps them in the shared LiveConfig)."""
        return self.live.config

    def ingest(self, raw: bytes, source: Source = Source()) -> Outcome:
        """Store and process one message; never raises for bad mail, only for database trouble.

        Once it is committed, a closing it started that waits for the shop's coupon is tried at
        once (the sweep retries it otherwise)."""
        [outcome] = self.ingest_many([(raw, source)])
        return outcome

    def ingest_many(self, batch: Sequence[tuple[bytes, Source]]) -> list[Outcome]:
        """Store and process several messages in one transaction: one outcome each, in order.

        Each message runs in a savepoint of its own, so a bad one is rolled back alone and stored
        quarantined while the others are kept; database trouble (OperationalError) rolls the whole
        batch back and is raised, leaving none of it. The commit is paid once per batch, which is
        what makes a backlog fast; a caller tells the mailbox a message was handled only after
        this returns. Closings waiting for the shop's coupon are tried after the commit.
        """
        if not batch:
            return []
        with self.sessions.begin() as session:
            _write_transaction(session)
            outcomes = [self._ingest_one(session, raw, source) for raw, source in batch]
        settle = [o.ticket for o in outcomes if o.ticket is not None and not o.already_handled]
        if settle:
            self.lifecycle.settle_closings(list(dict.fromkeys(settle)))
        return outcomes

    def _ingest_one(self, session: Session, raw: bytes, source: Source) -> Outcome:
        sha = hashlib.sha256(raw).hexdigest()
        try:
            with session.begin_nested():
                known = _already_handled(session, sha)
                if known is not None:
                    return known
                row = RawMessage(sha256=sha, size=len(raw), raw=raw, folder=source.folder,
                                 uidvalidity=source.uidvalidity, uid=source.uid,
                                 outcome=RawOutcome.TICKET, received_at=self.clock())
                session.add(row)
                return self._apply(session, raw, row)
        except OperationalError:
            raise
        except IntegrityError:
            known = _already_handled(session, sha)
            if known is not None:
                return known
            return self._quarantine(session, raw, sha, source,
                                    "database integrity error while storing")
        except Exception as exc:
            log.warning("quarantined message sha256=%s: %s: %s", sha[:12], type(exc).__name__, exc)
            return self._quarantine(session, raw, sha, source, f"{type(exc).__name__}: {exc}")

    def _quarantine(self, session: Session, raw: bytes, sha: str, source: Source,
                    error: str) -> Outcome:
        row = RawMessage(sha256=sha, size=len(raw), raw=raw, folder=source.folder,
                         uidvalidity=source.uidvalidity, uid=source.uid,
                         outcome=RawOutcome.QUARANTINED, error=error[:2000],
                         received_at=self.clock())
        session.add(row)
        session.flush()
        return Outcome(RawOutcome.QUARANTINED, None, row.id, error=error)

    def replay(self, raw_id: int) -> Outcome:
        """Process a quarantined message's stored bytes again, e.g. once the ticket it answers exists.

        Success turns the row into a ticket or duplicate outcome; another failure keeps it
        quarantined with the new error. Raises LookupError for a row that is not quarantined.
        """
        try:
            with self.sessions.begin() as session:
                row = session.get(RawMessage, raw_id, with_for_update=True)
                if row is None or row.outcome != RawOutcome.QUARANTINED:
                    raise LookupError(f"no quarantined message {raw_id}")
                if row.erased_at is not None:
                    raise LookupError(f"quarantined message {raw_id} was erased (personal data)")
                row.outcome, row.error = RawOutcome.TICKET, None
                return self._apply(session, row.raw, row)
        except (OperationalError, LookupError):
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            with self.sessions.begin() as session:
                session.get_one(RawMessage, raw_id).error = error[:2000]
            return Outcome(RawOutcome.QUARANTINED, None, raw_id, error=error)

    def _apply(self, session: Session, raw: bytes, row: RawMessage) -> Outcome:
        limit = self.config.imap.max_message_size
        if len(raw) <= limit:
            return self._route(session, row, *parse(raw, require_sender=False))
        # Too big to parse in full: decided from its headers; the raw bytes are kept all the same.
        log.warning("message of %d bytes is above max_message_size (%d): handled from its headers",
                    len(raw), limit)
        outcome = self._route(session, row, *parse_headers(raw, require_sender=False))
        ticket = session.get(Ticket, outcome.ticket) if outcome.ticket is not None else None
        stored_as = session.scalar(select(Message.direction).where(Message.raw_id == row.id))
        if ticket is None or outcome.outcome != RawOutcome.TICKET or stored_as == Direction.NOTE:
            return outcome
        told = self.mailer.to_agents(
            session, ticket, "agent_notice",
            {"notice": "message_too_large",
             "details": {"size_bytes": len(raw), "max_message_size": limit, "stored_as": row.id}},
            kind="notice", recipients=self.mailer.all_agents())
        return Outcome(outcome.outcome, outcome.ticket, outcome.raw_id, outcome.queued + told,
                       outcome.new_ticket)

    def _route(self, session: Session, row: RawMessage, parsed: ParsedMessage,
               headers: EmailMessage) -> Outcome:
        row.message_id = parsed.message_id
        duplicate_of = session.connection().execute(select(Message.ticket_id).where(
            Message.message_id == parsed.message_id).limit(1)).first()
        if duplicate_of is not None:
            row.outcome = RawOutcome.DUPLICATE
            row.ticket_id = duplicate_of.ticket_id
        # Stored now, so everything below (the message's history, a problem's event) has its id:
        # the lookups above and the threading ones are Core statements, which flush nothing.
        session.flush()
        if duplicate_of is not None:
            log.info("ticket=%s duplicate delivery of %s ignored", duplicate_of.ticket_id,
                     parsed.message_id)
            return Outcome(RawOutcome.DUPLICATE, duplicate_of.ticket_id, row.id)
        arrival = Arrival.of(row, parsed, headers, self.config)
        verdict = arrival.verdict
        if not arrival.sender and verdict.kind in (Kind.HUMAN, Kind.BULK):
            raise ParseError("no sender address in From, Sender or Return-Path")
        agents = arrival.config.agents
        claim = check_agent(parsed, agents.addresses, self.agent_secret, agents.trusted_authserv_id)
        if claim is not None and claim.verified and claim.ticket is None and claim.problem:
            problem = session.get(Problem, claim.problem)
            if problem is not None and problem.mailbox == self.config.mailbox:
                return self._from_agent_on_problem(session, arrival, problem)
        if claim is not None and claim.verified:
            ticket_id = claim.ticket or match_ticket(parsed, self._store(session)).ticket
            ticket = session.get(Ticket, ticket_id) if ticket_id is not None else None
            if ticket is not None and ticket.mailbox == arrival.config.mailbox:
                return self._from_agent(session, arrival, ticket)
            claim = AgentCheck(None, False, "verified agent, but no ticket named")
        if claim is not None:
            self._warn_agent(session, arrival, claim.via)
        match = match_ticket(parsed, self._store(session))
        if verdict.automatic and verdict.kind is not Kind.BULK:
            ticket, queued = self.automatic.file(session, arrival, match.ticket)
            return Outcome(RawOutcome.TICKET, ticket.id, row.id, queued=queued)
        if match.ticket is None:
            return self._open_ticket(session, arrival)
        return self._follow_up(session, arrival, session.get_one(Ticket, match.ticket), match.rule)

    def _from_agent(self, session: Session, arrival: Arrival, ticket: Ticket) -> Outcome:
        verdict = arrival.verdict
        if verdict.automatic:
            arrival.record(session, ticket, Direction.NOTE, f"agent-{verdict.kind}", self.clock())
            log.info("ticket=%d automatic mail from an agent kept as a note (%s)", ticket.id,
                     verdict.reason)
            return Outcome(RawOutcome.TICKET, ticket.id, arrival.row.id)
        queued = self.agent_replies.handle(session, ticket, arrival)
        return Outcome(RawOutcome.TICKET, ticket.id, arrival.row.id, queued=queued)

    def _from_agent_on_problem(self, session: Session, arrival: Arrival,
                               problem: Problem) -> Outcome:
        """A genuine agent's reply to a problem's mail: commands and text for all its tickets."""
        parsed, row, verdict = arrival.parsed, arrival.row, arrival.verdict
        if session.scalar(select(ProblemEvent.id).where(
                ProblemEvent.message_id == parsed.message_id)) is not None:
            row.outcome = RawOutcome.DUPLICATE
            log.info("problem %s: duplicate delivery of %s ignored", problem.name,
                     parsed.message_id)
            return Outcome(RawOutcome.DUPLICATE, None, row.id)
        if verdict.automatic:
            session.add(ProblemEvent(problem_id=problem.id, kind=f"agent-{verdict.kind}",
                                     agent=arrival.sender, message_id=parsed.message_id,
                                     text=arrival.text, raw_id=row.id, created_at=self.clock()))
            log.info("problem %s: automatic mail from an agent kept (%s)", problem.name,
                     verdict.reason)
            return Outcome(RawOutcome.TICKET, None, row.id)
        agent = arrival.sender
        done = self.agent_replies.problems.reply(
            session, problem, arrival.text, agent=agent,
            agent_name=parsed.sender.name or agent.partition("@")[0].capitalize(),
            attachments=parsed.attachments, message_id=parsed.message_id, raw_id=row.id)
        return Outcome(RawOutcome.TICKET, None, row.id, queued=done.queued)

    def _follow_up(self, session: Session, arrival: Arrival, ticket: Ticket, rule: str) -> Outcome:
        now = self.clock()
        queued = 0
        reopened = False
        if ticket.status == TicketStatus.CLOSED:
            score = satisfaction_score(arrival.text)
            if score is not None:
                ticket.satisfaction = score
                ticket.satisfaction_at = now
                arrival.record(session, ticket, Direction.IN, "satisfaction", now)
                log.info("ticket=%d satisfaction score %d recorded", ticket.id, score)
                queued = self.feedback.after_score(session, ticket, score,
                                                   self.mailer.customer_thread(session, ticket))
                return Outcome(RawOutcome.TICKET, ticket.id, arrival.row.id, queued=queued)
            reopen_within = arrival.config.closing.reopen_within
            if ticket.closed_at is None or now - ticket.closed_at > reopen_within:
                log.info("ticket=%d closed too long ago: the reply opens a new ticket", ticket.id)
                return self._open_ticket(session, arrival, previous=ticket)
            reopened = True
            queued += self._reopen(session, arrival, ticket, now)
        elif not arrival.verdict.automatic and self.feedback.wants_self_solved(
                ticket, arrival.text, arrival.sender):
            arrival.record(session, ticket, Direction.IN, "self-solved", now)
            queued = self.feedback.self_solve(session, ticket,
                                              self.mailer.customer_thread(session, ticket))
            return Outcome(RawOutcome.TICKET, ticket.id, arrival.row.id, queued=queued)
        arrival.record(session, ticket, Direction.IN, "customer", now)
        self._note_orders(ticket, arrival.parsed.subject, arrival.text)
        if arrival.sender == ticket.customer_email:
            TicketStore(session).add_participants(ticket, self._copied(arrival))
        if ticket.status != TicketStatus.OPEN:
            log.info("ticket=%d back to open after a customer message (was %s)", ticket.id,
                     ticket.status)
            state.apply(ticket, state.Event.CUSTOMER_WROTE, now)
        ticket.updated_at = now
        queued += self._notify_agents(session, arrival, ticket, "agent_followup",
                                      {"reopened": reopened})
        log.info("ticket=%d follow-up joined by %s", ticket.id, rule)
        return Outcome(RawOutcome.TICKET, ticket.id, arrival.row.id, queued=queued)

    def _reopen(self, session: Session, arrival: Arrival, ticket: Ticket, now: datetime) -> int:
        """Reopen; the customer hears of it unless the mail came from a list (no automatic answer)."""
        state.apply(ticket, state.Event.REOPENED, now)
        log.info("ticket=%d reopened by the customer", ticket.id)
        if arrival.verdict.automatic:
            return 0
        return self._auto_reply(session, arrival, ticket, "reopened")

    def _auto_reply(self, session: Session, arrival: Arrival, ticket: Ticket, template: str,
                    variables: dict[str, object] | None = None) -> int:
        """An automatic answer in the customer's thread, saying when they will hear from us next."""
        parsed = arrival.parsed
        queued = self.mailer.to_customer(
            session, ticket, template,
            {"update_days": days_until_update(arrival.config.updates.every), **(variables or {})},
            kind=template,
            thread=Thread(in_reply_to=parsed.message_id, references=parsed.references,
                          thread_index=ticket.thread_index),
            automatic="auto-replied")
        return int(queued)

    def _open_ticket(self, session: Session, arrival: Arrival,
                     previous: Ticket | None = None) -> Outcome:
        now = self.clock()
        parsed, verdict, config = arrival.parsed, arrival.verdict, arrival.config
        shop = config.shop
        customer = parsed.reply_to[0] if parsed.reply_to else parsed.sender
        ticket = Ticket(
            customer_email=customer.email,
            customer_name=customer.name or parsed.sender.name,
            subject=parsed.subject,
            subject_key=subject_key(parsed.subject),
            language=detect_language(arrival.text, shop.languages,
                                     arrival.headers.get("Content-Language"), shop.default_language,
                                     low_memory=shop.language_detection == "light"),
            created_at=now,
            updated_at=now,
            thread_index=(parsed.header("Thread-Index") or "")[:400] or None,
            previous_ticket_id=previous.id if previous is not None else None,
            mailbox=config.mailbox,
        )
        state.apply(ticket, state.Event.OPENED, now)
        session.add(ticket)
        session.flush()
        TicketStore(session).add_participants(
            ticket, {arrival.sender, customer.email, *self._copied(arrival)}, new_ticket=True)
        arrival.record(session, ticket, Direction.IN, "customer", now)
        self._note_orders(ticket, arrival.parsed.subject, arrival.text)
        queued = 0
        if verdict.kind is Kind.BULK:
            log.info("ticket=%d opened from bulk mail, not acknowledged (%s)", ticket.id,
                     verdict.reason)
        else:
            help_ = self.feedback.acknowledgement_help(ticket, f"{parsed.subject}\n{arrival.text}")
            queued = self._auto_reply(session, arrival, ticket, "acknowledgement", help_)
            if not queued:
                ticket.faq = ""
            log.info("ticket=%d opened, acknowledgement %s", ticket.id,
                     "queued" if queued else "withheld")
        suspects = self.agent_replies.problems.suspects(
            session, f"{arrival.parsed.subject}\n{arrival.text}")
        queued += self._notify_agents(session, arrival, ticket, "agent_new_ticket",
                                      {"problems": suspects})
        return Outcome(RawOutcome.TICKET, ticket.id, arrival.row.id, queued=queued,
                       new_ticket=True)

    def _notify_agents(self, session: Session, arrival: Arrival, ticket: Ticket,
                       template: str, variables: dict[str, object]) -> int:
        recipients = self.mailer.all_agents()
        if not recipients:
            return 0
        attachments = arrival.parsed.attachments
        total = sum(a.size for a in attachments)
        attach = attachments if total <= arrival.config.agents.attachment_limit else ()
        return self.mailer.to_agents(
            session, ticket, template,
            {"customer": {"name": ticket.customer_name, "email": ticket.customer_email},
             "text": arrival.text,
             "attachments": [{"filename": a.filename, "size": a.size} for a in attachments],
             **variables},
            kind="notification", recipients=recipients,
            from_name=f"{ticket.customer_name or ticket.customer_email} via "
                      f"{arrival.config.shop.name}",
            attachments=attach)

    def _warn_agent(self, session: Session, arrival: Arrival, reason: str) -> None:
        """Tell the agent whose address was used, at most once an hour; the mail itself goes on."""
        agent = arrival.sender
        now = self.clock()
        log.warning("mail in the name of agent %s failed verification (%s); handled as customer "
                    "mail", agent, reason)
        last = session.get(AgentWarning, agent)
        if last is not None and now - last.last_warned_at < _WARN_EVERY:
            return
        if last is None:
            session.add(AgentWarning(agent=agent, last_warned_at=now))
        else:
            last.last_warned_at = now
        self.mailer.to_agents(
            session, None, "agent_forged_warning",
            {"sender": agent, "subject": arrival.parsed.subject,
             "received_at": now.strftime("%Y-%m-%d %H:%M UTC"), "reason": reason,
             "text": arrival.text[:2000]},
            kind="forged-warning", recipients=[agent])

    def _note_orders(self, ticket: Ticket, subject: str, text: str) -> None:
        """Order numbers the customer mentions join the ticket's (never one an agent removed)."""
        # Compiled patterns are cached by `re`; reading them from the live config follows a reload.
        found = find_orders((subject, text), compile_patterns(self.config.orders.patterns))
        if found:
            ticket.orders = merge_orders(ticket.orders or "", found)

    def _store(self, session: Session) -> TicketStore:
        """Lookups confined to this mailbox's tickets: threading never crosses shops."""
        return TicketStore(session, self.config.mailbox)

    def _copied(self, arrival: Arrival) -> set[str]:
        """Whoever the customer copied, minus the shop and its agents: they may use the ticket tag."""
        own = {arrival.config.shop.address, *self.mailer.all_agents()}
        return {a.email for a in (*arrival.parsed.to, *arrival.parsed.cc)} - own


def _write_transaction(session: Session) -> None:
    """Open the transaction as a writer now, so each message's savepoint nests inside it.

    pysqlite begins a transaction only before its first INSERT/UPDATE/DELETE, and a SAVEPOINT
    outside one would itself become the transaction (its RELEASE would commit). BEGIN IMMEDIATE
    also takes SQLite's write lock at once, waiting for it with the busy timeout, instead of
    failing later when a read snapshot cannot become a write. PostgreSQL needs nothing.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _already_handled(session: Session, sha: str) -> Outcome | None:
    """What became of the same bytes before: IMAP may hand a message over twice after a crash."""
    known = TicketStore(session).raw_by_sha(sha)
    if known is None:
        return None
    raw_id, outcome, ticket = known
    return Outcome(outcome, ticket, raw_id, already_handled=True)
