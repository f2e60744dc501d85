"""Build the outgoing emails: headers that keep the customer's thread, and a text + HTML body."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.policy import SMTP
from email.utils import format_datetime
from functools import lru_cache

from daemon.mail.message import Attachment
from daemon.mail.outlook import new_thread_index, reply_thread_index
from daemon.mail.parsing import clean_header_text
from daemon.mail.subjects import subject_key, tagged, ticket_tag
from daemon.outbound.header_lines import address_line, text_line
from daemon.outbound.rendering import Rendered

_MAX_REFERENCES = 20
_MAX_FILENAME = 120
_PLAIN = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
_CONTENT_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]{1,64}/[a-z0-9!#$&^_.+-]{1,64}")


@dataclass(frozen=True)
class Thread:
    """What an outgoing message needs to continue a conversation in the recipient's client."""

    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    thread_index: str | None = None


@dataclass(frozen=True)
class Outgoing:
    """A composed email, ready for the outbox: its bytes never change after this point."""

    kind: str
    message_id: str
    mail_from: str
    recipients: tuple[str, ...]
    raw: bytes


def safe_filename(name: str) -> str:
    """The sender's file name without any path, control or invisible characters, for a
    Content-Disposition; bidi overrides would let "invoice\u202efdp.exe" pass for a PDF."""
    visible = "".join(ch for ch in name if unicodedata.category(ch) != "Cf")
    base = re.split(r"[\\/]", clean_header_text(visible))[-1].strip(" .")
    stem, dot, extension = base.rpartition(".")
    if len(base) > _MAX_FILENAME and dot and stem and len(extension) <= 10:
        return f"{stem[:_MAX_FILENAME - len(extension) - 1]}.{extension}"
    return base[:_MAX_FILENAME] or "attachment"


def _addr_spec(email: str) -> str:
    """The address as a valid addr-spec (the local part quoted when it needs it)."""
    try:
        return Address(addr_spec=email).addr_spec
    except (ValueError, HeaderParseError):
        local, _, domain = clean_header_text(email).rpartition("@")
        return Address(username=local, domain=domain).addr_spec


@lru_cache(maxsize=4096)
def _address_line(field: str, mailboxes: tuple[tuple[str, str], ...]) -> str:
    """A folded address header; the name is quoted or encoded as a whole by header_lines, so text
    from a message ("María Bcc: x@y") never turns into another address. The same few lines recur
    (the shop, the agents, a ticket's customer), hence the cache."""
    return address_line(field, [(clean_header_text(n), _addr_spec(e)) for n, e in mailboxes])


@lru_cache(maxsize=4096)
def _folded(field: str, value: str) -> str:
    line: str = SMTP.header_factory(field, value).fold(policy=SMTP)
    return line


def _line(field: str, value: str) -> str:
    """A header line: written as is when it is short printable ASCII (what folding would give
    anyway), folded and encoded by the policy otherwise."""
    if len(field) + len(value) <= 76 and _PLAIN.fullmatch(value):
        return f"{field}: {value}\r\n"
    return _folded(field, value)


def _body(rendered: Rendered, attachments: Sequence[Attachment]) -> bytes:
    """The MIME body with its own Content-Type and MIME-Version lines: text, HTML, attachments.

    The part headers are the same few lines in every mail and are written directly; the email
    package's content manager cost 1.4 ms a mail, the largest part of composing (bench/ANALYSIS.md).
    binascii does the encoding, and the policy folds what needs it (RFC 2231 file names).
    """
    body = _multipart("alternative", [_text_part("plain", rendered.text),
                                      _text_part("html", rendered.html)])
    if attachments:
        body = _multipart("mixed", [body, *map(_attachment_part, attachments)])
    return b"MIME-Version: 1.0\r\n" + body


def _multipart(subtype: str, parts: Sequence[bytes]) -> bytes:
    """A multipart entity; "=_" cannot occur in quoted-printable or base64, so neither can the
    boundary."""
    boundary = f"=_{secrets.token_hex(12)}"
    delimiter = f"\r\n--{boundary}\r\n".encode()
    return (f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode()
            + delimiter[2:] + delimiter.join(parts) + f"\r\n--{boundary}--\r\n".encode())


