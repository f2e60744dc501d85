"""`incidencias import-mbox`: file a mailbox's history into tickets, mailing nobody about it.

Each message goes through the normal pipeline (daemon.tickets.router), so it is stored raw and threaded by
the usual rules, with the Mailer silenced: no acknowledgement, no agent notification, nothing in
the outbox. Messages are taken in the order of their Date headers, so a reply stored before its
original in the file still joins it, and the ingest clock is set to each message's date, so
tickets keep the dates the conversations really had. Running an import twice adds nothing.
"""

from __future__ import annotations

import mailbox
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from daemon.config import DEFAULT_MAILBOX, Settings
from daemon.mail.parsing import normalise_message_id
from daemon.outbound.queue import Mailer
from daemon.storage.models import RawOutcome, Ticket, utcnow
from daemon.storage.queries import TicketStore
from daemon.tickets.router import Ingestor, Outcome, Source


@dataclass
class ImportReport:
    messages: int = 0
    new_tickets: int = 0
    joined: int = 0
    skipped: int = 0
    quarantined: int = 0
    tickets: set[int] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {"messages": self.messages, "new_tickets": self.new_tickets, "joined": self.joined,
                "skipped": self.skipped, "quarantined": self.quarantined,
                "tickets": sorted(self.tickets)}


class HistoryClock:
    """The pipeline's clock during an import: the date of the message in hand, else now."""

    def __init__(self, now: Callable[[], datetime] = utcnow) -> None:
        self.now = now
        self.moment: datetime | None = None

    def __call__(self) -> datetime:
        return self.moment or self.now()


def message_date(value: str | None, now: datetime) -> datetime | None:
    """A Date header as naive UTC, None when missing or unreadable; never later than now."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return min(moment, now)


def chronological(dates: Iterable[tuple[str, datetime | None]]) -> list[tuple[str, datetime | None]]:
    """Keys ordered by date; an undated message keeps its place after the message before it."""
    dated: list[tuple[datetime, int, str, datetime | None]] = []
    previous = datetime.min
    for position, (key, moment) in enumerate(dates):
        previous = moment or previous
        dated.append((previous, position, key, moment))
    return [(key, moment) for _, _, key, moment in sorted(dated)]


def _headers(raw: bytes) -> tuple[str | None, str]:
    """The Date header and the normalised Message-ID ("" when there is none)."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    message = BytesHeaderParser(policy=policy.compat32).parsebytes(head)
    date = message.get("Date")
    return (str(date) if date is not None else None,
            normalise_message_id(str(message.get("Message-ID", ""))))


class Pipeline(Protocol):
    """The wired parts an import drives (the runtime's Components)."""

    engine: Engine
    sessions: sessionmaker[Session]
    mailer: Mailer
    ingestor: Ingestor


def import_mbox(settings: Settings, path: Path, build: Callable[[Settings, HistoryClock], Pipeline],
                on_progress: Callable[[int, int], None] = lambda done, total: None) -> ImportReport:
    """Ingest every message of the mbox at `path` silently; returns what became of them.

    `build` wires the pipeline (the runtime's `build`) around the import's own clock.
    """
    clock = HistoryClock()
    parts = build(settings, clock)
    parts.mailer.silent = True
    box = mailbox.mbox(path, create=False)
    report = ImportReport()
    # A named mailbox's raw rows carry its name first, as the IMAP intake's do (see quarantine replay).
    name = settings.config.mailbox
    folder = f"mbox:{path.name}" if name == DEFAULT_MAILBOX else f"{name}/mbox:{path.name}"
    source = Source(folder=folder[:255])
    try:
        now = utcnow()
        keys = [(key, message_date(_headers(box.get_bytes(key))[0], now)) for key in box.iterkeys()]
        order = chronological(keys)
        total = len(order)
        for done, (key, moment) in enumerate(order, 1):
            raw = box.get_bytes(key)
            report.messages += 1
            message_id = _headers(raw)[1]
            if message_id and _already_filed(parts.sessions, message_id):
                report.skipped += 1
            else:
                clock.moment = moment
                _count(report, parts.ingestor.ingest(raw, source), parts.sessions)
            on_progress(done, total)
    finally:
        box.close()
        parts.engine.dispose()
    return report


def _already_filed(sessions: sessionmaker[Session], message_id: str) -> bool:
    with sessions() as session:
        return TicketStore(session).message_exists(message_id)


def _count(report: ImportReport, outcome: Outcome, sessions: sessionmaker[Session]) -> None:
    if outcome.already_handled or outcome.outcome == RawOutcome.DUPLICATE:
        report.skipped += 1
    elif outcome.outcome == RawOutcome.QUARANTINED:
        report.quarantined += 1
    elif outcome.new_ticket:
        report.new_tickets += 1
        _no_escalation(sessions, outcome.ticket)
    else:
        report.joined += 1
    if outcome.ticket is not None and not outcome.already_handled:
        report.tickets.add(outcome.ticket)


def _no_escalation(sessions: sessionmaker[Session], ticket: int | None) -> None:
    """History is not a backlog: the daemon must not remind agents of every imported ticket at once."""
    now = utcnow()
    with sessions.begin() as session:
        session.execute(update(Ticket).where(Ticket.id == ticket)
                        .values(unanswered_reminded_at=now, age_reminded_at=now))
