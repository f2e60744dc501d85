"""Raw bytes → ParsedMessage, with mail-parser doing the MIME work.

Everything that later ends up in an outgoing header is cleaned here once (no CR/LF, bounded
length), and HTML-only mail is turned into text so agents and templates only ever see text.
Header text (subject, display names, attachment names) is decoded by header_text, not by
mail-parser, which loses the space between an encoded word and a plain one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from typing import TypedDict

import mailparser
from inscriptis import get_text
from mailparser.utils import decode_header_part, mime_header_view

from daemon.mail.header_text import decode_header_text, likely_charset, text_of_8bit
from daemon.mail.message import Address, Attachment, ParsedMessage

_MSGID = re.compile(r"<([^<>\s]+)>")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_MAX_HEADER_TEXT = 998
_MAX_IDS = 100
_MAX_HEADER_BLOCK = 1_000_000
# The stdlib's RFC 2047 decoder is quadratic: a 1 MB Subject of encoded words takes ~30 s.
_MAX_FIELD_BYTES = 16_384
_MAX_FIELDS_BYTES = 262_144
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD_BREAK = re.compile(rb"(\r?\n)(?![ \t])")


class ParseError(Exception):
    """The message cannot become a ticket message (e.g. it has no sender address)."""


def parse(raw: bytes, *, require_sender: bool = True) -> tuple[ParsedMessage, Message]:
    """Parse raw mail; also return the stdlib Message, which classification reads.

    A bounce often has no sender at all; with `require_sender` False it gets an empty address
    instead of a ParseError, and the caller decides whether it can do without one.
    """
    mail = mailparser.parse_from_bytes(bounded_fields(raw))
    message: Message = mail.message
    charset = charset_hint(message)
    sender = _sender(next(iter(_addresses(_raw_values(message, "From"), charset)), None)
                     or _first_address(mail.from_)
                     or _first_header_address(message, "Sender", "Return-Path"), require_sender)
    text = (mail.text_plain and "\n".join(mail.text_plain)) or ""
    html = (mail.text_html and "\n".join(mail.text_html)) or ""
    if not text.strip() and html.strip():
        text = get_text(html)
    message_id = normalise_message_id(str(mail.message_id or "")) or synthetic_message_id(raw)
    return (
        ParsedMessage(
            message_id=message_id,
            sender=sender,
            **_correspondents(message),
            subject=clean_header_text(decode_header_text(next(iter(_raw_values(message, "Subject")), ""),
                                                         charset)),
            date=_utc(mail.date),
            # NUL never means anything in mail text (a UTF-16 part labelled UTF-8 is full of them),
            # and PostgreSQL cannot store it in a text column.
            text=text.replace("\r\n", "\n").replace("\x00", ""),
            html=html,
            attachments=tuple(_attachments(mail.attachments, _filenames(message, charset))),
            content_type=message.get_content_type(),
        ),
        message,
    )


class _Correspondents(TypedDict):
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    headers: tuple[tuple[str, str], ...]


def _correspondents(message: Message) -> _Correspondents:
    """The threading and address headers, read the same way from a full parse or headers only."""
    charset = charset_hint(message)
    return _Correspondents(
        in_reply_to=message_ids(_header(message, "In-Reply-To")),
        references=message_ids(_header(message, "References")),
        reply_to=tuple(_addresses(_raw_values(message, "Reply-To"), charset)),
        to=tuple(_addresses(_raw_values(message, "To"), charset)),
        cc=tuple(_addresses(_raw_values(message, "Cc"), charset)),
        headers=tuple((str(k), decode_header_text(v, charset)) for k, v in message.raw_items()),
    )


def parse_headers(raw: bytes, *, require_sender: bool = True) -> tuple[ParsedMessage, Message]:
    """Only the header block of a message too large to parse in full; the body is not read."""
    ends = (raw.find(b"\r\n\r\n", 0, _MAX_HEADER_BLOCK), raw.find(b"\n\n", 0, _MAX_HEADER_BLOCK))
    end = min((i for i in ends if i >= 0), default=_MAX_HEADER_BLOCK)
    message = BytesParser(policy=compat32).parsebytes(bounded_fields(raw[:end]), headersonly=True)
    sender = _sender(_first_header_address(message, "From", "Sender", "Return-Path"), require_sender)
    return (
        ParsedMessage(
            message_id=normalise_message_id(_header(message, "Message-ID")) or synthetic_message_id(raw),
            sender=sender,
            **_correspondents(message),
            subject=clean_header_text(_header(message, "Subject", charset_hint(message))),
            date=_utc(_date(_header(message, "Date"))),
            text="",
            html="",
            attachments=(),
            content_type=message.get_content_type(),
        ),
        message,
    )


def bounded_fields(raw: bytes) -> bytes:
    """The message with each top-level header field cut to _MAX_FIELD_BYTES and the fields
    beyond _MAX_FIELDS_BYTES dropped, for parsing only.

    No genuine header comes near these limits; a hostile one would otherwise hold the intake
    for minutes. The stored raw bytes are never changed.
    """
    end = _HEADER_END.search(raw)
    head_end = end.start() if end else len(raw)
    if head_end <= _MAX_FIELD_BYTES:
        return raw
    # split() with a group alternates field, line break, field…: only the fields are cut.
    parts = _FIELD_BREAK.split(raw[:head_end])
    kept: list[bytes] = []
    total = 0
    for field, brk in zip(parts[::2], [*parts[1::2], b""], strict=True):
        if total > _MAX_FIELDS_BYTES:
            break
        kept += [field[:_MAX_FIELD_BYTES], brk]
        total += min(len(field), _MAX_FIELD_BYTES)
    return b"".join(kept).rstrip(b"\r\n") + raw[head_end:]


def normalise_message_id(value: str) -> str:
    """`<a@b>` → `a@b`; ids are stored and compared without brackets."""
    found = _MSGID.search(value)
    candidate = found.group(1) if found else value.strip()
    candidate = _CONTROL.sub("", candidate)
    return candidate[:_MAX_HEADER_TEXT] if candidate and not any(c.isspace() for c in candidate) else ""


def synthetic_message_id(raw: bytes) -> str:
    """An id for mail that has none, stable for the same bytes so a redelivery is still a duplicate."""
    return f"{hashlib.sha256(raw).hexdigest()}@no-message-id.invalid"


def message_ids(value: str) -> tuple[str, ...]:
    """All `<…>` ids in a References/In-Reply-To value, in order, without duplicates."""
    seen: dict[str, None] = {}
    for mid in _MSGID.findall(value):
        seen.setdefault(mid[:_MAX_HEADER_TEXT], None)
    return tuple(seen)[-_MAX_IDS:]


def clean_header_text(value: str) -> str:
    """One line of printable text, safe to put in a header we send.

    An encoded word left in the text ("=?utf-8?q?=0D=0A?=") would be decoded again by whoever
    reads the header we write, control characters and all, so its opening is broken up.
    """
    return " ".join(_CONTROL.sub(" ", value).split()).replace("=?", "= ?")[:_MAX_HEADER_TEXT]


def _raw_values(message: Message, name: str) -> list[str]:
    """Every value of a field as received (8-bit bytes as surrogate escapes, not yet decoded);
    get_all() would turn 8-bit values into Header objects that print as replacement characters."""
    wanted = name.lower()
    return [str(v) for k, v in message.raw_items() if k.lower() == wanted]


def _header(message: Message, name: str, charset: str | None = None) -> str:
    return " ".join(decode_header_text(v, charset) for v in _raw_values(message, name))


def charset_hint(message: Message) -> str | None:
    """The charset the message declares that its raw 8-bit headers are likely in."""
    return likely_charset(message.get_charsets())


def _addresses(values: Sequence[str], charset: str | None) -> list[Address]:
    """Split first, decode names after: an encoded word must not smuggle in another address."""
    found = []
    for name, email in getaddresses([_unfolded(v) for v in values]):
        email = clean_header_text(text_of_8bit(email, charset)).lower()
        if "@" in email:
            found.append(Address(clean_header_text(decode_header_text(name, charset))[:200],
                                 email[:320]))
    return found


def _unfolded(value: str) -> str:
    return value.replace("\r", "").replace("\n", "")


def _filenames(message: Message, charset: str | None) -> dict[str, str]:
    """Attachment names as mail-parser decoded them → as they were written (RFC 2231 parameters
    already joined by get_filename), so mail-parser's attachments can keep its part selection."""
    names: dict[str, str] = {}
    for part in message.walk():
        raw = mime_header_view(part)[0].get_filename()
        if raw:
            names.setdefault(decode_header_part(raw), decode_header_text(raw, charset).strip())
    return names


