"""Personal data in the database: erasure of one person among others, cancelled mail, a crash
half-way, retention of closed tickets, suppression kept as a hash, durations in years."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from helpers.dbcheck import migrated_engine
from helpers.harness import customer_email
from pydantic import SecretStr
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from daemon.config import Config, RetentionConfig, Secrets, Settings, parse_duration
from daemon.runtime.service import Components, assemble
from daemon.storage import db
from daemon.storage.address_keys import is_pseudonym
from daemon.storage.models import (
    Erasure,
    Message,
    OutboxItem,
    OutboxStatus,
    Participant,
    RawMessage,
    Ticket,
)
from daemon.storage.views import show_ticket
from daemon.tickets.privacy import erasure
from daemon.tickets.privacy.erasure import PLACEHOLDER, forget
from daemon.tickets.privacy.export import build_export
from daemon.tickets.privacy.holdings import find_holdings
from daemon.tickets.privacy.retention import Retention

SHOP = "incidencias@example.com"
AGENTS = ("ana@example.com", "luis@example.com")
ALICIA = "alicia@example.net"
BEATRIZ = "beatriz@example.org"
START = datetime(2026, 3, 2, 9, 0)


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


def _settings() -> Settings:
    config = Config.model_validate({
        "shop": {"name": "Tienda", "address": SHOP, "languages": ["es", "en"],
                 "default_language": "es"},
        "imap": {"host": "127.0.0.1", "security": "none", "username": "u"},
        "smtp": {"host": "127.0.0.1", "security": "none"},
        "agents": {"addresses": list(AGENTS), "language": "en"},
    })
    return Settings(config=config, path=Path("config.toml"),
                    secrets=Secrets(imap_password=None, smtp_password=None,
                                    agent_secret=SecretStr("secret")))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = migrated_engine(tmp_path, "personal.db")
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def shop(engine: Engine, clock: Clock) -> Components:
    return assemble(_settings(), engine, db.session_factory(engine), clock)


def _ingest(shop: Components, raw: bytes) -> int:
    outcome = shop.ingestor.ingest(raw)
    assert outcome.ticket is not None
    return outcome.ticket


def _shared_ticket(shop: Components) -> tuple[int, int]:
    """Beatriz's ticket with Alicia copied in and writing once; and Alicia's own ticket."""
    shared = _ingest(shop, customer_email(
        "Regalo para Alicia", "Beatriz aquí: el regalo no llegó.", sender=BEATRIZ,
        name="Beatriz Ruiz", extra_headers={"Cc": f"Alicia Gómez <{ALICIA}>"},
        message_id="<b1@example.org>"))
    _ingest(shop, customer_email(
        f"Re: [#{shared}] Regalo para Alicia", "Alicia: confirmo que el paquete nunca llegó a casa.",
        sender=ALICIA, name="Alicia Gómez", message_id="<a1@example.net>"))
    own = _ingest(shop, customer_email("Mi devolución", "Alicia: quiero devolver las botas rojas.",
                                       sender=ALICIA, name="Alicia Gómez",
                                       message_id="<a2@example.net>"))
    return shared, own


def _ticket_json(session: Session, number: int) -> str:
    return json.dumps(show_ticket(session, number), ensure_ascii=False)


def test_forget_takes_only_the_persons_messages_and_address_from_a_shared_ticket(
        shop: Components, clock: Clock) -> None:
    shared, own = _shared_ticket(shop)
    with shop.sessions.begin() as session:
        counts = forget(session, find_holdings(session, ALICIA), clock())
    assert counts.tickets == 1 and counts.messages >= 2

    with shop.sessions() as session:
        everything = _ticket_json(session, shared) + _ticket_json(session, own)
        for trace in (ALICIA, "Alicia Gómez", "botas rojas", "nunca llegó a casa"):
            assert trace not in everything, trace
        beatriz = session.get_one(Ticket, shared)
        assert beatriz.customer_email == BEATRIZ and beatriz.pseudonymised_at is None
        first = beatriz.messages[0]
        assert first.from_email == BEATRIZ and "Beatriz aquí: el regalo no llegó." in first.text
        participants = set(session.scalars(select(Participant.email)
                                           .where(Participant.ticket_id == shared)))
        assert BEATRIZ in participants and any(is_pseudonym(p) for p in participants)
        alicia = session.get_one(Ticket, own)
        assert is_pseudonym(alicia.customer_email) and alicia.customer_name == ""
        assert alicia.subject == PLACEHOLDER and alicia.language == "es"
        assert all(m.text == PLACEHOLDER for m in alicia.messages)
        assert [e.reason for e in session.scalars(select(Erasure))] == ["request"]
        assert find_holdings(session, ALICIA).empty, "nothing of hers is left to find"
        assert not find_holdings(session, BEATRIZ).empty


def test_unsent_mail_to_the_forgotten_person_is_cancelled(shop: Components, clock: Clock) -> None:
    _, own = _shared_ticket(shop)
    with shop.sessions.begin() as session:
        pending = session.scalars(select(OutboxItem).where(OutboxItem.ticket_id == own)).all()
        assert pending and all(item.status == OutboxStatus.PENDING for item in pending)
        forget(session, find_holdings(session, ALICIA), clock())
    with shop.sessions() as session:
        rows = session.scalars(select(OutboxItem).where(OutboxItem.ticket_id == own)).all()
        assert {item.status for item in rows} == {OutboxStatus.CANCELLED}
        assert all(item.raw == b"" and ALICIA not in item.recipients for item in rows)


def test_a_crash_inside_the_erasure_changes_nothing_and_the_next_run_completes_it(
        shop: Components, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    _, own = _shared_ticket(shop)

    def crash(*_args: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(erasure, "_erase_outbox", crash)
    with pytest.raises(RuntimeError), shop.sessions.begin() as session:
        forget(session, find_holdings(session, ALICIA), clock())
    with shop.sessions() as session:
        assert session.get_one(Ticket, own).customer_email == ALICIA, "all or nothing"
    monkeypatch.undo()
    with shop.sessions.begin() as session:
        forget(session, find_holdings(session, ALICIA), clock())
    with shop.sessions() as session:
        assert find_holdings(session, ALICIA).empty


def test_the_forgotten_person_writing_again_in_the_old_thread_is_a_new_customer(
        shop: Components, clock: Clock) -> None:
    _, own = _shared_ticket(shop)
    with shop.sessions() as session:
        ack = session.scalars(select(OutboxItem.message_id).where(
            OutboxItem.ticket_id == own, OutboxItem.kind == "acknowledgement")).one()
    with shop.sessions.begin() as session:
        forget(session, find_holdings(session, ALICIA), clock())
    again = _ingest(shop, customer_email(f"Re: [#{own}] Mi devolución", "¿Hay novedades?",
                                         sender=ALICIA, in_reply_to=f"<{ack}>",
                                         references=[f"<{ack}>"]))
    assert again != own


def test_export_shows_a_shared_ticket_but_not_the_other_persons_files_or_mails(
        shop: Components, clock: Clock) -> None:
    shared, own = _shared_ticket(shop)
    with shop.sessions() as session:
        data = build_export(session, find_holdings(session, ALICIA), "Tienda", "fr", clock())
    archive = zipfile.ZipFile(io.BytesIO(data))
    document = json.loads(archive.read("tickets.json"))
    assert [t["id"] for t in document["tickets"]] == [shared, own]
    received = [n for n in archive.namelist() if n.startswith("received/")]
    assert len(received) == 2, "her two mails, not Beatriz's"
    assert all(BEATRIZ.encode() not in archive.read(n) for n in received)
    assert "Données personnelles" in archive.read("README.txt").decode()
    assert all(m["from"] != AGENTS[0] for t in document["tickets"] for m in t["messages"])


def test_retention_pseudonymises_closed_tickets_and_erases_their_raw_mail_only(
        shop: Components, clock: Clock) -> None:
    shared, own = _shared_ticket(shop)
    with shop.sessions.begin() as session:
        shop.lifecycle.close(session, session.get_one(Ticket, own), no_discount=True)
    clock.now += timedelta(days=40)
    policy = RetentionConfig(raw_mail=parse_duration("30d"), closed_tickets=parse_duration("30d"))
    done = Retention(policy, shop.sessions, clock).sweep()
    assert done["retention-closed-tickets"].tickets == 1
    again = Retention(policy, shop.sessions, clock).sweep()
    assert all(counts.total == 0 for counts in again.values()), "a second sweep finds nothing"
    with shop.sessions() as session:
        closed = session.get_one(Ticket, own)
        assert is_pseudonym(closed.customer_email) and closed.status == "closed"
        raws = {r.ticket_id: r for r in session.scalars(select(RawMessage))}
        assert raws[own].raw == b"" and raws[shared].raw != b""
        assert session.get_one(Ticket, shared).customer_email == BEATRIZ
        blanked = session.scalar(select(func.count()).select_from(Message)
                                 .where(Message.ticket_id == shared, Message.text == PLACEHOLDER))
        assert blanked == 0, "the open ticket is not touched"
        # Pseudonymising took the raw mail too: the raw-mail limit found nothing left to do.
        assert [e.reason for e in session.scalars(select(Erasure))] == ["retention-closed-tickets"]


def test_years_are_a_calendar_average_and_retention_is_off_by_default() -> None:
    assert parse_duration("3y") == timedelta(days=3 * 365.25)
    assert parse_duration("2s") == timedelta(seconds=2)
    assert RetentionConfig().policy_lines() == [
        "raw mails and attachments of closed tickets erased: never",
        "closed tickets pseudonymised: never",
        "copies in the processed and quarantine folders deleted: never"]
    policy = RetentionConfig.model_validate({"raw_mail": "365d", "closed_tickets": "3y"})
    assert policy.policy_lines()[:2] == [
        "raw mails and attachments of closed tickets erased after 365d",
        "closed tickets pseudonymised after 3y"]
    with pytest.raises(ValueError):
        RetentionConfig.model_validate({"raw_mail": "0s"})


def test_forget_asks_on_a_terminal_and_refuses_in_a_script(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from daemon.cli import customers

    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert not customers._confirmed(ALICIA)
    assert "--yes" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda _prompt: "no")
    assert not customers._confirmed(ALICIA)
    monkeypatch.setattr("builtins.input", lambda _prompt: "yes")
    assert customers._confirmed(ALICIA)


def test_migration_keeps_existing_suppressions_only_as_hashes(tmp_path: Path) -> None:
    from alembic import command
    from helpers.pgserver import selected, shared_server, unique_name
    from sqlalchemy import text

    url = shared_server().create_database(unique_name()) if selected() else \
        f"sqlite:///{tmp_path / 'old.db'}"
    engine = db.make_engine(url)
    config = db._alembic_config(engine)
    command.upgrade(config, "0005")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO suppressed_addresses (email, until, reason, created_at) VALUES "
            f"('{ALICIA}', '2030-01-01 00:00:00', '550 <{ALICIA}> unknown', '2026-01-01 00:00:00')"))
    db.upgrade(engine)
    with Session(engine) as session:
        from daemon.storage.address_keys import address_hash
        from daemon.storage.models import SuppressedAddress

        [row] = session.scalars(select(SuppressedAddress)).all()
        assert row.address_hash == address_hash(session, ALICIA)
        assert ALICIA not in row.reason
    command.downgrade(config, "0005")
    db.upgrade(engine)
    engine.dispose()


def test_an_address_that_merely_contains_the_forgotten_one_is_someone_else(
        shop: Components, clock: Clock) -> None:
    other = f"m{ALICIA}"
    theirs = _ingest(shop, customer_email("Pedido", f"Soy {other}.", sender=other, name="Malicia"))
    naming = _ingest(shop, customer_email("Regalo", f"Es para mi amiga {ALICIA}.",
                                          sender="pablo@example.com", name="Pablo"))
    with shop.sessions() as session:
        before = _ticket_json(session, theirs)
    _shared_ticket(shop)
    with shop.sessions.begin() as session:
        forget(session, find_holdings(session, ALICIA), clock())
    with shop.sessions() as session:
        after = session.get_one(Ticket, theirs)
        assert after.customer_email == other
        assert session.get_one(RawMessage, after.messages[0].raw_id).raw != b""
        assert _ticket_json(session, theirs) == before
        mention = session.get_one(Ticket, naming).messages[0].text
        assert "Es para mi amiga anon-" in mention and ALICIA not in mention


def test_nothing_is_queued_for_a_forgotten_customer_whose_ticket_stays_open(
        shop: Components, clock: Clock) -> None:
    _, own = _shared_ticket(shop)
    with shop.sessions.begin() as session:
        forget(session, find_holdings(session, ALICIA), clock())
    clock.now += timedelta(days=4)
    shop.lifecycle.sweep()
    clock.now += timedelta(days=4)
    shop.lifecycle.sweep()
    with shop.sessions() as session:
        assert session.get_one(Ticket, own).status == "open"
        queued = session.scalars(select(OutboxItem.kind).where(
            OutboxItem.ticket_id == own, OutboxItem.status == OutboxStatus.PENDING)).all()
    assert queued == [], "no update to a pseudonym, no reminder about a ticket nobody can answer"
    with shop.sessions.begin() as session:
        shop.lifecycle.close(session, session.get_one(Ticket, own), no_discount=True)
    with shop.sessions() as session:
        assert session.get_one(Ticket, own).status == "closed"
        assert session.scalars(select(OutboxItem.kind).where(
            OutboxItem.ticket_id == own, OutboxItem.status == OutboxStatus.PENDING)).all() == []


def test_mail_erased_with_its_recipient_cannot_be_retried(shop: Components, clock: Clock) -> None:
    from daemon.outbound.retry import NotRetryable, retry, retry_all_failed

    _, own = _shared_ticket(shop)
    with shop.sessions.begin() as session:
        forget(session, find_holdings(session, ALICIA), clock())
    with shop.sessions.begin() as session:
        cancelled = session.scalars(select(OutboxItem.id).where(OutboxItem.ticket_id == own)).first()
        assert cancelled is not None
        with pytest.raises(NotRetryable, match="erased"):
            retry(session, cancelled, clock())
        session.get_one(OutboxItem, cancelled).status = OutboxStatus.FAILED
        assert retry_all_failed(session, clock()) == []


def test_order_numbers_go_with_the_customer_they_lead_back_to(shop: Components, clock: Clock) -> None:
    shared, own = _shared_ticket(shop)
    with shop.sessions.begin() as session:
        session.get_one(Ticket, own).orders = "100234"
        session.get_one(Ticket, shared).orders = "100999"
    with shop.sessions() as session:
        exported = json.loads(zipfile.ZipFile(io.BytesIO(build_export(
            session, find_holdings(session, ALICIA), "Tienda", "es", clock()))).read("tickets.json"))
    assert [t["orders"] for t in exported["tickets"]] == [["100999"], ["100234"]]
    with shop.sessions.begin() as session:
        forget(session, find_holdings(session, ALICIA), clock())
    with shop.sessions() as session:
        assert session.get_one(Ticket, own).orders == ""
        assert session.get_one(Ticket, shared).orders == "100999", "Beatriz's ticket keeps hers"
