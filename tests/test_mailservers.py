"""The mail-server fixtures behave like the real servers the end-to-end tests rely on."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from email.message import EmailMessage

import aiosmtplib
import imapclient
import pytest
from helpers.mailservers import Dovecot, DovecotError, SmtpSink, to_crlf

RAW = b"From: Cliente <customer@example.net>\nTo: incidencias@example.com\nSubject: Pedido 42\n\nHola\n"


def _email(subject: str = "Pedido 42") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "incidencias@example.com"
    msg["To"] = "customer@example.net"
    msg["Subject"] = subject
    msg.set_content("Gracias por escribirnos.")
    return msg


def _send(
    sink: SmtpSink, msg: EmailMessage, username: str | None = None, password: str | None = None
) -> None:
    asyncio.run(
        aiosmtplib.send(
            msg, hostname=sink.host, port=sink.port, username=username, password=password, timeout=5
        )
    )


def test_appended_message_is_fetched_back_with_crlf_line_ends(imap: Dovecot) -> None:
    imap.append("incidencias", RAW)

    assert imap.fetch_all("incidencias", "INBOX") == [to_crlf(RAW)]
    assert len(imap.folder_uids("incidencias", "INBOX")) == 1


def test_append_many_creates_the_folder_and_keeps_order(imap: Dovecot) -> None:
    raws = [RAW.replace(b"Pedido 42", f"Pedido {n}".encode()) for n in range(20)]

    imap.append_many("agent1", raws, folder="Procesados")

    assert "Procesados" in imap.folders("agent1")
    assert imap.fetch_all("agent1", "Procesados") == [to_crlf(raw) for raw in raws]


def test_lmtp_delivery_adds_return_path_and_delivered_to(imap: Dovecot) -> None:
    imap.deliver("incidencias", RAW, mail_from="cliente@example.net")

    [stored] = imap.fetch_all("incidencias", "INBOX")
    assert stored.startswith(b"Return-Path: <cliente@example.net>\r\n")
    assert b"\r\nDelivered-To: incidencias@example.com\r\n" in stored
    assert stored.endswith(to_crlf(RAW))


def test_full_address_login_reaches_the_same_mailbox(imap: Dovecot) -> None:
    imap.deliver("incidencias", RAW)

    with imap.client("incidencias@example.com") as client:
        client.select_folder("INBOX", readonly=True)
        assert client.search("ALL") == imap.folder_uids("incidencias", "INBOX") != []


def test_idle_client_is_told_of_delivered_message(imap: Dovecot) -> None:
    responses: list[tuple[object, ...]] = []
    with imap.client("incidencias") as watcher:
        watcher.select_folder("INBOX")
        watcher.idle()
        imap.deliver("incidencias", RAW)
        deadline = time.monotonic() + 5
        while (1, b"EXISTS") not in responses and time.monotonic() < deadline:
            responses += watcher.idle_check(timeout=1)
        watcher.idle_done()

    assert (1, b"EXISTS") in responses


def test_reset_user_leaves_only_an_empty_inbox(imap: Dovecot) -> None:
    imap.append("agent2", RAW)
    imap.append("agent2", RAW, folder="Tickets.Cerrados")
    with imap.client("agent2") as client:
        client.subscribe_folder("Tickets.Cerrados")

    imap.reset_user("agent2")

    assert imap.folders("agent2") == ["INBOX"]
    assert imap.folder_uids("agent2", "INBOX") == []
    with imap.client("agent2") as client:
        assert client.list_sub_folders() == []


def test_restart_keeps_mail_and_port_and_stop_refuses_connections(imap: Dovecot) -> None:
    imap.append("customer1", RAW)
    port = imap.port

    imap.stop()
    with pytest.raises(ConnectionRefusedError):
        imap.client("customer1")
    imap.start()

    assert imap.port == port
    assert imap.fetch_all("customer1", "INBOX") == [to_crlf(RAW)]


def test_restart_on_a_taken_port_fails_showing_dovecot_log(dovecot_available: None) -> None:
    with Dovecot(users=["incidencias"]) as server, socket.socket() as squatter:
        server.stop()
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((server.host, server.port))
        squatter.listen()

        with pytest.raises(DovecotError, match="Address already in use"):
            server.start()


def test_tls_dovecot_serves_imaps_and_starttls_trusted_by_its_cafile(
    dovecot_available: None,
) -> None:
    with Dovecot(users=["incidencias"], tls=True) as server:
        context = ssl.create_default_context(cafile=server.cafile)
        with imapclient.IMAPClient(
            server.host, server.tls_port, ssl=True, ssl_context=context, timeout=5
        ) as implicit:
            assert implicit.login("incidencias", server.password) == b"Logged in"
        with imapclient.IMAPClient(server.host, server.port, ssl=False, timeout=5) as upgraded:
            upgraded.starttls(context)
            assert upgraded.login("incidencias", server.password) == b"Logged in"


def test_smtp_sink_captures_an_authenticated_aiosmtplib_send(smtp_sink: SmtpSink) -> None:
    _send(smtp_sink, _email(), username=smtp_sink.username, password=smtp_sink.password)

    [mail] = smtp_sink.wait_for(1)
    assert mail.mail_from == "incidencias@example.com"
    assert mail.rcpt_tos == ["customer@example.net"]
    assert mail.login == smtp_sink.username
    assert mail.message["Subject"] == "Pedido 42"
    assert mail.message.get_content().strip() == "Gracias por escribirnos."


def test_smtp_sink_rejects_a_wrong_password(smtp_sink: SmtpSink) -> None:
    with pytest.raises(aiosmtplib.SMTPAuthenticationError):
        _send(smtp_sink, _email(), username=smtp_sink.username, password="wrong")

    assert smtp_sink.messages == []


def test_smtp_sink_refuses_mail_with_the_configured_reply(smtp_sink: SmtpSink) -> None:
    smtp_sink.data_reply = "451 4.3.0 Try again later"

    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        _send(smtp_sink, _email())

    assert refused.value.code == 451
    assert smtp_sink.messages == []


def test_smtp_sink_survives_stop_and_start_on_the_same_port(smtp_sink: SmtpSink) -> None:
    port = smtp_sink.port
    smtp_sink.stop()
    with pytest.raises(aiosmtplib.SMTPConnectError):
        _send(smtp_sink, _email("perdido"))

    smtp_sink.start()
    _send(smtp_sink, _email("entregado"))

    assert smtp_sink.port == port
    assert [m.message["Subject"] for m in smtp_sink.wait_for(1)] == ["entregado"]


def test_smtp_sink_wait_for_lists_what_arrived_when_short(smtp_sink: SmtpSink) -> None:
    _send(smtp_sink, _email("solo uno"))

    with pytest.raises(AssertionError, match=r"(?s)got 1:.*solo uno"):
        smtp_sink.wait_for(2, timeout=0.2)

    smtp_sink.clear()
    assert smtp_sink.messages == []
