"""What the admin commands show: ticket search, the outbox and the quarantine, as JSON and tables.

Read-only queries that work the same on SQLite and PostgreSQL, and plain-text tables for people.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from email import policy
from email.parser import BytesHeaderParser
from typing import Any

from sqlalchemy import ColumnElement, LargeBinary, func, or_, select
from sqlalchemy.orm import Session

from daemon.storage.models import Message, OutboxItem, OutboxStatus, RawMessage, RawOutcome, Ticket
from daemon.storage.views import iso, list_tickets

# Enough of a raw message for its headers, without loading attachments into memory.
_HEADER_BYTES = 32 * 1024
_CELL_WIDTH = 60
_ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


def _lower_case(session: Session) -> Callable[[Any], ColumnElement[str]]:
    """Unicode lower case in the database: PostgreSQL's lower() does it; SQLite's folds only ASCII,
    so `Álvaro` would miss `ÁLVARO` there, and Python's str.lower is lent to the connection."""
    if session.get_bind().dialect.name != "sqlite":
        return func.lower
    connection = session.connection().connection.dbapi_connection
    if connection is not None:
        connection.create_function("unicode_lower", 1, _unicode_lower, deterministic=True)
    return func.unicode_lower


def _unicode_lower(value: object) -> str | None:
    return None if value is None else str(value).lower()


def search_tickets(session: Session, text: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Tickets whose subject, customer address or name, order numbers, or any message's text or
    subject contain `text`, ignoring case; newest first, in the shape of `tickets list`."""
    lower, needle = _lower_case(session), text.lower()

    def has(column: Any) -> ColumnElement[bool]:
        return lower(column).contains(needle, autoescape=True)

    in_messages = select(Message.ticket_id).where(or_(has(Message.text), has(Message.subject)))
    hits = select(Ticket.id).where(or_(
        has(Ticket.subject), has(Ticket.customer_email), has(Ticket.customer_name), has(Ticket.orders),
        Ticket.id.in_(in_messages)))
    return list_tickets(session, limit=limit, among=hits)


def outbox_object(item: OutboxItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "ticket": item.ticket_id,
        "kind": item.kind,
        "status": item.status,
        "recipients": item.recipients.split("\n"),
        "message_id": item.message_id,
        "attempts": item.attempts,
        "next_attempt_at": iso(item.next_attempt_at) if item.status == OutboxStatus.PENDING else None,
        "last_error": item.last_error,
        "created_at": iso(item.created_at),
        "sent_at": iso(item.sent_at),
    }


def list_outbox(session: Session, status: str | None = None,
                limit: int | None = None) -> list[dict[str, Any]]:
    """Outgoing mail, oldest first; without a status, everything not yet sent."""
    query = select(OutboxItem).order_by(OutboxItem.id)
    if status is None:
        query = query.where(OutboxItem.status != OutboxStatus.SENT)
    else:
        query = query.where(OutboxItem.status == status)
    if limit:
        query = query.limit(limit)
    return [outbox_object(item) for item in session.scalars(query)]


def list_quarantine(session: Session) -> list[dict[str, Any]]:
    """Quarantined raw messages, oldest first, with sender and subject read from their headers."""
    head = func.substr(RawMessage.raw, 1, _HEADER_BYTES, type_=LargeBinary)
    rows = session.execute(
        select(RawMessage.id, RawMessage.received_at, RawMessage.size, RawMessage.folder,
               RawMessage.error, head)
        .where(RawMessage.outcome == RawOutcome.QUARANTINED).order_by(RawMessage.id)).all()
    found = []
    for raw_id, received_at, size, folder, error, start in rows:
        headers = header_fields(bytes(start or b""))
        found.append({"id": raw_id, "received_at": iso(received_at), "size": size,
                      "folder": folder, **headers, "error": error})
    return found


def header_fields(raw: bytes) -> dict[str, str]:
    """From, Subject and Message-ID as one line of text each; quarantined mail is often malformed,
    so a header that cannot be decoded is shown as it is rather than failing the listing."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    decoded = BytesHeaderParser(policy=policy.default).parsebytes(head)
    undecoded = BytesHeaderParser(policy=policy.compat32).parsebytes(head)
    fields = {}
    for name in ("From", "Subject", "Message-ID"):
        try:
            value = str(decoded.get(name, ""))
        except Exception:
            value = str(undecoded.get(name, ""))
        fields[name.lower().replace("-", "_")] = " ".join(value.split())
    return fields


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]],
          empty: str = "(none)") -> str:
    """Rows as aligned columns, (key, heading) each; long or multi-line cells are cut to one line."""
    if not rows:
        return empty
    cells = [[_cell(row[key]) for key, _ in columns] for row in rows]
    widths = [max(len(heading), *(len(line[i]) for line in cells))
              for i, (_, heading) in enumerate(columns)]
    lines = ["  ".join(heading.ljust(w) for (_, heading), w in zip(columns, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    text = " ".join(str(value).split())
    if isinstance(value, str) and _ISO_TIME.match(value):
        text = value[:16].replace("T", " ")
    return text if len(text) <= _CELL_WIDTH else text[:_CELL_WIDTH - 1] + "…"


OUTBOX_COLUMNS = (("id", "id"), ("ticket", "ticket"), ("kind", "kind"), ("status", "status"),
                  ("recipients", "recipients"), ("attempts", "attempts"),
                  ("next_attempt_at", "next attempt (UTC)"), ("last_error", "last error"))
QUARANTINE_COLUMNS = (("id", "id"), ("received_at", "received (UTC)"), ("from", "from"),
                      ("subject", "subject"), ("error", "error"))
