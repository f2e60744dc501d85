"""A mail made ready for DATA once reaches the server byte for byte as aiosmtplib's sendmail sends it."""

from __future__ import annotations

import asyncio

import aiosmtplib
import pytest
from helpers.mailservers import SmtpSink

from daemon.outbound.smtp_wire import prepare, send_prepared

# Lines starting with a dot, a lone CR, LF-only lines and no final line break: every case
# aiosmtplib's own regexes handle.
AWKWARD = (b"From: shop@example.com\nTo: maria@example.net\nSubject: dots\n\n"
           b".hidden line\r\n..two dots\rlone CR\r\nend . of text\n.")


def test_crlf_bytes_are_only_dot_stuffed_and_terminated() -> None:
    raw = b"Subject: x\r\n\r\n.first\r\nmiddle\r\n.\r\nlast\r\n"

    prepared = prepare(raw)

    assert prepared.data == b"Subject: x\r\n\r\n..first\r\nmiddle\r\n..\r\nlast\r\n.\r\n"
    assert prepared.size == len(raw)


def test_bare_line_endings_become_crlf_before_stuffing() -> None:
    prepared = prepare(b".a\nb\rc\r\nd")

    assert prepared.data == b"..a\r\nb\r\nc\r\nd\r\n.\r\n"
    assert prepared.size == len(b".a\r\nb\r\nc\r\nd\r\n")


async def _send_both(sink: SmtpSink, raw: bytes) -> None:
    client = aiosmtplib.SMTP(hostname=sink.host, port=sink.port)
    await client.connect()
    try:
        await client.sendmail("shop@example.com", ["maria@example.net"], raw)
        await send_prepared(client, "shop@example.com", ["maria@example.net"], prepare(raw), False)
    finally:
        await client.quit()


CRLF_ONLY = AWKWARD.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


@pytest.mark.parametrize("raw", [AWKWARD, CRLF_ONLY])
def test_the_server_receives_what_sendmail_would_have_sent(smtp_sink: SmtpSink, raw: bytes) -> None:
    asyncio.run(_send_both(smtp_sink, raw))

    by_sendmail, prepared = (mail.data for mail in smtp_sink.messages)
    assert prepared == by_sendmail
    # The server un-stuffs: lines read back with the dots they were written with.
    assert b"\r\n.hidden line\r\n..two dots\r\n" in prepared


async def _refused(sink: SmtpSink) -> aiosmtplib.SMTPResponseException:
    client = aiosmtplib.SMTP(hostname=sink.host, port=sink.port)
    await client.connect()
    try:
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await send_prepared(client, "shop@example.com", ["maria@example.net"],
                                prepare(b"Subject: x\r\n\r\nbody\r\n"), False)
        # The envelope was reset: the same connection still sends the next mail.
        sink.data_reply = "250 Message accepted"
        await send_prepared(client, "shop@example.com", ["pierre@example.org"],
                            prepare(b"Subject: y\r\n\r\nbody\r\n"), False)
    finally:
        await client.quit()
    return refused.value


def test_a_refused_mail_raises_as_sendmail_does_and_the_connection_goes_on(smtp_sink: SmtpSink) -> None:
    smtp_sink.data_reply = "554 5.7.1 Rejected"

    refused = asyncio.run(_refused(smtp_sink))

    assert refused.code == 554
    assert [mail.rcpt_tos for mail in smtp_sink.messages] == [["pierre@example.org"]]


async def _unwritable_then_next(sink: SmtpSink) -> None:
    client = aiosmtplib.SMTP(hostname=sink.host, port=sink.port)
    await client.connect()
    try:
        with pytest.raises(ValueError):
            await send_prepared(client, "shop@example.com", ["= ?utf-8?q?jd=c3=b6e?=@x.example"],
                                prepare(b"Subject: x\r\n\r\nbody\r\n"), False)
        await send_prepared(client, "shop@example.com", ["pierre@example.org"],
                            prepare(b"Subject: y\r\n\r\nbody\r\n"), False)
    finally:
        await client.quit()


def test_an_address_that_cannot_be_written_fails_alone_and_the_connection_goes_on(
        smtp_sink: SmtpSink) -> None:
    asyncio.run(_unwritable_then_next(smtp_sink))

    assert [mail.rcpt_tos for mail in smtp_sink.messages] == [["pierre@example.org"]]
