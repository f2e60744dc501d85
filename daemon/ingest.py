"""One received email's journey: keep raw → parse → classify → thread → apply → compose → outbox.

Everything a message causes (ticket change, stored message, outgoing mail) commits in one
transaction, together with the raw bytes, so a crash leaves either all of it or none of it.
A message that cannot be processed is stored raw as quarantined with the error instead.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message as EmailMessage

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from daemon.agent_auth import AgentCheck, check_agent
from daemon.agent_replies import AgentReplies
from daemon.classify import Classification, Kind, classify
from daemon.compose import Thread
from daemon.config import Config
from daemon.language import detect_language
from daemon.lifecycle import Lifecycle, days_until_update
from daemon.mailer import Mailer
from daemon.matching import match_ticket
from daemon.message import ParsedMessage
from daemon.models import (
    AgentWarning,
    Attachment,
    Direction,
    Message,
    RawMessage,
    RawOutcome,
    Ticket,
    TicketStatus,
)
from daemon.parsing import parse
from daemon.quoting import visible_text
from daemon.satisfaction import satisfaction_score
from daemon.store import TicketStore
from daemon.subjects import subject_key

log = logging.getLogger(__name__)

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

    def __init__(self, config: Config, mailer: Mailer, lifecycle: Lifecycle,
                 sessions: sessionmaker[Session], clock: Callable[[], datetime],
                 agent_secret: bytes) -> None:
        self.config = config
        self.sessions = sessions
        self.clock = clock
        self.agent_secret = agent_secret
        self.mailer = mailer
        self.agent_replies = AgentReplies(config, mailer, lifecycle, clock)

    def ingest(self, raw: bytes, source: Source = Source()) -> Outcome:
        """Store and process one message; never raises for bad mail, only for database trouble."""
        sha = hashlib.sha256(raw).hexdigest()
        with self.sessions.begin() as session:
            known = TicketStore(session).raw_by_sha(sha)
            if known is not None:
                return Outcome(known.outcome, known.ticket_id, known.id, already_handled=True)
        try:
            with self.sessions.begin() as session:
                row = RawMessage(sha256=sha, size=len(raw), raw=raw, folder=source.folder,
                                 uidvalidity=source.uidvalidity, uid=source.uid,
                                 outcome=RawOutcome.TICKET, received_at=self.clock())
                session.add(row)
                session.flush()
                return self._apply(session, raw, row)
        except OperationalError:
            raise
        except IntegrityError:
            with self.sessions.begin() as session:
                known = TicketStore(session).raw_by_sha(sha)
                if known is not None:
                    return Outcome(known.outcome, known.ticket_id, known.id, already_handled=True)
            return self._quarantine(raw, sha, source, "database integrity error while storing")
        except Exception as exc:
            log.warning("quarantined message sha256=%s: %s: %s", sha[:12], type(exc).__name__, exc)
            return self._quarantine(raw, sha, source, f"{type(exc).__name__}: {exc}")

    def _quarantine(self, raw: bytes, sha: str, source: Source, error: str) -> Outcome:
        with self.sessions.begin() as session:
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
        parsed, email_message = parse(raw)
        row.message_id = parsed.message_id
        duplicate_of = session.scalar(select(Message).where(Message.message_id == parsed.message_id))
        if duplicate_of is not None:
            row.outcome = RawOutcome.DUPLICATE
            row.ticket_id = duplicate_of.ticket_id
            log.info("ticket=%s duplicate delivery of %s ignored", duplicate_of.ticket_id,
                     parsed.message_id)
            return Outcome(RawOutcome.DUPLICATE, duplicate_of.ticket_id, row.id)
        verdict = classify(email_message, own_addresses=[self.config.shop.address])
        agents = self.config.agents
        claim = check_agent(parsed, agents.addresses, self.agent_secret, agents.trusted_authserv_id)
        if claim is not None and claim.verified:
            ticket_id = claim.ticket or match_ticket(parsed, TicketStore(session)).ticket
            ticket = session.get(Ticket, ticket_id) if ticket_id is not None else None
            if ticket is not None:
                return self._from_agent(session, ticket, parsed, row, verdict)
            claim = AgentCheck(None, False, "verified agent, but no ticket named")
        if claim is not None:
            self._warn_agent(session, parsed, claim.via)
        match = match_ticket(parsed, TicketStore(session))
        if verdict.automatic and verdict.kind is not Kind.BULK:
            if match.ticket is None:
                raise UnlinkedAutomaticMail(f"{verdict.kind} not linked to any ticket ({verdict.reason})")
            ticket = session.get_one(Ticket, match.ticket)
            self._record(session, ticket, parsed, row, Direction.NOTE, kind=str(verdict.kind))
            log.info("ticket=%d %s stored as note (%s)", ticket.id, verdict.kind, verdict.reason)
            return Outcome(RawOutcome.TICKET, ticket.id, row.id)
        if match.ticket is None:
            return self._open_ticket(session, parsed, email_message, row, verdict)
        return self._follow_up(session, session.get_one(Ticket, match.ticket), parsed, row,
                               match.rule, email_message, verdict)

    def _from_agent(self, session: Session, ticket: Ticket, parsed: ParsedMessage,
                    row: RawMessage, verdict: Classification) -> Outcome:
        if verdict.automatic:
            self._record(session, ticket, parsed, row, Direction.NOTE, kind=f"agent-{verdict.kind}")
            log.info("ticket=%d automatic mail from an agent kept as a note (%s)", ticket.id,
                     verdict.reason)
            return Outcome(RawOutcome.TICKET, ticket.id, row.id)
        queued = self.agent_replies.handle(session, ticket, parsed, row)
        return Outcome(RawOutcome.TICKET, ticket.id, row.id, queued=queued)

    def _follow_up(self, session: Session, ticket: Ticket, parsed: ParsedMessage, row: RawMessage,
                   rule: str, email_message: EmailMessage, verdict: Classification) -> Outcome:
        now = self.clock()
        queued = 0
        reopened = False
        if ticket.status == TicketStatus.CLOSED:
            score = satisfaction_score(visible_text(parsed.text))
            if score is not None:
                ticket.satisfaction = score
                self._record(session, ticket, parsed, row, Direction.IN, kind="satisfaction")
                log.info("ticket=%d satisfaction score %d recorded", ticket.id, score)
                return Outcome(RawOutcome.TICKET, ticket.id, row.id)
            if ticket.closed_at is None or now - ticket.closed_at > self.config.closing.reopen_within:
                log.info("ticket=%d closed too long ago: the reply opens a new ticket", ticket.id)
                return self._open_ticket(session, parsed, email_message, row, verdict,
                                         previous=ticket)
            reopened = True
            queued += self._tell_customer_reopened(session, ticket, parsed)
        self._record(session, ticket, parsed, row, Direction.IN, kind="customer")
        if parsed.sender.email == ticket.customer_email:
            TicketStore(session).add_participants(ticket, self._copied(parsed))
        if ticket.status != TicketStatus.OPEN:
            log.info("ticket=%d back to open after a customer message (was %s)", ticket.id,
                     ticket.status)
            ticket.status = TicketStatus.OPEN
            ticket.waiting_since = ticket.waiting_reminded_at = None
        ticket.updated_at = now
        queued += self._notify_agents(session, ticket, parsed, "agent_followup",
                                      {"reopened": reopened})
        log.info("ticket=%d follow-up joined by %s", ticket.id, rule)
        return Outcome(RawOutcome.TICKET, ticket.id, row.id, queued=queued)

    def _tell_customer_reopened(self, session: Session, ticket: Ticket,
                                parsed: ParsedMessage) -> int:
        ticket.status = TicketStatus.OPEN
        ticket.closed_at = None
        self.mailer.to_customer(
            session, ticket, "reopened",
            {"update_days": days_until_update(self.config.updates.every)},
            kind="reopened",
            thread=Thread(in_reply_to=parsed.message_id, references=parsed.references,
                          thread_index=ticket.thread_index),
            automatic="auto-replied")
        log.info("ticket=%d reopened by the customer", ticket.id)
        return 1

    def _open_ticket(self, session: Session, parsed: ParsedMessage, email_message: EmailMessage,
                     row: RawMessage, verdict: Classification,
                     previous: Ticket | None = None) -> Outcome:
        now = self.clock()
        shop = self.config.shop
        customer = parsed.reply_to[0] if parsed.reply_to else parsed.sender
        ticket = Ticket(
            status=TicketStatus.OPEN,
            customer_email=customer.email,
            customer_name=customer.name or parsed.sender.name,
            subject=parsed.subject,
            subject_key=subject_key(parsed.subject),
            language=detect_language(visible_text(parsed.text), shop.languages,
                                     email_message.get("Content-Language"), shop.default_language),
            created_at=now,
            updated_at=now,
            thread_index=(parsed.header("Thread-Index") or "")[:400] or None,
            previous_ticket_id=previous.id if previous is not None else None,
        )
        session.add(ticket)
        session.flush()
        TicketStore(session).add_participants(
            ticket, {parsed.sender.email, customer.email, *self._copied(parsed)})
        self._record(session, ticket, parsed, row, Direction.IN, kind="customer")
        queued = 0
        if verdict.kind is Kind.BULK:
            log.info("ticket=%d opened from bulk mail, not acknowledged (%s)", ticket.id,
                     verdict.reason)
        else:
            self.mailer.to_customer(
                session, ticket, "acknowledgement",
                {"update_days": days_until_update(self.config.updates.every)},
                kind="acknowledgement",
                thread=Thread(in_reply_to=parsed.message_id, references=parsed.references,
                              thread_index=ticket.thread_index),
                automatic="auto-replied")
            queued = 1
            log.info("ticket=%d opened, acknowledgement queued", ticket.id)
        queued += self._notify_agents(session, ticket, parsed, "agent_new_ticket", {})
        return Outcome(RawOutcome.TICKET, ticket.id, row.id, queued=queued, new_ticket=True)

    def _notify_agents(self, session: Session, ticket: Ticket, parsed: ParsedMessage,
                       template: str, variables: dict[str, object]) -> int:
        recipients = self.mailer.all_agents()
        if not recipients:
            return 0
        total = sum(a.size for a in parsed.attachments)
        attach = parsed.attachments if total <= self.config.agents.attachment_limit else ()
        return self.mailer.to_agents(
            session, ticket, template,
            {"customer": {"name": ticket.customer_name, "email": ticket.customer_email},
             "text": visible_text(parsed.text),
             "attachments": [{"filename": a.filename, "size": a.size} for a in parsed.attachments],
             **variables},
            kind="notification", recipients=recipients,
            from_name=f"{ticket.customer_name or ticket.customer_email} via {self.config.shop.name}",
            attachments=attach)

    def _warn_agent(self, session: Session, parsed: ParsedMessage, reason: str) -> None:
        """Tell the agent whose address was used, at most once an hour; the mail itself goes on."""
        agent = parsed.sender.email
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
            {"sender": parsed.sender.email, "subject": parsed.subject,
             "received_at": now.strftime("%Y-%m-%d %H:%M UTC"), "reason": reason,
             "text": visible_text(parsed.text)[:2000]},
            kind="forged-warning", recipients=[agent])

    def _copied(self, parsed: ParsedMessage) -> set[str]:
        """Whoever the customer copied, minus the shop and its agents: they may use the ticket tag."""
        own = {self.config.shop.address, *self.mailer.all_agents()}
        return {a.email for a in (*parsed.to, *parsed.cc)} - own

    def _record(self, session: Session, ticket: Ticket, parsed: ParsedMessage, row: RawMessage,
                direction: str, kind: str) -> Message:
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
            text=visible_text(parsed.text),
            full_text=parsed.text,
            kind=kind,
            raw_id=row.id,
            created_at=self.clock(),
            attachments=[
                Attachment(filename=a.filename, content_type=a.content_type, size=a.size,
                           content=a.content)
                for a in parsed.attachments
            ],
        )
        session.add(message)
        row.ticket_id = ticket.id
        return message


class UnlinkedAutomaticMail(Exception):
    """An auto-reply or bounce that answers nothing we know: kept in quarantine for a human."""
