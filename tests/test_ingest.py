"""The pipeline from raw bytes to committed ticket and outbox, on a real database, no servers."""

from __future__ import annotations

import base64
from datetime import datetime
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from helpers.dbcheck import migrated_engine
from helpers.harness import customer_email
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from daemon.config import Config, Secrets, Settings
from daemon.mail.language import detect_language
from daemon.runtime.service import assemble
from daemon.storage import db
from daemon.storage.models import Message, OutboxItem, RawMessage, Ticket
from daemon.tickets import router as ingest
from daemon.tickets.lifecycle import days_until_update
from daemon.tickets.router import Ingestor, Source

NOW = datetime(2026, 3, 2, 10, 0)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = migrated_engine(tmp_path, "test.db")
    return engine


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return db.session_factory(engine)


@pytest.fixture
def ingestor(engine: Engine, sessions: sessionmaker[Session]) -> Ingestor:
    return _ingestor(engine, sessions)


def _ingestor(engine: Engine, sessions: sessionmaker[Session], **shop: str) -> Ingestor:
    config = Config.model_validate({
        "shop": {"name": "Tienda", "address": "incidencias@example.com",
                 "languages": ["es", "fr", "en"], "default_language": "es", **shop},
        "imap": {"host": "127.0.0.1", "security": "none", "username": "u"},
        "smtp": {"host": "127.0.0.1", "security": "none"},
    })
    settings = Settings(config=config, path=Path("config.toml"),
                        secrets=Secrets(imap_password=None, smtp_password=None,
                                        agent_secret=SecretStr("secret")))
    return assemble(settings, engine, sessions, lambda: NOW).ingestor


def test_a_new_customer_message_commits_ticket_message_raw_and_acknowledgement_together(
        ingestor: Ingestor, sessions: sessionmaker[Session]) -> None:
    raw = customer_email("Paquete dañado", "La caja llegó aplastada y el plato está roto.",
                         message_id="<m1@example.net>")
    outcome = ingestor.ingest(raw, Source("INBOX", 7, 1))
    assert outcome.new_ticket and outcome.queued == 1
    with sessions() as session:
        ticket = session.get_one(Ticket, outcome.ticket)
        [item] = session.scalars(select(OutboxItem))
        raw_row = session.get_one(RawMessage, outcome.raw_id)
        directions = [m.direction for m in session.scalars(select(Message).order_by(Message.id))]
    assert ticket.language == "es"
    assert raw_row.raw == raw and raw_row.uid == 1
    assert directions == ["in", "out"]
    ack = message_from_bytes(item.raw, policy=policy.default)
    assert ack["In-Reply-To"] == "<m1@example.net>"
    assert f"[#{ticket.id}]" in str(ack["Subject"])
    assert item.recipients == "maria@example.net"


@pytest.mark.parametrize("detection", ["accurate", "light"])
def test_customer_language_is_detected_from_the_first_message_with_the_configured_models(
        engine: Engine, sessions: sessionmaker[Session], detection: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    light: list[bool] = []

    def detect(*args: Any, low_memory: bool) -> str:
        light.append(low_memory)
        return detect_language(*args, low_memory=low_memory)

    monkeypatch.setattr(ingest, "detect_language", detect)
    ingestor = _ingestor(engine, sessions, language_detection=detection)
    raw = customer_email("Colis non reçu", "Bonjour, je n'ai toujours pas reçu mon colis "
                         "commandé il y a deux semaines. Pouvez-vous vérifier ?")
    outcome = ingestor.ingest(raw)
    with sessions() as session:
        assert session.get_one(Ticket, outcome.ticket).language == "fr"
    assert light == [detection == "light"]


def test_the_same_bytes_twice_are_handled_once(ingestor: Ingestor) -> None:
    raw = customer_email("Hola", "Texto", message_id="<same@example.net>")
    first = ingestor.ingest(raw)
    again = ingestor.ingest(raw)
    assert again.already_handled and again.raw_id == first.raw_id


def test_a_utf16_body_labelled_utf8_still_makes_a_ticket_on_any_database(
        ingestor: Ingestor, sessions: sessionmaker[Session]) -> None:
    """Its text is full of NUL characters, which PostgreSQL refuses in a text column."""
    raw = (b"From: Ana <ana@example.net>\r\nTo: incidencias@example.com\r\nSubject: Pedido\r\n"
           b"Message-ID: <utf16@example.net>\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode("Hola".encode("utf-16-le")))
    outcome = ingestor.ingest(raw)
    assert outcome.outcome == "ticket"
    with sessions() as session:
        message = session.scalars(select(Message).where(Message.message_id == "utf16@example.net")).one()
    assert message.full_text.strip() == "Hola"


def test_unparseable_mail_is_quarantined_with_its_error_and_raw_bytes(
        ingestor: Ingestor, sessions: sessionmaker[Session]) -> None:
    raw = b"Subject: no sender at all\r\n\r\nbody"
    outcome = ingestor.ingest(raw)
    assert outcome.outcome == "quarantined"
    with sessions() as session:
        row = session.get_one(RawMessage, outcome.raw_id)
    assert row.raw == raw and "no sender" in (row.error or "")


def test_an_out_of_office_reply_is_a_note_on_its_ticket_and_is_not_acknowledged(
        ingestor: Ingestor, sessions: sessionmaker[Session]) -> None:
    first = ingestor.ingest(customer_email("Pedido", "Hola", message_id="<p@example.net>"))
    with sessions() as session:
        ack_id = session.scalars(select(OutboxItem.message_id)).one()
    auto = customer_email("Respuesta automática: Pedido", "Estoy de vacaciones.",
                          in_reply_to=f"<{ack_id}>", extra_headers={"Auto-Submitted": "auto-replied"})
    outcome = ingestor.ingest(auto)
    assert outcome.ticket == first.ticket and outcome.queued == 0
    with sessions() as session:
        kinds = [(m.direction, m.kind) for m in session.scalars(select(Message).order_by(Message.id))]
        assert len(list(session.scalars(select(OutboxItem)))) == 1
    assert kinds[-1][0] == "note"


def test_a_bounce_for_mail_we_never_sent_is_quarantined_not_ticketed(ingestor: Ingestor) -> None:
    bounce = customer_email("Undelivered Mail Returned to Sender", "This is the mail system.",
                            sender="MAILER-DAEMON@mx.example.org", name="Mail Delivery System")
    outcome = ingestor.ingest(bounce)
    assert outcome.outcome == "quarantined" and outcome.ticket is None
    assert "not linked to any ticket" in (outcome.error or "")


@pytest.mark.parametrize(("every", "days"), [("1h", 1), ("3d", 3), ("2.5d", 3)])
def test_the_promised_wait_is_whole_days_rounded_up(every: str, days: int) -> None:
    from daemon.config import parse_duration

    assert days_until_update(parse_duration(every)) == days
