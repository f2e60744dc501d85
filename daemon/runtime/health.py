"""What state the daemon's work is in, read from the database: for systemd's STATUS= and metrics.

Everything here is derived from the tables, so it is right after a restart and agrees with what
`incidencias tickets list` shows; the daemon keeps no counts of its own for these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.storage.models import OutboxItem, OutboxStatus, Ticket, TicketStatus


@dataclass(frozen=True)
class Snapshot:
    tickets: dict[str, int] = field(default_factory=dict)
    outbox_pending: int = 0
    outbox_failed: int = 0
    oldest_pending: datetime | None = None

    def oldest_pending_age(self, now: datetime) -> timedelta:
        return max(timedelta(0), now - self.oldest_pending) if self.oldest_pending else timedelta(0)


def take_snapshot(session: Session) -> Snapshot:
    tickets = {status: 0 for status in (TicketStatus.OPEN, TicketStatus.WAITING, TicketStatus.CLOSED)}
    for status, count in session.execute(select(Ticket.status, func.count()).group_by(Ticket.status)):
        tickets[str(status)] = int(count)
    outbox = {str(status): int(count) for status, count in session.execute(
        select(OutboxItem.status, func.count())
        .where(OutboxItem.status.in_([OutboxStatus.PENDING, OutboxStatus.FAILED]))
        .group_by(OutboxItem.status))}
    oldest = session.scalar(select(func.min(OutboxItem.created_at))
                            .where(OutboxItem.status == OutboxStatus.PENDING))
    return Snapshot(tickets, int(outbox.get(OutboxStatus.PENDING, 0)),
                    int(outbox.get(OutboxStatus.FAILED, 0)), oldest)


def short_duration(delta: timedelta) -> str:
    """45s, 12m, 3h, 2d: precise enough for a status line."""
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def status_line(activity: str, snapshot: Snapshot, now: datetime) -> str:
    """E.g. "idle, 12 open tickets, 3 waiting, outbox empty" for `systemctl status`."""
    parts = [activity, _plural(snapshot.tickets.get(TicketStatus.OPEN, 0), "open ticket")]
    waiting = snapshot.tickets.get(TicketStatus.WAITING, 0)
    if waiting:
        parts.append(f"{waiting} waiting on the customer")
    if snapshot.outbox_pending:
        age = short_duration(snapshot.oldest_pending_age(now))
        parts.append(f"{_plural(snapshot.outbox_pending, 'email')} in the outbox (oldest {age})")
    else:
        parts.append("outbox empty")
    if snapshot.outbox_failed:
        parts.append(f"{snapshot.outbox_failed} refused by the server")
    return ", ".join(parts)
