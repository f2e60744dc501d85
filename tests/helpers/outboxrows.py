"""Outbox rows and a sender pointed at the test SMTP sink, for tests of delivery itself."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from email.message import EmailMessage

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from daemon.config import SmtpConfig
from daemon.outbound.sender import OutboxSender
from daemon.storage import db
from daemon.storage.models import OutboxItem, utcnow
from helpers.mailservers import SmtpSink


def queue_rows(sessions: sessionmaker[Session], count: int) -> list[str]:
    """`count` acknowledgements due a minute ago; returns their Message-IDs in queue order."""
    ids = [f"<row-{n}@incidencias.test>" for n in range(count)]
    with sessions.begin() as session:
        for message_id in ids:
            message = EmailMessage()
            message["From"], message["To"] = "incidencias@example.com", "maria@example.net"
            message["Subject"], message["Message-ID"] = "[#1] Recibido", message_id
            message.set_content("Hemos recibido su mensaje.")
            session.add(OutboxItem(kind="acknowledgement", message_id=message_id,
                                   mail_from="incidencias@example.com", recipients="maria@example.net",
                                   raw=message.as_bytes(), next_attempt_at=utcnow() - timedelta(minutes=1)))
    return ids


def sender_for(engine: Engine, sink: SmtpSink) -> OutboxSender:
    config = SmtpConfig(host=sink.host, port=sink.port, security="none", username=sink.username)
    return OutboxSender(config, sink.password, db.session_factory(engine), utcnow)


def delivered(sink: SmtpSink) -> Counter[str]:
    """How many times the sink accepted each Message-ID."""
    return Counter(str(mail.message["Message-ID"]) for mail in sink.messages)
