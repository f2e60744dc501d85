"""The shop's figures for a period, read from the database into one frozen value.

A period is [since, until), naive UTC like every stored time. Definitions (README "Self-help,
reasons and the report"): tickets new = opened in the period; closed = closed in it; open = opened
before its end and not closed by then. Reasons, languages and mailboxes count the new tickets.
First response = the customer's first message (the ticket's opening) to the first agent reply or
problem broadcast (both stamp `first_agent_reply_at`), for tickets opened in the period, in
wall-clock hours and in business hours (`[updates] hours`/`days`, shop time zone).
Resolution = opening to closing, for tickets closed in the period. Medians are the middle value
(mean of the two middle ones); the 90th percentile is the nearest rank (the smallest value with at
least 90 % of the values at or below it). "Forgotten" = tickets that, during the period, reached
7 days without a mail to the customer while not closed. Only columns are read, never whole rows,
so a month of a large shop takes a moment.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from itertools import pairwise

from sqlalchemy import ColumnElement, Connection, func, or_, select, true
from sqlalchemy.orm import Session

from daemon.config import Config
from daemon.storage.models import Direction, DiscountCode, Message, Promise, Ticket
from daemon.tickets.business_hours import business_seconds

FORGOTTEN_AFTER = timedelta(days=7)
LOWEST_SHOWN = 5
NO_REASON = "(none)"


@dataclass(frozen=True)
class Hours:
    """Median and 90th percentile of a set of durations, in hours (None when there are none)."""

    count: int
    median: float | None
    p90: float | None


@dataclass(frozen=True)
class Scored:
    ticket: int
    score: int
    subject: str


@dataclass(frozen=True)
class Figures:
    since: datetime
    until: datetime
    new: int
    closed: int
    open_at_end: int
    by_reason: tuple[tuple[str, int], ...]
    by_language: tuple[tuple[str, int], ...]
    by_mailbox: tuple[tuple[str, int], ...]
    first_response: Hours
    first_response_business: Hours
    unanswered: int
    resolution: Hours
    forgotten: tuple[int, ...]
    promises_made: int
    promises_kept: int
    promises_late: int
    satisfaction_answers: int
    satisfaction_mean: float | None
    satisfaction_distribution: tuple[int, int, int, int, int]
    satisfaction_lowest: tuple[Scored, ...]
    faq_offered: tuple[tuple[str, int], ...]
    self_solved: int
    self_solved_by_faq: tuple[tuple[str, int], ...]
    quick_answers: tuple[tuple[str, int], ...]
    discounts_issued: int
    discounts_by_percent: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class BusinessHours:
    """The shop's opening hours the business-hours figures count in."""

    timezone: str
    start: time
    end: time
    days: Collection[str]

    @classmethod
    def of(cls, config: Config) -> BusinessHours:
        """The shop's `[updates] hours` and `days`: when automatic mail goes out is when it is open."""
        start, end = config.updates.window
        return cls(config.shop.timezone, start, end, config.updates.days)


def hours(durations: Sequence[timedelta]) -> Hours:
    values = sorted(d.total_seconds() / 3600 for d in durations)
    if not values:
        return Hours(0, None, None)
    rank = max(1, math.ceil(0.9 * len(values)))
    return Hours(len(values), round(statistics.median(values), 2), round(values[rank - 1], 2))


