"""Tickets as the JSON objects README documents (`tickets show --json`), and as short tables for people."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from daemon.mail.orders import listed_orders
from daemon.storage.models import Message, PendingClosing, Ticket


def iso(moment: datetime | None) -> str | None:
    """Stored naive UTC → ISO 8601 with an explicit UTC offset."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def ticket_object(ticket: Ticket, message_count: int,
                  pending: PendingClosing | None = None) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "status": ticket.status,
        "customer": ticket.customer_email,
        "customer_name": ticket.customer_name,
        "subject": ticket.subject,
        "language": ticket.language,
        "created_at": iso(ticket.created_at),
        "updated_at": iso(ticket.updated_at),
        "last_outbound_at": iso(ticket.last_outbound_at),
        "discount_code": ticket.discount_code,
        "message_count": message_count,
        "assigned_to": ticket.assigned_to,
        "tags": [t for t in ticket.tags.split(",") if t],
        "status_line": ticket.status_line,
        "wait_until": iso(ticket.wait_until),
        "mailbox": ticket.mailbox,
        "orders": listed_orders(ticket.orders),
        "closing_pending": None if pending is None else {
            "since": iso(pending.since), "code": pending.code, "percent": pending.percent,
            "attempts": pending.attempts, "last_error": pending.last_error},
        "unreachable_at": iso(ticket.unreachable_at),
        "unreachable_reason": ticket.unreachable_reason,
        "pseudonymised_at": iso(ticket.pseudonymised_at),
        "self_solved": ticket.self_solved,
        "faq": [name for name in ticket.faq.split(",") if name],
        "problem": ticket.problem.name if ticket.problem is not None else None,
    }


def message_object(message: Message) -> dict[str, Any]:
    return {
        "direction": message.direction,
        "message_id": message.message_id,
        "from": message.from_email,
        "subject": message.subject,
        "text": message.text,
        "kind": message.kind,
        "answers": [name for name in message.answers.split(",") if name],
        "created_at": iso(message.created_at),
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": a.size}
            for a in message.attachments
        ],
    }


def list_tickets(session: Session, status: str | None = None, limit: int | None = None,
                 among: Select[Any] | None = None) -> list[dict[str, Any]]:
    """Tickets newest first; `among` (a query of ticket ids) narrows them, e.g. to search hits."""
    counts = (select(Message.ticket_id, func.count().label("n"))
              .group_by(Message.ticket_id).subquery())
    query = (select(Ticket, func.coalesce(counts.c.n, 0), PendingClosing)
             .outerjoin(counts, counts.c.ticket_id == Ticket.id)
             .outerjoin(PendingClosing, PendingClosing.ticket_id == Ticket.id)
             .order_by(Ticket.created_at.desc(), Ticket.id.desc()))
    if status:
        query = query.where(Ticket.status == status)
    if among is not None:
        query = query.where(Ticket.id.in_(among))
    if limit:
        query = query.limit(limit)
    return [ticket_object(ticket, count, pending)
            for ticket, count, pending in session.execute(query).all()]


def show_ticket(session: Session, number: int) -> dict[str, Any] | None:
    ticket = session.get(Ticket, number)
    if ticket is None:
        return None
    found = ticket_object(ticket, len(ticket.messages), session.get(PendingClosing, number))
    found["messages"] = [message_object(m) for m in ticket.messages]
    return found


def ticket_table(tickets: list[dict[str, Any]]) -> str:
    header = f"{'#':>6}  {'status':8}  {'lang':4}  {'created (UTC)':16}  {'customer':30}  subject"
    lines = [header]
    for t in tickets:
        created = (t["created_at"] or "")[:16].replace("T", " ")
        lines.append(f"{t['id']:>6}  {t['status']:8}  {t['language']:4}  {created:16}  "
                     f"{t['customer'][:30]:30}  {t['subject'][:60]}")
    return "\n".join(lines)


def ticket_detail(ticket: dict[str, Any]) -> str:
    lines = [
        f"Ticket #{ticket['id']}  [{ticket['status']}]  {ticket['subject']}",
        f"customer: {ticket['customer_name']} <{ticket['customer']}>  language: {ticket['language']}",
        f"created: {ticket['created_at']}  updated: {ticket['updated_at']}",
    ]
    if ticket["discount_code"]:
        lines.append(f"discount code: {ticket['discount_code']}")
    if ticket["orders"]:
        lines.append(f"orders: {', '.join(ticket['orders'])}")
    if ticket["closing_pending"]:
        pending = ticket["closing_pending"]
        lines.append(f"closing waits for the shop to confirm coupon {pending['code']} since "
                     f"{pending['since']}: {pending['last_error'] or 'not asked yet'}")
    if ticket.get("problem"):
        lines.append(f"problem: {ticket['problem']}")
    for m in ticket["messages"]:
        lines += ["", f"--- {m['direction']} {m['kind']} from {m['from']} at {m['created_at']}",
                  m["text"].strip()]
        lines += [f"    [attachment] {a['filename']} ({a['content_type']}, {a['size']} bytes)"
                  for a in m["attachments"]]
    return "\n".join(lines)
