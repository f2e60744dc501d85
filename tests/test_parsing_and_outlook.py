"""Parsing raw mail into the internal message, and Outlook's Thread-Index."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

import pytest

from daemon.mail.outlook import new_thread_index, reply_thread_index
from daemon.mail.parsing import ParseError, clean_header_text, message_ids, normalise_message_id, parse


def test_encoded_subject_and_sender_name_are_decoded() -> None:
    raw = (b"From: =?utf-8?q?Mar=C3=ADa_Garc=C3=ADa?= <Maria@Example.NET>\r\n"
           b"To: incidencias@example.com\r\nSubject: =?utf-8?b?wqFQZWRpZG8gcm90byE=?=\r\n"
           b"Message-ID: <abc@example.net>\r\nIn-Reply-To: <x@shop>\r\n"
           b"References: <a@x> <x@shop>\r\n\r\nHola\r\n")
    parsed, _ = parse(raw)
    assert parsed.subject == "¡Pedido roto!"
    assert parsed.sender.name == "María García"
    assert parsed.sender.email == "maria@example.net"
    assert parsed.message_id == "abc@example.net"
    assert parsed.thread_ids == ("x@shop", "a@x")
    assert parsed.text.strip() == "Hola"


def test_html_only_mail_becomes_text() -> None:
    raw = (b"From: a@example.net\r\nSubject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
           b"<html><body><p>El paquete <b>no</b> ha llegado.</p><script>x()</script></body></html>")
    parsed, _ = parse(raw)
    assert "El paquete no ha llegado." in parsed.text
    assert "<b>" not in parsed.text


def test_mail_without_message_id_gets_a_stable_one_from_its_bytes() -> None:
    raw = b"From: a@example.net\r\nSubject: x\r\n\r\nbody\r\n"
    assert parse(raw)[0].message_id == parse(raw)[0].message_id
    assert parse(raw)[0].message_id != parse(raw + b"more")[0].message_id


def test_mail_without_any_sender_is_refused_with_a_reason() -> None:
    with pytest.raises(ParseError, match="no sender"):
        parse(b"Subject: hello\r\n\r\nbody\r\n")


def test_attachments_keep_name_type_and_bytes() -> None:
    payload = base64.b64encode(b"\x89PNG fake").decode()
    raw = ("From: a@example.net\r\nSubject: foto\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
           "Content-Type: text/plain\r\n\r\nfoto adjunta\r\n--b\r\n"
           'Content-Type: image/png; name="../../etc/rota.png"\r\n'
           'Content-Disposition: attachment; filename="../../etc/rota.png"\r\n'
           f"Content-Transfer-Encoding: base64\r\n\r\n{payload}\r\n--b--\r\n").encode()
    [attachment] = parse(raw)[0].attachments
    assert attachment.content == b"\x89PNG fake"
    assert attachment.content_type == "image/png"
    assert attachment.size == len(b"\x89PNG fake")


def test_header_text_cannot_carry_line_breaks() -> None:
    assert clean_header_text("Hola\r\nBcc: victim@example.org") == "Hola Bcc: victim@example.org"


def test_message_ids_are_compared_without_brackets() -> None:
    assert normalise_message_id(" <a@b> ") == "a@b"
    assert normalise_message_id("not an id") == ""
    assert message_ids("<a@b>\r\n <c@d> <a@b>") == ("a@b", "c@d")


def test_thread_index_reply_extends_the_parent_by_one_child_block() -> None:
    start = datetime(2026, 1, 5, 10, 0)
    parent = new_thread_index("seed", start)
    child = reply_thread_index(parent, "seed", start + timedelta(hours=2))
    assert len(base64.b64decode(parent)) == 22
    decoded = base64.b64decode(child)
    assert len(decoded) == 27 and decoded[:22] == base64.b64decode(parent)


def test_thread_index_is_new_when_the_parent_is_garbage() -> None:
    assert len(base64.b64decode(reply_thread_index("%%%", "seed", datetime(2026, 1, 1)))) == 22