def _ranked(counter: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def gather(session: Session, since: datetime, until: datetime, *, now: datetime,
           business: BusinessHours, mailbox: str | None = None) -> Figures:
    """Every figure for [since, until); `mailbox` narrows to one shop's tickets."""
    mine: ColumnElement[bool] = Ticket.mailbox == mailbox if mailbox is not None else true()
    # Core rows, not ORM ones: for tens of thousands of tuples the ORM's loading is most of the time.
    connection = session.connection()
    opened = connection.execute(select(
        Ticket.id, Ticket.tags, Ticket.language, Ticket.mailbox, Ticket.created_at,
        Ticket.first_agent_reply_at, Ticket.faq).where(
        mine, Ticket.created_at >= since, Ticket.created_at < until)).all()
    reasons: Counter[str] = Counter()
    offered: Counter[str] = Counter()
    wall: list[timedelta] = []
    inside: list[timedelta] = []
    for _, tags, _, _, created, replied, faq in opened:
        reasons.update([t for t in tags.split(",") if t] or [NO_REASON])
        offered.update(name for name in faq.split(",") if name)
        if replied is not None:
            wall.append(replied - created)
            inside.append(timedelta(seconds=business_seconds(
                created, replied, business.timezone, business.start, business.end, business.days)))
    closed = connection.execute(select(Ticket.created_at, Ticket.closed_at, Ticket.self_solved,
                                    Ticket.faq).where(
        mine, Ticket.closed_at >= since, Ticket.closed_at < until)).all()
    solved: Counter[str] = Counter()
    for *_, self_solved, faq in closed:
        if self_solved:
            solved.update(name for name in faq.split(",") if name)
    open_at_end = connection.scalar(select(func.count()).select_from(Ticket).where(
        mine, Ticket.created_at < until,
        or_(Ticket.closed_at.is_(None), Ticket.closed_at >= until))) or 0
    scores = connection.execute(select(Ticket.id, Ticket.satisfaction, Ticket.subject).where(
        mine, Ticket.satisfaction_at >= since, Ticket.satisfaction_at < until,
        Ticket.satisfaction.is_not(None))).all()
    values = [int(score or 0) for _, score, _ in scores]
    lowest = sorted((Scored(i, int(s or 0), subject) for i, s, subject in scores if (s or 0) <= 3),
                    key=lambda scored: (scored.score, scored.ticket))[:LOWEST_SHOWN]
    made, kept, late = _promises(connection, mine, since, until, now)
    discounts = connection.execute(select(DiscountCode.percent, func.count()).join(
        Ticket, Ticket.id == DiscountCode.ticket_id).where(
        mine, DiscountCode.claimed_at >= since, DiscountCode.claimed_at < until)
        .group_by(DiscountCode.percent)).all()
    return Figures(
        since=since, until=until, new=len(opened), closed=len(closed), open_at_end=open_at_end,
        by_reason=_ranked(reasons),
        by_language=_ranked(Counter(language for _, _, language, *_ in opened)),
        by_mailbox=_ranked(Counter(box for _, _, _, box, *_ in opened)),
        first_response=hours(wall), first_response_business=hours(inside),
        unanswered=len(opened) - len(wall),
        resolution=hours([closed_at - created for created, closed_at, *_ in closed
                          if closed_at is not None]),
        forgotten=_forgotten(connection, mine, mailbox is not None, since, min(until, now)),
        promises_made=made, promises_kept=kept, promises_late=late,
        satisfaction_answers=len(values),
        satisfaction_mean=round(statistics.fmean(values), 2) if values else None,
        satisfaction_distribution=(values.count(1), values.count(2), values.count(3),
                                   values.count(4), values.count(5)),
        satisfaction_lowest=tuple(lowest),
        faq_offered=_ranked(offered),
        self_solved=sum(1 for *_, self_solved, _ in closed if self_solved),
        self_solved_by_faq=_ranked(solved),
        quick_answers=_quick_answers(connection, mine, mailbox is not None, since, until),
        discounts_issued=sum(n for _, n in discounts),
        discounts_by_percent=tuple(sorted(((p or 0), n) for p, n in discounts)),
    )


def _quick_answers(connection: Connection, mine: ColumnElement[bool], mailbox_filtered: bool,
                   since: datetime, until: datetime) -> tuple[tuple[str, int], ...]:
    """Quick answers (`#answer`) in the mail sent to customers in the period, by name."""
    query = select(Message.answers).where(
        Message.direction == Direction.OUT, Message.created_at >= since,
        Message.created_at < until, Message.answers != "")
    if mailbox_filtered:
        query = query.join(Ticket, Ticket.id == Message.ticket_id).where(mine)
    used: Counter[str] = Counter()
    for (names,) in connection.execute(query):
        used.update(name for name in names.split(",") if name)
    return _ranked(used)


def _promises(connection: Connection, mine: ColumnElement[bool], since: datetime, until: datetime,
              now: datetime) -> tuple[int, int, int]:
    """Made in the period; of those falling due in it: kept by their time, and late (done after
    it, or not done and already past it)."""
    made = connection.scalar(select(func.count()).select_from(Promise).join(
        Ticket, Ticket.id == Promise.ticket_id).where(
        mine, Promise.created_at >= since, Promise.created_at < until)) or 0
    due = connection.execute(select(Promise.due_at, Promise.done_at).join(
        Ticket, Ticket.id == Promise.ticket_id).where(
        mine, Promise.due_at >= since, Promise.due_at < until)).all()
    kept = sum(1 for due_at, done in due if done is not None and done <= due_at)
    late = sum(1 for due_at, done in due
               if (done is not None and done > due_at) or (done is None and due_at < now))
    return made, kept, late


def _forgotten(connection: Connection, mine: ColumnElement[bool], mailbox_filtered: bool,
               since: datetime, end: datetime) -> tuple[int, ...]:
    """Tickets with a gap of FORGOTTEN_AFTER or more without mail to the customer, ending inside
    [since, end], while not closed. Mail before `since - FORGOTTEN_AFTER` cannot change the answer
    (such a gap reaching the period is long enough anyway), so it is not read."""
    horizon = since - FORGOTTEN_AFTER
    active = connection.execute(select(Ticket.id, Ticket.created_at, Ticket.closed_at).where(
        mine, Ticket.created_at < end,
        or_(Ticket.closed_at.is_(None), Ticket.closed_at >= since))).all()
    if not active:
        return ()
    mails: dict[int, list[datetime]] = {}
    sent_in_window = select(Message.ticket_id, Message.created_at).where(
        Message.direction == Direction.OUT, Message.created_at >= horizon, Message.created_at < end)
    if mailbox_filtered:
        sent_in_window = sent_in_window.join(Ticket, Ticket.id == Message.ticket_id).where(mine)
    for ticket_id, sent in connection.execute(sent_in_window):
        mails.setdefault(ticket_id, []).append(sent)
    found = []
    for ticket_id, created, closed_at in active:
        stop = closed_at if closed_at is not None and closed_at < end else end
        marks = [max(created, horizon), *sorted(mails.get(ticket_id, ())), stop]
        if any(later - earlier >= FORGOTTEN_AFTER and later >= since
               for earlier, later in pairwise(marks)):
            found.append(ticket_id)
    return tuple(sorted(found))