def _text_part(subtype: str, text: str) -> bytes:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").encode()
    encoded = binascii.b2a_qp(lines, istext=True).replace(b"\n", b"\r\n")
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode() + encoded


def _attachment_part(attachment: Attachment) -> bytes:
    content_type = attachment.content_type.lower()
    if not _CONTENT_TYPE.fullmatch(content_type) or content_type.startswith("multipart/"):
        content_type = "application/octet-stream"
    name = safe_filename(attachment.filename).replace("\\", "\\\\").replace('"', '\\"')
    headers = (f"Content-Type: {content_type}\r\n"
               + _line("Content-Disposition", f'attachment; filename="{name}"')
               + "Content-Transfer-Encoding: base64\r\n\r\n")
    return headers.encode() + base64.encodebytes(attachment.content).replace(b"\n", b"\r\n").rstrip()


def new_message_id(domain: str, ticket: int, kind: str) -> str:
    """A globally unique id that also tells a reader which ticket it belongs to."""
    return f"incidencias.{ticket}.{kind}.{secrets.token_hex(10)}@{domain}"


@dataclass(frozen=True)
class Copy:
    """Who one copy of a mail goes to, and the Message-ID it carries (a new one when None)."""

    to: tuple[tuple[str, str], ...]
    message_id: str | None = None


def compose(
    *,
    kind: str,
    ticket: int,
    shop_name: str,
    shop_address: str,
    copies: Sequence[Copy],
    rendered: Rendered,
    language: str,
    thread: Thread,
    automatic: str | None,
    now: datetime,
    from_name: str | None = None,
    attachments: Sequence[Attachment] = (),
    problem: str | None = None,
) -> list[Outgoing]:
    """The same email to each copy's recipients; only To and Message-ID differ between copies,
    so the body (attachments included) is encoded once however many agents there are.

    `automatic` is the RFC 3834 Auto-Submitted value, or None. `from_name` replaces the shop's
    name as display name (agents see "<customer> via <shop>"). With `problem` (a problem's name)
    the mail is about that problem, not a ticket: `X-Incidencias-Problem` instead of the ticket
    header and no `[#N]` tag added to the subject.
    """
    domain = shop_address.rpartition("@")[2]
    subject = clean_header_text(rendered.subject)
    if problem is None and ticket and ticket_tag(subject) != ticket:  # 0: about no ticket
        subject = tagged(subject, ticket)
    headers = [_address_line("From", ((from_name or shop_name, shop_address),)),
               text_line("Subject", subject), _line("Date", format_datetime(now.astimezone()))]
    references = [*thread.references, *([thread.in_reply_to] if thread.in_reply_to else [])]
    if thread.in_reply_to:
        headers.append(_line("In-Reply-To", f"<{thread.in_reply_to}>"))
    if references:
        unique = list(dict.fromkeys(references))[-_MAX_REFERENCES:]
        headers.append(_line("References", " ".join(f"<{mid}>" for mid in unique)))
    headers.append(text_line("Thread-Topic", subject_key(subject) or subject))
    seed = f"{shop_address}#{ticket}" if problem is None else f"{shop_address}#problem-{problem}"
    headers.append(_line("Thread-Index", (
        reply_thread_index(thread.thread_index, seed, now)
        if thread.thread_index or thread.in_reply_to
        else new_thread_index(seed, now))))
    if automatic:
        headers.append(_line("Auto-Submitted", automatic))
    headers += [_line("X-Auto-Response-Suppress", "All"),
                (_line("X-Incidencias-Ticket", str(ticket)) if problem is None
                 else _line("X-Incidencias-Problem", problem)),
                _line("Content-Language", language)]
    common = "".join(headers).encode()
    body = _body(rendered, attachments)
    composed = []
    for copy in copies:
        message_id = copy.message_id or new_message_id(domain, ticket, kind)
        addressed = _address_line("To", copy.to) + _line("Message-ID", f"<{message_id}>")
        composed.append(Outgoing(kind=kind, message_id=message_id, mail_from=shop_address,
                                 recipients=tuple(email for _, email in copy.to),
                                 raw=addressed.encode() + common + body))
    return composed
