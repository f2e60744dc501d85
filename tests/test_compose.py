"""The MIME that compose() writes reads back, in a standard parser, as exactly what was rendered."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

from daemon.mail.message import Attachment
from daemon.outbound.compose import Copy, Thread, compose
from daemon.outbound.rendering import Rendered

_TEXT = ("Hola María,  \n.una línea que empieza con punto\nFrom here on\n" + "palabra " * 40
         + "\n\ttabulada\t\nfin")
_HTML = "<p>Hola María</p>\n<p>" + "x" * 300 + "</p>"


def _compose(attachments: tuple[Attachment, ...] = (), copies: int = 1) -> list[bytes]:
    outgoing = compose(
        kind="notification", ticket=7, shop_name="Tienda", shop_address="incidencias@tienda.test",
        copies=[Copy((("", f"agent{n}@tienda.test"),)) for n in range(copies)],
        rendered=Rendered(subject="Pedido 123", text=_TEXT, html=_HTML), language="es",
        thread=Thread(), automatic="auto-generated", now=datetime(2026, 11, 23, tzinfo=UTC),
        attachments=attachments)
    return [mail.raw for mail in outgoing]


def _parse(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _unix(text: str) -> str:
    return text.replace("\r\n", "\n")


def test_text_and_html_read_back_exactly_as_rendered() -> None:
    [raw] = _compose()
    mail = _parse(raw)
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and html is not None
    assert _unix(plain.get_content()) == _TEXT
    assert _unix(html.get_content()) == _HTML
    assert mail.get_content_type() == "multipart/alternative"
    assert not [part.defects for part in mail.walk() if part.defects]


def test_every_line_ends_in_crlf_and_stays_under_the_smtp_limit() -> None:
    [raw] = _compose((Attachment("ñ" * 200 + ".pdf", "application/pdf", bytes(range(256)) * 50),))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78


def test_attachment_keeps_its_bytes_and_a_safe_name_and_type() -> None:
    content = bytes(range(256)) * 800
    [raw] = _compose((Attachment('../ñandú "factura".PDF', "Application/PDF", content),
                      Attachment("x.eml", "multipart/mixed", b"abc"),
                      Attachment("y.bin", "text/plain; charset=\"x\"\r\nBcc: a@b", b"def")))
    mail = _parse(raw)
    assert mail.get_content_type() == "multipart/mixed"
    found = [(part.get_content_type(), part.get_filename(), part.get_content())
             for part in mail.iter_attachments()]
    assert found == [("application/pdf", 'ñandú "factura".PDF', content),
                     ("application/octet-stream", "x.eml", b"abc"),
                     ("application/octet-stream", "y.bin", b"def")]
    assert b"Bcc" not in raw


def test_copies_share_the_body_with_their_own_recipient_and_message_id() -> None:
    first, second = _compose((Attachment("a.pdf", "application/pdf", b"%PDF"),), copies=2)
    one, two = _parse(first), _parse(second)
    assert (one["To"], two["To"]) == ("agent0@tienda.test", "agent1@tienda.test")
    assert one["Message-ID"] != two["Message-ID"]
    assert first.partition(b"MIME-Version")[2] == second.partition(b"MIME-Version")[2]
