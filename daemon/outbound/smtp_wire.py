"""One mail over an open SMTP connection, its bytes made ready for DATA once.

aiosmtplib's `sendmail` passes every message through a line-ending regex twice (once to count
the SIZE, once before DATA) and a dot-stuffing regex once: about 20 ms for a 270 KB mail with an
attachment on this project's machine, more than everything else the sender does for it. The
outbox's bytes are written with CRLF already (compose.py), so `prepare` checks that with byte
counts, normalises only a row that needs it, and dot-stuffs with one `bytes.replace`.

`send_prepared` speaks MAIL/RCPT through aiosmtplib's public commands and writes the prepared
DATA through the client's protocol object (its public `write` and `read_response`); those are
stable across aiosmtplib 5.x, the range pyproject.toml allows. tests/test_smtp_wire.py checks
that the sink receives exactly the bytes `sendmail` would have delivered.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import aiosmtplib

_LINE_ENDING = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class Prepared:
    """The DATA payload (dot-stuffed, ending in CRLF.CRLF) and the message's size for SIZE=."""

    data: bytes
    size: int


def prepare(raw: bytes) -> Prepared:
    """CRLF line endings throughout and a final CRLF, then every line starting with "." doubled."""
    crlf = raw.count(b"\r\n")
    if raw.count(b"\n") != crlf or raw.count(b"\r") != crlf:
        raw = _LINE_ENDING.sub(b"\r\n", raw)
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    size = len(raw)
    stuffed = raw.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return Prepared(stuffed + b".\r\n", size)


async def send_prepared(client: aiosmtplib.SMTP, sender: str, recipients: Sequence[str],
                        mail: Prepared, utf8: bool) -> dict[str, aiosmtplib.SMTPResponse]:
    """Deliver one mail as `sendmail` would, with the same exceptions; the refused recipients
    when some (not all) were refused."""
    encoding = "utf-8" if utf8 else "ascii"
    if utf8 and not client.supports_extension("smtputf8"):
        raise aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server")
    options = [f"SIZE={mail.size}"] if client.supports_extension("size") else []
    if utf8:
        options.append("SMTPUTF8")
    try:
        await client.mail(sender, options=options, encoding=encoding)
        refused: dict[str, aiosmtplib.SMTPResponse] = {}
        errors: list[aiosmtplib.SMTPRecipientRefused] = []
        for recipient in recipients:
            try:
                await client.rcpt(recipient, encoding=encoding)
            except aiosmtplib.SMTPRecipientRefused as exc:
                errors.append(exc)
                refused[exc.recipient] = aiosmtplib.SMTPResponse(exc.code, exc.message)
        if len(errors) == len(recipients):
            raise aiosmtplib.SMTPRecipientsRefused(errors)
        await _data(client, mail.data)
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused, ValueError):
        # A refusal, or an address aiosmtplib will not write (ValueError) once MAIL was accepted:
        # the envelope is reset so the connection can carry the next mail.
        with contextlib.suppress(ConnectionError, aiosmtplib.SMTPResponseException):
            await client.rset()
        raise
    return refused


async def _data(client: aiosmtplib.SMTP, payload: bytes) -> None:
    """DATA, then the payload as it is. No await comes between a write and the read of its reply,
    so the reply cannot arrive before the protocol expects it."""
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    timeout = client.timeout
    try:
        protocol.write(b"DATA\r\n")
        start = await protocol.read_response(timeout=timeout)
        if start.code != aiosmtplib.SMTPStatus.start_input:
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        protocol.write(payload)
        done = await protocol.read_response(timeout=timeout)
        if done.code != aiosmtplib.SMTPStatus.completed:
            raise aiosmtplib.SMTPDataError(done.code, done.message)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
        client.close()
        raise
