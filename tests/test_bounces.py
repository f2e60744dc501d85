"""Delivery failure notices: linked to the ticket whose mail bounced, customer marked unreachable,
agents told once, the address suppressed; proven on the decision, on our own mail and on the corpus."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from helpers.corpusdata import CorpusMessage, corpus_messages
from helpers.dbcheck import migrated_engine
from helpers.harness import customer_email
from pydantic import SecretStr
from sqlalchemy import Engine, select

from daemon.config import Config, Secrets, Settings
from daemon.mail.classify import Classification, Kind, classify
from daemon.mail.parsing import parse
from daemon.runtime.service import Components, assemble
from daemon.storage import db
from daemon.storage.address_keys import address_hash
from daemon.storage.models import Message, OutboxItem, RawMessage, SuppressedAddress, Ticket
from daemon.tickets.bounces import Returned, judge, suppressed_until

SHOP = "incidencias@example.com"
AGENTS = ("ana@example.com", "luis@example.com")
CUSTOMER = "maria@example.net"
START = datetime(2026, 3, 2, 9, 0)

# --------------------------------------------------------------------------- the decision


def _notice(recipient: str | None = CUSTOMER, permanent: bool | None = True,
            diagnostic: str | None = "550 5.1.1 user unknown") -> Classification:
    return Classification(Kind.BOUNCE, "multipart/report; report-type=delivery-status",
                          original_message_id="ours@example.com", permanent=permanent,
                          diagnostic=diagnostic, recipient=recipient)


def test_hard_bounce_of_our_mail_to_the_customer_marks_unreachable_and_suppresses() -> None:
    verdict = judge(_notice(), Returned(7, CUSTOMER, by_message_id=True, recipients=(CUSTOMER,)))
    assert (verdict.ticket_id, verdict.unreachable, verdict.suppress) == (7, True, CUSTOMER)
    assert verdict.reason == "550 5.1.1 user unknown"


def test_delay_notice_is_only_linked() -> None:
    verdict = judge(_notice(permanent=False), Returned(7, CUSTOMER, True, (CUSTOMER,)))
    assert (verdict.ticket_id, verdict.unreachable, verdict.suppress) == (7, False, None)


def test_failure_of_unknown_permanence_marks_unreachable_without_suppressing() -> None:
    verdict = judge(_notice(permanent=None), Returned(7, CUSTOMER, True, (CUSTOMER,)))
    assert verdict.unreachable and verdict.suppress is None


def test_bounce_of_an_agent_notification_does_not_touch_the_customer() -> None:
    verdict = judge(_notice(recipient=AGENTS[0]), Returned(7, CUSTOMER, True, (AGENTS[0],)))
    assert verdict.ticket_id == 7 and not verdict.unreachable and verdict.suppress is None


def test_our_message_id_counts_even_when_the_server_names_a_forwarding_address() -> None:
    verdict = judge(_notice(recipient="maria@forwarded.example"),
                    Returned(7, CUSTOMER, True, (CUSTOMER,)))
    assert verdict.unreachable and verdict.suppress == CUSTOMER


def test_ticket_number_alone_needs_the_customer_as_failed_recipient() -> None:
    by_number = Returned(7, CUSTOMER, by_message_id=False)
    assert judge(_notice(), by_number).unreachable
    assert not judge(_notice(recipient="someone@else.example"), by_number).unreachable
    assert not judge(_notice(recipient=None), by_number).unreachable
    assert judge(_notice(recipient=None), by_number).ticket_id == 7


def test_without_a_ticket_nothing_is_decided() -> None:
    verdict = judge(_notice(), None)
    assert verdict.ticket_id is None and not verdict.unreachable and verdict.suppress is None


def test_suppression_lasts_the_configured_period_and_zero_switches_it_off() -> None:
    assert suppressed_until(START, timedelta(days=7)) == START + timedelta(days=7)
    assert suppressed_until(START, timedelta(0)) is None


# --------------------------------------------------------------------------- through the pipeline


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


def _settings(limits: dict[str, object] | None = None) -> Settings:
    config = Config.model_validate({
        "shop": {"name": "Tienda", "address": SHOP, "languages": ["es", "en"],
                 "default_language": "es"},
        "imap": {"host": "127.0.0.1", "security": "none", "username": "u"},
        "smtp": {"host": "127.0.0.1", "security": "none"},
        "agents": {"addresses": list(AGENTS), "language": "en"},
        "limits": limits or {},
    })
    return Settings(config=config, path=Path("config.toml"),
                    secrets=Secrets(imap_password=None, smtp_password=None,
                                    agent_secret=SecretStr("secret")))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = migrated_engine(tmp_path, "bounces.db")
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def shop(engine: Engine, clock: Clock) -> Components:
    return assemble(_settings(), engine, db.session_factory(engine), clock)


def _open(shop: Components, sender: str = CUSTOMER, subject: str = "Pedido roto") -> tuple[int, str]:
    """A customer's new ticket; returns its number and our acknowledgement's Message-ID."""
    outcome = shop.ingestor.ingest(customer_email(subject, "La taza llegó rota.", sender=sender))
    assert outcome.ticket is not None
    with shop.sessions() as session:
        ack = session.scalars(select(OutboxItem.message_id).where(
            OutboxItem.ticket_id == outcome.ticket, OutboxItem.kind == "acknowledgement")).one()
    return outcome.ticket, ack


def _dsn(message_id: str | None, *, ticket: int | None = None, recipient: str = CUSTOMER,
         status: str = "5.1.1", action: str = "failed") -> bytes:
    returned = [f"From: Tienda <{SHOP}>", f"To: {recipient}", "Subject: [#1] Hemos recibido"]
    if message_id:
        returned.append(f"Message-ID: <{message_id}>")
    if ticket is not None:
        returned.append(f"X-Incidencias-Ticket: {ticket}")
    headers = "\r\n".join(returned)
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        f"To: {SHOP}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <dsn.{status}.{message_id}.{ticket}.{recipient}@mx.example.net>\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message "
        "could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} <{recipient}>: Recipient address rejected: User unknown\r\n"
        f"\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n{headers}\r\n\r\n--B--\r\n"
    ).encode()


def _ticket(shop: Components, number: int) -> Ticket:
    with shop.sessions() as session:
        return session.get_one(Ticket, number)


def _outbox(shop: Components, kind: str) -> list[OutboxItem]:
    with shop.sessions() as session:
        return list(session.scalars(select(OutboxItem).where(OutboxItem.kind == kind)))


def test_hard_bounce_of_our_acknowledgement_marks_the_ticket_and_tells_each_agent_once(
        shop: Components) -> None:
    number, ack = _open(shop)
    outcome = shop.ingestor.ingest(_dsn(ack))
    assert outcome.ticket == number and outcome.outcome == "ticket"
    ticket = _ticket(shop, number)
    assert ticket.unreachable_at is not None and "User unknown" in (ticket.unreachable_reason or "")
    told = _outbox(shop, "bounce-notice")
    assert sorted(i.recipients for i in told) == sorted(AGENTS)
    body = message_from_bytes(told[0].raw, policy=policy.default).get_body(("plain",))
    assert body is not None and CUSTOMER in body.get_content()
    assert "User unknown" in body.get_content()

    again = shop.ingestor.ingest(_dsn(ack, status="5.1.2"))
    assert again.ticket == number and again.queued == 0
    assert len(_outbox(shop, "bounce-notice")) == len(AGENTS)
    with shop.sessions() as session:
        notes = session.scalars(select(Message.kind).where(Message.ticket_id == number,
                                                           Message.direction == "note")).all()
    assert list(notes).count("bounce") == 2


def test_hard_bounce_suppresses_automatic_mail_to_the_address_for_the_configured_period(
        shop: Components, clock: Clock) -> None:
    _, ack = _open(shop)
    shop.ingestor.ingest(_dsn(ack))
    with shop.sessions() as session:
        row = session.get_one(SuppressedAddress, address_hash(session, CUSTOMER))
        stored = session.scalars(select(SuppressedAddress.address_hash)).all()
    assert row.until == START + timedelta(days=7)
    assert CUSTOMER not in str(stored) and CUSTOMER not in row.reason, "only a hash is kept"

    clock.now += timedelta(days=1)
    second = shop.ingestor.ingest(customer_email("Otra cosa", "Hola otra vez.", sender=CUSTOMER))
    assert second.new_ticket and second.queued == len(AGENTS)  # agents told, no acknowledgement
    assert len(_outbox(shop, "acknowledgement")) == 1
    assert shop.mailer.withheld["suppressed"] == 1

    clock.now += timedelta(days=7)
    third = shop.ingestor.ingest(customer_email("Y otra", "Hola de nuevo.", sender=CUSTOMER))
    assert third.queued == len(AGENTS) + 1
    assert len(_outbox(shop, "acknowledgement")) == 2


def test_delay_notice_is_a_note_and_the_customer_stays_reachable(shop: Components) -> None:
    number, ack = _open(shop)
    outcome = shop.ingestor.ingest(_dsn(ack, status="4.4.7", action="delayed"))
    assert outcome.ticket == number and outcome.queued == 0
    assert _ticket(shop, number).unreachable_at is None
    with shop.sessions() as session:
        assert session.get(SuppressedAddress, address_hash(session, CUSTOMER)) is None


def test_bounce_naming_only_the_ticket_number_links_by_it(shop: Components) -> None:
    number, _ = _open(shop)
    outcome = shop.ingestor.ingest(_dsn(None, ticket=number))
    assert outcome.ticket == number
    assert _ticket(shop, number).unreachable_at is not None


def test_forged_bounce_for_someone_else_on_a_ticket_number_changes_nothing(shop: Components) -> None:
    number, _ = _open(shop)
    outcome = shop.ingestor.ingest(_dsn(None, ticket=number, recipient="stranger@evil.example"))
    assert outcome.ticket == number and outcome.queued == 0
    assert _ticket(shop, number).unreachable_at is None
    with shop.sessions() as session:
        assert session.scalars(select(SuppressedAddress)).all() == []


def test_bounce_of_a_message_we_never_sent_is_quarantined(shop: Components) -> None:
    _open(shop)
    outcome = shop.ingestor.ingest(_dsn("never-sent@example.com"))
    assert outcome.outcome == "quarantined" and outcome.ticket is None
    assert "not linked" in (outcome.error or "")


def test_text_bounce_quoting_our_headers_is_matched(shop: Components) -> None:
    number, ack = _open(shop)
    text = (
        "From: MAILER-DAEMON@mail.example.net\r\nTo: " + SHOP + "\r\n"
        "Subject: failure notice\r\nMessage-ID: <qmail.1@mail.example.net>\r\n\r\n"
        "Hi. This is the qmail-send program at mail.example.net.\r\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        f"<{CUSTOMER}>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n"
        "--- Below this line is a copy of the message.\r\n\r\n"
        f"From: {SHOP}\r\nTo: {CUSTOMER}\r\nMessage-ID: <{ack}>\r\nX-Incidencias-Ticket: {number}\r\n"
        "\r\nHemos recibido su mensaje.\r\n"
    ).encode()
    outcome = shop.ingestor.ingest(text)
    assert outcome.ticket == number
    assert _ticket(shop, number).unreachable_at is not None


def test_bounce_without_any_sender_is_still_matched(shop: Components) -> None:
    number, ack = _open(shop)
    raw = _dsn(ack).replace(b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n",
                            b"Return-Path: <>\r\n")
    outcome = shop.ingestor.ingest(raw)
    assert outcome.ticket == number and outcome.outcome == "ticket"


def test_a_bounce_never_reopens_a_closed_ticket(shop: Components) -> None:
    number, ack = _open(shop)
    with shop.sessions.begin() as session:
        ticket = session.get_one(Ticket, number)
        ticket.status, ticket.closed_at = "closed", START
    shop.ingestor.ingest(_dsn(ack))
    assert _ticket(shop, number).status == "closed"
    assert _outbox(shop, "reopened") == []


# --------------------------------------------------------------------------- the corpus

_BOUNCES = [m for m in corpus_messages() if m.category == "bounce"]


@dataclass
class _Seeded:
    ticket: int
    notice: Classification


def _seed(shop: Components, sample: CorpusMessage) -> _Seeded | None:
    """Pretend we sent the message the sample returns: a ticket for its failed recipient, and our
    outbox row under its Message-ID. None for a sample that names no message."""
    _, message = parse(sample.file.read_bytes(), require_sender=False)
    notice = classify(message, own_addresses=[SHOP])
    if notice.original_message_id is None:
        return None
    customer = notice.recipient or "unknown@example.net"
    with shop.sessions.begin() as session:
        ticket = Ticket(customer_email=customer, language="en", subject="x")
        session.add(ticket)
        session.flush()
        session.add(OutboxItem(ticket_id=ticket.id, kind="acknowledgement", automatic=True,
                               message_id=notice.original_message_id, mail_from=SHOP,
                               recipients=customer, raw=b"", status="sent"))
        return _Seeded(ticket.id, notice)


@pytest.fixture(scope="module")
def corpus_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Components]:
    """One database for every sample (each gets its own ticket): migrations run once."""
    engine = migrated_engine(tmp_path_factory.mktemp('corpus'), "bounces.db")
    yield assemble(_settings(), engine, db.session_factory(engine), Clock())
    engine.dispose()


@pytest.mark.parametrize("sample", _BOUNCES, ids=[m.path for m in _BOUNCES])
def test_corpus_bounce_is_matched_to_the_ticket_whose_mail_it_returns(
        corpus_shop: Components, sample: CorpusMessage) -> None:
    shop = corpus_shop
    seeded = _seed(shop, sample)
    outcome = shop.ingestor.ingest(sample.file.read_bytes())
    if seeded is None:
        assert outcome.outcome == "quarantined", "a notice naming none of our mail has no ticket"
        return
    assert outcome.outcome == "ticket" and outcome.ticket == seeded.ticket
    ticket = _ticket(shop, seeded.ticket)
    if seeded.notice.kind is not Kind.BOUNCE:  # an abuse report naming our mail: only a note
        assert ticket.unreachable_at is None
        return
    assert (ticket.unreachable_at is not None) == (seeded.notice.permanent is not False)
    with shop.sessions() as session:
        suppressed = session.get(SuppressedAddress, address_hash(session, ticket.customer_email))
        raw = session.get_one(RawMessage, outcome.raw_id)
    assert (suppressed is not None) == (seeded.notice.permanent is True)
    assert raw.raw == sample.file.read_bytes()


def test_corpus_bounces_mostly_name_the_message_they_return() -> None:
    named = [m.path for m in _BOUNCES
             if classify(parse(m.file.read_bytes(), require_sender=False)[1]).original_message_id]
    assert len(named) >= 0.7 * len(_BOUNCES), f"only {len(named)} of {len(_BOUNCES)}"
