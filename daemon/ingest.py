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

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from daemon.classify import Classification, Kind, classify
from daemon.compose import Thread, compose
from daemon.config import Config
from daemon.language import detect_language
from daemon.matching import match_ticket
from daemon.message import ParsedMessage
from daemon.models import (
    Attachment,
    Direction,
    Message,
    OutboxItem,
    RawMessage,
    RawOutcome,
    Ticket,
    TicketStatus,
)
from daemon.parsing import parse
from daemon.quoting import visible_text
from daemon.rendering import Renderer
from daemon.store import TicketStore
from daemon.subjects import subject_key

log = logging.getLogger(__name__)


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

    def __init__(self, config: Config, renderer: Renderer, sessions: sessionmaker[Session],
                 clock: Callable[[], datetime]) -> None:
        self.config = config
        self.renderer = renderer
        self.sessions = sessions
        self.clock = clock

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

    def _apply(self, session: Session, raw: bytes, row: RawMessage) -> Outcome:
        parsed, email_message = parse(raw)
        row.message_id = parsed.message_id
        store = TicketStore(session)
        duplicate_of = session.query(Message).filter_by(message_id=parsed.message_id).one_or_none()
        if duplicate_of is not None:
            row.outcome = RawOutcome.DUPLICATE
            row.ticket_id = duplicate_of.ticket_id
            log.info("ticket=%s duplicate delivery of %s ignored", duplicate_of.ticket_id,
                     parsed.message_id)
            return Outcome(RawOutcome.DUPLICATE, duplicate_of.ticket_id, row.id)
        verdict = classify(email_message, own_addresses=[self.config.shop.address])
        match = match_ticket(parsed, store)
        if verdict.automatic and verdict.kind is not Kind.BULK:
            if match.ticket is None:
                raise UnlinkedAutomaticMail(f"{verdict.kind} not linked to any ticket ({verdict.reason})")
            ticket = session.get_one(Ticket, match.ticket)
            self._record(session, ticket, parsed, row, Direction.NOTE, kind=str(verdict.kind))
            row.ticket_id = ticket.id
            log.info("ticket=%d %s stored as note (%s)", ticket.id, verdict.kind, verdict.reason)
            return Outcome(RawOutcome.TICKET, ticket.id, row.id)
        if match.ticket is None:
            return self._open_ticket(session, parsed, email_message, row, verdict)
        ticket = session.get_one(Ticket, match.ticket)
        self._record(session, ticket, parsed, row, Direction.IN, kind="customer")
        if parsed.sender.email == ticket.customer_email:
            store.add_participants(ticket, self._copied(parsed))
        if ticket.status != TicketStatus.OPEN:
            log.info("ticket=%d back to open after a customer message (was %s)", ticket.id,
                     ticket.status)
            ticket.status = TicketStatus.OPEN
        ticket.updated_at = self.clock()
        row.ticket_id = ticket.id
        log.info("ticket=%d follow-up joined by %s", ticket.id, match.rule)
        return Outcome(RawOutcome.TICKET, ticket.id, row.id)

    def _open_ticket(self, session: Session, parsed: ParsedMessage, email_message: EmailMessage,
                     row: RawMessage, verdict: Classification) -> Outcome:
        now = self.clock()
        shop = self.config.shop
        visible = visible_text(parsed.text)
        ticket = Ticket(
            status=TicketStatus.OPEN,
            customer_email=parsed.sender.email,
            customer_name=parsed.sender.name,
            subject=parsed.subject,
            subject_key=subject_key(parsed.subject),
            language=detect_language(visible, shop.languages, email_message.get("Content-Language"),
                                     shop.default_language),
            created_at=now,
            updated_at=now,
        )
        session.add(ticket)
        session.flush()
        TicketStore(session).add_participants(ticket, {parsed.sender.email, *self._copied(parsed)})
        self._record(session, ticket, parsed, row, Direction.IN, kind="customer")
        row.ticket_id = ticket.id
        queued = 0
        if verdict.kind is Kind.BULK:
            log.info("ticket=%d opened from bulk mail, not acknowledged (%s)", ticket.id,
                     verdict.reason)
        else:
            self._acknowledge(session, ticket, parsed)
            queued = 1
            log.info("ticket=%d opened, acknowledgement queued", ticket.id)
        return Outcome(RawOutcome.TICKET, ticket.id, row.id, queued=queued, new_ticket=True)

    def _copied(self, parsed: ParsedMessage) -> set[str]:
        """Whoever the customer copied, minus the shop itself: they may use the ticket tag too."""
        return {a.email for a in (*parsed.to, *parsed.cc)} - {self.config.shop.address}

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
        return message

    def _acknowledge(self, session: Session, ticket: Ticket, parsed: ParsedMessage) -> None:
        now = self.clock()
        shop = self.config.shop
        rendered = self.renderer.render(
            "acknowledgement",
            ticket.language,
            {
                "shop": shop_context(self.config),
                "ticket": {"number": ticket.id, "subject": ticket.subject,
                           "customer_name": ticket.customer_name},
                "update_days": days_until_update(self.config.updates.every),
            },
            fallback_language=shop.default_language,
        )
        outgoing = compose(
            kind="acknowledgement",
            ticket=ticket.id,
            shop_name=shop.name,
            shop_address=shop.address,
            to=[(ticket.customer_name, ticket.customer_email)],
            rendered=rendered,
            language=ticket.language,
            thread=Thread(in_reply_to=parsed.message_id, references=parsed.references,
                          thread_index=parsed.header("Thread-Index")),
            automatic="auto-replied",
            now=now,
        )
        session.add(OutboxItem(ticket_id=ticket.id, kind=outgoing.kind,
                               message_id=outgoing.message_id, mail_from=outgoing.mail_from,
                               recipients="\n".join(outgoing.recipients), raw=outgoing.raw,
                               created_at=now, next_attempt_at=now))
        session.add(Message(ticket_id=ticket.id, direction=Direction.OUT,
                            message_id=outgoing.message_id, in_reply_to=parsed.message_id,
                            from_email=shop.address, from_name=shop.name,
                            to=ticket.customer_email, subject=rendered.subject, text=rendered.text,
                            full_text=rendered.text, kind=outgoing.kind, created_at=now))
        ticket.last_outbound_at = now


class UnlinkedAutomaticMail(Exception):
    """An auto-reply or bounce that answers nothing we know: kept in quarantine for a human."""


def shop_context(config: Config) -> dict[str, str | None]:
    shop = config.shop
    return {"name": shop.name, "address": shop.address, "phone": shop.phone, "web": shop.web,
            "signature": shop.signature}


def days_until_update(every: timedelta) -> int:
    """Whole days the customer may wait for news at most, as promised in the acknowledgement."""
    return max(1, -(-int(every.total_seconds()) // 86400))
