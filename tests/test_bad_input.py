"""Hostile and broken mail: the pipeline never raises, keeps the raw bytes, and nothing from a message
reaches an outgoing header or a file name unsanitised."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from helpers.dbcheck import migrated_engine
from helpers.harness import customer_email
from pydantic import SecretStr
from sqlalchemy import Engine, select

from daemon.config import Config, Secrets, Settings
from daemon.mail.parsing import clean_header_text
from daemon.outbound.compose import safe_filename
from daemon.runtime.service import Components, assemble
from daemon.storage import db
from daemon.storage.models import Attachment, Message, OutboxItem, RawMessage, Ticket
from daemon.tickets.router import Outcome

SHOP = "incidencias@example.com"
AGENTS = ("ana@example.com", "luis@example.com")
NOW = datetime(2026, 3, 2, 9, 0)
MAX_SIZE = 50_000

# --------------------------------------------------------------------------- file names


@pytest.mark.parametrize(("sent", "kept"), [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\win.ini", "win.ini"),
    ("C:\\Users\\x\\factura.pdf", "factura.pdf"),
    ("/absolute/path/foto.jpg", "foto.jpg"),
    ("..", "attachment"),
    ("", "attachment"),
    ("a\r\nContent-Type: text/html\r\n\r\nb.pdf", "html b.pdf"),
    ("nul\x00byte\x07.txt", "nul byte .txt"),
    ("factura\u202efdp.exe", "facturafdp.exe"),
    ("zero\u200bwidth.txt", "zerowidth.txt"),
    ("  .bashrc  ", "bashrc"),
])
def test_attachment_names_lose_paths_control_and_invisible_characters(sent: str, kept: str) -> None:
    assert safe_filename(sent) == kept


def test_long_attachment_names_are_cut_but_keep_their_extension() -> None:
    name = safe_filename("x" * 500 + ".pdf")
    assert len(name) == 120 and name.endswith(".pdf")


@pytest.mark.parametrize("value", [
    "Hola\r\nBcc: evil@example.org", "Hola\nBcc: evil@example.org", "Hola\rBcc: x",
    "Hola\u2028Bcc: x", "Hola\x85Bcc: x", "Hola\x00\x1b[31m",
])
def test_header_text_is_one_clean_line(value: str) -> None:
    cleaned = clean_header_text(value)
    assert not any(ch in cleaned for ch in "\r\n\x00\x1b\u2028\x85")


# --------------------------------------------------------------------------- through the pipeline


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = migrated_engine(tmp_path, "bad.db")
    yield engine
    engine.dispose()


@pytest.fixture
def shop(engine: Engine) -> Components:
    config = Config.model_validate({
        "shop": {"name": "Tienda", "address": SHOP, "languages": ["es", "en"],
                 "default_language": "es"},
        "imap": {"host": "127.0.0.1", "security": "none", "username": "u",
                 "max_message_size": MAX_SIZE},
        "smtp": {"host": "127.0.0.1", "security": "none"},
        "agents": {"addresses": list(AGENTS), "language": "en"},
        "limits": {"automatic_per_address": [], "automatic_per_ticket": []},
    })
    settings = Settings(config=config, path=Path("config.toml"),
                        secrets=Secrets(imap_password=None, smtp_password=None,
                                        agent_secret=SecretStr("secret")))
    return assemble(settings, engine, db.session_factory(engine), lambda: NOW)


def _kept_somewhere(shop: Components, raw: bytes) -> Outcome:
    """Ingest must not raise; the message ends in a ticket or in quarantine, its bytes kept."""
    outcome = shop.ingestor.ingest(raw)
    assert outcome.outcome in ("ticket", "quarantined")
    with shop.sessions() as session:
        assert session.get_one(RawMessage, outcome.raw_id).raw == raw
    return outcome


def _outgoing(shop: Components) -> list[EmailMessage]:
    with shop.sessions() as session:
        raws = session.scalars(select(OutboxItem.raw).order_by(OutboxItem.id)).all()
    messages = []
    for raw in raws:
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        messages.append(message)
    return messages


_ALLOWED_HEADERS = {
    "from", "to", "subject", "date", "message-id", "in-reply-to", "references", "thread-topic",
    "thread-index", "auto-submitted", "x-auto-response-suppress", "x-incidencias-ticket",
    "content-language", "mime-version", "content-type", "content-transfer-encoding",
}


def test_crlf_in_name_subject_and_ids_never_becomes_an_outgoing_header(shop: Components) -> None:
    raw = (
        "From: =?utf-8?q?Mar=C3=ADa=0D=0ABcc=3A_victim=40example=2Eorg?= <maria@example.net>\r\n"
        f"To: {SHOP}\r\n"
        "Subject: =?utf-8?q?Pedido=0D=0ABcc=3A_victim=40example=2Eorg=0D=0A=0D=0Abody?=\r\n"
        "Message-ID: <id\r\n with-space@example.net>\r\n"
        "Thread-Index: =?utf-8?q?AQ=0D=0ABcc=3A_x?=\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nHola, el pedido no llega.\r\n"
    ).encode()
    outcome = _kept_somewhere(shop, raw)
    assert outcome.outcome == "ticket"
    sent = _outgoing(shop)
    assert len(sent) == 1 + len(AGENTS)
    for message in sent:
        names = {name.lower() for name in message}
        assert names <= _ALLOWED_HEADERS, names - _ALLOWED_HEADERS
        for name, value in message.items():
            assert "\r" not in str(value) and "\n" not in str(value), name
        for field in ("From", "To"):
            addresses = [a.addr_spec for a in message[field].addresses]
            assert len(addresses) == 1 and "victim@example.org" not in addresses, (field, addresses)


def test_thousands_of_recipients_are_handled(shop: Components) -> None:
    copied = ", ".join(f"person{n}@example.org" for n in range(3000))
    raw = customer_email("Pedido", "Hola", extra_headers={"Cc": copied})
    outcome = _kept_somewhere(shop, raw)
    assert outcome.outcome == "ticket"
    [ack] = [m for m in _outgoing(shop) if m["To"] and "maria@example.net" in str(m["To"])]
    assert "person1@example.org" not in str(ack["To"]) and ack["Cc"] is None


def test_eight_bit_headers_are_read_as_text(shop: Components) -> None:
    raw = (f"From: Jos\xe9 P\xe9rez <jose@example.net>\r\nTo: {SHOP}\r\n"
           "Subject: Pedido da\xf1ado\r\n\r\nEl pedido lleg\xf3 roto.\r\n").encode("latin-1")
    outcome = _kept_somewhere(shop, raw)
    with shop.sessions() as session:
        ticket = session.get_one(Ticket, outcome.ticket)
    assert ticket.customer_email == "jose@example.net" and ticket.subject.startswith("Pedido da")


def _nested(depth: int) -> bytes:
    inner = b"From: x@example.org\r\nSubject: inner\r\n\r\nbottom\r\n"
    for level in range(depth):
        inner = (b"From: x@example.org\r\nSubject: level %d\r\nMIME-Version: 1.0\r\n"
                 b"Content-Type: message/rfc822\r\n\r\n" % level) + inner
    return (f"From: maria@example.net\r\nTo: {SHOP}\r\nSubject: Reenvio\r\nMIME-Version: 1.0\r\n"
            "Content-Type: message/rfc822\r\n\r\n").encode() + inner


_BROKEN = {
    "nested message/rfc822, 300 deep": _nested(300),
    "boundary never used": (
        f"From: maria@example.net\r\nTo: {SHOP}\r\nSubject: a\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="nope"\r\n\r\n--other\r\n\r\ntext\r\n--other--\r\n'
    ).encode(),
    "no closing boundary": (
        f"From: maria@example.net\r\nTo: {SHOP}\r\nSubject: b\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhola\r\n'
    ).encode(),
    "multipart without boundary": (
        f"From: maria@example.net\r\nTo: {SHOP}\r\nSubject: c\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/alternative\r\n\r\nhola\r\n"
    ).encode(),
    "unknown charset": (
        f"From: maria@example.net\r\nTo: {SHOP}\r\nSubject: =?x-klingon?q?nuqneH?=\r\n"
        "Content-Type: text/plain; charset=x-klingon\r\n\r\nnuqneH \xff\xfe\r\n"
    ).encode("latin-1"),
    "wrong charset": (
        f"From: maria@example.net\r\nTo: {SHOP}\r\nSubject: d\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "caf\xe9 \xe0 la cr\xe8me\r\n"
    ).encode("latin-1"),
    "bad base64": (
        f"From: maria@example.net\r\nTo: {SHOP}\r\nSubject: e\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64***\r\n"
    ).encode(),
    "empty body": f"From: maria@example.net\r\nTo: {SHOP}\r\nSubject: f\r\n\r\n".encode(),
    "no body at all": f"From: maria@example.net\r\nTo: {SHOP}\r\nSubject: g".encode(),
    "huge header line": (
        f"From: maria@example.net\r\nTo: {SHOP}\r\nSubject: {'h' * 200_000}\r\n"
        f"X-Junk: {'j' * 500_000}\r\n\r\nhola\r\n"
    ).encode(),
    "huge body line": (f"From: maria@example.net\r\nTo: {SHOP}\r\nSubject: i\r\n\r\n"
                       + "k" * 40_000 + "\r\n").encode(),
    "attachment with traversal name": (
        f"From: maria@example.net\r\nTo: {SHOP}\r\nSubject: j\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'
        "foto\r\n--b\r\nContent-Type: image/jpeg\r\n"
        'Content-Disposition: attachment; filename="../../../etc/cron.d/x\r\n.jpg"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n/9j/4AAQ\r\n--b--\r\n"
    ).encode(),
    "only headers, no sender": b"Subject: nobody\r\n\r\n",
    "binary garbage": bytes(range(256)) * 20,
}


@pytest.mark.parametrize("raw", list(_BROKEN.values()), ids=list(_BROKEN))
def test_broken_mail_ends_in_a_ticket_or_quarantine_never_an_exception(shop: Components,
                                                                      raw: bytes) -> None:
    _kept_somewhere(shop, raw)
    for message in _outgoing(shop):
        for name, value in message.items():
            assert "\r" not in str(value) and "\n" not in str(value), name


def test_attachments_are_stored_by_row_and_mailed_under_a_safe_name(shop: Components) -> None:
    outcome = _kept_somewhere(shop, _BROKEN["attachment with traversal name"])
    with shop.sessions() as session:
        [attachment] = session.scalars(select(Attachment)).all()
    assert outcome.outcome == "ticket" and attachment.content
    names = [part.get_filename() for message in _outgoing(shop) for part in message.iter_attachments()]
    assert names and all(n and "/" not in n and "\\" not in n and "\n" not in n for n in names)


def test_a_message_above_max_message_size_is_kept_whole_handled_from_its_headers_and_agents_told(
        shop: Components) -> None:
    big = customer_email("Fotos del paquete roto", "Adjunto fotos.\n" + "A" * (MAX_SIZE * 2))
    outcome = _kept_somewhere(shop, big)
    assert outcome.outcome == "ticket" and outcome.new_ticket
    with shop.sessions() as session:
        ticket = session.get_one(Ticket, outcome.ticket)
        [message] = session.scalars(select(Message).where(Message.direction == "in")).all()
        kinds = sorted(session.scalars(select(OutboxItem.kind)).all())
    assert ticket.subject == "Fotos del paquete roto" and ticket.customer_email == "maria@example.net"
    assert message.text == "", "the body was not parsed"
    assert kinds == sorted(["acknowledgement", *["notification"] * 2, *["notice"] * 2])
    notice = next(m for m in _outgoing(shop) if "max_message_size" in m.get_body(("plain",)).get_content())
    assert str(len(big)) in notice.get_body(("plain",)).get_content()


def test_an_oversized_auto_reply_is_still_recognised_from_its_headers_and_kept_as_a_note(
        shop: Components) -> None:
    first = _kept_somewhere(shop, customer_email("Pedido", "Hola", message_id="<p1@example.net>"))
    with shop.sessions() as session:
        ack = session.scalars(select(OutboxItem.message_id).where(
            OutboxItem.kind == "acknowledgement")).one()
    auto = customer_email("Out of office", "x" * (MAX_SIZE * 2), in_reply_to=f"<{ack}>",
                          extra_headers={"Auto-Submitted": "auto-replied"})
    outcome = _kept_somewhere(shop, auto)
    assert outcome.ticket == first.ticket and outcome.queued == 0, "a note: agents not disturbed"
    with shop.sessions() as session:
        kinds = sorted(session.scalars(select(OutboxItem.kind)).all())
    assert kinds == ["acknowledgement", "notification", "notification"]