def _first_address(pairs: object) -> Address | None:
    if isinstance(pairs, list):
        for pair in pairs:
            if isinstance(pair, tuple) and len(pair) == 2 and "@" in str(pair[1]):
                return Address(clean_header_text(str(pair[0]))[:200],
                               clean_header_text(str(pair[1])).lower()[:320])
    return None


def _first_header_address(message: Message, *names: str) -> Address | None:
    for name in names:
        _, email = parseaddr(_header(message, name))
        if "@" in email:
            return Address("", clean_header_text(email).lower()[:320])
    return None


def _date(value: str) -> datetime | None:
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None


def _sender(found: Address | None, required: bool) -> Address:
    if found is not None:
        return found
    if required:
        raise ParseError("no sender address in From, Sender or Return-Path")
    return Address("", "")


def _utc(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _attachments(items: list[dict[str, object]], names: dict[str, str]) -> list[Attachment]:
    found = []
    for item in items:
        filename = str(item.get("filename") or "attachment")
        payload = item.get("payload") or ""
        if item.get("binary"):
            try:
                content = base64.b64decode(str(payload))
            except (binascii.Error, ValueError):
                content = str(payload).encode("utf-8", "replace")
        else:
            content = str(payload).encode("utf-8", "replace")
        found.append(
            Attachment(
                filename=clean_header_text(names.get(filename, filename))[:255],
                content_type=clean_header_text(str(item.get("mail_content_type") or
                                                   "application/octet-stream"))[:255],
                content=content,
            )
        )
    return found
