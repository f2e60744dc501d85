"""Build the outgoing emails: headers that keep the customer's thread, and a text + HTML body."""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from daemon.message import Attachment
from daemon.outlook import new_thread_index, reply_thread_index
from daemon.parsing import clean_header_text
from daemon.rendering import Rendered
from daemon.subjects import subject_key, tagged, ticket_tag

_MAX_REFERENCES = 20
_MAX_FILENAME = 120


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


def _mailbox(name: str, email: str) -> Address:
    """A structured address: the policy quotes or encodes the name as a whole, so text from a
    message ("María Bcc: x@y") never turns into another address, as a formatted string could."""
    display = clean_header_text(name)
    try:
        return Address(display_name=display, addr_spec=email)
    except (ValueError, HeaderParseError):
        local, _, domain = clean_header_text(email).rpartition("@")
        return Address(display_name=display, username=local, domain=domain)


def new_message_id(domain: str, ticket: int, kind: str) -> str:
    """A globally unique id that also tells a reader which ticket it belongs to."""
    return f"incidencias.{ticket}.{kind}.{secrets.token_hex(10)}@{domain}"


def compose(
    *,
    kind: str,
    ticket: int,
    shop_name: str,
    shop_address: str,
    to: Sequence[tuple[str, str]],
    rendered: Rendered,
    language: str,
    thread: Thread,
    automatic: str | None,
    now: datetime,
    message_id: str | None = None,
    from_name: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> Outgoing:
    """One email from the shop's address; `automatic` is the RFC 3834 Auto-Submitted value, or None.

    `from_name` replaces the shop's name as display name (agents see "<customer> via <shop>").
    """
    domain = shop_address.rpartition("@")[2]
    message_id = message_id or new_message_id(domain, ticket, kind)
    subject = clean_header_text(rendered.subject)
    if ticket_tag(subject) != ticket:
        subject = tagged(subject, ticket)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = _mailbox(from_name or shop_name, shop_address)
    msg["To"] = [_mailbox(name, email) for name, email in to]
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now.astimezone())
    msg["Message-ID"] = f"<{message_id}>"
    references = [*thread.references, *([thread.in_reply_to] if thread.in_reply_to else [])]
    if thread.in_reply_to:
        msg["In-Reply-To"] = f"<{thread.in_reply_to}>"
    if references:
        unique = list(dict.fromkeys(references))[-_MAX_REFERENCES:]
        msg["References"] = " ".join(f"<{mid}>" for mid in unique)
    msg["Thread-Topic"] = subject_key(subject) or subject
    seed = f"{shop_address}#{ticket}"
    msg["Thread-Index"] = (
        reply_thread_index(thread.thread_index, seed, now)
        if thread.thread_index or thread.in_reply_to
        else new_thread_index(seed, now)
    )
    if automatic:
        msg["Auto-Submitted"] = automatic
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Incidencias-Ticket"] = str(ticket)
    msg["Content-Language"] = language
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        if not subtype or maintype == "multipart":
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(attachment.content, maintype=maintype, subtype=subtype,
                           filename=safe_filename(attachment.filename))
    return Outgoing(
        kind=kind,
        message_id=message_id,
        mail_from=shop_address,
        recipients=tuple(email for _, email in to),
        raw=msg.as_bytes(),
    )
